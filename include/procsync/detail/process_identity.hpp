// procsync/detail/process_identity.hpp — naming a process so that a reused pid
// is never mistaken for it, and deciding in one place whether it still lives.
//
// A pid alone is ambiguous once its process has died: the kernel hands it out
// again. The pair (pid, start time in clock ticks since boot, field 22 of
// /proc/<pid>/stat) is not: two processes with one pid cannot have started in the
// same tick. Primitives that must notice dead *processes* without a TID in a
// futex word (semaphore undo slots, barrier parties, segment creators, the
// deadlock detector's wait entries) record this identity and ask state_of().
//
// Two traps, both handled here and only here:
//  - Time namespaces: /proc/<pid>/stat shows start times shifted by the
//    *reader's* boottime offset. Identities store the unshifted value, so a
//    process in another time namespace is not judged dead (± 1 tick of rounding).
//  - A process whose main thread called pthread_exit() while other threads run
//    shows state 'Z' for its pid: it is dead only if no thread is left
//    (field 20, num_threads).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "process_local.hpp"

namespace procsync::detail {

struct process_identity {
  std::int32_t pid = 0;          // 0: no process
  std::uint32_t reserved = 0;
  std::uint64_t start_time = 0;  // clock ticks since boot, as seen outside any time namespace

  friend bool operator==(const process_identity&, const process_identity&) = default;
};

enum class process_state { alive, stopped, dead };

struct proc_stat {
  char state = 0;
  std::uint64_t start_time = 0;  // as /proc shows it to this process
  long num_threads = 0;
};

/// Reads /proc/<pid>/stat; false if the process is gone. Async-signal-safe and
/// allocation-free (open/read/close only).
inline bool read_proc_stat(std::int32_t pid, proc_stat& out) noexcept {
  char path[48];
  std::memcpy(path, "/proc/", 6);
  char digits[16];
  int n = 0;
  for (std::uint32_t v = static_cast<std::uint32_t>(pid); v != 0 || n == 0; v /= 10) digits[n++] = char('0' + v % 10);
  int len = 6;
  while (n > 0) path[len++] = digits[--n];
  std::memcpy(path + len, "/stat", 6);
  char buf[1024];
  if (!read_small_file(path, buf, sizeof buf)) return false;
  // The command name (field 2) may contain spaces and ')': parse after the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr || p[1] != ' ') return false;
  p += 2;
  out.state = *p;
  // Field 3 is the state; num_threads is field 20 and the start time field 22.
  for (int field = 3; field < 22; ++field) {
    p = std::strchr(p, ' ');
    if (p == nullptr) return false;
    ++p;
    if (field + 1 == 20) out.num_threads = std::strtol(p, nullptr, 10);
  }
  out.start_time = std::strtoull(p, nullptr, 10);
  return true;
}

/// The calling process's own boottime offset (cached in the process-local page).
inline std::int64_t own_boottime_offset_ticks() noexcept;

/// The identity of process `pid` now, or {0, 0} if there is no such process.
inline process_identity identity_of(std::int32_t pid) noexcept {
  proc_stat st;
  if (!read_proc_stat(pid, st)) return {};
  return {pid, 0, st.start_time - static_cast<std::uint64_t>(own_boottime_offset_ticks())};
}

/// Fills the process-local page in a process that has not used it yet (the
/// first call, and the first call in every fork child). Idempotent: threads
/// racing here write the same values.
inline process_local_state& filled_process_local() noexcept {
  process_local_state& local = process_local();
  // Acquire: pairs with the release below, so the other fields are seen.
  if (local.pid.load(std::memory_order_acquire) != 0) [[likely]]
    return local;
  const auto pid = static_cast<std::int32_t>(::getpid());
  local.boottime_offset_ticks = read_boottime_offset_ticks();
  proc_stat st;
  local.start_time = read_proc_stat(pid, st) ? st.start_time - static_cast<std::uint64_t>(local.boottime_offset_ticks) : 0;
  local.pid.store(pid, std::memory_order_release);
  return local;
}

inline std::int64_t own_boottime_offset_ticks() noexcept { return filled_process_local().boottime_offset_ticks; }

/// The calling process's identity: read once per process, a load afterwards
/// (getpid() is a real syscall in glibc >= 2.25). Correct in fork children of
/// every kind (the page is wiped; see process_local.hpp).
inline process_identity current_process_identity() noexcept {
  const process_local_state& local = filled_process_local();
  return {local.pid.load(std::memory_order_relaxed), 0, local.start_time};
}

/// Whether the process named by `who` still runs. Dead once it has exited
/// (zombie with no thread left included) or its pid belongs to another process
/// now; a SIGSTOPped process is `stopped` — alive, and must not be robbed.
inline process_state state_of(const process_identity& who) noexcept {
  if (who.pid <= 0) return process_state::dead;
  proc_stat st;
  if (!read_proc_stat(who.pid, st)) return process_state::dead;
  // Unsigned (wrapping, defined) arithmetic: `who` may come from corrupt memory.
  const std::uint64_t start = st.start_time - static_cast<std::uint64_t>(own_boottime_offset_ticks());
  const std::uint64_t drift = start > who.start_time ? start - who.start_time : who.start_time - start;
  // ±1 tick: the kernel rounds (start + offset) to ticks, we subtract a rounded offset.
  if (drift > 1) return process_state::dead;
  if (st.state == 'X' || st.state == 'x') return process_state::dead;
  if (st.state == 'Z') return st.num_threads > 1 ? process_state::alive : process_state::dead;
  if (st.state == 'T' || st.state == 't') return process_state::stopped;
  return process_state::alive;
}

inline bool process_alive(const process_identity& who) noexcept { return state_of(who) != process_state::dead; }

}  // namespace procsync::detail
