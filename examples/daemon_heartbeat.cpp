// daemon_heartbeat.cpp — a daemon child that lives only as long as main does.
//
// The classic monitoring story: "server 3" handles requests until it breaks
// down; meanwhile a daemon child reports "i am ok" to the monitor every
// second. set_daemon(true) before start() makes a child a daemon: when the
// main program ends (returns from main), its daemons are terminated with it —
// the heartbeat stops as soon as the main program has nothing left to do.
// (A non-daemon child would instead be waited for.)
//
// The Python original, in outline:
//
//   from multiprocessing import Process
//   import time
//
//   def heartbeat():
//       while True:
//           print("i am ok"); time.sleep(1)
//
//   if __name__ == "__main__":
//       monitor = Process(target=heartbeat, daemon=True)
//       monitor.start()
//       serve_requests()             # when main ends, the daemon ends too
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include <procsync/process.hpp>

namespace {

int heartbeat(std::chrono::milliseconds period) {
  for (int beat = 1;; ++beat) {  // forever: only the end of main stops it
    std::printf("daemon (pid %d): server 3 is alive, heartbeat %d\n", ::getpid(), beat);
    std::this_thread::sleep_for(period);
  }
}

int server(std::chrono::milliseconds busy) {
  try {
    std::printf("worker (pid %d): server 3 is serving 30,000 users...\n", ::getpid());
    std::this_thread::sleep_for(busy);
    throw std::runtime_error("overloaded");
  } catch (const std::exception& e) {
    std::printf("worker: server 3 can't take it anymore (%s)... come fix me\n", e.what());
  }
  return 0;
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const bool fast = std::getenv("PROCSYNC_EXAMPLE_FAST") != nullptr;
  const auto period = std::chrono::milliseconds(fast ? 100 : 1000);

  procsync::process monitor{heartbeat, period};
  monitor.set_daemon(true);  // must be set before start()
  procsync::process worker{server, period * 7 / 2};
  monitor.start();
  worker.start();

  worker.join();  // wait for the worker only, never for the daemon
  std::printf("main: worker finished; main ends now, and the daemon (pid %d) with it\n", monitor.pid());
  return 0;  // procsync terminates and reaps the daemon here
}
