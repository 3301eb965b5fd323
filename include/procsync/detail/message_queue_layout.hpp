// procsync/detail/message_queue_layout.hpp — the bytes of a
// message_queue<MaxMessageBytes, N>: where its index words, journal, heap,
// free list, slot metadata, doorbells and message slots sit. One definition,
// read by message_queue.hpp and by the inspector (which knows a queue only by
// its kind).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace procsync::detail {

/// Where the words of a message_queue<MaxMessageBytes, N> sit, as functions
/// of N (and, for its size, MaxMessageBytes) alone: an observer that knows the
/// queue only by the kind recorded in its segment
/// ("procsync::message_queue<256,64>") reads it through these
/// (procsync/inspect.hpp). message_queue's constructor static_asserts every
/// one of them against the class, so a change that moves a word breaks the
/// build rather than the observer.
struct message_queue_layout {
  static constexpr std::uint32_t layout_version = 1;  ///< message_queue<M, N>::layout_version

  static constexpr std::size_t lock_offset = 0;            ///< procsync::mutex guarding the index
  static constexpr std::size_t journal_count_offset = 40;  ///< uint32: entries of a change under way (0: none)
  static constexpr std::size_t queued_offset = 44;         ///< uint32: messages queued (the heap's size)
  static constexpr std::size_t free_count_offset = 48;     ///< uint32: free slots
  static constexpr std::size_t journal_offset = 64;        ///< the journal, then heap, free list, slot metadata
  static constexpr std::size_t journal_entry_bytes = 16;
  /// A slot's metadata: state and owner (uint32 each) first, then size,
  /// priority (uint32) and arrival order (uint64).
  static constexpr std::size_t meta_bytes = 24;
  static constexpr std::size_t meta_state_offset = 0, meta_owner_offset = 4;
  /// A slot's states: free, reserved by a sender copying its message in
  /// (owner: its owner_token), queued.
  static constexpr std::uint32_t free_state = 0, reserved_state = 1, queued_state = 2;
  static constexpr std::size_t object_align = 64;  ///< alignof the queue

  static constexpr std::size_t round_up(std::size_t n, std::size_t a) noexcept { return (n + a - 1) / a * a; }
  /// Journal entries one operation can need: a few words, plus two per heap level.
  static constexpr std::size_t journal_capacity(std::size_t capacity) noexcept {
    return 16 + 2 * static_cast<std::size_t>(std::bit_width(capacity));
  }
  static constexpr std::size_t heap_offset(std::size_t capacity) noexcept {
    return journal_offset + journal_entry_bytes * journal_capacity(capacity);
  }
  static constexpr std::size_t free_offset(std::size_t capacity) noexcept {
    return heap_offset(capacity) + 4 * capacity;
  }
  /// Slot s's metadata is meta_bytes * s further.
  static constexpr std::size_t meta_offset(std::size_t capacity) noexcept {
    return round_up(free_offset(capacity) + 4 * capacity, 8);
  }
  /// wait_word: receivers sleep on it.
  static constexpr std::size_t items_offset(std::size_t capacity) noexcept {
    return round_up(meta_offset(capacity) + meta_bytes * capacity, 64);
  }
  /// wait_word: senders sleep on it.
  static constexpr std::size_t space_offset(std::size_t capacity) noexcept { return items_offset(capacity) + 8; }
  /// std::atomic<std::uint32_t>: nonzero once closed.
  static constexpr std::size_t closed_offset(std::size_t capacity) noexcept { return items_offset(capacity) + 16; }
  static constexpr std::size_t data_offset(std::size_t capacity) noexcept {
    return round_up(closed_offset(capacity) + 4, 64);
  }
  /// sizeof the queue.
  static constexpr std::size_t object_size(std::size_t max_message_bytes, std::size_t capacity) noexcept {
    return round_up(data_offset(capacity) + capacity * (max_message_bytes == 0 ? 1 : max_message_bytes), 64);
  }
};

}  // namespace procsync::detail
