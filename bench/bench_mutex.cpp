// bench/bench_mutex.cpp — what one lock+unlock costs.
//
// uncontended/<impl>: lock+unlock in one process, the lock in shared memory
//   (std::mutex in process memory: it cannot be shared between processes).
//   procsync rows also report futex_calls_per_op, which must be 0: no system
//   call without waiters.
// contended/<impl>/counter/procs:<P>: P = 2..4 forked processes each taking the
//   lock once per increment of a shared counter, 1000000 increments in all
//   (PROCSYNC_BENCH_OPS); ns_per_op is per locked increment.
// uncontended/pthread_again, contended/pthread_again/...: pthread's mutex
//   measured a second time under another name. Identical code, so its per-run
//   ratio to `pthread` is 1.00 but for the machine: the A/A noise floor that
//   every other ratio of the run carries (the summary prints it).
// syscall/futex_wake_nobody, syscall/futex_wait_changed: one futex call that
//   finds nothing to do (a wake with no sleeper; a wait on a word that no
//   longer holds the expected value, EAGAIN). Under contention nearly every
//   futex call a lock makes is one of these (scripts/count-futex-calls.sh), so
//   this is the least any acquisition that enters the kernel costs.
#include <linux/futex.h>
#include <sys/syscall.h>

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

struct pthread_again : pthread_normal {
  static constexpr const char* label = "pthread_again";
};

void futex_call_that_finds_nothing(benchmark::State& state, int op) {
  std::uint32_t word = 1;  // FUTEX_WAIT expects 0: the value "changed"
  for (auto _ : state) {
    benchmark::DoNotOptimize(::syscall(SYS_futex, &word, op | FUTEX_PRIVATE_FLAG, op == FUTEX_WAKE ? 1 : 0, nullptr,
                                       nullptr, 0));
  }
}

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
  register_both<pthread_again>();
  register_both<pthread_robust>();
  register_both<boost_mutex>();
  register_both<sem_lock>();
  register_both<spin_lock>();
  register_both<std_mutex>();
  benchmark::RegisterBenchmark("syscall/futex_wake_nobody", futex_call_that_finds_nothing, FUTEX_WAKE);
  benchmark::RegisterBenchmark("syscall/futex_wait_changed", futex_call_that_finds_nothing, FUTEX_WAIT);
  return bench::run_registered(argc, argv);
}
