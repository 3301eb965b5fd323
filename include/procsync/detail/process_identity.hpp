// procsync/detail/process_identity.hpp — naming a process so that a reused pid
// is never mistaken for it.
//
// A pid alone is ambiguous once its process has died: the kernel hands it out
// again. The pair (pid, start time in clock ticks since boot, field 22 of
// /proc/<pid>/stat) is not: two processes with one pid cannot have started in the
// same tick. Primitives that must notice dead *processes* without a TID in a
// futex word (semaphore undo slots, barrier parties, shared_mutex readers) record
// this identity and check it with process_alive() while they wait.
#pragma once

#include <fcntl.h>
#include <pthread.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace procsync::detail {

struct process_identity {
  std::int32_t pid = 0;          // 0: no process
  std::uint32_t reserved = 0;
  std::uint64_t start_time = 0;  // clock ticks since boot

  friend bool operator==(const process_identity&, const process_identity&) = default;
};

enum class process_state { alive, stopped, dead };

/// Reads /proc/<pid>/stat: the state letter and the start time; false if gone.
/// Uses only open/read/close so it is async-signal-safe and allocation-free.
inline bool read_proc_stat(std::int32_t pid, char& state, std::uint64_t& start_time) noexcept {
  char path[48];
  std::memcpy(path, "/proc/", 6);
  char digits[16];
  int n = 0;
  for (std::uint32_t v = static_cast<std::uint32_t>(pid); v != 0 || n == 0; v /= 10) digits[n++] = char('0' + v % 10);
  int len = 6;
  while (n > 0) path[len++] = digits[--n];
  std::memcpy(path + len, "/stat", 6);

  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[1024];
  const ssize_t got = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (got <= 0) return false;
  buf[got] = '\0';
  // The command name (field 2) may contain spaces and ')': parse after the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr || p[1] != ' ') return false;
  p += 2;
  state = *p;
  // Field 3 is the state; start time is field 22, i.e. 19 fields further on.
  for (int field = 3; field < 22; ++field) {
    p = std::strchr(p, ' ');
    if (p == nullptr) return false;
    ++p;
  }
  start_time = std::strtoull(p, nullptr, 10);
  return true;
}

/// The identity of process `pid` now, or {0, 0} if there is no such process.
inline process_identity identity_of(std::int32_t pid) noexcept {
  char state = 0;
  std::uint64_t start = 0;
  if (!read_proc_stat(pid, state, start)) return {};
  return {pid, 0, start};
}

inline process_identity& cached_process_identity() noexcept {
  static process_identity cached{};
  return cached;
}

inline void forget_process_identity_after_fork() noexcept { cached_process_identity() = process_identity{}; }

/// The calling process's identity. Cached: the first call reads /proc, later
/// calls cost a load (getpid() is a real syscall in glibc >= 2.25, and a slow one
/// on some VMs). A fork child re-reads it (pthread_atfork hook).
inline const process_identity& current_process_identity() noexcept {
  process_identity& cached = cached_process_identity();
  if (cached.pid == 0) [[unlikely]] {
    static const bool fork_hook = ::pthread_atfork(nullptr, nullptr, forget_process_identity_after_fork) == 0;
    (void)fork_hook;
    cached = identity_of(static_cast<std::int32_t>(::getpid()));
  }
  return cached;
}

/// Whether the process named by `who` still runs: false once it has exited, is
/// a zombie, or its pid now belongs to another process. A stopped process
/// (SIGSTOP) is alive: it will continue and must not be robbed.
inline process_state state_of(const process_identity& who) noexcept {
  if (who.pid <= 0) return process_state::dead;
  char state = 0;
  std::uint64_t start = 0;
  if (!read_proc_stat(who.pid, state, start)) return process_state::dead;
  if (start != who.start_time) return process_state::dead;
  if (state == 'Z' || state == 'X' || state == 'x') return process_state::dead;
  if (state == 'T' || state == 't') return process_state::stopped;
  return process_state::alive;
}

inline bool process_alive(const process_identity& who) noexcept { return state_of(who) != process_state::dead; }

}  // namespace procsync::detail
