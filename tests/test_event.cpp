#define BOOST_TEST_MODULE procsync event
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <procsync/event.hpp>
#include <procsync/segment.hpp>

#include "child.hpp"
#include "wake_probe.hpp"

using namespace procsync_test;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;
using mode = procsync::event::reset_mode;

namespace {

struct block {
  explicit block(mode m = mode::manual) : ev(m) {}
  procsync::event ev;
  std::atomic<int> started{0};
  std::atomic<int> woke{0};
  std::atomic<int> stop{0};
  std::atomic<int> ready{0};
};

}  // namespace

BOOST_AUTO_TEST_CASE(set_clear_is_set_and_timeouts, *boost::unit_test::timeout(60)) {
  procsync::event ev;
  BOOST_TEST((ev.mode() == mode::manual));
  BOOST_TEST(!ev.is_set());
  for (auto timeout : {1ms, 30ms}) {
    const auto t0 = clk::now();
    BOOST_TEST(!ev.wait_for(timeout));
    BOOST_TEST((clk::now() - t0 >= timeout));
  }
  const auto t0 = clk::now();
  BOOST_TEST(!ev.wait_until(std::chrono::system_clock::now() + 30ms));
  BOOST_TEST((clk::now() - t0 >= 29ms));
  BOOST_TEST(!ev.wait_for(-1ms));
  ev.set();
  BOOST_TEST(ev.is_set());
  BOOST_TEST(ev.wait_for(0ms));
  BOOST_TEST(ev.wait_for(1s));  // manual: stays set
  ev.wait();
  ev.set();  // idempotent
  BOOST_TEST(ev.is_set());
  ev.clear();
  BOOST_TEST(!ev.is_set());
  BOOST_TEST(!ev.wait_for(5ms));
  procsync::event initially(mode::manual, true);
  BOOST_TEST(initially.is_set());
  BOOST_TEST(sizeof(procsync::event) < 32u);
}

BOOST_AUTO_TEST_CASE(set_in_one_process_wakes_a_waiter_in_another_and_timeouts_cross_processes,
                     *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  const pid_t timed = fork_child([&] {
    const auto t0 = clk::now();
    const bool fired = b->ev.wait_for(50ms);
    return !fired && clk::now() - t0 >= 50ms ? 0 : 1;
  });
  BOOST_TEST(wait_exit_code(timed) == 0);
  const pid_t waiter = fork_child([&] {
    b->started = 1;
    return b->ev.wait_for(30s) ? 0 : 1;
  });
  // Asleep in the event's futex, seen by looking: set() has a sleeper to wake.
  BOOST_REQUIRE(eventually([&] { return b->started.load() == 1 && blocked_in_futex(waiter); }));
  b->ev.set();
  BOOST_TEST(wait_exit_code(waiter) == 0);
  // And the other way round: the child sets, a thread of the parent waits. The
  // setter goes only once that thread sleeps in the futex (seen from here: a
  // child may not read its parent's /proc/<pid>/syscall where ptrace is restricted).
  b->ev.clear();
  std::atomic<pid_t> tid{0};
  std::atomic<int> fired{-1};
  std::thread parent_waiter([&] {
    tid = ::gettid();
    fired = b->ev.wait_for(30s) ? 1 : 0;
  });
  const bool asleep = eventually([&] { return tid.load() != 0 && blocked_in_futex(::getpid(), tid.load()); });
  BOOST_TEST(asleep);
  const pid_t setter = fork_child([&] {
    b->ev.set();
    return 0;
  });
  BOOST_TEST(wait_exit_code(setter) == 0);
  parent_waiter.join();  // bounded: its wait_for ends within 30 s
  BOOST_TEST(fired.load() == 1);
}

BOOST_AUTO_TEST_CASE(manual_reset_set_wakes_all_waiters, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  constexpr int n = 5;
  std::vector<pid_t> kids;
  for (int i = 0; i < n; ++i)
    kids.push_back(fork_child([&] {
      b->started.fetch_add(1);
      if (!b->ev.wait_for(30s)) return 1;
      b->woke.fetch_add(1);
      return 0;
    }));
  BOOST_REQUIRE(wait_flag(b->started, n));
  BOOST_REQUIRE(eventually([&] { return all_blocked_in_futex(kids); }));
  BOOST_TEST(b->woke.load() == 0);
  b->ev.set();
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(b->woke.load() == n);
}

BOOST_AUTO_TEST_CASE(manual_set_then_clear_still_releases_those_waiting, *boost::unit_test::timeout(120)) {
  // Python's Event: waiters present at set() return true even if clear()
  // follows at once, before they run.
  auto b = procsync::make_anonymous<block>();
  constexpr int n = 3;
  std::vector<pid_t> kids;
  for (int i = 0; i < n; ++i)
    kids.push_back(fork_child([&] {
      b->started.fetch_add(1);
      return b->ev.wait_for(30s) ? 0 : 1;
    }));
  BOOST_REQUIRE(wait_flag(b->started, n));
  BOOST_REQUIRE(eventually([&] { return all_blocked_in_futex(kids); }));
  b->ev.set();
  b->ev.clear();
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(!b->ev.is_set());
}

BOOST_AUTO_TEST_CASE(auto_reset_releases_exactly_one_waiter_per_set, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>(mode::automatic);
  BOOST_TEST((b->ev.mode() == mode::automatic));
  constexpr int n = 4, sets = 8;
  std::vector<pid_t> kids;
  for (int i = 0; i < n; ++i)
    kids.push_back(fork_child([&] {
      b->started.fetch_add(1);
      while (!b->stop.load())
        if (b->ev.wait_for(20ms)) b->woke.fetch_add(1);
      return 0;
    }));
  BOOST_REQUIRE(wait_flag(b->started, n));
  for (int k = 1; k <= sets; ++k) {
    b->ev.set();
    BOOST_REQUIRE(wait_flag(b->woke, k));
    // A wrong second release shows once every waiter has looked at the event
    // again: each is seen to wake (its 20 ms timeout, or a wake-up), count a
    // release if it got one, and sleep in the futex again.
    const auto before = switch_counts(kids);
    BOOST_REQUIRE(eventually([&] { return all_slept_again(kids, before); }));
    BOOST_TEST(b->woke.load() == k);
    BOOST_TEST(!b->ev.is_set());  // the released waiter consumed it
  }
  b->stop = 1;
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(b->woke.load() == sets);
}

BOOST_AUTO_TEST_CASE(auto_reset_set_without_waiters_releases_the_next_wait_only, *boost::unit_test::timeout(120)) {
  procsync::event ev(mode::automatic);
  ev.set();
  ev.set();  // absorbed: events do not count
  BOOST_TEST(ev.is_set());
  BOOST_TEST(ev.wait_for(0ms));
  BOOST_TEST(!ev.is_set());
  BOOST_TEST(!ev.wait_for(10ms));
  auto b = procsync::make_anonymous<block>(mode::automatic);
  b->ev.set();
  const pid_t first = fork_child([&] { return b->ev.wait_for(30s) ? 0 : 1; });
  BOOST_TEST(wait_exit_code(first) == 0);
  const pid_t second = fork_child([&] { return b->ev.wait_for(50ms) ? 1 : 0; });
  BOOST_TEST(wait_exit_code(second) == 0);
}

namespace {
procsync::event* signal_event = nullptr;
void set_from_handler(int) { signal_event->set(); }
}  // namespace

BOOST_AUTO_TEST_CASE(set_from_a_signal_handler_wakes_another_process, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  const pid_t setter = fork_child([&]() -> int {
    signal_event = &b->ev;
    struct sigaction sa {};
    sa.sa_handler = set_from_handler;
    sigemptyset(&sa.sa_mask);
    if (::sigaction(SIGUSR1, &sa, nullptr) != 0) return 2;
    b->ready = 1;
    while (!b->ev.is_set()) ::pause();
    return 0;
  });
  const pid_t waiter = fork_child([&] {
    b->started = 1;
    return b->ev.wait_for(30s) ? 0 : 1;
  });
  BOOST_REQUIRE(wait_flag(b->ready, 1));
  BOOST_REQUIRE(wait_flag(b->started, 1));
  BOOST_REQUIRE(eventually([&] { return blocked_in_futex(waiter); }));
  BOOST_TEST(!b->ev.is_set());
  ::kill(setter, SIGUSR1);
  BOOST_TEST(wait_exit_code(waiter) == 0);
  BOOST_TEST(wait_exit_code(setter) == 0);
  BOOST_TEST(b->ev.is_set());
}

BOOST_AUTO_TEST_CASE(no_futex_syscall_without_waiters, *boost::unit_test::timeout(60)) {
  procsync::event manual;
  procsync::event automatic(mode::automatic);
  const auto before = procsync::detail::futex_syscalls.load();
  for (int i = 0; i < 10000; ++i) {
    manual.set();
    manual.wait();
    BOOST_REQUIRE(manual.wait_for(1s));
    manual.clear();
    automatic.set();
    BOOST_REQUIRE(automatic.wait_for(1s));
  }
  BOOST_TEST(procsync::detail::futex_syscalls.load() == before);
}

// A lost wake costs a waiter only one 50 ms re-arm slice, so "the waiter
// returned" proves nothing: each waiter reports how its last futex wait ended
// (wake_probe.hpp), and most must have been ended by set()'s wake call.
BOOST_AUTO_TEST_CASE(set_wakes_sleepers_by_a_wake_call_not_a_re_arm_slice, *boost::unit_test::timeout(300)) {
  struct strict_block {
    explicit strict_block(mode m) : ev(m) {}
    procsync::event ev;
  };
  wake_probe::tally manual, automatic;
  for (int round = 0; round < 5; ++round) {
    auto m = procsync::make_anonymous<strict_block>(mode::manual);
    manual += wake_probe::strict_wake_round(3, [&] { m->ev.wait(); return m->ev.is_set(); }, [&] { m->ev.set(); });
    auto a = procsync::make_anonymous<strict_block>(mode::automatic);
    automatic += wake_probe::strict_wake_round(1, [&] { a->ev.wait(); return !a->ev.is_set(); }, [&] { a->ev.set(); });
  }
  BOOST_TEST(manual.strict(), "manual set() of 3 sleepers: " << manual.str());
  BOOST_TEST(automatic.strict(), "automatic set() of 1 sleeper: " << automatic.str());
}

// A manual event set and cleared again while a waiter sleeps still releases
// that waiter (Python's Event: a wait() in progress returns once set() runs),
// not only a waiter that wakes while the flag is still up.
BOOST_AUTO_TEST_CASE(a_set_then_clear_during_a_manual_wait_releases_the_waiter, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  const pid_t kid = fork_child([&] {
    b->started = 1;
    b->ev.wait();  // no timeout: only the set() can end it
    return 0;
  });
  BOOST_REQUIRE(wait_flag(b->started, 1));
  BOOST_REQUIRE(eventually([&] { return blocked_in_futex(kid); }));
  b->ev.set();
  b->ev.clear();
  BOOST_TEST(wait_exit_code(kid, 20s) == 0, "the waiter is still asleep 20 s after set() and clear()");
}
