// procsync/semaphore.hpp — a bounded counting semaphore shared between processes.
//
// procsync::counting_semaphore<LeastMaxValue> has the shape of C++20's
// std::counting_semaphore (acquire, try_acquire, try_acquire_for,
// try_acquire_until, release(n), max()) plus value(), and lives in shared memory
// (see segment.hpp). It is *bounded*, as Python's BoundedSemaphore: max() is
// exactly LeastMaxValue, and a release that would raise the count above it
// throws procsync::error with errc::semaphore_overflow instead of wrapping.
// binary_semaphore is counting_semaphore<1>.
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
// Undo mode (like System V's SEM_UNDO), opt-in: counting_semaphore<Max, Slots>
// with Slots > 0 (alias undo_semaphore<Max, Slots>) constructed with the
// procsync::undo tag records, per process, how many permits it holds. Permits
// held by a process that dies (SIGKILL included) are given back exactly once:
//  - Detection: a blocked acquirer re-checks the recorded holders after every
//    re-arm slice of the waiting floor (undo_poll_interval, 50 ms) and reclaims
//    the permits of dead ones (pid + start time, so a reused pid is never taken
//    for the dead holder; a SIGSTOPped holder is alive). try_acquire() checks
//    them when it finds no permit; reclaim_dead_holders() checks on demand. So
//    a blocked acquirer gets a dead holder's permits within ~50 ms plus one
//    /proc read per holder; nobody gives them back while nobody asks for one.
//  - Bookkeeping is done under a small robust lock with an undo journal: a
//    process killed in the middle of acquire or release leaves either the
//    whole operation done or none of it, never a permit counted twice or lost.
//  - Capacity: Slots processes may hold permits at once. An acquire by a
//    further process first reclaims dead holders' slots; if every slot is held
//    by a live process it throws errc::undo_slots_exhausted and takes nothing.
//  - A release by a process that holds none of its own permits (hand-off
//    patterns: one process acquires, another releases) releases normally and
//    leaves the holder's record as is; a dead holder's give-back is then
//    clamped so the count never exceeds max().
//  - Cost: acquire and release take the robust lock (still no system call
//    without contention); waiters wake every 50 ms to check holders.
//    try_release() in undo mode is noexcept and never blocks, but takes the
//    lock with a try-lock, so it is NOT async-signal-safe, and it returns false
//    when the lock is busy.
// Without the undo tag (the default), permits of a dead process stay taken,
// as with POSIX sem_t.
//
// Other robustness (waits go through the waiting floor,
// detail/waiting_floor.hpp): a waiter killed while blocked breaks nothing. A
// waiter killed (or stopped) after a release woke it and before it took the
// permit leaves the permit: another waiter takes it within one re-arm slice
// (50 ms); so does a releaser killed between its count change and its wake call.
// Requirements: place it in memory shared by its users (any mapping address);
// it needs no destruction. A 32-bit count: LeastMaxValue ≤ 2^31 - 1.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>
#include <utility>

#include "detail/clock.hpp"
#include "detail/futex.hpp"
#include "detail/process_identity.hpp"
#include "detail/robust_lock.hpp"
#include "detail/waiting_floor.hpp"
#include "error.hpp"
#include "mutex.hpp"

namespace procsync {

/// Tag selecting undo mode at construction: counting_semaphore(undo, n).
struct undo_t {
  explicit undo_t() = default;
};
inline constexpr undo_t undo{};

namespace detail {

/// The largest count a 32-bit futex word holds as a non-negative int.
inline constexpr std::ptrdiff_t semaphore_value_max = 0x7fffffff;

struct semaphore_undo_slot {
  process_identity owner{};  // the holder, {0,0} when free
  std::uint32_t held = 0;    // permits it acquired and has not released
  std::uint32_t reserved = 0;
};

/// What the lock holder is changing, so that the next holder can roll the
/// change back if it died half-way (count and one slot, restored together).
struct semaphore_undo_journal {
  std::atomic<std::uint32_t> active{0};
  std::uint32_t slot = 0;  // index + 1, 0: no slot involved
  std::uint32_t old_count = 0;
  std::uint32_t old_held = 0;
  process_identity old_owner{};
};

template <std::size_t Slots>
struct semaphore_undo_table {
  procsync::mutex lock;  // robust: guards count changes, journal and slots in undo mode
  std::uint32_t enabled = 0;
  std::uint32_t reserved = 0;
  semaphore_undo_journal journal;
  semaphore_undo_slot slots[Slots];
};

template <>
struct semaphore_undo_table<0> {};

}  // namespace detail

template <std::ptrdiff_t LeastMaxValue = detail::semaphore_value_max, std::size_t UndoSlots = 0>
class counting_semaphore {
  static_assert(LeastMaxValue >= 0 && LeastMaxValue <= detail::semaphore_value_max,
                "procsync::counting_semaphore counts in a 32-bit futex word: 0 <= LeastMaxValue <= 2^31-1");

 public:
  /// Layout identity checked when opened in a named segment: the kind spells
  /// out max() and the undo capacity, so a counting_semaphore<4> is never
  /// opened as a counting_semaphore<8>.
  static std::string kind_name() {
    std::string k = "procsync::counting_semaphore<" + std::to_string(LeastMaxValue);
    if (UndoSlots > 0) k += ",undo_slots=" + std::to_string(UndoSlots);
    return k + ">";
  }
  static constexpr std::uint32_t layout_version = 1;

  /// How many processes may hold permits at once in undo mode.
  static constexpr std::size_t undo_slots = UndoSlots;

  /// How often a blocked acquirer in undo mode checks for dead holders.
  static constexpr std::chrono::milliseconds undo_poll_interval{detail::rearm_slice_ns / 1'000'000};

  /// The largest count: exactly LeastMaxValue (release beyond it throws).
  static constexpr std::ptrdiff_t max() noexcept { return LeastMaxValue; }

  /// A semaphore holding `desired` permits, without undo.
  /// Throws errc::invalid_argument unless 0 <= desired <= max(). constexpr,
  /// as std::counting_semaphore's: `constinit procsync::binary_semaphore s{1};`
  /// (a desired value out of range is then a compile-time error).
  constexpr explicit counting_semaphore(std::ptrdiff_t desired) : count_(checked_initial(desired)) {}

  /// A semaphore holding `desired` permits in undo mode (see the header).
  /// Throws errc::invalid_argument unless 0 <= desired <= max().
  constexpr counting_semaphore(undo_t, std::ptrdiff_t desired)
    requires(UndoSlots > 0)
      : count_(checked_initial(desired)) {
    undo_.enabled = 1;
  }

  counting_semaphore(const counting_semaphore&) = delete;
  counting_semaphore& operator=(const counting_semaphore&) = delete;

  /// Whether this semaphore was constructed in undo mode.
  [[nodiscard]] bool undo_enabled() const noexcept {
    if constexpr (UndoSlots > 0) return undo_.enabled != 0;
    return false;
  }

  /// Permits available now: a snapshot, for diagnostics and tests.
  [[nodiscard]] std::ptrdiff_t value() const noexcept { return count_.value.load(std::memory_order_relaxed); }
  /// Threads asleep (or about to sleep) on it, waiting for a permit: a racy snapshot for inspectors.
  [[nodiscard]] std::uint32_t sleepers() const noexcept { return count_.sleepers.load(std::memory_order_relaxed); }
  /// Undo slot `i` (< undo_slots): the holder and its permits ({} when free).
  /// A racy snapshot (the slots are written under the semaphore's lock), for inspectors.
  [[nodiscard]] std::pair<detail::process_identity, std::uint32_t> undo_holder(std::size_t i) const noexcept {
    if constexpr (UndoSlots > 0)
      if (i < UndoSlots) return {undo_.slots[i].owner, undo_.slots[i].held};
    return {};
  }

  /// Blocks until it takes one permit. Undo mode: errc::undo_slots_exhausted.
  void acquire() { (void)acquire_until(nullptr); }

  /// Takes one permit if one is available now; never blocks.
  [[nodiscard]] bool try_acquire() noexcept(UndoSlots == 0) {
    if constexpr (UndoSlots > 0)
      if (undo_.enabled) return undo_take(true);
    return take_one();
  }

  /// Blocks until it takes a permit or `timeout` has passed (steady_clock);
  /// returns whether it took one. Never returns false early.
  template <class Rep, class Period>
  [[nodiscard]] bool try_acquire_for(const std::chrono::duration<Rep, Period>& timeout) {
    const auto deadline = detail::deadline_after(timeout);
    return acquire_until(&deadline);
  }

  /// Blocks until it takes a permit or `deadline` passes. A deadline on
  /// another clock is converted to steady_clock once (clock jumps do not move it).
  template <class Clock, class Duration>
  [[nodiscard]] bool try_acquire_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    const auto steady_deadline = detail::to_steady(deadline);
    return acquire_until(&steady_deadline);
  }

  /// Adds `update` permits and wakes as many blocked acquirers.
  /// Throws errc::invalid_argument if update < 0, errc::semaphore_overflow
  /// ("released too many times") if the count would exceed max(); the count is
  /// then unchanged. No system call unless someone sleeps in acquire.
  void release(std::ptrdiff_t update = 1) {
    if (update < 0)
      detail::throw_error(errc::invalid_argument, "procsync::counting_semaphore::release: expected update >= 0, got " +
                                                      std::to_string(update));
    if (update == 0) return;
    const std::int64_t result = add(update);
    if (result >= 0) return;
    detail::throw_error(errc::semaphore_overflow,
                        "procsync::counting_semaphore::release: released too many times: release(" +
                            std::to_string(update) + ") with " + std::to_string(-result - 1) +
                            " permits available would exceed max() = " + std::to_string(max()));
  }

  /// release(update) that reports failure instead of throwing: false if update
  /// is negative or the count would exceed max() (count unchanged).
  /// Async-signal-safe when not in undo mode (see the header for undo mode).
  [[nodiscard]] bool try_release(std::ptrdiff_t update = 1) noexcept {
    if (update < 0) return false;
    if (update == 0) return true;
    if constexpr (UndoSlots > 0) {
      if (undo_.enabled) {
        try {
          if (!holds(undo_.lock.try_lock_robust())) return false;
        } catch (...) {
          return false;
        }
        return undo_add_locked(update) >= 0;  // it unlocks
      }
    }
    return add(update) >= 0;  // lock-free: cannot throw without undo
  }

  /// Undo mode: gives back the permits of holders that died; returns how many
  /// were given back (0 when not in undo mode).
  std::ptrdiff_t reclaim_dead_holders() {
    if constexpr (UndoSlots > 0) {
      if (undo_.enabled) {
        std::uint32_t given = 0;
        {
          undo_guard g(*this);
          given = reclaim_locked();
        }
        wake(given);
        return given;
      }
    }
    return 0;
  }

  /// Undo mode: permits the calling process holds by its record (0 otherwise).
  [[nodiscard]] std::ptrdiff_t held_by_current_process() {
    if constexpr (UndoSlots > 0) {
      if (undo_.enabled) {
        undo_guard g(*this);
        const int s = find_own_slot(detail::current_process_identity());
        return s < 0 ? 0 : undo_.slots[s].held;
      }
    }
    return 0;
  }

 private:
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
      if (count_.value.compare_exchange_weak(c, c - 1, std::memory_order_acquire, std::memory_order_relaxed)) return true;
    }
    return false;
  }

  void wake(std::uint32_t n) noexcept {
    // The caller raised the count with a seq_cst change: the floor's Dekker pair.
    detail::wake(count_, n > INT_MAX ? INT_MAX : static_cast<int>(n));
  }

  /// Adds `update` permits; returns 0 on success, or -(count + 1) on
  /// overflow. Lock-free (and async-signal-safe) unless in undo mode.
  std::int64_t add(std::ptrdiff_t update) noexcept(UndoSlots == 0) {
    if constexpr (UndoSlots > 0) {
      if (undo_.enabled) {
        (void)undo_.lock.lock_robust();  // an owner death is repaired in undo_add_locked
        return undo_add_locked(update);
      }
    }
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
    if constexpr (UndoSlots > 0)
      if (undo_.enabled) return undo_acquire_until(deadline);
    timespec storage{};
    const timespec* until = deadline ? detail::futex_deadline(*deadline, storage) : nullptr;
    // A permit released at the deadline is still taken (the floor asks once more).
    return detail::wait_until_done(count_, until, [this](std::uint32_t c) { return c != 0 && take_one(); });
  }

  // ---- undo mode -------------------------------------------------------------

  /// Holds the bookkeeping lock; repairs what a holder that died left behind.
  struct undo_guard {
    explicit undo_guard(counting_semaphore& s) : sem(s) {
      if constexpr (UndoSlots > 0)
        if (sem.undo_.lock.lock_robust() == lock_status::owner_died) sem.recover_locked();
    }
    ~undo_guard() {
      if constexpr (UndoSlots > 0) sem.undo_.lock.unlock();
    }
    undo_guard(const undo_guard&) = delete;
    undo_guard& operator=(const undo_guard&) = delete;
    counting_semaphore& sem;
  };

  /// Called holding the lock taken from a dead holder: rolls back its
  /// half-done change (count and slot were changed only under the lock, so
  /// their old values are still the right ones to restore).
  void recover_locked()
    requires(UndoSlots > 0)
  {
    auto& j = undo_.journal;
    std::uint32_t added = 0;
    if (j.active.load(std::memory_order_relaxed) != 0) {
      const std::uint32_t now = count_.value.load(std::memory_order_relaxed);
      if (j.old_count > now) added = j.old_count - now;
      count_.value.store(j.old_count, std::memory_order_seq_cst);  // seq_cst: see wake()
      if (j.slot != 0) {
        undo_.slots[j.slot - 1].held = j.old_held;
        undo_.slots[j.slot - 1].owner = j.old_owner;
      }
      j.active.store(0, std::memory_order_release);
    }
    undo_.lock.consistent();
    wake(added);
  }

  /// Records the state a change starts from. The release store orders the
  /// journal fields before `active`, and the seq_cst count store that follows
  /// is ordered after it, so a death at any instruction leaves a journal that
  /// describes every change already made.
  void journal_begin(int slot) noexcept
    requires(UndoSlots > 0)
  {
    auto& j = undo_.journal;
    j.slot = static_cast<std::uint32_t>(slot + 1);
    j.old_count = count_.value.load(std::memory_order_relaxed);
    if (slot >= 0) {
      j.old_held = undo_.slots[slot].held;
      j.old_owner = undo_.slots[slot].owner;
    }
    j.active.store(1, std::memory_order_release);
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }

  void journal_commit() noexcept
    requires(UndoSlots > 0)
  {
    // Release: the count and slot changes are complete before the journal is
    // retired.
    undo_.journal.active.store(0, std::memory_order_release);
  }

  int find_own_slot(const detail::process_identity& me) const noexcept
    requires(UndoSlots > 0)
  {
    for (std::size_t i = 0; i < UndoSlots; ++i)
      if (undo_.slots[i].held != 0 && undo_.slots[i].owner == me) return static_cast<int>(i);
    return -1;
  }

  int find_free_slot() const noexcept
    requires(UndoSlots > 0)
  {
    for (std::size_t i = 0; i < UndoSlots; ++i)
      if (undo_.slots[i].held == 0) return static_cast<int>(i);
    return -1;
  }

  /// Gives back dead holders' permits; the lock is held. Returns how many.
  std::uint32_t reclaim_locked()
    requires(UndoSlots > 0)
  {
    std::uint32_t total = 0;
    for (std::size_t i = 0; i < UndoSlots; ++i) {
      detail::semaphore_undo_slot& s = undo_.slots[i];
      if (s.held == 0 || detail::process_alive(s.owner)) continue;
      const std::uint32_t c = count_.value.load(std::memory_order_relaxed);
      const std::uint32_t room = static_cast<std::uint32_t>(max()) - c;
      const std::uint32_t give = s.held < room ? s.held : room;
      journal_begin(static_cast<int>(i));
      count_.value.store(c + give, std::memory_order_seq_cst);  // seq_cst: see wake()
      s.held = 0;
      s.owner = {};
      journal_commit();
      total += give;
    }
    return total;
  }

  /// Takes a permit under the lock, recording it in the caller's slot.
  bool undo_take(bool check_dead)
    requires(UndoSlots > 0)
  {
    std::uint32_t reclaimed = 0;
    bool took = false;
    {
      undo_guard g(*this);
      if (count_.value.load(std::memory_order_relaxed) == 0 && check_dead) reclaimed = reclaim_locked();
      if (count_.value.load(std::memory_order_relaxed) != 0) {
        // Cached per process (re-read after fork): no syscall here.
        const detail::process_identity& me = detail::current_process_identity();
        int slot = find_own_slot(me);
        if (slot < 0) slot = find_free_slot();
        if (slot < 0) {
          reclaimed += reclaim_locked();
          slot = find_free_slot();
        }
        // Read after any reclaim (which raises it); nobody else changes it under the lock.
        const std::uint32_t c = count_.value.load(std::memory_order_relaxed);
        if (slot < 0)
          detail::throw_error(errc::undo_slots_exhausted,
                              "procsync::counting_semaphore::acquire: undo mode: process " +
                                  std::to_string(::getpid()) + " needs an undo slot, but all " +
                                  std::to_string(UndoSlots) + " are held by live processes");
        detail::semaphore_undo_slot& s = undo_.slots[slot];
        journal_begin(slot);
        // Acquire side is given by the lock; seq_cst keeps the store after the journal.
        count_.value.store(c - 1, std::memory_order_seq_cst);
        s.owner = me;
        s.held += 1;
        journal_commit();
        took = true;
      }
    }
    // Permits reclaimed beyond the one we took belong to other sleepers.
    if (reclaimed > (took ? 1u : 0u)) wake(reclaimed - (took ? 1u : 0u));
    return took;
  }

  /// Release under the lock, which the caller has taken; unlocks it.
  /// Returns 0, or -(count + 1) on overflow (nothing changed).
  std::int64_t undo_add_locked(std::ptrdiff_t update) noexcept
    requires(UndoSlots > 0)
  {
    // The caller took the lock; adopt it so it is released on every path.
    struct adopt {
      counting_semaphore& sem;
      ~adopt() {
        try {
          sem.undo_.lock.unlock();
        } catch (...) {
        }
      }
    } unlock_at_exit{*this};
    if (undo_.lock.inconsistent()) {
      try {
        recover_locked();
      } catch (...) {
        return -1;
      }
    }
    const std::uint32_t c = count_.value.load(std::memory_order_relaxed);
    if (update > max() - static_cast<std::ptrdiff_t>(c)) return -static_cast<std::int64_t>(c) - 1;
    const int slot = find_own_slot(detail::current_process_identity());
    journal_begin(slot);
    // seq_cst: release for the permit's next acquirer, and Dekker with sleepers.
    count_.value.store(c + static_cast<std::uint32_t>(update), std::memory_order_seq_cst);
    if (slot >= 0) {
      detail::semaphore_undo_slot& s = undo_.slots[slot];
      const std::uint32_t u = static_cast<std::uint32_t>(update);
      s.held -= s.held < u ? s.held : u;
      if (s.held == 0) s.owner = {};
    }
    journal_commit();
    wake(static_cast<std::uint32_t>(update));
    return 0;
  }

  bool undo_acquire_until(const detail::steady::time_point* deadline)
    requires(UndoSlots > 0)
  {
    if (undo_take(true)) return true;
    timespec storage{};
    const timespec* until = deadline ? detail::futex_deadline(*deadline, storage) : nullptr;
    // Between slices, give back the permits of holders that died: a dead holder
    // never releases, so nobody would wake us for them.
    return detail::wait_until_done(
        count_, until, [this](std::uint32_t c) { return c != 0 && undo_take(false); },
        [this] { (void)reclaim_dead_holders(); });
  }

  detail::wait_word count_;  // futex word: permits available; sleepers: blocked acquirers
  [[no_unique_address]] detail::semaphore_undo_table<UndoSlots> undo_;
};

/// A semaphore with max() == 1.
using binary_semaphore = counting_semaphore<1>;

/// A semaphore that supports undo mode (construct it with procsync::undo).
template <std::ptrdiff_t LeastMaxValue = detail::semaphore_value_max, std::size_t Slots = 32>
using undo_semaphore = counting_semaphore<LeastMaxValue, Slots>;

static_assert(sizeof(counting_semaphore<>) == 8, "the plain semaphore is two 32-bit words (sem_t is 32 bytes)");

}  // namespace procsync
