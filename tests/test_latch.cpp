#define BOOST_TEST_MODULE procsync latch
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <procsync/latch.hpp>
#include <procsync/segment.hpp>

#include "child.hpp"
#include "wake_probe.hpp"
#include "errors.hpp"

using namespace procsync_test;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

constexpr int max_procs = 8;

struct block {
  explicit block(std::ptrdiff_t n) : l(n) {}
  procsync::latch l;
  std::atomic<int> before[max_procs] = {};  // written before counting down
  std::atomic<int> ready{0};
  std::atomic<int> passed{0};
  std::atomic<int> waiter_pid[max_procs] = {};
};

bool broken_error(procsync::errc e) { return e == procsync::errc::barrier_broken; }

// Whether every process in `pids` sleeps in a futex call now (looked at, not slept on).
bool all_asleep(const std::vector<pid_t>& pids) {
  for (pid_t p : pids)
    if (!blocked_in_futex(p)) return false;
  return true;
}

constinit procsync::latch constinit_latch{2};

}  // namespace

// [thread.latch.class]: max() is the largest counter the implementation
// supports; the constructor is constexpr; a latch of 0 is open.
BOOST_AUTO_TEST_CASE(max_constexpr_and_zero_latch, *boost::unit_test::timeout(60)) {
  static_assert(procsync::latch::max() >= 0x7fffffff);
  static_assert([] {
    procsync::latch l{5};
    (void)l;
    return true;
  }());
  BOOST_TEST(constinit_latch.count() == 2);
  BOOST_TEST(!constinit_latch.try_wait());
  constinit_latch.count_down(2);
  BOOST_TEST(constinit_latch.try_wait());

  procsync::latch open{0};
  BOOST_TEST(open.try_wait());
  open.wait();  // returns at once
  BOOST_TEST(open.wait_for(0s));
  open.count_down(0);  // 0 <= update <= counter: allowed, no effect
  BOOST_TEST(open.try_wait());
}

// count_down(n) decrements by n; try_wait() is true exactly when the counter
// is zero; wait() returns once it is; arrive_and_wait(n) is count_down(n); wait().
BOOST_AUTO_TEST_CASE(count_down_try_wait_and_arrive_and_wait_with_threads, *boost::unit_test::timeout(60)) {
  procsync::latch l{5};
  BOOST_TEST(!l.try_wait());
  l.count_down();
  BOOST_TEST(l.count() == 4);
  l.count_down(2);
  BOOST_TEST(l.count() == 2);
  BOOST_TEST(!l.try_wait());
  BOOST_TEST(!l.wait_for(1ms));

  std::atomic<int> passed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&] {
      l.arrive_and_wait();
      passed.fetch_add(1);
    });
  for (auto& t : threads) t.join();
  BOOST_TEST(passed.load() == 2);
  BOOST_TEST(l.try_wait());
  BOOST_TEST(l.count() == 0);
  l.wait();
  BOOST_TEST(l.wait_until(clk::now() - 1h));  // open: true even with a past deadline
}

// Cross-process: the waiters block until the last count_down, and then see
// everything the counting processes wrote before counting down.
BOOST_AUTO_TEST_CASE(waiters_in_other_processes_released_by_the_last_count_down, *boost::unit_test::timeout(120)) {
  constexpr int counters = 4, waiters = 3;
  auto s = procsync::make_anonymous<block>(counters);
  std::vector<pid_t> waiting;
  for (int i = 0; i < waiters; ++i)
    waiting.push_back(fork_child([&] {
      s->l.wait();
      for (int j = 0; j < counters; ++j)
        if (s->before[j].load(std::memory_order_relaxed) != j + 1) return 1;
      s->passed.fetch_add(1);
      return 0;
    }));
  BOOST_REQUIRE(eventually([&] { return all_asleep(waiting); }));
  std::vector<pid_t> counting;
  for (int i = 0; i < counters - 1; ++i)
    counting.push_back(fork_child([&, i] {
      s->before[i].store(i + 1, std::memory_order_relaxed);
      s->l.count_down();
      return 0;
    }));
  for (pid_t k : counting) BOOST_TEST(wait_exit_code(k) == 0);
  // One count short: every waiter is still asleep, none passed.
  BOOST_TEST(s->l.count() == 1);
  BOOST_TEST(eventually([&] { return all_asleep(waiting); }));
  BOOST_TEST(s->passed.load() == 0);
  s->before[counters - 1].store(counters, std::memory_order_relaxed);
  s->l.count_down();
  for (pid_t k : waiting) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(s->passed.load() == waiters);
}

// arrive_and_wait across processes: nobody leaves before everyone arrived.
BOOST_AUTO_TEST_CASE(arrive_and_wait_across_processes, *boost::unit_test::timeout(120)) {
  constexpr int procs = 5;
  auto s = procsync::make_anonymous<block>(procs);
  std::vector<pid_t> kids;
  for (int i = 0; i < procs; ++i)
    kids.push_back(fork_child([&, i] {
      s->before[i].store(1);
      s->l.arrive_and_wait();
      for (int j = 0; j < procs; ++j)
        if (s->before[j].load() != 1) return 1;
      return 0;
    }));
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(s->l.try_wait());
}

BOOST_AUTO_TEST_CASE(bad_counts_are_errors_and_count_nothing, *boost::unit_test::timeout(60)) {
  BOOST_TEST((error_of([] { procsync::latch l(-1); }) == procsync::errc::invalid_argument));
  BOOST_TEST((error_of([] { procsync::latch l(procsync::latch::max() + 1); }) == procsync::errc::invalid_argument));
  procsync::latch l{3};
  std::string what;
  BOOST_TEST((error_of([&] { l.count_down(4); }, &what) == procsync::errc::invalid_argument));
  BOOST_TEST(what.find("current count 3") != std::string::npos);
  BOOST_TEST((error_of([&] { l.count_down(-1); }) == procsync::errc::invalid_argument));
  BOOST_TEST((error_of([&] { l.arrive_and_wait(4); }) == procsync::errc::invalid_argument));
  BOOST_TEST(l.count() == 3);
  l.count_down(3);
  BOOST_TEST((error_of([&] { l.count_down(); }) == procsync::errc::invalid_argument));  // already zero
  BOOST_TEST(l.try_wait());
}

BOOST_AUTO_TEST_CASE(timed_wait_times_out_never_early_and_changes_nothing, *boost::unit_test::timeout(60)) {
  procsync::latch l{1};
  for (auto timeout : {0ms, 1ms, 30ms}) {
    const auto start = clk::now();
    BOOST_TEST(!l.wait_for(timeout));
    BOOST_TEST((clk::now() - start >= timeout));
  }
  const auto deadline = std::chrono::system_clock::now() + 20ms;
  BOOST_TEST(!l.wait_until(deadline));
  BOOST_TEST((std::chrono::system_clock::now() >= deadline));
  BOOST_TEST(!l.broken());
  BOOST_TEST(l.count() == 1);
  BOOST_TEST(!l.wait_for(std::chrono::hours::min()));  // negative: "now", not forever
  l.count_down();
  BOOST_TEST(l.wait_for(std::chrono::hours::max()));  // "forever", not an overflow
}

BOOST_AUTO_TEST_CASE(no_futex_syscall_without_waiters, *boost::unit_test::timeout(60)) {
  procsync::latch l{1000};
  const auto before = procsync::detail::futex_syscalls.load();
  for (int i = 0; i < 1000; ++i) {
    BOOST_TEST(!l.try_wait());
    l.count_down();
  }
  l.wait();
  BOOST_TEST(procsync::detail::futex_syscalls.load() == before);
}

// Exact death: a party SIGKILLed before counting down never counts. The
// waiters stay asleep (confirmed by looking) until the supervisor, who sees the
// death, aborts the latch: then each waiter throws errc::barrier_broken, and
// so does every later wait and count_down. A timed waiter gets false instead.
BOOST_AUTO_TEST_CASE(a_party_killed_before_counting_down_then_abort_releases_waiters, *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<block>(3);
  std::vector<pid_t> waiting;
  for (int i = 0; i < 2; ++i)
    waiting.push_back(fork_child([&] { return broken_error(error_of([&] { s->l.wait(); })) ? 0 : 1; }));
  const pid_t timed = fork_child([&] { return s->l.wait_for(200ms) ? 1 : 0; });
  const pid_t doomed = fork_child([&]() -> int {
    s->ready.fetch_add(1);
    for (;;) ::pause();  // would count down later; killed first
  });
  const pid_t fine = fork_child([&] {
    s->l.count_down();
    return 0;
  });
  BOOST_TEST(wait_exit_code(fine) == 0);
  BOOST_REQUIRE(eventually([&] { return s->ready.load() == 1; }));
  ::kill(doomed, SIGKILL);
  BOOST_TEST(wait_exit_code(doomed) == -SIGKILL);
  BOOST_TEST(wait_exit_code(timed) == 0);  // the timed waiter's way out
  BOOST_TEST(s->l.count() == 2);
  BOOST_TEST(eventually([&] { return all_asleep(waiting); }));
  s->l.abort();
  BOOST_TEST(s->l.broken());
  for (pid_t k : waiting) BOOST_TEST(wait_exit_code(k) == 0);
  std::string what;
  BOOST_TEST(broken_error(error_of([&] { s->l.wait(); }, &what)));
  BOOST_TEST(what.find("aborted") != std::string::npos);
  BOOST_TEST(broken_error(error_of([&] { (void)s->l.wait_for(1s); })));
  BOOST_TEST(broken_error(error_of([&] { s->l.count_down(); })));
  BOOST_TEST(broken_error(error_of([&] { s->l.arrive_and_wait(); })));
  BOOST_TEST(!s->l.try_wait());
  BOOST_TEST(s->l.count() == 2);  // nothing was counted by the failed calls
}

// A waiter SIGKILLed while asleep breaks nothing: the others are released.
BOOST_AUTO_TEST_CASE(a_waiter_killed_while_waiting_breaks_nothing, *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<block>(1);
  const pid_t victim = fork_child([&] {
    s->l.wait();
    return 0;
  });
  std::vector<pid_t> waiting;
  for (int i = 0; i < 2; ++i)
    waiting.push_back(fork_child([&] {
      s->l.wait();
      return 0;
    }));
  BOOST_REQUIRE(eventually([&] { return all_asleep(waiting) && blocked_in_futex(victim); }));
  ::kill(victim, SIGKILL);
  BOOST_TEST(wait_exit_code(victim) == -SIGKILL);
  s->l.count_down();
  for (pid_t k : waiting) BOOST_TEST(wait_exit_code(k) == 0);
  s->l.abort();  // open: no effect
  BOOST_TEST(!s->l.broken());
  BOOST_TEST(s->l.try_wait());
}

// A latch opened in a named segment by an unrelated-looking process (after exec
// semantics are not needed: a second mapping is enough).
BOOST_AUTO_TEST_CASE(named_segment_latch, *boost::unit_test::timeout(120)) {
  const std::string name = unique_name("latch");
  procsync::named_segment seg(procsync::create_only, name, 1 << 16);
  auto& l = seg.construct<procsync::latch>("start", 2);
  const pid_t kid = fork_child([&] {
    procsync::named_segment mine(procsync::open_only, name);
    mine.find<procsync::latch>("start").arrive_and_wait();
    return 0;
  });
  l.arrive_and_wait();
  BOOST_TEST(wait_exit_code(kid) == 0);
  procsync::named_segment::remove(name);
}

// The last count_down() and abort() wake sleeping waiters by a wake call, not
// by their 50 ms re-arm slice (wake_probe.hpp).
BOOST_AUTO_TEST_CASE(count_down_and_abort_wake_sleepers_by_a_wake_call, *boost::unit_test::timeout(300)) {
  struct strict_block {
    procsync::latch l{2};
  };
  wake_probe::tally opened, aborted;
  for (int round = 0; round < 5; ++round) {
    auto a = procsync::make_anonymous<strict_block>();
    a->l.count_down();
    opened += wake_probe::strict_wake_round(2, [&] { a->l.wait(); return a->l.try_wait(); }, [&] { a->l.count_down(); });
    auto b = procsync::make_anonymous<strict_block>();
    aborted += wake_probe::strict_wake_round(2, [&] {
      try {
        b->l.wait();
      } catch (const procsync::error& e) {
        return e.code() == procsync::errc::barrier_broken;
      }
      return false;
    }, [&] { b->l.abort(); });
  }
  BOOST_TEST(opened.strict(), "last count_down(), 2 sleepers: " << opened.str());
  BOOST_TEST(aborted.strict(), "abort(), 2 sleepers: " << aborted.str());
}
