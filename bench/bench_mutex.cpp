// bench/bench_mutex.cpp — what one lock+unlock costs.
//
// uncontended/<impl>: lock+unlock in one process, the lock in shared memory
//   (std::mutex in process memory: it cannot be shared between processes).
//   procsync rows also report futex_calls_per_op, which must be 0: no system
//   call without waiters.
// contended/<impl>/counter/procs:<P>: P = 2..4 forked processes each taking the
//   lock once per increment of a shared counter, 1000000 increments in all
//   (PROCSYNC_BENCH_OPS); ns_per_op is per locked increment.
#include <mutex>

#include "bench_common.hpp"

namespace {

using namespace bench;

struct std_mutex {
  static constexpr const char* label = "std_mutex";
  static constexpr bool process_local = true;
  std::mutex m;
  void lock() { m.lock(); }
  void unlock() { m.unlock(); }
};

template <class L>
void register_both() {
  benchmark::RegisterBenchmark((std::string("uncontended/") + L::label).c_str(), uncontended<L>);
  if constexpr (!std::is_same_v<L, std_mutex>)
    for (const int procs : {2, 3, 4}) register_contention<L>("contended", L::label, mode::locked, data::counter, procs);
}

}  // namespace

int main(int argc, char** argv) {
  register_both<procsync_mutex>();
  register_both<procsync_recursive>();
  register_both<pthread_normal>();
  register_both<pthread_robust>();
  register_both<boost_mutex>();
  register_both<sem_lock>();
  register_both<spin_lock>();
  register_both<std_mutex>();
  return bench::run_registered(argc, argv);
}
