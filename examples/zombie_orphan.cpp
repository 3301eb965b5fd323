// zombie_orphan.cpp — the two ways a process outlives its usefulness.
//
// Zombie: a child that has exited but whose parent has not yet collected its
//   exit status (waitpid). The kernel keeps a small entry for it, shown with
//   state "Z" in /proc/PID/stat. join() collects the status and the entry
//   disappears. (procsync reaps in join(), is_alive(), exitcode() and the
//   process destructor, so zombies never pile up.)
// Orphan: a process whose parent exited before it. The kernel gives it a new
//   parent: init (pid 1), or the nearest ancestor that declared itself a
//   "child subreaper". This program declares itself one, so the orphan is
//   re-parented to it and it can reap it too. procsync::process itself never
//   leaves orphans (a child waits for its own children before it exits), so
//   the orphan here is made with a raw fork().
//
// The Python original, in outline:
//
//   import os, time
//
//   pid = os.fork()
//   if pid == 0:
//       os._exit(0)                  # the child ends at once ...
//   time.sleep(1)                    # ... and is a zombie ("Z") meanwhile
//   os.waitpid(pid, 0)               # reaped: the zombie is gone
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include <procsync/process.hpp>
#include <procsync/segment.hpp>

namespace {

// The state letter in /proc/PID/stat (R running, S sleeping, Z zombie, ...),
// or '-' if there is no such process.
char state_of(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return '-';
  const auto close = line.rfind(')');  // the name in (...) may contain spaces
  return close != std::string::npos && close + 2 < line.size() ? line[close + 2] : '?';
}

// Polls `done` every millisecond, for at most 5 s; true once it returned true.
template <class Pred>
bool within_5s(Pred done) {
  for (int i = 0; i < 5000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

struct orphan_report {
  std::atomic<int> old_parent{0}, new_parent{0}, orphan{0};
};

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  std::printf("== zombie\n");
  procsync::process quick{[] { return 0; }};  // exits at once
  quick.start();
  // Do not touch `quick` (is_alive/exitcode would reap it); just look at /proc.
  if (within_5s([&] { return state_of(quick.pid()) == 'Z'; }))
    std::printf("child %d has exited but is not reaped yet: state Z (zombie)\n", quick.pid());
  quick.join();  // collects the exit status: the zombie is gone
  std::printf("after join(): exitcode %d, /proc/%d %s\n", quick.exitcode().value(), quick.pid(),
              state_of(quick.pid()) == '-' ? "is gone (reaped)" : "still exists");

  std::printf("\n== orphan\n");
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);  // orphans below us are re-parented to us
  auto report = procsync::make_anonymous<orphan_report>();
  procsync::process parent{[report] {
    const pid_t me = ::getpid();   // read before fork: we may be gone before the child looks
    const pid_t orphan = ::fork();  // a raw child, not waited for
    if (orphan == 0) {
      // Wait (at most 5 s) until our parent has exited and we were re-parented.
      for (int i = 0; i < 5000 && ::getppid() == me; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      report->old_parent = me;
      report->new_parent = ::getppid();  // we are an orphan now
      ::_exit(0);
    }
    report->orphan = orphan;
    std::printf("parent %d: started child %d and exits without waiting for it\n", ::getpid(), orphan);
    return 0;
  }};
  parent.start();
  parent.join();
  if (within_5s([&] { return report->new_parent.load() != 0; }))
    std::printf("orphan %d: my parent %d exited; my new parent is %d (main is pid %d)\n", report->orphan.load(),
                report->old_parent.load(), report->new_parent.load(), ::getpid());
  // The orphan is our child now: reap it so it does not stay a zombie.
  int status = 0;
  pid_t reaped = 0;
  within_5s([&] { return (reaped = ::waitpid(report->orphan.load(), &status, WNOHANG)) != 0; });
  std::printf("main reaped the orphan %d: %s\n", reaped, reaped > 0 && WIFEXITED(status) ? "exited normally" : "?");
  return 0;
}
