#define BOOST_TEST_MODULE procsync semaphore
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include <procsync/semaphore.hpp>
#include <procsync/segment.hpp>

#include "child.hpp"
#include "wake_probe.hpp"
#include "errors.hpp"

using namespace procsync_test;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

template <class Sem>
struct occupancy_block {
  template <class... A>
  explicit occupancy_block(A... a) : sem(a...) {}
  Sem sem;
  std::atomic<int> inside{0};
  std::atomic<int> max_inside{0};
  std::atomic<long> passes{0};
  std::atomic<int> go{0};
};

// N processes hammer a semaphore of `permits`; never more than `permits` inside.
template <class Sem, class... A>
void check_occupancy(int permits, int procs, int iters, A... ctor_args) {
  auto b = procsync::make_anonymous<occupancy_block<Sem>>(ctor_args...);
  std::vector<pid_t> kids;
  // First: `permits` processes can all be inside at once (a semaphore that
  // admits one at a time must fail here, not pass the checks below).
  for (int i = 0; i < permits; ++i)
    kids.push_back(fork_child([&] {
      b->sem.acquire();
      b->inside.fetch_add(1);
      const bool all = eventually([&] { return b->inside.load() == permits; });
      b->go.fetch_add(1);
      while (b->go.load() < permits) std::this_thread::yield();
      b->inside.fetch_sub(1);
      b->sem.release();
      return all ? 0 : 1;
    }));
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0, "all " << permits << " permits held at once");
  kids.clear();
  b->go.store(0);
  for (int i = 0; i < procs; ++i)
    kids.push_back(fork_child([&] {
      b->go.fetch_add(1);
      while (b->go.load() < procs) std::this_thread::yield();
      for (int j = 0; j < iters; ++j) {
        b->sem.acquire();
        const int now = b->inside.fetch_add(1) + 1;
        int seen = b->max_inside.load();
        while (now > seen && !b->max_inside.compare_exchange_weak(seen, now)) {
        }
        if (j % 64 == 0) std::this_thread::yield();  // let others pile up inside
        b->inside.fetch_sub(1);
        b->passes.fetch_add(1);
        b->sem.release();
      }
      return 0;
    }));
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(b->passes.load() == long(procs) * iters);
  BOOST_TEST(b->max_inside.load() <= permits);
  BOOST_TEST(b->inside.load() == 0);
  BOOST_TEST(b->sem.value() == permits);
  BOOST_TEST_MESSAGE("most processes inside at once: " << b->max_inside.load() << " of " << permits);
}

}  // namespace

BOOST_AUTO_TEST_CASE(never_more_than_the_permits_inside_and_counts_exact, *boost::unit_test::timeout(120)) {
  check_occupancy<procsync::counting_semaphore<3>>(3, 6, 3000, 3);
}

BOOST_AUTO_TEST_CASE(binary_semaphore_is_mutual_exclusion, *boost::unit_test::timeout(120)) {
  check_occupancy<procsync::binary_semaphore>(1, 4, 3000, 1);
}

BOOST_AUTO_TEST_CASE(undo_mode_never_more_than_the_permits_inside, *boost::unit_test::timeout(120)) {
  check_occupancy<procsync::undo_semaphore<2, 8>>(2, 4, 1500, procsync::undo, 2);
}

BOOST_AUTO_TEST_CASE(release_in_one_process_wakes_acquirer_in_another, *boost::unit_test::timeout(120)) {
  struct block {
    procsync::counting_semaphore<> sem{0};
    std::atomic<int> started{0};
  };
  auto b = procsync::make_anonymous<block>();
  std::vector<pid_t> kids;
  for (int i = 0; i < 3; ++i)
    kids.push_back(fork_child([&] {
      b->started.fetch_add(1);
      b->sem.acquire();  // no timeout: wait_exit_code's watchdog ends a hang
      return 0;
    }));
  BOOST_REQUIRE(wait_flag(b->started, 3));
  // Asleep, seen by looking: the case of a release that must wake sleepers.
  BOOST_REQUIRE(eventually([&] { return all_blocked_in_futex(kids); }));
  b->sem.release(3);
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(b->sem.value() == 0);
}

BOOST_AUTO_TEST_CASE(try_acquire_for_times_out_never_early, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<procsync::counting_semaphore<4>>(0);
  BOOST_TEST(!b->try_acquire());
  for (auto timeout : {1ms, 20ms, 60ms}) {
    const auto t0 = clk::now();
    BOOST_TEST(!b->try_acquire_for(timeout));
    const auto took = clk::now() - t0;
    BOOST_TEST((took >= timeout));
    BOOST_TEST((took < timeout + 30s));  // a watchdog, not a timing: only a near-hang trips it
  }
  const auto t0 = clk::now();
  BOOST_TEST(!b->try_acquire_until(std::chrono::system_clock::now() + 30ms));
  BOOST_TEST((clk::now() - t0 >= 29ms));  // converted once; clock granularity aside, not early
  BOOST_TEST(!b->try_acquire_for(-5ms));
  b->release();
  BOOST_TEST(b->try_acquire_for(0ms));
}

BOOST_AUTO_TEST_CASE(release_past_max_throws_overflow_and_changes_nothing, *boost::unit_test::timeout(120)) {
  procsync::counting_semaphore<2> s(1);
  BOOST_TEST(s.max() == 2);
  s.release();
  BOOST_TEST((error_of([&] { s.release(); }) == procsync::errc::semaphore_overflow));
  BOOST_TEST(s.value() == 2);
  BOOST_TEST(!s.try_release());
  BOOST_TEST(s.value() == 2);
  BOOST_TEST(s.try_acquire());
  BOOST_TEST((error_of([&] { s.release(2); }) == procsync::errc::semaphore_overflow));
  BOOST_TEST(s.value() == 1);
  BOOST_TEST(s.try_release(1));
  BOOST_TEST(s.value() == 2);
  try {
    s.release();
    BOOST_FAIL("expected an overflow");
  } catch (const procsync::error& e) {
    BOOST_TEST(std::string(e.what()).find("released too many times") != std::string::npos);
  }

  procsync::binary_semaphore bin(0);
  bin.release();
  BOOST_TEST((error_of([&] { bin.release(); }) == procsync::errc::semaphore_overflow));
  BOOST_TEST((error_of([&] { bin.release(-1); }) == procsync::errc::invalid_argument));
  BOOST_TEST(!bin.try_release(-1));
  BOOST_TEST((error_of([] { procsync::binary_semaphore bad(2); }) == procsync::errc::invalid_argument));
  BOOST_TEST((error_of([] { procsync::counting_semaphore<> bad(-1); }) == procsync::errc::invalid_argument));

  // The default max is the largest 32-bit count, and it does not wrap either.
  procsync::counting_semaphore<> big(procsync::counting_semaphore<>::max());
  BOOST_TEST((error_of([&] { big.release(); }) == procsync::errc::semaphore_overflow));
  BOOST_TEST(big.value() == procsync::counting_semaphore<>::max());
}

BOOST_AUTO_TEST_CASE(kind_name_encodes_max_and_undo_capacity) {
  BOOST_TEST(procsync::counting_semaphore<4>::kind_name() != procsync::counting_semaphore<8>::kind_name());
  BOOST_TEST(procsync::binary_semaphore::kind_name() == "procsync::counting_semaphore<1>");
  BOOST_TEST((procsync::undo_semaphore<4, 8>::kind_name() != procsync::counting_semaphore<4>::kind_name()));
  BOOST_TEST(sizeof(procsync::counting_semaphore<>) < 32u);
}

namespace {
procsync::counting_semaphore<8>* signal_sem = nullptr;
std::atomic<int> handler_result{-1};
void post_from_handler(int) { handler_result.store(signal_sem->try_release() ? 1 : 0); }
}  // namespace

BOOST_AUTO_TEST_CASE(try_release_from_a_signal_handler_wakes_another_process, *boost::unit_test::timeout(120)) {
  struct block {
    procsync::counting_semaphore<8> sem{0};
    std::atomic<int> poster_ready{0};
    std::atomic<int> waiter_started{0};
    std::atomic<int> handled{0};
  };
  auto b = procsync::make_anonymous<block>();
  const pid_t poster = fork_child([&]() -> int {
    signal_sem = &b->sem;
    struct sigaction sa {};
    sa.sa_handler = post_from_handler;
    sigemptyset(&sa.sa_mask);
    if (::sigaction(SIGUSR1, &sa, nullptr) != 0) return 2;
    b->poster_ready = 1;
    for (;;) {
      ::pause();
      if (handler_result.load() >= 0) {
        b->handled = handler_result.load() == 1 ? 1 : 2;
        handler_result = -1;
      }
    }
  });
  const pid_t waiter = fork_child([&] {
    b->waiter_started = 1;
    return b->sem.try_acquire_for(30s) ? 0 : 1;
  });
  BOOST_REQUIRE(wait_flag(b->poster_ready, 1));
  BOOST_REQUIRE(wait_flag(b->waiter_started, 1));
  // The release from the handler must wake a sleeper: asleep, seen by looking.
  BOOST_REQUIRE(eventually([&] { return blocked_in_futex(waiter); }));
  ::kill(poster, SIGUSR1);
  BOOST_TEST(wait_exit_code(waiter) == 0);
  BOOST_TEST(wait_flag(b->handled, 1));
  BOOST_TEST(b->handled.load() == 1);
  ::kill(poster, SIGKILL);
  BOOST_TEST(wait_exit_code(poster) == -SIGKILL);
  BOOST_TEST(b->sem.value() == 0);
}

BOOST_AUTO_TEST_CASE(no_futex_syscall_without_waiters, *boost::unit_test::timeout(120)) {
  procsync::counting_semaphore<> s(2);
  procsync::undo_semaphore<2, 4> u(procsync::undo, 2);
  const auto before = procsync::detail::futex_syscalls.load();
  for (int i = 0; i < 10000; ++i) {
    s.acquire();
    BOOST_REQUIRE(s.try_acquire());
    s.release(2);
    BOOST_REQUIRE(s.try_acquire_for(1s));
    BOOST_REQUIRE(s.try_release());
    u.acquire();
    u.release();
  }
  BOOST_TEST(u.try_acquire_for(0ms));
  u.release();
  BOOST_TEST(procsync::detail::futex_syscalls.load() == before);
}

namespace {
template <class Sem>
struct holder_block {
  template <class... A>
  explicit holder_block(A... a) : sem(a...) {}
  Sem sem;
  std::atomic<int> holding{0};
};
}  // namespace

BOOST_AUTO_TEST_CASE(undo_mode_returns_a_killed_holders_permits, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<holder_block<procsync::undo_semaphore<3, 4>>>(procsync::undo, 3);
  BOOST_TEST(b->sem.undo_enabled());
  const pid_t holder = fork_child([&]() -> int {
    b->sem.acquire();
    b->sem.acquire();
    if (b->sem.held_by_current_process() != 2) return 3;
    b->holding = 1;
    for (;;) ::pause();
  });
  BOOST_REQUIRE(wait_flag(b->holding, 1));
  BOOST_TEST(b->sem.value() == 1);
  BOOST_TEST(b->sem.try_acquire());  // the last free permit; the parent holds it
  BOOST_TEST(!b->sem.try_acquire());
  BOOST_TEST(b->sem.held_by_current_process() == 1);
  // A waiter already blocked when the holder dies gets a permit ("already
  // blocked": seen asleep in the futex between its liveness looks).
  const pid_t waiter = fork_child([&] { return b->sem.try_acquire_for(30s) ? 0 : 1; });
  BOOST_REQUIRE(eventually([&] { return blocked_in_futex(waiter); }));
  ::kill(holder, SIGKILL);
  BOOST_TEST(wait_exit_code(holder) == -SIGKILL);
  BOOST_TEST(wait_exit_code(waiter) == 0);
  // The waiter took one of the two and then exited holding it (not killed, but
  // gone without releasing: also given back). Exactly once: all 3 return.
  BOOST_TEST(eventually([&] {
    (void)b->sem.reclaim_dead_holders();
    return b->sem.value() == 2;
  }, 10s));
  BOOST_TEST(b->sem.reclaim_dead_holders() == 0);
  b->sem.release();
  BOOST_TEST(b->sem.value() == 3);
  BOOST_TEST(b->sem.held_by_current_process() == 0);
  BOOST_TEST((error_of([&] { b->sem.release(); }) == procsync::errc::semaphore_overflow));
}

BOOST_AUTO_TEST_CASE(without_undo_a_killed_holders_permits_stay_taken, *boost::unit_test::timeout(120)) {
  auto plain = procsync::make_anonymous<holder_block<procsync::counting_semaphore<2>>>(2);
  // An undo-capable type constructed without the tag behaves the same.
  auto untagged = procsync::make_anonymous<holder_block<procsync::undo_semaphore<2, 4>>>(2);
  BOOST_TEST(!untagged->sem.undo_enabled());
  BOOST_REQUIRE(die_holding([&] {
    plain->sem.acquire();
    plain->sem.acquire();
    untagged->sem.acquire();
    untagged->sem.acquire();
  }) == -SIGKILL);
  BOOST_TEST(!plain->sem.try_acquire_for(100ms));
  BOOST_TEST(!untagged->sem.try_acquire_for(100ms));
  BOOST_TEST(untagged->sem.reclaim_dead_holders() == 0);
  BOOST_TEST(plain->sem.value() == 0);
  BOOST_TEST(untagged->sem.value() == 0);
}

BOOST_AUTO_TEST_CASE(undo_mode_gives_permits_back_exactly_once_under_random_kills, *boost::unit_test::timeout(300)) {
  // Workers acquire and release in a loop while being SIGKILLed at random
  // instants (some inside the bookkeeping); when all are dead, every permit is
  // back: none lost, none counted twice.
  struct block {
    procsync::undo_semaphore<3, 16> sem{procsync::undo, 3};
    std::atomic<long> rounds{0};
  };
  auto b = procsync::make_anonymous<block>();
  auto worker = [&] {
    return fork_child([&]() -> int {
      for (;;) {
        if (!b->sem.try_acquire_for(20s)) return 1;
        if (b->sem.try_acquire()) b->sem.release();
        b->rounds.fetch_add(1);
        b->sem.release();
      }
    });
  };
  std::vector<pid_t> kids;
  for (int i = 0; i < 4; ++i) kids.push_back(worker());
  std::mt19937 rng(12345);
  for (int kill_no = 0; kill_no < 40; ++kill_no) {
    // The behaviour under test: a kill at a random instant, not a sequencing step.
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 20000));
    const std::size_t victim = rng() % kids.size();
    ::kill(kids[victim], SIGKILL);
    BOOST_TEST(wait_exit_code(kids[victim]) == -SIGKILL);
    kids[victim] = worker();
  }
  for (pid_t k : kids) {
    ::kill(k, SIGKILL);
    BOOST_TEST(wait_exit_code(k) == -SIGKILL);
  }
  (void)b->sem.reclaim_dead_holders();
  BOOST_TEST(b->sem.value() == 3);
  BOOST_TEST(b->rounds.load() > 0);
  BOOST_TEST_MESSAGE("rounds completed between kills: " << b->rounds.load());
  for (int i = 0; i < 3; ++i) BOOST_TEST(b->sem.try_acquire());
  BOOST_TEST(!b->sem.try_acquire());
  b->sem.release(3);
}

BOOST_AUTO_TEST_CASE(undo_slots_exhausted_is_an_error_and_takes_nothing, *boost::unit_test::timeout(120)) {
  struct block {
    procsync::undo_semaphore<10, 2> sem{procsync::undo, 10};
    std::atomic<int> holding{0};
  };
  auto b = procsync::make_anonymous<block>();
  std::vector<pid_t> holders;
  for (int i = 0; i < 2; ++i)
    holders.push_back(fork_child([&]() -> int {
      b->sem.acquire();
      b->holding.fetch_add(1);
      for (;;) ::pause();
    }));
  BOOST_REQUIRE(wait_flag(b->holding, 2));
  BOOST_TEST((error_of([&] { b->sem.acquire(); }) == procsync::errc::undo_slots_exhausted));
  BOOST_TEST(b->sem.value() == 8);
  // A dead holder's slot is reused.
  ::kill(holders[0], SIGKILL);
  BOOST_TEST(wait_exit_code(holders[0]) == -SIGKILL);
  BOOST_TEST(b->sem.try_acquire());
  BOOST_TEST(b->sem.value() == 8);  // 9 after reclaiming, minus ours
  b->sem.release();
  ::kill(holders[1], SIGKILL);
  BOOST_TEST(wait_exit_code(holders[1]) == -SIGKILL);
  BOOST_TEST(b->sem.reclaim_dead_holders() == 1);
  BOOST_TEST(b->sem.value() == 10);
}

// [thread.sema.cnt]: the constructor is constexpr, so a semaphore may be
// constant-initialized (constinit), with no static-initialization order issue.
namespace {
constinit procsync::counting_semaphore<5> constinit_sem{3};
constinit procsync::binary_semaphore constinit_binary{0};
constinit procsync::undo_semaphore<4, 2> constinit_undo{procsync::undo, 4};
static_assert([] {
  procsync::counting_semaphore<7> s{7};
  return s.max() == 7;
}());
}  // namespace

BOOST_AUTO_TEST_CASE(constexpr_constructor_allows_constinit_and_still_checks_at_run_time) {
  BOOST_TEST(constinit_sem.value() == 3);
  BOOST_TEST(constinit_sem.try_acquire());
  BOOST_TEST(constinit_sem.value() == 2);
  constinit_sem.release();
  BOOST_TEST(constinit_binary.value() == 0);
  BOOST_TEST(!constinit_binary.try_acquire());
  constinit_binary.release();
  BOOST_TEST(constinit_binary.try_acquire());
  BOOST_TEST(constinit_undo.undo_enabled());
  BOOST_TEST(constinit_undo.value() == 4);
  // Out of range at run time: still a clear error, not undefined behaviour.
  volatile std::ptrdiff_t too_many = 6, negative = -1;
  BOOST_TEST((error_of([&] { procsync::counting_semaphore<5> s{too_many}; }) == procsync::errc::invalid_argument));
  BOOST_TEST((error_of([&] { procsync::counting_semaphore<5> s{negative}; }) == procsync::errc::invalid_argument));
}

// A lost wake costs one 50 ms re-arm slice: the waiters report how their last
// futex wait ended (wake_probe.hpp); release(n) must wake n sleepers by a call.
BOOST_AUTO_TEST_CASE(release_wakes_sleeping_acquirers_by_a_wake_call, *boost::unit_test::timeout(300)) {
  struct strict_block {
    procsync::counting_semaphore<> sem{0};
  };
  wake_probe::tally one, three;
  for (int round = 0; round < 5; ++round) {
    auto a = procsync::make_anonymous<strict_block>();
    one += wake_probe::strict_wake_round(1, [&] { a->sem.acquire(); return true; }, [&] { a->sem.release(); });
    auto b = procsync::make_anonymous<strict_block>();
    three += wake_probe::strict_wake_round(3, [&] { b->sem.acquire(); return true; }, [&] { b->sem.release(3); });
    BOOST_TEST(b->sem.value() == 0);
  }
  BOOST_TEST(one.strict(), "release() of 1 sleeper: " << one.str());
  BOOST_TEST(three.strict(), "release(3) of 3 sleepers: " << three.str());
}
