// bench/bench_wait.cpp — how long a process waits for a contended lock: the
// distribution, not just the throughput.
//
// wait/<impl>/procs:<P>: P in {2, 4, 8} forked processes take one lock until
// K = PROCSYNC_BENCH_WAIT_OPS acquisitions (default 400000, all processes
// together) have done their work. Each acquisition: t0 = now; lock(); t1 =
// now; a short critical section (8 increments of a shared 64-bit counter);
// unlock(); t1 - t0 goes into the process's own histogram in shared memory;
// then about 50 ns of local arithmetic outside the lock. The parent merges
// the histograms of all processes and all runs.
// Why: throughput alone rewards a lock that lets the process that just
// unlocked barge straight back in: it keeps the lock's cache line and skips
// a wake-up, so ops/s goes up, but a sleeping waiter may lose race after race
// and wait for many hand-overs. That shows up in the tail of the waits, not
// in the mean: a lock that is eventually fair bounds the tail (the target:
// p99.9 at P = 4 within 10x the median). With P above the core count a
// holder can also be preempted, which lengthens every waiter's wait.
// Histogram: 8 buckets per power of two (values below 8 ns exact), so a
// percentile is the midpoint of its bucket, within 1/16 of the true value;
// max_ns is exact. Every wait includes one clock read (about 20-30 ns), and
// an acquisition that finds the lock free counts as a (short) wait too: when
// most do, p50 is the fast path and tail_ratio sets the waits that slept
// against it.
// Counters: procs, ops_per_s, ns_per_op, lost (0: a short count fails the run),
// p50_ns, p99_ns, p999_ns, max_ns, tail_ratio (p999_ns / p50_ns) and
// fair_min_max (min/max of per-process acquisitions, averaged over the runs:
// 1 = even, 0 = some process starved). The counter must end at exactly 8K,
// and the histograms must hold exactly K waits; otherwise the run fails.
// impls: procsync (procsync::mutex), pthread and pthread_robust
// (PROCESS_SHARED pthread mutexes, glibc's normal and robust kinds).
#include <bit>

#include "bench_common.hpp"

namespace {

using namespace bench;

inline std::uint64_t wait_ops() { return env_u64("PROCSYNC_BENCH_WAIT_OPS", 400000); }

inline constexpr int kIncrements = 8;   // shared-counter increments per critical section
inline constexpr int kLocalSteps = 32;  // dependent multiply-adds outside the lock (~50 ns)

// ---------------------------------------------------------------------------
// Wait-time histogram: 8 sub-buckets per power of two.

inline constexpr int kSubBits = 3;
inline constexpr std::uint64_t kSub = 1u << kSubBits;
// Values below kSub get a bucket each; each power of two from 2^kSubBits up
// to 2^63 gets kSub.
inline constexpr std::size_t kBuckets = (64 - kSubBits + 1) * kSub;

constexpr std::size_t bucket_of(std::uint64_t ns) noexcept {
  if (ns < kSub) return static_cast<std::size_t>(ns);
  const int e = std::bit_width(ns) - 1;  // >= kSubBits
  return static_cast<std::size_t>(e - kSubBits + 1) * kSub + ((ns >> (e - kSubBits)) & (kSub - 1));
}
constexpr std::uint64_t bucket_low(std::size_t i) noexcept {
  if (i < kSub) return i;
  const int e = static_cast<int>(i / kSub) + kSubBits - 1;
  return (kSub + i % kSub) << (e - kSubBits);
}
constexpr std::uint64_t bucket_width(std::size_t i) noexcept {
  return i < kSub ? 1 : std::uint64_t{1} << (static_cast<int>(i / kSub) - 1);
}
static_assert(bucket_of(7) == 7 && bucket_of(8) == 8 && bucket_of(15) == 15 && bucket_of(16) == 16);
static_assert(bucket_of(17) == 16 && bucket_of(18) == 17 && bucket_of(~std::uint64_t{0}) == kBuckets - 1);
static_assert(bucket_low(bucket_of(1000)) <= 1000 &&
              1000 < bucket_low(bucket_of(1000)) + bucket_width(bucket_of(1000)));
static_assert(bucket_low(kBuckets - 1) + (bucket_width(kBuckets - 1) - 1) == ~std::uint64_t{0});

/// One worker's log, written only by that worker (its own cache lines).
struct alignas(64) wait_log {
  std::uint64_t count[kBuckets];
  std::uint64_t ops;     // acquisitions that did their work (= the sum of count)
  std::uint64_t max_ns;  // the longest wait, exact
  std::int64_t end_ns;   // when the worker finished
};

struct wait_area {
  start_gate gate;
  alignas(64) std::uint64_t counter;
  wait_log logs[kMaxProcs];
};

/// The work between acquisitions: kLocalSteps dependent multiply-adds that
/// the compiler may not fold together.
inline std::uint64_t local_work(std::uint64_t x) noexcept {
  for (int i = 0; i < kLocalSteps; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    benchmark::DoNotOptimize(x);
  }
  return x;
}

template <class L>
int wait_worker(wait_area& a, wait_log& log, L& lock, int p, std::uint64_t target) {
  // Relaxed atomic accesses, as bench_common's modify(): the lock orders them,
  // and a broken lock shows up as a short count, not as undefined behaviour.
  std::atomic_ref<std::uint64_t> counter(a.counter);
  std::uint64_t x = static_cast<std::uint64_t>(p) + 1, ops = 0, longest = 0;
  a.gate.arrive_and_wait();
  for (;;) {
    const std::int64_t t0 = now_ns();
    lock.lock();
    const std::int64_t t1 = now_ns();
    const bool done = counter.load(std::memory_order_relaxed) >= target;
    if (!done)
      for (int i = 0; i < kIncrements; ++i)
        counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    lock.unlock();
    if (done) break;
    // Recorded outside the lock: the critical section is the increments only,
    // the same for every impl.
    const auto waited = static_cast<std::uint64_t>(t1 - t0);
    ++log.count[bucket_of(waited)];
    longest = std::max(longest, waited);
    ++ops;
    x = local_work(x);
  }
  log.ops = ops;
  log.max_ns = longest;
  log.end_ns = now_ns();
  return 0;
}

/// The wait at quantile q of a merged histogram of n waits: the midpoint of
/// the bucket that holds the ceil(q n)-th shortest, no more than the exact max.
double histogram_percentile(const std::vector<std::uint64_t>& hist, std::uint64_t n, double q, std::uint64_t max) {
  if (n == 0) return 0;
  const auto rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(n))));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < hist.size(); ++i) {
    seen += hist[i];
    if (seen >= rank) {
      const double mid = static_cast<double>(bucket_low(i)) + static_cast<double>(bucket_width(i) - 1) / 2;
      return std::min(mid, static_cast<double>(max));
    }
  }
  return static_cast<double>(max);
}

template <class L>
void run_wait(benchmark::State& state, int procs) {
  const std::uint64_t total = wait_ops();
  const std::uint64_t target = total * kIncrements;
  lock_holder<L> holder;
  L& lock = holder.get();
  shared<wait_area> area;
  std::vector<std::uint64_t> merged(kBuckets, 0);
  std::uint64_t waits = 0, longest = 0, runs = 0;
  double seconds = 0, min_max = 0;
  for (auto _ : state) {
    wait_area& a = *area;
    a.gate.ready.store(0);
    a.gate.open.store(0);
    a.counter = 0;
    std::vector<pid_t> pids;
    for (int p = 0; p < procs; ++p) {
      a.logs[p] = wait_log{};
      pids.push_back(fork_child([&a, &lock, p, target] { return wait_worker(a, a.logs[p], lock, p, target); }));
    }
    const std::int64_t t0 = a.gate.open_when(static_cast<std::uint32_t>(procs));
    if (!reap(pids)) {
      state.SkipWithError("a worker process failed or hung");
      break;
    }
    std::int64_t t1 = t0;
    std::uint64_t ops = 0, logged = 0;
    op_spread spread;
    for (int p = 0; p < procs; ++p) {
      const wait_log& log = a.logs[p];
      t1 = std::max(t1, log.end_ns);
      ops += log.ops;
      spread.add(log.ops);
      for (std::size_t i = 0; i < kBuckets; ++i) logged += log.count[i];
    }
    if (a.counter != target || ops != total || logged != total) {
      const std::string why = "counts disagree: counter " + std::to_string(a.counter) + " (expected " +
                              std::to_string(target) + "), acquisitions " + std::to_string(ops) + ", waits logged " +
                              std::to_string(logged) + " (expected " + std::to_string(total) + ")";
      state.SkipWithError(why.c_str());
      break;
    }
    for (int p = 0; p < procs; ++p) {
      const wait_log& log = a.logs[p];
      for (std::size_t i = 0; i < kBuckets; ++i) merged[i] += log.count[i];
      longest = std::max(longest, log.max_ns);
    }
    waits += logged;
    const double elapsed = static_cast<double>(t1 - t0) * 1e-9;
    state.SetIterationTime(elapsed);
    seconds += elapsed;
    min_max += spread.min_max();
    ++runs;
  }
  if (runs == 0) return;
  // Every counted run was exact (checked above): nothing lost.
  (void)report_throughput(state, procs, total, runs, seconds, 0);
  const double p50 = histogram_percentile(merged, waits, 0.50, longest);
  const double p999 = histogram_percentile(merged, waits, 0.999, longest);
  state.counters["p50_ns"] = p50;
  state.counters["p99_ns"] = histogram_percentile(merged, waits, 0.99, longest);
  state.counters["p999_ns"] = p999;
  state.counters["max_ns"] = static_cast<double>(longest);
  state.counters["tail_ratio"] = p50 > 0 ? p999 / p50 : 0;
  state.counters["fair_min_max"] = min_max / static_cast<double>(runs);
}

template <class L>
void register_wait(int procs) {
  const std::string name = std::string("wait/") + L::label + "/procs:" + std::to_string(procs);
  benchmark::RegisterBenchmark(name.c_str(), [procs](benchmark::State& s) { run_wait<L>(s, procs); })
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond)
      ->Iterations(static_cast<benchmark::IterationCount>(run_iterations()));
}

}  // namespace

int main(int argc, char** argv) {
  for (const int procs : {2, 4, 8}) {
    register_wait<procsync_mutex>(procs);
    register_wait<pthread_normal>(procs);
    register_wait<pthread_robust>(procs);
  }
  return bench::run_registered(argc, argv);
}
