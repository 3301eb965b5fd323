#define BOOST_TEST_MODULE procsync mutex
#include <boost/test/unit_test.hpp>

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <procsync/mutex.hpp>
#include <procsync/segment.hpp>

#include "child.hpp"
#include "wake_probe.hpp"
#include "errors.hpp"

using namespace procsync_test;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

struct counter_block {
  procsync::mutex m;
  long count = 0;
};

// A tiny shared-memory flag the tests use to sequence processes.
}  // namespace

BOOST_AUTO_TEST_CASE(locked_increments_are_exact, *boost::unit_test::timeout(120)) {
  auto block = procsync::make_anonymous<counter_block>();
  constexpr int procs = 4, iters = 20000;
  std::vector<pid_t> kids;
  for (int i = 0; i < procs; ++i)
    kids.push_back(fork_child([&] {
      for (int j = 0; j < iters; ++j) {
        std::lock_guard g(block->m);
        ++block->count;
      }
      return 0;
    }));
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(block->count == procs * iters);
}

BOOST_AUTO_TEST_CASE(unlocked_increments_lose_updates, *boost::unit_test::timeout(120)) {
  // The control experiment: the same loop without the lock. Not asserted (it
  // may happen not to race on a loaded machine), only shown.
  auto block = procsync::make_anonymous<counter_block>();
  auto go = procsync::make_anonymous<std::atomic<int>>(0);
  constexpr int procs = 4, iters = 2000000;
  std::vector<pid_t> kids;
  for (int i = 0; i < procs; ++i)
    kids.push_back(fork_child([&] {
      go->fetch_add(1);
      while (go->load() < procs) std::this_thread::yield();  // start together
      volatile long* c = &block->count;
      for (int j = 0; j < iters; ++j) *c = *c + 1;
      return 0;
    }));
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST_MESSAGE("without the lock: " << block->count << " of " << procs * iters << " increments survived");
}

struct death_block {
  procsync::mutex m;
  std::atomic<int> step{0};
  std::atomic<int> waiting{0};
  long value = 0;
};

BOOST_AUTO_TEST_CASE(holder_killed_waiter_gets_owner_died_then_consistent, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<death_block>();
  const pid_t holder = fork_child([&]() -> int {
    b->m.lock();
    b->value = 41;  // half-done update
    b->step = 1;
    for (;;) ::pause();
  });
  BOOST_REQUIRE(wait_flag(b->step, 1));
  // A waiter already blocked when the holder dies.
  const pid_t waiter = fork_child([&] {
    b->waiting = 1;
    const procsync::lock_status s = b->m.lock_robust();
    if (s != procsync::lock_status::owner_died) return 1;
    if (!b->m.inconsistent()) return 2;
    b->value = 42;  // repair
    b->m.consistent();
    if (b->m.inconsistent()) return 4;
    b->m.unlock();
    return 0;
  });
  // Asleep on the held mutex, seen by looking: the death must wake a sleeper.
  BOOST_REQUIRE(eventually([&] { return b->waiting.load() == 1 && blocked_in_futex(waiter); }));
  ::kill(holder, SIGKILL);
  BOOST_TEST(wait_exit_code(holder) == -SIGKILL);
  BOOST_TEST(wait_exit_code(waiter, 30s) == 0);  // the watchdog: a hang fails here, not the run
  // Later lockers see a healthy mutex.
  BOOST_TEST((b->m.lock_robust() == procsync::lock_status::acquired));
  BOOST_TEST(b->value == 42);
  BOOST_TEST(!b->m.inconsistent());
  b->m.unlock();
  BOOST_TEST(b->m.try_lock());
  b->m.unlock();
}

BOOST_AUTO_TEST_CASE(unlock_without_consistent_makes_it_not_recoverable, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<death_block>();
  BOOST_REQUIRE(die_holding([&] { b->m.lock(); }) == -SIGKILL);
  // The parent takes it from the dead owner and keeps it while others queue.
  BOOST_REQUIRE((b->m.lock_robust() == procsync::lock_status::owner_died));
  std::vector<pid_t> blocked;
  for (int i = 0; i < 3; ++i)
    blocked.push_back(fork_child([&] {
      b->waiting.fetch_add(1);
      const auto e = error_of([&] { b->m.lock(); });
      return e == procsync::errc::not_recoverable ? 0 : 1;
    }));
  BOOST_REQUIRE(wait_flag(b->waiting, 3));
  BOOST_REQUIRE(eventually([&] { return all_blocked_in_futex(blocked); }));  // asleep in the kernel, seen
  b->m.unlock();                      // without consistent(): poisons it and wakes them all
  for (pid_t k : blocked) BOOST_TEST(wait_exit_code(k, 30s) == 0);
  BOOST_TEST(b->m.not_recoverable());
  BOOST_TEST((error_of([&] { b->m.lock(); }) == procsync::errc::not_recoverable));
  BOOST_TEST((error_of([&] { (void)b->m.try_lock(); }) == procsync::errc::not_recoverable));
  BOOST_TEST((error_of([&] { (void)b->m.try_lock_for(10ms); }) == procsync::errc::not_recoverable));
  BOOST_TEST((error_of([&] { (void)b->m.lock_robust(); }) == procsync::errc::not_recoverable));
  BOOST_TEST((error_of([&] { b->m.unlock(); }) == procsync::errc::not_owner));
}

// ---- kill at random points ----------------------------------------------------

struct journal_block {
  procsync::mutex m;
  long count = 0;             // protected; must equal the sum of the journals
  long journal[4] = {};       // per worker slot, the increments it committed
  std::atomic<long> repairs{0};
  std::atomic<long> progress{0};
};

namespace {
int journal_worker(journal_block* b, int slot) {
  for (;;) {
    if (b->m.lock_robust() == procsync::lock_status::owner_died) {
      // The dead worker may have bumped count without committing its journal
      // entry: the journals are the truth.
      long sum = 0;
      for (long j : b->journal) sum += j;
      b->count = sum;
      b->repairs.fetch_add(1);
      b->m.consistent();
    }
    ++b->count;
    for (int spin = 0; spin < 200; ++spin) __builtin_ia32_pause();  // widen the window between the writes
    ++b->journal[slot];
    b->m.unlock();
    b->progress.fetch_add(1, std::memory_order_relaxed);
  }
}
}  // namespace

BOOST_AUTO_TEST_CASE(kill_at_random_points_never_hangs_and_journal_matches, *boost::unit_test::timeout(300)) {
  auto b = procsync::make_anonymous<journal_block>();
  constexpr int workers = 3, kills = 300;
  pid_t pids[workers];
  for (int i = 0; i < workers; ++i) pids[i] = fork_child([&, i] { return journal_worker(b.get(), i); });
  std::mt19937 rng(12345);
  for (int k = 0; k < kills; ++k) {
    const int victim = static_cast<int>(rng() % workers);
    const long before = b->progress.load();
    // Make sure the workers are alive and cycling: a hang shows up here.
    BOOST_REQUIRE(eventually([&] { return b->progress.load() > before; }, 30s));
    // The behaviour under test: a kill at a random point of the loop, not a sequencing step.
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 1500));
    ::kill(pids[victim], SIGKILL);
    BOOST_REQUIRE(wait_exit_code(pids[victim]) == -SIGKILL);
    pids[victim] = fork_child([&, victim] { return journal_worker(b.get(), victim); });
  }
  for (pid_t p : pids) {
    ::kill(p, SIGKILL);
    wait_exit_code(p);
  }
  const procsync::lock_status s = b->m.try_lock_robust_for(30s);
  BOOST_REQUIRE(procsync::holds(s));
  if (s == procsync::lock_status::owner_died) {
    long sum = 0;
    for (long j : b->journal) sum += j;
    b->count = sum;
    b->repairs.fetch_add(1);
    b->m.consistent();
  }
  long sum = 0;
  for (long j : b->journal) sum += j;
  BOOST_TEST(b->count == sum);
  BOOST_TEST(sum > 0);
  BOOST_TEST_MESSAGE(kills << " kills, " << b->repairs.load() << " owner-died recoveries, " << sum
                           << " committed increments");
  // Over hundreds of kills in a loop that holds the lock most of the time,
  // some must land inside the critical section.
  BOOST_TEST(b->repairs.load() > 0);
  b->m.unlock();
}

// ---- misuse -------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(unlock_by_non_owner_process_and_thread, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<death_block>();
  b->m.lock();
  const pid_t other = fork_child([&] {
    // A forked child is a different thread: it does not own the parent's lock.
    if (b->m.owned_by_caller()) return 1;
    try {
      b->m.unlock();
    } catch (const procsync::error& e) {
      if (e.code() != procsync::errc::not_owner) return 2;
      if (std::string(e.what()).find("does not own") == std::string::npos) return 3;
      return 0;
    }
    return 4;
  });
  BOOST_TEST(wait_exit_code(other) == 0);
  procsync::errc from_thread{};
  std::thread t([&] { from_thread = error_of([&] { b->m.unlock(); }); });
  t.join();
  BOOST_TEST((from_thread == procsync::errc::not_owner));
  BOOST_TEST(b->m.owned_by_caller());  // still ours
  b->m.unlock();
  BOOST_TEST((error_of([&] { b->m.unlock(); }) == procsync::errc::not_owner));  // not held at all
}

BOOST_AUTO_TEST_CASE(relock_by_holder_is_would_deadlock, *boost::unit_test::timeout(60)) {
  procsync::mutex m;
  m.lock();
  BOOST_TEST((error_of([&] { m.lock(); }) == procsync::errc::would_deadlock));
  BOOST_TEST((error_of([&] { (void)m.try_lock(); }) == procsync::errc::would_deadlock));
  BOOST_TEST((error_of([&] { (void)m.try_lock_for(10ms); }) == procsync::errc::would_deadlock));
  BOOST_TEST(m.owned_by_caller());
  m.unlock();
  BOOST_TEST(!m.owned_by_caller());
}

// ---- timeouts -----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(try_lock_for_times_out_not_early, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<death_block>();
  const pid_t holder = fork_child([&]() -> int {
    b->m.lock();
    b->step = 1;
    wait_flag(b->waiting, 1, 60s);
    b->m.unlock();
    return 0;
  });
  BOOST_REQUIRE(wait_flag(b->step, 1));
  for (auto timeout : {1ms, 50ms, 200ms}) {
    const auto t0 = clk::now();
    BOOST_TEST(!b->m.try_lock_for(timeout));
    const auto elapsed = clk::now() - t0;
    BOOST_TEST((elapsed >= timeout));
    // A watchdog, not a timing: only a wait that all but hung trips it (timings are benchmarks).
    BOOST_TEST((elapsed < timeout + 30s));
  }
  BOOST_TEST(!b->m.try_lock());
  // A system_clock deadline: converted once, same guarantees.
  const auto t0 = clk::now();
  BOOST_TEST(!b->m.try_lock_until(std::chrono::system_clock::now() + 100ms));
  BOOST_TEST((clk::now() - t0 >= 100ms - 1ms));  // the conversion may round by the clocks' tick
  BOOST_TEST((clk::now() - t0 < 30s));           // a watchdog, as above
  // And a deadline that is reached after the holder lets go succeeds.
  b->waiting = 1;
  BOOST_TEST(b->m.try_lock_until(std::chrono::system_clock::now() + 30s));
  b->m.unlock();
  BOOST_TEST(wait_exit_code(holder) == 0);
  // A deadline in the past on a free mutex still takes it.
  BOOST_TEST(b->m.try_lock_until(std::chrono::system_clock::now() - 1s));
  b->m.unlock();
}

// ---- std lock helpers across processes ----------------------------------------

struct two_block {
  procsync::mutex a, b;
  long x = 0, y = 0;
};

BOOST_AUTO_TEST_CASE(std_lock_helpers_across_processes, *boost::unit_test::timeout(120)) {
  auto t = procsync::make_anonymous<two_block>();
  constexpr int iters = 3000;
  // Opposite orders with std::scoped_lock / std::lock: deadlock-free, exact.
  const pid_t p1 = fork_child([&] {
    for (int i = 0; i < iters; ++i) {
      std::scoped_lock g(t->a, t->b);
      ++t->x;
      ++t->y;
    }
    return 0;
  });
  const pid_t p2 = fork_child([&] {
    for (int i = 0; i < iters; ++i) {
      std::unique_lock lb(t->b, std::defer_lock);
      std::unique_lock la(t->a, std::defer_lock);
      std::lock(lb, la);
      ++t->x;
      ++t->y;
    }
    return 0;
  });
  const pid_t p3 = fork_child([&] {
    for (int i = 0; i < iters; ++i) {
      std::unique_lock la(t->a, std::try_to_lock);
      if (!la.owns_lock()) la.lock();
      std::lock_guard lb(t->b);
      ++t->x;
      ++t->y;
    }
    return 0;
  });
  for (pid_t p : {p1, p2, p3}) BOOST_TEST(wait_exit_code(p) == 0);
  BOOST_TEST(t->x == 3 * iters);
  BOOST_TEST(t->y == 3 * iters);
  std::unique_lock timed(t->a, 10ms);
  BOOST_TEST(timed.owns_lock());
}

BOOST_AUTO_TEST_CASE(no_futex_syscall_without_contention, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<counter_block>();
  b->m.lock();  // first use initializes the thread identity (syscalls, but no futex)
  b->m.unlock();
  const auto before = procsync::detail::futex_syscalls.load();
  for (int i = 0; i < 10000; ++i) {
    b->m.lock();
    ++b->count;
    b->m.unlock();
    if (b->m.try_lock()) b->m.unlock();
    BOOST_REQUIRE(b->m.try_lock_for(1s));
    b->m.unlock();
  }
  BOOST_TEST(procsync::detail::futex_syscalls.load() == before);
}

// ---- two mappings of the same memory -----------------------------------------

BOOST_AUTO_TEST_CASE(works_at_two_mapping_addresses, *boost::unit_test::timeout(120)) {
  const int fd = ::memfd_create("procsync-test-two-maps", 0);
  BOOST_REQUIRE(fd >= 0);
  BOOST_REQUIRE(::ftruncate(fd, 4096) == 0);
  void* a = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  void* c = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  BOOST_REQUIRE(a != MAP_FAILED);
  BOOST_REQUIRE(c != MAP_FAILED);
  BOOST_REQUIRE(a != c);
  auto* via_a = ::new (a) death_block();
  auto* via_c = static_cast<death_block*>(c);

  // A thread locks through one mapping; the main thread observes through the other.
  std::atomic<int> phase{0};
  std::uint32_t thread_tid = 0;
  std::thread t([&] {
    via_a->m.lock();
    thread_tid = procsync::detail::current_tid();
    phase = 1;
    // Unlock only once the main thread sleeps on the lock through the other
    // mapping (seen by looking), so that this unlock has a sleeper to wake.
    eventually([&] { return phase.load() == 2 && blocked_in_futex(::getpid()); }, 30s);
    via_a->m.unlock();
  });
  BOOST_REQUIRE(wait_flag(phase, 1));
  BOOST_TEST(!via_c->m.try_lock());
  BOOST_TEST(via_c->m.holder_tid() == thread_tid);
  const auto t0 = clk::now();
  BOOST_TEST(!via_c->m.try_lock_for(20ms));
  BOOST_TEST((clk::now() - t0 >= 20ms));
  phase = 2;
  BOOST_TEST(via_c->m.try_lock_for(30s));  // woken through the other address
  t.join();
  via_c->m.unlock();

  // A child dies holding it through mapping A: the kernel's robust list entry
  // (an address in A) still marks it for the locker through mapping C.
  BOOST_REQUIRE(die_holding([&] { via_a->m.lock(); }) == -SIGKILL);
  BOOST_TEST((via_c->m.try_lock_robust_for(30s) == procsync::lock_status::owner_died));
  via_c->m.consistent();
  via_c->m.unlock();
  ::munmap(a, 4096);
  ::munmap(c, 4096);
}

// ---- interoperation with glibc robust pthread mutexes in the same thread ---------

struct interop_block {
  pthread_mutex_t g[2];
  procsync::mutex p[2];
};

namespace {

void init_robust_pthread(pthread_mutex_t* m) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(m, &attr);
  pthread_mutexattr_destroy(&attr);
}

// A script step: lock ('L') or unlock ('U') of glibc mutex 'g' or procsync 'p' n.
struct op {
  char action, kind;
  int n;
};

// Runs the script; returns 0 on success.
int run_script(interop_block* b, const std::vector<op>& script) {
  for (const op& o : script) {
    if (o.kind == 'g') {
      const int rc = o.action == 'L' ? pthread_mutex_lock(&b->g[o.n]) : pthread_mutex_unlock(&b->g[o.n]);
      if (rc != 0) return 10 + rc;
    } else if (o.action == 'L') {
      if (b->p[o.n].lock_robust() != procsync::lock_status::acquired) return 2;
    } else {
      b->p[o.n].unlock();
    }
  }
  return 0;
}

// What a script leaves held: held[kind][n].
void held_after(const std::vector<op>& script, bool held_g[2], bool held_p[2]) {
  held_g[0] = held_g[1] = held_p[0] = held_p[1] = false;
  for (const op& o : script) (o.kind == 'g' ? held_g : held_p)[o.n] = o.action == 'L';
}

}  // namespace

BOOST_AUTO_TEST_CASE(glibc_robust_pthread_interop_in_one_thread, *boost::unit_test::timeout(120)) {
  const std::vector<std::vector<op>> scripts = {
      {{'L', 'p', 0}, {'L', 'g', 0}},                                    // procsync first
      {{'L', 'g', 0}, {'L', 'p', 0}},                                    // glibc first
      {{'L', 'p', 0}, {'L', 'g', 0}, {'L', 'p', 1}, {'L', 'g', 1}},      // interleaved
      {{'L', 'g', 0}, {'L', 'p', 0}, {'L', 'g', 1}, {'L', 'p', 1}, {'U', 'p', 0}},  // unlock middle
      {{'L', 'p', 0}, {'L', 'g', 0}, {'L', 'p', 1}, {'L', 'g', 1}, {'U', 'g', 0}, {'U', 'p', 1}},
      {{'L', 'p', 0}, {'L', 'g', 0}, {'L', 'p', 1}, {'L', 'g', 1},        // LIFO unlock, relock
       {'U', 'g', 1}, {'U', 'p', 1}, {'U', 'g', 0}, {'U', 'p', 0},
       {'L', 'g', 1}, {'L', 'p', 0}, {'L', 'p', 1}, {'L', 'g', 0}},
      {{'L', 'g', 0}, {'L', 'p', 0}, {'L', 'g', 1}, {'L', 'p', 1},        // FIFO unlock, relock
       {'U', 'g', 0}, {'U', 'p', 0}, {'U', 'g', 1}, {'U', 'p', 1},
       {'L', 'p', 1}, {'L', 'g', 0}, {'L', 'g', 1}, {'L', 'p', 0}},
      {{'L', 'p', 1}, {'L', 'g', 1}, {'U', 'p', 1}, {'L', 'p', 0}, {'U', 'g', 1}, {'L', 'g', 0}},
  };
  for (std::size_t si = 0; si < scripts.size(); ++si) {
    BOOST_TEST_CONTEXT("script " << si) {
      auto b = procsync::make_anonymous<interop_block>();
      init_robust_pthread(&b->g[0]);
      init_robust_pthread(&b->g[1]);
      const auto& script = scripts[si];
      // Dies holding whatever the script left held.
      BOOST_TEST(die_holding([&] { return run_script(b.get(), script); }) == -SIGKILL);
      bool held_g[2], held_p[2];
      held_after(script, held_g, held_p);
      for (int n = 0; n < 2; ++n) {
        const int rc = pthread_mutex_lock(&b->g[n]);
        BOOST_TEST(rc == (held_g[n] ? EOWNERDEAD : 0), "glibc mutex " << n << " rc " << rc);
        if (rc == EOWNERDEAD) pthread_mutex_consistent(&b->g[n]);
        const procsync::lock_status s = b->p[n].try_lock_robust_for(10s);
        BOOST_TEST((s == (held_p[n] ? procsync::lock_status::owner_died : procsync::lock_status::acquired)),
                   "procsync mutex " << n << " status " << static_cast<int>(s));
        if (s == procsync::lock_status::owner_died) b->p[n].consistent();
      }
      // The parent's own list survives a mixed unlock order too.
      BOOST_TEST(pthread_mutex_unlock(&b->g[0]) == 0);
      b->p[1].unlock();
      BOOST_TEST(pthread_mutex_unlock(&b->g[1]) == 0);
      b->p[0].unlock();
      // And the parent can run the script itself without dying, then release all.
      BOOST_TEST(run_script(b.get(), script) == 0);
      for (int n = 0; n < 2; ++n) {
        if (held_g[n]) BOOST_TEST(pthread_mutex_unlock(&b->g[n]) == 0);
        if (held_p[n]) b->p[n].unlock();
      }
      for (int n = 0; n < 2; ++n) {
        BOOST_TEST(pthread_mutex_trylock(&b->g[n]) == 0);
        BOOST_TEST(b->p[n].try_lock());
      }
      for (int n = 0; n < 2; ++n) {
        pthread_mutex_unlock(&b->g[n]);
        b->p[n].unlock();
      }
    }
  }
}

// White-box: reproduce the state a holder leaves when it is SIGKILLed between
// its releasing exchange and its futex_wake while another thread barges in
// through the fast path (the word holds the barger's TID without `waiters`,
// and a sleeper is still in futex_wait). The barger's unlock then wakes nobody;
// the sleeper must still get the lock (bounded re-arm slices), never hang.
BOOST_AUTO_TEST_CASE(sleeper_survives_a_lost_wake_up, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<counter_block>();
  auto sleeping = procsync::make_anonymous<std::atomic<int>>(0);
  b->m.lock();
  const pid_t sleeper = fork_child([&] {
    sleeping->store(1);
    std::lock_guard g(b->m);
    ++b->count;
    return 0;
  });
  auto& word = *reinterpret_cast<std::atomic<std::uint32_t>*>(&b->m);
  // The sleeper announced itself (the `waiters` bit) and sleeps in futex_wait, both seen.
  BOOST_REQUIRE(eventually([&] { return (word.load() & 0x80000000u) != 0 && blocked_in_futex(sleeper); }));
  // Drop the `waiters` bit as a barging locker's fast path would have.
  word.store(word.load() & 0x3fffffffu);
  const auto calls_before = procsync::detail::futex_syscalls.load();
  b->m.unlock();
  BOOST_TEST(procsync::detail::futex_syscalls.load() == calls_before);  // nobody was woken by us
  BOOST_TEST(wait_exit_code(sleeper, std::chrono::seconds(30)) == 0);
  BOOST_TEST(b->count == 1);
}

// unlock() must wake a sleeping waiter by a wake call, and a waiter that took
// the lock after sleeping must wake the next one in turn. A lost wake costs
// only one 50 ms re-arm slice, so the waiters report how their last futex wait
// ended (wake_probe.hpp).
BOOST_AUTO_TEST_CASE(unlock_wakes_sleeping_waiters_by_a_wake_call, *boost::unit_test::timeout(300)) {
  struct strict_block {
    procsync::mutex m;
    std::atomic<int> inside{0};
  };
  wake_probe::tally one, chain;
  for (int round = 0; round < 5; ++round) {
    auto a = procsync::make_anonymous<strict_block>();
    a->m.lock();
    one += wake_probe::strict_wake_round(1, [&] {
      a->m.lock();
      a->m.unlock();
      return true;
    }, [&] { a->m.unlock(); });
    auto b = procsync::make_anonymous<strict_block>();
    b->m.lock();
    chain += wake_probe::strict_wake_round(2, [&] {
      b->m.lock();
      const bool alone = b->inside.fetch_add(1) == 0;
      b->inside.fetch_sub(1);
      b->m.unlock();
      return alone;
    }, [&] { b->m.unlock(); });
  }
  BOOST_TEST(one.strict(), "unlock() of 1 sleeper: " << one.str());
  BOOST_TEST(chain.strict(), "unlock() of 2 sleepers, each woken in turn: " << chain.str());
}

// --- Eventual fairness: a waiter that has waited 1 ms reserves the mutex -----

struct fairness_block {
  procsync::mutex m;
  std::atomic<int> heir_inside{0};  // the waiter's critical section has run
  std::atomic<int> waiting{0};
};

// A child that locks (waiting as long as it must), marks that it got in, unlocks.
pid_t fair_waiter(fairness_block& b) {
  return fork_child([&b] {
    b.waiting = 1;
    b.m.lock();
    b.heir_inside = 1;
    b.m.unlock();
    return 0;
  });
}

// A waiter reserves the mutex; `hold` later its holder unlocks and relocks at
// once. Without the reservation the unlocker takes the mutex straight back,
// long before the woken waiter runs: unlock then lock is a few nanoseconds.
void the_heir_goes_before_the_relock(std::chrono::nanoseconds hold) {
  auto b = procsync::make_anonymous<fairness_block>();
  b->m.lock();
  const pid_t waiter = fair_waiter(*b);
  // It sleeps, wakes at its first re-arm slice having waited > 1 ms, and reserves.
  BOOST_REQUIRE(eventually([&] { return b->m.heir_tid() == static_cast<std::uint32_t>(waiter); }));
  std::this_thread::sleep_for(hold);
  const auto t0 = clk::now();
  b->m.unlock();
  b->m.lock();
  const auto relock = clk::now() - t0;
  // The heir went first, or (a machine so loaded that it was not scheduled for
  // 50 ms) its reservation was dropped after that patience, never sooner.
  BOOST_TEST((b->heir_inside.load() == 1 || relock >= 50ms), "relocked after " << (relock / 1us) << " us");
  BOOST_TEST(b->m.heir_tid() == 0u);
  b->m.unlock();
  BOOST_TEST(wait_exit_code(waiter) == 0);
  BOOST_TEST(b->heir_inside.load() == 1);
}

BOOST_AUTO_TEST_CASE(a_starved_waiter_is_served_before_the_unlocker_relocks, *boost::unit_test::timeout(120)) {
  the_heir_goes_before_the_relock(0ns);
}

// The patience runs only while the lock sits free: a heir that has waited out
// a long critical section still gets the lock first when it is released.
BOOST_AUTO_TEST_CASE(a_reservation_outlasts_a_hold_longer_than_its_patience, *boost::unit_test::timeout(120)) {
  the_heir_goes_before_the_relock(3 * procsync::detail::heir_patience_ns * 1ns / 2);
}

// The patience counts from the unlock that left the lock to its heir, not from
// when a waiter first sees it: a newcomer arriving after it has passed takes
// the lock at once, without a single futex wait (before, it slept a full slice,
// and a survivor whose slice ended late slept two).
BOOST_AUTO_TEST_CASE(a_newcomer_after_the_heirs_patience_takes_the_lock_without_sleeping,
                     *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<fairness_block>();
  b->m.lock();
  const pid_t heir = fair_waiter(*b);
  BOOST_REQUIRE(eventually([&] { return b->m.heir_tid() == static_cast<std::uint32_t>(heir); }));
  ::kill(heir, SIGSTOP);
  BOOST_REQUIRE(eventually([&] { return is_stopped(heir); }));  // it cannot take the unlock's wake-up
  b->m.unlock();
  std::this_thread::sleep_for(3 * procsync::detail::heir_patience_ns * 1ns / 2);
  const pid_t newcomer = fork_child([&b] {
    const auto calls_before = procsync::detail::futex_syscalls.load();
    b->m.lock();
    const auto calls = procsync::detail::futex_syscalls.load() - calls_before;
    b->m.unlock();
    return calls == 0 ? 0 : 10 + static_cast<int>(std::min<std::uint64_t>(calls, 100));
  });
  const int code = wait_exit_code(newcomer, 10s);  // the watchdog: a hang fails here
  BOOST_TEST(code == 0, "the newcomer ended with " << code << " (10 + its futex calls while locking)");
  BOOST_TEST(b->m.heir_tid() != static_cast<std::uint32_t>(heir), "the stale reservation was dropped");
  ::kill(heir, SIGCONT);
  BOOST_TEST(wait_exit_code(heir, 30s) == 0);  // resumed, it still gets the mutex
  BOOST_TEST(b->heir_inside.load() == 1);
}

BOOST_AUTO_TEST_CASE(a_killed_or_stopped_heir_delays_the_others_boundedly, *boost::unit_test::timeout(120)) {
  for (const int sig : {SIGKILL, SIGSTOP}) {
    auto b = procsync::make_anonymous<fairness_block>();
    b->m.lock();
    const pid_t heir = fair_waiter(*b);
    BOOST_REQUIRE(eventually([&] { return b->m.heir_tid() == static_cast<std::uint32_t>(heir); }));
    ::kill(heir, sig);
    if (sig == SIGKILL) BOOST_TEST(wait_exit_code(heir) == -SIGKILL);
    if (sig == SIGSTOP) BOOST_REQUIRE(eventually([&] { return is_stopped(heir); }));
    // Released to a heir that will not come; a newcomer must still get it.
    b->m.unlock();
    const auto t0 = clk::now();
    const pid_t other = fork_child([&b] {
      b->m.lock();
      b->m.unlock();
      return 0;
    });
    // The watchdog: a hang fails here (10 s is 200 times the bound), and the heir goes with it.
    const int newcomer = wait_exit_code(other, 10s);
    if (newcomer != 0) ::kill(heir, SIGKILL);
    BOOST_REQUIRE_MESSAGE(newcomer == 0, "signal " << sig << ": the newcomer ended with " << newcomer);
    const auto waited = clk::now() - t0;
    BOOST_TEST_MESSAGE("signal " << sig << ": a newcomer got the mutex after " << (waited / 1ms) << " ms");
    BOOST_TEST(b->m.heir_tid() != static_cast<std::uint32_t>(heir), "the dead reservation was dropped");
    if (sig == SIGSTOP) {
      ::kill(heir, SIGCONT);
      BOOST_TEST(wait_exit_code(heir, 30s) == 0);  // resumed, it still gets the mutex
      BOOST_TEST(b->heir_inside.load() == 1);
    }
    BOOST_TEST(b->m.try_lock());
    b->m.unlock();
  }
}

BOOST_AUTO_TEST_CASE(a_heir_that_times_out_drops_its_reservation, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<fairness_block>();
  b->m.lock();
  const pid_t heir = fork_child([&b] { return b->m.try_lock_for(2s) ? 1 : 0; });
  BOOST_REQUIRE(eventually([&] { return b->m.heir_tid() == static_cast<std::uint32_t>(heir); }));
  BOOST_TEST(wait_exit_code(heir) == 0);  // it timed out: we still hold the mutex
  BOOST_TEST(b->m.heir_tid() == 0u);
  b->m.unlock();
  BOOST_TEST(b->m.lock_word() == 0u, "with no reservation left, unlock frees the word for the fast path");
  BOOST_TEST(b->m.try_lock());
  b->m.unlock();
}
