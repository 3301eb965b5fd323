// procsync/detail/timed_lock_api.hpp — the timed half of a lock's API, written
// once for every lock (mutex, recursive_mutex, shared_mutex; checked_mutex
// may use it too).
//
// A lock derives from timed_lock_api<Lock> and defines one member,
//   lock_status acquire_until(detail::steady::time_point deadline)
// (private, with `friend class detail::timed_lock_api<Lock>;`), which blocks
// until acquired or `deadline` passes. The mixin adds try_lock_for,
// try_lock_until, try_lock_robust_for and try_lock_robust_until, so the lock
// meets std's TimedLockable. It has no data: the lock's size is unchanged.
#pragma once

#include <chrono>

#include "../lock_status.hpp"
#include "clock.hpp"

namespace procsync::detail {

template <class Lock>
class timed_lock_api {
 public:
  /// Blocks until acquired or `timeout` has passed (on steady_clock); returns
  /// whether the caller holds the lock. Never returns false early.
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    return holds(self().acquire_until(deadline_after(timeout)));
  }

  /// Blocks until acquired or `deadline` passes. A deadline on another clock
  /// (system_clock) is converted to steady_clock once, so clock jumps do not
  /// move it.
  template <class Clock, class Duration>
  [[nodiscard]] bool try_lock_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    return holds(self().acquire_until(to_steady(deadline)));
  }

  /// As try_lock_for(), reporting lock_status::owner_died when the previous
  /// owner died (lock_status::unavailable at the timeout).
  template <class Rep, class Period>
  [[nodiscard]] lock_status try_lock_robust_for(const std::chrono::duration<Rep, Period>& timeout) {
    return self().acquire_until(deadline_after(timeout));
  }

  /// As try_lock_until(), reporting lock_status::owner_died when the previous
  /// owner died (lock_status::unavailable at the deadline).
  template <class Clock, class Duration>
  [[nodiscard]] lock_status try_lock_robust_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    return self().acquire_until(to_steady(deadline));
  }

 protected:
  timed_lock_api() = default;

 private:
  Lock& self() noexcept { return static_cast<Lock&>(*this); }
};

}  // namespace procsync::detail
