// bench_deadlock: what deadlock detection costs and how fast it acts.
//  - nested lock+unlock of two mutexes: procsync::mutex vs checked_mutex with a
//    detector installed (the chain is cached after the first iteration, so this
//    is the steady-state cost of lock-order validation);
//  - time from a 2-process deadlock forming to the victim's error, per timeout.
#include <benchmark/benchmark.h>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>

#include <procsync/deadlock.hpp>
#include <procsync/mutex.hpp>
#include <procsync/segment.hpp>

namespace {

void BM_unchecked_nested(benchmark::State& state) {
  struct block {
    procsync::mutex a, b;
  };
  auto m = procsync::make_anonymous<block>();
  for (auto _ : state) {
    m->a.lock();
    m->b.lock();
    m->b.unlock();
    m->a.unlock();
  }
}
BENCHMARK(BM_unchecked_nested);

struct checked_pair {
  alignas(procsync::checked_mutex) unsigned char bytes[2 * sizeof(procsync::checked_mutex)];
  procsync::checked_mutex& operator[](int i) {
    return *std::launder(reinterpret_cast<procsync::checked_mutex*>(bytes) + i);
  }
};

void BM_checked_nested(benchmark::State& state) {
  auto reg = procsync::make_anonymous<procsync::deadlock_registry>();
  auto m = procsync::make_anonymous<checked_pair>();
  ::new (m->bytes) procsync::checked_mutex(reg->define_class("outer"));
  ::new (m->bytes + sizeof(procsync::checked_mutex)) procsync::checked_mutex(reg->define_class("inner"));
  procsync::install_deadlock_detector(*reg, "bench");
  for (auto _ : state) {
    (*m)[0].lock();
    (*m)[1].lock();
    (*m)[1].unlock();
    (*m)[0].unlock();
  }
  procsync::uninstall_deadlock_detector();
}
BENCHMARK(BM_checked_nested);

// Two processes take two plain mutexes in opposite orders; manual time is from
// the moment both hold their first lock to the victim's deadlock_detected.
void BM_detect_two_process_deadlock(benchmark::State& state) {
  const auto timeout = std::chrono::milliseconds(state.range(0));
  struct block {
    std::atomic<int> ready{0};
    std::atomic<long> formed_ns{0};
    std::atomic<long> detected_ns{0};
    procsync::mutex m[2];
  };
  for (auto _ : state) {
    auto reg = procsync::make_anonymous<procsync::deadlock_registry>(timeout);
    auto b = procsync::make_anonymous<block>();
    pid_t kids[2];
    for (int i = 0; i < 2; ++i) {
      kids[i] = ::fork();
      if (kids[i] == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        procsync::install_deadlock_detector(*reg, i ? "b" : "a");
        b->m[i].lock();
        if (b->ready.fetch_add(1) == 1)
          b->formed_ns = std::chrono::steady_clock::now().time_since_epoch().count();
        while (b->ready.load() < 2) {
        }
        try {
          b->m[1 - i].lock();
          b->m[1 - i].unlock();
        } catch (const procsync::error&) {
          b->detected_ns = std::chrono::steady_clock::now().time_since_epoch().count();
        }
        b->m[i].unlock();
        ::_exit(0);
      }
    }
    for (pid_t k : kids) ::waitpid(k, nullptr, 0);
    state.SetIterationTime(static_cast<double>(b->detected_ns - b->formed_ns) * 1e-9);
  }
}
BENCHMARK(BM_detect_two_process_deadlock)->Arg(10)->Arg(100)->Iterations(5)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
