// bench/bench_shared_value.cpp — shared_value<T> vs a locked struct vs atomics.
//
// Each row is one way to add 1 to a shared 64-bit counter, or to every word of
// a 64-byte record:
//   sv_fetch_add      shared_value<uint64_t>::fetch_add(1) (one atomic RMW)
//   sv_update         shared_value<uint64_t>::update(v + 1) (a CAS loop)
//   sv_with_lock      shared_value<uint64_t>::with_lock (lock + CAS commit)
//   locked_struct     procsync::mutex + a plain uint64_t
//   atomic_fetch_add  std::atomic<uint64_t>::fetch_add (the floor)
//   sv_record_with_lock  shared_value<record>::with_lock (crash-consistent copy-and-commit)
//   sv_record_update     shared_value<record>::update
//   locked_record        procsync::mutex + a plain 64-byte record (not crash-consistent)
//   sv_record_load       shared_value<record>::load (seqlock read, no lock)
// uncontended/<row>: one process (CPU time per operation).
// contended/<row>/procs:P: P = 2, 4 forked processes share 1000000
//   (PROCSYNC_BENCH_OPS) updates; `lost` must be 0.
#include <procsync/shared_value.hpp>

#include "bench_common.hpp"

namespace {

using namespace bench;

struct record {
  std::uint64_t w[8];
};

struct sv_fetch_add {
  static constexpr const char* label = "sv_fetch_add";
  procsync::shared_value<std::uint64_t> v{0};
  void op() { v.fetch_add(1); }
  std::uint64_t value() const { return v.load(); }
  void reset() { v.store(0); }
};

struct sv_update {
  static constexpr const char* label = "sv_update";
  procsync::shared_value<std::uint64_t> v{0};
  void op() { v.update([](std::uint64_t x) { return x + 1; }); }
  std::uint64_t value() const { return v.load(); }
  void reset() { v.store(0); }
};

struct sv_with_lock {
  static constexpr const char* label = "sv_with_lock";
  procsync::shared_value<std::uint64_t> v{0};
  void op() { v.with_lock([](std::uint64_t& x) { ++x; }); }
  std::uint64_t value() const { return v.load(); }
  void reset() { v.store(0); }
};

struct locked_struct {
  static constexpr const char* label = "locked_struct";
  procsync::mutex m;
  std::uint64_t v = 0;
  void op() {
    std::lock_guard<procsync::mutex> g(m);
    ++v;
  }
  std::uint64_t value() const { return v; }
  void reset() { v = 0; }
};

struct atomic_fetch_add {
  static constexpr const char* label = "atomic_fetch_add";
  std::atomic<std::uint64_t> v{0};
  // relaxed: a counter that publishes nothing else.
  void op() { v.fetch_add(1, std::memory_order_relaxed); }
  std::uint64_t value() const { return v.load(); }
  void reset() { v.store(0); }
};

struct sv_record_with_lock {
  static constexpr const char* label = "sv_record_with_lock";
  procsync::shared_value<record> v{record{}};
  void op() {
    v.with_lock([](record& r) {
      for (auto& w : r.w) ++w;
    });
  }
  std::uint64_t value() const { return v.load().w[7]; }
  void reset() { v.store(record{}); }
};

struct sv_record_update {
  static constexpr const char* label = "sv_record_update";
  procsync::shared_value<record> v{record{}};
  void op() {
    v.update([](record& r) {
      for (auto& w : r.w) ++w;
    });
  }
  std::uint64_t value() const { return v.load().w[7]; }
  void reset() { v.store(record{}); }
};

struct locked_record {
  static constexpr const char* label = "locked_record";
  procsync::mutex m;
  record r{};
  void op() {
    std::lock_guard<procsync::mutex> g(m);
    for (auto& w : r.w) ++w;
  }
  std::uint64_t value() const { return r.w[7]; }
  void reset() { r = record{}; }
};

template <class Impl>
void uncontended(benchmark::State& state) {
  shared<Impl> impl;
  for (auto _ : state) impl->op();
  benchmark::DoNotOptimize(impl->value());
}

void uncontended_record_load(benchmark::State& state) {
  shared<procsync::shared_value<record>> v(record{});
  for (auto _ : state) {
    record r = v->load();
    benchmark::DoNotOptimize(r);
  }
}

template <class Impl>
void contended(benchmark::State& state, int procs) {
  shared<Impl> impl;
  Impl* p = &*impl;
  run_shares(
      state, procs, [p] { p->reset(); },
      [p](int, std::uint64_t share) {
        for (std::uint64_t i = 0; i < share; ++i) p->op();
      },
      [p] { return p->value(); });
}

template <class Impl>
void register_rows() {
  benchmark::RegisterBenchmark((std::string("uncontended/") + Impl::label).c_str(), uncontended<Impl>);
  for (const int procs : {2, 4}) {
    const std::string name = std::string("contended/") + Impl::label + "/procs:" + std::to_string(procs);
    benchmark::RegisterBenchmark(name.c_str(), [procs](benchmark::State& s) { contended<Impl>(s, procs); })
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond)
        ->Iterations(static_cast<benchmark::IterationCount>(run_iterations()));
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_rows<sv_fetch_add>();
  register_rows<sv_update>();
  register_rows<sv_with_lock>();
  register_rows<locked_struct>();
  register_rows<atomic_fetch_add>();
  register_rows<sv_record_with_lock>();
  register_rows<sv_record_update>();
  register_rows<locked_record>();
  benchmark::RegisterBenchmark("uncontended/sv_record_load", uncontended_record_load);
  return bench::run_registered(argc, argv);
}
