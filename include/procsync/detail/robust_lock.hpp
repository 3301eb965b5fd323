// procsync/detail/robust_lock.hpp — the 40-byte robust futex lock under
// procsync::mutex, recursive_mutex, checked_mutex and each cell of shared_mutex.
//
// Word states (the kernel's robust-futex format, see robust_list.hpp):
//   0                         free
//   tid [| waiters]           held by thread `tid`; `waiters`: someone may sleep
//   owner_died [| waiters]    free: the holder died; the next owner must repair
//   tid | owner_died [| w]    held by `tid`, data inconsistent until consistent()
//   not_recoverable           poisoned: unlocked while inconsistent
//   waiters                   free, sleepers may exist (shared_mutex's gate after
//                             release_to_all(); any lock released to its heir)
// The kernel writes `owner_died [| waiters]` when the holder dies and wakes one
// waiter. Everyone else only ever CASes the word; only the holder clears it.
//
// Eventual fairness (the waiting floor's policy 5): `heir_` names one waiter
// that has waited longer than starvation_bound_ns. While it is set, an unlock
// that finds sleepers leaves the word `waiters` instead of 0 (so a newcomer's
// fast path, which needs 0, fails) and wakes the heir alone; other waiters in
// acquire_contended() leave a free, reserved lock to the heir. A reservation
// never owns anything: a heir that dies, stops or is too slow loses it to the
// first waiter that sees the lock free and unused heir_patience_ns after it was
// reserved or last released to the heir (`reserved_ms_`, stamped by the claim
// and by such unlocks), and a death mark (owner_died) ends it at once.
// try_acquire() ignores it (as pthread_mutex_trylock barges).
// Sleeping goes through the waiting floor (waiting_floor.hpp), with this lock
// as the sleeper's robust-list pending op, so the kernel hands on a wake-up
// whose receiver died.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <time.h>

#include "../error.hpp"
#include "../lock_status.hpp"
#include "futex.hpp"
#include "robust_list.hpp"
#include "thread_identity.hpp"
#include "waiting_floor.hpp"

namespace procsync::detail {

class robust_lock {
 public:
  constexpr robust_lock() noexcept = default;
  constexpr explicit robust_lock(owner_death policy) noexcept : policy_(static_cast<std::uint32_t>(policy)) {}
  robust_lock(const robust_lock&) = delete;
  robust_lock& operator=(const robust_lock&) = delete;

  /// Blocks until acquired or `deadline` (nullptr: forever) passes.
  lock_status acquire(const char* kind, const timespec* deadline) { return acquire(current_thread(), kind, deadline); }
  /// The same, for a caller that already has its identity (one TLS check per call).
  lock_status acquire(thread_identity& self, const char* kind, const timespec* deadline) {
    if (take_if_clean(self)) [[likely]]
      return lock_status::acquired;
    set_pending(self, &node_);
    return acquire_contended(self, kind, deadline);
  }
  /// acquire() for a lock released by release_to_all() (shared_mutex's gate),
  /// which frees the word to 0 for the readers even when a waiter has reserved
  /// it: here the reservation itself turns a newcomer from the fast path.
  lock_status acquire_behind_heir(const char* kind, const timespec* deadline) {
    thread_identity& self = current_thread();
    // Relaxed: the reservation only routes; acquire_contended() decides by the word's CAS.
    if (heir_.load(std::memory_order_relaxed) == 0 && take_if_clean(self)) [[likely]]
      return lock_status::acquired;
    set_pending(self, &node_);
    return acquire_contended(self, kind, deadline);
  }

  /// The uncontended path alone: takes the lock if it is free and clean (no
  /// owner_died mark, no waiters); false, with nothing changed, otherwise.
  /// recursive_mutex tries it before looking at the word, so a contended
  /// lock's line is not first fetched for reading and then again to write.
  bool take_if_clean(thread_identity& self) noexcept {
    set_pending(self, &node_);
    std::uint32_t expected = 0;
    // Acquire: the critical section must see everything the last holder wrote.
    // seq_cst rather than acquire: the same lock cmpxchg on x86, and it makes the
    // CAS one half of shared_mutex's Dekker pair between gate and reader slots.
    if (word_.compare_exchange_strong(expected, self.tid, std::memory_order_seq_cst, std::memory_order_relaxed))
      [[likely]] {
      robust_enqueue(self, &node_);
      clear_pending(self);
      return true;
    }
    clear_pending(self);
    return false;
  }

  lock_status try_acquire(const char* kind) { return try_acquire(current_thread(), kind); }
  lock_status try_acquire(thread_identity& self, const char* kind) {
    set_pending(self, &node_);
    std::uint32_t seen = word_.load(std::memory_order_relaxed);
    while ((seen & word_tid_mask) == 0) {
      // seq_cst: as in acquire(); keep `waiters`, which belongs to the sleepers.
      if (word_.compare_exchange_weak(seen, seen | self.tid, std::memory_order_seq_cst, std::memory_order_relaxed))
        return took_ownership(self, seen);
    }
    clear_pending(self);
    if (seen == word_not_recoverable) throw_not_recoverable(kind);
    if ((seen & word_tid_mask) == self.tid) throw_would_deadlock(kind);
    return lock_status::unavailable;
  }

  /// Releases the lock and wakes one sleeper (mutex hand-off).
  void release(const char* kind) { release(current_thread(), kind); }
  void release(const thread_identity& self, const char* kind) {
    release_seen(self, word_.load(std::memory_order_relaxed), kind);
  }
  /// release() given the word the caller has just loaded (recursive_mutex,
  /// which reads it first to tell a nested unlock from the last).
  void release_seen(const thread_identity& self, std::uint32_t seen, const char* kind) {
    // Fast path: held by us, consistent. A TID never reaches word_tid_mask
    // (pid_max <= 2^22), so this also rules out not_recoverable.
    if ((seen & ~word_waiters) != self.tid) [[unlikely]]
      return release_exceptional(self, kind);
    set_pending(self, &node_);
    robust_dequeue(&node_);
    // With sleepers, a reserved lock is freed to `waiters`, which no fast path takes.
    const std::uint32_t next = (seen & word_waiters) ? free_value_for_sleepers() : 0;
    // Release: the next holder must see our writes. seq_cst: the same xchg on
    // x86; it orders the release before a later check for sleepers elsewhere
    // (shared_mutex's slot-freed bell) and before wake_next()'s look at the heir.
    if (word_.exchange(next, std::memory_order_seq_cst) & word_waiters) wake_next();
    clear_pending(self);
  }

  /// Releases the lock and wakes every sleeper (shared_mutex's gate: all the
  /// readers may go). The waiters bit stays set until the wake call is made, so
  /// if we die between the two, whoever the kernel wakes sees it and passes
  /// the wake-up on (pass_on_wake()). `keep_died` puts back an owner_died mark
  /// that was never repaired (a writer giving up before it entered).
  void release_to_all(const char* kind, bool keep_died = false) {
    const std::uint32_t before = release_word(kind, word_waiters, keep_died);
    if (before == word_not_recoverable || (before & word_waiters)) {
      futex_wake_all(&word_);
      // Relaxed: the bit only routes wake-ups. Fails harmlessly if taken meanwhile.
      std::uint32_t sticky = word_waiters | (keep_died ? (before & word_owner_died) : 0);
      word_.compare_exchange_strong(sticky, sticky & ~word_waiters, std::memory_order_relaxed);
    }
    clear_pending(current_thread());
  }

  /// Marks the data repaired after lock_status::owner_died.
  void make_consistent(const char* kind) {
    const std::uint32_t seen = word_.load(std::memory_order_relaxed);
    if ((seen & word_tid_mask) != current_tid() || seen == word_not_recoverable) throw_not_owner(kind, seen);
    // Relaxed: only the holder touches this bit, and release() publishes it.
    word_.fetch_and(~word_owner_died, std::memory_order_relaxed);
  }

  /// Returns a poisoned (not recoverable) lock to free, for a caller who knows
  /// the data is sound again. Returns false if it was not poisoned.
  bool clear_poison() noexcept {
    std::uint32_t poisoned = word_not_recoverable;
    // Release: the caller's repairs are seen by the next holder.
    return word_.compare_exchange_strong(poisoned, 0, std::memory_order_release, std::memory_order_relaxed);
  }

  bool held_by_caller() const { return held_by(current_thread()); }
  // A TID never equals word_tid_mask, so a poisoned word is held by no one.
  bool held_by(const thread_identity& self) const noexcept {
    return (word_.load(std::memory_order_relaxed) & word_tid_mask) == self.tid;
  }
  bool inconsistent() const noexcept {
    const std::uint32_t w = word_.load(std::memory_order_relaxed);
    return w != word_not_recoverable && (w & word_owner_died) != 0;
  }
  bool not_recoverable() const noexcept { return word_.load(std::memory_order_relaxed) == word_not_recoverable; }

  /// The TID of the waiter the lock is reserved for, 0 when none (a snapshot).
  std::uint32_t heir_tid() const noexcept { return heir_.load(std::memory_order_relaxed); }

  /// The TID of the holder, 0 when free (a snapshot, for diagnostics).
  std::uint32_t holder_tid() const noexcept {
    const std::uint32_t w = word_.load(std::memory_order_relaxed);
    return w == word_not_recoverable ? 0 : (w & word_tid_mask);
  }

  /// The lock word itself, for shared_mutex's readers (who look at the gate
  /// without taking it) and for diagnostics.
  std::atomic<std::uint32_t>& word() noexcept { return word_; }
  const std::atomic<std::uint32_t>& word() const noexcept { return word_; }

  /// Sleeps once while the word still reads `seen` (someone holds the lock),
  /// after setting the waiters bit; with this lock as the caller's pending op
  /// while asleep (the waiting floor's policy 2). Returns false when `deadline`
  /// passed, true otherwise (re-check the word). Used by shared_mutex readers,
  /// who wait for a writer without taking the lock.
  bool sleep_while_held(robust_wait& wait, std::uint32_t seen, const char* kind, const timespec* deadline) {
    if (!(seen & word_waiters) &&
        !word_.compare_exchange_strong(seen, seen | word_waiters, std::memory_order_relaxed))
      return true;  // changed: re-check
    const thread_identity& self = current_thread();
    set_pending(self, &node_);
    bool more = true;
    try {
      more = wait.sleep(word_, seen | word_waiters, deadline, *this, kind);
    } catch (...) {
      clear_pending(self);
      throw;
    }
    clear_pending(self);
    return more;
  }

  /// After a wake-up on a free lock that still carries `waiters` (its holder
  /// died between releasing and waking, and the kernel woke only us): clear the
  /// bit and wake everyone, so no sleeper depends on a dead waker.
  void pass_on_wake() noexcept {
    std::uint32_t w = word_.load(std::memory_order_relaxed);
    // Relaxed: the bit only routes wake-ups; the data is ordered by the callers' loads.
    while ((w & word_tid_mask) == 0 && (w & word_waiters)) {
      if (word_.compare_exchange_weak(w, w & ~word_waiters, std::memory_order_relaxed)) {
        futex_wake_all(&word_);
        return;
      }
    }
  }

  // Per-lock data of the wrappers, in the spare room of the 40 bytes.
  // recursive_mutex: the levels held beyond the first.
  std::uint32_t& recursion_extra_levels() noexcept { return recursion_extra_levels_; }
  std::uint32_t lock_class() const noexcept { return lock_class_; }  // checked_mutex: class id + 1; 0: none
  void set_lock_class(std::uint32_t id_plus_one) noexcept { lock_class_ = id_plus_one; }
  owner_death policy() const noexcept { return static_cast<owner_death>(policy_); }

 private:
  /// The common part of both releases: checks ownership, unlinks, and swaps in
  /// `free_value` (or not_recoverable). Returns the word before. Leaves the
  /// pending op set: the caller wakes, then clears it.
  std::uint32_t release_word(const char* kind, std::uint32_t free_value, bool keep_died = false) {
    const std::uint32_t seen = word_.load(std::memory_order_relaxed);
    const thread_identity& self = current_thread();
    if ((seen & word_tid_mask) != self.tid || seen == word_not_recoverable) throw_not_owner(kind, seen);
    set_pending(self, &node_);
    robust_dequeue(&node_);
    const bool died = (seen & word_owner_died) != 0;
    (void)stamp_if_reserved();
    // Unlocking while inconsistent poisons the lock for good (pthread's
    // ENOTRECOVERABLE) — unless the holder gives up before using the data.
    std::uint32_t next = free_value & ((seen & word_waiters) | ~word_waiters);
    if (died) next = keep_died ? (next | word_owner_died) : word_not_recoverable;
    // Release: the next holder must see our writes. seq_cst: the same xchg on
    // x86; it orders the release before a later check for sleepers elsewhere
    // (shared_mutex's slot-freed bell).
    const std::uint32_t before = word_.exchange(next, std::memory_order_seq_cst);
    return next == word_not_recoverable ? word_not_recoverable : before;
  }

  /// release() when the word is not simply ours: not held by the caller
  /// (throws), inconsistent (poisons it) or poisoned (throws).
  [[gnu::noinline, gnu::cold]] void release_exceptional(const thread_identity& self, const char* kind) {
    const std::uint32_t before = release_word(kind, 0);
    if (before == word_not_recoverable)
      futex_wake_all(&word_);
    else if (before & word_waiters)
      futex_wake(&word_, 1);
    clear_pending(self);
  }

  // Policy 5, the unlocker's side. seq_cst loads: with the heir's seq_cst claim
  // and our seq_cst exchange, either we see the claim or the heir, reading the
  // word after its claim, finds the lock free.
  std::uint32_t free_value_for_sleepers() noexcept { return stamp_if_reserved() ? word_waiters : 0; }
  // Whether a heir is waiting; if so, its patience starts again now (at this unlock).
  bool stamp_if_reserved() noexcept {
    if (heir_.load(std::memory_order_seq_cst) == 0) return false;
    stamp_reservation();
    return true;
  }
  // Relaxed: ordered before the word's release by the exchange that follows
  // (or the claim's seq_cst CAS); a stale stamp only moves the patience.
  void stamp_reservation() noexcept { reserved_ms_.store(reservation_clock_ms(), std::memory_order_relaxed); }
  // Wakes the heir alone (only it sleeps with heir_wake_bit). If it was not
  // asleep (awake, stopped or dead), nobody else needs waking: every sleeper
  // looks again within a slice, and the patience runs on the lock's stamp.
  void wake_next() noexcept {
    if (heir_.load(std::memory_order_seq_cst) != 0) {
      futex_wake_bitset(&word_, 1, heir_wake_bit);
      return;
    }
    futex_wake(&word_, 1);
  }

  // Policy 5, a waiter's side: may it take the free lock word `seen` now?
  bool may_take(const thread_identity& self, std::uint32_t seen, robust_wait& wait) noexcept {
    std::uint32_t heir = heir_.load(std::memory_order_relaxed);
    // A death mark ends any reservation: recovery never waits for a heir.
    if (heir == 0 || heir == self.tid || (seen & word_owner_died)) return true;
    // Acquire: pairs with the exchange that freed the word, so the stamp read is
    // the one written before it (the word itself was loaded relaxed).
    std::atomic_thread_fence(std::memory_order_acquire);
    if (!wait.reservation_expired(reserved_ms_.load(std::memory_order_relaxed))) return false;
    // Relaxed: the reservation only routes wake-ups; the word's CAS decides.
    // Fails harmlessly if the heir changed meanwhile.
    heir_.compare_exchange_strong(heir, 0, std::memory_order_relaxed);
    return true;
  }
  void claim_reservation(const thread_identity& self) noexcept {
    stamp_reservation();  // before the claim is seen, so nobody reads an older one with it
    std::uint32_t none = 0;
    // seq_cst: the heir's half of the pair with the unlocker (see wake_next()).
    heir_.compare_exchange_strong(none, self.tid, std::memory_order_seq_cst, std::memory_order_relaxed);
  }
  // Ends our reservation, if we hold one; returns whether we did.
  bool end_reservation(const thread_identity& self) noexcept {
    std::uint32_t mine = self.tid;
    // Relaxed: routing only; the word we now hold (or gave up) is what counts.
    return heir_.load(std::memory_order_relaxed) == mine &&
           heir_.compare_exchange_strong(mine, 0, std::memory_order_relaxed);
  }
  // Taken: a death mark ends anyone's reservation (its heir may be the dead
  // holder, whose stale claim would make every later unlock wait for nobody).
  void reservation_after_taking(const thread_identity& self, std::uint32_t previous) noexcept {
    if (previous & word_owner_died)
      heir_.store(0, std::memory_order_relaxed);
    else
      (void)end_reservation(self);
  }
  // Leaving without the lock: drop our reservation, and if the lock sits free
  // (perhaps released to us), pass on the wake-up nobody else was sent.
  void leave_without_lock(const thread_identity& self) noexcept {
    if (end_reservation(self) && (word_.load(std::memory_order_seq_cst) & word_tid_mask) == 0)
      futex_wake(&word_, 1);
    clear_pending(self);
  }

  lock_status took_ownership(thread_identity& self, std::uint32_t previous) {
    robust_enqueue(self, &node_);
    clear_pending(self);
    if (!(previous & word_owner_died)) return lock_status::acquired;
    // A lock whose data a death cannot tear is consistent again at once; the
    // death is still reported to robust callers.
    // Relaxed: we hold the lock; only the holder changes this bit.
    if (policy() == owner_death::nothing_to_repair) word_.fetch_and(~word_owner_died, std::memory_order_relaxed);
    return lock_status::owner_died;
  }

  [[gnu::noinline]] lock_status acquire_contended(thread_identity& self, const char* kind, const timespec* deadline) {
    // Once we have slept, other sleepers may exist that nobody else knows of:
    // take the lock with `waiters` set so our unlock wakes the next one.
    std::uint32_t mark = 0;
    robust_wait wait;
    // Policy 4: leave the line to the holder for a moment before the first look.
    pause_without_looking();
    std::uint32_t seen = word_.load(std::memory_order_relaxed);
    for (;;) {
      if (seen == word_not_recoverable) {
        leave_without_lock(self);
        throw_not_recoverable(kind);
      }
      const std::uint32_t owner = seen & word_tid_mask;
      if (owner == 0 && may_take(self, seen, wait)) {
        if (word_.compare_exchange_weak(seen, seen | self.tid | mark, std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
          reservation_after_taking(self, seen);
          return took_ownership(self, seen);
        }
        continue;
      }
      if (owner == self.tid) {
        leave_without_lock(self);
        throw_would_deadlock(kind);
      }
      if (!(seen & word_waiters) &&
          !word_.compare_exchange_weak(seen, seen | word_waiters, std::memory_order_relaxed))
        continue;
      mark = word_waiters;
      const bool heir = heir_.load(std::memory_order_relaxed) == self.tid;
      bool more = true;
      try {
        more = wait.sleep(word_, seen | word_waiters, deadline, *this, kind, heir);
      } catch (...) {
        leave_without_lock(self);
        throw;
      }
      if (!more) {
        leave_without_lock(self);
        return lock_status::unavailable;
      }
      if (!heir && heir_.load(std::memory_order_relaxed) == 0 && wait.starving()) claim_reservation(self);
      seen = word_.load(std::memory_order_relaxed);
    }
  }

  [[noreturn, gnu::cold]] static void throw_not_recoverable(const char* kind) {
    throw_error(errc::not_recoverable, std::string("procsync::") + kind +
                                           ": not recoverable: a previous owner died holding it and the next "
                                           "owner unlocked it without calling consistent()");
  }
  [[noreturn, gnu::cold]] static void throw_would_deadlock(const char* kind) {
    throw_error(errc::would_deadlock, std::string("procsync::") + kind +
                                          ": lock by the thread that already holds it (would deadlock)");
  }
  [[noreturn, gnu::cold]] void throw_not_owner(const char* kind, std::uint32_t seen) const {
    const std::uint32_t holder = seen == word_not_recoverable ? 0 : (seen & word_tid_mask);
    throw_error(errc::not_owner, std::string("procsync::") + kind + ": released by thread " +
                                     std::to_string(current_tid()) + ", which does not own it (" +
                                     (holder ? "held by thread " + std::to_string(holder) : std::string("not held")) +
                                     ")");
  }

  std::atomic<std::uint32_t> word_{0};
  std::uint32_t recursion_extra_levels_ = 0;
  std::uint32_t lock_class_ = 0;
  std::uint32_t policy_ = 0;
  std::atomic<std::uint32_t> heir_{0};  // policy 5: the starved waiter this lock is reserved for; 0: none
  std::atomic<std::uint32_t> reserved_ms_{0};  // policy 5: reservation_clock_ms() of the claim or last unlock to the heir
  robust_node node_{};

  friend struct robust_lock_layout;
};

struct robust_lock_layout {
  static_assert(offsetof(robust_lock, node_) - offsetof(robust_lock, word_) == robust_node_offset,
                "the robust node must sit where glibc's robust list expects it");
};

static_assert(sizeof(robust_lock) == 40);

}  // namespace procsync::detail
