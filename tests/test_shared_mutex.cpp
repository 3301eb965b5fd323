#define BOOST_TEST_MODULE procsync shared_mutex
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

#include <procsync/segment.hpp>
#include <procsync/shared_mutex.hpp>

#include "child.hpp"
#include "wake_probe.hpp"
#include "errors.hpp"

using namespace procsync_test;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

struct block {
  procsync::shared_mutex m;
  std::atomic<int> step{0};
  std::atomic<int> inside{0};
  std::atomic<int> max_inside{0};
  std::atomic<int> stop{0};
  long a = 0, b = 0;  // writers keep a == b
};

}  // namespace

BOOST_AUTO_TEST_CASE(readers_share_writers_exclude_exactly, *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<block>();
  constexpr int writers = 2, readers = 3, iters = 3000;
  std::vector<pid_t> kids;
  for (int w = 0; w < writers; ++w)
    kids.push_back(fork_child([&] {
      for (int i = 0; i < iters; ++i) {
        std::lock_guard g(s->m);
        ++s->a;
        ++s->b;
      }
      return 0;
    }));
  for (int r = 0; r < readers; ++r)
    kids.push_back(fork_child([&] {
      int torn = 0;
      for (int i = 0; i < iters; ++i) {
        std::shared_lock g(s->m);
        const int now = s->inside.fetch_add(1) + 1;
        int seen = s->max_inside.load();
        while (now > seen && !s->max_inside.compare_exchange_weak(seen, now)) {
        }
        if (s->a != s->b) ++torn;
        s->inside.fetch_sub(1);
      }
      return torn == 0 ? 0 : 1;
    }));
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(s->a == writers * iters);
  BOOST_TEST(s->b == writers * iters);
  BOOST_TEST(s->m.reader_count() == 0u);
  BOOST_TEST_MESSAGE("most readers inside at once: " << s->max_inside.load());
}

BOOST_AUTO_TEST_CASE(many_readers_hold_at_once, *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<block>();
  constexpr int readers = 5;
  std::vector<pid_t> kids;
  for (int r = 0; r < readers; ++r)
    kids.push_back(fork_child([&] {
      s->m.lock_shared();
      s->inside.fetch_add(1);
      // Every reader holds its share until all do: impossible unless shared.
      if (!wait_flag(s->inside, readers)) return 1;
      s->m.unlock_shared();
      return 0;
    }));
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(s->m.try_lock());
  s->m.unlock();
}

BOOST_AUTO_TEST_CASE(waiting_writer_blocks_new_readers, *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<block>();
  s->m.lock_shared();  // the parent is a reader inside
  const pid_t writer = fork_child([&] {
    s->step = 1;
    s->m.lock();
    s->a = 1;
    s->m.unlock();
    return 0;
  });
  BOOST_REQUIRE(wait_flag(s->step, 1));
  BOOST_REQUIRE(eventually([&] { return s->m.writer_tid() != 0; }));
  // A new reader must not overtake the waiting writer...
  const pid_t reader = fork_child([&] {
    if (s->m.try_lock_shared()) return 1;
    s->m.lock_shared();
    const long seen = s->a;  // ...so it sees the writer's update
    s->m.unlock_shared();
    return seen == 1 ? 0 : 2;
  });
  // Both asleep, seen by looking: the writer waits for us, the reader behind it
  // (a reader let in would have returned instead of sleeping).
  BOOST_REQUIRE(eventually([&] { return blocked_in_futex(writer) && blocked_in_futex(reader); }));
  BOOST_TEST(s->a == 0);  // the writer is still waiting for us
  s->m.unlock_shared();
  BOOST_TEST(wait_exit_code(writer) == 0);
  BOOST_TEST(wait_exit_code(reader) == 0);
}

BOOST_AUTO_TEST_CASE(writer_not_starved_by_overlapping_readers, *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<block>();
  constexpr int readers = 3;
  std::vector<pid_t> kids;
  for (int r = 0; r < readers; ++r)
    kids.push_back(fork_child([&] {
      s->inside.fetch_add(1);
      while (!s->stop.load()) {
        std::shared_lock g(s->m);
        // The behaviour under test, not a sequencing step: each reader holds
        // its share a while, so the readers overlap constantly.
        std::this_thread::sleep_for(std::chrono::microseconds(300));
      }
      return 0;
    }));
  BOOST_REQUIRE(wait_flag(s->inside, readers));
  for (int i = 0; i < 20; ++i) {
    // Starved or not, by the result: the 30 s is a watchdog, not a timing.
    const bool got = s->m.try_lock_for(30s);
    BOOST_TEST(got, "writer " << i << " starved for 30 s");
    if (!got) break;
    ++s->a;
    s->m.unlock();
  }
  s->stop = 1;
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(s->a == 20);
}

BOOST_AUTO_TEST_CASE(writer_death_owner_died_consistent_and_poison, *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<block>();
  const pid_t w = fork_child([&]() -> int {
    s->m.lock();
    s->a = 1;  // torn: b not updated
    s->step = 1;
    for (;;) ::pause();
  });
  BOOST_REQUIRE(wait_flag(s->step, 1));
  // A reader blocked behind the writer is released when it dies, and is told.
  const pid_t reader = fork_child([&] {
    const auto st = s->m.lock_shared_robust();
    s->m.unlock_shared();
    return st == procsync::lock_status::owner_died ? 0 : 1;
  });
  BOOST_REQUIRE(eventually([&] { return blocked_in_futex(reader); }));  // blocked, seen by looking
  ::kill(w, SIGKILL);
  BOOST_TEST(wait_exit_code(w) == -SIGKILL);
  BOOST_TEST(wait_exit_code(reader) == 0);
  BOOST_TEST(s->m.inconsistent());
  BOOST_REQUIRE((s->m.try_lock_robust_for(10s) == procsync::lock_status::owner_died));
  s->b = s->a;
  s->m.consistent();
  s->m.unlock();
  BOOST_TEST(!s->m.inconsistent());
  BOOST_TEST((s->m.lock_shared_robust() == procsync::lock_status::acquired));
  s->m.unlock_shared();

  // Second death; this time the repairer does not call consistent().
  BOOST_REQUIRE(die_holding([&] { s->m.lock(); }) == -SIGKILL);
  BOOST_REQUIRE((s->m.lock_robust() == procsync::lock_status::owner_died));
  // Others queue behind the repairer: a writer and a reader.
  const pid_t blocked = fork_child([&] {
    s->inside.fetch_add(1);
    return error_of([&] { s->m.lock(); }) == procsync::errc::not_recoverable ? 0 : 1;
  });
  const pid_t blocked_reader = fork_child([&] {
    s->inside.fetch_add(1);
    return error_of([&] { s->m.lock_shared(); }) == procsync::errc::not_recoverable ? 0 : 1;
  });
  BOOST_REQUIRE(wait_flag(s->inside, 2));
  BOOST_REQUIRE(eventually([&] { return blocked_in_futex(blocked) && blocked_in_futex(blocked_reader); }));
  s->m.unlock();  // without consistent(): poisons it and wakes them
  BOOST_TEST(wait_exit_code(blocked_reader, 30s) == 0);
  BOOST_TEST(wait_exit_code(blocked, 30s) == 0);
  BOOST_TEST(s->m.not_recoverable());
  BOOST_TEST((error_of([&] { s->m.lock(); }) == procsync::errc::not_recoverable));
  BOOST_TEST((error_of([&] { (void)s->m.try_lock(); }) == procsync::errc::not_recoverable));
  BOOST_TEST((error_of([&] { s->m.lock_shared(); }) == procsync::errc::not_recoverable));
  BOOST_TEST((error_of([&] { (void)s->m.try_lock_shared_for(5ms); }) == procsync::errc::not_recoverable));
}

BOOST_AUTO_TEST_CASE(dead_readers_do_not_block_writers, *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<block>();
  constexpr int readers = 3;
  std::vector<pid_t> kids;
  for (int r = 0; r < readers; ++r)
    kids.push_back(fork_child([&]() -> int {
      s->m.lock_shared();
      s->inside.fetch_add(1);
      for (;;) ::pause();
    }));
  BOOST_REQUIRE(wait_flag(s->inside, readers));
  BOOST_TEST(s->m.reader_count() == static_cast<std::size_t>(readers));
  BOOST_TEST(!s->m.try_lock());
  // A writer waits; the readers are killed one by one; it gets in right after the last.
  const pid_t writer = fork_child([&] {
    s->step = 1;
    return s->m.try_lock_robust_for(30s) == procsync::lock_status::acquired ? 0 : 1;
  });
  // The writer sleeps waiting for the readers' slots, seen by looking.
  BOOST_REQUIRE(eventually([&] { return s->step.load() == 1 && blocked_in_futex(writer); }));
  for (pid_t k : kids) {
    ::kill(k, SIGKILL);
    BOOST_TEST(wait_exit_code(k) == -SIGKILL);
  }
  // Immediate in practice (the kernel clears the slots); the writer's own 30 s
  // and this watchdog only end a hang.
  BOOST_TEST(wait_exit_code(writer, 30s) == 0);
  BOOST_TEST(s->m.reader_count() == 0u);
  // The writer child exited holding it: a dead writer for the next one.
  BOOST_TEST((s->m.try_lock_robust() == procsync::lock_status::owner_died));
  s->m.consistent();
  s->m.unlock();
}

BOOST_AUTO_TEST_CASE(timeouts_not_early, *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<block>();
  const pid_t reader = fork_child([&] {
    s->m.lock_shared();
    s->step = 1;
    wait_flag(s->stop, 1);
    s->m.unlock_shared();
    return 0;
  });
  BOOST_REQUIRE(wait_flag(s->step, 1));
  auto t0 = clk::now();
  BOOST_TEST(!s->m.try_lock_for(100ms));
  BOOST_TEST((clk::now() - t0 >= 100ms));
  BOOST_TEST((clk::now() - t0 < 30s));  // a watchdog, not a timing: only a near-hang trips it
  BOOST_TEST(s->m.writer_tid() == 0u);  // the timed-out writer let go of the gate
  BOOST_TEST(s->m.try_lock_shared());   // so readers still get in
  s->m.unlock_shared();
  s->stop = 1;
  BOOST_TEST(wait_exit_code(reader) == 0);
  s->m.lock();
  const pid_t other = fork_child([&] {
    const auto t1 = clk::now();
    if (s->m.try_lock_shared_for(100ms)) return 1;
    if (clk::now() - t1 < 100ms) return 2;
    if (s->m.try_lock_shared_until(std::chrono::system_clock::now() + 20ms)) return 3;
    return 0;
  });
  BOOST_TEST(wait_exit_code(other) == 0);
  s->m.unlock();
}

BOOST_AUTO_TEST_CASE(misuse_errors, *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<block>();
  BOOST_TEST((error_of([&] { s->m.unlock_shared(); }) == procsync::errc::not_owner));
  BOOST_TEST((error_of([&] { s->m.unlock(); }) == procsync::errc::not_owner));
  s->m.lock();
  BOOST_TEST((error_of([&] { s->m.lock(); }) == procsync::errc::would_deadlock));
  BOOST_TEST((error_of([&] { s->m.lock_shared(); }) == procsync::errc::would_deadlock));
  const pid_t other = fork_child([&] {
    return error_of([&] { s->m.unlock(); }) == procsync::errc::not_owner ? 0 : 1;
  });
  BOOST_TEST(wait_exit_code(other) == 0);
  s->m.unlock();
  s->m.lock_shared();
  BOOST_TEST(s->m.shared_by_caller());
  BOOST_TEST((error_of([&] { s->m.lock(); }) == procsync::errc::would_deadlock));
  procsync::errc from_thread{};
  std::thread t([&] { from_thread = error_of([&] { s->m.unlock_shared(); }); });
  t.join();
  BOOST_TEST((from_thread == procsync::errc::not_owner));
  s->m.unlock_shared();
  BOOST_TEST(!s->m.shared_by_caller());
}

BOOST_AUTO_TEST_CASE(no_futex_syscall_without_contention, *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<block>();
  s->m.lock();
  s->m.unlock();
  const auto before = procsync::detail::futex_syscalls.load();
  for (int i = 0; i < 10000; ++i) {
    s->m.lock_shared();
    s->m.lock_shared();  // a second share (another slot) is fine without a writer
    s->m.unlock_shared();
    s->m.unlock_shared();
    s->m.lock();
    s->m.unlock();
  }
  BOOST_TEST(procsync::detail::futex_syscalls.load() == before);
}

BOOST_AUTO_TEST_CASE(more_readers_than_slots_queue, *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<block>();
  constexpr int threads = static_cast<int>(procsync::shared_mutex::reader_slots) + 8;
  std::vector<std::thread> ts;
  std::atomic<int> done{0};
  for (int i = 0; i < threads; ++i)
    ts.emplace_back([&] {
      for (int j = 0; j < 200; ++j) {
        std::shared_lock g(s->m);
        s->inside.fetch_add(1);
        BOOST_CHECK(s->inside.load() <= static_cast<int>(procsync::shared_mutex::reader_slots));
        s->inside.fetch_sub(1);
      }
      done.fetch_add(1);
    });
  for (auto& t : ts) t.join();
  BOOST_TEST(done.load() == threads);
  BOOST_TEST(s->m.reader_count() == 0u);
}

// A writer's unlock() wakes every sleeping reader, and a released share wakes
// a reader queued for a free slot, by a wake call (a lost wake costs only one
// 50 ms re-arm slice; wake_probe.hpp tells the two apart).
BOOST_AUTO_TEST_CASE(unlock_wakes_sleeping_readers_by_a_wake_call, *boost::unit_test::timeout(300)) {
  struct strict_block {
    procsync::shared_mutex rw;
    std::atomic<int> release{0};
    std::atomic<int> holding{0};
  };
  wake_probe::tally readers, slot;
  for (int round = 0; round < 4; ++round) {
    auto a = procsync::make_anonymous<strict_block>();
    a->rw.lock();
    readers += wake_probe::strict_wake_round(3, [&] {
      a->rw.lock_shared();
      a->rw.unlock_shared();
      return true;
    }, [&] { a->rw.unlock(); });

    // Every slot held (one by this thread, the rest by threads of this
    // process): a 33rd reader queues for a slot until a share is released.
    auto b = procsync::make_anonymous<strict_block>();
    b->rw.lock_shared();
    std::vector<std::thread> holders;
    for (std::size_t i = 1; i < procsync::shared_mutex::reader_slots; ++i)
      holders.emplace_back([&] {
        b->rw.lock_shared();
        b->holding.fetch_add(1);
        while (b->release.load() == 0) std::this_thread::sleep_for(1ms);
        b->rw.unlock_shared();
      });
    BOOST_REQUIRE(eventually([&] { return b->holding.load() == int(procsync::shared_mutex::reader_slots) - 1; }));
    slot += wake_probe::strict_wake_round(1, [&] {
      b->rw.lock_shared();
      b->rw.unlock_shared();
      return true;
    }, [&] { b->rw.unlock_shared(); });
    b->release.store(1);
    for (auto& t : holders) t.join();
  }
  BOOST_TEST(readers.strict(), "writer unlock() of 3 sleeping readers: " << readers.str());
  BOOST_TEST(slot.strict(), "unlock_shared() of a reader queued for a slot: " << slot.str());
}

// Exclusion seen from both sides, with overlap that matters: every holder
// stays inside long enough for the others to try, and checks on entry, while
// inside and on leaving. A writer sees no reader and no other writer; a
// reader sees no writer.
BOOST_AUTO_TEST_CASE(exclusion_checked_by_writers_and_by_readers, *boost::unit_test::timeout(300)) {
  struct block {
    procsync::shared_mutex rw;
    std::atomic<int> readers_in{0};
    std::atomic<int> writers_in{0};
    std::atomic<int> writer_saw{0};
    std::atomic<int> reader_saw{0};
    std::atomic<int> go{0};
    std::atomic<int> max_readers{0};
  };
  auto b = procsync::make_anonymous<block>();
  constexpr int writers = 2, readers = 4, iters = 3000;
  std::vector<pid_t> kids;
  for (int w = 0; w < writers; ++w)
    kids.push_back(fork_child([&] {
      b->go.fetch_add(1);
      while (b->go.load() < writers + readers) std::this_thread::yield();
      for (int i = 0; i < iters; ++i) {
        b->rw.lock();
        if (b->writers_in.fetch_add(1) != 0) b->writer_saw.fetch_add(1);
        for (int k = 0; k < 20; ++k) {
          if (b->readers_in.load() != 0) b->writer_saw.fetch_add(1);
          if (k % 8 == 7) std::this_thread::yield();
        }
        b->writers_in.fetch_sub(1);
        b->rw.unlock();
      }
      return 0;
    }));
  for (int r = 0; r < readers; ++r)
    kids.push_back(fork_child([&] {
      b->go.fetch_add(1);
      while (b->go.load() < writers + readers) std::this_thread::yield();
      for (int i = 0; i < iters; ++i) {
        b->rw.lock_shared();
        const int now = b->readers_in.fetch_add(1) + 1;
        int seen = b->max_readers.load();
        while (now > seen && !b->max_readers.compare_exchange_weak(seen, now)) {
        }
        for (int k = 0; k < 20; ++k) {
          if (b->writers_in.load() != 0) b->reader_saw.fetch_add(1);
          if (k % 8 == 7) std::this_thread::yield();
        }
        b->readers_in.fetch_sub(1);
        b->rw.unlock_shared();
      }
      return 0;
    }));
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k, 240s) == 0);
  BOOST_TEST(b->writer_saw.load() == 0, "a writer saw another holder inside");
  BOOST_TEST(b->reader_saw.load() == 0, "a reader saw a writer inside");
  BOOST_TEST(b->readers_in.load() == 0);
  BOOST_TEST(b->writers_in.load() == 0);
  BOOST_TEST_MESSAGE("most readers inside at once: " << b->max_readers.load());
}

// Eventual fairness among writers (procsync::mutex's policy): a writer that has
// waited past the starvation bound reserves the gate, and the unlocking writer,
// coming straight back, waits behind it. Readers are not held back.

namespace {

// A child writer that waits for the lock the caller holds, marks that it got
// in and unlocks; returned once it has reserved the gate (it sleeps, wakes at
// its first re-arm slice having waited more than 1 ms, and claims it).
pid_t reserving_writer(block& b) {
  const pid_t heir = fork_child([&b] {
    b.m.lock();
    b.inside = 1;
    b.m.unlock();
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return b.m.heir_tid() == static_cast<std::uint32_t>(heir); }));
  return heir;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_starved_writer_is_served_before_the_unlocking_writer_relocks,
                     *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<block>();
  s->m.lock();
  const pid_t heir = reserving_writer(*s);
  const auto t0 = clk::now();
  s->m.unlock();
  s->m.lock();  // without the reservation: straight back, nanoseconds after the unlock
  const auto relock = clk::now() - t0;
  // The heir went first, or (a machine so loaded that it was not scheduled for
  // 50 ms) its reservation was dropped after that patience, never sooner.
  BOOST_TEST((s->inside.load() == 1 || relock >= 50ms), "relocked after " << (relock / 1us) << " us");
  BOOST_TEST(s->m.heir_tid() == 0u);
  s->m.unlock();
  BOOST_TEST(wait_exit_code(heir) == 0);
  BOOST_TEST(s->inside.load() == 1);
}

BOOST_AUTO_TEST_CASE(a_stopped_heir_holds_writers_back_boundedly_and_readers_not_at_all,
                     *boost::unit_test::timeout(120)) {
  auto s = procsync::make_anonymous<block>();
  s->m.lock();
  const pid_t heir = reserving_writer(*s);
  ::kill(heir, SIGSTOP);
  BOOST_REQUIRE(eventually([&] { return is_stopped(heir); }));
  const auto t0 = clk::now();  // before the unlock, where the heir's patience starts
  s->m.unlock();  // released to a heir that cannot come
  BOOST_TEST(s->m.heir_tid() == static_cast<std::uint32_t>(heir));
  // A reservation is among writers: a reader gets in at once.
  BOOST_TEST(s->m.try_lock_shared());
  s->m.unlock_shared();
  // A newcomer writer waits behind the stopped heir for its patience (one
  // re-arm slice, counted from the unlock), and no longer.
  const pid_t newcomer = fork_child([&s] {
    s->m.lock();
    s->m.unlock();
    return 0;
  });
  // The watchdog: a hang fails here (10 s is 200 times the bound), and the heir goes with it.
  const int code = wait_exit_code(newcomer, 10s);
  if (code != 0) ::kill(heir, SIGKILL);
  BOOST_REQUIRE_MESSAGE(code == 0, "the newcomer writer ended with " << code);
  const auto waited = clk::now() - t0;
  BOOST_TEST(waited >= 50ms, "the newcomer got in after " << (waited / 1us) << " us, before the heir's patience ran out");
  BOOST_TEST(s->m.heir_tid() != static_cast<std::uint32_t>(heir), "the stale reservation was dropped");
  ::kill(heir, SIGCONT);
  BOOST_TEST(wait_exit_code(heir, 30s) == 0);  // resumed, it still gets the lock
  BOOST_TEST(s->inside.load() == 1);
  BOOST_TEST(s->m.try_lock());
  s->m.unlock();
}
