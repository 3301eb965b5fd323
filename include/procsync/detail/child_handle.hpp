// procsync/detail/child_handle.hpp — one forked child as the process that
// started it holds it: the pid, a pidfd that names exactly that child, and the
// exit status once it is reaped. procsync::process owns one and decides when
// to signal, wait and reap; this type only does it. Why a pidfd:
// docs/process.md.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <string>
#include <utility>

#include "../error.hpp"
#include "clock.hpp"

namespace procsync::detail {

inline int pidfd_open(pid_t pid) noexcept { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0u)); }

inline int pidfd_send_signal(int pidfd, int sig) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0u));
}

/// A child the calling process forked, or none (pid() == 0). Movable, not
/// copyable; a moved-from handle is none. Every `name` argument only words
/// error messages (the process object's name).
class child_handle {
 public:
  child_handle() noexcept = default;
  child_handle(child_handle&& other) noexcept { take(other); }
  child_handle& operator=(child_handle&& other) noexcept {
    if (this != &other) {
      close();
      take(other);
    }
    return *this;
  }
  ~child_handle() { close(); }

  /// Opens a pidfd for `child`, forked just now by the caller `parent`. Until
  /// we reap it (only we wait for it) the pid names that child, so the pidfd
  /// does too. If pidfd_open fails, kills and reaps the child, so nothing is
  /// left behind, and throws the errno error.
  static child_handle adopt(pid_t child, pid_t parent, const std::string& name) {
    const int pidfd = pidfd_open(child);
    if (pidfd < 0) {
      const int err = errno;
      ::kill(child, SIGKILL);
      while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
      }
      throw_errno(err, "procsync::process::start: pidfd_open failed for '" + name + "' (procsync needs Linux >= 5.3)");
    }
    child_handle h;
    h.pid_ = child;
    h.started_by_ = parent;
    h.pidfd_ = pidfd;
    return h;
  }

  /// The calling process, in a child right after fork, as its object there
  /// sees it: started by `parent`, so that waiting for itself says not_parent.
  static child_handle of_self(pid_t parent) noexcept {
    child_handle h;
    h.pid_ = ::getpid();
    h.started_by_ = parent;
    return h;
  }

  pid_t pid() const noexcept { return pid_; }                ///< 0: none
  pid_t started_by() const noexcept { return started_by_; }  ///< the one process that may wait for it
  int pidfd() const noexcept { return pidfd_; }              ///< -1: none
  bool ended() const noexcept { return ended_; }             ///< reaped: exitcode() is valid
  int exitcode() const noexcept { return exitcode_; }        ///< 0..255, or -N for signal N

  /// Whether there is a child and the caller started it (so may wait for it).
  bool ours() const noexcept { return pid_ != 0 && started_by_ == ::getpid(); }

  /// Reaps the child if it has ended (or, with `block`, once it ends); returns
  /// whether it has. Requires ours(): the pid stays ours to wait for until reaped.
  bool reap(bool block, const std::string& name) {
    if (ended_) return true;
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
      if (r == pid_) {
        ended_ = true;
        exitcode_ = WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
        return true;
      }
      if (r == 0) return false;
      if (errno == EINTR) continue;
      const int err = errno;
      throw_errno(err, "procsync::process: waitpid for '" + name + "' (pid " + std::to_string(pid_) + ") failed" +
                           (err == ECHILD ? std::string(": it was reaped elsewhere (SIGCHLD ignored, or "
                                                        "waitpid(-1) in this process); its status is lost")
                                          : std::string()));
    }
  }

  /// Waits until the child ends (then reaps it and returns true) or `until`
  /// passes (false, never earlier). Sleeps in ppoll on the pidfd, which turns
  /// readable when the child ends: no busy polling. Requires ours().
  bool wait_until(steady::time_point until, const std::string& name) {
    for (;;) {
      if (reap(false, name)) return true;
      const auto now = steady::now();
      if (now >= until) return false;
      // Capped so that a far deadline stays a valid timespec; the loop resumes.
      const auto remaining = std::min<steady::duration>(until - now, std::chrono::hours(24));
      const auto secs = std::chrono::duration_cast<std::chrono::seconds>(remaining);
      const timespec wait{
          static_cast<time_t>(secs.count()),
          static_cast<long>(std::chrono::duration_cast<std::chrono::nanoseconds>(remaining - secs).count())};
      pollfd readable{pidfd_, POLLIN, 0};
      if (::ppoll(&readable, 1, &wait, nullptr) < 0 && errno != EINTR)
        throw_errno(errno, "procsync::process::join: ppoll on the pidfd of '" + name + "' failed");
    }
  }

  /// Sends `sig` through the pidfd, so a recycled pid is never signalled.
  /// Nothing happens once the child is reaped. Requires a child (pid() != 0).
  void send_signal(int sig, const char* operation, const std::string& name) {
    if (ended_) return;
    // ESRCH: it has exited already (the pidfd never names another process).
    if (detail::pidfd_send_signal(pidfd_, sig) < 0 && errno != ESRCH)
      throw_errno(errno, std::string("procsync::process::") + operation + ": pidfd_send_signal to '" + name +
                             "' (pid " + std::to_string(pid_) + ") failed");
  }

  /// Closes the pidfd and forgets the child: the handle is none again.
  void close() noexcept {
    if (pidfd_ >= 0) ::close(pidfd_);
    pid_ = 0;
    started_by_ = 0;
    pidfd_ = -1;
    ended_ = false;
    exitcode_ = 0;
  }

 private:
  void take(child_handle& other) noexcept {
    pid_ = std::exchange(other.pid_, 0);
    started_by_ = std::exchange(other.started_by_, 0);
    pidfd_ = std::exchange(other.pidfd_, -1);
    ended_ = std::exchange(other.ended_, false);
    exitcode_ = std::exchange(other.exitcode_, 0);
  }

  pid_t pid_ = 0;
  pid_t started_by_ = 0;
  int pidfd_ = -1;
  bool ended_ = false;
  int exitcode_ = 0;
};

}  // namespace procsync::detail
