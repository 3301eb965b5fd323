#define BOOST_TEST_MODULE procsync barrier
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <procsync/barrier.hpp>
#include <procsync/segment.hpp>

#include "child.hpp"
#include "errors.hpp"

using namespace procsync_test;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

bool is_broken_error(procsync::errc e) { return e == procsync::errc::barrier_broken; }

constexpr int max_cycles = 300;
constexpr int max_procs = 8;

struct block {
  explicit block(std::size_t parties) : b(parties) {}
  procsync::barrier b;
  std::atomic<int> hits[max_cycles][max_procs] = {};
  std::atomic<int> done{0};
};

}  // namespace

BOOST_AUTO_TEST_CASE(indices_are_distinct_in_every_cycle) {
  constexpr int procs = 4, cycles = max_cycles;
  auto s = procsync::make_anonymous<block>(procs);
  BOOST_TEST(s->b.parties() == std::size_t(procs));
  std::vector<pid_t> kids;
  for (int i = 0; i < procs; ++i)
    kids.push_back(fork_child([&] {
      for (int c = 0; c < cycles; ++c) {
        const std::size_t index = s->b.wait();
        if (index >= std::size_t(procs)) return 1;
        s->hits[c][index].fetch_add(1);
        // Nobody may be in cycle c+1 before all of cycle c arrived.
        for (int j = 0; j < procs; ++j)
          if (c > 0 && s->hits[c - 1][j].load() != 1) return 2;
      }
      return 0;
    }));
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  int bad = 0;
  for (int c = 0; c < cycles; ++c)
    for (int j = 0; j < procs; ++j) bad += s->hits[c][j].load() != 1;
  BOOST_TEST(bad == 0);
  BOOST_TEST(!s->b.broken());
  BOOST_TEST(s->b.n_waiting() == 0u);
}

BOOST_AUTO_TEST_CASE(arrive_and_wait_cycles_and_one_party_barrier) {
  constexpr int procs = 3, cycles = 100;
  auto s = procsync::make_anonymous<block>(procs);
  std::vector<pid_t> kids;
  for (int i = 0; i < procs; ++i)
    kids.push_back(fork_child([&] {
      for (int c = 0; c < cycles; ++c) {
        s->hits[c][0].fetch_add(1);
        s->b.arrive_and_wait();
        if (s->hits[c][0].load() != procs) return 1;  // everyone arrived before anyone left
      }
      return 0;
    }));
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);

  procsync::barrier alone(1);
  for (int i = 0; i < 3; ++i) BOOST_TEST(alone.wait() == 0u);
  const auto before = procsync::detail::futex_syscalls.load();
  for (int i = 0; i < 1000; ++i) alone.arrive_and_wait();
  BOOST_TEST(procsync::detail::futex_syscalls.load() == before);  // no waiters, no syscall
}

BOOST_AUTO_TEST_CASE(invalid_party_counts_are_errors) {
  BOOST_TEST((error_of([] { procsync::barrier b(0); }) == procsync::errc::invalid_argument));
  BOOST_TEST((error_of([] { procsync::barrier b(procsync::barrier::max_parties + 1); }) ==
              procsync::errc::invalid_argument));
}

BOOST_AUTO_TEST_CASE(abort_breaks_waiters_and_later_waits_until_reset) {
  auto s = procsync::make_anonymous<block>(3);
  std::vector<pid_t> kids;
  for (int i = 0; i < 2; ++i)
    kids.push_back(fork_child([&] { return is_broken_error(error_of([&] { s->b.wait(); })) ? 0 : 1; }));
  BOOST_REQUIRE(eventually([&] { return s->b.n_waiting() == 2u; }));
  s->b.abort();
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(s->b.broken());
  BOOST_TEST(s->b.n_waiting() == 0u);
  BOOST_TEST(is_broken_error(error_of([&] { s->b.wait(); })));
  try {
    s->b.wait();
  } catch (const procsync::error& e) {
    BOOST_TEST(std::string(e.what()).find("aborted") != std::string::npos);
  }
  s->b.reset();
  BOOST_TEST(!s->b.broken());
  // Usable again: a full cycle of three.
  kids.clear();
  for (int i = 0; i < 2; ++i) kids.push_back(fork_child([&] { return s->b.wait() < 3 ? 0 : 1; }));
  BOOST_TEST(s->b.wait() < 3u);
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
}

BOOST_AUTO_TEST_CASE(reset_while_parties_wait_breaks_them_then_barrier_works) {
  auto s = procsync::make_anonymous<block>(3);
  std::vector<pid_t> kids;
  for (int i = 0; i < 2; ++i)
    kids.push_back(fork_child([&] { return is_broken_error(error_of([&] { s->b.wait(); })) ? 0 : 1; }));
  BOOST_REQUIRE(eventually([&] { return s->b.n_waiting() == 2u; }));
  s->b.reset();
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(!s->b.broken());
  BOOST_TEST(s->b.n_waiting() == 0u);
  kids.clear();
  for (int i = 0; i < 2; ++i) kids.push_back(fork_child([&] { return s->b.wait(30s) < 3 ? 0 : 1; }));
  BOOST_TEST(s->b.wait(30s) < 3u);
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
}

BOOST_AUTO_TEST_CASE(a_wait_timeout_breaks_the_barrier_never_early) {
  auto s = procsync::make_anonymous<block>(3);
  const pid_t other = fork_child([&] { return is_broken_error(error_of([&] { s->b.wait(); })) ? 0 : 1; });
  BOOST_REQUIRE(eventually([&] { return s->b.n_waiting() == 1u; }));
  const auto t0 = clk::now();
  BOOST_TEST(is_broken_error(error_of([&] { s->b.wait(60ms); })));
  BOOST_TEST((clk::now() - t0 >= 60ms));
  BOOST_TEST(wait_exit_code(other) == 0);
  BOOST_TEST(s->b.broken());
  BOOST_TEST(is_broken_error(error_of([&] { s->b.wait(); })));
  s->b.reset();

  // The constructor's default timeout applies to wait() without argument.
  procsync::barrier timed(2, 40ms);
  const auto t1 = clk::now();
  BOOST_TEST(is_broken_error(error_of([&] { timed.wait(); })));
  BOOST_TEST((clk::now() - t1 >= 40ms));
  BOOST_TEST(timed.broken());
}

BOOST_AUTO_TEST_CASE(a_party_killed_while_waiting_breaks_the_barrier) {
  auto s = procsync::make_anonymous<block>(3);
  const pid_t victim = fork_child([&] {
    (void)s->b.wait();
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return s->b.n_waiting() == 1u; }));
  const pid_t survivor = fork_child([&] { return is_broken_error(error_of([&] { s->b.wait(); })) ? 0 : 1; });
  BOOST_REQUIRE(eventually([&] { return s->b.n_waiting() == 2u; }));
  ::kill(victim, SIGKILL);
  BOOST_TEST(wait_exit_code(victim) == -SIGKILL);
  BOOST_TEST(wait_exit_code(survivor, 30s) == 0);  // no timeout of its own: liveness check
  BOOST_TEST(s->b.broken());
  try {
    s->b.wait();
    BOOST_FAIL("expected barrier_broken");
  } catch (const procsync::error& e) {
    BOOST_TEST(std::string(e.what()).find("a party died") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(a_party_dead_before_the_next_arrives_breaks_it_too) {
  auto s = procsync::make_anonymous<block>(3);
  const pid_t victim = fork_child([&] {
    (void)s->b.wait();
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return s->b.n_waiting() == 1u; }));
  ::kill(victim, SIGKILL);
  BOOST_TEST(wait_exit_code(victim) == -SIGKILL);
  const auto t0 = clk::now();
  BOOST_TEST(is_broken_error(error_of([&] { s->b.wait(30s); })));
  BOOST_TEST((clk::now() - t0 < 20s));
  BOOST_TEST(s->b.broken());
}

// The last party to arrive must not complete a cycle that counts a dead party,
// however quickly it comes after the death (before any neighbour's poll).
BOOST_AUTO_TEST_CASE(the_last_arrival_does_not_count_a_dead_party) {
  auto s = procsync::make_anonymous<block>(2);
  const pid_t victim = fork_child([&] {
    (void)s->b.wait();
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return s->b.n_waiting() == 1u; }));
  ::kill(victim, SIGKILL);
  BOOST_TEST(wait_exit_code(victim) == -SIGKILL);
  BOOST_TEST(is_broken_error(error_of([&] { s->b.wait(); })));
  BOOST_TEST(s->b.broken());
  s->b.reset();
  const pid_t partner = fork_child([&] { return s->b.wait() < 2 ? 0 : 1; });
  BOOST_TEST(s->b.wait(30s) < 2u);
  BOOST_TEST(wait_exit_code(partner) == 0);
}
