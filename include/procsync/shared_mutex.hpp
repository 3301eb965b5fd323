// procsync/shared_mutex.hpp — a robust reader/writer lock shared between
// processes, with the std::shared_mutex shape.
//
// One writer or many readers. Writers do not starve: a writer that has claimed
// the lock (it holds the *gate*) blocks new readers and waits only for the
// readers already inside. Writers queue among themselves on the gate, with
// procsync::mutex's eventual fairness: a writer that has waited 1 ms reserves
// the gate, and a newcomer writer (or the unlocking one, coming straight back)
// then waits behind it; readers are never held back by a reservation.
//
// Built from procsync's robust lock (the one under procsync::mutex): the gate
// is one, and each of `reader_slots` reader slots is one, taken by a reader
// with its TID and linked into its robust list. So the kernel releases what a
// dead thread held, at once and without polling:
//  - A writer that dies releases the gate; the contract is procsync::mutex's:
//    the next writer's lock_robust() returns lock_status::owner_died, it repairs
//    and calls consistent(); unlocking without that poisons the lock (every later
//    lock and lock_shared throws errc::not_recoverable, until clear_poison()).
//    While unrepaired, inconsistent() is true and lock_shared_robust() reports
//    owner_died (readers are let in: they may wait for a repair or report it).
//  - A reader that dies frees its slot, and the kernel wakes a writer waiting
//    on it.
// Waits go through the waiting floor (detail/waiting_floor.hpp). After any one
// death or stop of a waker, every survivor that can proceed does so within one
// re-arm slice (50 ms); where the kernel can hand the wake-up on (a writer dying
// between its release and its wake call, a woken waiter dying), at once.
// More than `reader_slots` reader *threads* at once queue for a slot; every
// released slot rings a doorbell, so a queued reader takes the first slot freed.
//
// Misuse: unlock() by a thread that is not the writer and unlock_shared() by a
// thread that holds no share throw errc::not_owner; lock() or lock_shared() by
// the writer throw errc::would_deadlock, as do lock() by a thread that holds a
// share, and lock_shared() by a reader that would have to wait for a writer
// (recursive shared locking is otherwise allowed, and takes another slot).
//
// Cost: without contention lock_shared/unlock_shared and lock/unlock make no
// system call; lock() reads every slot (32 loads). Size: 33 robust locks of 40
// bytes and an 8-byte doorbell (1328 bytes): a pthread_rwlock_t is 56 bytes but
// forgets dead readers for ever.
// Requirements and limits: procsync::mutex's (mutex.hpp).
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "detail/clock.hpp"
#include "detail/robust_lock.hpp"
#include "detail/timed_lock_api.hpp"
#include "detail/waiting_floor.hpp"
#include "error.hpp"
#include "lock_status.hpp"

namespace procsync {

class shared_mutex : public detail::timed_lock_api<shared_mutex> {
 public:
  static constexpr const char* kind_name = "procsync::shared_mutex";
  static constexpr std::uint32_t layout_version = 2;
  /// Reader threads that can hold a share at the same time.
  static constexpr std::size_t reader_slots = 32;

  /// An unlocked shared_mutex.
  shared_mutex() noexcept = default;
  shared_mutex(const shared_mutex&) = delete;
  shared_mutex& operator=(const shared_mutex&) = delete;

  // ---- exclusive (writer) side -------------------------------------------

  /// Blocks until the caller holds the lock exclusively. After a writer's
  /// death it succeeds with inconsistent() true. Throws errc::would_deadlock
  /// (caller already holds it, either way), errc::not_recoverable.
  void lock() { (void)lock_robust(); }

  /// Like lock(), reporting lock_status::owner_died when a writer died
  /// holding it and nobody has repaired it since.
  [[nodiscard]] lock_status lock_robust() { return acquire(nullptr, true); }

  /// Takes the lock only if no writer holds it and no reader is inside.
  [[nodiscard]] bool try_lock() { return holds(try_lock_robust()); }
  [[nodiscard]] lock_status try_lock_robust() { return acquire(nullptr, false); }

  // try_lock_for, try_lock_until, try_lock_robust_for, try_lock_robust_until:
  // from detail::timed_lock_api (never false early; a deadline on another
  // clock is converted to steady_clock once).

  /// Releases exclusive ownership and lets every waiting reader in. Requires:
  /// the caller is the writer (else errc::not_owner). Unlocking while
  /// inconsistent() makes the lock not recoverable and wakes everyone to learn it.
  void unlock() { gate_.release_to_all(message_name); }

  /// Declares the data repaired after lock_status::owner_died. Requires: the
  /// caller is the writer (else errc::not_owner).
  void consistent() { gate_.make_consistent(message_name); }

  /// Makes a poisoned lock usable again (see mutex::clear_poison()).
  bool clear_poison() noexcept { return gate_.clear_poison(); }

  // ---- shared (reader) side ------------------------------------------------

  /// Blocks until the caller holds a share. Throws errc::not_recoverable if
  /// poisoned, errc::would_deadlock if the caller is the writer or would wait
  /// for a writer while already holding a share.
  void lock_shared() { (void)lock_shared_robust(); }

  /// Like lock_shared(); reports lock_status::owner_died while a dead
  /// writer's data is unrepaired (the share is held either way).
  [[nodiscard]] lock_status lock_shared_robust() { return acquire_shared(nullptr, true); }

  /// Takes a share if no writer holds or waits for the lock and a slot is free.
  [[nodiscard]] bool try_lock_shared() { return holds(acquire_shared(nullptr, false)); }

  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_shared_for(const std::chrono::duration<Rep, Period>& timeout) {
    return try_lock_shared_until(detail::deadline_after(timeout));
  }
  template <class Clock, class Duration>
  [[nodiscard]] bool try_lock_shared_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    timespec storage{};
    return holds(acquire_shared(detail::futex_deadline(detail::to_steady(deadline), storage), true));
  }

  /// Releases one share held by the caller (else errc::not_owner).
  void unlock_shared() {
    const detail::thread_identity& self = detail::current_thread();
    const std::size_t slot = find_own_slot(self.tid);
    if (slot == reader_slots)
      detail::throw_error(errc::not_owner, "procsync::shared_mutex: unlock_shared by thread " +
                                               std::to_string(self.tid) + ", which holds no shared lock");
    slots_[slot].release(self, message_name);  // wakes a writer draining readers
    detail::ring(slot_freed_, 1);
  }

  // ---- observers (racy snapshots unless the caller holds the lock) --------

  /// True from a writer's death until a writer calls consistent().
  [[nodiscard]] bool inconsistent() const noexcept { return gate_.inconsistent(); }
  [[nodiscard]] bool not_recoverable() const noexcept { return gate_.not_recoverable(); }
  /// True if the caller holds the lock exclusively.
  [[nodiscard]] bool owned_by_caller() const { return !gate_.not_recoverable() && gate_.held_by_caller(); }
  /// True if the caller holds at least one share.
  [[nodiscard]] bool shared_by_caller() const { return find_own_slot(detail::current_tid()) != reader_slots; }
  /// Threads holding a share now.
  [[nodiscard]] std::size_t reader_count() const noexcept {
    std::size_t n = 0;
    for (const auto& slot : slots_) n += slot.holder_tid() != 0;
    return n;
  }
  /// TID of the writer (holding or draining readers), 0 if none.
  [[nodiscard]] std::uint32_t writer_tid() const noexcept { return gate_.holder_tid(); }
  /// TID holding reader slot `i` (< reader_slots), 0 if free: a racy snapshot for inspectors.
  [[nodiscard]] std::uint32_t reader_tid(std::size_t i) const noexcept {
    return i < reader_slots ? slots_[i].holder_tid() : 0;
  }
  /// The writer the gate is reserved for (a writer starved among writers,
  /// as mutex::heir_tid()), 0 if none: a racy snapshot for inspectors.
  [[nodiscard]] std::uint32_t heir_tid() const noexcept { return gate_.heir_tid(); }
  /// The writer gate's raw robust lock word (holder TID | owner-died bit | waiters bit, see
  /// detail/robust_list.hpp): one racy load, for inspectors (procsync/inspect.hpp).
  [[nodiscard]] std::uint32_t lock_word() const noexcept { return gate_.word().load(std::memory_order_relaxed); }

 private:
  friend class detail::timed_lock_api<shared_mutex>;
  lock_status acquire_until(detail::steady::time_point deadline) {
    timespec storage{};
    return acquire(detail::futex_deadline(deadline, storage), true);
  }

  // How errors name it ("procsync::" + message_name + ": ..."); kind_name is the layout identity.
  static constexpr const char* message_name = "shared_mutex";
  static constexpr std::uint32_t tid_mask = detail::word_tid_mask;

  // Writer: take the gate (a robust lock), then wait for each slot to empty.
  // The gate CAS and the slot loads are seq_cst, as are a reader's slot CAS
  // and its gate re-check (Dekker): either the writer sees the reader's slot or
  // the reader sees the writer's gate, never neither.
  lock_status acquire(const timespec* deadline, bool may_wait) {
    const lock_status got =
        may_wait ? gate_.acquire_behind_heir(message_name, deadline) : gate_.try_acquire(message_name);
    if (!holds(got)) return got;
    if (no_reader_inside()) [[likely]]
      return got;
    return drain_readers(got, deadline, may_wait);
  }

  // One pass of plain loads over every slot: the writer's half of the Dekker
  // pair when no reader is inside, which is the common case.
  bool no_reader_inside() const noexcept {
    std::uint32_t any = 0;
    for (const auto& slot : slots_) any |= slot.word().load(std::memory_order_seq_cst);
    return (any & tid_mask) == 0;
  }

  [[gnu::noinline]] lock_status drain_readers(lock_status got, const timespec* deadline, bool may_wait) {
    const std::uint32_t self = detail::current_tid();
    detail::robust_wait wait;
    for (auto& slot : slots_) {
      for (;;) {
        const std::uint32_t s = slot.word().load(std::memory_order_seq_cst);
        const std::uint32_t reader = s & tid_mask;
        if (reader == 0) break;  // free, or its reader died (the kernel cleared the TID)
        if (reader == self) {
          abandon_gate();
          throw_would_deadlock("lock by a thread that holds a shared lock");
        }
        bool more = may_wait;
        if (more) {
          try {
            more = slot.sleep_while_held(wait, s, message_name, deadline);
          } catch (...) {
            abandon_gate();
            throw;
          }
        }
        if (!more) {
          abandon_gate();
          return lock_status::unavailable;
        }
      }
    }
    return got;
  }

  // A writer that gives up while draining puts the gate back as it found it:
  // free, and still marked owner_died if it was, so the next writer is told.
  void abandon_gate() { gate_.release_to_all(message_name, true); }

  lock_status acquire_shared(const timespec* deadline, bool may_wait) {
    detail::thread_identity& self = detail::current_thread();
    // The common case, with no writer about and the reader's first slot free:
    // take that slot, then re-check the gate (seq_cst both, as below).
    if (gate_.word().load(std::memory_order_seq_cst) == 0) {
      detail::robust_lock& slot = slots_[first_slot_of(self.tid)];
      if (slot.word().load(std::memory_order_relaxed) == 0 && holds(slot.try_acquire(self, message_name))) {
        // A reader that took the slot after our look and died marks it
        // owner_died: a slot guards no data, and it is ours now either way.
        if (slot.inconsistent()) [[unlikely]]
          slot.make_consistent(message_name);
        if (gate_.word().load(std::memory_order_seq_cst) == 0) [[likely]]
          return lock_status::acquired;
        slot.release(self, message_name);  // a writer came first: let it drain us
        detail::ring(slot_freed_, 1);
      }
    }
    return acquire_shared_contended(self, deadline, may_wait);
  }

  [[gnu::noinline]] lock_status acquire_shared_contended(detail::thread_identity& self_id, const timespec* deadline,
                                                         bool may_wait) {
    const std::uint32_t self = self_id.tid;
    detail::robust_wait wait;
    for (;;) {
      // seq_cst: a reader must see what the last writer wrote (acquire), and
      // this load is the reader's half of the Dekker pair (see acquire()).
      const std::uint32_t gate = gate_.word().load(std::memory_order_seq_cst);
      if (gate == detail::word_not_recoverable) throw_not_recoverable();
      const std::uint32_t writer = gate & tid_mask;
      if (writer != 0) {
        if (writer == self) throw_would_deadlock("lock_shared by the thread that holds it exclusively");
        if (!may_wait) return lock_status::unavailable;
        if (find_own_slot(self) != reader_slots)
          throw_would_deadlock("lock_shared by a reader that would wait for a writer waiting for it");
        if (!gate_.sleep_while_held(wait, gate, message_name, deadline)) return lock_status::unavailable;
        continue;
      }
      // A free gate that still carries `waiters`: its writer died between its
      // release and its wake call, and the kernel woke only us. Pass it on.
      if (gate & detail::word_waiters) gate_.pass_on_wake();
      const std::size_t slot = claim_slot(self_id, deadline, may_wait);
      if (slot == reader_slots) return lock_status::unavailable;
      const std::uint32_t now = gate_.word().load(std::memory_order_seq_cst);
      if ((now & tid_mask) == 0 && now != detail::word_not_recoverable)
        return (now & detail::word_owner_died) ? lock_status::owner_died : lock_status::acquired;
      slots_[slot].release(self_id, message_name);  // a writer came first: let it drain us
      detail::ring(slot_freed_, 1);
    }
  }

  // Takes a free slot (starting at one chosen by TID to spread readers); if
  // none is free, sleeps on the slot-freed doorbell. reader_slots: none taken.
  std::size_t claim_slot(detail::thread_identity& self, const timespec* deadline, bool may_wait) {
    const std::size_t start = first_slot_of(self.tid);
    std::size_t taken = reader_slots;
    auto try_claim = [&](std::uint32_t) {
      for (std::size_t k = 0; k < reader_slots; ++k) {
        const std::size_t i = (start + k) % reader_slots;
        if ((slots_[i].word().load(std::memory_order_relaxed) & tid_mask) != 0) continue;
        const lock_status s = slots_[i].try_acquire(self, message_name);
        if (!holds(s)) continue;
        // A slot guards no data: a dead reader's mark needs no repair.
        if (s == lock_status::owner_died) slots_[i].make_consistent(message_name);
        taken = i;
        return true;
      }
      return false;
    };
    if (try_claim(0) || !may_wait) return taken;
    (void)detail::wait_until_done(slot_freed_, deadline, try_claim);
    return taken;
  }

  // Where a reader starts looking. Slots are 40 bytes, so neighbours share a
  // cache line; processes started together have consecutive TIDs, and
  // multiplying by 5 puts those 5 slots (200 bytes) apart (ids 13 apart are
  // the first to land on neighbouring slots).
  static std::size_t first_slot_of(std::uint32_t tid) noexcept { return (std::size_t{tid} * 5) % reader_slots; }

  std::size_t find_own_slot(std::uint32_t tid) const noexcept {
    const std::size_t start = first_slot_of(tid);
    for (std::size_t k = 0; k < reader_slots; ++k) {
      const std::size_t i = (start + k) % reader_slots;
      if (slots_[i].holder_tid() == tid) return i;
    }
    return reader_slots;
  }

  [[noreturn, gnu::cold]] static void throw_not_recoverable() {
    detail::throw_error(errc::not_recoverable,
                        "procsync::shared_mutex: not recoverable: a writer died holding it and the next writer "
                        "unlocked it without calling consistent()");
  }
  [[noreturn, gnu::cold]] static void throw_would_deadlock(const char* what) {
    detail::throw_error(errc::would_deadlock, std::string("procsync::shared_mutex: ") + what + " (would deadlock)");
  }

  detail::robust_lock gate_{};
  detail::robust_lock slots_[reader_slots]{};
  detail::wait_word slot_freed_{};  // doorbell: rung by every released share that someone waits for
};

static_assert(sizeof(shared_mutex) == 40 * (1 + shared_mutex::reader_slots) + 8);

}  // namespace procsync
