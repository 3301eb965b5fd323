// queue_workers.cpp — the classic multiprocessing producer/consumer, retold.
//
// In Python it is a dozen lines: workers pull jobs from one queue and put
// results on another, and a poison pill (None) tells each worker to stop:
//
//   def worker(jobs, results):
//       for n in iter(jobs.get, None):          # stop at the pill
//           results.put((n, n * n))
//
//   jobs, results = Queue(), Queue()
//   workers = [Process(target=worker, args=(jobs, results)) for _ in range(4)]
//   for w in workers: w.start()
//   for n in range(20): jobs.put(n)
//   for w in workers: jobs.put(None)            # one pill per worker
//   print(sorted(results.get() for _ in range(20)))
//   for w in workers: w.join()
//
// Here the queues are procsync::queue<T, N> in shared memory (bounded: a put
// blocks while the queue is full, as Queue(maxsize) does). Round 1 stops the
// workers with poison pills; round 2 with close(), which Python's Queue lacks:
// workers drain what is queued and then get errc::queue_closed.
#include <algorithm>
#include <cstdio>
#include <vector>

#include <procsync/error.hpp>
#include <procsync/process.hpp>
#include <procsync/queue.hpp>
#include <procsync/segment.hpp>

namespace {

constexpr int workers = 4;
constexpr int jobs_per_round = 20;

struct job {
  int n;  // -1: the poison pill
};
struct result {
  int worker;
  int n;
  long square;
};

struct shared_state {
  procsync::queue<job, 8> jobs;          // smaller than the work: producers block now and then
  procsync::queue<result, 32> results;
};

// Round 1: a worker stops at the pill.
int pill_worker(shared_state* s, int id) {
  for (job j = s->jobs.pop(); j.n != -1; j = s->jobs.pop()) s->results.push({id, j.n, long(j.n) * j.n});
  return 0;
}

// Round 2: a worker stops when the queue is closed and drained.
int close_worker(shared_state* s, int id) {
  try {
    for (;;) {
      const job j = s->jobs.pop();
      s->results.push({id, j.n, long(j.n) * j.n});
    }
  } catch (const procsync::error& e) {
    if (e.code() != procsync::errc::queue_closed) throw;
  }
  return 0;
}

void collect(shared_state& s, const char* how) {
  std::vector<result> got;
  for (int i = 0; i < jobs_per_round; ++i) got.push_back(s.results.pop());
  std::sort(got.begin(), got.end(), [](const result& a, const result& b) { return a.n < b.n; });
  long sum = 0;
  int busy[workers] = {};
  std::printf("%s:", how);
  for (const result& r : got) {
    std::printf(" %d^2=%ld", r.n, r.square);
    sum += r.square;
    ++busy[r.worker];
  }
  std::printf("\n%s: %d results, sum of squares %ld\n", how, int(got.size()), sum);
  for (int w = 0; w < workers; ++w) std::printf("  worker %d did %d jobs\n", w, busy[w]);
}

}  // namespace

int main() {
  auto s = procsync::make_anonymous<shared_state>();

  std::vector<procsync::process> round1;
  for (int w = 0; w < workers; ++w) round1.emplace_back(pill_worker, s.get(), w);
  for (auto& p : round1) p.start();
  for (int n = 0; n < jobs_per_round; ++n) s->jobs.push({n});
  for (int w = 0; w < workers; ++w) s->jobs.push({-1});  // one pill per worker
  collect(*s, "round 1 (poison pills)");
  for (auto& p : round1) p.join();
  int exited = 0;
  for (auto& p : round1) exited += p.exitcode() == 0;
  std::printf("round 1: %d workers exited 0\n", exited);

  std::vector<procsync::process> round2;
  for (int w = 0; w < workers; ++w) round2.emplace_back(close_worker, s.get(), w);
  for (auto& p : round2) p.start();
  for (int n = 0; n < jobs_per_round; ++n) s->jobs.push({n + 100});
  s->jobs.close();  // no more jobs: the workers finish the queued ones, then stop
  collect(*s, "round 2 (close)");
  for (auto& p : round2) p.join();
  exited = 0;
  for (auto& p : round2) exited += p.exitcode() == 0;
  std::printf("round 2: %d workers exited 0\n", exited);
  try {
    s->jobs.push({0});
  } catch (const procsync::error& e) {
    std::printf("a push after close() throws: %s\n", e.what());
  }
  return 0;
}
