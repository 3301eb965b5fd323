// procsync/condition_variable.hpp — a condition variable shared between
// processes, used with procsync::mutex.
//
// std::condition_variable's shape (wait, wait_for, wait_until, with or without
// a predicate, notify_one, notify_all) over std::unique_lock<procsync::mutex>,
// built directly on one futex: a sequence word that every notification bumps.
// A waiter reads the sequence while it still holds the mutex and sleeps only
// while it is unchanged, so a notification that follows the waiter's unlock
// can never be lost. Spurious wake-ups happen (as with std): use a predicate.
//
// Cost: 8 bytes. notify_one/notify_all make no system call when nobody waits
// (a count of waiters is checked first); wait makes one futex wait.
//
// Robustness:
//  - A waiter killed while waiting breaks nothing: the others are still
//    notified. It leaves the waiter count one too high, which only costs each
//    later notify one (useless) futex wake call.
//  - If the mutex's holder dies while a waiter waits, the waiter still
//    reacquires the mutex on return: wait()/wait_for()/wait_until() then return
//    normally with lock.mutex()->inconsistent() true (the death is not
//    dropped: unlocking without consistent() poisons the mutex as usual), and
//    wait_robust() returns lock_status::owner_died. A predicate wait then
//    returns at once, its predicate possibly false (waiting again would unlock
//    the inconsistent mutex and poison it): check inconsistent() after it
//    returns, repair, call consistent(), and wait again if needed.
//  - If the mutex became not recoverable, the reacquisition throws
//    errc::not_recoverable and `lock` is released (it no longer refers to the
//    mutex, so its destructor does not try to unlock it).
//
// Requirements: the caller holds `lock` (else errc::not_owner). Waiting with
// an inconsistent mutex unlocks it, which poisons it: call consistent() first.
// All waiters of one condition_variable should use the same mutex.
// Limit: a waiter that sleeps through exactly 2^32 notifications between
// reading the sequence and falling asleep misses one (not a practical concern).
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>  // std::cv_status
#include <cstdint>
#include <mutex>

#include "detail/clock.hpp"
#include "detail/futex.hpp"
#include "error.hpp"
#include "mutex.hpp"

namespace procsync {

class condition_variable {
 public:
  static constexpr const char* kind_name = "procsync::condition_variable";
  static constexpr std::uint32_t layout_version = 1;

  condition_variable() noexcept = default;
  condition_variable(const condition_variable&) = delete;
  condition_variable& operator=(const condition_variable&) = delete;

  /// Wakes one waiter, if any. No system call when nobody waits.
  void notify_one() noexcept { notify(1); }

  /// Wakes every waiter. No system call when nobody waits.
  void notify_all() noexcept { notify(INT_MAX); }

  /// Releases `lock`'s mutex, sleeps until notified (or spuriously), then
  /// reacquires it. See the header comment for owner death and errors.
  void wait(std::unique_lock<mutex>& lock) { (void)wait_robust(lock); }

  /// Like wait(); returns lock_status::owner_died if the mutex was reacquired
  /// from a holder that died (repair, then consistent()), else acquired.
  [[nodiscard]] lock_status wait_robust(std::unique_lock<mutex>& lock) { return wait_impl(lock, nullptr).status; }

  /// Waits until `pred()` holds (evaluated with the mutex held).
  /// Returns early, pred() possibly false, when the mutex was reacquired from
  /// a holder that died (lock.mutex()->inconsistent()): waiting again would
  /// unlock an inconsistent mutex and poison it. Repair, consistent(), re-check.
  template <class Predicate>
  void wait(std::unique_lock<mutex>& lock, Predicate pred) {
    while (!pred()) {
      wait(lock);
      if (lock.mutex()->inconsistent()) return;
    }
  }

  /// Waits until notified or `deadline`; returns cv_status::timeout if the
  /// deadline passed (never before it). A deadline on another clock
  /// (system_clock) is converted to steady_clock once.
  template <class Clock, class Duration>
  std::cv_status wait_until(std::unique_lock<mutex>& lock, const std::chrono::time_point<Clock, Duration>& deadline) {
    const detail::steady::time_point steady_deadline = detail::to_steady(deadline);
    const timespec ts = detail::to_timespec(steady_deadline);
    const outcome r = wait_impl(lock, &ts);
    return r.timed_out || detail::steady::now() >= steady_deadline ? std::cv_status::timeout
                                                                   : std::cv_status::no_timeout;
  }

  /// Waits until `pred()` or `deadline`; returns pred()'s last value. Returns
  /// early (as wait(lock, pred) does) when the mutex was reacquired from a
  /// holder that died: check lock.mutex()->inconsistent().
  template <class Clock, class Duration, class Predicate>
  bool wait_until(std::unique_lock<mutex>& lock, const std::chrono::time_point<Clock, Duration>& deadline,
                  Predicate pred) {
    const detail::steady::time_point steady_deadline = detail::to_steady(deadline);
    while (!pred()) {
      if (wait_until(lock, steady_deadline) == std::cv_status::timeout || lock.mutex()->inconsistent()) return pred();
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
  struct outcome {
    bool timed_out;
    lock_status status;
  };

  outcome wait_impl(std::unique_lock<mutex>& lock, const timespec* deadline) {
    if (!lock.owns_lock() || !lock.mutex()->owned_by_caller())
      detail::throw_error(errc::not_owner,
                          "procsync::condition_variable: wait requires a unique_lock that owns a procsync::mutex "
                          "held by the calling thread");
    mutex& m = *lock.mutex();
    // Relaxed: read under the mutex; any notify after our unlock bumps it, and
    // the futex compares it atomically with our going to sleep.
    const std::uint32_t seen = sequence_.load(std::memory_order_relaxed);
    // Registered before the unlock, so a notifier that takes the mutex after
    // us (or observes our unlock) sees it and does not skip its wake call.
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    m.unlock();
    const detail::wait_result r = detail::futex_wait(&sequence_, seen, deadline);
    // Relaxed: a statistic that only decides whether notify makes a syscall.
    waiters_.fetch_sub(1, std::memory_order_relaxed);
    lock_status status;
    try {
      status = m.lock_robust();
    } catch (...) {
      lock.release();  // we do not hold the mutex: the unique_lock must not unlock it
      throw;
    }
    return {r == detail::wait_result::timed_out, status};
  }

  void notify(int count) noexcept {
    // seq_cst: ordered after the notifier's earlier writes (its unlock), so a
    // waiter that registered before unlocking is seen.
    if (waiters_.load(std::memory_order_seq_cst) == 0) return;
    // Release: a woken waiter re-checks its predicate under the mutex anyway;
    // the bump only has to change the word it sleeps on.
    sequence_.fetch_add(1, std::memory_order_release);
    detail::futex_wake(&sequence_, count);
  }

  std::atomic<std::uint32_t> sequence_{0};
  std::atomic<std::uint32_t> waiters_{0};
};

static_assert(sizeof(condition_variable) == 8);

}  // namespace procsync
