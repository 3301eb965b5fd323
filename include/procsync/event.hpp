// procsync/event.hpp — an event flag shared between processes (Python's Event).
//
// procsync::event is a flag that processes wait on: set(), clear(), is_set(),
// wait(), wait_for() and wait_until() returning whether the event fired. It
// lives in shared memory (see segment.hpp), 12 bytes, pointer-free.
//
// Two modes, chosen at construction:
//  - manual reset (default, Python's Event): set() raises the flag and wakes
//    every waiter in every process; the flag stays up, so later waits return at
//    once, until clear(). A waiter that was waiting when set() ran returns true
//    even if clear() follows immediately (each set() starts a new generation
//    and a waiter returns once the generation it began in has ended).
//  - auto reset (Win32's auto-reset event): set() releases exactly one waiter,
//    which lowers the flag as it returns; if nobody waits, the flag stays up
//    and the next wait returns at once (consuming it). A set() while the flag
//    is already up is absorbed: events do not count (use a semaphore for that).
//
// Signals: set() is noexcept and async-signal-safe: it uses only atomic
// instructions and at most one futex wake (which preserves errno), never a lock
// or an allocation. A SIGUSR1 handler may set() an event another process waits on.
// clear() and is_set() are async-signal-safe too.
//
// No lost wake-ups: a waiter re-reads the flag after announcing itself, and
// sleeps only while the 32-bit futex word is unchanged. Cost: set() makes a
// system call only when some process waits; wait() on a set event makes none.
// Robustness (waits go through the waiting floor, detail/waiting_floor.hpp): a
// waiter killed while waiting breaks nothing. In automatic mode, a waiter
// killed (or stopped) after set() woke it and before it lowered the flag leaves
// the flag up: another waiter takes it within one re-arm slice (50 ms). A
// setter killed between raising the flag and its wake call is covered the
// same way.
// Limit: a waiter that is descheduled across exactly 2^31 set()s between two
// reads could miss one (not a practical concern).
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <ctime>

#include "detail/clock.hpp"
#include "detail/futex.hpp"
#include "detail/waiting_floor.hpp"

namespace procsync {

class event {
 public:
  static constexpr const char* kind_name = "procsync::event";
  static constexpr std::uint32_t layout_version = 1;

  /// How a set event is lowered again.
  enum class reset_mode : std::uint32_t {
    manual = 0,     ///< stays set until clear(); set() wakes every waiter
    automatic = 1,  ///< set() releases one waiter, which clears it
  };

  /// An event in `mode`, initially set if `initially_set`.
  explicit event(reset_mode mode = reset_mode::manual, bool initially_set = false) noexcept
      : state_(initially_set ? 1u : 0u), mode_(mode) {}

  event(const event&) = delete;
  event& operator=(const event&) = delete;

  [[nodiscard]] reset_mode mode() const noexcept { return mode_; }

  /// Raises the flag and wakes every waiter (manual) or one (automatic).
  /// No effect if already set. Async-signal-safe; no system call when nobody waits.
  void set() noexcept {
    std::uint32_t s = state_.value.load(std::memory_order_relaxed);
    do {
      if (s & set_bit) return;
      // seq_cst: release publishes what the setter wrote before set() to the
      // waiter that sees the flag; and it is the waker's half of the floor's
      // Dekker pair: either wake() sees a sleeper, or the sleeper sees the flag.
    } while (!state_.value.compare_exchange_weak(s, (s + generation_step) | set_bit, std::memory_order_seq_cst,
                                                 std::memory_order_relaxed));
    detail::wake(state_, mode_ == reset_mode::manual ? INT_MAX : 1);
  }

  /// Lowers the flag. Waiters that a set() already released still return true.
  void clear() noexcept {
    // Relaxed: clearing publishes nothing; set() and waits re-read the word.
    state_.value.fetch_and(~set_bit, std::memory_order_relaxed);
  }

  /// Whether the flag is up now (a snapshot).
  [[nodiscard]] bool is_set() const noexcept {
    // Acquire: a caller that sees the flag also sees what the setter wrote.
    return (state_.value.load(std::memory_order_acquire) & set_bit) != 0;
  }
  /// Threads asleep (or about to sleep) on it, waiting for the flag: a racy snapshot for inspectors.
  [[nodiscard]] std::uint32_t sleepers() const noexcept { return state_.sleepers.load(std::memory_order_relaxed); }

  /// Blocks until the event fires (see the modes above).
  void wait() noexcept { (void)wait_impl(nullptr); }

  /// Blocks until the event fires or `timeout` has passed (steady_clock);
  /// returns true if it fired. Never returns false early.
  template <class Rep, class Period>
  [[nodiscard]] bool wait_for(const std::chrono::duration<Rep, Period>& timeout) noexcept {
    timespec storage{};
    return wait_impl(detail::futex_deadline(detail::deadline_after(timeout), storage));
  }

  /// Blocks until the event fires or `deadline` passes; a deadline on another
  /// clock is converted to steady_clock once (clock jumps do not move it).
  template <class Clock, class Duration>
  [[nodiscard]] bool wait_until(const std::chrono::time_point<Clock, Duration>& deadline) noexcept {
    timespec storage{};
    return wait_impl(detail::futex_deadline(detail::to_steady(deadline), storage));
  }

 private:
  static constexpr std::uint32_t set_bit = 1;
  static constexpr std::uint32_t generation_step = 2;

  /// Whether a waiter that started at word `start` may return, given word `now`;
  /// in automatic mode it also consumes the flag (which may fail: `now` is then
  /// updated and the caller asks again).
  bool fired(std::uint32_t start, std::uint32_t& now) noexcept {
    if (mode_ == reset_mode::manual) return (now & set_bit) != 0 || (now >> 1) != (start >> 1);
    while (now & set_bit) {
      // Acquire: we take over what the setter published.
      if (state_.value.compare_exchange_weak(now, now & ~set_bit, std::memory_order_acquire,
                                             std::memory_order_relaxed))
        return true;
    }
    return false;
  }

  bool wait_impl(const timespec* deadline) noexcept {
    // The generation a manual-reset waiter started in (acquire: see fired()).
    const std::uint32_t start = state_.value.load(std::memory_order_acquire);
    return detail::wait_until_done(state_, deadline, [&](std::uint32_t now) { return fired(start, now); });
  }

  detail::wait_word state_;  // futex word: generation << 1 | set_bit; sleepers: waiting threads
  reset_mode mode_;
};

static_assert(sizeof(event) == 12, "procsync::event is three 32-bit words");

}  // namespace procsync
