// tests/support/killpoint.hpp — the engine of the kill-point harness
// (tests/killpoint.cpp; docs/killpoints.md explains the method).
//
// One *run* forks a scenario's participants over fresh anonymous shared memory.
// One participant, the *target*, is traced: before it starts its work it asks
// to be traced (PTRACE_TRACEME) and installs a seccomp filter that returns
// SECCOMP_RET_TRACE for futex(2) and allows everything else, so the target
// stops at the entry of every futex call and of nothing else. The tracer (this
// process) classifies the call from the registers (the futex op: WAIT and
// WAIT_BITSET are waits, everything else counts as a wake), follows each wait
// to its syscall-exit stop (PTRACE_SYSCALL) and counts the waits that returned
// 0 (woken). A *kill point* is the k-th futex entry, the k-th woken return, or
// an "other" point: n single-steps after the k-th futex entry (n random).
// At the point the target is either SIGKILLed there, or left frozen in its
// ptrace stop (exactly what a SIGSTOP delivered at that instruction does to
// the others: it runs nothing more until continued), then continued.
//
// Every path kills and reaps every process it forked; the traced target also
// dies with the tracer (PTRACE_O_EXITKILL) and every child with its parent
// (PR_SET_PDEATHSIG, from child.hpp).
#pragma once

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "child.hpp"

namespace killpoint {

#if defined(__x86_64__)
inline constexpr bool supported = true;
#else
inline constexpr bool supported = false;  // the register decoding below is x86-64 only
#endif

inline constexpr int max_parts = 40;

inline std::int64_t now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline void sleep_us(long us) noexcept {
  timespec ts{us / 1'000'000, (us % 1'000'000) * 1000};
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/// Polls `pred` every 50 µs (nanosleep, never a futex) for at most `limit_us`.
template <class Pred>
bool poll_until(Pred&& pred, long limit_us) {
  const std::int64_t end = now_ns() + limit_us * 1000;
  while (!pred()) {
    if (now_ns() >= end) return pred();
    sleep_us(50);
  }
  return true;
}

/// What a participant is doing, written by itself; scenarios read it to decide
/// whether a frozen target may legitimately make the others wait.
enum phase : int { idle = 0, acquiring = 1, holding = 2, releasing = 3 };

/// The first member of every scenario's shared state.
struct control {
  std::atomic<int> go{0};
  int target = 0;  // the traced participant (set before the fork)
  std::atomic<std::uint32_t> marker{0};  // the futex word of mark()
  std::atomic<int> phase[max_parts] = {};
  std::atomic<int> done[max_parts] = {};
  std::atomic<std::int64_t> t_done[max_parts] = {};
  char msg[max_parts][240] = {};
};

/// A *marker*: a futex call that does nothing (FUTEX_WAKE of nobody on a word
/// nobody waits on), placed by a scenario where a death matters most (inside a
/// critical section, between the two halves of a commit). To the tracer it is
/// one more futex entry, so that place becomes an exact kill point; it is
/// reported as MARK.
inline void mark(control& c) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&c.marker), FUTEX_WAKE, 0, nullptr, nullptr, 0);
}

/// A participant's verdict: records `text` for the report and returns exit code 1.
inline int complain(control& c, int who, const std::string& text) {
  std::snprintf(c.msg[who], sizeof c.msg[who], "%s", text.c_str());
  return 1;
}

enum class point_kind { none, entry, woken, other };
enum class fault { kill, stop };

inline const char* kind_name(point_kind k) {
  switch (k) {
    case point_kind::none: return "none";
    case point_kind::entry: return "futex-entry";
    case point_kind::woken: return "woken-return";
    case point_kind::other: return "other";
  }
  return "?";
}

struct point {
  point_kind kind = point_kind::none;
  int k = 0;      // index among the target's futex entries (entry, other) or woken returns
  int steps = 0;  // other: single-steps after entry k
};

/// What the tracer saw of the target's futex calls.
struct trace_counts {
  int entries = 0;
  int waits = 0;
  int wakes = 0;
  int woken = 0;
  int marks = 0;
  std::string hit_call;         // the futex call at the point ("WAIT_BITSET", "WAKE", ...)
  std::uintptr_t hit_uaddr = 0;  // its futex word (same address in every process of a run)
};

inline const char* futex_op_name(unsigned long op) {
  switch (op & FUTEX_CMD_MASK) {
    case FUTEX_WAIT: return "WAIT";
    case FUTEX_WAKE: return "WAKE";
    case FUTEX_WAIT_BITSET: return "WAIT_BITSET";
    case FUTEX_WAKE_BITSET: return "WAKE_BITSET";
    case FUTEX_REQUEUE: return "REQUEUE";
    case FUTEX_CMP_REQUEUE: return "CMP_REQUEUE";
    case FUTEX_WAKE_OP: return "WAKE_OP";
    default: return "OTHER";
  }
}

inline bool is_wait_op(unsigned long op) {
  const unsigned long cmd = op & FUTEX_CMD_MASK;
  return cmd == FUTEX_WAIT || cmd == FUTEX_WAIT_BITSET;
}

/// In the target, before its work: be traced, stop at every futex entry.
/// Returns false (with errno) if the kernel refuses.
inline bool become_target() {
#if defined(__x86_64__)
  if (::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) != 0) return false;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_futex, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) return false;
  ::raise(SIGSTOP);  // the tracer sets its options, then continues us
  return true;
#else
  errno = ENOSYS;
  return false;
#endif
}

/// Blocks SIGCHLD in this thread while alive, so the tracer can sleep in
/// sigtimedwait() without missing a child's state change.
class sigchld_blocker {
 public:
  sigchld_blocker() {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGCHLD);
    ::pthread_sigmask(SIG_BLOCK, &s, &old_);
  }
  ~sigchld_blocker() {
    // Drop a pending SIGCHLD we caused before restoring the old mask.
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGCHLD);
    timespec zero{0, 0};
    while (::sigtimedwait(&s, nullptr, &zero) > 0) {
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  sigchld_blocker(const sigchld_blocker&) = delete;
  sigchld_blocker& operator=(const sigchld_blocker&) = delete;

  static void unblock_in_child() {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGCHLD);
    ::pthread_sigmask(SIG_UNBLOCK, &s, nullptr);
  }

 private:
  sigset_t old_{};
};

inline void wait_for_sigchld(std::int64_t until_ns) {
  const std::int64_t left = until_ns - now_ns();
  if (left <= 0) return;
  const std::int64_t slice = std::min<std::int64_t>(left, 5'000'000);
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGCHLD);
  timespec ts{static_cast<time_t>(slice / 1'000'000'000), static_cast<long>(slice % 1'000'000'000)};
  (void)::sigtimedwait(&s, nullptr, &ts);
}

/// The processes of one run, the target's tracing state, and the point.
class tracer {
 public:
  tracer(std::vector<pid_t> pids, int target, point pt, const void* marker)
      : pids_(std::move(pids)), target_(target), pt_(pt), marker_(reinterpret_cast<std::uintptr_t>(marker)) {
    exited_.assign(pids_.size(), false);
    status_.assign(pids_.size(), 0);
  }
  ~tracer() { kill_all(); }
  tracer(const tracer&) = delete;
  tracer& operator=(const tracer&) = delete;

  /// Completes the target's start-up handshake; false if it died instead.
  bool attach() {
    int st = 0;
    const pid_t t = pids_[static_cast<std::size_t>(target_)];
    if (::waitpid(t, &st, __WALL) != t) return false;
    if (!WIFSTOPPED(st)) {
      exited_[static_cast<std::size_t>(target_)] = true;
      status_[static_cast<std::size_t>(target_)] = st;
      return false;
    }
    const long opts = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL;
    if (::ptrace(PTRACE_SETOPTIONS, t, nullptr, reinterpret_cast<void*>(opts)) != 0) return false;
    return ::ptrace(PTRACE_CONT, t, nullptr, nullptr) == 0;
  }

  /// Handles every pending state change; call often.
  void pump() {
    for (std::size_t i = 0; i < pids_.size(); ++i) {
      if (exited_[i]) continue;
      for (;;) {
        int st = 0;
        const pid_t r = ::waitpid(pids_[i], &st, WNOHANG | __WALL);
        if (r != pids_[i]) break;
        if (WIFEXITED(st) || WIFSIGNALED(st)) {
          exited_[i] = true;
          status_[i] = st;
          break;
        }
        if (static_cast<int>(i) == target_ && WIFSTOPPED(st)) on_target_stop(st);
      }
    }
  }

  /// Pumps until `pred()` or the deadline; returns pred().
  template <class Pred>
  bool run_until(Pred&& pred, std::int64_t deadline_ns) {
    for (;;) {
      pump();
      if (pred()) return true;
      if (now_ns() >= deadline_ns) return false;
      wait_for_sigchld(deadline_ns);
    }
  }

  bool exited(int i) const { return exited_[static_cast<std::size_t>(i)]; }
  int status(int i) const { return status_[static_cast<std::size_t>(i)]; }
  pid_t pid(int i) const { return pids_[static_cast<std::size_t>(i)]; }
  int size() const { return static_cast<int>(pids_.size()); }
  bool all_exited() const {
    return std::all_of(exited_.begin(), exited_.end(), [](bool e) { return e; });
  }
  bool survivors_exited() const {
    for (int i = 0; i < size(); ++i)
      if (i != target_ && !exited(i)) return false;
    return true;
  }

  bool hit() const { return hit_; }
  std::int64_t hit_ns() const { return hit_ns_; }
  const trace_counts& counts() const { return counts_; }

  /// Continues a target frozen at the point; it is then traced through.
  void resume_target() {
    if (!hit_ || resumed_ || exited(target_)) return;
    resumed_ = true;
    (void)::ptrace(PTRACE_CONT, pid(target_), nullptr, nullptr);
  }

  /// SIGKILLs and reaps every process not yet reaped.
  void kill_all() {
    for (std::size_t i = 0; i < pids_.size(); ++i) {
      if (exited_[i]) continue;
      ::kill(pids_[i], SIGKILL);
      int st = 0;
      while (::waitpid(pids_[i], &st, __WALL) == pids_[i]) {
        if (WIFEXITED(st) || WIFSIGNALED(st)) break;
      }
      exited_[i] = true;
      status_[i] = st;
    }
  }

  /// Sets what happens at the point: SIGKILL, or stay frozen.
  void set_fault(fault f) { fault_ = f; }

 private:
  void on_target_stop(int st) {
#if defined(__x86_64__)
    const pid_t t = pid(target_);
    const int sig = WSTOPSIG(st);
    const bool seccomp_stop = (st >> 8) == (SIGTRAP | (PTRACE_EVENT_SECCOMP << 8));
    if (hit_ && !resumed_) return;  // frozen at the point (only a kill can move it)
    if (seccomp_stop) {
      user_regs_struct regs{};
      (void)::ptrace(PTRACE_GETREGS, t, nullptr, &regs);
      const int index = counts_.entries++;
      const bool wait = is_wait_op(regs.rsi);
      const bool marker = static_cast<std::uintptr_t>(regs.rdi) == marker_;
      (marker ? counts_.marks : wait ? counts_.waits : counts_.wakes)++;
      if (!resumed_ && stepping_ > 0) {
        (void)::ptrace(PTRACE_SINGLESTEP, t, nullptr, nullptr);
        return;
      }
      if (!resumed_ && pt_.kind == point_kind::entry && pt_.k == index) {
        counts_.hit_call = marker ? "MARK" : futex_op_name(regs.rsi);
        counts_.hit_uaddr = static_cast<std::uintptr_t>(regs.rdi);
        strike();
        return;
      }
      if (!resumed_ && pt_.kind == point_kind::other && pt_.k == index) {
        counts_.hit_call =
            std::string(marker ? "MARK" : futex_op_name(regs.rsi)) + " + " + std::to_string(pt_.steps) + " steps";
        counts_.hit_uaddr = static_cast<std::uintptr_t>(regs.rdi);
        stepping_ = pt_.steps;
        (void)::ptrace(PTRACE_SINGLESTEP, t, nullptr, nullptr);
        return;
      }
      in_wait_ = wait;
      (void)::ptrace(wait ? PTRACE_SYSCALL : PTRACE_CONT, t, nullptr, nullptr);
      return;
    }
    if (sig == (SIGTRAP | 0x80)) {  // syscall-exit stop of a followed wait
      user_regs_struct regs{};
      (void)::ptrace(PTRACE_GETREGS, t, nullptr, &regs);
      if (in_wait_ && static_cast<long>(regs.rax) == 0) {
        const int index = counts_.woken++;
        if (!resumed_ && pt_.kind == point_kind::woken && pt_.k == index) {
          in_wait_ = false;
          counts_.hit_call = "woken " + std::string(futex_op_name(regs.rsi));
          counts_.hit_uaddr = static_cast<std::uintptr_t>(regs.rdi);
          strike();
          return;
        }
      }
      in_wait_ = false;
      (void)::ptrace(PTRACE_CONT, t, nullptr, nullptr);
      return;
    }
    if (sig == SIGTRAP && stepping_ > 0 && !resumed_) {
      if (--stepping_ == 0) {
        strike();
        return;
      }
      (void)::ptrace(PTRACE_SINGLESTEP, t, nullptr, nullptr);
      return;
    }
    // A signal for the target: deliver it (never a stray SIGTRAP).
    (void)::ptrace(stepping_ > 0 && !resumed_ ? PTRACE_SINGLESTEP : PTRACE_CONT, t, nullptr,
                   reinterpret_cast<void*>(static_cast<long>(sig == SIGTRAP ? 0 : sig)));
#else
    (void)st;
#endif
  }

  void strike() {
    hit_ = true;
    stepping_ = 0;
    if (fault_ == fault::kill) ::kill(pid(target_), SIGKILL);
    hit_ns_ = now_ns();
  }

  std::vector<pid_t> pids_;
  std::vector<bool> exited_;
  std::vector<int> status_;
  int target_;
  point pt_;
  std::uintptr_t marker_;
  fault fault_ = fault::kill;
  trace_counts counts_;
  bool in_wait_ = false;
  int stepping_ = 0;
  bool hit_ = false;
  bool resumed_ = false;
  std::int64_t hit_ns_ = 0;
};

/// Runs `body` in a forked child with a watchdog: its exit code, 0 = fine;
/// -1000 if it did not finish within `limit_ms` (it is then killed).
template <class F>
int probe(F&& body, long limit_ms = 1500) {
  const pid_t p = procsync_test::fork_child([&] {
    sigchld_blocker::unblock_in_child();
    return body();
  });
  return procsync_test::wait_exit_code(p, std::chrono::milliseconds(limit_ms));
}

inline std::string describe_status(int st) {
  if (WIFEXITED(st)) return "exit " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return std::string("killed by ") + ::strsignal(WTERMSIG(st));
  return "status " + std::to_string(st);
}

inline const char* phase_name(int p) {
  switch (p) {
    case idle: return "idle";
    case acquiring: return "acquiring/waiting";
    case holding: return "holding";
    case releasing: return "releasing";
    default: return "?";
  }
}

}  // namespace killpoint
