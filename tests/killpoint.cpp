// tests/killpoint.cpp — kill (and stop) one participant of a scenario at
// *exact* points: every futex call entry, every woken return from a futex
// wait, and a sample of other instructions; then check that the survivors
// proceed within the bound and that nothing was lost, duplicated or left
// poisoned. The method, the bounds and the knobs: docs/killpoints.md.
//
// One Boost.Test case per scenario and fault (kill, stop). Each case prints
// the points it covered and the survivors' recovery times, and the whole run
// writes a summary table (markdown and JSON) whose path it prints.
#define BOOST_TEST_MODULE killpoint
// The queue headers call a hook at every step of every operation when this is
// defined; the queue scenarios turn each step into a marker (see mark_queue_step).
#define PROCSYNC_QUEUE_TEST_HOOK 1
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "killpoint.hpp"
#include <procsync/barrier.hpp>
#include <procsync/condition_variable_any.hpp>
#include <procsync/latch.hpp>
#include <procsync/condition_variable.hpp>
#include <procsync/deadlock.hpp>
#include <procsync/event.hpp>
#include <procsync/message_queue.hpp>
#include <procsync/mutex.hpp>
#include <procsync/queue.hpp>
#include <procsync/recursive_mutex.hpp>
#include <procsync/segment.hpp>
#include <procsync/semaphore.hpp>
#include <procsync/shared_mutex.hpp>
#include <procsync/shared_value.hpp>

namespace {

using namespace killpoint;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------
// Configuration (environment; see docs/killpoints.md)
// ---------------------------------------------------------------------------

long env_long(const char* name, long fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return (end != nullptr && *end == '\0') ? n : fallback;
}

struct config {
  bool full = env_long("PROCSYNC_KILLPOINT_FULL", 0) != 0;
  long cap = env_long("PROCSYNC_KILLPOINT_CAP", full ? 100000 : 40);  // points per kind and target
  long others = env_long("PROCSYNC_KILLPOINT_OTHERS", full ? 20 : 4);  // "other" points per target
  long guard_ms = env_long("PROCSYNC_KILLPOINT_GUARD_MS", 1500);        // a survivor slower than this: HUNG
  long hold_ms = env_long("PROCSYNC_KILLPOINT_HOLD_MS", 30);            // a stopped target that holds what others need
  long max_hangs = env_long("PROCSYNC_KILLPOINT_MAX_HANGS", full ? 1000000 : 2);  // then the case stops early
  long bound_ms = 250;                                                  // asserted on the median
  unsigned long seed = static_cast<unsigned long>(
      env_long("PROCSYNC_KILLPOINT_SEED", static_cast<long>(static_cast<unsigned long>(::getpid()) * 2654435761ul % 1000000)));
};

const config& cfg() {
  static const config c;
  return c;
}

// ---------------------------------------------------------------------------
// Shared helpers for the scenarios
// ---------------------------------------------------------------------------

/// Compiler-only fence between the steps of a critical section (the only
/// observer of a half-done step is the next holder after our death).
inline void step() { std::atomic_signal_fence(std::memory_order_seq_cst); }

/// An exactly-once ledger under a lock: every commit adds 1 to `total` and to
/// the committer's count, with an undo record that a repairing holder rolls back.
struct ledger {
  long total = 0;
  long count[max_parts] = {};
  int inside = 0;  // participant + 1 while inside the critical section
  int log_active = 0;
  int log_who = 0;
  long log_total = 0;
  long log_count = 0;

  void commit(int who, control& c) {
    log_who = who;
    log_total = total;
    log_count = count[who];
    step();
    log_active = 1;
    step();
    total += 1;
    step();
    mark(c);  // a death here leaves a half-done commit for the next holder
    count[who] += 1;
    step();
    log_active = 0;
    step();
  }
  void repair() {
    if (log_active != 0) {
      total = log_total;
      count[log_who] = log_count;
      log_active = 0;
    }
    inside = 0;
    step();
  }
};

/// Checks a ledger once everybody is gone: exact for the living, and the
/// target's count is its finished operations plus at most the one it was in.
std::string check_ledger(ledger& l, const long* finished, int parts, int target, bool died, const char* const* roles,
                         const std::vector<int>& committers, long iters) {
  l.repair();
  std::ostringstream out;
  long sum = 0;
  for (int i = 0; i < parts; ++i) sum += l.count[i];
  if (sum != l.total) out << "ledger total " << l.total << " != sum of counts " << sum << "; ";
  for (int i : committers) {
    if (i == target && died) {
      if (l.count[i] < finished[i] || l.count[i] > finished[i] + 1)
        out << roles[i] << " (killed) committed " << l.count[i] << " but finished " << finished[i] << "; ";
    } else if (l.count[i] != iters || finished[i] != iters) {
      out << roles[i] << " committed " << l.count[i] << " and finished " << finished[i] << ", expected " << iters
          << "; ";
    }
  }
  return out.str();
}

// ---------------------------------------------------------------------------
// Scenarios. Each is a struct with:
//   name, roles (participant names), targets (which participants are traced),
//   state (shared memory, starting with `control ctl`; run_once makes it),
//   body(state&, i) -> exit code,
//   may_block(state&, target, pid, kind): a frozen target may legitimately make
//     the others wait (it holds what they need),
//   stuck_ok(state&, target): after a kill, why waiting survivors cannot proceed by design (or nullptr),
//   check(state&, target, died, kind, target_phase) -> "" or what is wrong,
//   by_design(state&, target): the stall is documented (not a recovery sample).
// ---------------------------------------------------------------------------

/// Waiters queue on a futex in arrival order and a wake takes the first: the
/// traced waiter (or waiter `first_role` when the target is not a waiter) goes
/// to sleep first, so the wake it is killed with is the one the others need.
template <class S>
void sleep_after_first_waiter(S& s, int i, int first_role) {
  const int first = s.ctl.target >= first_role ? s.ctl.target : first_role;
  if (i == first) return;
  (void)poll_until([&] { return s.ctl.phase[first] == acquiring; }, 20'000);
  sleep_us(500);
}

/// The waker (participant 0) starts once every other participant is in its
/// waiting call, and gives them `settle_us` to fall asleep: its wakes must
/// find sleepers, not waiters still on their way in.
template <class S>
void start_after_others_wait(S& s, int parts, long settle_us) {
  (void)poll_until([&] {
    for (int p = 1; p < parts; ++p)
      if (s.ctl.phase[p] != acquiring) return false;
    return true;
  }, 20'000);
  sleep_us(settle_us);
}

struct scenario_base {
  // After a kill, the survivors still waiting cannot proceed and that is by
  // design (what they wait for was the dead target's to give, and it never
  // gave it). Evaluated while they wait; it must hold for 250 ms.
  template <class S>
  static const char* stuck_ok(S&, int) {
    return nullptr;
  }
  template <class S>
  static bool by_design(S&, int, int, point_kind, std::uintptr_t) {
    return false;
  }
};

// --- mutex, recursive_mutex, checked_mutex under the deadlock detector -------

// How mutex_scenario's lockers behave: hold 300 us, stay away 100 us; locker-0 traced.
struct steady_lockers {
  static long hold_us(int) { return 300; }
  static long gap_us(int) { return 100; }
  static std::vector<int> targets() { return {0}; }
};

struct plain_mutex_kind : steady_lockers {
  static constexpr const char* name = "mutex";
  struct lock_type {
    procsync::mutex m;
  };
  static procsync::lock_status lock(lock_type& l) { return l.m.lock_robust(); }
  static void unlock(lock_type& l) { l.m.unlock(); }
  static void consistent(lock_type& l) { l.m.consistent(); }
  static std::uint32_t holder(lock_type& l) { return l.m.holder_tid(); }
  static bool poisoned(lock_type& l) { return l.m.not_recoverable(); }
};

struct recursive_mutex_kind : steady_lockers {
  static constexpr const char* name = "recursive_mutex";
  struct lock_type {
    procsync::recursive_mutex m;
  };
  static procsync::lock_status lock(lock_type& l) {
    const procsync::lock_status s = l.m.lock_robust();
    (void)l.m.lock_robust();  // nested: the holder re-enters
    return s;
  }
  static void unlock(lock_type& l) {
    l.m.unlock();
    l.m.unlock();
  }
  static void consistent(lock_type& l) { l.m.consistent(); }
  static std::uint32_t holder(lock_type& l) { return l.m.holder_tid(); }
  static bool poisoned(lock_type& l) { return l.m.not_recoverable(); }
};

struct checked_mutex_kind : steady_lockers {
  static constexpr const char* name = "checked_mutex";
  struct lock_type {
    procsync::deadlock_registry reg{};
    procsync::checked_mutex m{reg.define_class("killpoint-ledger")};
  };
  static procsync::lock_status lock(lock_type& l) { return l.m.lock_robust(); }
  static void unlock(lock_type& l) { l.m.unlock(); }
  static void consistent(lock_type& l) { l.m.consistent(); }
  static std::uint32_t holder(lock_type& l) { return l.m.holder_tid(); }
  static bool poisoned(lock_type& l) { return l.m.not_recoverable(); }
};

// Eventual fairness (waiting_floor.hpp, policy 5): lockers 1 and 2 hold for
// 2 ms and take the mutex straight back, so locker-0 waits past the 1 ms bound
// and reserves it. Traced: the heir (killed asleep with its reservation, or
// woken and not yet in) and a barging unlocker (killed on its way to wake the heir).
struct reserved_mutex_kind : plain_mutex_kind {
  static constexpr const char* name = "mutex_reserved";
  static long hold_us(int i) { return i == 0 ? 300 : 2000; }
  static long gap_us(int i) { return i == 0 ? 100 : 0; }
  static std::vector<int> targets() { return {0, 1}; }
};

// The same fairness on shared_mutex's gate, among writers only: its unlock
// frees the gate to 0 for the readers, and a newcomer writer (locker-1 or -2
// coming straight back) waits behind the reservation instead.
struct reserved_shared_writer_kind : steady_lockers {
  static constexpr const char* name = "shared_mutex_writer_reserved";
  struct lock_type {
    procsync::shared_mutex m;
  };
  static procsync::lock_status lock(lock_type& l) { return l.m.lock_robust(); }
  static void unlock(lock_type& l) { l.m.unlock(); }
  static void consistent(lock_type& l) { l.m.consistent(); }
  static std::uint32_t holder(lock_type& l) { return l.m.writer_tid(); }
  static bool poisoned(lock_type& l) { return l.m.not_recoverable(); }
  static long hold_us(int i) { return reserved_mutex_kind::hold_us(i); }
  static long gap_us(int i) { return reserved_mutex_kind::gap_us(i); }
  static std::vector<int> targets() { return reserved_mutex_kind::targets(); }
};

template <class K>
struct mutex_scenario : scenario_base {
  static constexpr const char* name = K::name;
  static constexpr int parts = 3;
  static constexpr long iters = 4;
  static constexpr const char* roles[parts] = {"locker-0", "locker-1", "locker-2"};
  static std::vector<int> targets() { return K::targets(); }

  struct state {
    control ctl;
    typename K::lock_type lk;
    ledger led;
    long finished[max_parts] = {};
    long repairs = 0;
  };

  static int body(state& s, int i) {
    if constexpr (std::is_same_v<K, checked_mutex_kind>)
      procsync::install_deadlock_detector(s.lk.reg, roles[i]);
    for (long it = 0; it < iters; ++it) {
      s.ctl.phase[i] = acquiring;
      const procsync::lock_status st = K::lock(s.lk);
      s.ctl.phase[i] = holding;
      if (st == procsync::lock_status::owner_died) {
        s.led.repair();
        ++s.repairs;
        K::consistent(s.lk);
      } else if (s.led.inside != 0) {
        return complain(s.ctl, i, "mutual exclusion broken: " + std::string(roles[s.led.inside - 1]) + " is inside");
      }
      s.led.inside = i + 1;
      step();
      mark(s.ctl);               // a death here: held, nothing half-done
      sleep_us(K::hold_us(i));  // hold it: the others must sleep
      s.led.commit(i, s.ctl);
      s.led.inside = 0;
      step();
      s.ctl.phase[i] = releasing;
      K::unlock(s.lk);
      s.ctl.phase[i] = idle;
      ++s.finished[i];
      if (K::gap_us(i) > 0) sleep_us(K::gap_us(i));
    }
    return 0;
  }

  static bool may_block(state& s, int, pid_t pid, point_kind) {
    return K::holder(s.lk) == static_cast<std::uint32_t>(pid);
  }

  static std::string check(state& s, int target, bool died, point_kind, int) {
    std::string r = check_ledger(s.led, s.finished, parts, target, died, roles, {0, 1, 2}, iters);
    if (K::poisoned(s.lk)) r += "the lock was left not recoverable; ";
    // Nothing left poisoned: a fresh process takes and releases it.
    const int rc = probe([&] {
      if (K::lock(s.lk) == procsync::lock_status::owner_died) K::consistent(s.lk);
      K::unlock(s.lk);
      return 0;
    });
    if (rc != 0) r += "a fresh locker afterwards failed (" + std::to_string(rc) + "); ";
    return r;
  }
};

// --- shared_mutex: two writers, three readers (bug 1 lives here) -------------

struct shared_mutex_scenario : scenario_base {
  static constexpr const char* name = "shared_mutex";
  static constexpr int parts = 5;
  static constexpr long iters = 2;
  static constexpr const char* roles[parts] = {"writer-0", "writer-1", "reader-0", "reader-1", "reader-2"};
  static std::vector<int> targets() { return {0, 2}; }

  struct state {
    control ctl;
    procsync::shared_mutex sm;
    ledger led;
    long data_a = 0;
    long data_b = 0;
    std::atomic<int> writer0_in{0};
    long finished[max_parts] = {};
  };

  static int body(state& s, int i) {
    if (i < 2) {
      // writer-0 goes first and the readers pile up behind it on the gate, so
      // the wake of its first unlock goes to a reader; writer-1 comes later.
      if (i == 1) (void)poll_until([&] { return s.finished[0] >= 1; }, 50'000);
      for (long it = 0; it < iters; ++it) {
        s.ctl.phase[i] = acquiring;
        const procsync::lock_status st = s.sm.lock_robust();
        s.ctl.phase[i] = holding;
        if (i == 0) s.writer0_in = 1;
        if (st == procsync::lock_status::owner_died) {
          s.led.repair();
          s.data_b = s.data_a;
          s.sm.consistent();
        } else if (s.led.inside != 0) {
          return complain(s.ctl, i, "writer found " + std::string(roles[s.led.inside - 1]) + " inside");
        }
        s.led.inside = i + 1;
        step();
        s.data_a += 1;
        step();
        mark(s.ctl);     // a death here leaves a half-done update (readers must be told)
        sleep_us(1500);  // readers arrive and sleep on the gate
        s.data_b += 1;
        s.led.commit(i, s.ctl);
        s.led.inside = 0;
        step();
        s.ctl.phase[i] = releasing;
        s.sm.unlock();
        s.ctl.phase[i] = idle;
        ++s.finished[i];
        sleep_us(500);
      }
      return 0;
    }
    (void)poll_until([&] { return s.writer0_in.load() != 0; }, 20'000);
    for (long it = 0; it < iters; ++it) {
      s.ctl.phase[i] = acquiring;
      const procsync::lock_status st = s.sm.lock_shared_robust();
      s.ctl.phase[i] = holding;
      if (st == procsync::lock_status::acquired && (s.data_a != s.data_b || s.led.inside != 0))
        return complain(s.ctl, i, "reader saw a writer's half-done update without owner_died");
      sleep_us(200);
      s.ctl.phase[i] = releasing;
      s.sm.unlock_shared();
      s.ctl.phase[i] = idle;
      ++s.finished[i];
      sleep_us(300);
    }
    return 0;
  }

  static bool may_block(state& s, int target, pid_t pid, point_kind kind) {
    if (s.sm.writer_tid() == static_cast<std::uint32_t>(pid)) return true;
    const int ph = s.ctl.phase[target];
    if (target >= 2 && ph == holding) return true;  // a reader holding a share blocks the writers
    return kind == point_kind::other && ph != idle;  // mid-operation at an arbitrary instruction
  }

  static std::string check(state& s, int target, bool died, point_kind, int) {
    std::string r = check_ledger(s.led, s.finished, parts, target, died, roles, {0, 1}, iters);
    for (int i = 2; i < parts; ++i)
      if (!(i == target && died) && s.finished[i] != iters)
        r += std::string(roles[i]) + " finished " + std::to_string(s.finished[i]) + " reads; ";
    if (s.sm.not_recoverable()) r += "left not recoverable; ";
    const int rc = probe([&] {
      if (s.sm.lock_robust() == procsync::lock_status::owner_died) s.sm.consistent();
      s.sm.unlock();
      s.sm.lock_shared();
      s.sm.unlock_shared();
      return 0;
    });
    if (rc != 0) r += "a fresh writer+reader afterwards failed (" + std::to_string(rc) + "); ";
    return r;
  }
};

// --- shared_mutex with more readers than slots (bug 3) ----------------------
// The target takes 31 of the 32 reader slots (recursive shares) and keeps them
// while it waits (bounded) for the others; a filler takes the 32nd; three more
// readers find no slot and sleep; the filler then leaves. A slot is free: the
// three must get it, whatever the target does.

struct shared_mutex_slots_scenario : scenario_base {
  static constexpr const char* name = "shared_mutex_33_readers";
  static constexpr int parts = 5;
  static constexpr int target_shares = 31;
  static constexpr const char* roles[parts] = {"reader-31-shares", "reader-filler", "reader-a", "reader-b",
                                               "reader-c"};
  static std::vector<int> targets() { return {0}; }

  struct state {
    control ctl;
    procsync::shared_mutex sm;
    procsync::event all_done;
    std::atomic<int> target_ready{0};
    std::atomic<int> readers_done{0};
    long finished[max_parts] = {};
  };

  static int body(state& s, int i) {
    if (i == 0) {
      s.ctl.phase[i] = acquiring;
      for (int k = 0; k < target_shares; ++k) s.sm.lock_shared();
      s.ctl.phase[i] = holding;
      s.target_ready = 1;
      (void)s.all_done.wait_for(300ms);  // holds its shares meanwhile
      s.ctl.phase[i] = releasing;
      for (int k = 0; k < target_shares; ++k) s.sm.unlock_shared();
      s.ctl.phase[i] = idle;
      ++s.finished[i];
      return 0;
    }
    (void)poll_until([&] { return s.target_ready.load() != 0; }, 50'000);
    if (i == 1) {
      s.ctl.phase[i] = acquiring;
      s.sm.lock_shared();
      s.ctl.phase[i] = holding;
      (void)poll_until([&] { return s.ctl.phase[2] == acquiring && s.ctl.phase[3] == acquiring &&
                                    s.ctl.phase[4] == acquiring; },
                       20'000);
      sleep_us(2000);  // they are asleep, waiting for a slot
      s.ctl.phase[i] = releasing;
      s.sm.unlock_shared();
      s.ctl.phase[i] = idle;
      ++s.finished[i];
      return 0;
    }
    (void)poll_until([&] { return s.ctl.phase[1] == holding; }, 50'000);
    s.ctl.phase[i] = acquiring;
    s.sm.lock_shared();
    s.ctl.phase[i] = holding;
    sleep_us(500);
    s.ctl.phase[i] = releasing;
    s.sm.unlock_shared();
    s.ctl.phase[i] = idle;
    ++s.finished[i];
    if (s.readers_done.fetch_add(1) + 1 == 3) s.all_done.set();
    return 0;
  }

  // The target's shares are never needed: a slot is free once the filler leaves.
  static bool may_block(state&, int, pid_t, point_kind) { return false; }

  static std::string check(state& s, int target, bool died, point_kind, int) {
    std::string r;
    for (int i = 1; i < parts; ++i)
      if (s.finished[i] != 1) r += std::string(roles[i]) + " did not finish; ";
    if (!died && s.finished[target] != 1) r += "the target did not finish; ";
    if (s.sm.reader_count() != 0)
      r += "reader slots still held after everyone left: " + std::to_string(s.sm.reader_count()) + "; ";
    return r;
  }
};

// --- condition_variable: a producer, three consumers (bug 2) ------------------
// The producer queues one item at a time with notify_one and waits until it
// was popped (by anyone) before the next.

// The same scenario for both condition variables (condition_variable_any with
// the same std::unique_lock<procsync::mutex>): they share their notifier, but
// not their wait paths.
template <class ConditionVariable>
struct condvar_scenario_of : scenario_base {
  static constexpr const char* name = std::is_same_v<ConditionVariable, procsync::condition_variable>
                                          ? "condition_variable"
                                          : "condition_variable_any";
  static constexpr int parts = 4;
  static constexpr int items = 6;
  static constexpr const char* roles[parts] = {"producer", "consumer-0", "consumer-1", "consumer-2"};
  static std::vector<int> targets() { return {1, 0}; }

  struct state {
    control ctl;
    procsync::mutex m;
    ConditionVariable cv;
    int queue[16] = {};
    int head = 0;
    int tail = 0;
    int popped = 0;
    int taker[items + 1] = {};
    int duplicates = 0;
    // undo record of a pop
    int log_active = 0;
    int log_head = 0;
    int log_popped = 0;
    int log_item = 0;
    int log_taker = 0;
    long consumed[max_parts] = {};
    long produced = 0;
  };

  static void repair(state& s) {
    if (s.log_active != 0) {
      s.head = s.log_head;
      s.popped = s.log_popped;
      s.taker[s.log_item] = s.log_taker;
      s.log_active = 0;
    }
    step();
  }

  static void lock(state& s, std::unique_lock<procsync::mutex>& lk) {
    if (s.m.lock_robust() == procsync::lock_status::owner_died) {
      repair(s);
      s.m.consistent();
    }
    lk = std::unique_lock<procsync::mutex>(s.m, std::adopt_lock);
  }

  static int body(state& s, int i) {
    std::unique_lock<procsync::mutex> lk;
    if (i == 0) {
      start_after_others_wait(s, parts, 1000);
      for (int item = 1; item <= items; ++item) {
        // Each item waits until the previous one was taken, so every
        // notification is needed: one swallowed by a dying consumer shows.
        if (item > 1)
          while (s.head != s.tail) sleep_us(100);
        s.ctl.phase[i] = acquiring;
        lock(s, lk);
        s.ctl.phase[i] = holding;
        s.queue[s.tail % 16] = item;
        step();
        s.tail += 1;
        s.ctl.phase[i] = releasing;
        lk.unlock();
        ++s.produced;
        s.cv.notify_one();  // after the unlock: a death at its wake is not a mutex owner's death
        s.ctl.phase[i] = idle;
      }
      return 0;
    }
    sleep_after_first_waiter(s, i, 1);
    for (;;) {
      s.ctl.phase[i] = acquiring;
      lock(s, lk);
      // A predicate wait: it re-checks under the mutex after every re-arm
      // slice, so a producer killed between its push and its notify is seen.
      for (;;) {
        try {
          s.cv.wait(lk, [&] { return s.head != s.tail || s.popped >= items; });
          break;
        } catch (const procsync::error& e) {  // a holder died: repair, then wait on
          if (e.code() != procsync::errc::owner_dead) throw;
          repair(s);
          s.m.consistent();
        }
      }
      s.ctl.phase[i] = holding;
      if (s.head == s.tail) {  // everything was popped (by someone)
        s.ctl.phase[i] = releasing;
        lk.unlock();
        s.ctl.phase[i] = idle;
        return 0;
      }
      const int item = s.queue[s.head % 16];
      s.log_head = s.head;
      s.log_popped = s.popped;
      s.log_item = item;
      s.log_taker = s.taker[item];
      step();
      s.log_active = 1;
      step();
      s.head += 1;
      mark(s.ctl);  // a death here leaves a half-done pop for the next locker
      s.popped += 1;
      if (s.taker[item] != 0) s.duplicates += 1;
      s.taker[item] = i;
      step();
      s.log_active = 0;
      step();
      const bool last = s.popped == items;
      s.ctl.phase[i] = releasing;
      lk.unlock();
      ++s.consumed[i];
      if (last) s.cv.notify_all();  // the others stop waiting
      s.ctl.phase[i] = idle;
      sleep_us(200);
    }
  }

  // The consumers need the producer's future items: a frozen producer may make
  // them wait. A frozen consumer holds nothing unless it holds the mutex.
  static bool may_block(state& s, int target, pid_t pid, point_kind) {
    return target == 0 || s.m.holder_tid() == static_cast<std::uint32_t>(pid);
  }
  // A dead producer's missing items never come; an item in the queue must be
  // taken. A consumer killed holding the mutex (word: free, owner died) sent
  // no notification: the consumers asleep on the condition variable are not
  // told, and its half-done pop is repaired by the next locker.
  static const char* stuck_ok(state& s, int target) {
    if (s.m.holder_tid() != 0) return nullptr;
    if (s.m.inconsistent()) return "the target died holding the mutex: nobody notified the condition variable";
    if (target == 0 && s.head == s.tail) return "the dead producer's remaining items never come";
    return nullptr;
  }

  static std::string check(state& s, int target, bool died, point_kind, int target_phase) {
    repair(s);
    if (target == 0 && died) {  // the producer died: what it queued is consumed exactly once
      std::ostringstream out;
      if (s.duplicates != 0) out << s.duplicates << " items popped twice; ";
      if (s.head != s.tail) out << "items left in the queue; ";
      for (int c = 1; c < parts; ++c) {
        long by = 0;
        for (int item = 1; item <= items; ++item) by += s.taker[item] == c;
        if (by != s.consumed[c]) out << roles[c] << " popped " << by << " but finished " << s.consumed[c] << "; ";
      }
      return out.str();
    }
    std::ostringstream out;
    if (s.produced != items) out << "producer produced " << s.produced << "; ";
    if (s.popped != items || s.head != s.tail) out << "popped " << s.popped << " of " << items << "; ";
    if (s.duplicates != 0) out << s.duplicates << " items popped twice; ";
    long by[max_parts] = {};
    for (int item = 1; item <= items; ++item) {
      if (s.taker[item] == 0)
        out << "item " << item << " never popped; ";
      else
        by[s.taker[item]] += 1;
    }
    for (int c = 1; c < parts; ++c) {
      const long lost = by[c] - s.consumed[c];
      if (c == target && died) {
        if (lost < 0 || lost > 1 || (lost == 1 && target_phase == idle))
          out << roles[c] << " (killed) popped " << by[c] << ", finished " << s.consumed[c] << "; ";
      } else if (lost != 0) {
        out << roles[c] << " popped " << by[c] << " but finished " << s.consumed[c] << "; ";
      }
    }
    if (s.m.not_recoverable()) out << "mutex left not recoverable; ";
    return out.str();
  }
};

// --- counting_semaphore, plain: a releaser, three acquirers (bug 2) ----------
// The releaser posts two permits back to back, waits until both are taken (by
// anyone, dead or alive: value() == 0), then posts the third. A woken acquirer
// that dies before taking its permit must not strand it.

struct semaphore_scenario : scenario_base {
  static constexpr const char* name = "counting_semaphore";
  static constexpr int parts = 4;
  static constexpr int permits = 3;
  static constexpr const char* roles[parts] = {"releaser", "acquirer-0", "acquirer-1", "acquirer-2"};
  static std::vector<int> targets() { return {1, 0}; }

  struct state {
    control ctl;
    procsync::counting_semaphore<16> sem{0};
    long taken[max_parts] = {};
    long released = 0;
  };

  static int body(state& s, int i) {
    if (i == 0) {
      start_after_others_wait(s, parts, 1500);
      for (int k = 0; k < permits; ++k) {
        if (k == 2)
          while (s.sem.value() != 0) sleep_us(100);
        s.ctl.phase[i] = releasing;
        s.sem.release();
        ++s.released;
        s.ctl.phase[i] = idle;
      }
      return 0;
    }
    sleep_after_first_waiter(s, i, 1);
    s.ctl.phase[i] = acquiring;
    s.sem.acquire();
    ++s.taken[i];
    s.ctl.phase[i] = idle;
    return 0;
  }

  // A frozen releaser owes the others their permits; a frozen acquirer owes nothing.
  static bool may_block(state&, int target, pid_t, point_kind) { return target == 0; }
  // A dead releaser's unposted permits never come; a posted one must be taken.
  static const char* stuck_ok(state& s, int target) {
    return target == 0 && s.sem.value() == 0 ? "the dead releaser's remaining permits never come" : nullptr;
  }

  static std::string check(state& s, int target, bool died, point_kind, int target_phase) {
    std::ostringstream out;
    long sum = 0;
    for (int i = 1; i < parts; ++i) {
      sum += s.taken[i];
      if (!(i == target && died) && s.taken[i] != 1) out << roles[i] << " took " << s.taken[i] << "; ";
    }
    const long total = sum + static_cast<long>(s.sem.value());
    const long posted = (target == 0 && died) ? static_cast<long>(s.released) : permits;
    // A killed releaser may have posted one it did not count yet.
    const bool one_uncounted_post = target == 0 && died && target_phase == releasing;
    // Plain mode: a permit the killed acquirer had taken but not yet counted
    // is lost with it (documented), possible only while it was in acquire().
    const bool may_lose_one = target != 0 && died && target_phase == acquiring;
    if (!(target == 0 && died) && s.released != permits) out << "released " << s.released << "; ";
    if (total != posted && !(may_lose_one && total == posted - 1) && !(one_uncounted_post && total == posted + 1))
      out << "permits: taken " << sum << " + available " << s.sem.value() << " != posted " << posted << "; ";
    return out.str();
  }
};

// --- undo_semaphore: three processes share one permit --------------------------

struct undo_semaphore_scenario : scenario_base {
  static constexpr const char* name = "undo_semaphore";
  static constexpr int parts = 3;
  static constexpr long iters = 3;
  static constexpr const char* roles[parts] = {"holder-0", "holder-1", "holder-2"};
  static std::vector<int> targets() { return {0}; }

  struct state {
    control ctl;
    procsync::undo_semaphore<4, 8> sem{procsync::undo, 1};
    std::atomic<int> inside{0};
    long finished[max_parts] = {};
  };

  static int body(state& s, int i) {
    for (long it = 0; it < iters; ++it) {
      s.ctl.phase[i] = acquiring;
      s.sem.acquire();
      s.ctl.phase[i] = holding;
      const int before = s.inside.exchange(i + 1);
      if (before != 0 && before != 1)  // participant 0 (the target) may have died holding it
        return complain(s.ctl, i, "two holders of the only permit: " + std::string(roles[before - 1]));
      mark(s.ctl);  // a death here: the permit must come back (undo)
      sleep_us(300);
      s.inside = 0;
      s.ctl.phase[i] = releasing;
      s.sem.release();
      s.ctl.phase[i] = idle;
      ++s.finished[i];
      sleep_us(100);
    }
    return 0;
  }

  // A frozen holder keeps its permit (a stopped process is not dead). Inside
  // acquire() the target may already hold it: frozen at the wake that releases
  // the semaphore's internal lock, after taking the permit, it is still
  // "acquiring" to its phase, so the undo table, not the phase, says.
  static bool may_block(state& s, int target, pid_t pid, point_kind kind) {
    const int ph = s.ctl.phase[target];
    for (std::size_t i = 0; i < 8; ++i) {
      const auto [who, held] = s.sem.undo_holder(i);
      if (who.pid == pid && held != 0) return true;
    }
    return ph == holding || ph == releasing || (kind == point_kind::other && ph != idle);
  }

  static std::string check(state& s, int target, bool died, point_kind, int) {
    std::ostringstream out;
    for (int i = 0; i < parts; ++i)
      if (!(i == target && died) && s.finished[i] != iters) out << roles[i] << " finished " << s.finished[i] << "; ";
    // The permit comes back (undo), exactly once, and the internal lock works.
    const int rc = probe([&] {
      (void)s.sem.reclaim_dead_holders();
      if (s.sem.value() != 1) return 10 + static_cast<int>(s.sem.value());
      if (!s.sem.try_acquire()) return 3;
      s.sem.release();
      return 0;
    });
    if (rc != 0)
      out << "after everyone left: " << (rc >= 10 ? "value " + std::to_string(rc - 10) + " != 1" : std::to_string(rc))
          << "; ";
    return out.str();
  }
};

// --- event, manual reset: a setter, three waiters -----------------------------

struct event_manual_scenario : scenario_base {
  static constexpr const char* name = "event_manual";
  static constexpr int parts = 4;
  static constexpr const char* roles[parts] = {"setter", "waiter-0", "waiter-1", "waiter-2"};
  static std::vector<int> targets() { return {0, 1}; }

  struct state {
    control ctl;
    procsync::event ev{procsync::event::reset_mode::manual};
    long returned[max_parts] = {};
    long sets = 0;
  };

  static int body(state& s, int i) {
    if (i == 0) {
      start_after_others_wait(s, parts, 1500);
      s.ctl.phase[i] = releasing;
      s.ev.set();
      s.ctl.phase[i] = idle;
      ++s.sets;
      return 0;
    }
    s.ctl.phase[i] = acquiring;
    s.ev.wait();
    s.ctl.phase[i] = idle;
    ++s.returned[i];
    return 0;
  }

  static bool may_block(state& s, int target, pid_t, point_kind) { return target == 0 && !s.ev.is_set(); }
  // A setter killed before it set: the waiters wait for a set that never comes.
  static const char* stuck_ok(state& s, int target) {
    return target == 0 && !s.ev.is_set() ? "the dead setter never set the event" : nullptr;
  }

  static std::string check(state& s, int target, bool died, point_kind, int) {
    std::ostringstream out;
    for (int i = 1; i < parts; ++i)
      if (!(i == target && died) && s.returned[i] != 1) out << roles[i] << " did not return; ";
    if (!(target == 0 && died) && !s.ev.is_set()) out << "the flag is down though it was set and never cleared; ";
    return out.str();
  }
};

// --- event, automatic reset: a setter, three waiters, three sets (bug 2) ------

struct event_auto_scenario : scenario_base {
  static constexpr const char* name = "event_auto";
  static constexpr int parts = 4;
  static constexpr int sets = 3;
  static constexpr const char* roles[parts] = {"setter", "waiter-0", "waiter-1", "waiter-2"};
  static std::vector<int> targets() { return {1, 0}; }

  struct state {
    control ctl;
    procsync::event ev{procsync::event::reset_mode::automatic};
    long fired[max_parts] = {};
    long sets_done = 0;
  };

  static int body(state& s, int i) {
    if (i == 0) {
      start_after_others_wait(s, parts, 1500);
      for (int k = 0; k < sets; ++k) {
        // A set while the flag is up is absorbed: wait until a waiter took it.
        while (s.ev.is_set()) sleep_us(100);
        s.ctl.phase[i] = releasing;
        s.ev.set();
        ++s.sets_done;
        s.ctl.phase[i] = idle;
        sleep_us(300);
      }
      return 0;
    }
    sleep_after_first_waiter(s, i, 1);
    s.ctl.phase[i] = acquiring;
    s.ev.wait();
    ++s.fired[i];
    s.ctl.phase[i] = idle;
    return 0;
  }

  // A frozen setter owes the others their sets; a frozen waiter owes nothing.
  static bool may_block(state&, int target, pid_t, point_kind) { return target == 0; }
  // A dead setter's missing sets never come; a set flag must be taken.
  static const char* stuck_ok(state& s, int target) {
    return target == 0 && !s.ev.is_set() ? "the dead setter never set the event" : nullptr;
  }

  static std::string check(state& s, int target, bool died, point_kind kind, int target_phase) {
    std::ostringstream out;
    if (target == 0 && died) {  // what the setter set is consumed at most once per set
      long sum = 0;
      for (int i = 1; i < parts; ++i) sum += s.fired[i];
      const long made = s.sets_done + (target_phase == releasing ? 1 : 0);
      if (sum + (s.ev.is_set() ? 1 : 0) > made || s.fired[1] > 1 || s.fired[2] > 1 || s.fired[3] > 1)
        out << "fired " << sum << " times for " << s.sets_done << " sets; ";
      return out.str();
    }
    long sum = 0;
    for (int i = 1; i < parts; ++i) {
      sum += s.fired[i];
      if (!(i == target && died) && s.fired[i] != 1) out << roles[i] << " fired " << s.fired[i] << " times; ";
    }
    if (s.sets_done != sets) out << "setter made " << s.sets_done << " sets; ";
    const long total = sum + (s.ev.is_set() ? 1 : 0);
    // A killed waiter may take a set with it only if it had consumed it: at an
    // arbitrary instruction inside wait() after the consuming exchange.
    const bool may_lose = died && target_phase == acquiring && kind == point_kind::other;
    if (total != sets && !(may_lose && total == sets - 1))
      out << "sets " << sets << " != fired " << sum << " + still set " << (s.ev.is_set() ? 1 : 0) << "; ";
    return out.str();
  }
};

// --- barrier: three parties, three cycles --------------------------------------

struct barrier_scenario : scenario_base {
  static constexpr const char* name = "barrier";
  static constexpr int parts = 3;
  static constexpr long cycles = 3;
  static constexpr const char* roles[parts] = {"party-0", "party-1", "party-2"};
  static std::vector<int> targets() { return {0}; }

  struct state {
    control ctl;
    procsync::barrier b{3};
    long completed[max_parts] = {};
    int broken[max_parts] = {};  // 1: a party died, 2: timed out, 3: other
  };

  static int body(state& s, int i) {
    for (long c = 0; c < cycles; ++c) {
      s.ctl.phase[i] = acquiring;
      try {
        (void)s.b.wait(1000ms);
      } catch (const procsync::error& e) {
        s.ctl.phase[i] = idle;
        if (e.code() != procsync::make_error_code(procsync::errc::barrier_broken))
          return complain(s.ctl, i, std::string("unexpected error: ") + e.what());
        const std::string what = e.what();
        s.broken[i] = what.find("party died") != std::string::npos ? 1 : what.find("timed out") != std::string::npos ? 2 : 3;
        return 0;
      }
      s.ctl.phase[i] = idle;
      ++s.completed[i];
      sleep_us(200);
    }
    return 0;
  }

  static bool may_block(state&, int, pid_t, point_kind) { return true; }  // a frozen party is a late party

  // A party killed before it arrived cannot be told from a late one: the
  // others break by their timeout (documented in barrier.hpp). The target had
  // certainly not arrived in the cycle the others broke in when
  //  - the others completed the cycle it was in (it died after that cycle's
  //    last arrival, and never arrived in the next one), or
  //  - it died between two wait() calls, or
  //  - it died at (the entry of, or woken from) a wait on the barrier's
  //    internal lock, which guards the arrival. That lock is the barrier's
  //    first member (barrier.hpp), so its futex word is the barrier's first 4
  //    bytes; should that change, these points become ~1 s samples.
  //  - it died at an arbitrary instruction inside wait() ("other" points):
  //    with three parties and both survivors alive, a timeout can only mean
  //    the third never arrived (had it arrived, the last arrival's liveness
  //    check or a neighbour's would break the barrier as "a party died"), so
  //    such a point stepping towards its arrival is a late party, not a
  //    failure. The promise itself is asserted where the target has certainly
  //    arrived: at the entry of, and woken from, its wait on the phase word.
  // A target that had arrived must be reported as dead ("a party died") by
  // the others' liveness checks; a timeout there is a ~1 s recovery sample.
  static bool by_design(state& s, int target, int target_phase, point_kind kind, std::uintptr_t uaddr) {
    bool timed_out = false;
    long others_completed = 0;
    for (int i = 0; i < parts; ++i) {
      if (i == target) continue;
      timed_out = timed_out || s.broken[i] == 2;
      others_completed = std::max(others_completed, s.completed[i]);
    }
    if (!timed_out) return false;
    if (others_completed > s.completed[target]) return true;
    if (kind == point_kind::other && target_phase == acquiring) return true;
    const bool on_lock = kind != point_kind::other && uaddr == reinterpret_cast<std::uintptr_t>(&s.b);
    return target_phase == idle || on_lock;
  }

  static std::string check(state& s, int target, bool died, point_kind, int) {
    std::ostringstream out;
    for (int i = 0; i < parts; ++i) {
      if (i == target && died) continue;
      if (!died && (s.broken[i] != 0 || s.completed[i] != cycles))
        out << roles[i] << " completed " << s.completed[i] << " cycles, broken " << s.broken[i]
            << " though nobody died; ";
      if (died && s.broken[i] == 0 && s.completed[i] != cycles)
        out << roles[i] << " neither completed nor saw barrier_broken; ";
      if (s.broken[i] == 3) out << roles[i] << " broke for an unexpected reason; ";
    }
    if (died) {
      // The survivors agree: a cycle completed for one completed for all.
      for (int i = 0; i < parts; ++i)
        for (int j = 0; j < parts; ++j)
          if (i != target && j != target && std::labs(s.completed[i] - s.completed[j]) > 0)
            out << roles[i] << " and " << roles[j] << " disagree on completed cycles; ";
    }
    const int rc = probe([&] {
      s.b.reset();  // usable again, internal lock repaired
      return s.b.broken() ? 1 : 0;
    });
    if (rc != 0) out << "reset afterwards failed (" << rc << "); ";
    return out.str();
  }
};

// --- latch: three parties count down once and wait ----------------------------

struct latch_scenario : scenario_base {
  static constexpr const char* name = "latch";
  static constexpr int parts = 3;
  static constexpr const char* roles[parts] = {"party-0", "party-1", "party-2"};
  // The parties count down in order: party-0 first (then sleeps in wait(),
  // woken by the opener), party-2 last (the opener: its wake is a point).
  static std::vector<int> targets() { return {0, 2}; }

  struct state {
    control ctl;
    procsync::latch l{3};
    int released[max_parts] = {};  // 1: the latch opened for it, 2: its wait timed out
  };

  static int body(state& s, int i) {
    s.ctl.phase[i] = acquiring;
    if (i > 0) {  // after the previous party counted down and had time to fall asleep
      (void)poll_until([&] { return s.ctl.phase[i - 1] != acquiring; }, 20'000);
      sleep_us(2000);
    }
    s.l.count_down();
    s.ctl.phase[i] = holding;  // counted: only waiting now
    // The way out of a latch that can never open (a party died before its
    // count_down): a timed wait (or abort(), tested in test_latch).
    s.released[i] = s.l.wait_for(std::chrono::milliseconds(2000)) ? 1 : 2;
    s.ctl.phase[i] = idle;
    return 0;
  }

  // A frozen party that has not counted down yet holds the latch shut.
  static bool may_block(state& s, int target, pid_t, point_kind) { return s.ctl.phase[target] == acquiring; }

  // The counter says whether the dead party counted down: one count_down() is
  // one atomic change. A party that died before it leaves the latch shut for
  // good, and the others' timeout is their documented way out.
  static bool by_design(state& s, int, int, point_kind, std::uintptr_t) { return s.l.count() != 0; }

  static std::string check(state& s, int target, bool died, point_kind, int) {
    std::ostringstream out;
    const std::ptrdiff_t left = s.l.count();
    if (left != 0 && !(died && left == 1)) out << "the counter is " << left << " after everyone left; ";
    for (int i = 0; i < parts; ++i) {
      if (i == target && died) continue;
      if (left == 0 && s.released[i] != 1)
        out << roles[i] << (s.released[i] == 2 ? " timed out" : " never returned") << " though the latch opened; ";
      if (left != 0 && s.released[i] != 2) out << roles[i] << " was released by a latch that never opened; ";
    }
    return out.str();
  }
};

// --- shared_value<struct>: two writers, a reader -------------------------------

struct shared_value_scenario : scenario_base {
  static constexpr const char* name = "shared_value";
  static constexpr int parts = 3;
  static constexpr long iters = 4;
  static constexpr const char* roles[parts] = {"writer-0", "writer-1", "reader"};
  static std::vector<int> targets() { return {0}; }

  struct record {
    long a;
    long b;
    long gen;
  };
  struct state {
    control ctl;
    procsync::shared_value<record> sv{record{0, 0, 0}};
    long finished[max_parts] = {};
  };

  static int body(state& s, int i) {
    if (i < 2) {
      if (i == 1) (void)poll_until([&] { return s.ctl.phase[0] == holding; }, 20'000);
      for (long it = 0; it < iters; ++it) {
        s.ctl.phase[i] = acquiring;
        s.sv.with_lock([&](record& r) {
          s.ctl.phase[i] = holding;
          r.a += 1;
          mark(s.ctl);  // a death here must leave the committed value untouched
          sleep_us(300);
          r.b += 1;
          r.gen += 1;
          return 0;
        });
        ++s.finished[i];
        s.ctl.phase[i] = idle;
        sleep_us(100);
      }
      return 0;
    }
    for (int k = 0; k < 40; ++k) {
      const record r = s.sv.load();
      if (r.a != r.b || r.b != r.gen)
        return complain(s.ctl, i, "torn value: a=" + std::to_string(r.a) + " b=" + std::to_string(r.b) +
                                      " gen=" + std::to_string(r.gen));
      sleep_us(50);
    }
    return 0;
  }

  static bool may_block(state& s, int target, pid_t pid, point_kind) {
    return s.sv.get_lock().holder_tid() == static_cast<std::uint32_t>(pid) ||
           (s.ctl.phase[target] == holding);
  }

  static std::string check(state& s, int target, bool died, point_kind, int target_phase) {
    std::ostringstream out;
    const record r = s.sv.load();
    if (r.a != r.b || r.b != r.gen) out << "torn final value; ";
    long sum = 0;
    for (int i = 0; i < 2; ++i) {
      sum += s.finished[i];
      if (!(i == target && died) && s.finished[i] != iters) out << roles[i] << " finished " << s.finished[i] << "; ";
    }
    const bool one_more = died && target_phase != idle;  // killed inside with_lock: committed or not
    if (r.gen != sum && !(one_more && r.gen == sum + 1))
      out << "committed generation " << r.gen << " != finished updates " << sum << "; ";
    const int rc = probe([&] {
      s.sv.with_lock([](record& x) {
        x.a += 0;
        return 0;
      });
      return s.sv.get_lock().not_recoverable() ? 1 : 0;
    });
    if (rc != 0) out << "a writer afterwards failed (" << rc << "); ";
    return out.str();
  }
};

// --- queues: what the three queue scenarios share --------------------------------
// Two producers (participants 0 and 1) push as fast as they can into a queue
// of 2 slots; two consumers (2 and 3), asleep on empty when the first items
// come, then take 1 ms per item. So the consumers sleep on empty at the start
// and the end, the producers sleep on full in between, and every wake-up is a
// real futex call. The consumers stop when the queue is closed and drained.
// Each producer closes it once every producer has finished or died: a dead
// producer never says it is done, so with this its death ends in a recovery
// sample (and a full accounting) instead of a documented stall; close() is
// idempotent, so two closers are fine.

/// The target's control block and slot-claim count, for the hook below
/// (process-local: set in the target only, so the others pay no marker calls).
control* queue_step_marks = nullptr;
std::atomic<int>* queue_step_claims = nullptr;

/// The queue headers' test hook (PROCSYNC_QUEUE_TEST_HOOK) as a marker: the
/// steps of a queue operation become exact kill points. The instructions
/// between the steps are where a death matters and where no futex call happens
/// by itself: a slot held WRITING or INTO, an item copied but not yet taken or
/// taken but not yet returned, the message queue's lock held mid-change.
/// Not "published"/"queued": the doorbell's futex WAKE follows at once when
/// someone sleeps (a kill point of its own), and nothing is owed when nobody
/// does, so a marker there would only cost runs.
void mark_queue_step(procsync::detail::queue_step step) {
  using procsync::detail::queue_step;
  if (queue_step_marks == nullptr) return;
  if (step == queue_step::push_claimed || step == queue_step::send_reserved) queue_step_claims->fetch_add(1);
  if (step == queue_step::push_published || step == queue_step::send_queued) return;
  mark(*queue_step_marks);
}

void mark_queue_steps_if_target(control& c, std::atomic<int>& claims, int i) {
  if (i != c.target) return;
  queue_step_marks = &c;
  queue_step_claims = &claims;
  procsync::detail::queue_test_hook.store(&mark_queue_step);
}

/// The producers, the consumers and who received what.
struct queue_crew {
  static constexpr int producers = 2;  // participants 0 and 1; the consumers follow
  static constexpr int consumers = 2;
  static constexpr int parts = producers + consumers;
  static constexpr int per_producer = 3;
  static constexpr int items = producers * per_producer;  // item id: producer * per_producer + k

  std::atomic<std::int32_t> pid[producers] = {};  // 0 until the producer enlisted
  std::atomic<std::uint64_t> start_time[producers] = {};
  std::atomic<int> finished[producers] = {};  // pushed everything
  std::atomic<long> pushed[producers] = {};   // pushes that returned
  std::atomic<int> taker[items] = {};         // consumer + 1 that received the item; 0: nobody
  std::atomic<int> target_claims{0};          // slots the target claimed (push) or reserved (send)
  long consumed[max_parts] = {};

  void enlist(int i) {
    const procsync::detail::process_identity me = procsync::detail::current_process_identity();
    start_time[i] = me.start_time;
    pid[i] = me.pid;  // last: a pid says that its start time is there
  }

  bool gone(int p) const {
    if (finished[p] != 0) return true;
    const std::int32_t who = pid[p];
    if (who == 0) return false;
    return procsync::detail::state_of({who, 0, start_time[p].load()}) == procsync::detail::process_state::dead;
  }

  /// A producer's run: its items as fast as it can, then close() once no
  /// producer can push any more.
  template <class Push, class Close>
  int produce(control& ctl, int i, Push&& push, Close&& close) {
    enlist(i);
    (void)poll_until([&] { return ctl.phase[producers] == acquiring && ctl.phase[producers + 1] == acquiring; },
                     20'000);
    sleep_us(1000);  // the consumers sleep on empty
    for (int k = 0; k < per_producer; ++k) {
      // With producer-0 traced, producer-1's last item goes in behind producer-0's
      // last claim: a producer killed holding its slot then has a published item
      // behind it when the queue is closed, which the consumers must still get.
      if (i == 1 && ctl.target == 0 && k == per_producer - 1)
        (void)poll_until([&] { return target_claims >= per_producer || gone(0); }, 20'000);
      ctl.phase[i] = acquiring;
      push(i * per_producer + k);
      pushed[i].fetch_add(1);
      ctl.phase[i] = idle;
    }
    ctl.phase[i] = releasing;
    finished[i] = 1;
    for (int p = 0; p < producers; ++p)
      while (!gone(p)) sleep_us(100);  // nanosleep: no futex call of its own
    close();
    ctl.phase[i] = idle;
    return 0;
  }

  /// A consumer's bookkeeping for item `id`: "" or why it cannot have been received.
  std::string receive(int i, int id, int (&last)[producers]) {
    const int p = id / per_producer;
    if (id <= last[p])
      return "item " + std::to_string(id) + " after item " + std::to_string(last[p]) +
             " of the same producer (FIFO per producer broken)";
    last[p] = id;
    int none = 0;
    if (!taker[id].compare_exchange_strong(none, i + 1))
      return "item " + std::to_string(id) + " received twice (first by participant " + std::to_string(none - 1) + ")";
    ++consumed[i];
    return "";
  }

  /// Once everybody is gone: every finished push received exactly once; a
  /// killed producer's push under way (phase `acquiring`) at most once; with
  /// `may_lose_one`, one finished push may be missing (taken by the killed
  /// consumer's call, documented); each survivor received what it counted.
  std::string check(int target, bool died, int target_phase, bool may_lose_one, const char* const* roles) const {
    std::ostringstream out;
    for (int p = 0; p < producers; ++p)
      if (!(p == target && died) && pushed[p] != per_producer)
        out << roles[p] << " pushed " << pushed[p] << " of " << per_producer << "; ";
    int missing = 0;
    std::string missing_ids;
    long by[max_parts] = {};
    for (int id = 0; id < items; ++id) {
      const int p = id / per_producer, k = id % per_producer;
      const bool finished_push = k < pushed[p];
      const bool under_way = p == target && died && target_phase == acquiring && k == pushed[p];
      const int t = taker[id];
      if (t != 0) ++by[t - 1];
      if (t != 0 && !finished_push && !under_way) out << "item " << id << " received but never pushed; ";
      if (t == 0 && finished_push) {
        ++missing;
        missing_ids += " " + std::to_string(id);
      }
    }
    if (missing > (may_lose_one ? 1 : 0)) out << missing << " pushed item(s) never received:" << missing_ids << "; ";
    for (int c = producers; c < parts; ++c)
      if (!(c == target && died) && by[c] != consumed[c])
        out << roles[c] << " received " << by[c] << " but counted " << consumed[c] << "; ";
    return out.str();
  }
};

/// 32 bytes: an id and three words derived from it, so a copy that mixes two
/// items (torn) does not pass for either.
struct qitem {
  std::uint64_t id;
  std::uint64_t check[3];
};

constexpr std::uint64_t qitem_word(std::uint64_t id, std::uint64_t k) {
  return (id + 1) * 0x9e3779b97f4a7c15ull ^ (k + 1) * 0xd1b54a32d192ed03ull;
}

qitem make_qitem(int id) {
  const auto n = static_cast<std::uint64_t>(id);
  return {n, {qitem_word(n, 0), qitem_word(n, 1), qitem_word(n, 2)}};
}

bool intact(const qitem& x) {
  if (x.id >= static_cast<std::uint64_t>(queue_crew::items)) return false;
  for (std::uint64_t k = 0; k < 3; ++k)
    if (x.check[k] != qitem_word(x.id, k)) return false;
  return true;
}

bool is_queue_closed(const procsync::error& e) { return e.code() == procsync::errc::queue_closed; }

// --- queue<T, 2>: two producers, two consumers (pop, or pop_into) -----------------
// With pop(), a killed consumer may lose the one item its call took (between
// its take and its return; documented). With pop_into() into a per-consumer
// handoff in shared memory, nothing may be lost: the harness resolves the dead
// consumer's destination afterwards, as a successor would.

template <bool Into>
struct queue_scenario : scenario_base {
  static constexpr const char* name = Into ? "queue_pop_into" : "queue";
  static constexpr int parts = queue_crew::parts;
  static constexpr const char* roles[parts] = {"producer-0", "producer-1", "consumer-0", "consumer-1"};
  static std::vector<int> targets() { return {2, 0}; }

  struct state {
    control ctl;
    procsync::queue<qitem, 2> q;
    procsync::handoff<qitem> dst[parts];  // pop_into's destinations (consumers' entries)
    queue_crew crew;
    std::atomic<int> resolved{-1};
  };

  static int body(state& s, int i) {
    mark_queue_steps_if_target(s.ctl, s.crew.target_claims, i);
    if (i < queue_crew::producers)
      return s.crew.produce(
          s.ctl, i, [&](int id) { s.q.push(make_qitem(id)); }, [&] { s.q.close(); });
    sleep_after_first_waiter(s, i, queue_crew::producers);
    int last[queue_crew::producers];
    std::fill(std::begin(last), std::end(last), -1);
    for (;;) {
      s.ctl.phase[i] = acquiring;
      qitem got{};
      try {
        if constexpr (Into) {
          s.q.pop_into(s.dst[i]);
          got = s.dst[i].value();
        } else {
          got = s.q.pop();
        }
      } catch (const procsync::error& e) {
        s.ctl.phase[i] = idle;
        return is_queue_closed(e) ? 0 : complain(s.ctl, i, std::string("unexpected error: ") + e.what());
      }
      if (!intact(got)) return complain(s.ctl, i, "torn item (id " + std::to_string(got.id) + ")");
      const std::string bad = s.crew.receive(i, static_cast<int>(got.id), last);
      if (!bad.empty()) return complain(s.ctl, i, bad);
      // A death before this clear() leaves a recorded item in the destination
      // too: check() tells that from a duplicate by the taker.
      if constexpr (Into) s.dst[i].clear();
      s.ctl.phase[i] = idle;
      sleep_us(1000);  // slower than the producers: they fill the ring and sleep on full
    }
  }

  // A frozen producer owes the consumers its items and its close(); a frozen
  // consumer holds nothing the others need (pop_into: one INTO slot, which the
  // others skip after one slice).
  static bool may_block(state&, int target, pid_t, point_kind) { return target < queue_crew::producers; }

  static std::string check(state& s, int target, bool died, point_kind, int target_phase) {
    std::string r;
    const bool consumer_died = died && target >= queue_crew::producers;
    if constexpr (Into) {
      // The dead consumer's hand-off, finished as a successor would: the item
      // is then in exactly one of the queue (taken by a survivor) and dst.
      if (consumer_died) {
        const int rc = probe([&] {
          s.resolved = s.q.resolve(s.dst[target]) ? 1 : 0;
          return 0;
        });
        if (rc != 0) {
          r += "resolve() of the dead consumer's destination failed (" + std::to_string(rc) + "); ";
        } else if (s.resolved == 1) {
          const qitem got = s.dst[target].value();
          int none = 0;
          if (!intact(got))
            r += "torn item in the dead consumer's destination; ";
          else if (!s.crew.taker[got.id].compare_exchange_strong(none, target + 1) && none != target + 1)
            r += "item " + std::to_string(got.id) + " is in the dead consumer's destination and was received by " +
                 roles[none - 1] + " too; ";
        }
      }
      for (int c = queue_crew::producers; c < parts; ++c)
        if (!(c == target && died) && s.dst[c].state() != procsync::handoff<qitem>::status::empty)
          r += std::string(roles[c]) + " left its destination not empty; ";
    }
    // pop(): the item the killed consumer's call took may be gone with it,
    // only if it died inside pop() (or before recording what it returned).
    const bool may_lose_one = !Into && consumer_died && target_phase == acquiring;
    r += s.crew.check(target, died, target_phase, may_lose_one, roles);
    // Closed and drained, no slot left held (a dead producer's WRITING slot is
    // voided by recover() at the latest).
    const int rc = probe([&] {
      (void)s.q.recover();
      try {
        if (s.q.try_pop()) return 2;
      } catch (const procsync::error& e) {
        if (!is_queue_closed(e)) return 3;
        return s.q.size() == 0 ? 0 : 4;
      }
      return 5;
    });
    if (rc == 2) r += "an item was left in the closed queue after the consumers drained it; ";
    if (rc == 4) r += "the closed, drained queue still counts " + std::to_string(s.q.size()) + " item(s); ";
    if (rc == 5) r += "the queue was never closed; ";
    if (rc != 0 && rc != 2 && rc != 4 && rc != 5)
      r += "a fresh consumer afterwards failed (" + std::to_string(rc) + "); ";
    return r;
  }
};

// --- message_queue<48, 2>: two senders, two receivers, priorities -------------------
// Message `id` has a length, a priority and bytes derived from id (its first 4
// bytes are the id), so a torn or mixed-up message shows. Within one sender and
// one priority, each receiver must see increasing ids (FIFO within a priority).

struct message_queue_scenario : scenario_base {
  static constexpr const char* name = "message_queue";
  static constexpr int parts = queue_crew::parts;
  static constexpr std::size_t max_bytes = 48;
  static constexpr unsigned priorities = 3;
  static constexpr const char* roles[parts] = {"sender-0", "sender-1", "receiver-0", "receiver-1"};
  static std::vector<int> targets() { return {2, 0}; }

  using mq_type = procsync::message_queue<max_bytes, 2>;
  // may_block reads the index lock through the queue's first member (the
  // robust mutex, message_queue.hpp); a standard-layout class starts with its
  // first member. Should the lock move, stops inside it show as hangs.
  static_assert(std::is_standard_layout_v<mq_type>);

  struct state {
    control ctl;
    mq_type mq;
    queue_crew crew;
  };

  static std::size_t length(int id) { return 4 + static_cast<std::size_t>(id) * 11 % (max_bytes - 3); }  // 4..48
  static unsigned priority(int id) { return static_cast<unsigned>(id) % priorities; }
  static std::byte byte_at(int id, std::size_t j) {
    return static_cast<std::byte>((static_cast<std::size_t>(id) * 37 + j * 7 + 1) & 0xff);
  }

  static std::array<std::byte, max_bytes> message(int id) {
    std::array<std::byte, max_bytes> m{};
    const auto n = static_cast<std::uint32_t>(id);
    std::memcpy(m.data(), &n, 4);
    for (std::size_t j = 4; j < length(id); ++j) m[j] = byte_at(id, j);
    return m;
  }

  /// The id of an intact message, or -1.
  static int intact_id(const std::array<std::byte, max_bytes>& m, std::size_t size, unsigned prio) {
    if (size < 4) return -1;
    std::uint32_t n = 0;
    std::memcpy(&n, m.data(), 4);
    if (n >= static_cast<std::uint32_t>(queue_crew::items)) return -1;
    const int id = static_cast<int>(n);
    if (size != length(id) || prio != priority(id)) return -1;
    for (std::size_t j = 4; j < size; ++j)
      if (m[j] != byte_at(id, j)) return -1;
    return id;
  }

  static int body(state& s, int i) {
    mark_queue_steps_if_target(s.ctl, s.crew.target_claims, i);
    if (i < queue_crew::producers)
      return s.crew.produce(
          s.ctl, i,
          [&](int id) {
            const auto m = message(id);
            s.mq.send(std::span<const std::byte>(m.data(), length(id)), priority(id));
          },
          [&] { s.mq.close(); });
    sleep_after_first_waiter(s, i, queue_crew::producers);
    int last[priorities][queue_crew::producers];
    for (auto& per_priority : last) std::fill(std::begin(per_priority), std::end(per_priority), -1);
    for (;;) {
      s.ctl.phase[i] = acquiring;
      std::array<std::byte, max_bytes> buf{};
      mq_type::received got{};
      try {
        got = s.mq.receive(buf);
      } catch (const procsync::error& e) {
        s.ctl.phase[i] = idle;
        return is_queue_closed(e) ? 0 : complain(s.ctl, i, std::string("unexpected error: ") + e.what());
      }
      const int id = intact_id(buf, got.size, got.priority);
      if (id < 0)
        return complain(
            s.ctl, i, "torn message: " + std::to_string(got.size) + " bytes, priority " + std::to_string(got.priority));
      const std::string bad = s.crew.receive(i, id, last[got.priority]);
      if (!bad.empty()) return complain(s.ctl, i, bad);
      s.ctl.phase[i] = idle;
      sleep_us(1000);
    }
  }

  // A frozen sender owes the receivers its messages and its close(); a frozen
  // receiver blocks the others only while it holds the index lock (documented).
  static bool may_block(state& s, int target, pid_t pid, point_kind) {
    const auto& lock = reinterpret_cast<const procsync::mutex&>(s.mq);
    return target < queue_crew::producers || lock.holder_tid() == static_cast<std::uint32_t>(pid);
  }

  static std::string check(state& s, int target, bool died, point_kind, int target_phase) {
    // A receiver killed after its commit and before recording the message
    // loses it (documented: at most one per killed receiver).
    const bool may_lose_one = died && target >= queue_crew::producers && target_phase == acquiring;
    std::string r = s.crew.check(target, died, target_phase, may_lose_one, roles);
    // Closed and drained, and the index lock usable (repaired after a dead holder).
    const int rc = probe([&] {
      (void)s.mq.recover();
      std::array<std::byte, max_bytes> buf{};
      try {
        if (s.mq.try_receive(buf)) return 2;
      } catch (const procsync::error& e) {
        if (!is_queue_closed(e)) return 3;
        return s.mq.size() == 0 ? 0 : 4;
      }
      return 5;
    });
    if (rc == 2) r += "a message was left in the closed queue after the receivers drained it; ";
    if (rc == 4) r += "the closed, drained queue still counts " + std::to_string(s.mq.size()) + " message(s); ";
    if (rc == 5) r += "the queue was never closed; ";
    if (rc != 0 && rc != 2 && rc != 4 && rc != 5)
      r += "a fresh receiver afterwards failed (" + std::to_string(rc) + "); ";
    return r;
  }
};

// ---------------------------------------------------------------------------
// One run
// ---------------------------------------------------------------------------

enum class verdict { pass, fail, hung, not_reached, by_design };

struct run_result {
  verdict v = verdict::pass;
  double recovery_ms = -1;  // survivors' stall after the fault; < 0: not a sample
  trace_counts counts;
  std::string detail;
};

template <class Sc>
std::string stuck_list(typename Sc::state& s, const tracer& t, int target) {
  std::string out;
  for (int i = 0; i < t.size(); ++i) {
    if (i == target || t.exited(i)) continue;
    out += std::string(Sc::roles[i]) + " (" + phase_name(s.ctl.phase[i]) + ") ";
  }
  return out;
}

template <class Sc>
run_result run_once(int target, point pt, fault f) {
  run_result res;
  auto st = procsync::make_anonymous<typename Sc::state>();
  typename Sc::state& s = *st;
  s.ctl.target = target;
  sigchld_blocker blocked;
  std::vector<pid_t> pids(Sc::parts, 0);
  // The target first: its tracing handshake needs nobody else.
  std::vector<int> order{target};
  for (int i = 0; i < Sc::parts; ++i)
    if (i != target) order.push_back(i);
  for (const int i : order) {
    pids[static_cast<std::size_t>(i)] = procsync_test::fork_child([&s, i, target] {
      sigchld_blocker::unblock_in_child();
      if (i == target && !become_target()) {
        return complain(s.ctl, i, std::string("cannot be traced: ") + std::strerror(errno));
      }
      while (s.ctl.go.load() == 0) sleep_us(50);
      const int rc = Sc::body(s, i);
      s.ctl.t_done[i] = now_ns();
      s.ctl.done[i] = 1;
      return rc;
    });
  }
  tracer t(pids, target, pt, &s.ctl.marker);
  t.set_fault(f);
  if (!t.attach()) {
    res.v = verdict::fail;
    res.detail = std::string("target could not be traced: ") + s.ctl.msg[target];
    return res;
  }
  const std::int64_t guard = cfg().guard_ms * 1'000'000;
  s.ctl.go = 1;
  // Phase 1: run until the point is hit, or everyone is done.
  const std::int64_t start = now_ns();
  const bool settled = t.run_until([&] { return t.hit() || t.all_exited(); }, start + 4 * guard + 2'000'000'000);
  res.counts = t.counts();
  const int target_phase = s.ctl.phase[target];
  if (!settled) {
    res.v = verdict::hung;
    res.detail = "hung before the point (no fault injected yet): stuck " + stuck_list<Sc>(s, t, -1);
    return res;
  }
  bool died = false;
  std::int64_t reference = start;
  if (t.hit()) {
    reference = t.hit_ns();
    if (f == fault::kill) {
      died = true;
      (void)t.run_until([&] { return t.exited(target); }, reference + guard);
      std::int64_t ok_since = 0;
      const auto settled_after_kill = [&] {
        if (t.survivors_exited()) return true;
        if (Sc::stuck_ok(s, target) == nullptr) {
          ok_since = 0;
          return false;
        }
        if (ok_since == 0) ok_since = now_ns();
        return now_ns() - ok_since >= 250'000'000;
      };
      if (!t.run_until(settled_after_kill, reference + guard) || !t.survivors_exited()) {
        if (const char* why = Sc::stuck_ok(s, target)) {
          res.v = verdict::by_design;
          res.detail = std::string("survivors stuck by design: ") + why;
          t.kill_all();
          return res;
        }
        res.v = verdict::hung;
        res.detail = "after the kill, stuck for " + std::to_string(cfg().guard_ms) + " ms: " +
                     stuck_list<Sc>(s, t, target);
        t.kill_all();
        return res;
      }
    } else {
      const bool blocks = Sc::may_block(s, target, t.pid(target), pt.kind);
      if (!blocks) {
        if (!t.run_until([&] { return t.survivors_exited(); }, reference + guard)) {
          res.v = verdict::hung;
          res.detail = "while the target is stopped (holding nothing they need), stuck for " +
                       std::to_string(cfg().guard_ms) + " ms: " + stuck_list<Sc>(s, t, target);
          t.resume_target();
          const bool later = t.run_until([&] { return t.all_exited(); }, now_ns() + guard);
          res.detail += later ? "(all finished after SIGCONT)" : "(still stuck after SIGCONT)";
          t.kill_all();
          return res;
        }
      } else {
        (void)t.run_until([&] { return t.survivors_exited(); }, reference + cfg().hold_ms * 1'000'000);
      }
      t.resume_target();
      if (blocks) reference = now_ns();
      if (!t.run_until([&] { return t.all_exited(); }, now_ns() + guard)) {
        res.v = verdict::hung;
        res.detail = "after SIGCONT, stuck for " + std::to_string(cfg().guard_ms) + " ms: " +
                     stuck_list<Sc>(s, t, -1);
        t.kill_all();
        return res;
      }
    }
  } else {
    // The run ended before the point: not reached. Finish the run anyway.
    if (!t.run_until([&] { return t.all_exited(); }, now_ns() + guard)) {
      res.v = verdict::hung;
      res.detail = "hung without a fault: " + stuck_list<Sc>(s, t, -1);
      t.kill_all();
      return res;
    }
  }
  // Everyone is gone. Recovery: from the fault (or SIGCONT when the target
  // legitimately held them) to the last survivor's completion.
  std::int64_t last = reference;
  std::string errors;
  for (int i = 0; i < Sc::parts; ++i) {
    if (i == target && died) continue;
    const int stat = t.status(i);
    if (!WIFEXITED(stat) || WEXITSTATUS(stat) != 0)
      errors += std::string(Sc::roles[i]) + " " + describe_status(stat) + (s.ctl.msg[i][0] ? ": " : "") +
                s.ctl.msg[i] + "; ";
    if (i != target) last = std::max<std::int64_t>(last, s.ctl.t_done[i].load());
  }
  errors += Sc::check(s, target, died, pt.kind, target_phase);
  if (!errors.empty()) {
    res.v = verdict::fail;
    res.detail = errors;
    return res;
  }
  if (!t.hit()) {
    res.v = verdict::not_reached;
    return res;
  }
  if (Sc::by_design(s, target, target_phase, pt.kind, res.counts.hit_uaddr)) {
    res.v = verdict::by_design;
    res.detail = "the others broke by their timeout: the target died before it arrived";
    return res;
  }
  res.v = verdict::pass;
  res.recovery_ms = static_cast<double>(last - reference) / 1e6;
  return res;
}

// ---------------------------------------------------------------------------
// One case: every point of every target of a scenario, for one fault
// ---------------------------------------------------------------------------

struct case_summary {
  std::string scenario;
  std::string fault;
  int tried_entry = 0;
  int tried_woken = 0;
  int tried_other = 0;
  int not_reached = 0;
  int passed = 0;
  int failed = 0;
  int by_design = 0;
  int skipped = 0;  // after too many hangs
  std::vector<double> recovery_ms;
  double median = 0;
  double p90 = 0;
  double max = 0;
  double seconds = 0;
};

std::vector<case_summary>& summaries() {
  static std::vector<case_summary> all;
  return all;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t i = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

template <class Sc>
void run_case(fault f) {
  if (!supported) {
    BOOST_TEST_MESSAGE("killpoint: x86-64 only; skipped");
    return;
  }
  const auto started = std::chrono::steady_clock::now();
  case_summary cs;
  cs.scenario = Sc::name;
  cs.fault = f == fault::kill ? "kill" : "stop";
  std::mt19937_64 rng(cfg().seed ^ std::hash<std::string>{}(cs.scenario + cs.fault));
  long hangs = 0;
  for (int target : Sc::targets()) {
    hangs = 0;  // the budget is per target
    run_result base = run_once<Sc>(target, point{}, f);
    for (int retry = 0; retry < 3 && base.v == verdict::not_reached && base.counts.entries == 0; ++retry)
      base = run_once<Sc>(target, point{}, f);  // no contention this time: try again
    if (base.v != verdict::not_reached) {
      ++cs.failed;
      BOOST_ERROR(cs.scenario << " [" << cs.fault << "] target " << Sc::roles[target]
                              << ": baseline run (no fault) failed: " << base.detail);
      continue;
    }
    const trace_counts& c = base.counts;
    BOOST_TEST_MESSAGE(cs.scenario << " [" << cs.fault << "] target " << Sc::roles[target] << ": baseline "
                                   << c.entries << " futex entries (" << c.waits << " waits, " << c.wakes
                                   << " wakes, " << c.marks << " markers), " << c.woken << " woken returns");
    std::vector<point> pts;
    for (int k = 0; k < std::min<long>(c.entries, cfg().cap); ++k) pts.push_back({point_kind::entry, k, 0});
    for (int k = 0; k < std::min<long>(c.woken, cfg().cap); ++k) pts.push_back({point_kind::woken, k, 0});
    for (long j = 0; j < cfg().others && c.entries > 0; ++j)
      pts.push_back({point_kind::other, static_cast<int>(rng() % static_cast<unsigned long>(c.entries)),
                     1 + static_cast<int>(rng() % 2000)});
    for (const point& p : pts) {
      if (hangs >= cfg().max_hangs) {
        ++cs.skipped;
        continue;
      }
      (p.kind == point_kind::entry ? cs.tried_entry : p.kind == point_kind::woken ? cs.tried_woken : cs.tried_other)++;
      const run_result r = run_once<Sc>(target, p, f);
      switch (r.v) {
        case verdict::pass:
          ++cs.passed;
          cs.recovery_ms.push_back(r.recovery_ms);
          if (r.recovery_ms > static_cast<double>(cfg().bound_ms))  // measured, reported, not failed alone
            BOOST_TEST_MESSAGE(cs.scenario << " [" << cs.fault << "] target " << Sc::roles[target] << " at "
                                           << kind_name(p.kind) << " #" << p.k << " (" << r.counts.hit_call
                                           << "): slow recovery " << r.recovery_ms << " ms > " << cfg().bound_ms
                                           << " ms");
          break;
        case verdict::not_reached: ++cs.not_reached; break;
        case verdict::by_design:
          ++cs.by_design;
          BOOST_TEST_MESSAGE(cs.scenario << " [" << cs.fault << "] target " << Sc::roles[target] << " at "
                                         << kind_name(p.kind) << " #" << p.k << " (" << r.counts.hit_call
                                         << "): by design: " << r.detail);
          break;
        case verdict::hung: ++hangs; [[fallthrough]];
        case verdict::fail:
          ++cs.failed;
          BOOST_ERROR(cs.scenario << " [" << cs.fault << "] target " << Sc::roles[target] << " at "
                                  << kind_name(p.kind) << " #" << p.k
                                  << (p.kind == point_kind::other ? " +" + std::to_string(p.steps) + " steps" : "")
                                  << " (" << r.counts.hit_call << "): "
                                  << (r.v == verdict::hung ? "HUNG " : "FAILED ") << r.detail);
          break;
      }
    }
  }
  cs.median = percentile(cs.recovery_ms, 0.5);
  cs.p90 = percentile(cs.recovery_ms, 0.9);
  cs.max = cs.recovery_ms.empty() ? 0 : *std::max_element(cs.recovery_ms.begin(), cs.recovery_ms.end());
  cs.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  char line[512];
  std::snprintf(line, sizeof line,
                "%s [%s]: points entry %d, woken %d, other %d; not reached %d; passed %d, failed %d, by design %d, "
                "skipped %d; recovery ms median %.2f p90 %.2f max %.2f; %.1f s",
                cs.scenario.c_str(), cs.fault.c_str(), cs.tried_entry, cs.tried_woken, cs.tried_other, cs.not_reached,
                cs.passed, cs.failed, cs.by_design, cs.skipped, cs.median, cs.p90, cs.max, cs.seconds);
  BOOST_TEST_MESSAGE(line);
  std::printf("killpoint: %s\n", line);
  std::fflush(stdout);
  // Robust to a loaded machine: the median, not each sample, against the bound.
  BOOST_CHECK_MESSAGE(cs.median <= static_cast<double>(cfg().bound_ms),
                      cs.scenario << " [" << cs.fault << "]: median recovery " << cs.median << " ms > "
                                  << cfg().bound_ms << " ms");
  BOOST_CHECK_MESSAGE(cs.tried_entry + cs.tried_woken + cs.tried_other > 0 || cs.failed > 0,
                      cs.scenario << " [" << cs.fault << "]: no kill point reached");
  summaries().push_back(cs);
}

// ---------------------------------------------------------------------------
// Summary file
// ---------------------------------------------------------------------------

struct summary_writer {
  summary_writer() = default;
  summary_writer(const summary_writer&) = delete;
  summary_writer& operator=(const summary_writer&) = delete;
  ~summary_writer() {
    if (summaries().empty()) return;
    const char* env = std::getenv("PROCSYNC_KILLPOINT_SUMMARY");
    const std::string md = env != nullptr && *env != '\0' ? env : "killpoint-summary.md";
    const std::string json = (md.size() > 3 && md.compare(md.size() - 3, 3, ".md") == 0 ? md.substr(0, md.size() - 3)
                                                                                          : md) +
                             ".json";
    std::ofstream m(md);
    m << "| primitive | fault | futex-entry points | woken-return points | other points | not reached | passed | "
         "failed | by design | skipped | recovery median ms | p90 ms | max ms |\n";
    m << "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    char buf[512];
    for (const case_summary& c : summaries()) {
      std::snprintf(buf, sizeof buf, "| %s | %s | %d | %d | %d | %d | %d | %d | %d | %d | %.2f | %.2f | %.2f |\n",
                    c.scenario.c_str(), c.fault.c_str(), c.tried_entry, c.tried_woken, c.tried_other, c.not_reached,
                    c.passed, c.failed, c.by_design, c.skipped, c.median, c.p90, c.max);
      m << buf;
    }
    std::ofstream j(json);
    j << "[\n";
    for (std::size_t i = 0; i < summaries().size(); ++i) {
      const case_summary& c = summaries()[i];
      std::snprintf(buf, sizeof buf,
                    "  {\"primitive\": \"%s\", \"fault\": \"%s\", \"futex_entry_points\": %d, \"woken_return_points\": "
                    "%d, \"other_points\": %d, \"not_reached\": %d, \"passed\": %d, \"failed\": %d, \"by_design\": %d, "
                    "\"skipped\": %d, \"recovery_ms\": {\"median\": %.3f, \"p90\": %.3f, \"max\": %.3f}, "
                    "\"seconds\": %.2f}%s\n",
                    c.scenario.c_str(), c.fault.c_str(), c.tried_entry, c.tried_woken, c.tried_other, c.not_reached,
                    c.passed, c.failed, c.by_design, c.skipped, c.median, c.p90, c.max, c.seconds,
                    i + 1 < summaries().size() ? "," : "");
      j << buf;
    }
    j << "]\n";
    std::printf("killpoint: summary written to %s and %s (seed %lu)\n", md.c_str(), json.c_str(), cfg().seed);
  }
};
BOOST_TEST_GLOBAL_FIXTURE(summary_writer);

}  // namespace

#define KILLPOINT_CASES(id, Sc)                               \
  BOOST_AUTO_TEST_CASE(id##_kill) { run_case<Sc>(fault::kill); } \
  BOOST_AUTO_TEST_CASE(id##_stop) { run_case<Sc>(fault::stop); }

KILLPOINT_CASES(mutex, mutex_scenario<plain_mutex_kind>)
KILLPOINT_CASES(mutex_reserved, mutex_scenario<reserved_mutex_kind>)
KILLPOINT_CASES(recursive_mutex, mutex_scenario<recursive_mutex_kind>)
KILLPOINT_CASES(shared_mutex, shared_mutex_scenario)
KILLPOINT_CASES(shared_mutex_33_readers, shared_mutex_slots_scenario)
KILLPOINT_CASES(shared_mutex_writer_reserved, mutex_scenario<reserved_shared_writer_kind>)
KILLPOINT_CASES(condition_variable, condvar_scenario_of<procsync::condition_variable>)
KILLPOINT_CASES(condition_variable_any, condvar_scenario_of<procsync::condition_variable_any>)
KILLPOINT_CASES(counting_semaphore, semaphore_scenario)
KILLPOINT_CASES(undo_semaphore, undo_semaphore_scenario)
KILLPOINT_CASES(event_manual, event_manual_scenario)
KILLPOINT_CASES(event_auto, event_auto_scenario)
KILLPOINT_CASES(barrier, barrier_scenario)
KILLPOINT_CASES(latch, latch_scenario)
KILLPOINT_CASES(shared_value, shared_value_scenario)
KILLPOINT_CASES(checked_mutex, mutex_scenario<checked_mutex_kind>)
KILLPOINT_CASES(queue, queue_scenario<false>)
KILLPOINT_CASES(queue_pop_into, queue_scenario<true>)
KILLPOINT_CASES(message_queue, message_queue_scenario)
