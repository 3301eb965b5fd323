// tests/support/wake_probe.hpp — did that waiter return because it was woken?
//
// Every procsync wait re-arms every 50 ms (waiting_floor.hpp), so a waker that
// forgets its futex wake only delays its waiter by one slice: a test that
// merely waits for the waiter to return cannot see the lost wake. This header
// sees it: it wraps syscall(2) for the test executable (procsync's futex calls
// go through ::syscall) and records, per thread, how the last futex *wait*
// ended: 0 (woken by a FUTEX_WAKE), ETIMEDOUT (a re-arm slice or the deadline
// ran out), EAGAIN (the word had changed) or EINTR.
//
// The pattern (strict_wake_rounds below): a waiter process blocks; the parent
// sees it asleep in futex(2) by looking (blocked_in_futex); the parent wakes it
// through the primitive; the waiter reports how its last futex wait ended. A
// correct waker makes that 0. Only when a re-arm slice happens to end in the
// microseconds between "seen asleep" and the wake can a correct wake show as
// ETIMEDOUT, so the check asks for most rounds, not all: a dropped wake makes
// every round ETIMEDOUT.
//
// Include it in exactly one translation unit of an executable (it defines
// syscall()); x86-64 and aarch64 glibc both export syscall as a plain variadic.
#pragma once

#include <dlfcn.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <string>
#include <vector>

#include "child.hpp"

namespace procsync_test::wake_probe {

/// How this thread's last futex wait ended: 0 woken, else the errno; -1: none yet.
inline thread_local int last_wait = -1;
/// This thread's futex waits that ended by a timeout, since reset().
inline thread_local int timeouts = 0;

inline void reset() noexcept {
  last_wait = -1;
  timeouts = 0;
}

/// What a round of strict_wake_round() saw.
struct tally {
  int woken = 0;     // waiters whose last futex wait ended by a FUTEX_WAKE
  int slice = 0;     // waiters that returned after a timeout or a changed word instead
  int broken = 0;    // waiters that failed, hung (watchdog) or never fell asleep
  int total() const noexcept { return woken + slice + broken; }
  /// Most waits ended by a wake, and none broke (see the header comment).
  bool strict() const noexcept { return broken == 0 && woken * 2 > total(); }
  std::string str() const {
    return std::to_string(woken) + " woken by a wake call, " + std::to_string(slice) + " by a re-arm slice, " +
           std::to_string(broken) + " broken";
  }
  tally& operator+=(const tally& o) noexcept {
    woken += o.woken;
    slice += o.slice;
    broken += o.broken;
    return *this;
  }
};

/// Forks `waiters` processes that each run `wait_body()` (a blocking call that
/// returns once woken; it returns false on a wrong outcome), waits until every
/// one sleeps in futex(2) (looking, never sleeping), runs `wake()` in the
/// caller and reports how each waiter's last futex wait ended. Every child is
/// reaped within `limit` (a hang counts as broken).
template <class WaitBody, class Wake>
tally strict_wake_round(int waiters, WaitBody&& wait_body, Wake&& wake,
                        std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  std::vector<pid_t> pids;
  for (int i = 0; i < waiters; ++i)
    pids.push_back(fork_child([&] {
      reset();
      if (!wait_body()) return 3;
      return last_wait == 0 ? 0 : last_wait > 0 ? 1 : 2;
    }));
  const bool asleep = eventually([&] {
    for (pid_t p : pids)
      if (!blocked_in_futex(p)) return false;
    return true;
  }, limit);
  tally t;
  wake();
  for (pid_t p : pids) {
    const int code = wait_exit_code(p, limit);
    if (!asleep || code < 0 || code > 1)
      ++t.broken;
    else if (code == 0)
      ++t.woken;
    else
      ++t.slice;
  }
  return t;
}

}  // namespace procsync_test::wake_probe

// Reads six argument registers whatever the caller passed (harmless on x86-64,
// where they are registers or caller stack); AddressSanitizer would report the
// read of the unused ones, so this one function is not instrumented. The real
// function is looked up without a guarded static (a fork during a guarded
// first-use initialisation would leave the child waiting on the guard).
#if defined(__clang__)
#define PROCSYNC_TEST_NO_SANITIZE __attribute__((no_sanitize("address", "undefined")))
#else
#define PROCSYNC_TEST_NO_SANITIZE __attribute__((no_sanitize_address, no_sanitize_undefined))
#endif
extern "C" PROCSYNC_TEST_NO_SANITIZE long syscall(long number, ...) noexcept {
  using real_fn = long (*)(long, ...);
  static std::atomic<real_fn> real_syscall{nullptr};  // constant-initialized: no guard
  real_fn real = real_syscall.load(std::memory_order_relaxed);
  if (real == nullptr) {
    real = reinterpret_cast<real_fn>(::dlsym(RTLD_NEXT, "syscall"));
    real_syscall.store(real, std::memory_order_relaxed);
  }
  va_list ap;
  va_start(ap, number);
  long a[6];
  for (long& x : a) x = va_arg(ap, long);
  va_end(ap);
  const long rc = real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
  if (number == SYS_futex) {
    const long cmd = a[1] & FUTEX_CMD_MASK;
    if (cmd == FUTEX_WAIT || cmd == FUTEX_WAIT_BITSET) {
      const int saved = errno;
      procsync_test::wake_probe::last_wait = rc == 0 ? 0 : saved;
      if (rc != 0 && saved == ETIMEDOUT) ++procsync_test::wake_probe::timeouts;
      errno = saved;
    }
  }
  return rc;
}
