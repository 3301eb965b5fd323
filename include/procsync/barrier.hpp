// procsync/barrier.hpp — a reusable barrier shared between processes (Python's
// multiprocessing.Barrier, plus std::barrier's arrive_and_wait).
//
// procsync::barrier(parties [, default timeout]) lets `parties` processes (or
// threads) meet: each calls wait(); the first parties-1 callers block until the
// last one arrives, then all return, each with a distinct index 0..parties-1
// (its arrival order in this cycle). The barrier then starts the next cycle at
// once; it is reusable any number of times.
//
// Broken state (Python's BrokenBarrierError is procsync::error with
// errc::barrier_broken). The barrier breaks when
//  - abort() is called,
//  - a wait times out (its own timeout, or the default given at construction),
//  - reset() is called while parties wait (they get the error; the barrier is
//    then usable again at once),
//  - a party dies: while it waits (SIGKILL included; detected by the waiting
//    party that arrived just after it, or by the first one for the last
//    arrival, each checking one neighbour after every re-arm slice of the
//    waiting floor, liveness_poll_interval = 50 ms: so within ~50 ms plus one
//    /proc read), or while it is inside one of the
//    barrier's calls (detected at once through the internal robust lock).
// Every party waiting when it breaks, and every later wait(), throws
// errc::barrier_broken until reset(). A party that dies *before* arriving
// cannot be told from a late one: use a timeout for that. A party that dies
// after the last party arrived has completed the cycle (no break).
//
// Cost: ~1.1 KiB (a robust lock, a futex word, and one process identity per
// possible waiting party; parties ≤ max_parties = 64). The last arrival makes a
// futex wake only when some party sleeps. Waiting parties wake every 50 ms to
// check their neighbour's liveness.
//
// Requirements: place it in memory shared by its users (any mapping address);
// no destruction needed. Processes must share one PID namespace.
// Limit: a waiter that stays descheduled while 64 further cycles end cannot
// tell whether its own cycle completed or broke (not a practical concern).
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
#include "detail/futex.hpp"
#include "detail/process_identity.hpp"
#include "detail/robust_lock.hpp"
#include "detail/waiting_floor.hpp"
#include "error.hpp"
#include "mutex.hpp"

namespace procsync {

class barrier {
 public:
  static constexpr const char* kind_name = "procsync::barrier";
  static constexpr std::uint32_t layout_version = 1;

  /// The most parties a barrier takes (the waiting parties' identities are kept
  /// in fixed slots).
  static constexpr std::size_t max_parties = 64;

  /// How often a waiting party checks that its neighbour is still alive.
  static constexpr std::chrono::milliseconds liveness_poll_interval{detail::rearm_slice_ns / 1'000'000};

  /// A barrier for `parties` parties whose waits have no default timeout.
  /// Throws errc::invalid_argument unless 1 <= parties <= max_parties.
  explicit barrier(std::size_t parties) : parties_(checked_parties(parties)) {}

  /// A barrier whose wait() without argument times out after `default_timeout`.
  template <class Rep, class Period>
  barrier(std::size_t parties, const std::chrono::duration<Rep, Period>& default_timeout)
      : parties_(checked_parties(parties)) {
    // Saturating: hours::max() means "no timeout", not an overflow into the past.
    default_timeout_ns_ = detail::saturating_nanoseconds(default_timeout).count();
  }

  barrier(const barrier&) = delete;
  barrier& operator=(const barrier&) = delete;

  /// The number of parties required to pass the barrier.
  [[nodiscard]] std::size_t parties() const noexcept { return parties_; }

  /// Parties waiting in the current cycle (a snapshot; 0 while broken).
  [[nodiscard]] std::size_t n_waiting() const noexcept {
    if (broken()) return 0;
    return arrived_.load(std::memory_order_relaxed);
  }

  /// Whether the barrier is broken (until reset()).
  [[nodiscard]] bool broken() const noexcept { return (phase_.value.load(std::memory_order_acquire) & broken_bit) != 0; }
  /// Threads asleep (or about to sleep) on it, waiting for the cycle to complete: a racy snapshot for inspectors.
  [[nodiscard]] std::uint32_t sleepers() const noexcept { return phase_.sleepers.load(std::memory_order_relaxed); }

  /// Arrives and blocks until all parties have arrived (or the default timeout
  /// passes); returns this party's index, distinct in 0..parties()-1 per cycle.
  /// Throws errc::barrier_broken if the barrier is or becomes broken (a timeout
  /// breaks it).
  std::size_t wait() {
    if (default_timeout_ns_ < 0) return wait_impl(nullptr);
    const auto deadline = detail::deadline_after(std::chrono::nanoseconds(default_timeout_ns_));
    return wait_impl(&deadline);
  }

  /// As wait(), with `timeout` instead of the default.
  template <class Rep, class Period>
  std::size_t wait(const std::chrono::duration<Rep, Period>& timeout) {
    const auto deadline = detail::deadline_after(timeout);
    return wait_impl(&deadline);
  }

  /// std::barrier's spelling of wait() (the index is dropped; same errors).
  void arrive_and_wait() { (void)wait(); }

  /// Breaks the barrier: every waiting party and every later wait() throws
  /// errc::barrier_broken until reset(). No effect if already broken.
  void abort() {
    {
      guard g(*this);
      break_locked(reason_aborted);
    }
    wake_all();
  }

  /// Returns the barrier to its initial, unbroken state. Parties waiting in
  /// the current cycle throw errc::barrier_broken.
  void reset() {
    {
      guard g(*this);
      const std::uint32_t p = phase_.value.load(std::memory_order_relaxed);
      if (p & broken_bit) {
        arrived_.store(0, std::memory_order_relaxed);
        // Release: a new cycle starts; its waiters see its state.
        phase_.value.store((p & ~broken_bit) + generation_step, std::memory_order_seq_cst);
      } else if (arrived_.load(std::memory_order_relaxed) != 0) {
        reason_.store(reason_reset, std::memory_order_relaxed);
        end_cycle_locked(p, true);
      }
    }
    wake_all();
  }

 private:
  static constexpr std::uint32_t broken_bit = 1;
  static constexpr std::uint32_t generation_step = 2;
  static constexpr std::uint32_t reason_aborted = 1, reason_timeout = 2, reason_party_died = 3, reason_reset = 4;

  static std::uint32_t checked_parties(std::size_t parties) {
    if (parties == 0 || parties > max_parties)
      detail::throw_error(errc::invalid_argument, "procsync::barrier: expected 1 <= parties <= " +
                                                      std::to_string(max_parties) + ", got " +
                                                      std::to_string(parties));
    return static_cast<std::uint32_t>(parties);
  }

  /// Holds the internal robust lock. If a party died holding it, its call may
  /// be half done: the barrier is broken (a party died), then made consistent.
  struct guard {
    explicit guard(barrier& b) : self(b) {
      if (self.lock_.lock_robust() == lock_status::owner_died) {
        self.break_locked(reason_party_died);
        self.lock_.consistent();
        died = true;
      }
    }
    ~guard() {
      self.lock_.unlock();
      if (died) self.wake_all();
    }
    guard(const guard&) = delete;
    guard& operator=(const guard&) = delete;
    barrier& self;
    bool died = false;
  };

  static std::uint64_t history_bit(std::uint32_t phase) noexcept { return std::uint64_t{1} << ((phase >> 1) & 63); }

  /// Ends the cycle of phase `p` (lock held): completed, or broken for its
  /// waiters with the barrier usable again (reset).
  void end_cycle_locked(std::uint32_t p, bool broke) noexcept {
    // Relaxed: published by the seq_cst phase store below, which waiters read
    // with acquire before they look at the history.
    if (broke)
      history_.fetch_or(history_bit(p), std::memory_order_relaxed);
    else
      history_.fetch_and(~history_bit(p), std::memory_order_relaxed);
    arrived_.store(0, std::memory_order_relaxed);
    // seq_cst: release for the waiters, and the floor's Dekker pair (wake_all).
    phase_.value.store((p & ~broken_bit) + generation_step, std::memory_order_seq_cst);
  }

  /// Breaks the current cycle (lock held); no effect if already broken.
  void break_locked(std::uint32_t reason) noexcept {
    const std::uint32_t p = phase_.value.load(std::memory_order_relaxed);
    if (p & broken_bit) return;
    reason_.store(reason, std::memory_order_relaxed);
    history_.fetch_or(history_bit(p), std::memory_order_relaxed);  // published by the store below
    arrived_.store(0, std::memory_order_relaxed);
    phase_.value.store(p | broken_bit, std::memory_order_seq_cst);  // seq_cst: as in end_cycle_locked
  }

  void wake_all() noexcept {
    // Every phase change is a seq_cst store: the floor's Dekker pair.
    detail::wake_all(phase_);
  }

  [[noreturn]] void throw_broken(const char* when) const {
    const char* why = "";
    switch (reason_.load(std::memory_order_relaxed)) {
      case reason_aborted: why = "it was aborted"; break;
      case reason_timeout: why = "a wait timed out"; break;
      case reason_party_died: why = "a party died"; break;
      case reason_reset: why = "it was reset while parties waited"; break;
      default: why = "unknown reason"; break;
    }
    detail::throw_error(errc::barrier_broken, std::string("procsync::barrier::wait: ") + when +
                                                  ": the barrier is broken (" + why +
                                                  "); expected an unbroken barrier, call reset() to reuse it");
  }

  /// The outcome for a waiter of phase `p` now that the word reads `now`.
  /// Returns true if its cycle completed; throws if it broke.
  bool outcome(std::uint32_t p, std::uint32_t now) const {
    if (now == p) return false;
    if ((now >> 1) == (p >> 1)) throw_broken("while waiting");  // same cycle, broken bit set
    // Our cycle ended; the history says how (published by the acquire load of `now`).
    if (history_.load(std::memory_order_relaxed) & history_bit(p)) throw_broken("while waiting");
    return true;
  }

  std::size_t wait_impl(const detail::steady::time_point* deadline) {
    std::uint32_t p = 0;
    std::uint32_t index = 0;
    bool last = false;
    bool dead_party = false;
    {
      guard g(*this);
      p = phase_.value.load(std::memory_order_relaxed);
      if (p & broken_bit) throw_broken("on arrival");
      index = arrived_.load(std::memory_order_relaxed);
      if (index + 1 == parties_ && !waiters_alive_locked(index)) {
        break_locked(reason_party_died);
        dead_party = true;
      } else if (index + 1 == parties_) {
        end_cycle_locked(p, false);
        last = true;
      } else {
        waiting_[index] = detail::current_process_identity();
        arrived_.store(index + 1, std::memory_order_relaxed);
      }
    }
    if (dead_party) {
      wake_all();
      throw_broken("on arrival");
    }
    if (last) {
      wake_all();
      return index;
    }
    timespec storage{};
    const timespec* until = deadline ? detail::futex_deadline(*deadline, storage) : nullptr;
    // Between slices, each waiting party checks one neighbour's liveness.
    const bool ended = detail::wait_until_done(
        phase_, until, [&](std::uint32_t now) { return now != p && outcome(p, now); },
        [&] { check_neighbour(p, index); });
    if (ended) return index;
    {
      guard g(*this);
      if (phase_.value.load(std::memory_order_relaxed) == p) break_locked(reason_timeout);
    }
    wake_all();
    if (outcome(p, phase_.value.load(std::memory_order_acquire))) return index;  // completed just in time
    throw_broken("timed out");
  }

  /// Whether all `waiting` parties of this cycle still live (lock held). The
  /// last arrival checks before it completes a cycle: a party killed while
  /// waiting must break the barrier, not be counted as arrived, however quickly
  /// the others come (the neighbours' polling alone has a window of one
  /// interval). Costs one /proc read per waiting party, once per cycle.
  bool waiters_alive_locked(std::uint32_t waiting) const noexcept {
    for (std::uint32_t i = 0; i < waiting; ++i)
      if (!detail::process_alive(waiting_[i])) return false;
    return true;
  }

  /// Breaks the barrier if the party that arrived just before us (the last
  /// arrival, for the first) died while waiting in cycle `p`.
  void check_neighbour(std::uint32_t p, std::uint32_t index) {
    detail::process_identity who{};
    std::uint32_t slot = 0;
    {
      guard g(*this);
      if (phase_.value.load(std::memory_order_relaxed) != p) return;
      const std::uint32_t arrived = arrived_.load(std::memory_order_relaxed);
      if (arrived < 2) return;
      slot = index == 0 ? arrived - 1 : index - 1;
      who = waiting_[slot];
    }
    if (detail::process_alive(who)) return;  // /proc read outside the lock
    {
      guard g(*this);
      if (phase_.value.load(std::memory_order_relaxed) == p && slot < arrived_.load(std::memory_order_relaxed) &&
          waiting_[slot] == who)
        break_locked(reason_party_died);
    }
    wake_all();
  }

  procsync::mutex lock_;                       // robust; guards everything but the atomics' racy reads
  detail::wait_word phase_{};                  // futex word: generation << 1 | broken_bit; sleepers: waiting parties
  std::uint32_t parties_;
  std::atomic<std::uint32_t> arrived_{0};      // parties waiting in this cycle
  std::atomic<std::uint32_t> reason_{0};       // why it last broke (for messages)
  std::uint32_t parties_padding_ [[maybe_unused]] = 0;
  std::int64_t default_timeout_ns_ = -1;       // < 0: wait() has no timeout
  std::atomic<std::uint64_t> history_{0};      // bit (generation % 64): that cycle ended broken
  detail::process_identity waiting_[max_parties] = {};  // who waits, by arrival index
};

}  // namespace procsync
