// procsync/detail/thread_identity.hpp — who the calling thread is: its TID (what
// robust lock words hold) and its robust-list head, cached per thread.
//
// The cache is checked against the process-local page (process_local.hpp) on
// every use: a child made by fork(), _Fork() or a raw clone() sees that page
// wiped, so its threads' copies of the parent's TID are never used to lock
// (a lock taken under the parent's TID could never be released by the kernel
// when the child dies). The check is one compare of two cached words.
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "process_identity.hpp"
#include "robust_list.hpp"

namespace procsync::detail {

struct thread_identity {
  std::uint32_t tid = 0;
  std::int32_t pid = -1;  // the process it was filled in; -1: never (the page's pid is never -1)
  kernel_robust_head* head = nullptr;
};

inline thread_identity& this_thread_identity() noexcept {
  static thread_local thread_identity identity;  // constant-initialized: no guard
  return identity;
}

[[gnu::noinline, gnu::cold]] inline thread_identity& init_thread_identity() {
  thread_identity& self = this_thread_identity();
  const process_local_state& local = filled_process_local();
  self.head = calling_thread_robust_head();
  self.tid = static_cast<std::uint32_t>(::syscall(SYS_gettid));
  self.pid = local.pid.load(std::memory_order_relaxed);
  return self;
}

/// The calling thread's identity; the first call in a thread (and in a fork
/// child) costs a few syscalls, later ones two loads and a compare.
inline thread_identity& current_thread() {
  thread_identity& self = this_thread_identity();
  // Relaxed: the page pointer and pid are only ever compared with our own copy.
  if (self.pid != process_local_page.load(std::memory_order_relaxed)->pid.load(std::memory_order_relaxed))
      [[unlikely]]
    return init_thread_identity();
  return self;
}

/// The calling thread's TID (cached).
inline std::uint32_t current_tid() { return current_thread().tid; }

inline void set_pending(const thread_identity& self, robust_node* node) noexcept { set_pending(self.head, node); }
inline void clear_pending(const thread_identity& self) noexcept { clear_pending(self.head); }
inline void robust_enqueue(const thread_identity& self, robust_node* node) noexcept {
  robust_enqueue(self.head, node, self.tid);
}

}  // namespace procsync::detail
