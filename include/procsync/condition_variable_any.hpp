// procsync/condition_variable_any.hpp — a condition variable shared between
// processes that waits with any lock (C++20's std::condition_variable_any).
//
// Works with every BasicLockable (lock() and unlock()): std::unique_lock or
// std::shared_lock over procsync::mutex, recursive_mutex, shared_mutex or
// checked_mutex, those mutexes themselves, std::scoped_lock-less user
// Lockables, anything whose lock lives in memory shared by the waiters. The
// shape is std's: wait, wait_for, wait_until, with or without a predicate,
// the std::stop_token overloads, notify_one, notify_all.
//
// It needs no internal mutex: a waiter registers and reads the notification
// sequence while it still holds the caller's lock, and only then unlocks, so a
// notification that follows the unlock is never lost (the waiting floor's
// announced_wait, as in condition_variable.hpp).
//
// Exactness, cost (16 bytes, no system call in notify when nobody waits) and
// a waiter killed while waiting or after its wake-up: as condition_variable.hpp.
//
// Robustness beyond that:
//  - A notifier killed (or stopped) between its change and its notify:
//    predicate waits re-check their predicate under the lock after every
//    re-arm slice, without returning, so they see the change within 50 ms; a
//    plain wait() is not woken (it cannot know its condition).
//  - The lock's owner death is the lock's business: the waiter relocks with
//    lock.lock() and that reports it as usual (procsync mutexes: the wait
//    returns with inconsistent() true; shared_mutex readers are released by
//    the kernel). A predicate wait keeps std's contract (it returns only with
//    pred() true, or false at its deadline): when the relocked procsync mutex
//    is inconsistent (waiting again would unlock it and poison it) it throws
//    errc::owner_dead, the lock held — as condition_variable does; repair,
//    consistent(), wait again. Mutexes made with owner_death::nothing_to_repair
//    are consistent at once, so predicate waits on them just go on.
//  - If relocking throws (a poisoned mutex: errc::not_recoverable), the
//    exception propagates and the lock is not held (a std::unique_lock or
//    std::shared_lock then owns nothing). std::condition_variable_any would
//    call std::terminate() there.
//
// Requirements: the caller holds `lock`. Where that can be checked, it is: a
// std::unique_lock / std::shared_lock that owns nothing, or a procsync mutex
// (or a lock of one) that the calling thread does not hold, throws
// errc::not_owner. A procsync::recursive_mutex held more than once cannot be
// waited on (unlock() would release one level only and the notifier would
// never get it; std leaves this undefined): errc::would_deadlock. Waiting with
// an inconsistent procsync mutex unlocks it, which poisons it: call
// consistent() first.
// Limit: a waiter that sleeps through exactly 2^32 notifications between
// registering and falling asleep misses one (not a practical concern).
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <atomic>
#include <chrono>
#include <condition_variable>  // std::cv_status
#include <cstdint>
#include <ctime>
#include <stop_token>
#include <string>
#include <utility>

#include "detail/clock.hpp"
#include "detail/notifier.hpp"
#include "error.hpp"

namespace procsync {

namespace detail {

/// The mutex behind a lock: `*lock.mutex()` for lock wrappers
/// (std::unique_lock, std::shared_lock), else the lock itself.
template <class Lock>
auto& underlying_mutex(Lock& lock) noexcept {
  if constexpr (requires { *lock.mutex(); })
    return *lock.mutex();
  else
    return lock;
}

/// Throws when `lock` can be seen not to be held by the caller, or to be a
/// recursive mutex held more than once (see condition_variable_any.hpp).
template <class Lock>
void check_waitable(Lock& lock) {
  if constexpr (requires { bool(lock.owns_lock()); }) {
    if (!lock.owns_lock() || lock.mutex() == nullptr)
      throw_error(errc::not_owner,
                  "procsync::condition_variable_any: wait requires a lock that owns its mutex (this one owns none)");
  }
  auto& m = underlying_mutex(lock);
  if constexpr (requires { m.depth_of_caller(); }) {
    const auto depth = m.depth_of_caller();
    if (depth == 0)
      throw_error(errc::not_owner, "procsync::condition_variable_any: wait requires the calling thread to hold "
                                   "the procsync::recursive_mutex");
    if (depth > 1)
      throw_error(errc::would_deadlock,
                  "procsync::condition_variable_any: cannot wait with a procsync::recursive_mutex held " +
                      std::to_string(depth) +
                      " times (unlocking would release one level, the notifier could never lock it); expected "
                      "it held once");
  } else if constexpr (requires { bool(m.shared_by_caller()); bool(m.owned_by_caller()); }) {
    if (!m.owned_by_caller() && !m.shared_by_caller())
      throw_error(errc::not_owner, "procsync::condition_variable_any: wait requires the calling thread to hold "
                                   "the procsync::shared_mutex (exclusively or shared)");
  } else if constexpr (requires { bool(m.owned_by_caller()); }) {
    if (!m.owned_by_caller())
      throw_error(errc::not_owner,
                  "procsync::condition_variable_any: wait requires the calling thread to hold the mutex");
  }
}

/// Whether the lock's procsync mutex was relocked from a dead holder and not
/// yet repaired (false for locks that cannot say).
template <class Lock>
bool relocked_inconsistent(Lock& lock) noexcept {
  if constexpr (requires { bool(lock.owns_lock()); }) {
    if (!lock.owns_lock() || lock.mutex() == nullptr) return false;
  }
  auto& m = underlying_mutex(lock);
  if constexpr (requires { bool(m.inconsistent()); })
    return m.inconsistent();
  else
    return false;
}

}  // namespace detail

class condition_variable_any {
 public:
  static constexpr const char* kind_name = "procsync::condition_variable_any";
  static constexpr std::uint32_t layout_version = 1;

  constexpr condition_variable_any() noexcept = default;
  condition_variable_any(const condition_variable_any&) = delete;
  condition_variable_any& operator=(const condition_variable_any&) = delete;

  /// Threads registered as waiting now: a racy snapshot for inspectors.
  [[nodiscard]] std::uint32_t sleepers() const noexcept { return notifier_.sleepers(); }

  /// Releases one of the waiters registered now, if any (at most one per
  /// call). No system call when nobody waits. Async-signal-safe.
  void notify_one() noexcept { notifier_.notify_one(); }

  /// Releases every waiter registered now. No system call when nobody waits.
  /// Async-signal-safe.
  void notify_all() noexcept { notifier_.notify_all(); }

  /// Unlocks `lock`, sleeps until notified (or spuriously), then relocks it
  /// with lock.lock(). Requires the caller to hold `lock` (see the header for
  /// the checks and errors).
  template <class Lock>
  void wait(Lock& lock) {
    (void)wait_impl(lock, nullptr, nullptr);
  }

  /// Waits until `pred()` holds (evaluated with the lock held); returns only
  /// then. Throws errc::owner_dead, the lock held, when the relocked procsync
  /// mutex is inconsistent (see the header).
  template <class Lock, class Predicate>
  void wait(Lock& lock, Predicate pred) {
    while (!pred()) {
      (void)wait_impl(lock, nullptr, nullptr, true);
      if (detail::relocked_inconsistent(lock)) throw_owner_died_during_wait();
    }
  }

  /// Waits until notified or `deadline`; returns cv_status::timeout if the
  /// deadline passed (never before it). A deadline on another clock is
  /// converted to steady_clock once.
  template <class Lock, class Clock, class Duration>
  std::cv_status wait_until(Lock& lock, const std::chrono::time_point<Clock, Duration>& deadline) {
    timespec storage{};
    const bool notified = wait_impl(lock, detail::futex_deadline(detail::to_steady(deadline), storage), nullptr);
    return notified ? std::cv_status::no_timeout : std::cv_status::timeout;
  }

  /// Waits until `pred()` or `deadline`; returns pred()'s last value. Throws
  /// errc::owner_dead as wait(lock, pred) does.
  template <class Lock, class Clock, class Duration, class Predicate>
  bool wait_until(Lock& lock, const std::chrono::time_point<Clock, Duration>& deadline, Predicate pred) {
    const detail::steady::time_point steady_deadline = detail::to_steady(deadline);
    timespec storage{};
    const timespec* until = detail::futex_deadline(steady_deadline, storage);
    while (!pred()) {
      if (detail::steady::now() >= steady_deadline) return false;
      (void)wait_impl(lock, until, nullptr, true);
      if (detail::relocked_inconsistent(lock)) throw_owner_died_during_wait();
    }
    return true;
  }

  /// wait_until(lock, now + timeout), measured on steady_clock.
  template <class Lock, class Rep, class Period>
  std::cv_status wait_for(Lock& lock, const std::chrono::duration<Rep, Period>& timeout) {
    return wait_until(lock, detail::deadline_after(timeout));
  }

  template <class Lock, class Rep, class Period, class Predicate>
  bool wait_for(Lock& lock, const std::chrono::duration<Rep, Period>& timeout, Predicate pred) {
    return wait_until(lock, detail::deadline_after(timeout), std::move(pred));
  }

  /// Waits until `pred()` holds or a stop is requested on `stoken` (the stop
  /// request wakes the waiter at once); returns pred()'s last value, evaluated
  /// with the lock held. stop_tokens are process-local: the stop request comes
  /// from a thread of the waiter's own process.
  template <class Lock, class Predicate>
  bool wait(Lock& lock, std::stop_token stoken, Predicate pred) {
    std::stop_callback on_stop(stoken, [this]() noexcept { notifier_.wake_to_look(); });
    while (!stoken.stop_requested()) {
      if (pred()) return true;
      (void)wait_impl(lock, nullptr, &stoken, true);
      if (detail::relocked_inconsistent(lock)) throw_owner_died_during_wait();
    }
    return pred();
  }

  /// As wait(lock, stoken, pred), also ending at `deadline`.
  template <class Lock, class Clock, class Duration, class Predicate>
  bool wait_until(Lock& lock, std::stop_token stoken, const std::chrono::time_point<Clock, Duration>& deadline,
                  Predicate pred) {
    const detail::steady::time_point steady_deadline = detail::to_steady(deadline);
    std::stop_callback on_stop(stoken, [this]() noexcept { notifier_.wake_to_look(); });
    while (!stoken.stop_requested()) {
      if (pred()) return true;
      if (detail::steady::now() >= steady_deadline) return false;
      timespec storage{};
      (void)wait_impl(lock, detail::futex_deadline(steady_deadline, storage), &stoken, true);
      if (detail::relocked_inconsistent(lock)) throw_owner_died_during_wait();
    }
    return pred();
  }

  /// As wait(lock, stoken, pred), also ending after `timeout`.
  template <class Lock, class Rep, class Period, class Predicate>
  bool wait_for(Lock& lock, std::stop_token stoken, const std::chrono::duration<Rep, Period>& timeout,
                Predicate pred) {
    return wait_until(lock, std::move(stoken), detail::deadline_after(timeout), std::move(pred));
  }

 private:
  [[noreturn, gnu::cold]] static void throw_owner_died_during_wait() {
    detail::throw_error(errc::owner_dead,
                        "procsync::condition_variable_any: the mutex's previous holder died while this thread "
                        "waited; it is held again but inconsistent: repair the data and call consistent() before "
                        "waiting again (unlocking it now poisons it)");
  }
  /// Returns false when the deadline passed without a notification (or stop).
  template <class Lock>
  // `recheck_each_slice`: also return (not notified) after each re-arm slice,
  // so that a predicate wait re-evaluates its predicate under the lock (a
  // notifier may have died between its change and its notify).
  bool wait_impl(Lock& lock, const timespec* deadline, const std::stop_token* stoken,
                 bool recheck_each_slice = false) {
    detail::check_waitable(lock);
    // Nothing between the unlock and the relock throws: the lock is relocked on every way out.
    const bool notified = notifier_.wait([&lock] { lock.unlock(); }, deadline, stoken, recheck_each_slice);
    lock.lock();
    return notified;
  }

  detail::notifier notifier_;  // who waits and what notifications they have
};

static_assert(sizeof(condition_variable_any) == 16);

}  // namespace procsync
