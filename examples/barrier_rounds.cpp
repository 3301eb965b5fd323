// barrier_rounds.cpp — processes working in lock-step rounds.
//
// A procsync::barrier(4) makes four worker processes meet: wait() blocks until
// all four have arrived, then releases them together. Each round every worker
// computes a part of a sum; after the barrier any worker may read all parts.
// The worker that arrived first (wait() returned index 0) prints the round's
// total; a second wait() keeps everyone from racing into the next round before
// that line is printed.
//
// Then the robustness part: a party is SIGKILLed while it waits at the
// barrier. The others do not hang: the party waiting beside it notices the
// death and breaks the barrier, and every wait() throws procsync::error with
// errc::barrier_broken (Python's BrokenBarrierError) until reset().
//
// The Python original, in outline:
//
//   from multiprocessing import Process, Barrier
//
//   def worker(barrier, i):
//       for round in range(3):
//           compute_part(round, i)
//           if barrier.wait() == 0:  # index 0: one worker reports the round
//               print("round", round, "done")
//
//   if __name__ == "__main__":
//       barrier = Barrier(4)
//       workers = [Process(target=worker, args=(barrier, i)) for i in range(4)]
//       for w in workers: w.start()
//       for w in workers: w.join()
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include <procsync/barrier.hpp>
#include <procsync/error.hpp>
#include <procsync/event.hpp>
#include <procsync/process.hpp>
#include <procsync/segment.hpp>

namespace {

constexpr int workers = 4, rounds = 3;

struct team {
  procsync::barrier meet{workers};
  long part[rounds][workers] = {};
};

int worker(team& t, int me) {
  for (int r = 0; r < rounds; ++r) {
    // This worker's share of round r: the sum of squares of its numbers.
    long sum = 0;
    for (long x = me; x < 1000 * (r + 1); x += workers) sum += x * x;
    t.part[r][me] = sum;
    std::printf("worker %d finished round %d\n", me + 1, r + 1);
    const std::size_t index = t.meet.wait();  // everyone has written part[r]
    if (index == 0) {
      long total = 0;
      for (long p : t.part[r]) total += p;
      std::printf("round %d complete: sum of squares below %d = %ld\n", r + 1, 1000 * (r + 1), total);
    }
    t.meet.wait();  // nobody starts round r+2 before the total is printed
  }
  return 0;
}

struct doomed_team {
  procsync::barrier meet{3};
  procsync::event victim_dead;
};

// A party of the second part: arrives, and reports how the barrier answered.
int late_party(doomed_team& d, int k) {
  // Party 1 arrives after the victim died and waits with it; it notices the
  // dead neighbour (within ~10 ms) and breaks the barrier. Party 2 arrives
  // once it is broken: a broken barrier refuses every wait().
  if (k == 1)
    d.victim_dead.wait();
  else
    while (!d.meet.broken()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  try {
    d.meet.wait();
    std::printf("party %d passed the barrier (unexpected)\n", k);
    return 1;
  } catch (const procsync::error& e) {
    std::printf("party %d: %s\n", k, e.code() == procsync::errc::barrier_broken ? "errc::barrier_broken" : e.what());
    return 0;
  }
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  auto t = procsync::make_anonymous<team>();
  std::vector<std::unique_ptr<procsync::process>> crew;
  for (int w = 0; w < workers; ++w) {
    crew.push_back(std::make_unique<procsync::process>(worker, std::ref(*t), w));
    crew.back()->start();
  }
  for (auto& w : crew) w->join();

  std::printf("\n== a party dies while waiting\n");
  auto d = procsync::make_anonymous<doomed_team>();
  procsync::process victim{[&] {
    d->meet.wait();  // waits for two more parties; it is killed first
    return 0;
  }};
  procsync::process party1{late_party, std::ref(*d), 1}, party2{late_party, std::ref(*d), 2};
  victim.start();
  party1.start();
  party2.start();
  while (d->meet.n_waiting() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  victim.kill();
  victim.join();
  std::printf("killed party %d while it waited at the barrier (exitcode %d)\n", victim.pid(), victim.exitcode().value());
  d->victim_dead.set();
  party1.join();
  party2.join();
  std::printf("barrier broken() = %s\n", d->meet.broken() ? "true" : "false");
  return 0;
}
