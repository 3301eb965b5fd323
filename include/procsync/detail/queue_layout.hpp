// procsync/detail/queue_layout.hpp — the bytes of a queue<T, N>: where its
// control words and slots sit, and how a slot word encodes the position it
// serves, its phase (EMPTY, WRITING, FULL, INTO), the skip flag and its owner.
// One definition, read by queue.hpp and by the inspector (which knows a queue
// only by its kind); the phases are explained in docs/queues.md.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "queue_common.hpp"

namespace procsync::detail {

/// Where the words of a queue<T, N> sit, as functions of sizeof(T),
/// alignof(T) and N alone. An observer that knows a queue only by the kind
/// recorded in its segment ("procsync::queue<int64,8>"; an element's kind
/// spells its size and alignment, see element_kind) reads it through these
/// (procsync/inspect.hpp) without T. queue's constructor static_asserts every
/// one of them against the class, so a change that moves a word breaks the
/// build rather than the observer.
struct queue_layout {
  static constexpr std::uint32_t layout_version = 1;  ///< queue<T, N>::layout_version

  // The control words: at these offsets for every T and N.
  static constexpr std::size_t enq_offset = 0;       ///< std::atomic<std::uint64_t>: next position to produce
  static constexpr std::size_t deq_offset = 64;      ///< std::atomic<std::uint64_t>: next position to consume
  static constexpr std::size_t items_offset = 128;   ///< wait_word: consumers sleep on it
  static constexpr std::size_t space_offset = 136;   ///< wait_word: producers sleep on it
  static constexpr std::size_t closed_offset = 144;  ///< std::atomic<std::uint32_t>: nonzero once closed
  static constexpr std::size_t control_end = 148;    ///< the slots follow, aligned

  // A slot starts with its word (std::atomic<std::uint64_t>): the position it
  // serves (32 bits) | phase << 32 | skip_bit | owner << owner_shift.
  static constexpr std::uint64_t empty_phase = 0, writing_phase = 1, full_phase = 2, into_phase = 3;
  static constexpr std::uint64_t skip_bit = std::uint64_t{1} << 34;
  static constexpr unsigned owner_shift = 35;
  static constexpr std::uint32_t seq_of(std::uint64_t w) noexcept { return static_cast<std::uint32_t>(w); }
  static constexpr std::uint64_t phase_of(std::uint64_t w) noexcept { return (w >> 32) & 3; }
  static constexpr owner_token owner_of(std::uint64_t w) noexcept { return static_cast<owner_token>(w >> owner_shift); }
  /// The word for position `seq` in `phase`, held by `owner` (0: nobody).
  static constexpr std::uint64_t make(std::uint32_t seq, std::uint64_t phase, owner_token owner) noexcept {
    return std::uint64_t{seq} | phase << 32 | std::uint64_t{owner} << owner_shift;
  }
  /// The word with its position moved to `seq` (skip bumps).
  static constexpr std::uint64_t with_seq(std::uint64_t w, std::uint32_t seq) noexcept {
    return (w & ~std::uint64_t{0xffffffffu}) | seq;
  }

  static constexpr std::size_t round_up(std::size_t n, std::size_t a) noexcept { return (n + a - 1) / a * a; }
  static constexpr std::size_t larger(std::size_t a, std::size_t b) noexcept { return a > b ? a : b; }
  /// A slot's alignment: items of a cache line or more get a line of their
  /// own per slot, so the next slot's word never shares a line with bytes
  /// being copied; never less than the item's own (an alignas() weaker than
  /// the type's is ill-formed, and clang refuses it).
  static constexpr std::size_t slot_align(std::size_t size, std::size_t align) noexcept {
    return larger(size + 8 >= 64 ? 64 : alignof(std::atomic<std::uint64_t>), align);
  }
  /// sizeof a slot: the word, then the item at its alignment.
  static constexpr std::size_t slot_stride(std::size_t size, std::size_t align) noexcept {
    return round_up(round_up(8, align) + size, slot_align(size, align));
  }
  /// alignof the queue.
  static constexpr std::size_t object_align(std::size_t size, std::size_t align) noexcept {
    return larger(64, slot_align(size, align));
  }
  /// Where slot 0 starts; slot i is slot_stride() bytes further per i.
  static constexpr std::size_t slots_offset(std::size_t size, std::size_t align) noexcept {
    return round_up(control_end, object_align(size, align));
  }
  /// sizeof the queue.
  static constexpr std::size_t object_size(std::size_t size, std::size_t align, std::size_t capacity) noexcept {
    return round_up(slots_offset(size, align) + capacity * slot_stride(size, align), object_align(size, align));
  }

  /// Items queued, from the position counters (`deq` read before `enq`: both
  /// only grow, so a later enq is never below an earlier deq in a sound
  /// queue): enq - deq, in [0, capacity].
  static constexpr std::size_t fill(std::uint64_t enq, std::uint64_t deq, std::size_t capacity) noexcept {
    if (enq <= deq) return 0;
    return enq - deq > capacity ? capacity : static_cast<std::size_t>(enq - deq);
  }
};


}  // namespace procsync::detail
