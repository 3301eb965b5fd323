// procsync/detail/message_queue_index.hpp — the journaled index under
// procsync::message_queue: the queue's bytes, the journal that makes every
// change under the lock undoable, the binary heap ordered by (priority,
// arrival) and the free list. message_queue.hpp adds sending, receiving,
// waiting, recovery and close(). Why a lock and a journal: docs/queues.md.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "../lock_status.hpp"
#include "message_queue_layout.hpp"
#include "queue_common.hpp"
#include "waiting_floor.hpp"

namespace procsync::detail {

/// The bytes and the index of a message_queue<MaxMessageBytes, Capacity>,
/// whose lock is a `Lock` (procsync::mutex: a detail header names no public
/// primitive). message_queue derives from it (privately) and has no data of
/// its own, so message_queue_layout describes this class's bytes, and a
/// journal offset from `this` is one from the queue.
template <class Lock, std::size_t MaxMessageBytes, std::size_t Capacity>
class message_queue_index {
 protected:
  static constexpr std::uint32_t free_state = message_queue_layout::free_state;
  static constexpr std::uint32_t reserved_state = message_queue_layout::reserved_state;
  static constexpr std::uint32_t queued_state = message_queue_layout::queued_state;
  static constexpr std::size_t stride = MaxMessageBytes == 0 ? 1 : MaxMessageBytes;
  static constexpr std::size_t journal_capacity = message_queue_layout::journal_capacity(Capacity);

  struct slot_meta {
    std::uint32_t state = free_state;
    std::uint32_t owner = 0;  // the reserving sender (reserved_state)
    std::uint32_t size = 0;
    std::uint32_t priority = 0;
    std::uint64_t order = 0;  // arrival: FIFO within a priority
  };

  struct journal_entry {
    std::uint32_t offset;  // of the word, from the start of the queue
    std::uint32_t width;   // 4 or 8
    std::uint64_t old;
  };

  // Relaxed atomic stores with signal fences: the only observer of a half-done
  // step is the next lock holder after our death, and the kernel's exit path
  // orders our stores before its robust-list release; the fences keep the
  // compiler from reordering the steps.
  static void step() noexcept { std::atomic_signal_fence(std::memory_order_seq_cst); }
  template <class W>
  static void store(W& word, W value) noexcept {
    std::atomic_ref<W>(word).store(value, std::memory_order_relaxed);
  }

  /// Journaled write (lock held): the old value is saved before the word changes.
  template <class W>
  void jset(W& word, W value) noexcept {
    static_assert(sizeof(W) == 4 || sizeof(W) == 8);
    journal_entry& e = journal_[journal_count_];
    store(e.offset, static_cast<std::uint32_t>(reinterpret_cast<unsigned char*>(&word) -
                                               reinterpret_cast<unsigned char*>(this)));
    store(e.width, static_cast<std::uint32_t>(sizeof(W)));
    store(e.old, static_cast<std::uint64_t>(word));
    step();
    store(journal_count_, journal_count_ + 1);
    step();
    store(word, value);
    step();
  }
  void commit() noexcept {
    step();
    store(journal_count_, 0u);
    step();
  }
  /// Rolls back what a dead holder left half-done (newest first).
  void undo() noexcept {
    for (std::uint32_t i = journal_count_; i-- > 0;) {
      const journal_entry& e = journal_[i];
      unsigned char* at = reinterpret_cast<unsigned char*>(this) + e.offset;
      if (e.width == 4)
        store(*reinterpret_cast<std::uint32_t*>(at), static_cast<std::uint32_t>(e.old));
      else
        store(*reinterpret_cast<std::uint64_t*>(at), e.old);
      step();
    }
    commit();
  }

  /// Holds the index lock; repairs after a dead holder.
  struct guard {
    explicit guard(message_queue_index& q) : q_(q) {
      if (q_.lock_.lock_robust() == lock_status::owner_died) {
        q_.undo();
        q_.lock_.consistent();
      }
    }
    ~guard() { q_.lock_.unlock(); }
    guard(const guard&) = delete;
    guard& operator=(const guard&) = delete;
    message_queue_index& q_;
  };

  unsigned char* data(std::uint32_t s) noexcept { return data_ + std::size_t{s} * stride; }

  /// Whether heap entry a comes out before heap entry b.
  bool before(std::uint32_t a, std::uint32_t b) const noexcept {
    const slot_meta& x = meta_[a];
    const slot_meta& y = meta_[b];
    return x.priority != y.priority ? x.priority > y.priority : x.order < y.order;
  }

  void heap_push(std::uint32_t s) noexcept {
    if constexpr (Capacity == 1) {  // (spelled out: g++ sees heap_[1] below otherwise)
      jset(heap_[0], s);
      jset(queued_, 1u);
      PROCSYNC_QUEUE_STEP(send_journaled);
      return;
    }
    std::uint32_t i = queued_;
    jset(heap_[i], s);
    jset(queued_, queued_ + 1);
    PROCSYNC_QUEUE_STEP(send_journaled);
    while (i > 0) {
      const std::uint32_t parent = (i - 1) / 2;
      if (!before(heap_[i], heap_[parent])) break;
      const std::uint32_t a = heap_[i], b = heap_[parent];
      jset(heap_[i], b);
      jset(heap_[parent], a);
      i = parent;
    }
  }

  std::uint32_t heap_pop() noexcept {
    const std::uint32_t top = heap_[0];
    const std::uint32_t n = queued_ - 1;
    jset(heap_[0], heap_[n]);
    jset(queued_, n);
    std::uint32_t i = 0;
    for (;;) {
      const std::uint32_t l = 2 * i + 1, r = l + 1;
      std::uint32_t best = i;
      if (l < n && before(heap_[l], heap_[best])) best = l;
      if (r < n && before(heap_[r], heap_[best])) best = r;
      if (best == i) break;
      const std::uint32_t a = heap_[i], b = heap_[best];
      jset(heap_[i], b);
      jset(heap_[best], a);
      i = best;
    }
    return top;
  }

  /// A racy read of an index word, for wake-up decisions only.
  static std::uint32_t hint(const std::uint32_t& word) noexcept {
    return std::atomic_ref<std::uint32_t>(const_cast<std::uint32_t&>(word)).load(std::memory_order_relaxed);
  }


  Lock lock_;  // guards everything below except the wait words, closed_ and the message bytes
  std::uint32_t journal_count_ = 0;
  std::uint32_t queued_ = 0;  // heap size
  std::uint32_t free_count_ = 0;
  std::uint32_t reserved_word_ = 0;  // padding: next_order_ 8-aligned
  std::uint64_t next_order_ = 0;
  journal_entry journal_[journal_capacity] = {};
  std::uint32_t heap_[Capacity] = {};
  std::uint32_t free_[Capacity] = {};
  slot_meta meta_[Capacity] = {};
  alignas(64) wait_word items_;  // receivers sleep here; sends ring it
  wait_word space_;              // senders sleep here; receives ring it
  std::atomic<std::uint32_t> closed_{0};
  alignas(64) unsigned char data_[Capacity * stride];
};

}  // namespace procsync::detail
