// traffic_light.cpp — an event shared between processes.
//
// A procsync::event is a flag processes can wait for (Python's Event): set()
// raises it and wakes everyone waiting, clear() lowers it, wait() blocks until
// it is up. Here the event is a green light. One "light" process turns it
// green and red in turn; five "car" processes arrive at different times, and a
// car that finds the light red waits until it turns green.
//
// The Python original, in outline:
//
//   from multiprocessing import Process, Event
//   import time
//
//   def light(green):
//       while True:
//           green.set(); time.sleep(1)
//           green.clear(); time.sleep(1)
//
//   def car(green, i):
//       green.wait()                 # blocks while the light is red
//       print("car", i, "passes")
//
//   if __name__ == "__main__":
//       green = Event()
//       ...                          # one light process, five car processes
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include <procsync/event.hpp>
#include <procsync/process.hpp>
#include <procsync/segment.hpp>

namespace {

constexpr int cars = 5;

struct crossing {
  procsync::event green;      // manual reset: stays green until cleared
  std::atomic<int> passed{0};
};

int light(crossing& c, std::chrono::milliseconds phase) {
  // Toggle until every car has passed (bounded, so it always stops).
  for (int cycle = 0; cycle < 200 && c.passed.load() < cars; ++cycle) {
    std::printf("light: GREEN\n");
    c.green.set();  // wakes every waiting car
    std::this_thread::sleep_for(phase);
    std::printf("light: RED\n");
    c.green.clear();
    std::this_thread::sleep_for(phase);
  }
  return 0;
}

int car(crossing& c, int me, std::chrono::milliseconds arrive_after) {
  std::this_thread::sleep_for(arrive_after);
  if (!c.green.is_set()) {
    std::printf("car %d: red light, waiting\n", me);
    c.green.wait();  // sleeps until the light process calls set()
  }
  std::printf("car %d: passes on green\n", me);
  c.passed.fetch_add(1);
  return 0;
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // whole lines, even into a pipe
  const bool fast = std::getenv("PROCSYNC_EXAMPLE_FAST") != nullptr;
  const auto phase = std::chrono::milliseconds(fast ? 60 : 800);

  auto c = procsync::make_anonymous<crossing>();
  std::vector<std::unique_ptr<procsync::process>> street;
  street.push_back(std::make_unique<procsync::process>(light, std::ref(*c), phase));
  for (int k = 1; k <= cars; ++k)
    street.push_back(std::make_unique<procsync::process>(car, std::ref(*c), k, phase * k / 2));
  for (auto& p : street) p->start();
  for (auto& p : street) p->join();
  std::printf("all %d cars passed\n", c->passed.load());
  return 0;
}
