#define BOOST_TEST_MODULE procsync condition_variable_any
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <shared_mutex>
#include <stop_token>
#include <thread>
#include <vector>

#include <procsync/condition_variable_any.hpp>
#include <procsync/deadlock.hpp>
#include <procsync/mutex.hpp>
#include <procsync/recursive_mutex.hpp>
#include <procsync/segment.hpp>
#include <procsync/shared_mutex.hpp>

#include "child.hpp"
#include "wake_probe.hpp"
#include "errors.hpp"

using namespace procsync_test;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

// A user-written BasicLockable that lives in shared memory: a test-and-set lock.
struct user_lock {
  std::atomic<int> held{0};
  void lock() {
    while (held.exchange(1, std::memory_order_acquire) != 0) std::this_thread::yield();
  }
  void unlock() { held.store(0, std::memory_order_release); }
};

struct block {
  procsync::mutex m;
  procsync::recursive_mutex rm;
  procsync::shared_mutex sm;
  user_lock ul;
  procsync::condition_variable_any cv;
  long value = 0;
  std::atomic<int> waiting{0};
  wake_probe::return_log log;  // notify_one_releases_exactly_one_of_the_sleeping_waiters
};

// N processes wait (predicate value == round) with the lock made by `make`; the
// parent changes value under the exclusive lock and notifies all.
template <class MakeWaiterLock, class MakeWriterLock>
void everyone_released(block& b, MakeWaiterLock make_waiter_lock, MakeWriterLock make_writer_lock) {
  constexpr int procs = 3;
  b.value = 0;
  b.waiting = 0;
  std::vector<pid_t> kids;
  for (int i = 0; i < procs; ++i)
    kids.push_back(fork_child([&] {
      auto lk = make_waiter_lock();
      b.waiting.fetch_add(1);
      b.cv.wait(lk, [&] { return b.value == 1; });
      return b.value == 1 ? 0 : 1;
    }));
  BOOST_REQUIRE(eventually([&] { return b.waiting.load() == procs && all_blocked_in_futex(kids); }));
  {
    auto lk = make_writer_lock();
    b.value = 1;
  }
  b.cv.notify_all();
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
}

}  // namespace

BOOST_AUTO_TEST_CASE(unique_lock_of_procsync_mutex_across_processes, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  everyone_released(
      *b, [&] { return std::unique_lock(b->m); }, [&] { return std::unique_lock(b->m); });
}

BOOST_AUTO_TEST_CASE(shared_lock_of_procsync_shared_mutex_across_processes, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  // Waiters hold the shared_mutex shared (std::shared_lock), the writer exclusively.
  everyone_released(
      *b, [&] { return std::shared_lock(b->sm); }, [&] { return std::unique_lock(b->sm); });
  BOOST_TEST(b->sm.reader_count() == 0u);
}

BOOST_AUTO_TEST_CASE(recursive_mutex_held_once_and_a_user_lockable, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  everyone_released(
      *b, [&] { return std::unique_lock(b->rm); }, [&] { return std::unique_lock(b->rm); });
  everyone_released(
      *b, [&] { return std::unique_lock(b->ul); }, [&] { return std::unique_lock(b->ul); });
}

BOOST_AUTO_TEST_CASE(the_mutex_itself_as_the_lock_and_checked_mutex, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  // A procsync::mutex is itself BasicLockable.
  b->value = 0;
  const pid_t kid = fork_child([&] {
    b->m.lock();
    b->waiting = 1;
    while (b->value == 0) b->cv.wait(b->m);
    b->m.unlock();
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return b->waiting.load() == 1 && blocked_in_futex(kid); }));
  {
    std::lock_guard g(b->m);
    b->value = 1;
  }
  b->cv.notify_one();
  BOOST_TEST(wait_exit_code(kid) == 0);

  // checked_mutex (deadlock detection's mutex), with threads.
  auto reg = procsync::make_anonymous<procsync::deadlock_registry>();
  auto cm = procsync::make_anonymous<procsync::checked_mutex>(reg->define_class("cv-any"));
  int state = 0;
  std::thread t([&] {
    std::unique_lock lk(*cm);
    b->cv.wait(lk, [&] { return state == 1; });
    state = 2;
  });
  for (;;) {
    {
      std::lock_guard g(*cm);
      if (state == 0) state = 1;
    }
    b->cv.notify_all();
    std::unique_lock lk(*cm);
    if (b->cv.wait_for(lk, 1ms, [&] { return state == 2; })) break;
  }
  t.join();
  BOOST_TEST(state == 2);
}

BOOST_AUTO_TEST_CASE(misuse_is_an_error_and_nothing_is_released, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  std::unique_lock<procsync::mutex> none(b->m, std::defer_lock);
  BOOST_TEST((error_of([&] { b->cv.wait(none); }) == procsync::errc::not_owner));
  BOOST_TEST((error_of([&] { b->cv.wait(b->m); }) == procsync::errc::not_owner));  // not held
  std::shared_lock<procsync::shared_mutex> no_shared(b->sm, std::defer_lock);
  BOOST_TEST((error_of([&] { b->cv.wait(no_shared); }) == procsync::errc::not_owner));

  // A recursive mutex held twice cannot be waited on; it stays held twice.
  std::unique_lock outer(b->rm);
  std::unique_lock inner(b->rm);
  std::string what;
  BOOST_TEST((error_of([&] { b->cv.wait(inner); }, &what) == procsync::errc::would_deadlock));
  BOOST_TEST(what.find("held 2 times") != std::string::npos);
  BOOST_TEST((error_of([&] { (void)b->cv.wait_for(inner, 1ms); }) == procsync::errc::would_deadlock));
  BOOST_TEST(b->rm.depth_of_caller() == 2u);
  inner.unlock();
  BOOST_TEST((b->cv.wait_for(outer, 1ms) == std::cv_status::timeout));  // held once: fine
  BOOST_TEST(b->rm.depth_of_caller() == 1u);
}

BOOST_AUTO_TEST_CASE(timed_waits_time_out_never_early, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  std::unique_lock lk(b->m);
  for (auto timeout : {0ms, 1ms, 30ms}) {
    const auto start = clk::now();
    BOOST_TEST((b->cv.wait_for(lk, timeout) == std::cv_status::timeout));
    BOOST_TEST((clk::now() - start >= timeout));
    BOOST_TEST(lk.owns_lock());
    BOOST_TEST(b->m.owned_by_caller());
  }
  const auto deadline = std::chrono::system_clock::now() + 20ms;
  BOOST_TEST(!b->cv.wait_until(lk, deadline, [] { return false; }));
  BOOST_TEST((std::chrono::system_clock::now() >= deadline));
  BOOST_TEST(b->cv.wait_for(lk, 1h, [] { return true; }));  // true at once: no wait
  BOOST_TEST(!b->cv.wait_for(lk, std::chrono::hours::min(), [] { return false; }));
}

// std::stop_token overloads: a stop request wakes the waiter, which returns
// pred() (false); without a stop, a notification with pred true returns true.
BOOST_AUTO_TEST_CASE(stop_token_overloads, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  std::atomic<int> result{-1};
  std::atomic<pid_t> waiting{0};  // the waiting thread's TID, once it holds the lock
  // It waits: it registered under the lock, and sleeps in a futex call now
  // (seen by looking), so the stop request or the notification must wake it.
  const auto asleep = [&] { return waiting.load() != 0 && blocked_in_futex(::getpid(), waiting.load()); };
  {
    std::jthread t([&](std::stop_token st) {
      std::unique_lock lk(b->m);
      waiting = ::gettid();
      result = b->cv.wait(lk, st, [&] { return b->value == 5; }) ? 1 : 0;
    });
    BOOST_REQUIRE(eventually(asleep));
    t.request_stop();
  }
  BOOST_TEST(result.load() == 0);

  result = -1;
  waiting = 0;
  {
    std::jthread t([&](std::stop_token st) {
      std::unique_lock lk(b->m);
      waiting = ::gettid();
      result = b->cv.wait_for(lk, st, 1h, [&] { return b->value == 5; }) ? 1 : 0;
    });
    BOOST_REQUIRE(eventually(asleep));
    {
      std::lock_guard g(b->m);
      b->value = 5;
    }
    b->cv.notify_one();
  }
  BOOST_TEST(result.load() == 1);

  // Already stopped: returns pred() at once.
  std::stop_source src;
  src.request_stop();
  std::unique_lock lk(b->m);
  BOOST_TEST(!b->cv.wait(lk, src.get_token(), [] { return false; }));
  BOOST_TEST(!b->cv.wait_until(lk, src.get_token(), clk::now() + 1h, [] { return false; }));
  std::stop_source live;
  BOOST_TEST(!b->cv.wait_for(lk, live.get_token(), 10ms, [] { return false; }));  // the deadline
}

// notify_one releases exactly one of N waiters that were asleep before it;
// the others are confirmed still asleep by looking.
BOOST_AUTO_TEST_CASE(notify_one_releases_exactly_one_of_the_sleeping_waiters, *boost::unit_test::timeout(300)) {
  constexpr int waiters = 4, rounds = 100;
  int failures = 0;
  for (int round = 0; round < rounds && failures == 0; ++round) {
    auto b = procsync::make_anonymous<block>();
    // Any lock: here readers of a shared_mutex; free when nobody holds it, not even as a reader.
    const auto r = wake_probe::notify_one_round(b->log, waiters, b->cv, [&] { return std::shared_lock(b->sm); }, [&] {
      if (!b->sm.try_lock()) return false;
      b->sm.unlock();
      return b->sm.reader_count() == 0u;
    });
    BOOST_REQUIRE_MESSAGE(r.broken.empty(), "round " << round << ": " << r.broken);
    if (!r.exactly_one()) ++failures;
    for (int code : r.others_codes) BOOST_TEST(code == 0);
  }
  BOOST_TEST(failures == 0);
}

// A waiter SIGKILLed while asleep breaks nothing; the others are released.
BOOST_AUTO_TEST_CASE(waiter_killed_mid_wait_breaks_nothing, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  std::vector<pid_t> kids;
  for (int i = 0; i < 3; ++i)
    kids.push_back(fork_child([&] {
      std::unique_lock lk(b->ul);
      b->waiting.fetch_add(1);
      b->cv.wait(lk, [&] { return b->value != 0; });
      return 0;
    }));
  BOOST_REQUIRE(eventually([&] { return b->waiting.load() == 3 && all_blocked_in_futex(kids); }));
  ::kill(kids[0], SIGKILL);
  BOOST_TEST(wait_exit_code(kids[0]) == -SIGKILL);
  {
    std::lock_guard g(b->ul);
    b->value = 1;
  }
  b->cv.notify_one();  // may land on the dead waiter's count: a second one follows
  b->cv.notify_one();
  BOOST_TEST(wait_exit_code(kids[1]) == 0);
  BOOST_TEST(wait_exit_code(kids[2]) == 0);
}

// The lock's holder dies while a waiter waits: the waiter relocks, and the
// procsync mutex reports the death (inconsistent()); the predicate wait throws
// errc::owner_dead, still holding it, instead of unlocking (and poisoning) it.
BOOST_AUTO_TEST_CASE(owner_death_of_the_lock_is_reported_by_the_lock, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  const pid_t waiter = fork_child([&] {
    std::unique_lock lk(b->m);
    b->waiting = 1;
    // the dead holder never sets 2
    if (error_of([&] { b->cv.wait(lk, [&] { return b->value == 2; }); }) != procsync::errc::owner_dead) return 3;
    if (!lk.owns_lock() || !b->m.inconsistent()) return 1;
    if (b->value != 1) return 2;
    b->value = 2;  // repair
    b->m.consistent();
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return b->waiting.load() == 1 && blocked_in_futex(waiter); }));
  BOOST_TEST(die_holding([&] {
    b->m.lock();
    b->value = 1;
    b->cv.notify_all();
  }) == -SIGKILL);  // dies holding the mutex
  BOOST_TEST(wait_exit_code(waiter) == 0);
  BOOST_TEST(!b->m.not_recoverable());
  BOOST_TEST((b->m.try_lock_robust() == procsync::lock_status::acquired));
  BOOST_TEST(b->value == 2);
  b->m.unlock();
}

BOOST_AUTO_TEST_CASE(no_syscall_without_waiters, *boost::unit_test::timeout(120)) {
  procsync::condition_variable_any cv;
  const auto before = procsync::detail::futex_syscalls.load();
  for (int i = 0; i < 10000; ++i) {
    cv.notify_one();
    cv.notify_all();
  }
  BOOST_TEST(procsync::detail::futex_syscalls.load() == before);
}

// notify_one() and notify_all() wake sleeping waiters by a wake call (a lost
// wake costs one 50 ms re-arm slice; wake_probe.hpp tells the two apart).
BOOST_AUTO_TEST_CASE(notify_wakes_sleepers_by_a_wake_call, *boost::unit_test::timeout(300)) {
  struct strict_block {
    procsync::mutex m;
    procsync::condition_variable_any cv;
  };
  wake_probe::tally one, all;
  for (int round = 0; round < 5; ++round) {
    auto a = procsync::make_anonymous<strict_block>();
    one += wake_probe::strict_wake_round(1, wake_probe::cv_waiter(a->cv, a->m), [&] { a->cv.notify_one(); });
    auto b = procsync::make_anonymous<strict_block>();
    all += wake_probe::strict_wake_round(2, wake_probe::cv_waiter(b->cv, b->m), [&] { b->cv.notify_all(); });
  }
  BOOST_TEST(one.strict(), "notify_one() of 1 sleeper: " << one.str());
  BOOST_TEST(all.strict(), "notify_all() of 2 sleepers: " << all.str());
}
