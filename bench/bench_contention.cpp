// bench/bench_contention.cpp — serial vs locked modification of shared data.
//
// K modifications (PROCSYNC_BENCH_OPS, default 1000000) of shared data by P in
// {1, 2, 4, 8} forked processes, for a 64-bit counter and for a 64-byte record
// whose 8 words must always agree:
//   serial     one process, no lock (the baseline every ratio starts from);
//   unlocked   P processes, no lock: K/P each; `lost` counts lost updates and
//              `torn` the records seen with disagreeing words;
//   <lock>     P processes, one lock acquisition per modification, until K are
//              done, for every lock implementation compared;
//   atomic     lock-free fetch_add (counter only: 64 bytes have no atomic add);
//   batched    procsync::mutex and pthread taken once per 64 modifications.
// Counters: ops_per_s, ns_per_op, lost, lost_pct, torn, fair_min_max (min/max
// of per-process op counts: 1 = perfectly even, 0 = some process starved) and
// fair_cv (their coefficient of variation). With P above the core count a lock
// holder can be preempted; that is where implementations differ most.
#include "bench_common.hpp"

namespace {

using namespace bench;

template <class L>
void register_locked(data d, int procs) {
  register_contention<L>("contention", L::label, mode::locked, d, procs);
}

}  // namespace

int main(int argc, char** argv) {
  for (const data d : {data::counter, data::record}) {
    register_contention<no_lock>("contention", "serial", mode::serial, d, 1);
    for (const int procs : {1, 2, 4, 8}) {
      register_contention<no_lock>("contention", "unlocked", mode::unlocked, d, procs);
      register_locked<procsync_mutex>(d, procs);
      register_locked<pthread_normal>(d, procs);
      register_locked<pthread_robust>(d, procs);
      register_locked<boost_mutex>(d, procs);
      register_locked<boost_named>(d, procs);
      register_locked<sem_lock>(d, procs);
      register_locked<spin_lock>(d, procs);
      if (d == data::counter) register_contention<no_lock>("contention", "atomic", mode::atomic, d, procs);
      register_contention<procsync_mutex>("contention", "procsync_batched64", mode::batched, d, procs);
      register_contention<pthread_normal>("contention", "pthread_batched64", mode::batched, d, procs);
    }
  }
  return bench::run_registered(argc, argv);
}
