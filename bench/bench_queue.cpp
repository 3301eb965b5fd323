// bench/bench_queue.cpp — cross-process queues: throughput and one-way latency.
//
// Throughput ("throughput/<impl>/bytes:<B>/pc:<N>"): N producer and N consumer
// processes move PROCSYNC_BENCH_QUEUE_ITEMS items (default 500000) of B bytes
// (8 or 256) through one queue of 1024 entries; producers then push one stop
// item per consumer. Wall time from the start gate to the last worker's end
// (UseManualTime). Counters: items_per_s, ns_per_item.
// Latency ("latency/<impl>/bytes:<B>"): a ping-pong over two queues between
// two processes, PROCSYNC_BENCH_ROUNDS round trips; p50_ns / p99_ns are
// one-way latencies (half a round trip), per round trip.
//
// Compared, all blocking (no implementation spins forever):
//   procsync_queue       procsync::queue<item, 1024>
//   procsync_mq          procsync::message_queue<B, 1024>
//   boost_mq             boost::interprocess::message_queue (1024 x B)
//   posix_mq             mq_send / mq_receive (1024 x B when the limits allow,
//                        else the system's msg_max; the label says which)
//   pipe                 write / read of B-byte records (atomic below PIPE_BUF)
//   procsync_mutex_cv    a ring of 1024 under procsync::mutex with two
//                        procsync::condition_variable (not-empty, not-full)
#include <fcntl.h>
#include <mqueue.h>
#include <sys/stat.h>

#include <boost/interprocess/ipc/message_queue.hpp>

#include <array>
#include <cstring>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include <procsync/condition_variable.hpp>
#include <procsync/message_queue.hpp>
#include <procsync/mutex.hpp>
#include <procsync/queue.hpp>

#include "bench_common.hpp"

namespace {

using namespace bench;

constexpr std::size_t depth = 1024;
constexpr std::uint64_t stop_value = ~std::uint64_t{0};

std::uint64_t queue_items() { return env_u64("PROCSYNC_BENCH_QUEUE_ITEMS", 500000); }

template <std::size_t B>
struct item {
  std::uint64_t value;
  unsigned char pad[B - sizeof(std::uint64_t)];
  static constexpr const char* kind_name = "bench::item";
};
template <>
struct item<8> {
  std::uint64_t value;
};

std::string unique(const char* what) {
  static int counter = 0;
  return std::string("procsync-bench-") + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + what;
}

// Each channel: send(const item&), receive() -> item; constructed in the
// parent before the fork (process-local handles are inherited).

template <std::size_t B>
struct procsync_queue_channel {
  static constexpr const char* label = "procsync_queue";
  shared<procsync::queue<item<B>, depth>> q;
  void send(const item<B>& v) { q->push(v); }
  item<B> receive() { return q->pop(); }
};

template <std::size_t B>
struct procsync_mq_channel {
  static constexpr const char* label = "procsync_mq";
  shared<procsync::message_queue<B, depth>> q;
  void send(const item<B>& v) { q->send(std::as_bytes(std::span(&v, 1))); }
  item<B> receive() {
    item<B> v;
    (void)q->receive(std::as_writable_bytes(std::span(&v, 1)));
    return v;
  }
};

template <std::size_t B>
struct boost_mq_channel {
  static constexpr const char* label = "boost_mq";
  std::string name = unique("bmq");
  std::optional<boost::interprocess::message_queue> q;
  boost_mq_channel() {
    boost::interprocess::message_queue::remove(name.c_str());
    q.emplace(boost::interprocess::create_only, name.c_str(), depth, B);
  }
  ~boost_mq_channel() {
    q.reset();
    boost::interprocess::message_queue::remove(name.c_str());
  }
  void send(const item<B>& v) { q->send(&v, B, 0); }
  item<B> receive() {
    item<B> v;
    std::size_t got = 0;
    unsigned prio = 0;
    q->receive(&v, B, got, prio);
    return v;
  }
};

template <std::size_t B>
struct posix_mq_channel {
  static constexpr const char* label = "posix_mq";
  std::string name = "/" + unique("pmq");
  mqd_t q = -1;
  long capacity = 0;
  posix_mq_channel() {
    for (long cap : {long(depth), 10L}) {
      mq_attr attr{};
      attr.mq_maxmsg = cap;
      attr.mq_msgsize = B;
      q = ::mq_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
      if (q != mqd_t(-1)) {
        capacity = cap;
        break;
      }
    }
    if (q == mqd_t(-1)) die("mq_open");
    ::mq_unlink(name.c_str());  // the descriptors keep it alive, children inherit them
  }
  ~posix_mq_channel() { ::mq_close(q); }
  void send(const item<B>& v) {
    while (::mq_send(q, reinterpret_cast<const char*>(&v), B, 0) != 0)
      if (errno != EINTR) die("mq_send");
  }
  item<B> receive() {
    item<B> v;
    while (::mq_receive(q, reinterpret_cast<char*>(&v), B, nullptr) < 0)
      if (errno != EINTR) die("mq_receive");
    return v;
  }
};

template <std::size_t B>
struct pipe_channel {
  static constexpr const char* label = "pipe";
  static_assert(B <= PIPE_BUF, "records up to PIPE_BUF are written atomically");
  int fd[2] = {-1, -1};
  pipe_channel() {
    if (::pipe(fd) != 0) die("pipe");
  }
  ~pipe_channel() {
    ::close(fd[0]);
    ::close(fd[1]);
  }
  void send(const item<B>& v) {
    while (::write(fd[1], &v, B) != ssize_t(B))
      if (errno != EINTR) die("write");
  }
  item<B> receive() {
    item<B> v;
    // Every write is one B-byte record and every read asks for B: whole records.
    while (::read(fd[0], &v, B) != ssize_t(B))
      if (errno != EINTR) die("read");
    return v;
  }
};

template <std::size_t B>
struct mutex_cv_ring {
  procsync::mutex m;
  procsync::condition_variable not_empty, not_full;
  std::uint64_t head = 0, tail = 0;
  item<B> slots[depth];
};

template <std::size_t B>
struct procsync_mutex_cv_channel {
  static constexpr const char* label = "procsync_mutex_cv";
  shared<mutex_cv_ring<B>> r;
  void send(const item<B>& v) {
    {
      std::unique_lock<procsync::mutex> lock(r->m);
      r->not_full.wait(lock, [&] { return r->tail - r->head < depth; });
      r->slots[r->tail++ % depth] = v;
    }
    r->not_empty.notify_one();
  }
  item<B> receive() {
    item<B> v;
    {
      std::unique_lock<procsync::mutex> lock(r->m);
      r->not_empty.wait(lock, [&] { return r->tail != r->head; });
      v = r->slots[r->head++ % depth];
    }
    r->not_full.notify_one();
    return v;
  }
};

struct run_area {
  start_gate gate;
  std::atomic<std::int64_t> end_ns{0};
  std::atomic<std::uint64_t> received{0};
  std::atomic<int> producers_done{0};
};

void note_end(run_area& a) {
  const std::int64_t t = now_ns();
  std::int64_t seen = a.end_ns.load();
  while (t > seen && !a.end_ns.compare_exchange_weak(seen, t)) {
  }
}

template <template <std::size_t> class Channel, std::size_t B>
void throughput(benchmark::State& state) {
  const int pairs = static_cast<int>(state.range(0));
  const std::uint64_t total = queue_items() / pairs * pairs;
  double seconds = 0;
  std::uint64_t runs = 0;
  for (auto _ : state) {
    Channel<B> ch;
    shared<run_area> area;
    std::vector<pid_t> pids;
    for (int p = 0; p < pairs; ++p)
      pids.push_back(fork_child([&, p] {
        area->gate.arrive_and_wait();
        item<B> v{};
        for (std::uint64_t i = 0; i < total / pairs; ++i) {
          v.value = std::uint64_t(p) << 40 | i;
          ch.send(v);
        }
        // The last producer queues one stop item per consumer, after every
        // item (each queue is FIFO for equal priorities).
        if (area->producers_done.fetch_add(1) + 1 == pairs) {
          v.value = stop_value;
          for (int c = 0; c < pairs; ++c) ch.send(v);
        }
        note_end(*area);
        return 0;
      }));
    for (int c = 0; c < pairs; ++c)
      pids.push_back(fork_child([&] {
        area->gate.arrive_and_wait();
        std::uint64_t got = 0;
        while (ch.receive().value != stop_value) ++got;
        area->received.fetch_add(got);
        note_end(*area);
        return 0;
      }));
    const std::int64_t t0 = area->gate.open_when(static_cast<std::uint32_t>(2 * pairs));
    if (!reap(pids)) state.SkipWithError("a worker failed");
    if (area->received.load() != total) state.SkipWithError("items lost");
    const double s = double(area->end_ns.load() - t0) / 1e9;
    state.SetIterationTime(s);
    seconds += s;
    ++runs;
  }
  state.counters["items_per_s"] = double(total) * double(runs) / seconds;
  state.counters["ns_per_item"] = seconds * 1e9 / (double(total) * double(runs));
  state.counters["pairs"] = pairs;
  if constexpr (std::is_same_v<Channel<B>, posix_mq_channel<B>>) {
    Channel<B> probe;
    state.counters["capacity"] = double(probe.capacity);
  } else {
    state.counters["capacity"] = double(depth);
  }
}

template <template <std::size_t> class Channel, std::size_t B>
void latency(benchmark::State& state) {
  const std::uint64_t rounds = ping_rounds();
  std::vector<double> samples;
  samples.reserve(rounds);
  for (auto _ : state) {
    Channel<B> ping, pong;
    shared<run_area> area;
    const pid_t echo = fork_child([&] {
      area->gate.arrive_and_wait();
      for (;;) {
        const item<B> v = ping.receive();
        pong.send(v);
        if (v.value == stop_value) return 0;
      }
    });
    const std::int64_t t0 = area->gate.open_when(1);
    item<B> v{};
    for (std::uint64_t i = 0; i < rounds; ++i) {
      const std::int64_t a = now_ns();
      v.value = i;
      ping.send(v);
      (void)pong.receive();
      samples.push_back(double(now_ns() - a) / 2);
    }
    v.value = stop_value;
    ping.send(v);
    (void)pong.receive();
    if (!reap({echo})) state.SkipWithError("the echo process failed");
    state.SetIterationTime(double(now_ns() - t0) / 1e9);
  }
  state.counters["p50_ns"] = percentile(samples, 0.50);
  state.counters["p99_ns"] = percentile(samples, 0.99);
}

template <template <std::size_t> class Channel, std::size_t B>
void register_all() {
  const std::string impl = Channel<B>::label;
  for (int pairs : {1, 4})
    benchmark::RegisterBenchmark(("throughput/" + impl + "/bytes:" + std::to_string(B)).c_str(), throughput<Channel, B>)
        ->Arg(pairs)
        ->ArgName("pc")
        ->UseManualTime()
        ->Iterations(static_cast<benchmark::IterationCount>(run_iterations()))
        ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark(("latency/" + impl + "/bytes:" + std::to_string(B)).c_str(), latency<Channel, B>)
      ->UseManualTime()
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
}

template <std::size_t B>
void register_size() {
  register_all<procsync_queue_channel, B>();
  register_all<procsync_mq_channel, B>();
  register_all<boost_mq_channel, B>();
  register_all<posix_mq_channel, B>();
  register_all<pipe_channel, B>();
  register_all<procsync_mutex_cv_channel, B>();
}

}  // namespace

int main(int argc, char** argv) {
  register_size<8>();
  register_size<256>();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
