// procsync/detail/notifier.hpp — the notification half of a condition
// variable, written once for condition_variable (procsync::mutex) and
// condition_variable_any (any lock): who waits, what a notify_one or a
// notify_all leaves for them, and the sleep between unlock and relock.
//
// Exactness: each notify_one() leaves one *signal* that exactly one waiter
// registered at the time consumes (never more signals than registered
// waiters); notify_all() bumps a broadcast count that releases every waiter
// registered before it. A signal left by a waiter that timed out or died is
// taken by another waiter (at most one spurious release), within one re-arm
// slice of the waiting floor if nobody wakes it sooner.
//
// Orderings, once for the file: the sequence bump of every notify is seq_cst,
// and a waiter registers (announced_wait) before it unlocks the caller's lock:
// the Dekker pair that makes a notifier either see the waiter or be seen by
// it. The signal and broadcast counters are relaxed: they carry no data (the
// caller's lock orders the protected state) and are published by that bump.
#pragma once

#include <atomic>
#include <climits>
#include <cstdint>
#include <stop_token>

#include "futex.hpp"
#include "waiting_floor.hpp"

namespace procsync::detail {

class notifier {
 public:
  constexpr notifier() noexcept = default;
  notifier(const notifier&) = delete;
  notifier& operator=(const notifier&) = delete;

  /// Threads registered as waiting now: a racy snapshot for inspectors.
  [[nodiscard]] std::uint32_t sleepers() const noexcept { return sequence_.sleepers.load(std::memory_order_relaxed); }

  /// Releases one registered waiter, if any. No system call when nobody
  /// waits. Async-signal-safe.
  void notify_one() noexcept {
    const std::uint32_t waiting = sequence_.sleepers.load(std::memory_order_seq_cst);
    if (waiting == 0) return;
    std::uint32_t s = signals_.load(std::memory_order_relaxed);
    while (s < waiting && !signals_.compare_exchange_weak(s, s + 1, std::memory_order_relaxed)) {
    }
    sequence_.value.fetch_add(1, std::memory_order_seq_cst);
    futex_wake(&sequence_.value, 1);
  }

  /// Releases every registered waiter. No system call when nobody waits.
  /// Async-signal-safe.
  void notify_all() noexcept {
    if (sequence_.sleepers.load(std::memory_order_seq_cst) == 0) return;
    broadcasts_.fetch_add(1, std::memory_order_relaxed);
    sequence_.value.fetch_add(1, std::memory_order_seq_cst);
    futex_wake_all(&sequence_.value);
  }

  /// Wakes every sleeper without releasing anyone: each looks at its own
  /// reason to return (a stop request) and sleeps on if it has none.
  void wake_to_look() noexcept { ring(sequence_, INT_MAX); }

  /// Registers the caller, runs `unlock` (which releases the caller's lock and
  /// must not throw), then sleeps until a notification for it, a stop request
  /// on `stoken` (if given), `deadline` (if given), or — with
  /// `recheck_each_slice` — the end of a re-arm slice, so that a predicate
  /// wait re-evaluates its predicate under the lock (a notifier may have died
  /// between its change and its notify). Returns whether it was notified (or
  /// stopped). The caller relocks.
  template <class Unlock>
  bool wait(Unlock&& unlock, const timespec* deadline, const std::stop_token* stoken, bool recheck_each_slice) {
    // Registered before the unlock, so a notifier that takes the lock after
    // us (or observes our unlock) sees us and does not skip its wake call.
    announced_wait registration(sequence_);
    // Read under the caller's lock, after registering: any notify that can
    // count us bumps the sequence after this read.
    const std::uint32_t start = sequence_.value.load(std::memory_order_relaxed);
    const std::uint32_t start_broadcasts = broadcasts_.load(std::memory_order_relaxed);
    unlock();
    return registration.until(
        deadline,
        [&](std::uint32_t now) noexcept {
          if (stoken != nullptr && stoken->stop_requested()) return true;
          if (now == start) return false;  // nothing since we registered
          if (broadcasts_.load(std::memory_order_relaxed) != start_broadcasts) return true;
          return take_signal();
        },
        [recheck_each_slice]() noexcept { return recheck_each_slice; });
  }

 private:
  bool take_signal() noexcept {
    std::uint32_t s = signals_.load(std::memory_order_relaxed);
    while (s != 0)
      if (signals_.compare_exchange_weak(s, s - 1, std::memory_order_relaxed)) return true;
    return false;
  }

  wait_word sequence_{};                       // futex word: bumped by every notify; sleepers: registered waiters
  std::atomic<std::uint32_t> signals_{0};     // notify_one()s not yet consumed by a waiter
  std::atomic<std::uint32_t> broadcasts_{0};  // notify_all()s so far
};

static_assert(sizeof(notifier) == 16);

}  // namespace procsync::detail
