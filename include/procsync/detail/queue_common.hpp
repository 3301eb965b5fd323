// procsync/detail/queue_common.hpp — what queue.hpp and message_queue.hpp
// share: who owns a slot (a thread, named so that a reused TID is not taken for
// it), whether that owner still runs, and the test hook.
//
// Slot owners are *threads*: a slot word records the claimer's TID (22 bits,
// the kernel's PID_MAX_LIMIT) and 7 bits of that thread's start time (clock
// ticks since boot, as process_identity.hpp normalizes them). Liveness is
// decided by state_of() on the task: dead once it has exited or its TID now
// names a task that started at another time; stopped (SIGSTOP, ptrace) is
// alive. A TID reused within the 7-bit window of start times (1 in 128 reuses)
// makes a dead owner look alive: its slot is then held until that TID's new
// task ends. The opposite mistake (a live owner judged dead) cannot happen:
// the owner's own TID and start time always match.
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "process_identity.hpp"

// The test hook: a test that defines PROCSYNC_QUEUE_TEST_HOOK before including
// a queue header gets a call to procsync::detail::queue_test_hook (when set)
// at every step of every queue operation, to stop or kill the process exactly
// there. Without the macro the steps compile to nothing.
#ifdef PROCSYNC_QUEUE_TEST_HOOK
#define PROCSYNC_QUEUE_STEP(step)                                                                 \
  do {                                                                                            \
    if (auto* procsync_hook_ = ::procsync::detail::queue_test_hook.load(std::memory_order_relaxed)) \
      procsync_hook_(::procsync::detail::queue_step::step);                                       \
  } while (0)
#else
#define PROCSYNC_QUEUE_STEP(step) \
  do {                            \
  } while (0)
#endif

namespace procsync::detail {

/// The steps the test hook sees, in the order an operation takes them.
enum class queue_step : int {
  // queue<T, N>::push
  push_claimed = 1,  ///< the slot is ours (WRITING), nothing copied yet
  push_copied,       ///< the item is in the slot, not yet published
  push_published,    ///< published (FULL): the push has happened
  // queue<T, N>::pop / try_pop
  pop_copied,        ///< the item is copied out, the slot not yet taken
  pop_taken,         ///< the slot is taken (EMPTY for the next lap): the pop has happened
  // queue<T, N>::pop_into
  into_receiving,    ///< the destination says "receiving", nothing taken yet
  into_copied,       ///< the item is copied into the destination, the slot not yet taken
  into_claimed,      ///< the slot is ours (INTO): the item is the destination's
  into_full,         ///< the destination says "full", the slot not yet released
  into_released,     ///< the slot is released for the next lap
  // message_queue
  send_reserved,     ///< a free slot is ours (WRITING), nothing copied yet
  send_copied,       ///< the message is in the slot, not yet queued
  send_journaled,    ///< under the lock, part-way through linking it (undone if we die)
  send_queued,       ///< queued: the send has happened
  receive_copied,    ///< under the lock: copied out, the index change journaled, not committed
  receive_committed, ///< committed: the receive has happened, the lock still held
};

#ifdef PROCSYNC_QUEUE_TEST_HOOK
inline std::atomic<void (*)(queue_step)> queue_test_hook{nullptr};
#endif

/// A slot owner in 29 bits: TID << 7 | (thread start time & 127). 0: none.
using owner_token = std::uint32_t;
inline constexpr unsigned owner_tag_bits = 7;
inline constexpr owner_token owner_tag_mask = (1u << owner_tag_bits) - 1;

struct queue_owner_cache {
  std::int32_t pid = -1;  // the process it was filled in (fork children refill)
  owner_token token = 0;
};

/// The calling thread's token: one /proc read per thread (and per fork child),
/// then two loads and a compare.
inline owner_token current_owner_token() noexcept {
  static thread_local queue_owner_cache cache;  // constant-initialized: no guard
  const std::int32_t pid = filled_process_local().pid.load(std::memory_order_relaxed);
  if (cache.pid == pid) [[likely]]
    return cache.token;
  const auto tid = static_cast<std::int32_t>(::syscall(SYS_gettid));
  const process_identity self = identity_of(tid);
  cache.token = (static_cast<owner_token>(tid) << owner_tag_bits) |
                static_cast<owner_token>(self.start_time & owner_tag_mask);
  cache.pid = pid;
  return cache.token;
}

/// Whether the thread named by `token` runs, is stopped, or is gone. Reads
/// /proc once or twice: callers ask only after a re-arm slice without progress.
inline process_state owner_state(owner_token token) noexcept {
  const auto tid = static_cast<std::int32_t>(token >> owner_tag_bits);
  if (tid <= 0) return process_state::dead;
  const process_identity now = identity_of(tid);
  if (now.pid == 0) return process_state::dead;
  // ±1 tick, as state_of() allows: the normalized start time may round either way.
  const owner_token diff = (static_cast<owner_token>(now.start_time) - token) & owner_tag_mask;
  if (diff > 1 && diff != owner_tag_mask) return process_state::dead;
  return state_of(now);
}

}  // namespace procsync::detail
