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
// Robustness: a waiter killed while waiting leaves the waiter count one too
// high, which only costs each later set() a useless futex wake call.
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
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    do {
      if (s & set_bit) return;
      // seq_cst: release publishes what the setter wrote before set() to the
      // waiter that sees the flag; and it is the first half of the Dekker pair
      // with waiters_ (below): either we see a waiter, or it sees the flag.
    } while (!state_.compare_exchange_weak(s, (s + generation_step) | set_bit, std::memory_order_seq_cst,
                                           std::memory_order_relaxed));
    if (waiters_.load(std::memory_order_seq_cst) != 0)
      detail::futex_wake(&state_, mode_ == reset_mode::manual ? INT_MAX : 1);
  }

  /// Lowers the flag. Waiters that a set() already released still return true.
  void clear() noexcept {
    // Relaxed: clearing publishes nothing; set() and waits re-read the word.
    state_.fetch_and(~set_bit, std::memory_order_relaxed);
  }

  /// Whether the flag is up now (a snapshot).
  [[nodiscard]] bool is_set() const noexcept {
    // Acquire: a caller that sees the flag also sees what the setter wrote.
    return (state_.load(std::memory_order_acquire) & set_bit) != 0;
  }

  /// Blocks until the event fires (see the modes above).
  void wait() noexcept { (void)wait_impl(nullptr); }

  /// Blocks until the event fires or `timeout` has passed (steady_clock);
  /// returns true if it fired. Never returns false early.
  template <class Rep, class Period>
  [[nodiscard]] bool wait_for(const std::chrono::duration<Rep, Period>& timeout) noexcept {
    const timespec ts = detail::to_timespec(detail::deadline_after(timeout));
    return wait_impl(&ts);
  }

  /// Blocks until the event fires or `deadline` passes; a deadline on another
  /// clock is converted to steady_clock once (clock jumps do not move it).
  template <class Clock, class Duration>
  [[nodiscard]] bool wait_until(const std::chrono::time_point<Clock, Duration>& deadline) noexcept {
    const timespec ts = detail::to_timespec(detail::to_steady(deadline));
    return wait_impl(&ts);
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
      if (state_.compare_exchange_weak(now, now & ~set_bit, std::memory_order_acquire, std::memory_order_relaxed))
        return true;
    }
    return false;
  }

  bool wait_impl(const timespec* deadline) noexcept {
    // Acquire: see fired(); fast path with no announcement when already set.
    const std::uint32_t start = state_.load(std::memory_order_acquire);
    std::uint32_t now = start;
    if (fired(start, now)) return true;
    // seq_cst: the waiter's half of the Dekker pair with set().
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    bool result = false;
    for (;;) {
      now = state_.load(std::memory_order_seq_cst);
      if (fired(start, now)) {
        result = true;
        break;
      }
      if (detail::futex_wait(&state_, now, deadline) == detail::wait_result::timed_out) {
        now = state_.load(std::memory_order_acquire);
        result = fired(start, now);  // a set() exactly at the deadline still counts
        break;
      }
    }
    // Relaxed: a hint for set(); a stale value only costs a wake call.
    waiters_.fetch_sub(1, std::memory_order_relaxed);
    return result;
  }

  std::atomic<std::uint32_t> state_;       // futex word: generation << 1 | set_bit
  std::atomic<std::uint32_t> waiters_{0};  // processes about to sleep or sleeping
  reset_mode mode_;
};

static_assert(sizeof(event) == 12, "procsync::event is three 32-bit words");

}  // namespace procsync
