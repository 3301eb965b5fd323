// crash_recovery.cpp — what happens when a process dies holding a lock.
//
// Act 1: a process is SIGKILLed in the middle of a money transfer while it
//   holds a procsync::mutex. The kernel releases the lock immediately, and the
//   next process to lock it is told (lock_status::owner_died). It repairs the
//   data from a journal the dead process wrote first, calls consistent(), and
//   work goes on.
// Act 2: the next owner ignores the warning and unlocks without consistent().
//   The mutex is then "not recoverable": every later lock throws
//   procsync::error(errc::not_recoverable), so the broken data is never used
//   silently.
// Act 3: procsync::shared_value<T> does this bookkeeping for you. A writer
//   that moves money back and forth inside with_lock() is SIGKILLed at an
//   arbitrary moment; readers still see the last committed value (never a
//   half-done transfer) and the next writer goes on without any repair code.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include <procsync/error.hpp>
#include <procsync/mutex.hpp>
#include <procsync/process.hpp>
#include <procsync/segment.hpp>
#include <procsync/shared_value.hpp>

namespace {

struct bank {
  procsync::mutex lock;
  long alice = 500, bob = 500;  // invariant: alice + bob == 1000
  long journal = 0;             // the amount of the transfer in progress, 0 if none
  std::atomic<int> mid_transfer{0};
};

struct balances {
  long alice, bob;  // invariant: alice + bob == 1000
};

// Starts a process that takes the lock, begins moving 200 from alice to bob,
// and gets SIGKILLed halfway.
void kill_mid_transfer(bank& b) {
  b.mid_transfer.store(0);
  procsync::process holder{[&b] {
    b.lock.lock();
    b.journal = 200;  // 1. write down what we are about to do
    b.alice -= 200;   // 2. first half of the transfer
    b.mid_transfer.store(1);
    for (;;) ::pause();  // 3. never reached: bob += 200
  }};
  holder.start();
  while (b.mid_transfer.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  holder.kill();  // SIGKILL
  holder.join();
  std::printf("holder %d was SIGKILLed mid-transfer (it held the lock); exit %d\n", holder.pid(),
              holder.exitcode().value());
}

}  // namespace

int main() {
  auto b = procsync::make_anonymous<bank>();

  std::printf("== Act 1: the next owner repairs\n");
  kill_mid_transfer(*b);
  procsync::process repairer{[&] {
    if (b->lock.lock_robust() == procsync::lock_status::owner_died) {
      std::printf("next owner %d: previous owner died! alice %ld + bob %ld = %ld, journal says %ld in flight\n",
                  ::getpid(), b->alice, b->bob, b->alice + b->bob, b->journal);
      b->alice += b->journal;  // roll the half-done transfer back
      b->journal = 0;
      b->lock.consistent();  // data repaired: the mutex is healthy again
      std::printf("next owner %d: rolled back; alice %ld + bob %ld = %ld\n", ::getpid(), b->alice, b->bob,
                  b->alice + b->bob);
    }
    b->lock.unlock();
  }};
  repairer.start();
  repairer.join();
  {
    std::lock_guard guard(b->lock);  // business as usual
    b->alice -= 200;
    b->bob += 200;
  }
  std::printf("after a normal transfer: alice %ld, bob %ld, total %ld\n", b->alice, b->bob, b->alice + b->bob);

  std::printf("\n== Act 2: the next owner does not repair\n");
  kill_mid_transfer(*b);
  b->lock.lock();  // plain lock() also succeeds after a death ...
  std::printf("lock() succeeded; inconsistent() = %s\n", b->lock.inconsistent() ? "true" : "false");
  b->lock.unlock();  // ... but unlocking without consistent() poisons it
  try {
    b->lock.lock();
    std::printf("lock() succeeded again (unexpected)\n");
    b->lock.unlock();
  } catch (const procsync::error& e) {
    std::printf("lock() now throws: %s (errc::not_recoverable: %s)\n", e.what(),
                e.code() == procsync::errc::not_recoverable ? "yes" : "no");
  }

  std::printf("\n== Act 3: shared_value commits all or nothing\n");
  auto value = procsync::make_anonymous<procsync::shared_value<balances>>(balances{500, 500});
  auto commits = procsync::make_anonymous<std::atomic<long>>(0);
  procsync::process writer{[&] {
    for (long i = 0;; ++i)
      value->with_lock([&](balances& b) {
        const long amount = i % 2 ? 1 : -1;
        b.alice -= amount;  // if the writer dies between these two lines,
        b.bob += amount;    // nothing of this call is ever seen by others
        commits->fetch_add(1);
      });
  }};
  writer.start();
  while (commits->load() < 1000) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  writer.kill();
  writer.join();
  std::printf("writer was SIGKILLed after about %ld commits; exit %d\n", commits->load(), writer.exitcode().value());
  const balances seen = value->load();
  std::printf("a reader sees alice %ld + bob %ld = %ld\n", seen.alice, seen.bob, seen.alice + seen.bob);
  value->with_lock([](balances& b) {  // the next writer just works
    b.alice -= 100;
    b.bob += 100;
  });
  const balances after = value->load();
  std::printf("the next writer moved 100: alice + bob = %ld\n", after.alice + after.bob);
  return 0;
}
