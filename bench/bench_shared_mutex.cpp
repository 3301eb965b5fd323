// bench/bench_shared_mutex.cpp — procsync::shared_mutex against pthread_rwlock_t.
//
// read_mostly/<impl>/procs:<P>: P in {1, 2, 4, 8} forked processes share K =
//   PROCSYNC_BENCH_OPS operations, K/P each (bench_common's run_shares). Each
//   process picks every operation with a small LCG seeded by its index, so
//   every impl runs exactly the same mix: about 95 % take the lock shared and
//   read a 64-byte record of 8 words (`torn` counts reads whose words
//   disagree), about 5 % take it exclusively and write all 8 words with the
//   next value. Fixed shares rather than a shared claim counter: a counter
//   bumped on every operation would put one contended cache line into every
//   read, and hide the difference reader concurrency makes. Counters:
//   ops_per_s, ns_per_op (wall time of the run over K), reads and writes (per
//   run), torn (must be 0), lost (writes minus the record's final value: must
//   be 0).
// uncontended_shared/<impl>: lock_shared+unlock_shared in one process;
// uncontended_exclusive/<impl>: lock+unlock in one process. Both report
//   `bytes`, the size of the lock object (sizeof(procsync::shared_mutex) = 1328,
//   sizeof(pthread_rwlock_t) = 56, sizeof(pthread_mutex_t) = 40 on x86-64
//   glibc), and futex_calls_per_op (procsync rows: must be 0).
// impls: procsync (procsync::shared_mutex); pthread_rwlock (PROCESS_SHARED,
//   glibc's default kind, which prefers readers); pthread_rwlock_wpref
//   (PROCESS_SHARED, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP: waiting
//   writers block new readers, as procsync's gate does); pthread_mutex (a
//   PROCESS_SHARED mutex taken for every operation: the baseline without
//   reader concurrency).
// Every lock lives in its own shared mapping (lock_holder), the record in
// another, so all impls see the same placement.
#include <procsync/shared_mutex.hpp>

#include "bench_common.hpp"

namespace {

using namespace bench;

struct procsync_rw : procsync::shared_mutex {
  static constexpr const char* label = "procsync";
  using object = procsync::shared_mutex;
};

/// pthread_rwlock_t with PTHREAD_PROCESS_SHARED; PreferWriter selects glibc's
/// writer-preferring kind instead of the default (reader-preferring) one.
template <bool PreferWriter>
struct pthread_rw {
  static constexpr const char* label = PreferWriter ? "pthread_rwlock_wpref" : "pthread_rwlock";
  using object = pthread_rwlock_t;
  pthread_rwlock_t rw;
  pthread_rw() {
    pthread_rwlockattr_t attr;
    ::pthread_rwlockattr_init(&attr);
    ::pthread_rwlockattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (PreferWriter) ::pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    if (::pthread_rwlock_init(&rw, &attr) != 0) die("pthread_rwlock_init");
    ::pthread_rwlockattr_destroy(&attr);
  }
  pthread_rw(const pthread_rw&) = delete;
  ~pthread_rw() { ::pthread_rwlock_destroy(&rw); }
  void lock() noexcept { ::pthread_rwlock_wrlock(&rw); }
  void unlock() noexcept { ::pthread_rwlock_unlock(&rw); }
  void lock_shared() noexcept { ::pthread_rwlock_rdlock(&rw); }
  void unlock_shared() noexcept { ::pthread_rwlock_unlock(&rw); }
};

/// The baseline: readers exclude each other too.
struct pthread_mutex_rw : pthread_normal {
  static constexpr const char* label = "pthread_mutex";
  using object = pthread_mutex_t;
  void lock_shared() noexcept { lock(); }
  void unlock_shared() noexcept { unlock(); }
};

// `bytes` reports sizeof(object): the wrappers must add nothing to it.
static_assert(sizeof(procsync_rw) == sizeof(procsync::shared_mutex));
static_assert(sizeof(pthread_rw<false>) == sizeof(pthread_rwlock_t));
static_assert(sizeof(pthread_mutex_rw) == sizeof(pthread_mutex_t));

/// Presents the shared side as lock()/unlock(), so bench_common's
/// uncontended<L> times lock_shared+unlock_shared.
template <class RW>
struct shared_side {
  RW rw;
  void lock() { rw.lock_shared(); }
  void unlock() { rw.unlock_shared(); }
};

template <class L, class RW>
void uncontended_rw(benchmark::State& state) {
  uncontended<L>(state);
  state.counters["bytes"] = static_cast<double>(sizeof(typename RW::object));
}

// ---------------------------------------------------------------------------
// read_mostly

struct alignas(64) tally {
  std::uint64_t reads, writes, torn;
};

struct record_area {
  alignas(64) std::uint64_t record[8];
  alignas(64) tally tallies[kMaxProcs];
};

/// Worker p's operations: an LCG (Knuth's MMIX constants) seeded by p, whose
/// high bits choose a write 5 times in 100. Cheap next to any lock operation.
class op_mix {
 public:
  explicit op_mix(int p) noexcept : x_(0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(p + 1)) {}
  bool next_is_write() noexcept {
    x_ = x_ * 6364136223846793005ull + 1442695040888963407ull;
    return (x_ >> 32) % 100 < 5;
  }

 private:
  std::uint64_t x_;
};

template <class RW>
void read_mostly_worker(RW& lock, record_area& a, int p, std::uint64_t share) {
  // Relaxed atomic word accesses, as bench_common's modify(): the lock orders
  // them, and a broken lock shows up as `torn` or `lost` rather than as
  // undefined behaviour the compiler may exploit.
  using ref = std::atomic_ref<std::uint64_t>;
  op_mix mix(p);
  tally t{0, 0, 0};
  for (std::uint64_t i = 0; i < share; ++i) {
    if (mix.next_is_write()) {
      lock.lock();
      const std::uint64_t v = ref(a.record[0]).load(std::memory_order_relaxed) + 1;
      for (auto& word : a.record) ref(word).store(v, std::memory_order_relaxed);
      lock.unlock();
      ++t.writes;
    } else {
      lock.lock_shared();
      const std::uint64_t v = ref(a.record[0]).load(std::memory_order_relaxed);
      bool torn = false;
      for (int w = 1; w < 8; ++w) torn |= ref(a.record[w]).load(std::memory_order_relaxed) != v;
      lock.unlock_shared();
      ++t.reads;
      t.torn += torn;
    }
  }
  a.tallies[p] = t;
}

template <class RW>
void read_mostly(benchmark::State& state, int procs) {
  lock_holder<RW> holder;
  RW& lock = holder.get();
  shared<record_area> area;
  double reads = 0, writes = 0, torn = 0, runs = 0;
  run_shares(
      state, procs,
      [&] {
        std::fill(std::begin(area->record), std::end(area->record), 0);
        std::fill(std::begin(area->tallies), std::end(area->tallies), tally{0, 0, 0});
      },
      [&](int p, std::uint64_t share) { read_mostly_worker(lock, *area, p, share); },
      [&] {
        std::uint64_t run_reads = 0;
        for (int p = 0; p < procs; ++p) {
          const tally& t = area->tallies[p];
          run_reads += t.reads;
          reads += static_cast<double>(t.reads);
          writes += static_cast<double>(t.writes);
          torn += static_cast<double>(t.torn);
        }
        ++runs;
        // Every write adds one to the record: reads plus its final value is
        // K exactly when no write was lost (run_shares reports the shortfall).
        return run_reads + area->record[0];
      });
  if (runs == 0) return;
  state.counters["reads"] = reads / runs;
  state.counters["writes"] = writes / runs;
  state.counters["torn"] = torn / runs;
}

template <class RW>
void register_uncontended() {
  benchmark::RegisterBenchmark((std::string("uncontended_shared/") + RW::label).c_str(),
                               uncontended_rw<shared_side<RW>, RW>);
  benchmark::RegisterBenchmark((std::string("uncontended_exclusive/") + RW::label).c_str(), uncontended_rw<RW, RW>);
}

template <class RW>
void register_read_mostly(int procs) {
  const std::string name = std::string("read_mostly/") + RW::label + "/procs:" + std::to_string(procs);
  benchmark::RegisterBenchmark(name.c_str(), [procs](benchmark::State& s) { read_mostly<RW>(s, procs); })
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond)
      ->Iterations(static_cast<benchmark::IterationCount>(run_iterations()));
}

template <class... RW>
void register_all() {
  (register_uncontended<RW>(), ...);
  for (const int procs : {1, 2, 4, 8}) (register_read_mostly<RW>(procs), ...);
}

}  // namespace

int main(int argc, char** argv) {
  register_all<procsync_rw, pthread_rw<false>, pthread_rw<true>, pthread_mutex_rw>();
  return bench::run_registered(argc, argv);
}
