// bench/bench_instructions.cpp — how many instructions one uncontended
// lock+unlock executes, per implementation, counted rather than timed.
//
// Time per operation moves with the host (the same binary ran at 0.84x and at
// 1.15x pthread's uncontended time on two hosts of one VM); the instructions
// and the atomic read-modify-writes it executes do not. This program runs
// `pairs` lock+unlock pairs of one implementation inside measured_pairs(); run
// it under Valgrind's callgrind with collection switched on only inside that
// function (scripts/count-instructions.sh does), and the instructions counted
// divided by `pairs` are the cost of one pair, library calls included.
// `empty` is the loop alone, to subtract.
//
//   bench_instructions <impl> [pairs]      impl: empty, procsync,
//       procsync_recursive, pthread, pthread_robust, cas_spin, sem_t
#include "bench_common.hpp"

namespace {

using namespace bench;

struct empty_lock {
  static constexpr const char* label = "empty";
  void lock() noexcept {}
  void unlock() noexcept {}
};

// Not inlined, so callgrind's --toggle-collect can name it: everything it
// executes, the lock calls into libc included, is counted; nothing else is.
template <class L>
[[gnu::noinline]] void measured_pairs(L& lock, long pairs) {
  for (long i = 0; i < pairs; ++i) {
    lock.lock();
    benchmark::ClobberMemory();
    lock.unlock();
  }
}

template <class L>
int run(long pairs) {
  lock_holder<L> holder;
  L& lock = holder.get();
  lock.lock();  // first use outside the count: thread identity, robust-list registration
  lock.unlock();
  measured_pairs(lock, pairs);
  return 0;
}

template <class... L>
int run_named(std::string_view name, long pairs) {
  int rc = 2;
  (void)((name == L::label ? (rc = run<L>(pairs), true) : false) || ...);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <impl> [pairs]\n", argv[0]);
    return 2;
  }
  const long pairs = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 100000;
  const int rc = run_named<empty_lock, procsync_mutex, procsync_recursive, pthread_normal, pthread_robust, spin_lock,
                           sem_lock>(argv[1], pairs);
  if (rc == 2) std::fprintf(stderr, "%s: unknown impl '%s'\n", argv[0], argv[1]);
  return rc;
}
