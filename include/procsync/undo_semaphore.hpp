// procsync/undo_semaphore.hpp — a counting semaphore that gives back the
// permits of a process that dies (like System V's SEM_UNDO).
//
// procsync::undo_semaphore<Max, Slots> (the same type as
// counting_semaphore<Max, Slots> with Slots > 0) is the plain
// counting_semaphore<Max> (counting_semaphore.hpp: same count word, same
// fast paths, same errors) plus a table recording, per process, how many
// permits it holds. Constructed with the procsync::undo tag, permits held by a
// process that dies (SIGKILL included) are given back exactly once; constructed
// without it, it behaves as the plain semaphore.
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
//    try_release() is noexcept and never blocks, but takes the lock with a
//    try-lock, so it is NOT async-signal-safe, and it returns false when the
//    lock is busy.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "counting_semaphore.hpp"
#include "detail/clock.hpp"
#include "detail/process_identity.hpp"
#include "detail/robust_guard.hpp"
#include "detail/waiting_floor.hpp"
#include "error.hpp"
#include "lock_status.hpp"
#include "mutex.hpp"

namespace procsync {

/// Tag selecting undo mode at construction: undo_semaphore(undo, n).
struct undo_t {
  explicit undo_t() = default;
};
inline constexpr undo_t undo{};

namespace detail {

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

}  // namespace detail

template <std::ptrdiff_t LeastMaxValue, std::size_t UndoSlots>
class counting_semaphore : public detail::semaphore_api<counting_semaphore<LeastMaxValue, UndoSlots>> {
  static_assert(UndoSlots > 0, "counting_semaphore<Max, 0> is the plain semaphore (counting_semaphore.hpp)");
  using plain = counting_semaphore<LeastMaxValue, 0>;

 public:
  /// Layout identity checked when opened in a named segment: the kind spells
  /// out max() and the undo capacity.
  static std::string kind_name() {
    return "procsync::counting_semaphore<" + std::to_string(LeastMaxValue) +
           ",undo_slots=" + std::to_string(UndoSlots) + ">";
  }
  static constexpr std::uint32_t layout_version = 1;

  /// How many processes may hold permits at once in undo mode.
  static constexpr std::size_t undo_slots = UndoSlots;

  /// How often a blocked acquirer in undo mode checks for dead holders.
  static constexpr std::chrono::milliseconds undo_poll_interval{detail::rearm_slice_ns / 1'000'000};

  /// The largest count: exactly LeastMaxValue (release beyond it throws).
  static constexpr std::ptrdiff_t max() noexcept { return LeastMaxValue; }

  /// A semaphore holding `desired` permits, without undo (the plain one).
  /// Throws errc::invalid_argument unless 0 <= desired <= max().
  constexpr explicit counting_semaphore(std::ptrdiff_t desired) : plain_(desired) {}

  /// A semaphore holding `desired` permits in undo mode (see the header).
  /// Throws errc::invalid_argument unless 0 <= desired <= max().
  constexpr counting_semaphore(undo_t, std::ptrdiff_t desired) : plain_(desired) { table_.enabled = 1; }

  counting_semaphore(const counting_semaphore&) = delete;
  counting_semaphore& operator=(const counting_semaphore&) = delete;

  /// Whether this semaphore was constructed in undo mode.
  [[nodiscard]] bool undo_enabled() const noexcept { return table_.enabled != 0; }

  /// Permits available now: a snapshot, for diagnostics and tests.
  [[nodiscard]] std::ptrdiff_t value() const noexcept { return plain_.value(); }
  /// Threads asleep (or about to sleep) on it, waiting for a permit: a racy snapshot for inspectors.
  [[nodiscard]] std::uint32_t sleepers() const noexcept { return plain_.sleepers(); }
  /// Undo slot `i` (< undo_slots): the holder and its permits ({} when free).
  /// A racy snapshot (the slots are written under the semaphore's lock), for inspectors.
  [[nodiscard]] std::pair<detail::process_identity, std::uint32_t> undo_holder(std::size_t i) const noexcept {
    if (i < UndoSlots) return {table_.slots[i].owner, table_.slots[i].held};
    return {};
  }

  /// Blocks until it takes one permit. Undo mode: errc::undo_slots_exhausted.
  void acquire() { (void)acquire_until(nullptr); }

  /// Takes one permit if one is available now; never blocks.
  [[nodiscard]] bool try_acquire() {
    if (undo_enabled()) return undo_take(true);
    return plain_.take_one();
  }

  // try_acquire_for, try_acquire_until, release: from detail::semaphore_api
  // (in undo mode, release also lowers the caller's record).

  /// release(update) that reports failure instead of throwing. Undo mode: not
  /// async-signal-safe, and false when the bookkeeping lock is busy.
  [[nodiscard]] bool try_release(std::ptrdiff_t update = 1) noexcept {
    if (update < 0) return false;
    if (update == 0) return true;
    if (!undo_enabled()) return plain_.add(update) >= 0;
    try {
      if (!holds(table_.lock.try_lock_robust())) return false;
    } catch (...) {
      return false;
    }
    return add_locked(update) >= 0;  // it unlocks
  }

  /// Undo mode: gives back the permits of holders that died; returns how many
  /// were given back (0 when not in undo mode).
  std::ptrdiff_t reclaim_dead_holders() {
    if (!undo_enabled()) return 0;
    std::uint32_t given = 0;
    {
      const auto held = hold();
      given = reclaim_locked();
    }
    plain_.wake(given);
    return given;
  }

  /// Undo mode: permits the calling process holds by its record (0 otherwise).
  [[nodiscard]] std::ptrdiff_t held_by_current_process() {
    if (!undo_enabled()) return 0;
    const auto held = hold();
    const int s = find_own_slot(detail::current_process_identity());
    return s < 0 ? 0 : table_.slots[s].held;
  }

 private:
  friend class detail::semaphore_api<counting_semaphore>;

  std::atomic<std::uint32_t>& count() noexcept { return plain_.count_.value; }

  /// Holds the bookkeeping lock; rolls back what a holder that died left half done.
  detail::robust_guard<procsync::mutex> hold() {
    return detail::robust_guard(table_.lock, [this] { roll_back_locked(); });
  }

  /// Adds `update` permits; returns 0, or -(count + 1) on overflow.
  std::int64_t add(std::ptrdiff_t update) {
    if (!undo_enabled()) return plain_.add(update);
    (void)table_.lock.lock_robust();  // an owner death is repaired in add_locked
    return add_locked(update);
  }

  /// Blocks for a permit until `deadline` (nullptr: forever).
  bool acquire_until(const detail::steady::time_point* deadline) {
    if (!undo_enabled()) return plain_.acquire_until(deadline);
    if (undo_take(true)) return true;
    timespec storage{};
    const timespec* until = deadline ? detail::futex_deadline(*deadline, storage) : nullptr;
    // Between slices, give back the permits of holders that died: a dead holder
    // never releases, so nobody would wake us for them.
    return detail::wait_until_done(
        plain_.count_, until, [this](std::uint32_t c) { return c != 0 && undo_take(false); },
        [this] { (void)reclaim_dead_holders(); });
  }

  /// Called holding the lock taken from a dead holder: rolls back its
  /// half-done change (count and slot were changed only under the lock, so
  /// their old values are still the right ones to restore). The caller then
  /// marks the lock consistent.
  void roll_back_locked() {
    auto& j = table_.journal;
    std::uint32_t added = 0;
    if (j.active.load(std::memory_order_relaxed) != 0) {
      const std::uint32_t now = count().load(std::memory_order_relaxed);
      if (j.old_count > now) added = j.old_count - now;
      count().store(j.old_count, std::memory_order_seq_cst);  // seq_cst: see plain::wake()
      if (j.slot != 0) {
        table_.slots[j.slot - 1].held = j.old_held;
        table_.slots[j.slot - 1].owner = j.old_owner;
      }
      j.active.store(0, std::memory_order_release);
    }
    plain_.wake(added);
  }

  /// Records the state a change starts from. The release store orders the
  /// journal fields before `active`, and the seq_cst count store that follows
  /// is ordered after it, so a death at any instruction leaves a journal that
  /// describes every change already made.
  void journal_begin(int slot) noexcept {
    auto& j = table_.journal;
    j.slot = static_cast<std::uint32_t>(slot + 1);
    j.old_count = count().load(std::memory_order_relaxed);
    if (slot >= 0) {
      j.old_held = table_.slots[slot].held;
      j.old_owner = table_.slots[slot].owner;
    }
    j.active.store(1, std::memory_order_release);
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }

  void journal_commit() noexcept {
    // Release: the count and slot changes are complete before the journal is
    // retired.
    table_.journal.active.store(0, std::memory_order_release);
  }

  int find_own_slot(const detail::process_identity& me) const noexcept {
    for (std::size_t i = 0; i < UndoSlots; ++i)
      if (table_.slots[i].held != 0 && table_.slots[i].owner == me) return static_cast<int>(i);
    return -1;
  }

  int find_free_slot() const noexcept {
    for (std::size_t i = 0; i < UndoSlots; ++i)
      if (table_.slots[i].held == 0) return static_cast<int>(i);
    return -1;
  }

  /// Gives back dead holders' permits; the lock is held. Returns how many.
  std::uint32_t reclaim_locked() {
    std::uint32_t total = 0;
    for (std::size_t i = 0; i < UndoSlots; ++i) {
      detail::semaphore_undo_slot& s = table_.slots[i];
      if (s.held == 0 || detail::process_alive(s.owner)) continue;
      const std::uint32_t c = count().load(std::memory_order_relaxed);
      const std::uint32_t room = static_cast<std::uint32_t>(max()) - c;
      const std::uint32_t give = s.held < room ? s.held : room;
      journal_begin(static_cast<int>(i));
      count().store(c + give, std::memory_order_seq_cst);  // seq_cst: see plain_.wake()
      s.held = 0;
      s.owner = {};
      journal_commit();
      total += give;
    }
    return total;
  }

  /// Takes a permit under the lock, recording it in the caller's slot.
  bool undo_take(bool check_dead) {
    std::uint32_t reclaimed = 0;
    bool took = false;
    {
      const auto held = hold();
      if (count().load(std::memory_order_relaxed) == 0 && check_dead) reclaimed = reclaim_locked();
      if (count().load(std::memory_order_relaxed) != 0) {
        // Cached per process (re-read after fork): no syscall here.
        const detail::process_identity& me = detail::current_process_identity();
        int slot = find_own_slot(me);
        if (slot < 0) slot = find_free_slot();
        if (slot < 0) {
          reclaimed += reclaim_locked();
          slot = find_free_slot();
        }
        // Read after any reclaim (which raises it); nobody else changes it under the lock.
        const std::uint32_t c = count().load(std::memory_order_relaxed);
        if (slot < 0)
          detail::throw_error(errc::undo_slots_exhausted,
                              "procsync::counting_semaphore::acquire: undo mode: process " +
                                  std::to_string(::getpid()) + " needs an undo slot, but all " +
                                  std::to_string(UndoSlots) + " are held by live processes");
        detail::semaphore_undo_slot& s = table_.slots[slot];
        journal_begin(slot);
        // Acquire side is given by the lock; seq_cst keeps the store after the journal.
        count().store(c - 1, std::memory_order_seq_cst);
        s.owner = me;
        s.held += 1;
        journal_commit();
        took = true;
      }
    }
    // Permits reclaimed beyond the one we took belong to other sleepers.
    if (reclaimed > (took ? 1u : 0u)) plain_.wake(reclaimed - (took ? 1u : 0u));
    return took;
  }

  /// Release under the lock, which the caller has taken; unlocks it.
  /// Returns 0, or -(count + 1) on overflow (nothing changed).
  std::int64_t add_locked(std::ptrdiff_t update) noexcept {
    // The caller took the lock; adopt it so it is released on every path.
    struct adopt {
      counting_semaphore& sem;
      ~adopt() {
        try {
          sem.table_.lock.unlock();
        } catch (...) {
        }
      }
    } unlock_at_exit{*this};
    if (table_.lock.inconsistent()) {
      try {
        roll_back_locked();
        table_.lock.consistent();
      } catch (...) {
        return -1;
      }
    }
    const std::uint32_t c = count().load(std::memory_order_relaxed);
    if (update > max() - static_cast<std::ptrdiff_t>(c)) return -static_cast<std::int64_t>(c) - 1;
    const int slot = find_own_slot(detail::current_process_identity());
    journal_begin(slot);
    // seq_cst: release for the permit's next acquirer, and Dekker with sleepers.
    count().store(c + static_cast<std::uint32_t>(update), std::memory_order_seq_cst);
    if (slot >= 0) {
      detail::semaphore_undo_slot& s = table_.slots[slot];
      const std::uint32_t u = static_cast<std::uint32_t>(update);
      s.held -= s.held < u ? s.held : u;
      if (s.held == 0) s.owner = {};
    }
    journal_commit();
    plain_.wake(static_cast<std::uint32_t>(update));
    return 0;
  }

  plain plain_;  // the count: the plain semaphore's word, changed under the lock in undo mode
  detail::semaphore_undo_table<UndoSlots> table_;
};

/// A semaphore that supports undo mode (construct it with procsync::undo).
template <std::ptrdiff_t LeastMaxValue = detail::semaphore_value_max, std::size_t Slots = 32>
using undo_semaphore = counting_semaphore<LeastMaxValue, Slots>;

}  // namespace procsync
