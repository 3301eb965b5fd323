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
// notify_one_round below asks the other question of a notify_one: did it
// release exactly one waiter, and leave the others asleep?
//
// Include it in exactly one translation unit of an executable (it defines
// syscall()); x86-64 and aarch64 glibc both export syscall as a plain variadic.
#pragma once

#include <dlfcn.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <mutex>
#include <string>
#include <utility>
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

/// A `wait_body` for strict_wake_round(): waits on `cv` under a unique_lock
/// of `m`; right when it returns holding the lock again.
template <class ConditionVariable, class Mutex>
auto cv_waiter(ConditionVariable& cv, Mutex& m) {
  return [&cv, &m] {
    std::unique_lock<Mutex> lk(m);
    cv.wait(lk);
    return lk.owns_lock();
  };
}

/// Where the waiters of a notify_one_round() report; it lives in the shared
/// memory the round's waiters share.
struct return_log {
  std::atomic<int> registered{0};  // waiters counted under the lock, before their wait
  std::atomic<int> returned{0};    // waiters whose wait returned
  std::atomic<int> first{0};       // the pid of the first to return
};

/// What a notify_one_round() saw.
struct notify_one_outcome {
  std::string broken;               // why the round could not be judged; "" when it could
  bool others_slept_again = false;  // each other waiter was seen to wake, re-check and sleep again
  int returned = 0;                 // waiters that had returned by then
  std::vector<int> others_codes;    // the others' exit codes, once a notify_all released them
  /// The one notify_one released exactly one waiter.
  bool exactly_one() const noexcept { return broken.empty() && others_slept_again && returned == 1; }
};

/// notify_one releases exactly one of the waiters asleep before it. Forks
/// `waiters` processes that each take `make_lock()`, register in `log` and
/// wait on `cv`; waits until all registered, `lock_free()` (the lock is free
/// again: each unlocked it in its wait) and each sleeps in futex(2), all
/// decided by looking; calls cv.notify_one(); reaps the one that returned
/// (then it no longer holds the lock the others need); then sees each of the
/// others wake (its 50 ms re-arm slice), re-check and sleep again: one released
/// by mistake would return instead. Last, cv.notify_all() releases the others
/// and they are reaped. Nothing is left running, whatever broke.
template <class ConditionVariable, class MakeLock, class LockFree>
notify_one_outcome notify_one_round(return_log& log, int waiters, ConditionVariable& cv, MakeLock&& make_lock,
                                    LockFree&& lock_free) {
  notify_one_outcome out;
  std::vector<pid_t> kids;
  for (int i = 0; i < waiters; ++i)
    kids.push_back(fork_child([&] {
      auto lk = make_lock();
      log.registered.fetch_add(1);
      cv.wait(lk);
      int none = 0;  // still holding the lock
      log.first.compare_exchange_strong(none, ::getpid());
      log.returned.fetch_add(1);
      return 0;
    }));
  const auto give_up = [&](std::string why) {
    for (pid_t k : kids) ::kill(k, SIGKILL);
    for (pid_t k : kids) (void)wait_status(k);
    out.broken = std::move(why);
    return out;
  };
  if (!eventually([&] { return log.registered.load() == waiters && lock_free() && all_blocked_in_futex(kids); }))
    return give_up("the waiters were not all registered and asleep within 30 s");
  cv.notify_one();
  if (!eventually([&] { return log.first.load() != 0; }))
    return give_up("no waiter returned for the notify_one within 30 s");
  const pid_t first = log.first.load();
  std::vector<pid_t> rest;
  for (pid_t k : kids)
    if (k != first) rest.push_back(k);
  kids = rest;  // the ones give_up would still have to reap
  if (const int code = wait_exit_code(first); code != 0)
    return give_up("the waiter that returned exited with " + std::to_string(code));
  const auto seen = switch_counts(rest);
  out.others_slept_again = eventually([&] { return all_slept_again(rest, seen); }, std::chrono::seconds(10));
  out.returned = log.returned.load();
  cv.notify_all();
  for (pid_t k : rest) out.others_codes.push_back(wait_exit_code(k));
  return out;
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
