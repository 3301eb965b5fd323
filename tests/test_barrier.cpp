#define BOOST_TEST_MODULE procsync barrier
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <chrono>
#include <thread>
#include <vector>

#include <procsync/barrier.hpp>
#include <procsync/segment.hpp>

#include "child.hpp"
#include "wake_probe.hpp"
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

/// A party that dies waiting: the first to wait at `b`, SIGKILLed once the
/// barrier counts it (die_holding's code: -SIGKILL then). Its wait returning
/// instead is a failure (exit code 1).
int die_waiting(procsync::barrier& b) {
  return die_holding([&] {
    (void)b.wait();
    return 1;
  }, [&] { return b.n_waiting() == 1u; });
}

}  // namespace

BOOST_AUTO_TEST_CASE(indices_are_distinct_in_every_cycle, *boost::unit_test::timeout(300)) {
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

BOOST_AUTO_TEST_CASE(arrive_and_wait_cycles_and_one_party_barrier, *boost::unit_test::timeout(120)) {
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

BOOST_AUTO_TEST_CASE(abort_breaks_waiters_and_later_waits_until_reset, *boost::unit_test::timeout(120)) {
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

BOOST_AUTO_TEST_CASE(reset_while_parties_wait_breaks_them_then_barrier_works, *boost::unit_test::timeout(120)) {
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

BOOST_AUTO_TEST_CASE(a_wait_timeout_breaks_the_barrier_never_early, *boost::unit_test::timeout(120)) {
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

BOOST_AUTO_TEST_CASE(a_party_killed_while_waiting_breaks_the_barrier, *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<block>(3);
  const pid_t victim = fork_child([&] {
    (void)s->b.wait();
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return s->b.n_waiting() == 1u && blocked_in_futex(victim); }));  // asleep, seen
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

BOOST_AUTO_TEST_CASE(a_party_dead_before_the_next_arrives_breaks_it_too, *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<block>(3);
  BOOST_REQUIRE(die_waiting(s->b) == -SIGKILL);
  // Broken because the party died, not by this wait's own 30 s timeout: told
  // apart by the reason, not by the time it took.
  std::string what;
  BOOST_TEST(is_broken_error(error_of([&] { s->b.wait(30s); }, &what)));
  BOOST_TEST(what.find("a party died") != std::string::npos, what);
  BOOST_TEST(s->b.broken());
}

// The last party to arrive must not complete a cycle that counts a dead party,
// however quickly it comes after the death (before any neighbour's poll).
BOOST_AUTO_TEST_CASE(the_last_arrival_does_not_count_a_dead_party, *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<block>(2);
  BOOST_REQUIRE(die_waiting(s->b) == -SIGKILL);
  BOOST_TEST(is_broken_error(error_of([&] { s->b.wait(); })));
  BOOST_TEST(s->b.broken());
  s->b.reset();
  const pid_t partner = fork_child([&] { return s->b.wait() < 2 ? 0 : 1; });
  BOOST_TEST(s->b.wait(30s) < 2u);
  BOOST_TEST(wait_exit_code(partner) == 0);
}

// ---------------------------------------------------------------------------
// std::barrier's shape ([thread.barrier.class]), across processes and threads.

namespace {

// A completion function whose state lives in the barrier (shared memory).
struct phase_log {
  static constexpr const char* kind_name = "test::phase_log";
  int calls = 0;
  int ran_in_pid = 0;
  int die_in_call = -1;    // SIGKILL the running process in this call
  int throw_in_call = -1;  // throw in this call
  int seen_arrivals[64] = {};
  void operator()() {
    const int call = calls++;
    ran_in_pid = ::getpid();
    if (call == die_in_call) ::raise(SIGKILL);
    if (call == throw_in_call) throw std::runtime_error("completion failed on purpose");
  }
};

struct std_block {
  explicit std_block(std::ptrdiff_t n) : b(n) {}
  procsync::basic_barrier<phase_log> b;
  std::atomic<int> arrived[max_cycles] = {};
  std::atomic<int> ready{0};
  std::atomic<int> result{0};
};

constinit procsync::barrier constinit_barrier{2};

bool all_asleep(const std::vector<pid_t>& pids) {
  for (pid_t p : pids)
    if (!blocked_in_futex(p)) return false;
  return true;
}

}  // namespace

BOOST_AUTO_TEST_CASE(std_shape_max_constexpr_and_kind_names) {
  static_assert(procsync::barrier::max() >= 100000);
  static_assert(std::is_same_v<procsync::barrier, procsync::basic_barrier<procsync::no_completion>>);
  BOOST_TEST(constinit_barrier.parties() == 2u);
  BOOST_TEST(procsync::barrier::kind_name() == "procsync::barrier");
  BOOST_TEST(procsync::basic_barrier<phase_log>::kind_name().rfind("procsync::basic_barrier<test::phase_log", 0) == 0u);
  BOOST_TEST((error_of([] { procsync::barrier b(-1); }) == procsync::errc::invalid_argument));
  BOOST_TEST((error_of([] { procsync::barrier b(procsync::barrier::max() + 1); }) ==
              procsync::errc::invalid_argument));
  procsync::barrier big(procsync::barrier::max());
  BOOST_TEST(big.parties() == std::size_t(procsync::barrier::max()));
}

// The completion runs once per phase, in the last arriver's process, before
// any party of the phase is unblocked; its state is in the shared barrier.
BOOST_AUTO_TEST_CASE(completion_runs_once_per_phase_before_anyone_leaves, *boost::unit_test::timeout(120)) {
  constexpr int procs = 4, cycles = 50;
  auto s = procsync::make_anonymous<std_block>(procs);
  std::vector<pid_t> kids;
  for (int i = 0; i < procs; ++i)
    kids.push_back(fork_child([&] {
      for (int c = 0; c < cycles; ++c) {
        s->b.arrive_and_wait();
        // Ran before we were unblocked, and the next phase cannot complete without us.
        if (s->b.completion().calls != c + 1) return 1;
      }
      return 0;
    }));
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(s->b.completion().calls == cycles);
  bool ran_in_a_party = false;
  for (pid_t k : kids) ran_in_a_party |= s->b.completion().ran_in_pid == k;
  BOOST_TEST(ran_in_a_party);
}

// arrive() does not block and returns a token; wait(token) blocks until that
// phase completes; the phase completes only when every expected arrival came.
BOOST_AUTO_TEST_CASE(arrive_returns_a_token_and_wait_blocks_until_the_phase_completes,
                     *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<std_block>(3);
  auto token = s->b.arrive();  // does not block
  BOOST_TEST(s->b.n_waiting() == 1u);
  const pid_t waiter = fork_child([&] {
    auto t = s->b.arrive();
    s->ready = 1;
    s->b.wait(std::move(t));
    return s->b.completion().calls == 1 ? 0 : 1;
  });
  BOOST_REQUIRE(eventually([&] { return s->ready.load() == 1 && blocked_in_futex(waiter); }));
  BOOST_TEST(s->b.completion().calls == 0);
  const pid_t last = fork_child([&] {
    s->b.arrive_and_wait();  // completes the phase
    return 0;
  });
  BOOST_TEST(wait_exit_code(last) == 0);
  BOOST_TEST(wait_exit_code(waiter) == 0);
  s->b.wait(std::move(token));  // its phase completed: returns at once
  BOOST_TEST(s->b.completion().calls == 1);
  BOOST_TEST(s->b.n_waiting() == 0u);

  // arrive(n): one caller counts for n parties; n beyond what the phase
  // still expects (or n < 1) is an error and arrives not at all.
  BOOST_TEST((error_of([&] { (void)s->b.arrive(4); }) == procsync::errc::invalid_argument));
  BOOST_TEST((error_of([&] { (void)s->b.arrive(0); }) == procsync::errc::invalid_argument));
  auto two = s->b.arrive(2);
  BOOST_TEST(s->b.n_waiting() == 2u);
  BOOST_TEST((error_of([&] { (void)s->b.arrive(2); }) == procsync::errc::invalid_argument));
  auto one = s->b.arrive(1);  // completes phase 2 here, in this process
  BOOST_TEST(s->b.completion().calls == 2);
  BOOST_TEST(s->b.completion().ran_in_pid == ::getpid());
  s->b.wait(std::move(two));
  s->b.wait(std::move(one));
}

// arrive_and_drop() arrives in the current phase and lowers the expected
// count of the later phases by one; the dropped party may then exit.
BOOST_AUTO_TEST_CASE(arrive_and_drop_lowers_later_phases, *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<std_block>(3);
  const pid_t dropper = fork_child([&] {
    s->b.arrive_and_wait();  // phase 0 with everyone
    s->b.arrive_and_drop();  // phase 1: arrives, then leaves for good
    return 0;
  });
  const pid_t stayer = fork_child([&] {
    for (int c = 0; c < 10; ++c) s->b.arrive_and_wait();
    return 0;
  });
  for (int c = 0; c < 10; ++c) s->b.arrive_and_wait();
  BOOST_TEST(wait_exit_code(dropper) == 0);
  BOOST_TEST(wait_exit_code(stayer) == 0);
  BOOST_TEST(s->b.parties() == 2u);
  BOOST_TEST(s->b.completion().calls == 10);
  // Everyone drops: the next phase expects nobody, and arriving is an error.
  s->b.arrive_and_drop();
  s->b.arrive_and_drop();
  BOOST_TEST(s->b.completion().calls == 11);
  BOOST_TEST(s->b.parties() == 0u);
  BOOST_TEST((error_of([&] { (void)s->b.arrive(); }) == procsync::errc::invalid_argument));
}

// Thousands of parties: 1024 threads in 4 processes, several phases.
BOOST_AUTO_TEST_CASE(thousands_of_parties, *boost::unit_test::timeout(300)) {
  constexpr int procs = 4, threads = 256, cycles = 3;
  auto s = procsync::make_anonymous<std_block>(procs * threads);
  std::vector<pid_t> kids;
  for (int i = 0; i < procs; ++i)
    kids.push_back(fork_child([&] {
      std::atomic<int> bad{0};
      std::vector<std::thread> ts;
      for (int t = 0; t < threads; ++t)
        ts.emplace_back([&] {
          for (int c = 0; c < cycles; ++c) {
            s->arrived[c].fetch_add(1);
            s->b.arrive_and_wait();
            if (s->arrived[c].load() != procs * threads) bad.fetch_add(1);
          }
        });
      for (auto& t : ts) t.join();
      return bad.load() == 0 ? 0 : 1;
    }));
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k, std::chrono::seconds(120)) == 0);
  BOOST_TEST(s->b.completion().calls == cycles);
  BOOST_TEST(!s->b.broken());
}

// Exact death with more waiting parties than are watched: the first waiter
// (watched) is killed while 99 others wait; everyone gets barrier_broken.
BOOST_AUTO_TEST_CASE(a_watched_party_killed_among_a_hundred_waiters_breaks_it, *boost::unit_test::timeout(120)) {
  constexpr int others = 99;
  auto s = procsync::make_anonymous<std_block>(others + 2);
  const pid_t victim = fork_child([&] {
    s->b.arrive_and_wait();
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return s->b.n_waiting() == 1u; }));
  const pid_t crowd = fork_child([&] {
    std::atomic<int> broken{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < others; ++t)
      ts.emplace_back([&] {
        if (is_broken_error(error_of([&] { s->b.arrive_and_wait(); }))) broken.fetch_add(1);
      });
    for (auto& t : ts) t.join();
    return broken.load() == others ? 0 : 1;
  });
  BOOST_REQUIRE(eventually([&] { return s->b.n_waiting() == std::size_t(others + 1); }));
  ::kill(victim, SIGKILL);
  BOOST_TEST(wait_exit_code(victim) == -SIGKILL);
  BOOST_TEST(wait_exit_code(crowd) == 0);  // no timeouts: the watched neighbours saw it
  BOOST_TEST(s->b.broken());
  BOOST_TEST(is_broken_error(error_of([&] { (void)s->b.arrive(); })));
}

// The completion function throws: the last arriver gets that exception, the
// waiting parties errc::barrier_broken; reset() makes the barrier usable again.
BOOST_AUTO_TEST_CASE(a_throwing_completion_breaks_the_barrier, *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<std_block>(3);
  s->b.completion().throw_in_call = 0;
  std::vector<pid_t> kids;
  for (int i = 0; i < 2; ++i)
    kids.push_back(fork_child([&] { return is_broken_error(error_of([&] { s->b.arrive_and_wait(); })) ? 0 : 1; }));
  BOOST_REQUIRE(eventually([&] { return s->b.n_waiting() == 2u && all_asleep(kids); }));
  bool got_its_exception = false;
  try {
    s->b.arrive_and_wait();
  } catch (const std::runtime_error& e) {
    got_its_exception = std::string(e.what()) == "completion failed on purpose";
  }
  BOOST_TEST(got_its_exception);
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  std::string what;
  BOOST_TEST(is_broken_error(error_of([&] { s->b.wait(); }, &what)));
  BOOST_TEST(what.find("completion function threw") != std::string::npos);
  s->b.reset();
  kids.clear();
  for (int i = 0; i < 2; ++i)
    kids.push_back(fork_child([&] {
      s->b.arrive_and_wait();
      return 0;
    }));
  s->b.arrive_and_wait();
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(s->b.completion().calls == 2);
}

// Exact death inside the completion function: the last arriver is SIGKILLed
// while running it; the waiting parties get errc::barrier_broken (a party
// died) without timeouts of their own.
BOOST_AUTO_TEST_CASE(a_process_killed_inside_the_completion_breaks_the_barrier, *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<std_block>(3);
  s->b.completion().die_in_call = 1;  // the second phase's completion
  std::vector<pid_t> kids;
  for (int i = 0; i < 2; ++i)
    kids.push_back(fork_child([&] {
      s->b.arrive_and_wait();  // phase 0 completes normally
      s->ready.fetch_add(1);
      return is_broken_error(error_of([&] { s->b.arrive_and_wait(); })) ? 0 : 1;
    }));
  s->b.arrive_and_wait();
  BOOST_REQUIRE(eventually([&] { return s->ready.load() == 2 && s->b.n_waiting() == 2u && all_asleep(kids); }));
  const pid_t last = fork_child([&] {
    s->b.arrive_and_wait();  // runs the completion, which kills this process
    return 0;
  });
  BOOST_TEST(wait_exit_code(last) == -SIGKILL);
  BOOST_TEST(s->b.completion().ran_in_pid == last);
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(s->b.broken());
  std::string what;
  BOOST_TEST(is_broken_error(error_of([&] { s->b.arrive_and_wait(); }, &what)));
  BOOST_TEST(what.find("a party died") != std::string::npos);
}

// A party that arrived with arrive() and then exits (not waiting) has counted:
// its exit breaks nothing, and the phase completes when the others come.
BOOST_AUTO_TEST_CASE(a_party_that_arrived_without_waiting_may_exit, *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<std_block>(3);
  const pid_t leaver = fork_child([&] {
    (void)s->b.arrive();
    return 0;
  });
  BOOST_TEST(wait_exit_code(leaver) == 0);
  const pid_t other = fork_child([&] {
    s->b.arrive_and_wait();
    return 0;
  });
  s->b.arrive_and_wait();
  BOOST_TEST(wait_exit_code(other) == 0);
  BOOST_TEST(!s->b.broken());
  BOOST_TEST(s->b.completion().calls == 1);
}

// Threads: arrive/wait(token) from std::thread parties, token waits after
// other work (the split-phase use).
BOOST_AUTO_TEST_CASE(split_phase_with_threads, *boost::unit_test::timeout(120)) {
  procsync::basic_barrier<phase_log> b(4);
  std::atomic<int> work{0};
  std::vector<std::thread> ts;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int c = 0; c < 100; ++c) {
        work.fetch_add(1);
        auto token = b.arrive();
        b.wait(std::move(token));
        if (work.load() < 4 * (c + 1)) bad.fetch_add(1);
        b.arrive_and_wait();  // nobody starts the next round's work early
      }
    });
  for (auto& t : ts) t.join();
  BOOST_TEST(bad.load() == 0);
  BOOST_TEST(b.completion().calls == 200);
}

// The arrival that completes a phase wakes the sleeping parties by a wake call,
// not by their 50 ms re-arm slice (wake_probe.hpp).
BOOST_AUTO_TEST_CASE(completing_arrival_wakes_sleepers_by_a_wake_call, *boost::unit_test::timeout(300)) {
  struct strict_block {
    procsync::barrier b{3};
  };
  wake_probe::tally t;
  for (int round = 0; round < 5; ++round) {
    auto a = procsync::make_anonymous<strict_block>();
    t += wake_probe::strict_wake_round(2, [&] { a->b.arrive_and_wait(); return true; }, [&] { a->b.arrive_and_wait(); });
  }
  BOOST_TEST(t.strict(), "completing arrival, 2 sleepers: " << t.str());
}
