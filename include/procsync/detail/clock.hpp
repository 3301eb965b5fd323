// procsync/detail/clock.hpp — turning std::chrono timeouts and deadlines into
// the absolute CLOCK_MONOTONIC deadlines that every wait takes.
//
// std::chrono::steady_clock is CLOCK_MONOTONIC on Linux (libstdc++ and libc++),
// so a steady_clock deadline maps 1:1. A deadline on any other clock (system_clock
// included) is converted once, at the start of the wait, into "now on steady +
// remaining": a later wall-clock jump then does not move it.
//
// Every conversion saturates instead of overflowing: "forever" spellings such as
// seconds::max(), hours::max() or system_clock::time_point::max() mean "no
// deadline", never a deadline in the past (libstdc++'s own timed waits overflow
// on them and return at once). Comparisons are made in long double seconds, which
// cannot overflow for any duration representation, before any integer cast.
#pragma once

#include <chrono>
#include <ctime>
#include <type_traits>

namespace procsync::detail {

using steady = std::chrono::steady_clock;

/// `base + d`, clamped to [steady::time_point::min(), steady::time_point::max()].
template <class Rep, class Period>
steady::time_point saturating_add(steady::time_point base, const std::chrono::duration<Rep, Period>& d) {
  using seconds_ld = std::chrono::duration<long double>;
  const long double wanted = seconds_ld(d).count();
  const long double at = seconds_ld(base.time_since_epoch()).count();
  const long double room_up = seconds_ld(steady::time_point::max().time_since_epoch()).count() - at;
  const long double room_down = seconds_ld(steady::time_point::min().time_since_epoch()).count() - at;
  // A second of margin keeps the rounding below from stepping over the edge.
  if (!(wanted < room_up - 1.0L)) return steady::time_point::max();  // also catches NaN from a float Rep
  if (!(wanted > room_down + 1.0L)) return steady::time_point::min();
  // In range: rounding up keeps a timeout from ending early.
  return base + std::chrono::ceil<steady::duration>(d);
}

/// A relative timeout as a steady deadline; zero and negative timeouts mean
/// "now", a timeout too long to represent means "never".
template <class Rep, class Period>
steady::time_point deadline_after(const std::chrono::duration<Rep, Period>& timeout) {
  const auto now = steady::now();
  if (!(timeout > timeout.zero())) return now;
  return saturating_add(now, timeout);
}

/// Converts a deadline on any clock into a steady_clock time point (once).
template <class Clock, class Duration>
steady::time_point to_steady(const std::chrono::time_point<Clock, Duration>& deadline) {
  if constexpr (std::is_same_v<Clock, steady>) {
    return saturating_add(steady::time_point{}, deadline.time_since_epoch());
  } else {
    // The clock's own "forever" and "never" keep their meaning.
    if (deadline == std::chrono::time_point<Clock, Duration>::max()) return steady::time_point::max();
    if (deadline == std::chrono::time_point<Clock, Duration>::min()) return steady::time_point::min();
    // Subtracting two time points of this clock could overflow: take their
    // difference in long double seconds first.
    using seconds_ld = std::chrono::duration<long double>;
    const auto now = Clock::now();
    const seconds_ld remaining = seconds_ld(deadline.time_since_epoch()) - seconds_ld(now.time_since_epoch());
    return saturating_add(steady::now(), remaining);
  }
}

/// A timeout in whole nanoseconds, rounded up and clamped to [0, INT64_MAX].
template <class Rep, class Period>
std::chrono::nanoseconds saturating_nanoseconds(const std::chrono::duration<Rep, Period>& d) {
  using seconds_ld = std::chrono::duration<long double>;
  if (!(d > d.zero())) return std::chrono::nanoseconds::zero();
  if (!(seconds_ld(d) < seconds_ld(std::chrono::nanoseconds::max()))) return std::chrono::nanoseconds::max();
  return std::chrono::ceil<std::chrono::nanoseconds>(d);
}

/// An absolute CLOCK_MONOTONIC timespec for futex_wait.
inline timespec to_timespec(steady::time_point deadline) noexcept {
  const auto since_epoch = deadline.time_since_epoch();
  if (since_epoch.count() < 0) return timespec{0, 0};
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  const auto nsecs = std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - secs);
  return timespec{static_cast<time_t>(secs.count()), static_cast<long>(nsecs.count())};
}

/// The steady deadline as a futex deadline pointer: nullptr for "never".
inline const timespec* futex_deadline(steady::time_point deadline, timespec& storage) noexcept {
  if (deadline == steady::time_point::max()) return nullptr;
  storage = to_timespec(deadline);
  return &storage;
}

}  // namespace procsync::detail
