#define BOOST_TEST_MODULE procsync condition_variable
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <procsync/condition_variable.hpp>
#include <procsync/mutex.hpp>

#include "child.hpp"
#include "wake_probe.hpp"
#include "errors.hpp"
#include <procsync/segment.hpp>

using namespace procsync_test;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

struct block {
  procsync::mutex m;
  procsync::condition_variable cv;
  procsync::condition_variable cv2;
  long turn = 0;
  long value = 0;
  long ring[8] = {};
  long head = 0, tail = 0;
  std::atomic<int> waiting{0};
  std::atomic<int> step{0};
};

// Every waiter in `kids` has registered (counted in `waiting` under the
// mutex), the mutex is free again (each unlocked it in wait) and each sleeps
// in a futex call: "they wait" decided by looking, never by sleeping.
bool all_waiting(block& b, const std::vector<pid_t>& kids, int count) {
  if (b.waiting.load() != count || !b.m.try_lock()) return false;
  b.m.unlock();
  return all_blocked_in_futex(kids);
}

}  // namespace

BOOST_AUTO_TEST_CASE(ping_pong_between_processes, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  constexpr long rounds = 2000;
  // Two processes take turns: turn is even for the first, odd for the second.
  auto player = [&](long parity) {
    for (long i = 0; i < rounds; ++i) {
      std::unique_lock lk(b->m);
      b->cv.wait(lk, [&] { return b->turn % 2 == parity; });
      ++b->turn;
      b->cv.notify_one();
    }
    return 0;
  };
  const pid_t p0 = fork_child([&] { return player(0); });
  const pid_t p1 = fork_child([&] { return player(1); });
  BOOST_TEST(wait_exit_code(p0) == 0);
  BOOST_TEST(wait_exit_code(p1) == 0);
  BOOST_TEST(b->turn == 2 * rounds);
}

BOOST_AUTO_TEST_CASE(producer_consumer_exact, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  constexpr long items = 5000;
  constexpr int consumers = 2;
  auto sum = procsync::make_anonymous<std::atomic<long>>(0);
  auto count = procsync::make_anonymous<std::atomic<long>>(0);
  const pid_t producer = fork_child([&] {
    for (long i = 1; i <= items; ++i) {
      std::unique_lock lk(b->m);
      b->cv2.wait(lk, [&] { return b->tail - b->head < 8; });  // not full
      b->ring[b->tail++ % 8] = i;
      b->cv.notify_one();
    }
    std::unique_lock lk(b->m);
    for (int c = 0; c < consumers; ++c) {
      b->cv2.wait(lk, [&] { return b->tail - b->head < 8; });
      b->ring[b->tail++ % 8] = -1;  // one stop marker per consumer
      b->cv.notify_one();
    }
    return 0;
  });
  std::vector<pid_t> kids;
  for (int c = 0; c < consumers; ++c)
    kids.push_back(fork_child([&] {
      for (;;) {
        std::unique_lock lk(b->m);
        b->cv.wait(lk, [&] { return b->tail != b->head; });  // not empty
        const long v = b->ring[b->head++ % 8];
        b->cv2.notify_one();
        if (v < 0) return 0;
        sum->fetch_add(v);
        count->fetch_add(1);
      }
    }));
  BOOST_TEST(wait_exit_code(producer) == 0);
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(count->load() == items);
  BOOST_TEST(sum->load() == items * (items + 1) / 2);
}

BOOST_AUTO_TEST_CASE(notify_all_wakes_every_waiter, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  constexpr int waiters = 5;
  std::vector<pid_t> kids;
  for (int i = 0; i < waiters; ++i)
    kids.push_back(fork_child([&] {
      std::unique_lock lk(b->m);
      b->waiting.fetch_add(1);
      // No predicate: each waiter must really be woken by the one notify_all.
      while (b->value == 0) b->cv.wait(lk);
      return 0;
    }));
  BOOST_REQUIRE(eventually([&] { return all_waiting(*b, kids, waiters); }));
  {
    std::lock_guard g(b->m);
    b->value = 1;
  }
  b->cv.notify_all();
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k, 30s) == 0);
}

BOOST_AUTO_TEST_CASE(wait_for_times_out_not_early, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  std::unique_lock lk(b->m);
  for (auto timeout : {1ms, 50ms, 150ms}) {
    const auto t0 = clk::now();
    BOOST_TEST((b->cv.wait_for(lk, timeout) == std::cv_status::timeout));
    BOOST_TEST((clk::now() - t0 >= timeout));
    BOOST_TEST((clk::now() - t0 < timeout + 30s));  // a watchdog, not a timing: only a near-hang trips it
    BOOST_TEST(lk.owns_lock());
    BOOST_TEST(b->m.owned_by_caller());
  }
  const auto t0 = clk::now();
  BOOST_TEST(!b->cv.wait_for(lk, 50ms, [] { return false; }));
  BOOST_TEST((clk::now() - t0 >= 50ms));
  BOOST_TEST(!b->cv.wait_until(lk, std::chrono::system_clock::now() + 30ms, [] { return false; }));
  BOOST_TEST((clk::now() - t0 >= 80ms - 1ms));
  // A notification before the deadline ends the wait early with no_timeout.
  const pid_t notifier = fork_child([&] {
    std::lock_guard g(b->m);
    b->value = 7;
    b->cv.notify_one();
    return 0;
  });
  BOOST_TEST(b->cv.wait_for(lk, 30s, [&] { return b->value == 7; }));
  lk.unlock();
  BOOST_TEST(wait_exit_code(notifier) == 0);
}

BOOST_AUTO_TEST_CASE(waiter_killed_mid_wait_others_still_work, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  const pid_t victim = fork_child([&] {
    std::unique_lock lk(b->m);
    b->waiting.fetch_add(1);
    b->cv.wait(lk, [&] { return b->value != 0; });
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return b->waiting.load() == 1; }));
  std::vector<pid_t> kids;
  for (int i = 0; i < 2; ++i)
    kids.push_back(fork_child([&] {
      std::unique_lock lk(b->m);
      b->waiting.fetch_add(1);
      b->cv.wait(lk, [&] { return b->value != 0; });
      return 0;
    }));
  // The victim dies mid-wait: asleep in the futex, like the others, seen by looking.
  const std::vector<pid_t> all = {victim, kids[0], kids[1]};
  BOOST_REQUIRE(eventually([&] { return all_waiting(*b, all, 3); }));
  ::kill(victim, SIGKILL);
  BOOST_TEST(wait_exit_code(victim) == -SIGKILL);
  {
    std::lock_guard g(b->m);  // the mutex is free: the victim died waiting, not holding
    b->value = 1;
  }
  b->cv.notify_all();
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k, 30s) == 0);
  // notify_one still reaches a new waiter.
  const pid_t late = fork_child([&] {
    std::unique_lock lk(b->m);
    b->step = 1;
    b->cv.wait(lk, [&] { return b->value == 2; });
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return b->step.load() == 1; }));
  {
    std::lock_guard g(b->m);
    b->value = 2;
  }
  b->cv.notify_one();
  BOOST_TEST(wait_exit_code(late, 30s) == 0);
}

BOOST_AUTO_TEST_CASE(owner_death_during_wait_is_reported, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  const pid_t waiter = fork_child([&] {
    std::unique_lock lk(b->m);
    b->waiting = 1;
    procsync::lock_status s = procsync::lock_status::acquired;
    while (b->value == 0) s = b->cv.wait_robust(lk);
    if (s != procsync::lock_status::owner_died) return 1;
    if (!b->m.inconsistent()) return 2;
    b->value = 100;  // repair
    b->m.consistent();
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return b->waiting.load() == 1; }));
  BOOST_TEST(die_holding([&] {
    while (!b->m.try_lock()) std::this_thread::sleep_for(1ms);  // the waiter released it in wait()
    b->value = 1;
    b->cv.notify_all();
  }) == -SIGKILL);
  BOOST_TEST(wait_exit_code(waiter, 30s) == 0);
  BOOST_TEST(b->value == 100);
  BOOST_TEST((b->m.try_lock_robust() == procsync::lock_status::acquired));
  b->m.unlock();

  // A predicate wait reports it by exception, even though the dead holder made
  // the predicate true first: its data may be half-written.
  b->value = 0;
  b->waiting = 0;
  const pid_t waiter2 = fork_child([&] {
    std::unique_lock lk(b->m);
    b->waiting = 1;
    if (error_of([&] { b->cv.wait(lk, [&] { return b->value != 0; }); }) != procsync::errc::owner_dead) return 3;
    if (!b->m.inconsistent()) return 1;
    b->m.consistent();
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return b->waiting.load() == 1; }));
  BOOST_TEST(die_holding([&] {
    while (!b->m.try_lock()) std::this_thread::sleep_for(1ms);
    b->value = 1;
    b->cv.notify_one();
  }) == -SIGKILL);
  BOOST_TEST(wait_exit_code(waiter2, 30s) == 0);
}

BOOST_AUTO_TEST_CASE(predicate_wait_reports_a_holders_death_by_exception, *boost::unit_test::timeout(120)) {
  // The holder dies without making the predicate true. A predicate wait never
  // returns with pred() false, and must not unlock an inconsistent mutex to
  // wait again (that would poison it): it throws owner_dead, holding the mutex.
  auto b = procsync::make_anonymous<block>();
  const pid_t waiter = fork_child([&] {
    std::unique_lock lk(b->m);
    b->waiting = 1;
    if (error_of([&] { (void)b->cv.wait_for(lk, 20s, [&] { return b->value != 0; }); }) !=
        procsync::errc::owner_dead)
      return 1;
    if (!lk.owns_lock() || !b->m.owned_by_caller() || !b->m.inconsistent()) return 2;
    b->m.consistent();
    b->waiting = 2;
    if (error_of([&] { b->cv.wait(lk, [&] { return b->value != 0; }); }) != procsync::errc::owner_dead) return 3;
    if (!b->m.inconsistent()) return 4;
    b->m.consistent();
    return 0;
  });
  for (int round = 1; round <= 2; ++round) {
    BOOST_REQUIRE(eventually([&] { return b->waiting.load() == round; }));
    BOOST_TEST(die_holding([&] {  // dies holding it, value still 0
      while (!b->m.try_lock()) std::this_thread::sleep_for(1ms);
      b->cv.notify_all();
    }) == -SIGKILL);
  }
  BOOST_TEST(wait_exit_code(waiter, 30s) == 0);
  BOOST_TEST(!b->m.not_recoverable());
}

// With a mutex whose data a death cannot tear, std-style predicate waits just
// go on: they return only with the predicate true, and nothing is poisoned.
BOOST_AUTO_TEST_CASE(predicate_wait_on_a_nothing_to_repair_mutex_keeps_the_std_contract,
                     *boost::unit_test::timeout(120)) {
  struct std_block {
    procsync::mutex m{procsync::owner_death::nothing_to_repair};
    procsync::condition_variable cv;
    std::atomic<int> waiting{0};
    int value = 0;
  };
  auto b = procsync::make_anonymous<std_block>();
  const pid_t waiter = fork_child([&] {
    std::unique_lock lk(b->m);
    b->waiting = 1;
    b->cv.wait(lk, [&] { return b->value != 0; });
    return b->value == 42 && !b->m.inconsistent() ? 0 : 1;
  });
  BOOST_REQUIRE(eventually([&] { return b->waiting.load() == 1; }));
  BOOST_TEST(die_holding([&] {  // dies holding it, predicate still false
    while (!b->m.try_lock()) std::this_thread::sleep_for(1ms);
    b->cv.notify_all();
  }) == -SIGKILL);
  {
    std::lock_guard g(b->m);  // std code: never calls consistent()
    b->value = 42;
  }
  b->cv.notify_all();
  BOOST_TEST(wait_exit_code(waiter, 30s) == 0);
  BOOST_TEST(!b->m.not_recoverable());
}

BOOST_AUTO_TEST_CASE(poisoned_mutex_during_wait_throws_and_releases_lock, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  const pid_t waiter = fork_child([&] {
    std::unique_lock lk(b->m);
    b->waiting = 1;
    const auto e = error_of([&] { b->cv.wait(lk, [&] { return b->value != 0; }); });
    if (e != procsync::errc::not_recoverable) return 1;
    return lk.owns_lock() ? 2 : 0;  // the unique_lock no longer claims the mutex
  });
  BOOST_REQUIRE(eventually([&] { return b->waiting.load() == 1; }));
  BOOST_TEST(die_holding([&] {
    while (!b->m.try_lock()) std::this_thread::sleep_for(1ms);
  }) == -SIGKILL);
  // The parent takes it from the dead owner and poisons it, then notifies.
  BOOST_REQUIRE((b->m.try_lock_robust_for(30s) == procsync::lock_status::owner_died));
  b->value = 1;
  b->m.unlock();
  b->cv.notify_all();
  BOOST_TEST(wait_exit_code(waiter, 30s) == 0);
}

BOOST_AUTO_TEST_CASE(misuse_and_no_syscall_without_waiters, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  std::unique_lock lk(b->m, std::defer_lock);
  BOOST_TEST((error_of([&] { b->cv.wait(lk); }) == procsync::errc::not_owner));
  const auto before = procsync::detail::futex_syscalls.load();
  for (int i = 0; i < 10000; ++i) {
    b->cv.notify_one();
    b->cv.notify_all();
  }
  BOOST_TEST(procsync::detail::futex_syscalls.load() == before);
}

// notify_one releases exactly one waiter among those asleep before it: N
// waiters registered (counted under the mutex), the mutex free again (all of
// them unlocked it in wait), each asleep in a futex call, all decided by
// looking; one notify_one; exactly one returns, and each of the others is then
// seen to wake at least once (a re-arm slice), re-check, and sleep again, with
// no second return. Rounds: PROCSYNC_NOTIFY_ROUNDS (default 200, about 12 s:
// each round waits out a re-arm slice; the 300 s timeout allows about 4000,
// which is what a long run should ask for).
BOOST_AUTO_TEST_CASE(notify_one_releases_exactly_one_of_the_sleeping_waiters, *boost::unit_test::timeout(300)) {
  struct strict_block {
    procsync::mutex m;
    procsync::condition_variable cv;
    wake_probe::return_log log;
  };
  constexpr int waiters = 4;
  const char* env = std::getenv("PROCSYNC_NOTIFY_ROUNDS");
  const int rounds = env != nullptr ? std::atoi(env) : 200;
  int passed = 0;
  for (int round = 0; round < rounds; ++round) {
    auto b = procsync::make_anonymous<strict_block>();
    const auto r = wake_probe::notify_one_round(b->log, waiters, b->cv, [&] { return std::unique_lock(b->m); }, [&] {
      if (!b->m.try_lock()) return false;
      b->m.unlock();
      return true;
    });
    BOOST_REQUIRE_MESSAGE(r.broken.empty(), "round " << round << ": " << r.broken);
    BOOST_TEST(r.others_slept_again);
    BOOST_TEST(r.returned == 1, "round " << round << ": " << r.returned << " waiters returned for one notify_one");
    for (int code : r.others_codes) BOOST_TEST(code == 0);
    if (!r.exactly_one()) break;
    ++passed;
  }
  BOOST_TEST(passed == rounds);
  BOOST_TEST_MESSAGE("notify_one strict: " << passed << " of " << rounds << " rounds released exactly one waiter");
}

// notify_all() wakes every sleeping waiter by a wake call (a lost wake costs
// one 50 ms re-arm slice; wake_probe.hpp tells the two apart).
BOOST_AUTO_TEST_CASE(notify_all_wakes_sleepers_by_a_wake_call, *boost::unit_test::timeout(300)) {
  struct strict_block {
    procsync::mutex m;
    procsync::condition_variable cv;
  };
  wake_probe::tally t;
  for (int round = 0; round < 5; ++round) {
    auto a = procsync::make_anonymous<strict_block>();
    t += wake_probe::strict_wake_round(2, wake_probe::cv_waiter(a->cv, a->m), [&] { a->cv.notify_all(); });
  }
  BOOST_TEST(t.strict(), "notify_all() of 2 sleepers: " << t.str());
}
