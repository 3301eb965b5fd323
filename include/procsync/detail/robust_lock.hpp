// procsync/detail/robust_lock.hpp — the 40-byte robust futex lock under
// procsync::mutex and procsync::recursive_mutex.
//
// Word states (the kernel's robust-futex format, see robust_list.hpp):
//   0                         free
//   tid [| waiters]           held by thread `tid`; `waiters`: someone may sleep
//   owner_died [| waiters]    free: the holder died; the next owner must repair
//   tid | owner_died [| w]    held by `tid`, data inconsistent until consistent()
//   not_recoverable           poisoned: unlocked while inconsistent
// The kernel writes `owner_died [| waiters]` when the holder dies and wakes one
// waiter. Everyone else only ever CASes the word; only the holder clears it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <time.h>

#include "../error.hpp"
#include "clock.hpp"
#include "futex.hpp"
#include "robust_list.hpp"

namespace procsync {

/// What a robust acquisition found.
enum class lock_status {
  acquired,     ///< the caller holds the lock; the protected data is consistent
  owner_died,   ///< the caller holds the lock, but the previous holder died holding
                ///< it: repair the data, then call consistent() (or unlock to poison)
  unavailable,  ///< not acquired: try_lock found it held, or the deadline passed
};

/// True when `s` means the caller now holds the lock.
constexpr bool holds(lock_status s) noexcept { return s != lock_status::unavailable; }

namespace detail {

class robust_lock;

/// Slow-path hook for the deadlock detector (deadlock.hpp), process-local.
/// When installed, a *contended* acquisition sleeps in slices of slice_ns() and
/// calls on_slice() between them (it may throw errc::deadlock_detected); `slot`
/// is the hook's per-wait state, handed to on_done() on every way out. When no
/// hook is installed nothing changes, and the uncontended path never looks.
struct contended_wait_hook {
  std::int64_t (*slice_ns)(std::uint32_t slices_so_far) noexcept;
  void (*on_slice)(robust_lock& lock, const char* kind, std::uint32_t seen, std::int32_t& slot);
  void (*on_done)(std::int32_t slot) noexcept;
};

inline std::atomic<const contended_wait_hook*>& contended_hook() noexcept {
  static std::atomic<const contended_wait_hook*> hook{nullptr};
  return hook;
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

class robust_lock {
 public:
  robust_lock() noexcept = default;
  robust_lock(const robust_lock&) = delete;
  robust_lock& operator=(const robust_lock&) = delete;

  /// Blocks until acquired or `deadline` (nullptr: forever) passes.
  lock_status acquire(const char* kind, const timespec* deadline) {
    thread_identity& self = current_thread();
    set_pending(self, &node_);
    std::uint32_t expected = 0;
    // Acquire: the critical section must see everything the last holder wrote.
    if (word_.compare_exchange_strong(expected, self.tid, std::memory_order_acquire, std::memory_order_relaxed))
      [[likely]] {
      robust_enqueue(self, &node_);
      clear_pending(self);
      return lock_status::acquired;
    }
    return acquire_contended(self, kind, deadline);
  }

  lock_status try_acquire(const char* kind) {
    thread_identity& self = current_thread();
    set_pending(self, &node_);
    std::uint32_t seen = word_.load(std::memory_order_relaxed);
    while ((seen & word_tid_mask) == 0) {
      // Acquire: as in acquire(); keep `waiters`, which belongs to the sleepers.
      if (word_.compare_exchange_weak(seen, seen | self.tid, std::memory_order_acquire, std::memory_order_relaxed))
        return took_ownership(self, seen);
    }
    clear_pending(self);
    if (seen == word_not_recoverable) throw_not_recoverable(kind);
    if ((seen & word_tid_mask) == self.tid) throw_would_deadlock(kind);
    return lock_status::unavailable;
  }

  void release(const char* kind) {
    const std::uint32_t seen = word_.load(std::memory_order_relaxed);
    const thread_identity& self = current_thread();
    if ((seen & word_tid_mask) != self.tid || seen == word_not_recoverable) throw_not_owner(kind, seen);
    set_pending(self, &node_);
    robust_dequeue(&node_);
    // Release: the next holder must see our writes. Unlocking while
    // inconsistent poisons the lock for good (pthread's ENOTRECOVERABLE).
    const std::uint32_t next = (seen & word_owner_died) ? word_not_recoverable : 0;
    const std::uint32_t before = word_.exchange(next, std::memory_order_release);
    if (next == word_not_recoverable)
      futex_wake_all(&word_);
    else if (before & word_waiters)
      futex_wake(&word_, 1);
    clear_pending(self);
  }

  /// Marks the data repaired after lock_status::owner_died.
  void make_consistent(const char* kind) {
    const std::uint32_t seen = word_.load(std::memory_order_relaxed);
    if ((seen & word_tid_mask) != current_tid() || seen == word_not_recoverable) throw_not_owner(kind, seen);
    // Relaxed: only the holder touches this bit, and release() publishes it.
    word_.fetch_and(~word_owner_died, std::memory_order_relaxed);
  }

  bool held_by_caller() const { return (word_.load(std::memory_order_relaxed) & word_tid_mask) == current_tid(); }
  bool inconsistent() const noexcept { return (word_.load(std::memory_order_relaxed) & word_owner_died) != 0; }
  bool not_recoverable() const noexcept { return word_.load(std::memory_order_relaxed) == word_not_recoverable; }

  /// The TID of the holder, 0 when free (a snapshot, for diagnostics).
  std::uint32_t holder_tid() const noexcept {
    const std::uint32_t w = word_.load(std::memory_order_relaxed);
    return w == word_not_recoverable ? 0 : (w & word_tid_mask);
  }

  /// Spare room in the 40 bytes, before the robust node; owned by the wrapper.
  std::uint32_t& aux(std::size_t i) noexcept { return aux_[i]; }

 private:
  lock_status took_ownership(thread_identity& self, std::uint32_t previous) {
    robust_enqueue(self, &node_);
    clear_pending(self);
    return (previous & word_owner_died) ? lock_status::owner_died : lock_status::acquired;
  }

  lock_status acquire_contended(thread_identity& self, const char* kind, const timespec* deadline) {
    // Once we have slept, other sleepers may exist that nobody else knows of:
    // take the lock with `waiters` set so our unlock wakes the next one.
    std::uint32_t mark = 0;
    // Acquire: pairs with the installer's release, so the hook's tables are seen.
    hook_guard hook{contended_hook().load(std::memory_order_acquire)};
    // No spinning before sleeping: measured with bench_mutex (2-vCPU VM,
    // same-run ratios), a 100-iteration spin cost 40% of contended throughput
    // and 1000 iterations 60%: the spinner's loads steal the cache line from a
    // holder that is about to unlock. Sleep at once, as glibc's normal mutex does.
    std::uint32_t seen = word_.load(std::memory_order_relaxed);
    for (;;) {
      if (seen == word_not_recoverable) {
        clear_pending(self);
        throw_not_recoverable(kind);
      }
      const std::uint32_t owner = seen & word_tid_mask;
      if (owner == 0) {
        if (word_.compare_exchange_weak(seen, seen | self.tid | mark, std::memory_order_acquire,
                                        std::memory_order_relaxed))
          return took_ownership(self, seen);
        continue;
      }
      if (owner == self.tid) {
        clear_pending(self);
        throw_would_deadlock(kind);
      }
      if (!(seen & word_waiters) &&
          !word_.compare_exchange_weak(seen, seen | word_waiters, std::memory_order_relaxed))
        continue;
      mark = word_waiters;
      if (!sleep_one_slice(hook, self, kind, seen | word_waiters, deadline)) return lock_status::unavailable;
      seen = word_.load(std::memory_order_relaxed);
    }
  }

  struct hook_guard {
    const contended_wait_hook* hook;
    std::int32_t slot = -1;
    std::uint32_t slices = 0;
    ~hook_guard() {
      if (hook != nullptr && slot >= 0) hook->on_done(slot);
    }
  };

  // Why sleep in slices even without a hook: a holder killed between its
  // releasing exchange and its futex_wake leaves a sleeper unwoken if another
  // thread barges in through the fast path meanwhile (the kernel only wakes for a
  // dead unlocker while the word is still free, and the barger's word carries no
  // `waiters` bit). Waking every rearm_slice_ns to re-set `waiters` bounds that
  // rare stall; it costs one syscall per slice per sleeper and nothing otherwise.
  static constexpr std::int64_t rearm_slice_ns = 200'000'000;

  // One futex sleep of at most one slice; between slices the hook (if any) looks
  // for a deadlock (and may throw). Returns false when `deadline` has passed.
  bool sleep_one_slice(hook_guard& hook, thread_identity& self, const char* kind, std::uint32_t expected,
                       const timespec* deadline) {
    timespec slice{};
    ::clock_gettime(CLOCK_MONOTONIC, &slice);
    const std::int64_t ns =
        slice.tv_nsec + (hook.hook != nullptr ? hook.hook->slice_ns(hook.slices++) : rearm_slice_ns);
    slice.tv_sec += static_cast<time_t>(ns / 1000000000);
    slice.tv_nsec = static_cast<long>(ns % 1000000000);
    const bool last = deadline != nullptr && (deadline->tv_sec < slice.tv_sec ||
                                              (deadline->tv_sec == slice.tv_sec && deadline->tv_nsec <= slice.tv_nsec));
    if (futex_wait(&word_, expected, last ? deadline : &slice) != wait_result::timed_out) return true;
    if (last) {
      clear_pending(self);
      return false;
    }
    if (hook.hook == nullptr) return true;
    try {
      hook.hook->on_slice(*this, kind, word_.load(std::memory_order_relaxed), hook.slot);
    } catch (...) {
      clear_pending(self);
      throw;
    }
    return true;
  }

  [[noreturn]] static void throw_not_recoverable(const char* kind) {
    throw_error(errc::not_recoverable, std::string("procsync::") + kind +
                                           ": not recoverable: a previous owner died holding it and the next "
                                           "owner unlocked it without calling consistent()");
  }
  [[noreturn]] static void throw_would_deadlock(const char* kind) {
    throw_error(errc::would_deadlock, std::string("procsync::") + kind +
                                          ": lock by the thread that already holds it (would deadlock)");
  }
  [[noreturn]] void throw_not_owner(const char* kind, std::uint32_t seen) const {
    const std::uint32_t holder = seen == word_not_recoverable ? 0 : (seen & word_tid_mask);
    throw_error(errc::not_owner, std::string("procsync::") + kind + ": released by thread " +
                                     std::to_string(current_tid()) + ", which does not own it (" +
                                     (holder ? "held by thread " + std::to_string(holder) : std::string("not held")) +
                                     ")");
  }

  std::atomic<std::uint32_t> word_{0};
  std::uint32_t aux_[5] = {};
  robust_node node_{};

  friend struct robust_lock_layout;
};

struct robust_lock_layout {
  static_assert(offsetof(robust_lock, node_) - offsetof(robust_lock, word_) == robust_node_offset,
                "the robust node must sit where glibc's robust list expects it");
};

static_assert(sizeof(robust_lock) == 40);

}  // namespace detail
}  // namespace procsync
