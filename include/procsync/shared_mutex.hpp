// procsync/shared_mutex.hpp — a robust reader/writer lock shared between
// processes, with the std::shared_mutex shape.
//
// One writer or many readers. Writers do not starve: a writer that has claimed
// the lock (it holds the *gate*) blocks new readers and waits only for the
// readers already inside. Writers queue among themselves on the gate.
//
// Robustness, writer side: the gate is a robust futex word (TID of the writer,
// in the writer's kernel robust list, see detail/robust_list.hpp), so a writer
// that dies — SIGKILL, crash, a thread returning — releases it at once, and the
// contract is procsync::mutex's: the next writer's lock_robust() returns
// lock_status::owner_died, it repairs and calls consistent(); if it unlocks
// without doing so the lock becomes not recoverable and every later lock and
// lock_shared throws errc::not_recoverable. While the data is unrepaired,
// inconsistent() is true and lock_shared_robust() reports owner_died (readers
// are let in: they may choose to wait for a repair or to report it).
//
// Robustness, reader side: each reader holds one of `reader_slots` robust
// slots (a futex word with its TID, linked into its robust list). When a reader
// dies holding a share, the kernel clears its slot during the exit and wakes a
// writer waiting on it: detection is immediate (no polling, no timeout), and a
// reused TID is never mistaken for the dead reader. More than `reader_slots`
// simultaneous reader *threads* queue for a free slot.
//
// Misuse: unlock() by a thread that is not the writer and unlock_shared() by a
// thread that holds no share throw errc::not_owner; lock() by the writer, or
// lock_shared() by the writer, throw errc::would_deadlock, as does lock() by a
// thread that holds a share, and lock_shared() by a reader that would have to
// wait for a writer (recursive shared locking is otherwise allowed, and takes
// another slot).
//
// Cost: without contention lock_shared/unlock_shared and lock/unlock make no
// system call; lock() reads every slot (32 loads). A wake is sent only when the
// waiters bit of the word being released is set; releasing the gate wakes all
// its sleepers (readers may all proceed; writers re-queue).
//
// Requirements and limits: as procsync::mutex (shared memory, one PID
// namespace, glibc, do not unmap while holding). Size: 40 bytes per slot plus
// 40 for the gate (1320 bytes): a pthread_rwlock_t is 56 bytes but forgets
// dead readers forever.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <atomic>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <string>

#include "detail/clock.hpp"
#include "detail/futex.hpp"
#include "detail/robust_list.hpp"
#include "detail/robust_lock.hpp"
#include "error.hpp"

namespace procsync {
namespace detail {

/// A robust futex word with its robust-list node, laid out as glibc expects
/// (node 24 bytes after the word). While a thread's TID is in `word` and the
/// node is in its robust list, the kernel marks the word owner_died (TID
/// cleared, waiters bit kept) if the thread dies, and wakes one waiter.
struct robust_cell {
  std::atomic<std::uint32_t> word{0};
  std::uint32_t spare[5] = {};
  robust_node node{};
};

static_assert(offsetof(robust_cell, node) == robust_node_offset,
              "the robust node must sit where glibc's robust list expects it");
static_assert(sizeof(robust_cell) == 40);

}  // namespace detail

class shared_mutex {
 public:
  static constexpr const char* kind_name = "procsync::shared_mutex";
  static constexpr std::uint32_t layout_version = 1;
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

  /// Blocks until acquired or the timeout passes (never returns false early).
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    return holds(try_lock_robust_until(detail::deadline_after(timeout)));
  }
  template <class Clock, class Duration>
  [[nodiscard]] bool try_lock_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    return holds(try_lock_robust_until(deadline));
  }
  template <class Rep, class Period>
  [[nodiscard]] lock_status try_lock_robust_for(const std::chrono::duration<Rep, Period>& timeout) {
    return try_lock_robust_until(detail::deadline_after(timeout));
  }
  /// A deadline on another clock is converted to steady_clock once.
  template <class Clock, class Duration>
  [[nodiscard]] lock_status try_lock_robust_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    const timespec ts = detail::to_timespec(detail::to_steady(deadline));
    return acquire(&ts, true);
  }

  /// Releases exclusive ownership. Requires: the caller is the writer (else
  /// errc::not_owner). Unlocking while inconsistent() makes the lock not
  /// recoverable and wakes everyone to learn it.
  void unlock() {
    const detail::thread_identity& self = detail::current_thread();
    const std::uint32_t seen = gate_.word.load(std::memory_order_relaxed);
    if ((seen & detail::word_tid_mask) != self.tid || seen == detail::word_not_recoverable)
      throw_not_owner("unlock", seen);
    const std::uint32_t next = (seen & detail::word_owner_died) ? detail::word_not_recoverable : 0;
    release_cell(self, gate_, next, next == detail::word_not_recoverable);
  }

  /// Declares the data repaired after lock_status::owner_died. Requires: the
  /// caller is the writer (else errc::not_owner).
  void consistent() {
    const std::uint32_t seen = gate_.word.load(std::memory_order_relaxed);
    if ((seen & detail::word_tid_mask) != detail::current_tid() || seen == detail::word_not_recoverable)
      throw_not_owner("consistent", seen);
    // Relaxed: only the writer changes this bit while it holds the gate, and
    // its unlock (release) publishes it.
    gate_.word.fetch_and(~detail::word_owner_died, std::memory_order_relaxed);
  }

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
    const timespec ts = detail::to_timespec(detail::to_steady(deadline));
    return holds(acquire_shared(&ts, true));
  }

  /// Releases one share held by the caller (else errc::not_owner).
  void unlock_shared() {
    const detail::thread_identity& self = detail::current_thread();
    const std::size_t slot = find_own_slot(self.tid);
    if (slot == reader_slots)
      detail::throw_error(errc::not_owner, "procsync::shared_mutex: unlock_shared by thread " +
                                               std::to_string(self.tid) + ", which holds no shared lock");
    release_cell(self, slots_[slot], 0, false);
  }

  // ---- observers (racy snapshots unless the caller holds the lock) --------

  /// True from a writer's death until a writer calls consistent().
  [[nodiscard]] bool inconsistent() const noexcept {
    const std::uint32_t w = gate_.word.load(std::memory_order_relaxed);
    return w != detail::word_not_recoverable && (w & detail::word_owner_died) != 0;
  }
  [[nodiscard]] bool not_recoverable() const noexcept {
    return gate_.word.load(std::memory_order_relaxed) == detail::word_not_recoverable;
  }
  /// True if the caller holds the lock exclusively.
  [[nodiscard]] bool owned_by_caller() const {
    const std::uint32_t w = gate_.word.load(std::memory_order_relaxed);
    return w != detail::word_not_recoverable && (w & detail::word_tid_mask) == detail::current_tid();
  }
  /// True if the caller holds at least one share.
  [[nodiscard]] bool shared_by_caller() const { return find_own_slot(detail::current_tid()) != reader_slots; }
  /// Threads holding a share now.
  [[nodiscard]] std::size_t reader_count() const noexcept {
    std::size_t n = 0;
    for (const auto& slot : slots_) n += (slot.word.load(std::memory_order_relaxed) & detail::word_tid_mask) != 0;
    return n;
  }
  /// TID of the writer (holding or draining readers), 0 if none.
  [[nodiscard]] std::uint32_t writer_tid() const noexcept {
    const std::uint32_t w = gate_.word.load(std::memory_order_relaxed);
    return w == detail::word_not_recoverable ? 0 : (w & detail::word_tid_mask);
  }

 private:
  static constexpr std::uint32_t tid_mask = detail::word_tid_mask;
  static constexpr std::uint32_t waiters = detail::word_waiters;
  static constexpr std::uint32_t died = detail::word_owner_died;
  static constexpr std::uint32_t poisoned = detail::word_not_recoverable;

  // Writer: claim the gate (robust, like mutex), then wait for each slot to
  // empty. The gate CAS and the slot loads are seq_cst, as are a reader's slot
  // CAS and its gate re-check (Dekker): either the writer sees the reader's
  // slot or the reader sees the writer's gate, never neither.
  lock_status acquire(const timespec* deadline, bool may_wait) {
    detail::thread_identity& self = detail::current_thread();
    detail::set_pending(self, &gate_.node);
    std::uint32_t mark = 0;  // once we slept, take the gate with `waiters` so our unlock wakes the rest
    std::uint32_t seen = gate_.word.load(std::memory_order_relaxed);
    std::uint32_t previous = 0;
    for (;;) {
      if (seen == poisoned) {
        detail::clear_pending(self);
        throw_not_recoverable();
      }
      const std::uint32_t owner = seen & tid_mask;
      if (owner == 0) {
        if (gate_.word.compare_exchange_weak(seen, seen | self.tid | mark, std::memory_order_seq_cst,
                                             std::memory_order_relaxed)) {
          detail::robust_enqueue(self, &gate_.node);
          detail::clear_pending(self);
          previous = seen;
          break;
        }
        continue;
      }
      if (owner == self.tid) {
        detail::clear_pending(self);
        throw_would_deadlock("lock by the thread that already holds it exclusively");
      }
      if (!may_wait) {
        detail::clear_pending(self);
        return lock_status::unavailable;
      }
      if (!(seen & waiters) &&
          !gate_.word.compare_exchange_weak(seen, seen | waiters, std::memory_order_relaxed))
        continue;
      mark = waiters;
      if (detail::futex_wait(&gate_.word, seen | waiters, deadline) == detail::wait_result::timed_out) {
        detail::clear_pending(self);
        return lock_status::unavailable;
      }
      seen = gate_.word.load(std::memory_order_relaxed);
    }
    // Drain the readers already inside; new ones see the gate and back off.
    for (auto& slot : slots_) {
      for (;;) {
        std::uint32_t s = slot.word.load(std::memory_order_seq_cst);
        const std::uint32_t reader = s & tid_mask;
        if (reader == 0) break;  // free, or its reader died (the kernel cleared the TID)
        if (reader == self.tid) {
          abandon_gate(self, previous);
          throw_would_deadlock("lock by a thread that holds a shared lock");
        }
        if (!may_wait) {
          abandon_gate(self, previous);
          return lock_status::unavailable;
        }
        if (!(s & waiters) && !slot.word.compare_exchange_weak(s, s | waiters, std::memory_order_seq_cst))
          continue;
        if (detail::futex_wait(&slot.word, s | waiters, deadline) == detail::wait_result::timed_out) {
          abandon_gate(self, previous);
          return lock_status::unavailable;
        }
      }
    }
    return (previous & died) ? lock_status::owner_died : lock_status::acquired;
  }

  // A writer that gives up while draining puts the gate back as it found it:
  // free, and still marked owner_died if it was, so the next writer is told.
  void abandon_gate(detail::thread_identity& self, std::uint32_t previous) {
    release_cell(self, gate_, previous & died, false);
  }

  lock_status acquire_shared(const timespec* deadline, bool may_wait) {
    detail::thread_identity& self = detail::current_thread();
    for (;;) {
      // Acquire: a reader must see what the last writer wrote.
      std::uint32_t gate = gate_.word.load(std::memory_order_seq_cst);
      if (gate == poisoned) throw_not_recoverable();
      const std::uint32_t writer = gate & tid_mask;
      if (writer != 0) {
        if (writer == self.tid) throw_would_deadlock("lock_shared by the thread that holds it exclusively");
        if (!may_wait) return lock_status::unavailable;
        if (find_own_slot(self.tid) != reader_slots)
          throw_would_deadlock("lock_shared by a reader that would wait for a writer waiting for it");
        if (!(gate & waiters) &&
            !gate_.word.compare_exchange_weak(gate, gate | waiters, std::memory_order_relaxed))
          continue;
        // Pending while asleep: if the kernel wakes us (its one wake after a
        // writer's death) and we die before passing it on, it wakes another.
        detail::set_pending(self, &gate_.node);
        const auto r = detail::futex_wait(&gate_.word, gate | waiters, deadline);
        pass_on_wake();
        detail::clear_pending(self);
        if (r == detail::wait_result::timed_out) return lock_status::unavailable;
        continue;
      }
      if (gate & waiters) {  // only after a writer's death: the kernel woke just one sleeper
        pass_on_wake();
        continue;
      }
      const std::size_t slot = claim_slot(self, deadline, may_wait);
      if (slot == reader_slots) return lock_status::unavailable;
      gate = gate_.word.load(std::memory_order_seq_cst);
      if ((gate & tid_mask) == 0 && gate != poisoned) return (gate & died) ? lock_status::owner_died : lock_status::acquired;
      release_cell(self, slots_[slot], 0, false);  // a writer came first: let it drain us
    }
  }

  // The gate is free but still carries `waiters`: the kernel woke one sleeper
  // when the writer died. Clear the bit and wake them all (readers may all go).
  void pass_on_wake() noexcept {
    std::uint32_t gate = gate_.word.load(std::memory_order_relaxed);
    // Relaxed: the bit only routes wake-ups; the data is ordered by the gate loads.
    while ((gate & tid_mask) == 0 && gate != poisoned && (gate & waiters)) {
      if (gate_.word.compare_exchange_weak(gate, gate & ~waiters, std::memory_order_relaxed)) {
        detail::futex_wake_all(&gate_.word);
        return;
      }
    }
  }

  // Takes a free slot (starting at one chosen by TID to spread readers), or
  // sleeps on a busy one until it frees. Returns reader_slots on timeout.
  std::size_t claim_slot(detail::thread_identity& self, const timespec* deadline, bool may_wait) {
    const std::size_t start = self.tid % reader_slots;
    for (;;) {
      for (std::size_t k = 0; k < reader_slots; ++k) {
        const std::size_t i = (start + k) % reader_slots;
        std::uint32_t s = slots_[i].word.load(std::memory_order_relaxed);
        if ((s & tid_mask) != 0) continue;
        detail::set_pending(self, &slots_[i].node);
        // seq_cst: see the Dekker note at acquire(). Keep `waiters`: someone sleeps on it.
        if (slots_[i].word.compare_exchange_strong(s, self.tid | (s & waiters), std::memory_order_seq_cst,
                                                   std::memory_order_relaxed)) {
          detail::robust_enqueue(self, &slots_[i].node);
          detail::clear_pending(self);
          return i;
        }
        detail::clear_pending(self);
      }
      if (!may_wait) return reader_slots;
      std::uint32_t s = slots_[start].word.load(std::memory_order_relaxed);
      if ((s & tid_mask) == 0) continue;
      if (!(s & waiters) && !slots_[start].word.compare_exchange_weak(s, s | waiters, std::memory_order_relaxed))
        continue;
      if (detail::futex_wait(&slots_[start].word, s | waiters, deadline) == detail::wait_result::timed_out)
        return reader_slots;
    }
  }

  std::size_t find_own_slot(std::uint32_t tid) const noexcept {
    const std::size_t start = tid % reader_slots;
    for (std::size_t k = 0; k < reader_slots; ++k) {
      const std::size_t i = (start + k) % reader_slots;
      const std::uint32_t s = slots_[i].word.load(std::memory_order_relaxed);
      if (s != poisoned && (s & tid_mask) == tid) return i;
    }
    return reader_slots;
  }

  // Unlinks a held cell from the caller's robust list and stores `next`.
  // Release: the next holder (or the writer draining readers) must see our
  // accesses. Pending covers a death between the unlink and the store.
  static void release_cell(const detail::thread_identity& self, detail::robust_cell& cell, std::uint32_t next,
                           bool wake_always) {
    detail::set_pending(self, &cell.node);
    detail::robust_dequeue(&cell.node);
    const std::uint32_t before = cell.word.exchange(next, std::memory_order_release);
    if (wake_always || (before & waiters)) detail::futex_wake_all(&cell.word);
    detail::clear_pending(self);
  }

  [[noreturn]] static void throw_not_recoverable() {
    detail::throw_error(errc::not_recoverable,
                        "procsync::shared_mutex: not recoverable: a writer died holding it and the next writer "
                        "unlocked it without calling consistent()");
  }
  [[noreturn]] static void throw_would_deadlock(const char* what) {
    detail::throw_error(errc::would_deadlock, std::string("procsync::shared_mutex: ") + what + " (would deadlock)");
  }
  [[noreturn]] static void throw_not_owner(const char* op, std::uint32_t seen) {
    const std::uint32_t holder = seen == poisoned ? 0 : (seen & tid_mask);
    detail::throw_error(errc::not_owner, std::string("procsync::shared_mutex: ") + op + " by thread " +
                                             std::to_string(detail::current_tid()) +
                                             ", which is not the writer (" +
                                             (holder ? "held by thread " + std::to_string(holder)
                                                     : std::string("not held exclusively")) +
                                             ")");
  }

  detail::robust_cell gate_{};
  detail::robust_cell slots_[reader_slots]{};
};

static_assert(sizeof(shared_mutex) == 40 * (1 + shared_mutex::reader_slots));

}  // namespace procsync
