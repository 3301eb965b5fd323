// bench/bench_common.hpp — what the procsync benchmarks share: objects in
// shared memory, the lock implementations compared, forked worker processes
// with a start barrier, and the multi-process contention runner.
//
// Timing of multi-process runs: the parent reads CLOCK_MONOTONIC (steady_clock,
// system-wide) just before it opens the start barrier; each worker reads it
// when it has finished; the run lasts until the last worker's finish. Fork and
// exit costs are outside the measured interval. The result is reported with
// UseManualTime, so Google Benchmark's "Time" column is the per-iteration
// wall-clock time of the whole run.
//
// Knobs (environment, so that scripts/bench-summary.sh can make a short run):
//   PROCSYNC_BENCH_OPS    total modifications per multi-process run (1000000)
//   PROCSYNC_BENCH_ITERS  runs per multi-process benchmark (3)
//   PROCSYNC_BENCH_ROUNDS ping-pong round trips per latency benchmark (20000)
#pragma once

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <boost/interprocess/creation_tags.hpp>
#include <boost/interprocess/sync/interprocess_mutex.hpp>
#include <boost/interprocess/sync/named_mutex.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <procsync/mutex.hpp>
#include <procsync/recursive_mutex.hpp>

#include "bench_main.hpp"
#include "child.hpp"

namespace bench {

// ---------------------------------------------------------------------------
// Knobs and small helpers

inline std::uint64_t env_u64(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  const unsigned long long value = std::strtoull(text, nullptr, 10);
  return value == 0 ? fallback : static_cast<std::uint64_t>(value);
}

inline std::uint64_t total_ops() { return env_u64("PROCSYNC_BENCH_OPS", 1000000); }
inline std::uint64_t run_iterations() { return env_u64("PROCSYNC_BENCH_ITERS", 3); }
inline std::uint64_t ping_rounds() { return env_u64("PROCSYNC_BENCH_ROUNDS", 20000); }

// The waiting floor's busy-wait hint (a `pause`), shared with the peers' spin loops here.
using procsync::detail::cpu_relax;

inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

[[noreturn]] inline void die(const char* what) {
  std::perror(what);
  std::abort();
}

/// One T in a MAP_SHARED|MAP_ANONYMOUS mapping, inherited by forked children.
/// Unlike procsync::make_anonymous it accepts types with destructors (Boost's
/// and pthread wrappers): the destructor runs once, in the creating process.
template <class T>
class shared {
 public:
  template <class... Args>
  explicit shared(Args&&... args) {
    void* memory = ::mmap(nullptr, bytes(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) die("mmap");
    object_ = ::new (memory) T(std::forward<Args>(args)...);
    owner_ = ::getpid();
  }
  shared(const shared&) = delete;
  shared& operator=(const shared&) = delete;
  ~shared() {
    if (::getpid() == owner_) object_->~T();
    ::munmap(static_cast<void*>(object_), bytes());
  }
  T& operator*() const noexcept { return *object_; }
  T* operator->() const noexcept { return object_; }

 private:
  static std::size_t bytes() {
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    return (sizeof(T) + page - 1) / page * page;
  }
  T* object_ = nullptr;
  pid_t owner_ = 0;
};

// ---------------------------------------------------------------------------
// The lock implementations compared. Each has lock()/unlock() and lives in
// shared memory, except boost_named (a process-local handle to a named object).

/// The floor: compare-and-swap to take, a plain release store to give back.
/// Yields after a burst of spins so that more processes than cores still make
/// progress (a pure spin would burn the holder's time slice).
struct spin_lock {
  static constexpr const char* label = "cas_spin";
  std::atomic<std::uint32_t> word{0};
  void lock() noexcept {
    for (unsigned spins = 0;; ++spins) {
      std::uint32_t expected = 0;
      // acquire: the protected data is read only after our CAS took the lock.
      if (word.load(std::memory_order_relaxed) == 0 &&
          word.compare_exchange_weak(expected, 1, std::memory_order_acquire, std::memory_order_relaxed))
        return;
      cpu_relax();
      if (spins >= 100) {
        ::sched_yield();
        spins = 0;
      }
    }
  }
  // release: our writes to the protected data are visible to the next taker.
  void unlock() noexcept { word.store(0, std::memory_order_release); }
};

/// pthread_mutex_t with PTHREAD_PROCESS_SHARED, optionally robust.
template <bool Robust>
struct pthread_lock {
  static constexpr const char* label = Robust ? "pthread_robust" : "pthread";
  pthread_mutex_t m;
  pthread_lock() {
    pthread_mutexattr_t attr;
    ::pthread_mutexattr_init(&attr);
    ::pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (Robust) ::pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (::pthread_mutex_init(&m, &attr) != 0) die("pthread_mutex_init");
    ::pthread_mutexattr_destroy(&attr);
  }
  pthread_lock(const pthread_lock&) = delete;
  ~pthread_lock() { ::pthread_mutex_destroy(&m); }
  void lock() noexcept {
    const int rc = ::pthread_mutex_lock(&m);
    if (rc == EOWNERDEAD) ::pthread_mutex_consistent(&m);
  }
  void unlock() noexcept { ::pthread_mutex_unlock(&m); }
};
using pthread_normal = pthread_lock<false>;
using pthread_robust = pthread_lock<true>;

/// A process-shared POSIX semaphore with one permit, used as a lock.
struct sem_lock {
  static constexpr const char* label = "sem_t";
  sem_t s;
  sem_lock() {
    if (::sem_init(&s, 1, 1) != 0) die("sem_init");
  }
  sem_lock(const sem_lock&) = delete;
  ~sem_lock() { ::sem_destroy(&s); }
  void lock() noexcept {
    while (::sem_wait(&s) != 0 && errno == EINTR) {
    }
  }
  void unlock() noexcept { ::sem_post(&s); }
};

/// Boost.Interprocess interprocess_mutex (a process-shared pthread mutex on Linux).
struct boost_mutex {
  static constexpr const char* label = "boost_interprocess";
  boost::interprocess::interprocess_mutex m;
  void lock() { m.lock(); }
  void unlock() { m.unlock(); }
};

/// Boost.Interprocess named_mutex: created by name in /dev/shm; this handle is
/// process-local (it maps the named object), and forked children inherit the
/// mapping. Removed when the creating process is done.
class boost_named {
 public:
  static constexpr const char* label = "boost_named";
  static constexpr bool process_local = true;
  boost_named()
      : name_("procsync-bench-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++) + "-named"),
        owner_(::getpid()) {
    boost::interprocess::named_mutex::remove(name_.c_str());
    m_ = std::make_unique<boost::interprocess::named_mutex>(boost::interprocess::create_only, name_.c_str());
  }
  boost_named(const boost_named&) = delete;
  ~boost_named() {
    m_.reset();
    if (::getpid() == owner_) boost::interprocess::named_mutex::remove(name_.c_str());
  }
  void lock() { m_->lock(); }
  void unlock() { m_->unlock(); }

 private:
  static inline int counter_ = 0;
  std::string name_;
  pid_t owner_;
  std::unique_ptr<boost::interprocess::named_mutex> m_;
};

struct procsync_mutex : procsync::mutex {
  static constexpr const char* label = "procsync";
};
struct procsync_recursive : procsync::recursive_mutex {
  static constexpr const char* label = "procsync_recursive";
};

/// Holds one lock of type L where every forked child can use it.
template <class L>
class lock_holder {
 public:
  lock_holder() {
    if constexpr (requires { L::process_local; })
      local_ = std::make_unique<L>();
    else
      shared_ = std::make_unique<shared<L>>();
  }
  L& get() const noexcept {
    if constexpr (requires { L::process_local; })
      return *local_;
    else
      return **shared_;
  }

 private:
  std::unique_ptr<L> local_;
  std::unique_ptr<shared<L>> shared_;
};

/// uncontended/<impl>: lock+unlock of a lock (or a one-permit semaphore used
/// as one) in one process, with the lock where lock_holder puts it. procsync
/// rows report futex_calls_per_op, which must be 0: no system call without
/// waiters.
template <class L>
void uncontended(benchmark::State& state) {
  lock_holder<L> holder;
  L& lock = holder.get();
  const auto calls_before = procsync::detail::futex_syscalls.load(std::memory_order_relaxed);
  for (auto _ : state) {
    lock.lock();
    benchmark::ClobberMemory();
    lock.unlock();
  }
  const auto calls = procsync::detail::futex_syscalls.load(std::memory_order_relaxed) - calls_before;
  state.counters["futex_calls_per_op"] =
      static_cast<double>(calls) / static_cast<double>(std::max<benchmark::IterationCount>(1, state.iterations()));
}

// ---------------------------------------------------------------------------
// Forked workers

// fork_child (tests/support/child.hpp, shared with the tests): forks a child
// that runs `body()` and _exits with its result; the child is killed if the
// benchmark process dies.
using procsync_test::fork_child;

/// Reaps `pids`; a worker still running after `limit` is killed. Returns true
/// if every worker exited with status 0.
inline bool reap(const std::vector<pid_t>& pids, std::chrono::seconds limit = std::chrono::seconds(120)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  bool ok = true;
  for (const pid_t pid : pids) {
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) {
        ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        break;
      }
      if (r < 0) {
        ok = false;
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        ok = false;
        break;
      }
      ::usleep(200);
    }
  }
  return ok;
}

/// A start barrier in shared memory: workers check in, then spin (yielding,
/// since there may be more workers than cores) until the parent opens it.
struct start_gate {
  std::atomic<std::uint32_t> ready{0};
  std::atomic<std::uint32_t> open{0};

  void arrive_and_wait() noexcept {
    ready.fetch_add(1, std::memory_order_relaxed);
    // acquire: pairs with open_when()'s release, so the workers see the
    // parent's initialisation of the shared data. Spin briefly between yields
    // so that a worker on an idle core starts the moment the gate opens.
    for (unsigned spins = 0; open.load(std::memory_order_acquire) == 0; ++spins) {
      cpu_relax();
      if (spins % 256 == 255) ::sched_yield();
    }
  }
  /// Waits for `parties` workers, then opens; returns the opening time (ns).
  std::int64_t open_when(std::uint32_t parties) noexcept {
    while (ready.load(std::memory_order_relaxed) < parties) ::sched_yield();
    const std::int64_t t0 = now_ns();
    open.store(1, std::memory_order_release);
    return t0;
  }
};

// ---------------------------------------------------------------------------
// The contention runner: K modifications of shared data by P processes.

enum class mode {
  serial,    // one process, no lock
  unlocked,  // P processes, no lock: each does K/P racy modifications
  locked,    // P processes, a lock per modification, until K are done
  atomic,    // P processes, lock-free fetch_add (counter only)
  batched,   // P processes, a lock per batch of kBatch modifications
};
inline constexpr std::uint64_t kBatch = 64;
inline constexpr int kMaxProcs = 64;

enum class data { counter, record };

struct alignas(64) worker_slot {
  std::uint64_t ops;          // modifications this worker made
  std::uint64_t torn;         // records it saw with disagreeing words
  std::int64_t end_ns;        // when it finished
  std::uint64_t futex_calls;  // procsync's futex system calls in this worker (procsync locks only)
};

struct contention_area {
  start_gate gate;
  alignas(64) std::uint64_t counter;
  alignas(64) std::uint64_t record[8];
  alignas(64) worker_slot slots[kMaxProcs];
};

/// The value of the shared data (the counter, or the record's first word).
inline std::uint64_t current(contention_area& a, data d) noexcept {
  return std::atomic_ref<std::uint64_t>(d == data::counter ? a.counter : a.record[0])
      .load(std::memory_order_relaxed);
}

/// One modification. Word accesses are relaxed atomics so that the unlocked
/// runs race without undefined behaviour (on x86 they are plain moves); the
/// locks provide all ordering. Returns whether a torn record was seen.
inline bool modify(contention_area& a, data d) noexcept {
  using ref = std::atomic_ref<std::uint64_t>;
  if (d == data::counter) {
    ref c(a.counter);
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return false;
  }
  const std::uint64_t v = ref(a.record[0]).load(std::memory_order_relaxed);
  bool torn = false;
  for (int i = 1; i < 8; ++i) torn |= ref(a.record[i]).load(std::memory_order_relaxed) != v;
  for (int i = 0; i < 8; ++i) ref(a.record[i]).store(v + 1, std::memory_order_relaxed);
  return torn;
}

template <class L>
int contention_worker(contention_area& a, worker_slot& me, L* lock, mode m, data d, std::uint64_t total,
                      std::uint64_t share) {
  a.gate.arrive_and_wait();
  // Relaxed: a per-process statistic read by this process only.
  const std::uint64_t futex_before = procsync::detail::futex_syscalls.load(std::memory_order_relaxed);
  std::uint64_t ops = 0, torn = 0;
  switch (m) {
    case mode::serial:
    case mode::unlocked:
      for (; ops < share; ++ops) torn += modify(a, d);
      break;
    case mode::locked:
      for (;;) {
        lock->lock();
        if (current(a, d) >= total) {
          lock->unlock();
          break;
        }
        torn += modify(a, d);
        lock->unlock();
        ++ops;
      }
      break;
    case mode::batched:
      for (;;) {
        lock->lock();
        const std::uint64_t done = current(a, d);
        const std::uint64_t n = done >= total ? 0 : std::min(kBatch, total - done);
        for (std::uint64_t i = 0; i < n; ++i) torn += modify(a, d);
        lock->unlock();
        if (n == 0) break;
        ops += n;
      }
      break;
    case mode::atomic: {
      std::atomic_ref<std::uint64_t> c(a.counter);
      // relaxed: the counter is the only shared datum; no other data is published.
      while (c.fetch_add(1, std::memory_order_relaxed) < total) ++ops;
      break;
    }
  }
  me.ops = ops;
  me.torn = torn;
  me.end_ns = now_ns();
  me.futex_calls = procsync::detail::futex_syscalls.load(std::memory_order_relaxed) - futex_before;
  return 0;
}

/// Fairness of one run: min/max of the per-process operation counts
/// (1 = perfectly even, 0 = some process starved).
struct op_spread {
  std::uint64_t lo = ~std::uint64_t{0};
  std::uint64_t hi = 0;
  void add(std::uint64_t ops) noexcept {
    lo = std::min(lo, ops);
    hi = std::max(hi, ops);
  }
  double min_max() const noexcept { return hi == 0 ? 1.0 : static_cast<double>(lo) / static_cast<double>(hi); }
};

/// Runs the benchmark: per iteration, fork `procs` workers that make `total`
/// modifications between them. Reports ops_per_s, ns_per_op, lost updates,
/// torn records and fairness (min/max of per-process op counts, and their
/// coefficient of variation).
/// Sets the counters every multi-process run reports (procs, ops/s, ns/op,
/// lost updates per run) from `runs` runs of `total` operations each, and
/// returns the operations done in all.
inline double report_throughput(benchmark::State& state, int procs, std::uint64_t total, std::uint64_t runs, double seconds,
                                double lost) {
  const double n = static_cast<double>(runs);
  const double ops = static_cast<double>(total) * n;
  state.counters["procs"] = procs;
  state.counters["ops_per_s"] = ops / seconds;
  state.counters["ns_per_op"] = seconds * 1e9 / ops;
  state.counters["lost"] = lost / n;
  return ops;
}

template <class L>
void run_contention(benchmark::State& state, mode m, data d, int procs) {
  const std::uint64_t total = total_ops();
  lock_holder<L> holder;
  L* lock = &holder.get();
  shared<contention_area> area;
  double seconds = 0, lost = 0, torn = 0, min_max = 0, cv = 0, futex_calls = 0;
  std::uint64_t runs = 0;
  for (auto _ : state) {
    contention_area& a = *area;
    a.gate.ready.store(0);
    a.gate.open.store(0);
    a.counter = 0;
    std::fill(std::begin(a.record), std::end(a.record), 0);
    std::vector<pid_t> pids;
    for (int p = 0; p < procs; ++p) {
      a.slots[p] = worker_slot{};
      const std::uint64_t share = total / static_cast<std::uint64_t>(procs) +
                                  (static_cast<std::uint64_t>(p) < total % static_cast<std::uint64_t>(procs));
      pids.push_back(fork_child([&a, p, lock, m, d, total, share] {
        return contention_worker(a, a.slots[p], lock, m, d, total, share);
      }));
    }
    const std::int64_t t0 = a.gate.open_when(static_cast<std::uint32_t>(procs));
    if (!reap(pids)) {
      state.SkipWithError("a worker process failed or hung");
      break;
    }
    std::int64_t t1 = t0;
    std::uint64_t sum = 0, run_torn = 0;
    op_spread spread;
    for (int p = 0; p < procs; ++p) {
      const worker_slot& s = a.slots[p];
      t1 = std::max(t1, s.end_ns);
      sum += s.ops;
      spread.add(s.ops);
      run_torn += s.torn;
      futex_calls += static_cast<double>(s.futex_calls);
    }
    const double mean = static_cast<double>(sum) / procs;
    double var = 0;
    for (int p = 0; p < procs; ++p) var += std::pow(static_cast<double>(a.slots[p].ops) - mean, 2);
    var /= procs;
    const std::uint64_t final_value = m == mode::atomic ? a.counter - static_cast<std::uint64_t>(procs)
                                                        : current(a, d);
    const double elapsed = static_cast<double>(t1 - t0) * 1e-9;
    state.SetIterationTime(elapsed);
    seconds += elapsed;
    lost += static_cast<double>(sum - std::min(sum, final_value));
    torn += static_cast<double>(run_torn);
    min_max += spread.min_max();
    cv += mean == 0 ? 0.0 : std::sqrt(var) / mean;
    ++runs;
  }
  if (runs == 0) return;
  const double n = static_cast<double>(runs);
  const double ops = report_throughput(state, procs, total, runs, seconds, lost);
  state.counters["lost_pct"] = 100.0 * lost / ops;
  state.counters["torn"] = torn / n;
  state.counters["fair_min_max"] = min_max / n;
  state.counters["fair_cv"] = cv / n;
  // procsync's own count of futex calls per modification (the other locks' calls happen inside libc).
  if constexpr (requires { L::label; })
    if (std::string_view(L::label).starts_with("procsync")) state.counters["futex_calls_per_op"] = futex_calls / ops;
}

inline const char* data_name(data d) { return d == data::counter ? "counter" : "record"; }

/// Registers one multi-process run: name "<prefix>/<impl>/<data>/procs:<P>".
template <class L>
void register_contention(const std::string& prefix, const char* impl, mode m, data d, int procs) {
  const std::string name =
      prefix + "/" + impl + "/" + data_name(d) + "/procs:" + std::to_string(procs);
  benchmark::RegisterBenchmark(name.c_str(), [m, d, procs](benchmark::State& s) { run_contention<L>(s, m, d, procs); })
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond)
      ->Iterations(static_cast<benchmark::IterationCount>(run_iterations()));
}

/// A lock type that takes no lock (for the serial, unlocked and atomic runs).
struct no_lock {
  void lock() noexcept {}
  void unlock() noexcept {}
};

// ---------------------------------------------------------------------------
// A generic multi-process run: P workers, each doing a fixed share of `total`.

struct share_area {
  start_gate gate;
  alignas(64) worker_slot slots[kMaxProcs];
};

/// Per iteration: reset() in the parent, then `procs` forked workers each run
/// body(p, share) (their share of total_ops()), then the parent calls
/// final_value(), which must equal total_ops() when no update was lost.
/// Reports ops_per_s, ns_per_op and lost.
template <class Reset, class Body, class Final>
void run_shares(benchmark::State& state, int procs, Reset reset, Body body, Final final_value) {
  const std::uint64_t total = total_ops();
  shared<share_area> area;
  double seconds = 0, lost = 0;
  std::uint64_t runs = 0;
  for (auto _ : state) {
    share_area& a = *area;
    a.gate.ready.store(0);
    a.gate.open.store(0);
    reset();
    std::vector<pid_t> pids;
    for (int p = 0; p < procs; ++p) {
      a.slots[p] = worker_slot{};
      const std::uint64_t share = total / static_cast<std::uint64_t>(procs) +
                                  (static_cast<std::uint64_t>(p) < total % static_cast<std::uint64_t>(procs));
      pids.push_back(fork_child([&a, &body, p, share] {
        a.gate.arrive_and_wait();
        body(p, share);
        a.slots[p].ops = share;
        a.slots[p].end_ns = now_ns();
        return 0;
      }));
    }
    const std::int64_t t0 = a.gate.open_when(static_cast<std::uint32_t>(procs));
    if (!reap(pids)) {
      state.SkipWithError("a worker process failed or hung");
      break;
    }
    std::int64_t t1 = t0;
    for (int p = 0; p < procs; ++p) t1 = std::max(t1, a.slots[p].end_ns);
    const double elapsed = static_cast<double>(t1 - t0) * 1e-9;
    state.SetIterationTime(elapsed);
    seconds += elapsed;
    const std::uint64_t got = final_value();
    lost += static_cast<double>(total - std::min(total, got));
    ++runs;
  }
  if (runs == 0) return;
  (void)report_throughput(state, procs, total, runs, seconds, lost);
}

// ---------------------------------------------------------------------------
// Percentiles of latency samples

inline double percentile(std::vector<double>& samples, double q) {
  if (samples.empty()) return 0;
  const auto k = static_cast<std::size_t>(q * static_cast<double>(samples.size() - 1));
  std::nth_element(samples.begin(), samples.begin() + static_cast<std::ptrdiff_t>(k), samples.end());
  return samples[k];
}

}  // namespace bench
