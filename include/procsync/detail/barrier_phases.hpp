// procsync/detail/barrier_phases.hpp — a barrier's phases: the futex word its
// parties sleep on, the counts of the current phase, and how each of the last
// 64 phases ended, so that a waiter woken late still learns whether its own
// phase completed or broke. basic_barrier (barrier.hpp) decides when a phase
// ends; this class keeps the books, under the barrier's lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ctime>

#include "barrier_parts.hpp"
#include "waiting_floor.hpp"

namespace procsync::detail {

/// The word is generation << 1 | broken_bit. A phase ends when the generation
/// moves on (it completed, or reset() broke it for its waiters) or when the
/// broken bit is set (broken until reset()); the history's bit for that
/// generation says which. Every change is made under the barrier's lock, and
/// the word's with a seq_cst store: release for the waiters, and the waiting
/// floor's Dekker pair with wake_all(). The atomics may be read without the
/// lock (racy snapshots). Same bytes as the barrier's fields they replaced,
/// the barrier's default timeout included (it sits among them).
class barrier_phases {
 public:
  static constexpr std::uint32_t broken_bit = 1;
  static constexpr std::uint32_t generation_step = 2;
  static constexpr std::size_t watched_parties = 64;

  /// Phase 0 expecting `expected` parties; `default_timeout_ns` < 0: none.
  constexpr explicit barrier_phases(std::uint32_t expected, std::int64_t default_timeout_ns = -1) noexcept
      : expected_(expected), default_timeout_ns_(default_timeout_ns) {}
  barrier_phases(const barrier_phases&) = delete;
  barrier_phases& operator=(const barrier_phases&) = delete;

  std::uint32_t word(std::memory_order order) const noexcept { return phase_.value.load(order); }
  bool broken() const noexcept { return (word(std::memory_order_acquire) & broken_bit) != 0; }
  std::uint32_t sleepers() const noexcept { return phase_.sleepers.load(std::memory_order_relaxed); }
  std::uint32_t expected() const noexcept { return expected_.load(std::memory_order_relaxed); }
  std::uint32_t arrived() const noexcept { return arrived_.load(std::memory_order_relaxed); }
  std::int64_t default_timeout_ns() const noexcept { return default_timeout_ns_; }
  const watched_waiters<watched_parties>& watched() const noexcept { return watched_; }

  // Arrivals in the current phase (lock held).
  void set_arrived(std::uint32_t n) noexcept { arrived_.store(n, std::memory_order_relaxed); }
  void add_drop() noexcept { ++drops_; }     // an arrive_and_drop(): applied when the phase ends
  void cancel_drop() noexcept { --drops_; }  // ... unless that call failed
  /// Records the caller as a watched waiting party; returns its slot, or -1 (not watched).
  std::int32_t watch_caller() noexcept { return watched_.watch_caller(); }

  /// Starts phase `next` (lock held): drops take effect, nobody has arrived.
  void start_phase_locked(std::uint32_t next) noexcept {
    expected_.store(expected_.load(std::memory_order_relaxed) - drops_, std::memory_order_relaxed);
    drops_ = 0;
    watched_.count = 0;
    arrived_.store(0, std::memory_order_relaxed);
    // seq_cst: release for the waiters, and the floor's Dekker pair (wake_all).
    phase_.value.store(next, std::memory_order_seq_cst);
  }

  /// Ends phase `p` (lock held): completed, or broken for its waiters with
  /// the barrier usable again (reset).
  void end_phase_locked(std::uint32_t p, bool broke) noexcept {
    // Relaxed: published by the seq_cst phase store, which waiters read with
    // acquire before they look at the history.
    if (broke)
      history_.fetch_or(history_bit(p), std::memory_order_relaxed);
    else
      history_.fetch_and(~history_bit(p), std::memory_order_relaxed);
    start_phase_locked((p & ~broken_bit) + generation_step);
  }

  /// Breaks the current phase (lock held); no effect if already broken.
  void break_locked(barrier_break reason) noexcept {
    const std::uint32_t p = phase_.value.load(std::memory_order_relaxed);
    if (p & broken_bit) return;
    reason_.store(static_cast<std::uint32_t>(reason), std::memory_order_relaxed);
    history_.fetch_or(history_bit(p), std::memory_order_relaxed);  // published by the store below
    arrived_.store(0, std::memory_order_relaxed);
    watched_.count = 0;
    phase_.value.store(p | broken_bit, std::memory_order_seq_cst);  // seq_cst: as in start_phase_locked
  }

  /// reset() (lock held): a broken barrier gets a new, empty phase; a phase
  /// with arrivals ends broken for them; an empty phase stays as it is.
  void reset_locked() noexcept {
    const std::uint32_t p = phase_.value.load(std::memory_order_relaxed);
    if (p & broken_bit) {
      start_phase_locked((p & ~broken_bit) + generation_step);
    } else if (arrived_.load(std::memory_order_relaxed) != 0) {
      reason_.store(static_cast<std::uint32_t>(barrier_break::reset), std::memory_order_relaxed);
      end_phase_locked(p, true);
    }
  }

  /// The outcome for a waiter of phase `p` now that the word reads `now`.
  /// Returns true if its phase completed (false: not ended); throws if it broke.
  bool outcome(std::uint32_t p, std::uint32_t now) const {
    if (now == p) return false;
    if ((now >> 1) == (p >> 1)) throw_broken("while waiting");  // same phase, broken bit set
    // Our phase ended; the history says how (published by the acquire load of `now`).
    if (history_.load(std::memory_order_relaxed) & history_bit(p)) throw_broken("while waiting");
    return true;
  }

  /// Sleeps until phase `p` ends (true if it completed; throws if it broke)
  /// or `until` passes (false). `between_slices` runs after each re-arm slice.
  template <class Step>
  bool wait_for_end(std::uint32_t p, const timespec* until, Step&& between_slices) {
    return wait_until_done(
        phase_, until, [&](std::uint32_t now) { return now != p && outcome(p, now); }, between_slices);
  }

  void wake_all() noexcept {
    // Every phase change is a seq_cst store: the floor's Dekker pair.
    detail::wake_all(phase_);
  }

  /// errc::barrier_broken, saying `when` and why the barrier last broke.
  [[noreturn, gnu::cold]] void throw_broken(const char* when) const {
    throw_barrier_broken(when, static_cast<barrier_break>(reason_.load(std::memory_order_relaxed)));
  }

 private:
  static std::uint64_t history_bit(std::uint32_t phase) noexcept { return std::uint64_t{1} << ((phase >> 1) & 63); }

  wait_word phase_{};                         // futex word: generation << 1 | broken_bit; sleepers: waiting parties
  std::atomic<std::uint32_t> expected_;       // parties the current phase expects
  std::atomic<std::uint32_t> arrived_{0};     // arrivals in the current phase
  std::atomic<std::uint32_t> reason_{0};      // why it last broke: a barrier_break (for messages)
  std::uint32_t drops_ = 0;                   // arrive_and_drop()s in this phase, applied when it ends
  std::int64_t default_timeout_ns_ = -1;      // the barrier's: < 0, no default timeout
  std::atomic<std::uint64_t> history_{0};     // bit (generation % 64): that phase ended broken
  watched_waiters<watched_parties> watched_;  // the first waiting parties of this phase
};

static_assert(sizeof(barrier_phases) == 1072);

}  // namespace procsync::detail
