// dining_philosophers.cpp — five processes, five forks, one classic deadlock.
//
// Five philosophers sit at a round table with one fork between neighbours;
// eating takes both the left and the right fork. Each philosopher is a process
// and each fork a procsync::mutex in shared memory.
//
// Round 1, the naive way: everyone picks up the left fork, then the right.
//   If all five hold their left fork at once, each waits for a neighbour
//   forever: a cycle of five waiting processes. With install_deadlock_detector
//   in each process, procsync's wait-for graph finds the cycle after the
//   deadlock timeout and fails exactly one philosopher's lock() with
//   errc::deadlock_detected; that one puts its fork down, and everyone eats.
// Round 2, the fix: procsync::lock_all(left, right) takes both forks without
//   ever waiting while holding one, so no cycle can form, whatever order the
//   others use. Everyone eats three meals.
// Round 3, the standard way: std::scoped_lock forks(left, right) does the same
//   job with std::lock's deadlock avoidance, and unlocks by itself at the end
//   of the scope. How the two differ:
//   - scoped_lock is RAII: it releases both forks when the scope ends, even by
//     an exception; lock_all only locks, and you unlock (or hand the locks to
//     std::scoped_lock g(std::adopt_lock, left, right)).
//   - std::lock's algorithm is left to the standard library ("avoids deadlock"
//     is all the standard promises); lock_all's is documented: block on one,
//     try the others, on a miss release all and block first on the busy one,
//     yielding the CPU between attempts. Its try_locks record no lock order,
//     which deadlock.hpp's lock-order validation relies on for checked_mutex.
//   - lock_all is a plain function: use it where there is no scope to tie the
//     locks to (lock here, unlock in another function).
//
// The table (forks, deadlock registry) lives in a named segment, so it can be
// looked at from outside: the end of the program reads the registry back with
// procsync::segment_inspector (procsync/inspect.hpp, the library under
// `procsync-shm deadlock`), whose report history keeps round 1's cycle of
// five. `--keep NAME` names the segment NAME and leaves it in /dev/shm for
//   procsync-shm deadlock NAME --dot | dot -Tsvg > philosophers.svg
//   procsync-shm rm NAME
// (scripts/render-graphs.sh); otherwise it is removed at exit.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <procsync/deadlock.hpp>
#include <procsync/error.hpp>
#include <procsync/inspect.hpp>
#include <procsync/mutex.hpp>
#include <procsync/process.hpp>
#include <procsync/segment.hpp>

namespace {

constexpr int seats = 5, meals = 3;

// A class stored in a named segment names its kind.
struct counters {
  static constexpr const char* kind_name = "example::dinner_counters";
  std::atomic<int> holding_left{0};
  std::atomic<int> meals_eaten{0};
};

// What the philosophers share: named objects of one segment ("registry",
// "fork 1".."fork 5", "counters"), reached through references.
struct table {
  procsync::deadlock_registry& registry;
  procsync::mutex* forks[seats];
  std::atomic<int>& holding_left;
  std::atomic<int>& meals_eaten;
};

// Removes the segment at exit unless it is to be kept.
struct segment_owner {
  std::string name;
  bool keep;
  ~segment_owner() {
    if (!keep) procsync::named_segment::remove(name);
  }
};

int naive(table* t, int me) {
  procsync::install_deadlock_detector(t->registry, "philosopher " + std::to_string(me + 1));
  procsync::mutex& left = *t->forks[me];
  procsync::mutex& right = *t->forks[(me + 1) % seats];
  left.lock();
  t->holding_left.fetch_add(1);
  // Wait until all five hold their left fork: the deadlock is now certain.
  while (t->holding_left.load() < seats) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  try {
    right.lock();
  } catch (const procsync::error& e) {
    if (e.code() != procsync::errc::deadlock_detected) throw;
    std::printf("philosopher %d: deadlock detected, puts the left fork down\n", me + 1);
    left.unlock();
    procsync::lock_all(left, right);  // try again, safely
  }
  std::printf("philosopher %d eats\n", me + 1);
  t->meals_eaten.fetch_add(1);
  right.unlock();
  left.unlock();
  return 0;
}

int polite(table* t, int me) {
  procsync::mutex& left = *t->forks[me];
  procsync::mutex& right = *t->forks[(me + 1) % seats];
  for (int meal = 1; meal <= meals; ++meal) {
    procsync::lock_all(left, right);  // both or none: never holds one while waiting
    std::printf("philosopher %d eats meal %d\n", me + 1, meal);
    t->meals_eaten.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    right.unlock();
    left.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // think
  }
  return 0;
}

int standard(table* t, int me) {
  procsync::mutex& left = *t->forks[me];
  procsync::mutex& right = *t->forks[(me + 1) % seats];
  for (int meal = 1; meal <= meals; ++meal) {
    {
      std::scoped_lock forks(left, right);  // both or none, released at the closing brace
      std::printf("philosopher %d eats meal %d with scoped_lock\n", me + 1, meal);
      t->meals_eaten.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // think
  }
  return 0;
}

void dinner(table* t, int (*philosopher)(table*, int)) {
  t->meals_eaten = 0;
  std::vector<std::unique_ptr<procsync::process>> diners;
  for (int i = 0; i < seats; ++i) {
    diners.push_back(std::make_unique<procsync::process>(philosopher, t, i));
    diners.back()->start();
  }
  int failed = 0;
  for (auto& d : diners) {
    d->join();
    failed += d->exitcode().value() != 0;
  }
  std::printf("%d meals eaten, %d philosophers failed\n", t->meals_eaten.load(), failed);
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const bool keep = argc == 3 && std::string_view(argv[1]) == "--keep";
  if (argc != 1 && !keep) {
    std::fprintf(stderr, "usage: dining_philosophers [--keep SEGMENT]\n");
    return 2;
  }
  const segment_owner owner{keep ? argv[2] : "dining_philosophers-" + std::to_string(::getpid()), keep};
  procsync::named_segment seg(procsync::create_only, owner.name, 8u << 20);  // the registry takes ~3 MiB
  auto& c = seg.construct<counters>("counters");
  table shared{seg.construct<procsync::deadlock_registry>("registry", std::chrono::milliseconds(100)),
               {},
               c.holding_left,
               c.meals_eaten};
  for (int i = 0; i < seats; ++i) shared.forks[i] = &seg.construct<procsync::mutex>("fork " + std::to_string(i + 1));
  table* t = &shared;  // children are forks: the segment is mapped at the same address there
  std::printf("== Round 1: left fork, then right fork\n");
  dinner(t, naive);
  std::printf("\n== Round 2: procsync::lock_all(left, right), %d meals each\n", meals);
  dinner(t, polite);
  std::printf("\n== Round 3: std::scoped_lock(left, right), %d meals each\n", meals);
  dinner(t, standard);
  std::printf("\nlock_all and scoped_lock both take the two forks without deadlock; scoped_lock\n"
              "also releases them at the end of its scope, lock_all leaves unlocking to you.\n");

  // Round 1's deadlock, as the registry kept it, read from outside.
  const procsync::deadlock_snapshot d = procsync::segment_inspector(owner.name).deadlock();
  std::printf("\n== The registry in segment %s (procsync-shm deadlock %s)\n", owner.name.c_str(),
              owner.name.c_str());
  for (const auto& r : d.reports) {
    std::printf("report #%llu: %s, a cycle of %u:", static_cast<unsigned long long>(r.number), r.type.c_str(),
                r.cycle_length);
    for (const auto& st : r.steps) std::printf(" %s ->", st.label.c_str());
    std::printf(" %s\n", r.steps.empty() ? "" : r.steps.front().label.c_str());
  }
  if (keep)
    std::printf("segment kept: procsync-shm deadlock %s --dot | dot -Tsvg > graph.svg; then procsync-shm rm %s\n",
                owner.name.c_str(), owner.name.c_str());
  return 0;
}
