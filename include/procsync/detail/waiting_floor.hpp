// procsync/detail/waiting_floor.hpp — the only place where procsync sleeps.
//
// Every blocking call of every primitive ends in one of two waits here:
//  - wait_until_done(): a 32-bit futex word plus a count of sleepers (semaphore
//    count, event state, condition sequence, barrier phase). A waker changes the
//    word with a seq_cst read-modify-write and then reads `sleepers`; a sleeper
//    increments `sleepers` (seq_cst) and then re-reads the word before it sleeps
//    on it. Either the waker sees the sleeper, or the sleeper sees the change
//    (a Dekker pair): no lost wake-up, and no syscall when nobody sleeps.
//  - sleep_on_robust_word(): a lock word in the kernel's robust-futex format
//    (mutex, shared_mutex gate and reader slots), with the caller's robust-list
//    `list_op_pending` pointing at the lock while it sleeps.
//
// The policy for deaths and stops, decided once, here:
//  1. Every sleep is cut into re-arm slices of at most `rearm_slice` (50 ms).
//     After each slice the waiter re-reads the word and re-checks its
//     condition. That bounds every stall that no one is left to end: a waker
//     killed (or stopped) between its change and its futex wake, and a woken
//     waiter killed (or stopped) before it used the wake-up it was handed. The
//     survivors proceed within one slice plus scheduling. It costs one futex
//     call per slice per sleeper (20/s), nothing on any path without sleepers.
//  2. Where the word has the robust format, the kernel does better: a thread that
//     dies with list_op_pending set on a lock whose TID bits are zero makes the
//     kernel wake one sleeper (its "pending op" rule). Robust waiters keep
//     list_op_pending on the lock while asleep, so a waiter killed after its
//     wake-up and before its acquisition hands the wake-up on at once; so does
//     an unlocker killed between its releasing exchange and its wake call.
//     (Only robust-format words may be pending: on any other word the kernel
//     would OR the owner-died bit into a value whose low bits equal the TID.)
//  3. Conditions that need a look at other processes (a dead undo-semaphore
//     holder, a dead barrier party, a deadlock) are checked between slices by
//     the caller's `between_slices` step: no primitive writes its own loop.
//  4. No spinning on a lock word before sleeping, but one pause before looking.
//     Measured (bench_mutex, 2 vCPUs, same run): a 100-iteration spin cost
//     40 % of contended throughput — the spinner's loads steal the line from
//     the holder about to release it; shorter spins (8, 32, 128 pauses)
//     changed nothing, as the holder retakes the lock within nanoseconds and
//     a spinner almost never sees it free. What helps is not looking: a
//     robust lock's contended acquisition first waits `contended_pause_ns`
//     (2 us) in pause_without_looking(), touching no shared memory, then looks
//     and, if the lock is still held, sleeps as below. Meanwhile the holder
//     keeps the line and gets through more critical sections, and the first
//     look often finds the lock free, so fewer acquisitions enter the kernel
//     (docs/benchmarks.md has the numbers, 0.5-2 us tried). It is a pause, not
//     a wait: once per acquisition, never in the kernel, bounded by the clock.
//  5. Eventual fairness for robust locks. A waiter that has waited longer than
//     `starvation_bound` (1 ms) since its first sleep may reserve the lock
//     (robust_lock's heir): the holder's unlock then leaves it to that waiter
//     alone and wakes it by a futex bitset no other sleeper uses. A reservation
//     is only a request: the lock records when it was reserved and when each
//     unlock left it to its heir, and a waiter that finds it free and unused
//     `heir_patience` (one re-arm slice) after that drops it; one that finds
//     it younger sleeps only until then. The clock is the lock's, not the
//     waiter's: a survivor whose slice ends late, after the heir took its
//     wake-up and was stopped, does not start a patience of its own, so a
//     heir killed or stopped costs the others one slice (policy 1's bound).
//     It never decides who may hold the lock (the word's CAS does).
// The bounds each primitive promises follow from 1–3 and are measured by the
// kill-point harness (tests/killpoint.cpp); README.md states them per primitive.
#pragma once

#include <time.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <type_traits>

#include "futex.hpp"

namespace procsync::detail {

class robust_lock;

/// The longest single futex sleep anywhere in procsync.
inline constexpr std::int64_t rearm_slice_ns = 50'000'000;
/// A robust-lock waiter that has waited this long may reserve the lock (policy 5).
inline constexpr std::int64_t starvation_bound_ns = 1'000'000;
/// A reservation whose lock stayed free this long without its heir is dropped.
inline constexpr std::int64_t heir_patience_ns = rearm_slice_ns;
inline constexpr std::uint32_t heir_patience_ms = heir_patience_ns / 1'000'000;
/// The futex bitset bit only a lock's heir sleeps with (policy 5); every other
/// robust sleeper leaves it out, and plain wakes match everyone.
inline constexpr std::uint32_t heir_wake_bit = 0x1u;

inline std::int64_t monotonic_ns() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return std::int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

/// Policy 5's clock: CLOCK_MONOTONIC in milliseconds, modulo 2^32 (49 days),
/// a time that fits in 32 bits of a lock in shared memory.
inline std::uint32_t reservation_clock_ms() noexcept { return static_cast<std::uint32_t>(monotonic_ns() / 1'000'000); }

/// Policy 4: how long a contended robust acquisition waits before its first look.
inline constexpr std::int64_t contended_pause_ns = 2'000;

/// One "pause" instruction: tells the CPU (and a hypervisor, or the other
/// hyperthread) that this is a busy wait.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

/// Policy 4's pause: about `ns` nanoseconds of pause instructions that read
/// nothing but the clock, so the lock's cache line stays with its holder.
inline void pause_without_looking(std::int64_t ns = contended_pause_ns) noexcept {
  const std::int64_t until = monotonic_ns() + ns;
  do {
    for (int i = 0; i < 4; ++i) cpu_relax();
  } while (monotonic_ns() < until);
}

/// Slow-path hook for the deadlock detector (deadlock.hpp), process-local.
/// When installed, a *contended* robust acquisition sleeps in slices of
/// slice_ns() (at most rearm_slice_ns) and calls on_slice() between them (it
/// may throw errc::deadlock_detected); `slot` is the hook's per-wait state,
/// handed to on_done() on every way out. When no hook is installed nothing
/// changes, and the uncontended path never looks.
struct contended_wait_hook {
  std::int64_t (*slice_ns)(std::uint32_t slices_so_far) noexcept;
  void (*on_slice)(robust_lock& lock, const char* kind, std::uint32_t seen, std::int32_t& slot);
  void (*on_done)(std::int32_t slot) noexcept;
};

inline std::atomic<const contended_wait_hook*> installed_contended_hook{nullptr};

/// How one bounded sleep ended.
enum class sleep_end {
  woken,          ///< woken, or the word had changed, or a signal: re-check
  slice_over,     ///< a re-arm slice passed: re-check (and look around)
  deadline_over,  ///< the caller's deadline passed
};

/// sleep_bounded() from a CLOCK_MONOTONIC time `now_ns` the caller has just read.
inline sleep_end sleep_bounded_from(std::int64_t now_ns, std::atomic<std::uint32_t>& word, std::uint32_t expected,
                                    const timespec* deadline, std::int64_t slice_ns = rearm_slice_ns,
                                    std::uint32_t bitset = FUTEX_BITSET_MATCH_ANY) noexcept {
  if (slice_ns > rearm_slice_ns) slice_ns = rearm_slice_ns;
  if (slice_ns < 1000) slice_ns = 1000;  // a look that is already due: a token sleep first
  const std::int64_t end_ns = now_ns + slice_ns;
  const timespec until{static_cast<time_t>(end_ns / 1'000'000'000), static_cast<long>(end_ns % 1'000'000'000)};
  const bool last = deadline != nullptr && (deadline->tv_sec < until.tv_sec ||
                                            (deadline->tv_sec == until.tv_sec && deadline->tv_nsec <= until.tv_nsec));
  if (futex_wait(&word, expected, last ? deadline : &until, bitset) != wait_result::timed_out) return sleep_end::woken;
  return last ? sleep_end::deadline_over : sleep_end::slice_over;
}

/// Sleeps while `word == expected`, for at most `slice_ns` and never past
/// `deadline` (absolute CLOCK_MONOTONIC; nullptr: none).
inline sleep_end sleep_bounded(std::atomic<std::uint32_t>& word, std::uint32_t expected, const timespec* deadline,
                               std::int64_t slice_ns = rearm_slice_ns) noexcept {
  return sleep_bounded_from(monotonic_ns(), word, expected, deadline, slice_ns);
}

/// Polling for a state that no futex word can announce — a segment file that
/// another process is still creating, an allocator index another process is
/// rewriting — sleeps here too, with a short, growing pause (policy 1's bound:
/// never longer than 10 ms between looks).
class backoff {
 public:
  /// Sleeps for the current pause (first 100 µs), then doubles it, up to 10 ms.
  void pause() noexcept {
    const timespec ts{0, pause_ns_};
    ::nanosleep(&ts, nullptr);  // an early return (a signal) only means an earlier look
    if (pause_ns_ < 10'000'000) pause_ns_ *= 2;
  }

 private:
  long pause_ns_ = 100'000;
};

/// A futex word together with the number of threads sleeping (or about to
/// sleep) on it. 8 bytes, pointer-free, valid at any mapping address.
struct wait_word {
  std::atomic<std::uint32_t> value;
  std::atomic<std::uint32_t> sleepers{0};

  constexpr explicit wait_word(std::uint32_t initial = 0) noexcept : value(initial) {}
  wait_word(const wait_word&) = delete;
  wait_word& operator=(const wait_word&) = delete;
};
static_assert(sizeof(wait_word) == 8);

/// Wakes up to `count` sleepers of `w` after the caller changed `w.value` with
/// a seq_cst read-modify-write (or store). No system call when nobody sleeps.
/// Async-signal-safe.
inline void wake(wait_word& w, int count) noexcept {
  // seq_cst: the waker's half of the Dekker pair (see the file comment).
  if (count > 0 && w.sleepers.load(std::memory_order_seq_cst) != 0) futex_wake(&w.value, count);
}
inline void wake_all(wait_word& w) noexcept { wake(w, INT_MAX); }

/// For a word that is only a doorbell (its value means nothing but "changed"):
/// after the caller's seq_cst change elsewhere, rings it if anyone sleeps on it.
inline void ring(wait_word& w, int count) noexcept {
  // seq_cst: the waker's half of the Dekker pair; the bump makes a sleeper that
  // is about to sleep on the old value return at once.
  if (w.sleepers.load(std::memory_order_seq_cst) == 0) return;
  w.value.fetch_add(1, std::memory_order_seq_cst);
  futex_wake(&w.value, count);
}

struct no_step {
  void operator()() const noexcept {}
};

/// Coalescing doorbells (queues): a wait_word used only as a doorbell whose
/// low bit says "a wake-up is on its way and no sleeper has taken it yet".
/// ring_one() makes the futex call only when that bit is clear, so a producer
/// that keeps pushing while the consumer it woke is still being scheduled pays
/// one system call, not one per push. Sleepers must use until_rung() /
/// wait_until_rung(), which clear the bit when they register and after every
/// wake-up, before they re-check their condition. Why no wake-up is lost: a
/// ring that finds the bit set comes (in the seq_cst order on the word) before
/// the clear of the sleeper that bit woke, and that sleeper re-checks its
/// condition after its clear, so it sees the ringer's change. What coalescing
/// costs: one outstanding wake-up wakes one sleeper; a caller that wants more
/// sleepers up (a consumer that leaves items behind) rings again (queue.hpp
/// passes the baton that way). A bit left set while nobody sleeps is cleared
/// by the next sleeper to register.
inline constexpr std::uint32_t doorbell_pending = 1;

/// Rings a coalescing doorbell after the caller's seq_cst change elsewhere:
/// wakes one sleeper, with no system call when nobody sleeps or a wake-up is
/// already on its way. Async-signal-safe.
inline void ring_one(wait_word& w) noexcept {
  // seq_cst: the waker's half of the Dekker pair.
  if (w.sleepers.load(std::memory_order_seq_cst) == 0) return;
  std::uint32_t v = w.value.load(std::memory_order_seq_cst);
  if (v & doorbell_pending) return;
  // Bump (so a sleeper about to sleep on the old value returns) and mark pending.
  if (!w.value.compare_exchange_strong(v, (v + 2) | doorbell_pending, std::memory_order_seq_cst,
                                       std::memory_order_relaxed))
    return;  // another ring got there first: its wake-up is on its way
  futex_wake(&w.value, 1);
}

/// A sleeper's registration on a wait_word: `sleepers` is incremented for the
/// object's lifetime. Register *before* the last check of your condition (and,
/// for a condition variable, before releasing the mutex), then call until().
/// A waiter killed while registered leaves `sleepers` one too high: that only
/// costs later wakers a futex call each.
class announced_wait {
 public:
  explicit announced_wait(wait_word& w) noexcept : w_(w) {
    // seq_cst: the sleeper's half of the Dekker pair.
    w_.sleepers.fetch_add(1, std::memory_order_seq_cst);
  }
  ~announced_wait() {
    // Relaxed: a hint for wakers; a stale value only costs a wake call.
    w_.sleepers.fetch_sub(1, std::memory_order_relaxed);
  }
  announced_wait(const announced_wait&) = delete;
  announced_wait& operator=(const announced_wait&) = delete;

  /// until() for a coalescing doorbell (see ring_one): takes the pending
  /// wake-up (clears the bit) when it starts and after every wake-up, before
  /// it re-checks `done`.
  template <class Done, class Step = no_step>
  bool until_rung(const timespec* deadline, Done&& done, Step&& between_slices = Step{}) {
    for (;;) {
      // seq_cst RMW: both the sleeper's read of the word and its take of a pending wake-up.
      const std::uint32_t seen =
          w_.value.fetch_and(~doorbell_pending, std::memory_order_seq_cst) & ~doorbell_pending;
      if (done(seen)) return true;
      switch (sleep_bounded(w_.value, seen, deadline)) {
        case sleep_end::woken: break;
        case sleep_end::slice_over: between_slices(); break;
        case sleep_end::deadline_over:
          (void)w_.value.fetch_and(~doorbell_pending, std::memory_order_seq_cst);
          return done(w_.value.load(std::memory_order_acquire));
      }
    }
  }

  /// Blocks until `done(v)` returns true for a value `v` read from the word,
  /// or until `deadline` (nullptr: none) passes; returns whether `done` did.
  /// `done` may consume what it found (a CAS) and then return true; it is asked
  /// once more after the deadline, so a change that landed exactly then still
  /// counts. `between_slices()` runs after every re-arm slice that ended without
  /// a wake-up (a look at other processes' liveness; it may change the word,
  /// and may throw). If it returns a bool, true ends the wait there (until()
  /// returns false): for callers that must look at state the word does not
  /// show (a condition variable's predicate, under the user's mutex).
  template <class Done, class Step = no_step>
  bool until(const timespec* deadline, Done&& done, Step&& between_slices = Step{},
             std::int64_t slice_ns = rearm_slice_ns) {
    for (;;) {
      const std::uint32_t seen = w_.value.load(std::memory_order_seq_cst);
      if (done(seen)) return true;
      switch (sleep_bounded(w_.value, seen, deadline, slice_ns)) {
        case sleep_end::woken: break;
        case sleep_end::slice_over:
          if constexpr (std::is_same_v<decltype(between_slices()), bool>) {
            if (between_slices()) return done(w_.value.load(std::memory_order_acquire));
          } else {
            between_slices();
          }
          break;
        // Acquire: as for any value handed to done().
        case sleep_end::deadline_over: return done(w_.value.load(std::memory_order_acquire));
      }
    }
  }

 private:
  wait_word& w_;
};

/// Blocks until `done(v)` holds for a value of `w` (see announced_wait::until);
/// no registration and no syscall when it holds at once.
template <class Done, class Step = no_step>
bool wait_until_done(wait_word& w, const timespec* deadline, Done&& done, Step&& between_slices = Step{},
                     std::int64_t slice_ns = rearm_slice_ns) {
  // Acquire: what the waker published before its change is seen with it.
  if (done(w.value.load(std::memory_order_acquire))) return true;
  announced_wait registration(w);
  return registration.until(deadline, done, between_slices, slice_ns);
}

/// wait_until_done() for a coalescing doorbell (see ring_one).
template <class Done, class Step = no_step>
bool wait_until_rung(wait_word& w, const timespec* deadline, Done&& done, Step&& between_slices = Step{}) {
  // Acquire: what the waker published before its change is seen with it.
  if (done(w.value.load(std::memory_order_acquire) & ~doorbell_pending)) return true;
  announced_wait registration(w);
  return registration.until_rung(deadline, done, between_slices);
}

/// The state of one contended robust acquisition across its sleeps: the
/// deadlock hook (if one is installed) and its per-wait slot, and what policy 5
/// needs (when this wait began, and when an unused reservation's patience ends).
class robust_wait {
 public:
  // Acquire: pairs with the installer's release, so the hook's tables are seen.
  robust_wait() noexcept : hook_(installed_contended_hook.load(std::memory_order_acquire)) {}
  ~robust_wait() {
    if (hook_ != nullptr && slot_ >= 0) hook_->on_done(slot_);
  }
  robust_wait(const robust_wait&) = delete;
  robust_wait& operator=(const robust_wait&) = delete;

  /// One sleep on a robust lock word that read `expected` (with the waiters bit
  /// set by the caller), with list_op_pending on the lock (policy 2). `heir`:
  /// the caller holds the lock's reservation, so it sleeps with heir_wake_bit
  /// (policy 5). Returns false when `deadline` has passed. When the hook's own
  /// slice has passed, the hook looks for a deadlock (it may throw
  /// errc::deadlock_detected).
  bool sleep(std::atomic<std::uint32_t>& word, std::uint32_t expected, const timespec* deadline, robust_lock& lock,
             const char* kind, bool heir = false) {
    const std::uint32_t bitset = heir ? FUTEX_BITSET_MATCH_ANY : ~heir_wake_bit;
    // One clock read per sleep, as for any bounded sleep; policy 5 keeps it.
    const std::int64_t now_ns = monotonic_ns();
    if (started_ns_ == 0) started_ns_ = now_ns;
    last_sleep_ns_ = now_ns;
    // A reservation seen unused ends its patience before the slice would: look then.
    std::int64_t slice_ns = recheck_in_ns_ != 0 && recheck_in_ns_ < rearm_slice_ns ? recheck_in_ns_ : rearm_slice_ns;
    recheck_in_ns_ = 0;
    if (hook_ == nullptr)
      return sleep_bounded_from(now_ns, word, expected, deadline, slice_ns, bitset) != sleep_end::deadline_over;
    if (next_look_ns_ == 0) next_look_ns_ = now_ns + hook_->slice_ns(slices_++);
    if (next_look_ns_ - now_ns < slice_ns) slice_ns = next_look_ns_ - now_ns;
    const sleep_end end = sleep_bounded_from(now_ns, word, expected, deadline, slice_ns, bitset);
    if (end == sleep_end::deadline_over) return false;
    if (end == sleep_end::slice_over && monotonic_ns() >= next_look_ns_) {
      next_look_ns_ = 0;
      hook_->on_slice(lock, kind, word.load(std::memory_order_relaxed), slot_);
    }
    return true;
  }

  /// Whether this wait had lasted starvation_bound_ns when its latest sleep
  /// began (no clock read of its own: the sleep's is used).
  bool starving() const noexcept { return last_sleep_ns_ - started_ns_ >= starvation_bound_ns; }

  /// Called on finding the lock free but reserved since `reserved_ms` (the
  /// lock's reservation clock, reservation_clock_ms()): whether the heir has had
  /// heir_patience_ns and not come (it is dead, stopped or too slow, and the
  /// reservation may be dropped). If not, the next sleep ends when it will have.
  bool reservation_expired(std::uint32_t reserved_ms) noexcept {
    // Modulo 2^32. A process in another time namespace reads an offset clock:
    // the age looks wrong and the reservation is dropped early (fairness is
    // lost, never liveness).
    // Both times are whole milliseconds rounded down, so only an age past the
    // patience proves that the patience has passed.
    const std::uint32_t age_ms = reservation_clock_ms() - reserved_ms;
    if (age_ms > heir_patience_ms) return true;
    recheck_in_ns_ = std::int64_t{heir_patience_ms + 1 - age_ms} * 1'000'000;
    return false;
  }

 private:
  const contended_wait_hook* hook_;
  std::int64_t next_look_ns_ = 0;  // CLOCK_MONOTONIC time of the hook's next look; 0: not planned
  std::int64_t started_ns_ = 0;    // CLOCK_MONOTONIC time of the first sleep; 0: none yet
  std::int64_t last_sleep_ns_ = 0;  // ... and of the latest
  std::int64_t recheck_in_ns_ = 0;  // a reservation's patience ends this long after the next sleep begins; 0: none
  std::int32_t slot_ = -1;
  std::uint32_t slices_ = 0;
};

}  // namespace procsync::detail
