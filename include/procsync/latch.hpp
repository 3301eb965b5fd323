// procsync/latch.hpp — a single-use countdown latch shared between processes
// (C++20's std::latch, plus timed waits and a way out when a party is lost).
//
// procsync::latch(expected) holds a counter. count_down(n) lowers it; wait()
// blocks until it reaches zero; try_wait() looks without blocking;
// arrive_and_wait(n) does both. Once zero it stays zero: the latch opens once
// and for good (use procsync::barrier for a reusable meeting point).
//
// Dead parties. A latch cannot know who is still going to count down: a
// process that dies (SIGKILL included) before its count_down() simply never
// counts, and the latch stays closed. Two ways out, both tested:
//  - timed waits, wait_for() / wait_until(), return false at the deadline
//    (never early) and change nothing;
//  - abort(), called by whoever learns of the death (typically the parent that
//    joins its workers and sees one killed: procsync::process::exitcode() < 0),
//    breaks the latch: every waiter and every later wait(), arrive_and_wait()
//    and count_down() throws procsync::error with errc::barrier_broken (a latch
//    is a single-use barrier). abort() on an open latch changes nothing.
// A count_down() is one atomic instruction: a process killed during it has
// either counted or not, never half. A waiter killed while waiting breaks
// nothing (it only costs later count_down()s to zero one futex call).
//
// Cost: 8 bytes (a futex word: the counter and a broken bit, and a count of
// sleepers). count_down() and try_wait() are one atomic instruction; the
// count_down() that reaches zero makes one futex wake only when a waiter
// sleeps. Waits go through the waiting floor (detail/waiting_floor.hpp):
// a waiter that is woken re-checks, and a count_down() killed between its
// decrement and its wake call is noticed within one re-arm slice (50 ms).
//
// Requirements: place it in memory shared by its users (any mapping address);
// it needs no destruction. The counter is 31 bits wide: max() is 2^31 - 1.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>

#include "detail/clock.hpp"
#include "detail/waiting_floor.hpp"
#include "error.hpp"

namespace procsync {

class latch {
 public:
  /// Layout identity, checked when the latch is opened in a named segment.
  static constexpr const char* kind_name = "procsync::latch";
  static constexpr std::uint32_t layout_version = 1;

  /// The largest initial count: 2^31 - 1.
  static constexpr std::ptrdiff_t max() noexcept { return count_mask; }

  /// A latch whose counter starts at `expected`. constexpr, as std::latch's
  /// (`constinit procsync::latch l{3};`). Throws errc::invalid_argument
  /// unless 0 <= expected <= max() (a compile-time error in a constant
  /// expression). A latch of 0 is open from the start.
  constexpr explicit latch(std::ptrdiff_t expected) : state_(checked_expected(expected)) {}

  latch(const latch&) = delete;
  latch& operator=(const latch&) = delete;

  /// Lowers the counter by `update` (atomically); if that makes it zero, every
  /// waiter is released. Requires 0 <= update <= the current count (std's
  /// precondition): else throws errc::invalid_argument and counts nothing.
  /// Throws errc::barrier_broken (counting nothing) if the latch was aborted.
  /// No system call unless it reaches zero while a waiter sleeps.
  void count_down(std::ptrdiff_t update = 1) {
    if (update < 0 || update > max())
      detail::throw_error(errc::invalid_argument,
                          "procsync::latch::count_down: expected 0 <= update <= the current count, got " +
                              std::to_string(update));
    const auto n = static_cast<std::uint32_t>(update);
    // Relaxed: the CAS below is what counts.
    std::uint32_t v = state_.value.load(std::memory_order_relaxed);
    do {
      if (v & broken_bit) throw_broken("count_down");
      if (n > v)
        detail::throw_error(errc::invalid_argument, "procsync::latch::count_down: expected update <= the current count " +
                                                        std::to_string(v) + ", got " + std::to_string(update));
      // seq_cst: release for what this party did before counting down (a
      // waiter that sees zero sees it), and the waker's half of the floor's
      // Dekker pair before the wake below.
    } while (!state_.value.compare_exchange_weak(v, v - n, std::memory_order_seq_cst, std::memory_order_relaxed));
    if (v == n && n != 0) detail::wake_all(state_);
  }

  /// True if the counter is zero (the latch is open). Never blocks; false on
  /// an aborted latch that had not opened. When true, everything the parties
  /// did before their count_down() is visible to the caller.
  [[nodiscard]] bool try_wait() const noexcept {
    // Acquire: pairs with the counting-down parties' seq_cst CAS.
    return state_.value.load(std::memory_order_acquire) == 0;
  }

  /// Blocks until the counter is zero. Throws errc::barrier_broken if the
  /// latch is aborted before it opens (see the header for dead parties).
  void wait() const { (void)wait_impl(nullptr); }

  /// Blocks until the counter is zero or `timeout` has passed (steady_clock);
  /// returns whether it opened. Never returns false early; a timeout changes
  /// nothing. Throws errc::barrier_broken as wait() does.
  template <class Rep, class Period>
  [[nodiscard]] bool wait_for(const std::chrono::duration<Rep, Period>& timeout) const {
    return wait_until(detail::deadline_after(timeout));
  }

  /// As wait_for(), until `deadline`; a deadline on another clock is converted
  /// to steady_clock once (clock jumps do not move it).
  template <class Clock, class Duration>
  [[nodiscard]] bool wait_until(const std::chrono::time_point<Clock, Duration>& deadline) const {
    timespec storage{};
    return wait_impl(detail::futex_deadline(detail::to_steady(deadline), storage));
  }

  /// count_down(update), then wait(). Same requirements and errors.
  void arrive_and_wait(std::ptrdiff_t update = 1) {
    count_down(update);
    wait();
  }

  /// Breaks a latch that has not opened: every waiter and every later wait(),
  /// arrive_and_wait() and count_down() throws errc::barrier_broken. For the
  /// process that learns that a party died before counting down. No effect on
  /// an open (or already aborted) latch. Async-signal-safe.
  void abort() noexcept {
    // Relaxed read; the CAS below is seq_cst (the floor's Dekker pair).
    std::uint32_t v = state_.value.load(std::memory_order_relaxed);
    do {
      if (v == 0 || (v & broken_bit)) return;
    } while (!state_.value.compare_exchange_weak(v, v | broken_bit, std::memory_order_seq_cst, std::memory_order_relaxed));
    detail::wake_all(state_);
  }

  /// Whether abort() broke the latch before it opened.
  [[nodiscard]] bool broken() const noexcept { return (state_.value.load(std::memory_order_acquire) & broken_bit) != 0; }

  /// The current count (a snapshot, for diagnostics and tests; the count at
  /// the time of an abort() stays readable).
  [[nodiscard]] std::ptrdiff_t count() const noexcept {
    return static_cast<std::ptrdiff_t>(state_.value.load(std::memory_order_relaxed) & count_mask);
  }

 private:
  static constexpr std::uint32_t broken_bit = 0x80000000u;
  static constexpr std::uint32_t count_mask = 0x7fffffffu;

  static constexpr std::uint32_t checked_expected(std::ptrdiff_t expected) {
    if (expected < 0 || expected > max())
      detail::throw_error(errc::invalid_argument, "procsync::latch: expected 0 <= expected <= " +
                                                      std::to_string(max()) + ", got " + std::to_string(expected));
    return static_cast<std::uint32_t>(expected);
  }

  [[noreturn, gnu::cold, gnu::noinline]] static void throw_broken(const char* what) {
    detail::throw_error(errc::barrier_broken, std::string("procsync::latch::") + what +
                                                  ": the latch was aborted before it opened (a party was lost); "
                                                  "expected a latch that was not aborted");
  }

  bool wait_impl(const timespec* deadline) const {
    return detail::wait_until_done(state_, deadline, [](std::uint32_t v) {
      if (v & broken_bit) throw_broken("wait");
      return v == 0;
    });
  }

  mutable detail::wait_word state_;  // futex word: count | broken_bit; sleepers: waiting threads
};

static_assert(sizeof(latch) == 8);

}  // namespace procsync
