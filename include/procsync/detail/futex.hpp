// procsync/detail/futex.hpp — the only place procsync calls futex(2).
//
// Every call uses a *shared* futex (never the private-futex flag): the kernel keys a
// shared futex by the physical page, so a wake in one process reaches a waiter
// in another even when the page is mapped at different addresses. Timed waits
// take an absolute CLOCK_MONOTONIC deadline (FUTEX_WAIT_BITSET without
// the realtime-clock flag), so a wall-clock jump can neither stretch nor cut them.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <ctime>

namespace procsync::detail {

static_assert(sizeof(std::atomic<std::uint32_t>) == 4 && std::atomic<std::uint32_t>::is_always_lock_free,
              "futex words must be plain 32-bit lock-free atomics");

/// Futex syscalls made by this process so far. Tests and benchmarks read it to
/// prove that uncontended paths make none. Relaxed: a statistic, not a fence.
inline std::atomic<std::uint64_t> futex_syscalls{0};

inline long futex_call(std::atomic<std::uint32_t>* word, int op, std::uint32_t value, const timespec* timeout,
                       std::uint32_t value3) noexcept {
  futex_syscalls.fetch_add(1, std::memory_order_relaxed);
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, value, timeout, nullptr, value3);
}

/// Outcome of a futex wait. `woken` includes spurious wake-ups and signals:
/// callers always re-check their condition.
enum class wait_result { woken, value_changed, timed_out };

/// Sleeps while `*word == expected`, until woken or until `deadline` (absolute
/// CLOCK_MONOTONIC; nullptr waits forever). A plain wake reaches every sleeper;
/// futex_wake_bitset() only those whose `bitset` shares a bit with its own.
inline wait_result futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                              const timespec* deadline = nullptr,
                              std::uint32_t bitset = FUTEX_BITSET_MATCH_ANY) noexcept {
  const long rc = futex_call(word, FUTEX_WAIT_BITSET, expected, deadline, bitset);
  if (rc == 0) return wait_result::woken;
  switch (errno) {
    case EAGAIN: return wait_result::value_changed;
    case ETIMEDOUT: return wait_result::timed_out;
    default: return wait_result::woken;  // EINTR: the caller re-checks and waits again
  }
}

inline int futex_wake_call(std::atomic<std::uint32_t>* word, int op, int count, std::uint32_t bitset) noexcept {
  const int saved_errno = errno;
  const long rc = futex_call(word, op, static_cast<std::uint32_t>(count), nullptr, bitset);
  errno = saved_errno;
  return rc < 0 ? 0 : static_cast<int>(rc);
}

/// Wakes up to `count` waiters on `word`; returns how many were woken.
/// Async-signal-safe (a bare syscall; errno is preserved).
inline int futex_wake(std::atomic<std::uint32_t>* word, int count) noexcept {
  return futex_wake_call(word, FUTEX_WAKE, count, 0);
}

inline int futex_wake_all(std::atomic<std::uint32_t>* word) noexcept { return futex_wake(word, INT_MAX); }

/// Wakes up to `count` waiters on `word` that sleep with a bitset sharing a bit
/// with `bitset`. Async-signal-safe.
inline int futex_wake_bitset(std::atomic<std::uint32_t>* word, int count, std::uint32_t bitset) noexcept {
  return futex_wake_call(word, FUTEX_WAKE_BITSET, count, bitset);
}

}  // namespace procsync::detail
