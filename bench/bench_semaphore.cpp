// bench/bench_semaphore.cpp — semaphore acquire+release.
//
// uncontended/<impl>: acquire+release of a semaphore holding one permit, in one
//   process (procsync rows report futex_calls_per_op, which must be 0).
// contended/<impl>/counter/procs:2: two forked processes use the one-permit
//   semaphore as a lock around increments of a shared counter until 1000000
//   (PROCSYNC_BENCH_OPS) are done; ns_per_op is per acquire+increment+release.
// Compared: procsync::counting_semaphore (plain and, uncontended only, in undo
// mode),
// procsync::binary_semaphore, POSIX sem_t, Boost interprocess_semaphore.
#include <boost/interprocess/sync/interprocess_semaphore.hpp>

#include <procsync/semaphore.hpp>

#include "bench_common.hpp"

namespace {

using namespace bench;

struct procsync_counting {
  static constexpr const char* label = "procsync_counting";
  procsync::counting_semaphore<> s{1};
  void lock() { s.acquire(); }
  void unlock() { s.release(); }
};

struct procsync_undo {
  static constexpr const char* label = "procsync_counting_undo";
  procsync::counting_semaphore<procsync::detail::semaphore_value_max, 8> s{procsync::undo, 1};
  void lock() { s.acquire(); }
  void unlock() { s.release(); }
};

struct procsync_binary {
  static constexpr const char* label = "procsync_binary";
  procsync::binary_semaphore s{1};
  void lock() { s.acquire(); }
  void unlock() { s.release(); }
};

struct boost_semaphore {
  static constexpr const char* label = "boost_interprocess";
  boost::interprocess::interprocess_semaphore s{1};
  void lock() { s.wait(); }
  void unlock() { s.post(); }
};

template <class S>
void register_both(const char* label, bool contended = true) {
  benchmark::RegisterBenchmark((std::string("uncontended/") + label).c_str(), uncontended<S>);
  if (contended) register_contention<S>("contended", label, mode::locked, data::counter, 2);
}

}  // namespace

int main(int argc, char** argv) {
  register_both<procsync_counting>(procsync_counting::label);
  // Undo mode does per-process bookkeeping on every acquire/release (microseconds
  // each): its contended run would take seconds, so only the uncontended cost.
  register_both<procsync_undo>(procsync_undo::label, false);
  register_both<procsync_binary>(procsync_binary::label);
  register_both<sem_lock>(sem_lock::label);
  register_both<boost_semaphore>(boost_semaphore::label);
  return bench::run_registered(argc, argv);
}
