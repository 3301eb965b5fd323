// procsync/counting_semaphore.hpp — a bounded counting semaphore shared between
// processes (the plain one; undo_semaphore.hpp adds SysV-style undo).
//
// procsync::counting_semaphore<LeastMaxValue> has the shape of C++20's
// std::counting_semaphore (acquire, try_acquire, try_acquire_for,
// try_acquire_until, release(n), max()) plus value(), and lives in shared memory
// (see anonymous.hpp and named_segment.hpp). It is *bounded*, as Python's
// BoundedSemaphore: max() is exactly LeastMaxValue, and a release that would
// raise the count above it throws procsync::error with errc::semaphore_overflow
// instead of wrapping. binary_semaphore is counting_semaphore<1>.
//
// Cost: 8 bytes (a 32-bit futex word holding the count, and a count of
// sleepers). acquire and release without contention are one atomic
// instruction each and make no system call; release makes a futex wake only
// when some process sleeps in acquire.
//
// Signals: try_release(n) is noexcept and async-signal-safe (atomics and one
// futex wake, no locks, no allocation): a signal handler may post a semaphore
// that another process waits on. It returns false where release(n) would throw.
//
// A process that dies holding permits keeps them taken, as with POSIX sem_t
// (undo_semaphore gives them back). Waits go through the waiting floor: a
// permit whose receiver died is taken by another waiter within one re-arm
// slice. Requirements: place it in memory shared by its users (any mapping
// address); it needs no destruction. A 32-bit count: LeastMaxValue ≤ 2^31 - 1.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <atomic>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>

#include "detail/clock.hpp"
#include "detail/waiting_floor.hpp"
#include "error.hpp"

namespace procsync {

namespace detail {
/// The largest count a 32-bit futex word holds as a non-negative int.
inline constexpr std::ptrdiff_t semaphore_value_max = 0x7fffffff;

/// What both semaphores share (the plain one below, the undo one in
/// undo_semaphore.hpp): the timed acquires and release(). Sem defines, and
/// makes this a friend of, acquire_until(const steady::time_point*) (nullptr:
/// forever) and add(update) (returns 0, or -(count + 1) on overflow).
template <class Sem>
class semaphore_api {
 public:
  /// Blocks until it takes a permit or `timeout` has passed (steady_clock);
  /// returns whether it took one. Never returns false early.
  template <class Rep, class Period>
  [[nodiscard]] bool try_acquire_for(const std::chrono::duration<Rep, Period>& timeout) {
    const auto deadline = deadline_after(timeout);
    return self().acquire_until(&deadline);
  }

  /// Blocks until it takes a permit or `deadline` passes. A deadline on
  /// another clock is converted to steady_clock once (clock jumps do not move it).
  template <class Clock, class Duration>
  [[nodiscard]] bool try_acquire_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    const auto steady_deadline = to_steady(deadline);
    return self().acquire_until(&steady_deadline);
  }

  /// Adds `update` permits and wakes as many blocked acquirers.
  /// Throws errc::invalid_argument if update < 0, errc::semaphore_overflow
  /// ("released too many times") if the count would exceed max(); the count is
  /// then unchanged. No system call unless someone sleeps in acquire.
  void release(std::ptrdiff_t update = 1) {
    if (update < 0) throw_negative_update(update);
    if (update == 0) return;
    const std::int64_t result = self().add(update);
    if (result < 0) throw_overflow(update, result);
  }

 protected:
  semaphore_api() = default;

 private:
  Sem& self() noexcept { return static_cast<Sem&>(*this); }

  [[noreturn, gnu::cold, gnu::noinline]] static void throw_negative_update(std::ptrdiff_t update) {
    throw_error(errc::invalid_argument,
                "procsync::counting_semaphore::release: expected update >= 0, got " + std::to_string(update));
  }

  /// `result` is add()'s: -(count + 1).
  [[noreturn, gnu::cold, gnu::noinline]] static void throw_overflow(std::ptrdiff_t update, std::int64_t result) {
    throw_error(errc::semaphore_overflow, "procsync::counting_semaphore::release: released too many times: release(" +
                                              std::to_string(update) + ") with " + std::to_string(-result - 1) +
                                              " permits available would exceed max() = " + std::to_string(Sem::max()));
  }
};

}  // namespace detail

/// counting_semaphore<Max> (UndoSlots == 0) is the plain semaphore defined
/// here; counting_semaphore<Max, Slots> with Slots > 0 is the undo semaphore
/// (undo_semaphore.hpp), built over the plain one.
template <std::ptrdiff_t LeastMaxValue = detail::semaphore_value_max, std::size_t UndoSlots = 0>
class counting_semaphore;

template <std::ptrdiff_t LeastMaxValue>
class counting_semaphore<LeastMaxValue, 0> : public detail::semaphore_api<counting_semaphore<LeastMaxValue, 0>> {
  static_assert(LeastMaxValue >= 0 && LeastMaxValue <= detail::semaphore_value_max,
                "procsync::counting_semaphore counts in a 32-bit futex word: 0 <= LeastMaxValue <= 2^31-1");

 public:
  /// Layout identity checked when opened in a named segment: the kind spells
  /// out max(), so a counting_semaphore<4> is never opened as a
  /// counting_semaphore<8>.
  static std::string kind_name() { return "procsync::counting_semaphore<" + std::to_string(LeastMaxValue) + ">"; }
  static constexpr std::uint32_t layout_version = 1;

  /// How many processes may hold permits at once in undo mode: none.
  static constexpr std::size_t undo_slots = 0;

  /// The largest count: exactly LeastMaxValue (release beyond it throws).
  static constexpr std::ptrdiff_t max() noexcept { return LeastMaxValue; }

  /// A semaphore holding `desired` permits.
  /// Throws errc::invalid_argument unless 0 <= desired <= max(). constexpr,
  /// as std::counting_semaphore's: `constinit procsync::binary_semaphore s{1};`
  /// (a desired value out of range is then a compile-time error).
  constexpr explicit counting_semaphore(std::ptrdiff_t desired) : count_(checked_initial(desired)) {}

  counting_semaphore(const counting_semaphore&) = delete;
  counting_semaphore& operator=(const counting_semaphore&) = delete;

  /// Whether this semaphore gives back a dead holder's permits: never.
  [[nodiscard]] bool undo_enabled() const noexcept { return false; }

  /// Permits available now: a snapshot, for diagnostics and tests.
  [[nodiscard]] std::ptrdiff_t value() const noexcept { return count_.value.load(std::memory_order_relaxed); }
  /// Threads asleep (or about to sleep) on it, waiting for a permit: a racy snapshot for inspectors.
  [[nodiscard]] std::uint32_t sleepers() const noexcept { return count_.sleepers.load(std::memory_order_relaxed); }

  /// Blocks until it takes one permit.
  void acquire() { (void)acquire_until(nullptr); }

  /// Takes one permit if one is available now; never blocks.
  [[nodiscard]] bool try_acquire() noexcept { return take_one(); }

  // try_acquire_for, try_acquire_until, release: from detail::semaphore_api.

  /// release(update) that reports failure instead of throwing: false if update
  /// is negative or the count would exceed max() (count unchanged).
  /// Async-signal-safe.
  [[nodiscard]] bool try_release(std::ptrdiff_t update = 1) noexcept {
    if (update < 0) return false;
    if (update == 0) return true;
    return add(update) >= 0;
  }

  /// Gives back the permits of holders that died: never any (see undo_semaphore).
  std::ptrdiff_t reclaim_dead_holders() noexcept { return 0; }

  /// Permits the calling process holds by its record: none are recorded.
  [[nodiscard]] std::ptrdiff_t held_by_current_process() const noexcept { return 0; }

 private:
  template <std::ptrdiff_t, std::size_t>
  friend class counting_semaphore;  // the undo semaphore is built over this one
  friend class detail::semaphore_api<counting_semaphore>;

  static constexpr std::uint32_t checked_initial(std::ptrdiff_t desired) {
    if (desired < 0 || desired > max())
      detail::throw_error(errc::invalid_argument, "procsync::counting_semaphore: expected 0 <= desired <= " +
                                                      std::to_string(max()) + ", got " + std::to_string(desired));
    return static_cast<std::uint32_t>(desired);
  }

  bool take_one() noexcept {
    std::uint32_t c = count_.value.load(std::memory_order_relaxed);
    while (c != 0) {
      // Acquire: the permit's previous releaser's writes become visible to us.
      if (count_.value.compare_exchange_weak(c, c - 1, std::memory_order_acquire, std::memory_order_relaxed))
        return true;
    }
    return false;
  }

  void wake(std::uint32_t n) noexcept {
    // The caller raised the count with a seq_cst change: the floor's Dekker pair.
    detail::wake(count_, n > INT_MAX ? INT_MAX : static_cast<int>(n));
  }

  /// Adds `update` permits; returns 0 on success, or -(count + 1) on
  /// overflow. Lock-free and async-signal-safe.
  std::int64_t add(std::ptrdiff_t update) noexcept {
    std::uint32_t c = count_.value.load(std::memory_order_relaxed);
    do {
      if (update > max() - static_cast<std::ptrdiff_t>(c)) return -static_cast<std::int64_t>(c) - 1;
      // seq_cst: release for the acquirer of the permit, and the first half of
      // the Dekker pair with sleepers (see wake()).
    } while (!count_.value.compare_exchange_weak(c, c + static_cast<std::uint32_t>(update), std::memory_order_seq_cst,
                                                 std::memory_order_relaxed));
    wake(static_cast<std::uint32_t>(update));
    return 0;
  }

  /// Blocks for a permit until `deadline` (nullptr: forever).
  bool acquire_until(const detail::steady::time_point* deadline) {
    timespec storage{};
    const timespec* until = deadline ? detail::futex_deadline(*deadline, storage) : nullptr;
    // A permit released at the deadline is still taken (the floor asks once more).
    return detail::wait_until_done(count_, until, [this](std::uint32_t c) { return c != 0 && take_one(); });
  }

  detail::wait_word count_;  // futex word: permits available; sleepers: blocked acquirers
};

/// A semaphore with max() == 1.
using binary_semaphore = counting_semaphore<1>;

static_assert(sizeof(counting_semaphore<>) == 8, "the plain semaphore is two 32-bit words (sem_t is 32 bytes)");

}  // namespace procsync
