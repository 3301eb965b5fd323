// hello_process.cpp — start a child process with arguments.
//
// procsync::process{function, args...} is Python's Process(target=, args=):
// the function and a copy of its arguments go into the object; start() forks
// a child that runs function(args...), and join() waits for it to end. Both
// processes print their own pid and their parent's pid (getppid()): the
// child's parent is the main program.
//
// The Python original, in outline:
//
//   from multiprocessing import Process
//   import os
//
//   def greet(n, who):
//       print("child:", who, os.getpid(), os.getppid())
//
//   if __name__ == "__main__":
//       p = Process(target=greet, args=(3, "the greeter"))
//       p.start()
//       p.join()
#include <unistd.h>

#include <cstdio>
#include <string>

#include <procsync/process.hpp>

namespace {

int greet(int n, std::string who) {
  std::printf("child: I am %s, pid %d, my parent is pid %d\n", who.c_str(), ::getpid(), ::getppid());
  for (int i = 1; i <= n; ++i) std::printf("child: counting %d\n", i);
  return 0;  // the child's exit code
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // whole lines, even into a pipe
  procsync::process child{greet, 3, std::string("the greeter")};
  child.start();  // fork: from here on, two processes run
  std::printf("parent: I am pid %d, my parent is pid %d; I started child pid %d\n", ::getpid(), ::getppid(),
              child.pid());
  child.join();  // wait for the child to finish (and reap it)
  std::printf("parent: child exited with code %d\n", child.exitcode().value());
  return 0;
}
