// procsync/detail/queue_ring.hpp — the ring under procsync::queue<T, N>: its
// bytes (position counters, doorbells, closed flag, slots), one attempt at a
// push or a pop that never waits, and the recovery of slots that dead or
// stopped threads hold. queue.hpp adds waiting, close() and pop_into's
// hand-off. The slot word's phases and why each step is safe against a death
// at any instruction: docs/queues.md.
#pragma once

#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>

#include "queue_common.hpp"
#include "queue_layout.hpp"
#include "shared_value_slots.hpp"
#include "waiting_floor.hpp"

namespace procsync::detail {

/// The ring of a queue<T, Capacity>: queue derives from it (privately) and
/// has no data of its own, so queue_layout describes this class's bytes.
template <class T, std::size_t Capacity>
class queue_ring {
 public:
  /// Looks at every slot held by another thread and deals with dead or
  /// stopped owners (docs/queues.md); returns how many slots it
  /// changed. Blocked and timed calls do this after every re-arm slice
  /// without progress; a caller that only uses try_push()/try_pop() may call
  /// it now and then.
  std::size_t recover() noexcept {
    std::size_t changed = 0;
    for (std::size_t i = 0; i < Capacity; ++i) {
      slot& s = slots_[i];
      std::uint64_t w = s.word.load(std::memory_order_acquire);
      const std::uint64_t phase = phase_of(w);
      if (phase != writing_phase && phase != into_phase) continue;
      const bool skipped = (w & skip_bit) != 0;
      if (phase == into_phase && skipped) continue;  // waits for resolve()
      const process_state state = owner_state(owner_of(w));
      if (state == process_state::alive) continue;
      std::uint64_t next = w | skip_bit;  // stopped: pass it by
      if (phase == writing_phase && state == detail::process_state::dead)
        next = make(seq_of(w) + static_cast<std::uint32_t>(Capacity), empty_phase, 0);  // void: never published
      if (next == w) continue;
      // seq_cst: the floor's Dekker pair with sleepers (ring below).
      if (s.word.compare_exchange_strong(w, next, std::memory_order_seq_cst, std::memory_order_relaxed)) ++changed;
    }
    if (changed != 0) {
      ring(items_, INT_MAX);
      ring(space_, INT_MAX);
    }
    return changed;
  }

 protected:
  // --- the slot word ---------------------------------------------------------
  // (one definition, in queue_layout, which observers read too)
  static constexpr std::uint64_t empty_phase = queue_layout::empty_phase;
  static constexpr std::uint64_t writing_phase = queue_layout::writing_phase;
  static constexpr std::uint64_t full_phase = queue_layout::full_phase;
  static constexpr std::uint64_t into_phase = queue_layout::into_phase;
  static constexpr std::uint64_t skip_bit = queue_layout::skip_bit;
  static constexpr unsigned owner_shift = queue_layout::owner_shift;
  static constexpr auto cap32 = static_cast<std::uint32_t>(Capacity);

  static constexpr std::uint64_t make(std::uint32_t seq, std::uint64_t phase, owner_token owner) noexcept {
    return queue_layout::make(seq, phase, owner);
  }
  static constexpr std::uint32_t seq_of(std::uint64_t w) noexcept { return queue_layout::seq_of(w); }
  static constexpr std::uint64_t phase_of(std::uint64_t w) noexcept { return queue_layout::phase_of(w); }
  static constexpr owner_token owner_of(std::uint64_t w) noexcept { return queue_layout::owner_of(w); }
  static constexpr std::uint64_t with_seq(std::uint64_t w, std::uint32_t seq) noexcept {
    return queue_layout::with_seq(w, seq);
  }

  static constexpr std::size_t slot_align = queue_layout::slot_align(sizeof(T), alignof(T));
  struct alignas(slot_align) slot {
    std::atomic<std::uint64_t> word{0};
    alignas(T) unsigned char bytes[sizeof(T)];
  };

  // --- one attempt, no waiting ------------------------------------------------
  /// Moves a position counter from `pos` to pos + 1 unless someone already did
  /// (`pos` by value: a failed compare-exchange must not change the caller's).
  static void advance(std::atomic<std::uint64_t>& counter, std::uint64_t pos) noexcept {
    counter.compare_exchange_strong(pos, pos + 1, std::memory_order_relaxed);
  }

  bool push_once(const T& item) {
    const owner_token me = current_owner_token();
    for (;;) {
      std::uint64_t pos = enq_.load(std::memory_order_relaxed);
      slot& s = slots_[pos % Capacity];
      // Acquire: a word that says EMPTY(p) comes after the last reader's copy.
      std::uint64_t w = s.word.load(std::memory_order_acquire);
      const auto d = static_cast<std::int32_t>(seq_of(w) - static_cast<std::uint32_t>(pos));
      if (d == 0 && phase_of(w) == empty_phase) {
        const std::uint64_t mine = make(static_cast<std::uint32_t>(pos), writing_phase, me);
        // seq_cst: claims the slot; its stores come after it for every reader.
        if (!s.word.compare_exchange_strong(w, mine, std::memory_order_seq_cst, std::memory_order_relaxed)) continue;
        advance(enq_, pos);
        PROCSYNC_QUEUE_STEP(push_claimed);
        // Release fence: a stale optimistic reader whose copy sees any byte
        // written below also sees the slot word changed (its take then fails).
        std::atomic_thread_fence(std::memory_order_release);
        std::memcpy(s.bytes, static_cast<const void*>(&item), sizeof(T));
        PROCSYNC_QUEUE_STEP(push_copied);
        std::uint64_t expected = mine;
        // seq_cst: publishes the item (release), and is the waker's half of
        // the floor's Dekker pair with the consumers' sleepers.
        if (s.word.compare_exchange_strong(expected, make(static_cast<std::uint32_t>(pos), full_phase, 0),
                                           std::memory_order_seq_cst, std::memory_order_relaxed)) {
          PROCSYNC_QUEUE_STEP(push_published);
          ring_one(items_);
          pass_baton(space_, pos + 1, true);
          return true;
        }
        // Skipped while we were stopped: give the slot back, push again.
        give_back(s, expected, me);
        continue;
      }
      if (d < 0) {
        // The slot still serves an older lap: full, unless its owner is
        // stopped (skip flag): then this position is void too.
        if ((w & skip_bit) == 0) return false;
        if (!s.word.compare_exchange_strong(w, with_seq(w, static_cast<std::uint32_t>(pos)), std::memory_order_seq_cst,
                                            std::memory_order_relaxed))
          continue;
      }
      // Position taken (or passed) by someone else: help the counter on.
      advance(enq_, pos);
    }
  }

  std::optional<T> pop_once() {
    for (;;) {
      std::uint64_t pos = deq_.load(std::memory_order_relaxed);
      slot& s = slots_[pos % Capacity];
      // Acquire: a FULL word comes with the producer's bytes.
      std::uint64_t w = s.word.load(std::memory_order_acquire);
      const auto d = static_cast<std::int32_t>(seq_of(w) - static_cast<std::uint32_t>(pos));
      if (d < 0) return std::nullopt;  // producers have not reached this position
      if (d == 0 && (w & skip_bit) == 0) {
        const std::uint64_t phase = phase_of(w);
        if (phase == empty_phase || phase == writing_phase) return std::nullopt;  // not yet published
        if (phase == full_phase) {
          T out;
          racy_copy(static_cast<void*>(&out), s.bytes, sizeof(T));
          // Acquire fence: a copy that saw a later writer's byte sees its claim.
          std::atomic_thread_fence(std::memory_order_acquire);
          PROCSYNC_QUEUE_STEP(pop_copied);
          // seq_cst: the take, and the waker's half of the Dekker pair with
          // the producers' sleepers.
          if (!s.word.compare_exchange_strong(w, make(static_cast<std::uint32_t>(pos) + cap32, empty_phase, 0),
                                              std::memory_order_seq_cst, std::memory_order_relaxed))
            continue;  // someone else took it, or it changed under the copy
          advance(deq_, pos);
          PROCSYNC_QUEUE_STEP(pop_taken);
          ring_one(space_);
          pass_baton(items_, pos + 1, false);
          return out;
        }
      }
      // Taken by another consumer, void (skip), or passed: help the counter on.
      advance(deq_, pos);
    }
  }

  /// Rings were coalesced (ring_one): one woken sleeper at a time.
  /// A caller that succeeded and leaves more to do for the other side's
  /// sleepers (items for consumers, room for producers) wakes one more.
  /// Costs one load when nobody sleeps.
  void pass_baton(wait_word& w, std::uint64_t next, bool room) noexcept {
    if (w.sleepers.load(std::memory_order_seq_cst) == 0) return;
    const std::uint64_t e = enq_.load(std::memory_order_relaxed), d = deq_.load(std::memory_order_relaxed);
    if (room ? (e - d < Capacity) : (e > next)) ring_one(w);
  }

  /// Releases the INTO slot that `owner` holds (we, or a dead owner we
  /// resolve for); `w` is its word as last seen (skip bumps may move it on).
  /// Stops if the slot is no longer that owner's.
  void release_into(slot& s, std::uint64_t w, owner_token owner) noexcept {
    while (phase_of(w) == into_phase && owner_of(w) == owner) {
      // seq_cst: frees the slot for the next lap; the Dekker pair with producers.
      if (s.word.compare_exchange_strong(w, make(seq_of(w) + cap32, empty_phase, 0), std::memory_order_seq_cst,
                                         std::memory_order_relaxed)) {
        ring(space_, INT_MAX);
        return;
      }
    }
  }

  /// A producer whose slot was skipped while it was stopped gives it back:
  /// the slot then serves the position after the last one skipped. `w` is the
  /// word it found (ours, with the skip flag; bumps may still move it).
  void give_back(slot& s, std::uint64_t w, owner_token me) noexcept {
    while (phase_of(w) == writing_phase && owner_of(w) == me) {
      if (s.word.compare_exchange_strong(w, make(seq_of(w) + cap32, empty_phase, 0), std::memory_order_seq_cst,
                                         std::memory_order_relaxed)) {
        ring(space_, INT_MAX);
        return;
      }
    }
  }

  alignas(64) std::atomic<std::uint64_t> enq_{0};  // next position to produce (a hint: slot words decide)
  alignas(64) std::atomic<std::uint64_t> deq_{0};  // next position to consume (a hint)
  alignas(64) wait_word items_;            // consumers sleep here; pushes ring it
  wait_word space_;                        // producers sleep here; pops ring it
  std::atomic<std::uint32_t> closed_{0};
  alignas(64) slot slots_[Capacity];
};

}  // namespace procsync::detail
