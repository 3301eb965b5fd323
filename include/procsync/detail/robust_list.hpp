// procsync/detail/robust_list.hpp — membership in the kernel's robust-futex
// list (the calling thread's identity is in thread_identity.hpp).
//
// Why the kernel's list: when a thread dies (SIGKILL included) the kernel walks
// the list the thread registered with set_robust_list(2) and, for every futex
// word whose low 30 bits still hold the dead thread's TID, sets FUTEX_OWNER_DIED
// and wakes one waiter. That is the only mechanism that makes recovery
// immediate, with no polling, and it can never mistake a reused TID for the dead
// owner (the kernel acts during the exit, before the TID can be reused).
//
// The trap: a thread has exactly one list head, and glibc registers it for its
// own robust pthread mutexes. Registering ours would silently disable glibc's.
// So procsync joins glibc's list instead: our list nodes have exactly the layout
// and link encoding of glibc's (`__pthread_list_t {prev, next}` 24 bytes after
// the futex word, every link pointing at a node's `next` slot, glibc's
// nptl/descr.h ENQUEUE_MUTEX_BOTH/DEQUEUE_MUTEX), and we check the registered
// head's futex_offset before using it. If no head is registered (a thread not
// started by glibc), we register a head of our own with the same layout.
//
// Limits (documented in README): a TID in the word is meaningful inside one PID
// namespace only, so all processes sharing a robust word must share one; a
// thread must not unmap a segment while it holds a lock in it.
#pragma once

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "../error.hpp"

namespace procsync::detail {

// The robust futex word format the kernel understands (linux/futex.h).
inline constexpr std::uint32_t word_tid_mask = 0x3fffffffu;     // FUTEX_TID_MASK
inline constexpr std::uint32_t word_owner_died = 0x40000000u;   // FUTEX_OWNER_DIED
inline constexpr std::uint32_t word_waiters = 0x80000000u;      // FUTEX_WAITERS
// No TID can be this large (PID_MAX_LIMIT is 2^22), so the kernel never matches it.
inline constexpr std::uint32_t word_not_recoverable = word_tid_mask;

/// One link of a thread's robust list, stored inside a shared-memory object.
/// Both fields point at the `next` slot of a neighbour (glibc's encoding). They
/// are meaningful only to the thread that holds the lock and to the kernel when
/// that thread dies; nobody else reads them, so the object stays usable at any
/// mapping address.
struct robust_node {
  void* prev = nullptr;
  void* next = nullptr;
};

/// The distance from a futex word to its robust_node, fixed by glibc's
/// pthread_mutex_t layout (the kernel computes word = &node.next + futex_offset).
inline constexpr std::ptrdiff_t robust_node_offset = 24;
inline constexpr long robust_futex_offset = -(robust_node_offset + static_cast<long>(sizeof(void*)));

struct kernel_robust_head {
  void* list;               // the first node's `next` slot, or &list when empty
  long futex_offset;        // word address = entry + futex_offset
  void* list_op_pending;    // a node being locked or unlocked right now
};

/// A head for threads that glibc did not register (preceded by the `prev` slot
/// glibc keeps in front of its own head, so both look alike).
struct own_robust_head {
  void* prev;
  kernel_robust_head head;
};

[[noreturn, gnu::cold, gnu::noinline]] inline void throw_robust_list_unsupported(long found) {
  throw_error(errc::unsupported, "procsync: the thread's robust futex list uses futex_offset " +
                                     std::to_string(found) + ", expected " +
                                     std::to_string(robust_futex_offset) +
                                     " (glibc layout); robust locks are unsupported with this C library");
}

inline kernel_robust_head* register_own_robust_head() {
  static thread_local own_robust_head own{};  // constant-initialized: no guard
  own.head = kernel_robust_head{&own.head.list, robust_futex_offset, nullptr};
  own.prev = &own.head.list;
  if (::syscall(SYS_set_robust_list, &own.head, sizeof(kernel_robust_head)) != 0)
    throw_error(errc::unsupported, "procsync: set_robust_list failed; robust locks need Linux >= 2.6.17");
  return &own.head;
}

/// The calling thread's registered list head (glibc's, or one of ours if none
/// is registered, as in a child made by a raw clone()). Checks the layout.
inline kernel_robust_head* calling_thread_robust_head() {
  kernel_robust_head* head = nullptr;
  std::size_t length = 0;
  if (::syscall(SYS_get_robust_list, 0, &head, &length) != 0) head = nullptr;
  if (head == nullptr) head = register_own_robust_head();
  if (head->futex_offset != robust_futex_offset) throw_robust_list_unsupported(head->futex_offset);
  return head;
}

// ---- list operations: only the thread that owns the list calls these --------
// The kernel reads the list only after this thread has died, so plain stores
// suffice; a compiler barrier keeps each link complete before it is published,
// because the thread may die between any two instructions.

inline void** next_slot(robust_node* node) noexcept { return &node->next; }
inline void** prev_slot_of(void* next_slot_address) noexcept {
  return reinterpret_cast<void**>(static_cast<char*>(next_slot_address) - sizeof(void*));
}
inline void* strip_pi_bit(void* link) noexcept {
  return reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(link) & ~std::uintptr_t{1});
}

/// Marks `node` as "being locked/unlocked": if the thread dies before the list
/// is consistent again, the kernel still inspects this node's word.
inline void set_pending(kernel_robust_head* head, robust_node* node) noexcept {
  head->list_op_pending = next_slot(node);
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

inline void clear_pending(kernel_robust_head* head) noexcept {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  head->list_op_pending = nullptr;
}

[[noreturn, gnu::cold, gnu::noinline]] inline void abort_destroyed_while_held(const void* entry) noexcept {
  // Writing into that entry would corrupt whatever now occupies its memory:
  // stop loudly instead (a message and SIGABRT; no allocation here).
  static const char message[] =
      "procsync: fatal: a lock this thread still holds was destroyed, overwritten or unmapped while held "
      "(its entry in the thread's robust list no longer holds this thread's id). Unlock a mutex before its "
      "storage ends.\n";
  (void)!::write(2, message, sizeof message - 1);
  (void)entry;
  std::abort();
}

/// Pushes `node` at the front of the thread's robust list. The entry now at the
/// front is the most recent lock the thread still holds: its word must hold the
/// thread's TID, else it was destroyed while held (see abort_destroyed_while_held).
inline void robust_enqueue(kernel_robust_head* head, robust_node* node, std::uint32_t tid) noexcept {
  void* first = head->list;
  if (first != &head->list) [[unlikely]] {
    const auto* word = reinterpret_cast<const std::uint32_t*>(static_cast<const char*>(strip_pi_bit(first)) +
                                                              head->futex_offset);
    if ((__atomic_load_n(word, __ATOMIC_RELAXED) & word_tid_mask) != tid) abort_destroyed_while_held(first);
  }
  *prev_slot_of(strip_pi_bit(first)) = next_slot(node);
  node->next = first;
  node->prev = &head->list;
  std::atomic_signal_fence(std::memory_order_seq_cst);  // the node is whole before the kernel can reach it
  head->list = next_slot(node);
}

/// Unlinks `node` (which the thread holds) from the thread's robust list.
inline void robust_dequeue(robust_node* node) noexcept {
  void* next = node->next;
  void* prev = node->prev;
  *prev_slot_of(strip_pi_bit(next)) = prev;
  *static_cast<void**>(strip_pi_bit(prev)) = next;  // one store removes it from the kernel's view
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

}  // namespace procsync::detail
