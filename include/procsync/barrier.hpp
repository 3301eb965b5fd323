// procsync/barrier.hpp — a reusable barrier shared between processes: the
// whole of C++20's std::barrier (arrive() -> token, wait(token),
// arrive_and_wait(), arrive_and_drop(), max(), a completion function) plus
// Python's multiprocessing.Barrier (wait() -> index, abort(), reset(),
// broken(), timeouts). procsync::barrier is basic_barrier<no_completion>.
//
// The completion function is a class object stored *inside* the barrier, so
// every process sees its state (completion()). It must be trivially copyable
// and hold no pointers (processes map code and data at different addresses:
// a function pointer is refused at compile time). The last arriver of a phase
// runs it once, before any party of the phase is unblocked, under the
// barrier's internal lock: it must not call the barrier (errc::would_deadlock).
//
// The barrier breaks (errc::barrier_broken, Python's BrokenBarrierError) for
// every waiting party and every later wait() or arrive(), until reset(), when
// abort() is called; a wait times out (its own timeout or the default);
// reset() is called while parties wait (the barrier is usable again at once);
// the completion function throws (the last arriver gets that exception) or its
// process dies inside it; a party dies while it waits: seen within about 50 ms
// for the first watched_parties (64) waiting in a phase, beyond them only
// through timeouts. A party that dies before it arrives cannot be told from a
// late one (use a timeout, or abort() from whoever sees the death). A party
// that arrived with arrive() and is not waiting, or dropped, may exit freely;
// one that dies after its phase completed has completed it.
//
// Cost: 1112 bytes plus the completion function; parties up to 2^31 - 1. The
// last arrival makes a futex wake only when some party sleeps; watched
// parties wake every 50 ms to check a neighbour. Place it in memory shared by
// its users (any mapping address); no destruction needed; one PID namespace.
// How phases, their history and the watching work, and their limits:
// docs/barrier.md.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <atomic>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <exception>
#include <string>
#include <type_traits>

#include "detail/barrier_parts.hpp"
#include "detail/barrier_phases.hpp"
#include "detail/clock.hpp"
#include "detail/futex.hpp"
#include "detail/object_header.hpp"
#include "detail/process_identity.hpp"
#include "detail/robust_guard.hpp"
#include "detail/robust_lock.hpp"
#include "detail/waiting_floor.hpp"
#include "error.hpp"
#include "mutex.hpp"

namespace procsync {

/// The completion function of procsync::barrier: does nothing.
struct no_completion {
  static constexpr const char* kind_name = "procsync::no_completion";
  constexpr void operator()() const noexcept {}
};

template <class CompletionFunction = no_completion>
class basic_barrier {
  static_assert(std::is_class_v<CompletionFunction>,
                "procsync::basic_barrier: the completion function must be a class type (a function object whose "
                "state lives in the barrier), never a function pointer: processes map code at different addresses");
  static_assert(std::is_trivially_copyable_v<CompletionFunction>,
                "procsync::basic_barrier: the completion function lives in shared memory: it must be trivially "
                "copyable (and hold no pointers)");
  static_assert(std::is_invocable_v<CompletionFunction&>,
                "procsync::basic_barrier: the completion function must be callable as `f()` on an lvalue");

 public:
  /// Layout identity checked when opened in a named segment:
  /// "procsync::barrier" for basic_barrier<no_completion>, else
  /// "procsync::basic_barrier<K>" with K the completion function's kind.
  static std::string kind_name() {
    if constexpr (std::is_same_v<CompletionFunction, no_completion>)
      return "procsync::barrier";
    else
      return detail::template_kind("procsync::basic_barrier", detail::element_kind<CompletionFunction>());
  }
  static constexpr std::uint32_t layout_version = 2;

  /// The most parties a barrier takes: 2^31 - 1 (std::barrier::max()).
  static constexpr std::ptrdiff_t max() noexcept { return 0x7fffffff; }
  static constexpr std::size_t max_parties = static_cast<std::size_t>(max());

  /// How many waiting parties per phase are watched for death (see the header).
  static constexpr std::size_t watched_parties = detail::barrier_phases::watched_parties;

  /// How often a watched waiting party checks that its neighbour is alive.
  static constexpr std::chrono::milliseconds liveness_poll_interval{detail::rearm_slice_ns / 1'000'000};

  /// Returned by arrive(); names the phase to wait for with wait(token).
  class arrival_token {
   public:
    arrival_token(arrival_token&&) noexcept = default;
    arrival_token& operator=(arrival_token&&) noexcept = default;

   private:
    friend class basic_barrier;
    explicit arrival_token(std::uint32_t phase) noexcept : phase_(phase) {}
    std::uint32_t phase_;
  };

  /// A barrier for `expected` parties whose waits have no default timeout,
  /// with completion function `f` (copied into the barrier). constexpr, as
  /// std::barrier's. Throws errc::invalid_argument unless
  /// 1 <= expected <= max().
  constexpr explicit basic_barrier(std::ptrdiff_t expected, CompletionFunction f = CompletionFunction())
      : phases_(checked_parties(expected)), completion_(f) {}

  /// A barrier whose wait()s without a timeout argument (wait(),
  /// arrive_and_wait(), wait(token)) time out after `default_timeout`,
  /// which breaks it.
  template <class Rep, class Period>
  basic_barrier(std::ptrdiff_t expected, const std::chrono::duration<Rep, Period>& default_timeout,
                CompletionFunction f = CompletionFunction())
      // Saturating: hours::max() means "no timeout", not an overflow into the past.
      : phases_(checked_parties(expected), detail::saturating_nanoseconds(default_timeout).count()), completion_(f) {}

  basic_barrier(const basic_barrier&) = delete;
  basic_barrier& operator=(const basic_barrier&) = delete;

  /// The number of parties the current phase expects (lowered by
  /// arrive_and_drop() when a phase completes).
  [[nodiscard]] std::size_t parties() const noexcept { return phases_.expected(); }

  /// Parties that arrived in the current phase (a snapshot; 0 while broken).
  [[nodiscard]] std::size_t n_waiting() const noexcept {
    if (broken()) return 0;
    return phases_.arrived();
  }

  /// Whether the barrier is broken (until reset()).
  [[nodiscard]] bool broken() const noexcept { return phases_.broken(); }
  /// Threads asleep (or about to sleep) on it, waiting for the cycle to complete: a racy snapshot for inspectors.
  [[nodiscard]] std::uint32_t sleepers() const noexcept { return phases_.sleepers(); }

  /// The completion function stored in the barrier (its state is shared by
  /// all processes). Read it after a phase completed (everything the
  /// completion did is visible to the parties it unblocked); change it only
  /// while no phase can complete.
  [[nodiscard]] CompletionFunction& completion() noexcept { return completion_; }
  [[nodiscard]] const CompletionFunction& completion() const noexcept { return completion_; }

  /// Arrives and blocks until all parties have arrived (or the default timeout
  /// passes); returns this party's index, distinct in 0..parties()-1 per phase.
  /// Throws errc::barrier_broken if the barrier is or becomes broken (a timeout
  /// breaks it); the completion function's exception if it threw here.
  std::size_t wait() {
    if (phases_.default_timeout_ns() < 0) return arrive_then_wait(nullptr);
    const auto deadline = detail::deadline_after(std::chrono::nanoseconds(phases_.default_timeout_ns()));
    return arrive_then_wait(&deadline);
  }

  /// As wait(), with `timeout` instead of the default.
  template <class Rep, class Period>
  std::size_t wait(const std::chrono::duration<Rep, Period>& timeout) {
    const auto deadline = detail::deadline_after(timeout);
    return arrive_then_wait(&deadline);
  }

  /// std::barrier::arrive_and_wait(): wait() without the index (same errors).
  void arrive_and_wait() { (void)wait(); }

  /// Arrives `update` times in the current phase without blocking and
  /// returns the token of that phase. If these are the last arrivals, runs the
  /// completion function here and starts the next phase. Requires
  /// 1 <= update <= the arrivals the phase still expects: else throws
  /// errc::invalid_argument and arrives not at all. Throws
  /// errc::barrier_broken if the barrier is broken (no arrival).
  [[nodiscard]] arrival_token arrive(std::ptrdiff_t update = 1) {
    return arrival_token(arrive_impl(update, false, false, "arrive").phase);
  }

  /// Blocks until the phase of `arrival` has completed (at once if it has).
  /// Honours the default timeout (which breaks the barrier). Throws
  /// errc::barrier_broken if that phase broke (or breaks while waiting).
  void wait(arrival_token&& arrival) {
    const std::uint32_t p = arrival.phase_;
    std::int32_t slot = -1;
    {
      guard g(*this);
      const std::uint32_t now = phases_.word(std::memory_order_relaxed);
      if (now != p) {
        (void)phases_.outcome(p, now);  // ended: completed (return) or broke (throw)
        return;
      }
      slot = phases_.watch_caller();
    }
    if (phases_.default_timeout_ns() < 0) {
      (void)wait_phase(p, 0, slot, nullptr);
    } else {
      const auto deadline = detail::deadline_after(std::chrono::nanoseconds(phases_.default_timeout_ns()));
      (void)wait_phase(p, 0, slot, &deadline);
    }
  }

  /// Arrives once in the current phase and lowers the expected count of every
  /// later phase by one (std::barrier::arrive_and_drop()); does not block.
  /// The caller may then leave (or exit). Same errors as arrive(1).
  void arrive_and_drop() { (void)arrive_impl(1, true, false, "arrive_and_drop"); }

  /// Breaks the barrier: every waiting party and every later wait() throws
  /// errc::barrier_broken until reset(). No effect if already broken.
  void abort() {
    {
      guard g(*this);
      phases_.break_locked(break_reason::aborted);
    }
    wake_all();
  }

  /// Returns the barrier to an unbroken state with a new, empty phase (drops
  /// made so far stay in effect). Parties waiting in the current phase throw
  /// errc::barrier_broken.
  void reset() {
    {
      guard g(*this);
      phases_.reset_locked();
    }
    wake_all();
  }

 private:
  static constexpr std::uint32_t broken_bit = detail::barrier_phases::broken_bit;
  using break_reason = detail::barrier_break;

  static constexpr std::uint32_t checked_parties(std::ptrdiff_t parties) {
    if (parties < 1 || parties > max())
      detail::throw_error(errc::invalid_argument, "procsync::barrier: expected 1 <= parties <= " +
                                                      std::to_string(max()) + ", got " + std::to_string(parties));
    return static_cast<std::uint32_t>(parties);
  }

  /// Holds the internal robust lock. If a party died holding it (inside a
  /// call, or inside the completion function), its call may be half done: the
  /// barrier is broken (a party died), and the waiters are woken once the lock
  /// is released.
  struct guard {
    explicit guard(basic_barrier& b)
        : self(b), held(b.lock_, [&b] { b.phases_.break_locked(break_reason::party_died); }) {}
    ~guard() {
      held.release();
      if (held.repaired()) self.wake_all();
    }
    guard(const guard&) = delete;
    guard& operator=(const guard&) = delete;
    basic_barrier& self;
    detail::robust_guard<procsync::mutex> held;
  };

  void wake_all() noexcept { phases_.wake_all(); }

  [[noreturn, gnu::cold]] void throw_broken(const char* when) const { phases_.throw_broken(when); }

  struct arrival {
    std::uint32_t phase;  // the phase arrived in
    std::uint32_t index;  // arrival index of the first of the update arrivals
    std::int32_t slot;    // watched slot (when `watch`), -1 if none
    bool completed;       // these arrivals completed the phase
  };

  /// Arrives `update` times (lock taken here); with `drop`, lowers the next
  /// phases' count by one; with `watch`, records the caller as a waiting party.
  arrival arrive_impl(std::ptrdiff_t update, bool drop, bool watch, const char* what) {
    bool dead_party = false;
    std::exception_ptr completion_error;
    arrival a{0, 0, -1, false};
    {
      guard g(*this);
      a.phase = phases_.word(std::memory_order_relaxed);
      if (a.phase & broken_bit) throw_broken(what);
      a.index = phases_.arrived();
      const std::uint32_t remaining = phases_.expected() - a.index;
      if (update < 1 || update > static_cast<std::ptrdiff_t>(remaining))
        detail::throw_error(errc::invalid_argument, std::string("procsync::barrier::") + what +
                                                        ": expected 1 <= update <= " + std::to_string(remaining) +
                                                        " (arrivals the phase still expects), got " +
                                                        std::to_string(update));
      const auto n = static_cast<std::uint32_t>(update);
      if (drop) phases_.add_drop();
      if (n == remaining) {
        if (!waiters_alive_locked()) {
          phases_.break_locked(break_reason::party_died);
          dead_party = true;
        } else {
          try {
            completion_();
            phases_.end_phase_locked(a.phase, false);
            a.completed = true;
          } catch (...) {
            completion_error = std::current_exception();
            phases_.break_locked(break_reason::completion_threw);
          }
        }
        if (drop && !a.completed) phases_.cancel_drop();  // the call failed: it dropped nothing
      } else {
        phases_.set_arrived(a.index + n);
        if (watch) a.slot = phases_.watch_caller();
      }
    }
    if (dead_party || completion_error) {
      wake_all();
      if (completion_error) std::rethrow_exception(completion_error);
      throw_broken(what);
    }
    if (a.completed) wake_all();
    return a;
  }

  std::size_t arrive_then_wait(const detail::steady::time_point* deadline) {
    const arrival a = arrive_impl(1, false, true, "wait");
    if (a.completed) return a.index;
    return wait_phase(a.phase, a.index, a.slot, deadline);
  }

  /// Blocks until phase `p` ends; returns `index` if it completed, throws if
  /// it broke. A timeout breaks it.
  std::size_t wait_phase(std::uint32_t p, std::uint32_t index, std::int32_t slot,
                         const detail::steady::time_point* deadline) {
    timespec storage{};
    const timespec* until = deadline ? detail::futex_deadline(*deadline, storage) : nullptr;
    // Between slices, each watched party checks one neighbour's liveness.
    const bool ended = phases_.wait_for_end(p, until, [&] { check_neighbour(p, slot); });
    if (ended) return index;
    {
      guard g(*this);
      if (phases_.word(std::memory_order_relaxed) == p) phases_.break_locked(break_reason::timeout);
    }
    wake_all();
    if (phases_.outcome(p, phases_.word(std::memory_order_acquire))) return index;  // completed just in time
    throw_broken("timed out");
  }

  /// Whether all watched waiting parties of this phase still live (lock
  /// held). The last arrival checks before it completes a phase: a party
  /// killed while waiting must break the barrier, not be counted as arrived,
  /// however quickly the others come (the neighbours' polling alone has a
  /// window of one interval). One /proc read per watched party, once per phase.
  bool waiters_alive_locked() const noexcept { return phases_.watched().all_alive(); }

  /// Breaks the barrier if the watched party before us (the last watched,
  /// for the first) died while waiting in phase `p`. Taking the lock also
  /// notices a process that died inside the completion function.
  void check_neighbour(std::uint32_t p, std::int32_t slot) {
    if (slot < 0) return;  // not watched (see the header)
    detail::process_identity who{};
    std::uint32_t neighbour = 0;
    {
      guard g(*this);
      if (phases_.word(std::memory_order_relaxed) != p) return;
      const auto& watched = phases_.watched();
      if (watched.count < 2) return;
      neighbour = watched.neighbour_of(slot);
      who = watched.parties[neighbour];
    }
    if (detail::process_alive(who)) return;  // /proc read outside the lock
    {
      guard g(*this);
      const auto& watched = phases_.watched();
      if (phases_.word(std::memory_order_relaxed) == p && neighbour < watched.count &&
          watched.parties[neighbour] == who)
        phases_.break_locked(break_reason::party_died);
    }
    wake_all();
  }

  procsync::mutex lock_;           // robust; guards the phases but for their atomics' racy reads
  detail::barrier_phases phases_;  // the phase word, counts, history and watched waiters
  [[no_unique_address]] CompletionFunction completion_;
};

/// Python's Barrier and std::barrier<> in one: no completion function.
using barrier = basic_barrier<>;

static_assert(sizeof(barrier) == 1112);

}  // namespace procsync
