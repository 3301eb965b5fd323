// bench/bench_latency.cpp — wake-up latency between two processes.
//
// A ping-pong: the parent signals the child, which signals back; each round
// trip is two cross-process wake-ups. Both sides block (none of these spin
// forever), so every round trip includes two sleeps and two wake-ups unless an
// implementation's short spin catches the signal first. Per-round-trip samples
// give the distribution: p50_ns, p99_ns, mean_ns are round-trip times (one-way
// latency is about half). Compared:
//   raw_futex     a bare futex word: store + FUTEX_WAKE / FUTEX_WAIT (the floor)
//   procsync_event    two auto-reset procsync::event
//   procsync_semaphore two procsync::binary_semaphore
//   procsync_condvar  procsync::condition_variable + procsync::mutex + flag
//   sem_t          two POSIX semaphores
//   pthread_cond   process-shared pthread cond + mutex + flag
// PROCSYNC_BENCH_ROUNDS round trips per benchmark (default 20000).
#include <procsync/condition_variable.hpp>
#include <procsync/detail/futex.hpp>
#include <procsync/event.hpp>
#include <procsync/semaphore.hpp>

#include "bench_common.hpp"

namespace {

using namespace bench;

struct raw_futex_channel {
  static constexpr const char* label = "raw_futex";
  std::atomic<std::uint32_t> word{0};
  // release / acquire: the receiver sees what the sender wrote before signalling.
  void signal() noexcept {
    word.store(1, std::memory_order_release);
    procsync::detail::futex_wake(&word, 1);
  }
  void wait() noexcept {
    while (word.exchange(0, std::memory_order_acquire) == 0) procsync::detail::futex_wait(&word, 0);
  }
};

struct event_channel {
  static constexpr const char* label = "procsync_event";
  procsync::event e{procsync::event::reset_mode::automatic};
  void signal() noexcept { e.set(); }
  void wait() noexcept { e.wait(); }
};

struct semaphore_channel {
  static constexpr const char* label = "procsync_semaphore";
  procsync::binary_semaphore s{0};
  void signal() { s.release(); }
  void wait() { s.acquire(); }
};

struct condvar_channel {
  static constexpr const char* label = "procsync_condvar";
  procsync::mutex m;
  procsync::condition_variable cv;
  bool flag = false;
  void signal() {
    std::unique_lock<procsync::mutex> lock(m);
    flag = true;
    cv.notify_one();
  }
  void wait() {
    std::unique_lock<procsync::mutex> lock(m);
    cv.wait(lock, [this] { return flag; });
    flag = false;
  }
};

struct sem_channel {
  static constexpr const char* label = "sem_t";
  sem_t s;
  sem_channel() {
    if (::sem_init(&s, 1, 0) != 0) die("sem_init");
  }
  sem_channel(const sem_channel&) = delete;
  ~sem_channel() { ::sem_destroy(&s); }
  void signal() noexcept { ::sem_post(&s); }
  void wait() noexcept {
    while (::sem_wait(&s) != 0 && errno == EINTR) {
    }
  }
};

struct pthread_cond_channel {
  static constexpr const char* label = "pthread_cond";
  pthread_mutex_t m;
  pthread_cond_t cv;
  bool flag = false;
  pthread_cond_channel() {
    pthread_mutexattr_t ma;
    ::pthread_mutexattr_init(&ma);
    ::pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    ::pthread_mutex_init(&m, &ma);
    ::pthread_mutexattr_destroy(&ma);
    pthread_condattr_t ca;
    ::pthread_condattr_init(&ca);
    ::pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
    ::pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    ::pthread_cond_init(&cv, &ca);
    ::pthread_condattr_destroy(&ca);
  }
  pthread_cond_channel(const pthread_cond_channel&) = delete;
  ~pthread_cond_channel() {
    ::pthread_cond_destroy(&cv);
    ::pthread_mutex_destroy(&m);
  }
  void signal() noexcept {
    ::pthread_mutex_lock(&m);
    flag = true;
    ::pthread_cond_signal(&cv);
    ::pthread_mutex_unlock(&m);
  }
  void wait() noexcept {
    ::pthread_mutex_lock(&m);
    while (!flag) ::pthread_cond_wait(&cv, &m);
    flag = false;
    ::pthread_mutex_unlock(&m);
  }
};

template <class C>
struct ping_pong {
  C ping;  // parent -> child
  C pong;  // child -> parent
  std::atomic<std::uint32_t> stop{0};
};

template <class C>
void latency(benchmark::State& state) {
  shared<ping_pong<C>> area;
  ping_pong<C>& pp = *area;
  const pid_t child = fork_child([&pp] {
    for (;;) {
      pp.ping.wait();
      // relaxed: the channel's wait() already ordered this after the signal.
      if (pp.stop.load(std::memory_order_relaxed) != 0) return 0;
      pp.pong.signal();
    }
  });
  for (int i = 0; i < 200; ++i) {  // warm-up: both sides scheduled, caches hot
    pp.ping.signal();
    pp.pong.wait();
  }
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    const std::int64_t t0 = now_ns();
    pp.ping.signal();
    pp.pong.wait();
    samples.push_back(static_cast<double>(now_ns() - t0));
  }
  pp.stop.store(1, std::memory_order_relaxed);
  pp.ping.signal();
  if (!reap({child}, std::chrono::seconds(30))) state.SkipWithError("the child process failed or hung");
  double sum = 0;
  for (const double s : samples) sum += s;
  state.counters["mean_ns"] = samples.empty() ? 0 : sum / static_cast<double>(samples.size());
  state.counters["p50_ns"] = percentile(samples, 0.50);
  state.counters["p99_ns"] = percentile(samples, 0.99);
}

template <class C>
void register_latency() {
  benchmark::RegisterBenchmark((std::string("latency/") + C::label).c_str(), latency<C>)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond)
      ->Iterations(static_cast<benchmark::IterationCount>(ping_rounds()));
}

}  // namespace

int main(int argc, char** argv) {
  register_latency<raw_futex_channel>();
  register_latency<event_channel>();
  register_latency<semaphore_channel>();
  register_latency<condvar_channel>();
  register_latency<sem_channel>();
  register_latency<pthread_cond_channel>();
  return bench::run_registered(argc, argv);
}
