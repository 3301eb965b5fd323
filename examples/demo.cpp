// demo.cpp — a ten-second tour of procsync.
//
// Part 1: four processes each add 1 to a counter in shared memory many times.
//   Without a lock, "load, add, store" from two processes interleave and
//   updates are lost; with a procsync::mutex around it the total is exact.
// Part 2: a process is SIGKILLed while it holds the mutex, in the middle of
//   moving money between two accounts. The kernel releases the lock at once;
//   the next owner is told the previous one died, repairs the data from a
//   journal, and marks the mutex consistent.
//
// Set PROCSYNC_EXAMPLE_FAST=1 for fewer iterations (the test suite does).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <procsync/mutex.hpp>
#include <procsync/process.hpp>
#include <procsync/segment.hpp>

namespace {

// "Read, compute, write back": the kind of update that goes wrong when two
// processes do it at once. The computation stands in for real work (it only
// widens the window between the read and the write).
void add_one(volatile long& counter) {
  const long seen = counter;                         // read (volatile: a real load)
  volatile int work = 50;                            // "compute" for a moment
  while (work > 0) work = work - 1;
  counter = seen + 1;                                // write back (a real store)
}

// Everything the processes share lives in one struct in shared memory.
struct counters {
  procsync::mutex lock;
  long unlocked_count = 0;  // updated without the lock
  long locked_count = 0;    // updated under the lock
  std::atomic<int> ready{0};  // start line: every worker waits for all others
};

struct accounts {
  procsync::mutex lock;
  long checking = 1000, savings = 0;
  long in_flight = 0;  // journal: the amount a transfer is moving right now
  std::atomic<int> stage{0};
};

// Starts `procs` child processes running `body`, then waits for all of them.
template <class F>
void run_in_parallel(int procs, F body) {
  std::vector<std::unique_ptr<procsync::process>> workers;
  for (int p = 0; p < procs; ++p) {
    workers.push_back(std::make_unique<procsync::process>(body));
    workers.back()->start();  // fork: the child runs body()
  }
  for (auto& w : workers) w->join();
}

}  // namespace

int main() {
  const bool fast = std::getenv("PROCSYNC_EXAMPLE_FAST") != nullptr;
  const int procs = 4;
  const long iterations = fast ? 200000 : 1000000;

  // make_anonymous maps shared memory that fork()ed children inherit.
  auto shared = procsync::make_anonymous<counters>();

  std::printf("== Part 1: %d processes x %ld increments of one shared counter\n", procs, iterations);
  run_in_parallel(procs, [&] {
    shared->ready.fetch_add(1);
    while (shared->ready.load() < procs) std::this_thread::yield();  // start together
    for (long i = 0; i < iterations; ++i) add_one(shared->unlocked_count);
  });
  const long expected = procs * iterations;
  std::printf("without a lock: total %ld, expected %ld, lost updates %ld\n", shared->unlocked_count, expected,
              expected - shared->unlocked_count);

  const auto start = std::chrono::steady_clock::now();
  run_in_parallel(procs, [&] {
    for (long i = 0; i < iterations; ++i) {
      std::lock_guard guard(shared->lock);  // procsync::mutex is Lockable
      add_one(shared->locked_count);  // the same update, now one process at a time
    }
  });
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("with procsync::mutex: total %ld, expected %ld, lost updates %ld (%.0f ns per locked update)\n",
              shared->locked_count, expected, expected - shared->locked_count, ms * 1e6 / static_cast<double>(expected));

  std::printf("\n== Part 2: a lock holder is killed mid-update\n");
  auto bank = procsync::make_anonymous<accounts>();
  procsync::process victim{[&] {
    bank->lock.lock();
    bank->in_flight = 300;  // write the journal first ...
    bank->checking -= 300;  // ... then half of the transfer ...
    bank->stage.store(1);   // ... tell the parent ...
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));  // ... and never finish it.
  }};
  victim.start();
  while (bank->stage.load() != 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::printf("holder %d took the lock and moved 300 out of checking; killing it with SIGKILL\n", victim.pid());
  victim.kill();
  victim.join();

  // lock_robust() tells us whether the previous owner died holding the lock.
  if (bank->lock.lock_robust() == procsync::lock_status::owner_died) {
    std::printf("next owner: previous owner died; checking %ld + savings %ld = %ld (should be 1000)\n", bank->checking,
                bank->savings, bank->checking + bank->savings);
    bank->checking += bank->in_flight;  // roll the half-done transfer back
    bank->in_flight = 0;
    bank->lock.consistent();  // the data is repaired: the mutex is usable again
    std::printf("repaired from the journal: checking %ld + savings %ld = %ld\n", bank->checking, bank->savings,
                bank->checking + bank->savings);
  }
  bank->lock.unlock();

  // The mutex works as before.
  {
    std::lock_guard guard(bank->lock);
    bank->checking -= 300;
    bank->savings += 300;
  }
  std::printf("a new transfer completes: checking %ld, savings %ld, total %ld\n", bank->checking, bank->savings,
              bank->checking + bank->savings);
  return 0;
}
