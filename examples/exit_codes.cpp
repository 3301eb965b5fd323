// exit_codes.cpp — how a child's end shows up in exitcode().
//
// exitcode() is empty while a child runs; afterwards it is
//   - the value run() (or the target) returned, or the n of std::exit(n);
//   - 1 if an exception escaped (the child prints it to stderr first);
//   - -15 after terminate() (SIGTERM), -9 after kill() (SIGKILL): -N means
//     "killed by signal N", as in Python.
//
// The Python original, in outline:
//
//   from multiprocessing import Process
//   import sys, time
//
//   def ok(): return              # exitcode 0
//   def seven(): sys.exit(7)      # exitcode 7
//   def forever(): time.sleep(60)
//
//   if __name__ == "__main__":
//       p = Process(target=forever); p.start()
//       p.terminate(); p.join()
//       print(p.exitcode)         # -15
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include <procsync/process.hpp>

namespace {

int sleep_forever() {
  for (;;) ::pause();
}

void report(procsync::process& p, const char* what) {
  p.join();
  std::printf("%-28s exitcode %d\n", what, p.exitcode().value());
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  procsync::process normal{[] { return 0; }};
  procsync::process code{[] { return 3; }};
  procsync::process exiting{[]() -> int { std::exit(7); }};
  procsync::process throwing{[]() -> int { throw std::runtime_error("something went wrong"); }};
  procsync::process terminated{sleep_forever};
  procsync::process killed{sleep_forever};

  for (procsync::process* p : {&normal, &code, &exiting, &throwing, &terminated, &killed}) p->start();
  std::printf("while running, exitcode() has a value: %s\n", terminated.exitcode().has_value() ? "yes" : "no");
  terminated.terminate();  // SIGTERM: please stop
  killed.kill();           // SIGKILL: stop now, no questions

  report(normal, "returned 0:");
  report(code, "returned 3:");
  report(exiting, "called std::exit(7):");
  report(throwing, "threw an exception:");
  report(terminated, "terminate() (SIGTERM):");
  report(killed, "kill() (SIGKILL):");
  return 0;
}
