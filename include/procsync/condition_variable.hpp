// procsync/condition_variable.hpp — a condition variable shared between
// processes, used with procsync::mutex.
//
// std::condition_variable's shape (wait, wait_for, wait_until, with or without
// a predicate, notify_one, notify_all) over std::unique_lock<procsync::mutex>.
// A waiter registers and reads the notification sequence while it still holds
// the mutex, so a notification that follows its unlock is never lost.
//
// Exactness: each notify_one() releases at most one waiter among those
// registered when it was called (it leaves one *signal* that exactly one
// waiter consumes); notify_all() releases all of them. Waiters that arrive
// later are not released by earlier notifications. Spurious wake-ups remain
// possible (a signal left over by a waiter that timed out or died may release
// a later waiter once), as std allows: use a predicate.
//
// Cost: 16 bytes. notify_one/notify_all make no system call when nobody waits.
//
// Robustness (waits go through the waiting floor, detail/waiting_floor.hpp):
//  - A waiter killed while waiting breaks nothing. One killed after a
//    notify_one() woke it, before it consumed the signal, leaves the signal:
//    another waiter takes it within one re-arm slice (50 ms), so a notification
//    is never lost to a death (nor to a SIGSTOP of the woken waiter).
//  - A notifier killed (or stopped) after changing the shared state and before
//    its notify: predicate waits re-check their predicate under the mutex after
//    every re-arm slice (50 ms) without returning to the caller, so they see the
//    change within one slice. A plain wait() cannot know what its caller waits
//    for and is not woken: loop on a predicate (as std recommends anyway).
//  - If the mutex's holder dies while a waiter waits, the waiter still
//    reacquires the mutex on return. wait()/wait_for()/wait_until() without a
//    predicate return normally with lock.mutex()->inconsistent() true (the death
//    is not dropped: unlocking without consistent() poisons the mutex as usual),
//    and wait_robust() returns lock_status::owner_died.
//    Predicate waits keep std's contract — they return only with pred() true
//    (or, timed, false at the deadline) — so they cannot return normally after
//    a death the data may not survive: they throw procsync::error with
//    errc::owner_dead, the mutex held (lock still owns it) and inconsistent.
//    Catch it inside the lock's scope to repair, call consistent() and wait
//    again; let it unwind and the unique_lock's unlock poisons the mutex (every
//    later user learns of it). A mutex constructed with
//    owner_death::nothing_to_repair is consistent at once: predicate waits on it
//    just go on waiting, as std code expects.
//  - If the mutex became not recoverable, the reacquisition throws
//    errc::not_recoverable and `lock` is released (it no longer refers to the
//    mutex, so its destructor does not try to unlock it).
//
// Requirements: the caller holds `lock` (else errc::not_owner). Waiting with
// an inconsistent mutex unlocks it, which poisons it: call consistent() first.
// All waiters of one condition_variable should use the same mutex.
// Limit: a waiter that sleeps through exactly 2^32 notifications between
// registering and falling asleep misses one (not a practical concern).
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <atomic>
#include <chrono>
#include <condition_variable>  // std::cv_status
#include <cstdint>
#include <mutex>

#include "detail/clock.hpp"
#include "detail/notifier.hpp"
#include "error.hpp"
#include "mutex.hpp"

namespace procsync {

class condition_variable {
 public:
  static constexpr const char* kind_name = "procsync::condition_variable";
  static constexpr std::uint32_t layout_version = 2;

  condition_variable() noexcept = default;
  condition_variable(const condition_variable&) = delete;
  condition_variable& operator=(const condition_variable&) = delete;

  /// Threads registered as waiting now: a racy snapshot for inspectors.
  [[nodiscard]] std::uint32_t sleepers() const noexcept { return notifier_.sleepers(); }

  /// Releases one of the waiters registered now, if any. No system call when
  /// nobody waits. Async-signal-safe.
  void notify_one() noexcept { notifier_.notify_one(); }

  /// Releases every waiter registered now. No system call when nobody waits.
  /// Async-signal-safe.
  void notify_all() noexcept { notifier_.notify_all(); }

  /// Releases `lock`'s mutex, sleeps until notified (or spuriously), then
  /// reacquires it. See the header comment for owner death and errors.
  void wait(std::unique_lock<mutex>& lock) { (void)wait_robust(lock); }

  /// Like wait(); returns lock_status::owner_died if the mutex was reacquired
  /// from a holder that died (repair, then consistent()), else acquired.
  [[nodiscard]] lock_status wait_robust(std::unique_lock<mutex>& lock) { return wait_impl(lock, nullptr).status; }

  /// Waits until `pred()` holds (evaluated with the mutex held); returns only
  /// then. Throws errc::owner_dead, holding the mutex, when it was reacquired
  /// from a holder that died and must be repaired (see the header comment).
  template <class Predicate>
  void wait(std::unique_lock<mutex>& lock, Predicate pred) {
    while (!pred()) {
      (void)wait_impl(lock, nullptr, true);
      if (lock.mutex()->inconsistent()) throw_owner_died_during_wait();
    }
  }

  /// Waits until notified or `deadline`; returns cv_status::timeout if the
  /// deadline passed (never before it). A deadline on another clock
  /// (system_clock) is converted to steady_clock once.
  template <class Clock, class Duration>
  std::cv_status wait_until(std::unique_lock<mutex>& lock, const std::chrono::time_point<Clock, Duration>& deadline) {
    timespec storage{};
    const outcome r = wait_impl(lock, detail::futex_deadline(detail::to_steady(deadline), storage));
    return r.timed_out ? std::cv_status::timeout : std::cv_status::no_timeout;
  }

  /// Waits until `pred()` or `deadline`; returns pred()'s last value. Throws
  /// errc::owner_dead as wait(lock, pred) does.
  template <class Clock, class Duration, class Predicate>
  bool wait_until(std::unique_lock<mutex>& lock, const std::chrono::time_point<Clock, Duration>& deadline,
                  Predicate pred) {
    const detail::steady::time_point steady_deadline = detail::to_steady(deadline);
    timespec storage{};
    const timespec* until = detail::futex_deadline(steady_deadline, storage);
    while (!pred()) {
      if (detail::steady::now() >= steady_deadline) return false;
      (void)wait_impl(lock, until, true);
      if (lock.mutex()->inconsistent()) throw_owner_died_during_wait();
    }
    return true;
  }

  /// wait_until(lock, now + timeout), measured on steady_clock.
  template <class Rep, class Period>
  std::cv_status wait_for(std::unique_lock<mutex>& lock, const std::chrono::duration<Rep, Period>& timeout) {
    return wait_until(lock, detail::deadline_after(timeout));
  }

  template <class Rep, class Period, class Predicate>
  bool wait_for(std::unique_lock<mutex>& lock, const std::chrono::duration<Rep, Period>& timeout, Predicate pred) {
    return wait_until(lock, detail::deadline_after(timeout), std::move(pred));
  }

 private:
  [[noreturn, gnu::cold]] static void throw_owner_died_during_wait() {
    detail::throw_error(errc::owner_dead,
                        "procsync::condition_variable: the mutex's previous holder died while this thread waited; "
                        "the mutex is held again but inconsistent: repair the data and call consistent() before "
                        "waiting again (or construct the mutex with owner_death::nothing_to_repair if a death "
                        "cannot leave the data half-written); unlocking it now poisons it");
  }

  struct outcome {
    bool timed_out;
    lock_status status;
  };

  // `recheck_each_slice`: also return (not notified) after each re-arm slice,
  // so that a predicate wait re-evaluates its predicate under the mutex.
  outcome wait_impl(std::unique_lock<mutex>& lock, const timespec* deadline, bool recheck_each_slice = false) {
    if (!lock.owns_lock() || !lock.mutex()->owned_by_caller())
      detail::throw_error(errc::not_owner,
                          "procsync::condition_variable: wait requires a unique_lock that owns a procsync::mutex "
                          "held by the calling thread");
    mutex& m = *lock.mutex();
    const bool notified = notifier_.wait([&m] { m.unlock(); }, deadline, nullptr, recheck_each_slice);
    lock_status status;
    try {
      status = m.lock_robust();
    } catch (...) {
      lock.release();  // we do not hold the mutex: the unique_lock must not unlock it
      throw;
    }
    return {!notified, status};
  }

  detail::notifier notifier_;  // who waits and what notifications they have
};

static_assert(sizeof(condition_variable) == 16);

}  // namespace procsync
