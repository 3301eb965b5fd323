// procsync/detail/process_local.hpp — state that belongs to one process and
// must vanish in every child it forks, however the child was made.
//
// Caches such as "my pid", "my TID", "my start time" are wrong in a fork child.
// pthread_atfork handlers fix them only for children made by fork(): _Fork(),
// vfork-less raw clone() and the like run no handlers. So the state lives in one
// page mapped with MADV_WIPEONFORK: the kernel hands every child a zeroed copy,
// whatever made it, and a zero `pid` means "not filled in this process yet".
// Threads compare their own cached pid with the page's (thread_identity.hpp).
//
// Fork safety: nothing here uses a guarded function-local static. A child forked
// while another thread was half-way through a guarded initialisation would wait
// for ever on that guard (the thread does not exist in the child). The page is
// published with a compare-exchange instead, and filling it is idempotent.
#pragma once

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace procsync::detail {

struct process_local_state {
  std::atomic<std::int32_t> pid{0};     // 0: not filled in this process (a fresh child's page reads 0)
  std::uint32_t reserved = 0;
  std::uint64_t start_time = 0;         // field 22 of /proc/self/stat, normalized (see process_identity.hpp)
  std::int64_t boottime_offset_ticks = 0;  // this process's time namespace offset, in clock ticks
};

/// Where process_local_page points until the page is mapped: never filled, so
/// its pid stays 0 and every cached copy compares unequal (no null check needed).
inline process_local_state process_local_placeholder{};
inline std::atomic<process_local_state*> process_local_page{&process_local_placeholder};

inline void wipe_process_local_after_fork() noexcept {
  if (process_local_state* p = process_local_page.load(std::memory_order_relaxed); p != &process_local_placeholder) {
    p->pid.store(0, std::memory_order_relaxed);
    p->start_time = 0;
    p->boottime_offset_ticks = 0;
  }
}

/// The page, mapped on first use. Never fails: if the kernel lacks
/// MADV_WIPEONFORK (Linux < 4.14) a pthread_atfork handler wipes it instead,
/// and if mmap itself fails a static fallback is used with the same handler.
inline process_local_state& process_local() noexcept {
  // Acquire: pairs with the publishing exchange below.
  process_local_state* expected = process_local_page.load(std::memory_order_acquire);
  if (expected != &process_local_placeholder) [[likely]]
    return *expected;
  const long page = ::sysconf(_SC_PAGESIZE);
  void* mem = ::mmap(nullptr, static_cast<std::size_t>(page), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
  static process_local_state fallback;  // constant-initialized: no guard
  bool wiped_by_kernel = false;
  process_local_state* fresh = &fallback;
  if (mem != MAP_FAILED) {
    wiped_by_kernel = ::madvise(mem, static_cast<std::size_t>(page), MADV_WIPEONFORK) == 0;
    fresh = new (mem) process_local_state{};
  }
  // Release: the page is constructed before anyone can see it.
  if (process_local_page.compare_exchange_strong(expected, fresh, std::memory_order_acq_rel,
                                                 std::memory_order_acquire)) {
    if (!wiped_by_kernel) (void)::pthread_atfork(nullptr, nullptr, wipe_process_local_after_fork);
    return *fresh;
  }
  if (mem != MAP_FAILED) ::munmap(mem, static_cast<std::size_t>(page));
  return *expected;
}

/// Reads one line-oriented /proc file into `buf` (NUL-terminated); false if
/// unreadable. open/read/close only: async-signal-safe, allocation-free.
inline bool read_small_file(const char* path, char* buf, std::size_t size) noexcept {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t got = ::read(fd, buf, size - 1);
  ::close(fd);
  if (got <= 0) return false;
  buf[got] = '\0';
  return true;
}

/// This process's time-namespace boottime offset in clock ticks (0 outside a
/// time namespace, or on kernels without them). /proc/<pid>/stat reports start
/// times shifted by the *reader's* offset, so identities are stored unshifted.
inline std::int64_t read_boottime_offset_ticks() noexcept {
  char buf[256];
  if (!read_small_file("/proc/self/timens_offsets", buf, sizeof buf)) return 0;
  const char* line = std::strstr(buf, "boottime");
  if (line == nullptr) return 0;
  char* end = nullptr;
  const long long secs = std::strtoll(line + 8, &end, 10);
  const long long nsecs = std::strtoll(end, nullptr, 10);
  const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
  return secs * ticks_per_second + nsecs / (1000000000LL / ticks_per_second);
}

}  // namespace procsync::detail
