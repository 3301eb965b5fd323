// ticket_sale.cpp — buyers in several processes race for the last tickets.
//
// Ten tickets sit in shared memory. Five buyer processes each loop: look at
// how many are left, talk to the "payment service" for a moment, then take
// one. Without a lock two buyers can both see "1 left" and both take it: the
// show is oversold. With a procsync::mutex around check-and-take, exactly ten
// tickets are sold.
//
// The Python original, in outline:
//
//   from multiprocessing import Process, Lock, Value
//
//   def buy(left, lock):
//       while True:
//           with lock:               # check and take under one lock
//               if left.value == 0: return
//               left.value -= 1
//
//   if __name__ == "__main__":
//       left, lock = Value("i", 10, lock=False), Lock()
//       buyers = [Process(target=buy, args=(left, lock)) for _ in range(5)]
//       for b in buyers: b.start()
//       for b in buyers: b.join()
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <procsync/mutex.hpp>
#include <procsync/process.hpp>
#include <procsync/segment.hpp>

namespace {

constexpr int tickets_on_sale = 10;
constexpr int buyers = 5;

struct box_office {
  procsync::mutex lock;
  int tickets_left = tickets_on_sale;
  int bought[buyers] = {};  // each buyer counts its own tickets (no race there)
  std::atomic<int> at_the_door{0};
};

// One buyer: keep buying until the box office says there is nothing left.
int buy(box_office& office, int me, bool use_lock) {
  office.at_the_door.fetch_add(1);
  while (office.at_the_door.load() < buyers) std::this_thread::yield();  // doors open for everyone at once
  for (;;) {
    std::unique_lock<procsync::mutex> guard;  // empty: holds nothing yet
    if (use_lock) guard = std::unique_lock(office.lock);
    const int left = office.tickets_left;  // 1. look
    if (left <= 0) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // 2. pay (slow)
    office.tickets_left = left - 1;        // 3. take: based on what we saw in step 1
    ++office.bought[me];
    guard = {};  // unlock before the next round so others get a turn
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void sale(bool use_lock) {
  auto office = procsync::make_anonymous<box_office>();
  std::vector<std::unique_ptr<procsync::process>> queue;
  for (int b = 0; b < buyers; ++b) {
    // std::ref: the child uses the very box office in shared memory, not a copy.
    queue.push_back(std::make_unique<procsync::process>(buy, std::ref(*office), b, use_lock));
    queue.back()->start();
  }
  for (auto& buyer : queue) buyer->join();

  int sold = 0;
  std::printf("%s:", use_lock ? "with procsync::mutex" : "without a lock");
  for (int b = 0; b < buyers; ++b) {
    std::printf(" buyer%d=%d", b + 1, office->bought[b]);
    sold += office->bought[b];
  }
  std::printf("\n  sold %d tickets for %d seats, %d left: %s\n", sold, tickets_on_sale, office->tickets_left,
              sold > tickets_on_sale ? "OVERSOLD" : "correct");
}

}  // namespace

int main() {
  std::printf("%d buyers race for %d tickets\n", buyers, tickets_on_sale);
  sale(false);
  sale(true);
  return 0;
}
