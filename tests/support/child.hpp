// tests/support/child.hpp — forking helpers for procsync's own tests.
//
// Every child dies with the test (PR_SET_PDEATHSIG), so a test killed by its
// timeout never leaves workers behind; every wait has a watchdog, so a hung child
// fails the test instead of hanging it.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace procsync_test {

/// Forks; the child runs `body` (which returns its exit code or throws) and
/// _exits without running the parent's atexit handlers or Boost.Test reports.
template <class F>
pid_t fork_child(F&& body) {
  const pid_t parent = ::getpid();
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("fork");
    std::abort();
  }
  if (pid > 0) return pid;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(97);  // the parent died before prctl
  int code = 0;
  try {
    code = body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "child %d: uncaught exception: %s\n", ::getpid(), e.what());
    code = 98;
  } catch (...) {
    code = 99;
  }
  std::fflush(nullptr);
  ::_exit(code);
}

/// The raw wait status of `pid`, or -1 if it did not end within `limit`
/// (it is then SIGKILLed and reaped, so nothing is left behind).
inline int wait_status(pid_t pid, std::chrono::milliseconds limit = std::chrono::seconds(60)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return -2;
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

/// Exit code of a child that exited normally; -signal if killed; -1000 on watchdog.
inline int wait_exit_code(pid_t pid, std::chrono::milliseconds limit = std::chrono::seconds(60)) {
  const int status = wait_status(pid, limit);
  if (status < 0) return -1000;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1001;
}

/// What die_holding() hands to a take() whose hold lives in its own scope (a
/// unique_lock, a mapping, a constructor still running): calling it tells the
/// parent "held now" and sleeps until the parent's SIGKILL, so nothing of that
/// scope is undone before the death.
class hold_here {
 public:
  explicit hold_here(int fd) noexcept : fd_(fd) {}
  [[noreturn]] void operator()() const noexcept {
    (void)!::write(fd_, "h", 1);
    for (;;) ::pause();
  }

 private:
  int fd_;
};

/// Forks a child that takes something (locks a mutex, takes permits, waits at
/// a barrier) and SIGKILLs it while it holds it, then reaps it: the one way
/// these tests leave a primitive with a dead owner. The child runs `take()`,
/// or `take(hold)` (hold_here: for a hold that lives in take's own scope);
/// when take() returns, the child holds. A take() that returns an int fails
/// with a non-zero one: the child exits with it. For a take() that never
/// returns by itself (a wait), `seen_holding()`, evaluated in the parent, says
/// when it holds. The parent kills the child only once it holds, never later
/// than 30 s after the fork (the watchdog).
/// Returns the child's exit code: -SIGKILL when it died holding; -1000 when it
/// was not seen to hold within 30 s; its own code (98 when take() threw) when
/// it ended by itself. So `die_holding(...) == -SIGKILL` fails unless the
/// child really held and was killed holding.
template <class Take, class SeenHolding>
int die_holding(Take&& take, SeenHolding&& seen_holding) {
  int said[2];  // the child's "held now": a byte, or end of file if it ended first
  if (::pipe2(said, O_CLOEXEC) != 0) {
    std::perror("pipe2");
    std::abort();
  }
  const pid_t pid = fork_child([&]() -> int {
    ::close(said[0]);
    const hold_here hold(said[1]);
    if constexpr (std::is_invocable_v<Take&, const hold_here&>) {
      if constexpr (std::is_void_v<std::invoke_result_t<Take&, const hold_here&>>) take(hold);
      else if (const int rc = take(hold); rc != 0) return rc;
    } else {
      if constexpr (std::is_void_v<std::invoke_result_t<Take&>>) take();
      else if (const int rc = take(); rc != 0) return rc;
    }
    hold();
  });
  ::close(said[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  bool held = false, ended = false;
  while (!held && !ended && std::chrono::steady_clock::now() < deadline) {
    pollfd p{said[0], POLLIN, 0};
    if (::poll(&p, 1, 1) == 1) {  // also the 1 ms pause between looks
      char c = 0;
      const ssize_t n = ::read(said[0], &c, 1);
      held = n == 1;
      ended = n == 0;
    }
    if (!held && !ended && seen_holding()) held = true;
  }
  ::close(said[0]);
  ::kill(pid, SIGKILL);  // a child that ended by itself is a zombie: no effect
  const int code = wait_exit_code(pid);
  return !held && code == -SIGKILL ? -1000 : code;
}

/// die_holding() for a take() that returns (or calls hold) once it holds.
template <class Take>
int die_holding(Take&& take) {
  return die_holding(std::forward<Take>(take), [] { return false; });
}

/// A name no other test run can produce: prefix, pid, and a per-process counter.
inline std::string unique_name(const std::string& what) {
  static std::atomic<int> counter{0};
  return "procsync-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + what;
}

/// Polls `done` until it holds or `limit` passes; returns its last value.
template <class Pred>
bool eventually(Pred&& done, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

/// Waits until `flag` (shared memory another process writes) reaches at least
/// `value`; false after `limit`.
inline bool wait_flag(const std::atomic<int>& flag, int value,
                      std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  return eventually([&] { return flag.load() >= value; }, limit);
}

/// A unique segment name (unique_name) whose /dev/shm file is removed when
/// the test leaves its scope, whatever state the test left it in.
struct scoped_name {
  std::string name;
  explicit scoped_name(const std::string& what) : name(unique_name(what)) {}
  ~scoped_name() { ::unlink(("/dev/shm/" + name).c_str()); }  // also a file that is no valid segment
  scoped_name(const scoped_name&) = delete;
  scoped_name& operator=(const scoped_name&) = delete;
  operator std::string_view() const { return name; }
};

/// Whether /dev/shm has an entry `name` (a file, or a dangling link).
inline bool shm_exists(const std::string& name) {
  struct stat st {};
  return ::lstat(("/dev/shm/" + name).c_str(), &st) == 0;
}

/// The system call thread `tid` of process `pid` is blocked in now, or -1
/// while it runs (or is runnable: a woken sleeper reads as running until it
/// is on a CPU), or is gone. Tid 0 means the process's main thread.
inline long current_syscall(pid_t pid, pid_t tid = 0) {
  const std::string path = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid ? tid : pid) + "/syscall";
  char buf[64] = {};
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return -1;
  const bool got = std::fgets(buf, sizeof buf, f) != nullptr;
  std::fclose(f);
  if (!got || buf[0] < '0' || buf[0] > '9') return -1;  // "running", or "-1 ..." outside a call
  return std::strtol(buf, nullptr, 10);
}

/// Whether process `pid` is stopped (state T in /proc/<pid>/stat): a SIGSTOP
/// has taken effect, so it runs no more instructions until SIGCONT.
inline bool is_stopped(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  char buf[512] = {};
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return false;
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  const std::string_view stat(buf, n);
  const auto paren = stat.rfind(')');  // the name, in parentheses, may hold anything
  return paren != std::string_view::npos && paren + 2 < stat.size() && stat[paren + 2] == 'T';
}

/// Whether thread `tid` of process `pid` is blocked in a futex(2) call now:
/// "is it asleep yet?" decided by looking, never by sleeping.
inline bool blocked_in_futex(pid_t pid, pid_t tid = 0) { return current_syscall(pid, tid) == SYS_futex; }

/// How many times thread `tid` of process `pid` (0: its main thread) has
/// blocked voluntarily (/proc/<pid>/task/<tid>/status); -1 once it is gone. A
/// waiter whose count grew since a look and that is blocked in a futex call
/// again has woken (a re-arm slice ended, or a wake-up), re-checked its
/// condition and gone back to sleep since that look: "it had its chance to
/// return", decided by looking.
inline long voluntary_switches(pid_t pid, pid_t tid = 0) {
  const std::string path = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid ? tid : pid) + "/status";
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return -1;
  char line[256];
  long n = -1;
  while (std::fgets(line, sizeof line, f) != nullptr)
    if (std::sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1) break;
  std::fclose(f);
  return n;
}

/// Whether every process in `pids` is blocked in a futex call now.
template <class Pids>
bool all_blocked_in_futex(const Pids& pids) {
  for (pid_t p : pids)
    if (!blocked_in_futex(p)) return false;
  return true;
}

/// Whether each process in `pids` has gone back to sleep in a futex call since
/// `before` (their voluntary_switches() then): each woke at least once, looked
/// at its condition and blocked again.
template <class Pids>
bool all_slept_again(const Pids& pids, const std::vector<long>& before) {
  std::size_t i = 0;
  for (pid_t p : pids) {
    if (i >= before.size() || voluntary_switches(p) <= before[i] || !blocked_in_futex(p)) return false;
    ++i;
  }
  return true;
}

/// voluntary_switches() of each process in `pids`, for all_slept_again().
template <class Pids>
std::vector<long> switch_counts(const Pids& pids) {
  std::vector<long> out;
  for (pid_t p : pids) out.push_back(voluntary_switches(p));
  return out;
}

}  // namespace procsync_test
