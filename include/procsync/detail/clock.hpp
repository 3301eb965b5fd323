// procsync/detail/clock.hpp — turning std::chrono deadlines into the absolute
// CLOCK_MONOTONIC timespec that futex waits take.
//
// std::chrono::steady_clock is CLOCK_MONOTONIC on Linux (libstdc++ and libc++),
// so a steady_clock deadline maps 1:1. A deadline on any other clock (system_clock
// included) is converted once, at the start of the wait, into "now on steady +
// remaining": a later wall-clock jump then does not move it.
#pragma once

#include <chrono>
#include <ctime>

namespace procsync::detail {

using steady = std::chrono::steady_clock;

/// Converts a deadline on any clock into a steady_clock time point (once).
template <class Clock, class Duration>
steady::time_point to_steady(const std::chrono::time_point<Clock, Duration>& deadline) {
  if constexpr (std::is_same_v<Clock, steady>) {
    return std::chrono::time_point_cast<steady::duration>(deadline);
  } else {
    const auto remaining = deadline - Clock::now();
    return steady::now() + std::chrono::duration_cast<steady::duration>(remaining);
  }
}

/// A relative timeout as a steady deadline; negative timeouts mean "now".
template <class Rep, class Period>
steady::time_point deadline_after(const std::chrono::duration<Rep, Period>& timeout) {
  const auto now = steady::now();
  if (timeout <= timeout.zero()) return now;
  const auto max_wait = steady::time_point::max() - now;
  if (timeout >= max_wait) return steady::time_point::max();
  return now + std::chrono::ceil<steady::duration>(timeout);
}

/// An absolute CLOCK_MONOTONIC timespec for futex_wait.
inline timespec to_timespec(steady::time_point deadline) noexcept {
  const auto since_epoch = deadline.time_since_epoch();
  if (since_epoch.count() < 0) return timespec{0, 0};
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  const auto nsecs = std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - secs);
  return timespec{static_cast<time_t>(secs.count()), static_cast<long>(nsecs.count())};
}

}  // namespace procsync::detail
