#define BOOST_TEST_MODULE procsync threads
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <procsync/mutex.hpp>
#include <procsync/recursive_mutex.hpp>
#include <procsync/segment.hpp>

#include "child.hpp"

using namespace procsync_test;
using namespace std::chrono_literals;

namespace {
struct block {
  procsync::mutex m;
  procsync::recursive_mutex r;
  long count = 0;
};
}  // namespace

BOOST_AUTO_TEST_CASE(thread_exiting_while_holding_gives_owner_died) {
  auto b = procsync::make_anonymous<block>();
  std::thread t([&] {
    b->m.lock();
    b->r.lock();
    b->r.lock();
    // returns holding both: the kernel releases them as the thread exits
  });
  t.join();
  BOOST_TEST((b->m.try_lock_robust_for(10s) == procsync::lock_status::owner_died));
  BOOST_TEST(b->m.inconsistent());
  b->m.consistent();
  b->m.unlock();
  BOOST_TEST((b->r.try_lock_robust_for(10s) == procsync::lock_status::owner_died));
  BOOST_TEST(b->r.depth_of_caller() == 1u);
  b->r.consistent();
  b->r.unlock();
  BOOST_TEST((b->m.try_lock_robust() == procsync::lock_status::acquired));
  b->m.unlock();
}

BOOST_AUTO_TEST_CASE(thread_exit_wakes_a_blocked_waiter, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<block>();
  std::atomic<int> held{0};
  std::atomic<int> release{0};
  std::thread holder([&] {
    b->m.lock();
    held = 1;
    while (!release.load()) std::this_thread::sleep_for(1ms);
  });
  BOOST_REQUIRE(eventually([&] { return held.load() == 1; }));
  // Another process blocks on it; the holder thread then exits without unlocking.
  const pid_t waiter = fork_child([&] {
    return b->m.lock_robust() == procsync::lock_status::owner_died ? 0 : 1;
  });
  // "Blocked": asleep in the futex, seen by looking, before the holder thread exits.
  BOOST_TEST(eventually([&] { return blocked_in_futex(waiter); }));  // not REQUIRE: the holder must still be let go
  release = 1;
  holder.join();
  BOOST_TEST(wait_exit_code(waiter, 30s) == 0);
}

BOOST_AUTO_TEST_CASE(threads_times_processes_contending) {
  auto b = procsync::make_anonymous<block>();
  constexpr int procs = 3, threads = 3, iters = 3000;
  std::vector<pid_t> kids;
  for (int p = 0; p < procs; ++p)
    kids.push_back(fork_child([&] {
      std::vector<std::thread> ts;
      for (int t = 0; t < threads; ++t)
        ts.emplace_back([&] {
          for (int i = 0; i < iters; ++i) {
            if (i % 2) {
              std::lock_guard g(b->m);
              ++b->count;
            } else {
              std::scoped_lock g(b->r);
              std::lock_guard again(b->r);
              std::lock_guard g2(b->m);
              ++b->count;
            }
          }
        });
      for (auto& t : ts) t.join();
      return 0;
    }));
  // The parent's threads join in too.
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < iters; ++i) {
        std::lock_guard g(b->m);
        ++b->count;
      }
    });
  for (auto& t : ts) t.join();
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(b->count == (procs + 1) * threads * iters);
}

BOOST_AUTO_TEST_CASE(killed_process_with_many_threads_releases_all) {
  // Each thread of a process holds one mutex; the whole process is SIGKILLed.
  struct many {
    procsync::mutex m[4];
    std::atomic<int> held{0};
  };
  auto b = procsync::make_anonymous<many>();
  BOOST_REQUIRE(die_holding([&] {
    std::vector<std::thread> ts;
    for (int i = 0; i < 4; ++i)
      ts.emplace_back([&, i] {
        b->m[i].lock();
        b->held.fetch_add(1);
        for (;;) ::pause();
      });
    for (;;) ::pause();
  }, [&] { return b->held.load() == 4; }) == -SIGKILL);
  for (auto& m : b->m) {
    BOOST_TEST((m.try_lock_robust_for(10s) == procsync::lock_status::owner_died));
    m.consistent();
    m.unlock();
  }
}
