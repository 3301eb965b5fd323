// procsync/mutex.hpp — a robust mutex shared between processes.
//
// procsync::mutex is a 40-byte, pointer-free futex lock in shared memory,
// owned by one thread of one process at a time, as std::mutex is; it meets
// Lockable and TimedLockable. If the holder dies, the kernel releases it at
// once and the next locker is told (lock_status::owner_died, inconsistent());
// a holder that unlocks without consistent() poisons it (errc::not_recoverable)
// unless it was made with owner_death::nothing_to_repair. Each member below
// states its contract; README.md ("Robust mutexes") shows the pattern.
//
// Requirements and limits:
//  - Place it in memory shared by all users (MAP_SHARED); it works at any
//    mapping address in each process. Construct it once, before others use it;
//    it needs no destruction. Its storage must not end (destruction, unmapping,
//    re-construction in place) while a thread holds it, as for std::mutex: the
//    holder's robust list still links to it. procsync checks this when that
//    thread next locks anything while the lost mutex is its most recent held
//    lock, and then aborts with a message rather than write into memory that
//    is no longer the mutex. Storage ending while *no* thread holds it is fine,
//    and so is a holder that dies (the kernel unlinks it).
//  - All processes sharing it must live in one PID namespace, and glibc is
//    required (errc::unsupported otherwise): detail/robust_list.hpp says why.
//
// Cost: lock+unlock without contention is two atomic instructions and no system
// call; a system call is made only when a thread has to sleep or wake a sleeper.
// A lock() that finds the mutex held first pauses for 2 us on its CPU without
// touching the mutex (the holder keeps its cache line and often finishes), then
// looks again and sleeps if it must: one such pause per contended lock(), spent
// busy rather than asleep (detail/waiting_floor.hpp, policy 4).
//
// Fairness: eventual. An unlocking thread may take the mutex straight back
// (throughput), but a waiter that has slept and waited at least 1 ms reserves
// it, and the next unlock hands it to that waiter before anyone new. A reserved
// waiter that dies, is stopped, or does not take the free mutex within one
// 50 ms re-arm slice of the unlock that left it the mutex loses its
// reservation, so it delays the others by one slice plus scheduling. That time
// is kept in the mutex, so a waiter that first looks late does not start a
// patience of its own (measured at every kill point: docs/killpoints.md,
// "mutex_reserved").
// try_lock() ignores reservations.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <chrono>
#include <cstdint>

#include "detail/clock.hpp"
#include "detail/robust_lock.hpp"
#include "detail/timed_lock_api.hpp"
#include "lock_status.hpp"

namespace procsync {

class mutex : public detail::timed_lock_api<mutex> {
 public:
  /// Layout identity, checked when the mutex is opened in a named segment.
  static constexpr const char* kind_name = "procsync::mutex";
  static constexpr std::uint32_t layout_version = 1;

  /// An unlocked mutex whose owner deaths must be repaired (owner_death::must_repair).
  constexpr mutex() noexcept = default;

  /// An unlocked mutex with the given meaning of an owner's death.
  constexpr explicit mutex(owner_death policy) noexcept : core_(policy) {}
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  /// Blocks until the calling thread holds the mutex. Once it has waited 1 ms
  /// it is served before newcomers (see "Fairness" above). Throws errc::would_deadlock if the caller already holds it,
  /// errc::not_recoverable if it was poisoned. After an owner's death it
  /// succeeds and inconsistent() is true.
  void lock() { (void)core_.acquire(message_name, nullptr); }

  /// Like lock(), reporting whether the previous owner died.
  [[nodiscard]] lock_status lock_robust() { return core_.acquire(message_name, nullptr); }

  /// Takes the mutex if it is free now; never blocks. Same errors as lock().
  [[nodiscard]] bool try_lock() { return holds(core_.try_acquire(message_name)); }
  [[nodiscard]] lock_status try_lock_robust() { return core_.try_acquire(message_name); }

  // try_lock_for, try_lock_until, try_lock_robust_for, try_lock_robust_until:
  // from detail::timed_lock_api.

  /// Releases the mutex. Requires: the calling thread holds it (else throws
  /// errc::not_owner). If the previous owner died and consistent() was not
  /// called, the mutex becomes not recoverable and every waiter is woken to
  /// learn it.
  void unlock() { core_.release(message_name); }

  /// Declares the protected data repaired after an owner's death.
  /// Requires: the caller holds the mutex (else errc::not_owner). No effect if
  /// the mutex is already consistent.
  void consistent() { core_.make_consistent(message_name); }

  /// True while the holder has not yet called consistent() after acquiring the
  /// mutex from a dead owner. Meaningful to the holder.
  [[nodiscard]] bool inconsistent() const noexcept { return core_.inconsistent(); }

  /// True once the mutex was poisoned (see unlock()).
  [[nodiscard]] bool not_recoverable() const noexcept { return core_.not_recoverable(); }

  /// Makes a poisoned mutex usable again (free and consistent), for a caller
  /// who has checked or rebuilt the protected data by other means. Any thread
  /// may call it; it has no effect and returns false unless the mutex is
  /// poisoned (a poisoned mutex has no holder, so a held one is never touched).
  /// Wakes no one: waiters of a poisoned mutex have already been told.
  bool clear_poison() noexcept { return core_.clear_poison(); }

  /// What an owner's death means for this mutex (fixed at construction).
  [[nodiscard]] owner_death death_policy() const noexcept { return core_.policy(); }

  /// True if the calling thread holds the mutex.
  [[nodiscard]] bool owned_by_caller() const { return core_.held_by_caller(); }

  /// The kernel thread id of the holder, 0 if free: a racy snapshot for
  /// diagnostics (and the deadlock detector), never for decisions.
  [[nodiscard]] std::uint32_t holder_tid() const noexcept { return core_.holder_tid(); }
  /// The kernel thread id of the waiter the mutex is reserved for (see
  /// "Fairness" above), 0 if none: a racy snapshot for diagnostics.
  [[nodiscard]] std::uint32_t heir_tid() const noexcept { return core_.heir_tid(); }
  /// The raw robust lock word (holder TID | owner-died bit | waiters bit, see
  /// detail/robust_list.hpp): one racy load, for inspectors (procsync/inspect.hpp).
  [[nodiscard]] std::uint32_t lock_word() const noexcept { return core_.word().load(std::memory_order_relaxed); }

 private:
  friend class detail::timed_lock_api<mutex>;
  lock_status acquire_until(detail::steady::time_point deadline) {
    const timespec ts = detail::to_timespec(deadline);
    return core_.acquire(message_name, &ts);
  }

  // How errors name it ("procsync::" + message_name + ": ..."); kind_name is the layout identity.
  static constexpr const char* message_name = "mutex";
  detail::robust_lock core_;
};

static_assert(sizeof(mutex) == 40, "procsync::mutex is 40 bytes, pthread_mutex_t's size");

}  // namespace procsync
