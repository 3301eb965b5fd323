// The waiting floor and the identities under it: clocks that saturate, waits
// that hand a wake-up on when its receiver dies, liveness judged in one place,
// and caches that forked children of every kind never reuse.
#define BOOST_TEST_MODULE procsync waiting floor
#include <boost/test/unit_test.hpp>

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include <procsync/barrier.hpp>
#include <procsync/condition_variable.hpp>
#include <procsync/detail/clock.hpp>
#include <procsync/detail/process_identity.hpp>
#include <procsync/detail/thread_identity.hpp>
#include <procsync/detail/waiting_floor.hpp>
#include <procsync/event.hpp>
#include <procsync/mutex.hpp>
#include <procsync/process.hpp>
#include <procsync/segment.hpp>
#include <procsync/semaphore.hpp>
#include <procsync/shared_mutex.hpp>

#include "child.hpp"
#include "errors.hpp"

using namespace std::chrono_literals;
using procsync_test::blocked_in_futex;
using procsync_test::current_syscall;
using procsync_test::eventually;
using procsync_test::fork_child;
using procsync_test::voluntary_switches;
using procsync_test::wait_exit_code;
namespace detail = procsync::detail;

namespace {

// ---- clocks: "forever" never means "now" ---------------------------------------

BOOST_AUTO_TEST_CASE(max_durations_saturate_to_no_deadline) {
  BOOST_TEST((detail::deadline_after(std::chrono::seconds::max()) == detail::steady::time_point::max()));
  BOOST_TEST((detail::deadline_after(std::chrono::hours::max()) == detail::steady::time_point::max()));
  BOOST_TEST((detail::deadline_after(std::chrono::nanoseconds::max()) == detail::steady::time_point::max()));
  BOOST_TEST((detail::deadline_after(std::chrono::duration<double>(1e300)) == detail::steady::time_point::max()));
  BOOST_TEST((detail::to_steady(std::chrono::system_clock::time_point::max()) == detail::steady::time_point::max()));
  BOOST_TEST((detail::to_steady(detail::steady::time_point::max()) == detail::steady::time_point::max()));
  // The far past is "now or earlier", never a wrap-around into the future.
  BOOST_TEST((detail::to_steady(std::chrono::system_clock::time_point::min()) <= detail::steady::now()));
  const auto past = detail::deadline_after(std::chrono::seconds::min());
  BOOST_TEST((past <= detail::steady::now()));
  BOOST_TEST(detail::saturating_nanoseconds(std::chrono::hours::max()).count() == INT64_MAX);
  BOOST_TEST(detail::saturating_nanoseconds(-1s).count() == 0);
  // Ordinary values still round up, so a timeout never ends early.
  const auto before = detail::steady::now();
  const auto d = detail::deadline_after(std::chrono::duration<double, std::milli>(1.5));
  BOOST_TEST((d - before >= std::chrono::microseconds(1500)));
  timespec storage{};
  BOOST_TEST(detail::futex_deadline(detail::steady::time_point::max(), storage) == nullptr);
}

struct held_shared {
  procsync::mutex m;
  procsync::condition_variable cv;
  procsync::event ev;
  procsync::counting_semaphore<1> sem{0};
  std::atomic<int> done{0};
};

// Each "forever" timeout must block until released, not return at once.
template <class Wait, class Release>
void blocks_until_released(Wait wait_forever, Release release) {
  std::atomic<int> returned{0};
  std::atomic<bool> result{false};
  std::atomic<pid_t> tid{0};
  std::thread waiter([&] {
    tid = ::gettid();
    result = wait_forever();
    returned = 1;
  });
  const pid_t me = ::getpid();
  // Blocked means asleep in the kernel, seen from outside: no sleep-based guess.
  BOOST_REQUIRE(
      eventually([&] { return (tid.load() != 0 && blocked_in_futex(me, tid.load())) || returned.load() != 0; }));
  // A wrong "forever" (a deadline in the past, or a short one) ends the wait at
  // once or when the waiter next looks at its deadline: it must be seen to wake
  // (a re-arm slice), look and sleep again, twice, without returning.
  for (int slice = 0; slice < 2 && returned.load() == 0; ++slice) {
    const long before = voluntary_switches(me, tid.load());
    BOOST_TEST(eventually([&] {
      return returned.load() != 0 || (voluntary_switches(me, tid.load()) > before && blocked_in_futex(me, tid.load()));
    }));
  }
  BOOST_TEST(returned.load() == 0);
  release();
  BOOST_TEST(eventually([&] { return returned.load() != 0; }, 30s));
  waiter.join();
  BOOST_TEST(result.load());
}

BOOST_AUTO_TEST_CASE(forever_timeouts_block_until_released, *boost::unit_test::timeout(120)) {
  auto shared = procsync::make_anonymous<held_shared>();
  shared->m.lock();
  blocks_until_released(
      [&] {
        const bool got = shared->m.try_lock_for(std::chrono::seconds::max());
        if (got) shared->m.unlock();
        return got;
      },
      [&] { shared->m.unlock(); });
  blocks_until_released([&] { return shared->ev.wait_for(std::chrono::hours::max()); }, [&] { shared->ev.set(); });
  shared->ev.clear();
  blocks_until_released([&] { return shared->ev.wait_until(std::chrono::system_clock::time_point::max()); },
                        [&] { shared->ev.set(); });
  blocks_until_released([&] { return shared->sem.try_acquire_for(std::chrono::seconds::max()); },
                        [&] { shared->sem.release(); });
  blocks_until_released(
      [&] {
        std::unique_lock lk(shared->m);
        return shared->cv.wait_for(lk, std::chrono::hours::max(), [&] { return shared->done.load() != 0; });
      },
      [&] {
        std::lock_guard g(shared->m);
        shared->done = 1;
        shared->cv.notify_all();
      });
}

BOOST_AUTO_TEST_CASE(barrier_with_an_endless_default_timeout_does_not_break, *boost::unit_test::timeout(120)) {
  auto b = procsync::make_anonymous<procsync::barrier>(2, std::chrono::hours::max());
  std::atomic<int> index{-1};
  std::size_t mine = 9;
  // The first party waits (a wrong endless timeout would break the barrier and
  // throw); the second arrival releases it.
  blocks_until_released(
      [&] {
        try {
          index = static_cast<int>(b->wait());
          return true;
        } catch (const procsync::error&) {
          return false;
        }
      },
      [&] {
        BOOST_TEST(!b->broken());
        mine = b->wait();
      });
  BOOST_TEST(!b->broken());
  BOOST_TEST(mine + static_cast<std::size_t>(index.load()) == 1u);
}

BOOST_AUTO_TEST_CASE(join_with_a_forever_timeout_waits_for_the_child, *boost::unit_test::timeout(120)) {
  auto go = procsync::make_anonymous<std::atomic<int>>(0);
  procsync::process p{[&go] { return eventually([&] { return go->load() != 0; }) ? 7 : 99; }};
  p.start();
  // The child ends only once this thread sleeps in the join (in ppoll on the
  // pidfd, seen by looking): a join that returned at once would find it running.
  const pid_t main_tid = ::gettid();
  std::atomic<bool> seen_joining{false};
  std::thread releaser([&] {
    seen_joining = eventually([&] { return current_syscall(::getpid(), main_tid) == SYS_ppoll; });
    go->store(1);
  });
  const bool joined = p.join(std::chrono::seconds::max());
  releaser.join();
  BOOST_TEST(seen_joining.load());
  BOOST_TEST(joined);
  if (!joined) BOOST_REQUIRE(p.join(60s));  // a watchdog: the child has its go
  BOOST_TEST(p.exitcode().value() == 7);
}

// ---- a wake-up whose receiver dies is handed on --------------------------------

// The first sleeper gets the wake-up (the kernel wakes in FIFO order within a
// priority) but cannot run: it is pinned to the notifier's CPU with the
// SCHED_IDLE policy, so it never preempts the notifier, who kills it at once.
// It dies without consuming what it was woken for; the second sleeper must get
// it (within one re-arm slice), or it would sleep for ever.
template <class Block, class Wait, class Notify>
void woken_waiter_dies_before_consuming(Block& b, Wait wait, Notify notify) {
  cpu_set_t original;
  BOOST_REQUIRE(::sched_getaffinity(0, sizeof original, &original) == 0);
  int cpu = 0;
  while (!CPU_ISSET(cpu, &original)) ++cpu;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  const pid_t first = fork_child([&] {
    sched_param none{};
    if (::sched_setaffinity(0, sizeof one, &one) != 0 || ::sched_setscheduler(0, SCHED_IDLE, &none) != 0) return 90;
    wait(b);
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return blocked_in_futex(first); }));
  const pid_t second = fork_child([&] {
    wait(b);
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return blocked_in_futex(second); }));
  BOOST_REQUIRE(::sched_setaffinity(0, sizeof one, &one) == 0);
  notify(b);
  ::kill(first, SIGKILL);
  BOOST_REQUIRE(::sched_setaffinity(0, sizeof original, &original) == 0);
  const int first_code = wait_exit_code(first);
  BOOST_TEST((first_code == -SIGKILL || first_code == 0));
  if (first_code == 0) BOOST_TEST_MESSAGE("the first waiter ran before it was killed: this run proves nothing");
  const int second_code = wait_exit_code(second, 10s);
  BOOST_TEST(second_code == 0, "the second waiter never got what the dead one was woken for");
}

struct semaphore_block {
  procsync::counting_semaphore<4> sem{0};
};
struct event_block {
  procsync::event ev{procsync::event::reset_mode::automatic};
};
struct queue_block {
  procsync::mutex m;
  procsync::condition_variable cv;
  int items = 0;
};

BOOST_AUTO_TEST_CASE(a_permit_whose_woken_waiter_dies_reaches_another_waiter) {
  auto b = procsync::make_anonymous<semaphore_block>();
  woken_waiter_dies_before_consuming(
      *b, [](semaphore_block& s) { s.sem.acquire(); }, [](semaphore_block& s) { s.sem.release(); });
  BOOST_TEST(b->sem.value() == 0);
}

BOOST_AUTO_TEST_CASE(an_auto_reset_set_whose_woken_waiter_dies_reaches_another_waiter) {
  auto b = procsync::make_anonymous<event_block>();
  woken_waiter_dies_before_consuming(
      *b, [](event_block& e) { e.ev.wait(); }, [](event_block& e) { e.ev.set(); });
  BOOST_TEST(!b->ev.is_set());
}

BOOST_AUTO_TEST_CASE(a_notify_one_whose_woken_waiter_dies_reaches_another_waiter) {
  auto b = procsync::make_anonymous<queue_block>();
  woken_waiter_dies_before_consuming(
      *b,
      [](queue_block& q) {
        std::unique_lock lk(q.m);
        q.cv.wait(lk, [&] { return q.items > 0; });
        --q.items;
      },
      [](queue_block& q) {
        {
          std::lock_guard g(q.m);
          ++q.items;
        }
        q.cv.notify_one();
      });
  BOOST_TEST(b->items == 0);
}

// ---- liveness ----------------------------------------------------------------

struct undo_block {
  procsync::undo_semaphore<1, 4> sem{procsync::undo, 1};
  std::atomic<int> state{0};
};

// A process whose main thread called pthread_exit() while another thread runs
// shows 'Z' in /proc; it is alive, and its permits must not be handed on.
BOOST_AUTO_TEST_CASE(a_process_whose_main_thread_exited_is_alive) {
  auto b = procsync::make_anonymous<undo_block>();
  const pid_t kid = fork_child([&] {
    b->sem.acquire();
    std::thread keeper([&] {
      while (b->state.load() != 2) std::this_thread::sleep_for(1ms);
      b->sem.release();
      std::_Exit(0);
    });
    keeper.detach();
    b->state = 1;
    // The main thread ends, the process goes on (pthread_exit() without the
    // unwinding, which the test harness's frames would not survive).
    ::syscall(SYS_exit, 0);
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return b->state.load() == 1; }));
  BOOST_REQUIRE(eventually([&] {
    detail::proc_stat st;
    return detail::read_proc_stat(kid, st) && st.state == 'Z';
  }));
  const detail::process_identity who = detail::identity_of(kid);
  BOOST_TEST(detail::process_alive(who));
  BOOST_TEST(b->sem.reclaim_dead_holders() == 0);
  BOOST_TEST(!b->sem.try_acquire());
  b->state = 2;
  BOOST_TEST(wait_exit_code(kid) == 0);
  BOOST_TEST(!detail::process_alive(who));
  BOOST_TEST(b->sem.try_acquire());
  b->sem.release();
}

// Identities are stored without the time-namespace offset that /proc applies
// for its reader, so a process in another time namespace is not judged dead.
BOOST_AUTO_TEST_CASE(a_process_in_another_time_namespace_is_alive) {
  struct shared_identity {
    detail::process_identity who;
    std::atomic<int> state{0};
  };
  auto s = procsync::make_anonymous<shared_identity>();
  const pid_t outer = fork_child([&] {
    if (::unshare(CLONE_NEWTIME) != 0) return 77;  // needs CAP_SYS_ADMIN
    {
      std::ofstream offsets("/proc/self/timens_offsets");
      offsets << "boottime 100000 0\n";
      if (!offsets.flush()) return 77;
    }
    const pid_t inner = fork_child([&] {  // the first child enters the new namespace
      s->who = detail::current_process_identity();
      s->state = 1;
      while (s->state.load() != 2) std::this_thread::sleep_for(1ms);
      return 0;
    });
    return wait_exit_code(inner);
  });
  if (!eventually([&] { return s->state.load() == 1; }, 5s)) {
    const int code = wait_exit_code(outer);
    BOOST_REQUIRE_MESSAGE(code == 77, "the time-namespace child failed with " << code);
    BOOST_TEST_MESSAGE("skipped: creating a time namespace needs CAP_SYS_ADMIN");
    return;
  }
  BOOST_TEST(detail::process_alive(s->who));
  s->state = 2;
  BOOST_TEST(wait_exit_code(outer) == 0);
  BOOST_TEST(!detail::process_alive(s->who));
}

// ---- children made without fork handlers ----------------------------------

struct lock_block {
  procsync::mutex m;
};

// _Fork() runs no pthread_atfork handlers: the child must still lock under its
// own TID, so that its death releases the lock.
BOOST_AUTO_TEST_CASE(a_child_made_by_underscore_fork_locks_under_its_own_tid) {
  auto b = procsync::make_anonymous<lock_block>();
  b->m.lock();  // the parent's identity is cached now
  b->m.unlock();
  std::fflush(nullptr);
  const pid_t kid = ::_Fork();
  BOOST_REQUIRE(kid >= 0);
  if (kid == 0) {
    b->m.lock();
    const bool own = b->m.holder_tid() == static_cast<std::uint32_t>(::syscall(SYS_gettid));
    ::_exit(own ? 0 : 3);  // dies holding it
  }
  BOOST_TEST(wait_exit_code(kid) == 0);
  BOOST_TEST((b->m.try_lock_robust() == procsync::lock_status::owner_died));
  b->m.consistent();
  b->m.unlock();
}

// A child forked while other threads are initializing procsync's per-thread
// and per-process caches must not hang on anything they left half-done.
BOOST_AUTO_TEST_CASE(forks_racing_thread_starts_never_hang) {
  auto b = procsync::make_anonymous<lock_block>();
  std::atomic<bool> stop{false};
  std::vector<std::thread> starters;
  for (int i = 0; i < 4; ++i)
    starters.emplace_back([&] {
      while (!stop.load()) {
        std::thread fresh([&] {
          b->m.lock();  // a new thread's first lock initializes its identity
          b->m.unlock();
        });
        fresh.join();
      }
    });
  int hung = 0;
  for (int round = 0; round < 200; ++round) {
    const pid_t kid = fork_child([&] {
      b->m.lock();
      b->m.unlock();
      return 0;
    });
    hung += wait_exit_code(kid, 20s) != 0;
  }
  stop = true;
  for (auto& t : starters) t.join();
  BOOST_TEST(hung == 0);
}

// The first use of procsync in a process initializes its caches; a fork from
// another thread at that moment must leave the child nothing half-initialized
// (a guarded function-local static would leave the child waiting on its guard
// for ever). Only a fresh process has that first use: each round re-executes
// this test binary for one race.
procsync::mutex round_lock;        // static storage: zero-initialized, no constructor run
procsync::mutex round_child_lock;

BOOST_AUTO_TEST_CASE(forks_racing_a_first_use_never_hang) {
  if (std::getenv("PROCSYNC_FORK_RACE_ROUND") != nullptr) {
    std::thread first_use([] {
      round_lock.lock();
      round_lock.unlock();
    });
    const pid_t kid = ::fork();
    if (kid == 0) {
      round_child_lock.lock();
      round_child_lock.unlock();
      ::_exit(0);
    }
    first_use.join();
    BOOST_TEST(wait_exit_code(kid, 20s) == 0);
    return;
  }
  int failed = 0;
  for (int round = 0; round < 40; ++round) {
    const pid_t runner = fork_child([] {
      ::setenv("PROCSYNC_FORK_RACE_ROUND", "1", 1);
      ::execl("/proc/self/exe", "test_floor", "--run_test=forks_racing_a_first_use_never_hang", "--log_level=nothing",
              "--report_level=no", static_cast<char*>(nullptr));
      return 96;
    });
    failed += wait_exit_code(runner, 60s) != 0;
  }
  BOOST_TEST(failed == 0);
}

// ---- a lock whose storage ends while held --------------------------------

BOOST_AUTO_TEST_CASE(reusing_a_held_mutexs_storage_is_refused_loudly) {
  int err[2];
  BOOST_REQUIRE(::pipe(err) == 0);
  const pid_t kid = fork_child([&] {
    ::signal(SIGABRT, SIG_DFL);  // not the test framework's handler: die of it
    ::dup2(err[1], 2);
    void* mem = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    auto* first = new (mem) procsync::mutex;
    auto* second = new (static_cast<char*>(mem) + 512) procsync::mutex;
    first->lock();
    new (mem) procsync::mutex;  // its storage is reused while this thread holds it
    second->lock();             // must stop here, not write into the "new" object
    return 0;
  });
  ::close(err[1]);
  std::string message;
  char buf[512];
  for (ssize_t n; (n = ::read(err[0], buf, sizeof buf)) > 0;) message.append(buf, static_cast<std::size_t>(n));
  ::close(err[0]);
  BOOST_TEST(wait_exit_code(kid) == -SIGABRT);
  BOOST_TEST(message.find("destroyed, overwritten or unmapped while held") != std::string::npos, message);
}

// ---- no syscall without sleepers -------------------------------------------

BOOST_AUTO_TEST_CASE(waking_an_empty_word_makes_no_syscall) {
  detail::wait_word w{0};
  const auto before = detail::futex_syscalls.load();
  w.value.fetch_add(1, std::memory_order_seq_cst);
  detail::wake(w, 1);
  detail::wake_all(w);
  detail::ring(w, 1);
  BOOST_TEST(detail::futex_syscalls.load() == before);
  BOOST_TEST(detail::wait_until_done(w, nullptr, [](std::uint32_t v) { return v == 1; }));
  BOOST_TEST(detail::futex_syscalls.load() == before);
}

BOOST_AUTO_TEST_CASE(a_deadline_ends_a_floor_wait_and_never_early) {
  detail::wait_word w{0};
  const auto start = detail::steady::now();
  timespec storage{};
  const bool done = detail::wait_until_done(
      w, detail::futex_deadline(detail::deadline_after(120ms), storage), [](std::uint32_t v) { return v != 0; });
  BOOST_TEST(!done);
  BOOST_TEST((detail::steady::now() - start >= 120ms));
}

// A change whose wake call never comes (its waker died in between) is seen
// within one re-arm slice.
BOOST_AUTO_TEST_CASE(a_change_without_a_wake_call_is_seen_within_a_slice, *boost::unit_test::timeout(120)) {
  detail::wait_word w{0};
  std::atomic<bool> returned{false};
  std::atomic<pid_t> tid{0};
  std::thread sleeper([&] {
    tid = ::gettid();
    (void)detail::wait_until_done(w, nullptr, [](std::uint32_t v) { return v != 0; });
    returned = true;
  });
  // Announced and asleep in the futex, both seen: only a re-arm slice can end its sleep.
  BOOST_REQUIRE(eventually([&] { return w.sleepers.load() == 1 && blocked_in_futex(::getpid(), tid.load()); }));
  w.value.store(1, std::memory_order_seq_cst);  // and no wake: the waker "died"
  BOOST_TEST(eventually([&] { return returned.load(); }, 10s));
  sleeper.join();
}

// An exited child that its parent has not reaped yet shows 'Z' with one
// thread: it is dead, and its undo permits come back (unlike a zombie leader
// whose other threads still run, above).
BOOST_AUTO_TEST_CASE(an_unreaped_exited_child_is_dead) {
  auto b = procsync::make_anonymous<undo_block>();
  const pid_t kid = fork_child([&] {
    b->sem.acquire();
    b->state = 1;
    return 0;
  });
  BOOST_REQUIRE(eventually([&] {
    detail::proc_stat st;
    return b->state.load() == 1 && detail::read_proc_stat(kid, st) && st.state == 'Z';
  }));
  BOOST_TEST(!detail::process_alive(detail::identity_of(kid)));
  BOOST_TEST(b->sem.reclaim_dead_holders() == 1);
  BOOST_TEST(b->sem.try_acquire());
  b->sem.release();
  BOOST_TEST(wait_exit_code(kid) == 0);
}

// A pid names the process recorded only with the same start time: a recycled
// pid (a later start) is another process, and the recorded one is dead.
BOOST_AUTO_TEST_CASE(a_recycled_pid_is_not_the_process_recorded) {
  detail::process_identity me = detail::current_process_identity();
  BOOST_TEST(detail::process_alive(me));
  detail::process_identity earlier = me;
  earlier.start_time -= 1000;  // "started 10 s before this process": a different one with our pid
  BOOST_TEST(!detail::process_alive(earlier));
  detail::process_identity later = me;
  later.start_time += 1000;
  BOOST_TEST(!detail::process_alive(later));
}

}  // namespace

// Policy 4: the contended pause lasts its length by the monotonic clock (a
// broken loop would return at once) and never enters the kernel.
BOOST_AUTO_TEST_CASE(the_contended_pause_lasts_its_length_without_a_system_call) {
  using namespace procsync::detail;
  for (const std::int64_t ns : {std::int64_t{0}, contended_pause_ns, std::int64_t{300'000}}) {
    const auto calls_before = futex_syscalls.load();
    const std::int64_t t0 = monotonic_ns();
    pause_without_looking(ns);
    BOOST_TEST(monotonic_ns() - t0 >= ns);
    BOOST_TEST(futex_syscalls.load() == calls_before);
  }
  BOOST_TEST(contended_pause_ns < starvation_bound_ns, "the pause is far below the bound that reserves a lock");
}
