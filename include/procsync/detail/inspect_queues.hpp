// procsync/detail/inspect_queues.hpp — how the inspector (procsync/inspect.hpp)
// reads a queue<T, N> or a message_queue<M, N> without its T or M: the kind
// spells the shape, detail::queue_layout / detail::message_queue_layout give
// the offsets, and every word read is checked before it is shown.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../mutex.hpp"
#include "inspect_entry.hpp"
#include "inspect_read.hpp"
#include "inspect_types.hpp"
#include "message_queue_layout.hpp"
#include "object_header.hpp"
#include "process_identity.hpp"
#include "queue_common.hpp"
#include "queue_layout.hpp"
#include "robust_list.hpp"
#include "waiting_floor.hpp"

namespace procsync {

namespace detail::inspect {

/// Who owns a queue slot: its owner token's TID through /proc, unless that
/// TID now names a thread started at another time (then: gone).
inline thread_info describe_owner(detail::owner_token token) {
  thread_info t;
  t.tid = token >> detail::owner_tag_bits;
  if (t.tid == 0 || detail::owner_state(token) == detail::process_state::dead) return t;
  return describe_thread(t.tid);
}

inline void add_note(object_snapshot& o, const std::string& text) {
  if (!o.note.empty()) o.note += "; ";
  o.note += text;
}

/// A sleeper count, if it can be one (a corrupt word is dropped with a note).
inline std::optional<std::uint32_t> sleeper_count(const char* wait_word, const char* side, object_snapshot& o) {
  const auto n = detail::inspect::load_word<std::uint32_t>(wait_word + offsetof(detail::wait_word, sleepers));
  // No more threads than TIDs can exist (PID_MAX_LIMIT, 2^22).
  if (n <= (1u << 22)) return n;
  add_note(o, std::string(side) + " sleeper count unreadable (" + std::to_string(n) + ")");
  return std::nullopt;
}

/// What every queue shows: the state word from fill level and closed flag, the waiters total.
inline void finish_queue(object_snapshot& o) {
  if (o.closed.value_or(false))
    o.state = object_state::closed;
  else if (!o.items)
    o.state = object_state::unknown;
  else if (*o.items == 0)
    o.state = object_state::empty;
  else if (o.capacity && *o.items >= *o.capacity)
    o.state = object_state::full;
  else
    o.state = object_state::nonempty;
  if (o.consumers_waiting && o.producers_waiting) {
    o.waiters = *o.consumers_waiting + *o.producers_waiting;
    o.waiters_exact = true;
  }
}

/// queue<T, N>, known by its kind "procsync::queue<ELEMENT,N>" only.
inline void read_queue(const entry& e, object_snapshot& o) {
  using L = detail::queue_layout;
  namespace di = detail::inspect;
  o.short_kind = "queue";
  const auto value = reinterpret_cast<std::uintptr_t>(e.value);
  if (e.header.layout_version != L::layout_version || e.header.value_size < L::slots_offset(1, 1) ||
      e.header.value_align < 64 || value % 64 != 0) {
    o.state = object_state::unknown;
    o.note = "layout version " + std::to_string(e.header.layout_version) + " (" +
             std::to_string(e.header.value_size) + " bytes, aligned " + std::to_string(e.header.value_align) +
             ") not known to this inspector (version " + std::to_string(L::layout_version) + ")";
    return;
  }
  // The control words sit at the same offsets for every T and N.
  const std::string_view args = di::template_arguments(e.header.kind_prefix(), "procsync::queue");
  const std::size_t comma = args.rfind(',');
  std::optional<std::uint64_t> capacity;
  std::optional<di::element_shape> shape;
  if (comma != std::string_view::npos && e.header.kind_length <= detail::object_kind_capacity) {
    capacity = di::whole_number(args.substr(comma + 1), std::uint64_t{1} << 30);
    if (capacity == 0u) capacity.reset();
    shape = di::shape_of_element(args.substr(0, comma));
  }
  o.capacity = capacity;
  // The slots are read only where the recorded size is exactly the one the kind implies.
  bool slots_known = false;
  if (!capacity) {
    add_note(o, "capacity not readable from the kind (cut short in the header?): slots not read");
  } else if (!shape) {
    add_note(o, "element size not readable from the kind: slots not read");
  } else if (*capacity > e.header.value_size / L::slot_stride(shape->size, shape->align) ||
             L::object_size(shape->size, shape->align, *capacity) != e.header.value_size ||
             L::object_align(shape->size, shape->align) != e.header.value_align) {
    add_note(o, "recorded size " + std::to_string(e.header.value_size) + " is not a " + e.header.kind_for_message() +
                    "'s: slots not read");
  } else {
    slots_known = true;
  }
  const char* q = e.value;
  // deq first: both only grow, so in a sound queue the later enq is not below it.
  const auto deq = di::load_word<std::uint64_t>(q + L::deq_offset, std::memory_order_acquire);
  const auto enq = di::load_word<std::uint64_t>(q + L::enq_offset, std::memory_order_acquire);
  if (enq < deq) {
    add_note(o, "position counters out of order (enq " + std::to_string(enq) + " < deq " + std::to_string(deq) +
                    "): fill level unknown");
  } else if (capacity) {
    o.items = L::fill(enq, deq, static_cast<std::size_t>(*capacity));
  } else if (enq - deq <= e.header.value_size / 16) {  // a slot takes 16 bytes at least
    o.items = enq - deq;
  } else {
    add_note(o, "fill level unknown: enq - deq = " + std::to_string(enq - deq) + " is more than fits");
  }
  o.closed = di::load_word<std::uint32_t>(q + L::closed_offset, std::memory_order_acquire) != 0;
  o.consumers_waiting = sleeper_count(q + L::items_offset, "consumer", o);
  o.producers_waiting = sleeper_count(q + L::space_offset, "producer", o);
  if (slots_known) {
    const std::size_t stride = L::slot_stride(shape->size, shape->align);
    const char* slots = q + L::slots_offset(shape->size, shape->align);
    std::size_t held = 0;
    for (std::size_t i = 0; i < *capacity; ++i) {
      const auto w = di::load_word<std::uint64_t>(slots + i * stride, std::memory_order_acquire);
      const std::uint64_t phase = L::phase_of(w);
      if (phase != L::writing_phase && phase != L::into_phase) continue;  // EMPTY and FULL have no owner
      if (++held > object_snapshot::max_held_slots) continue;
      o.held_slots.push_back(slot_holder{static_cast<std::uint32_t>(i),
                                         phase == L::writing_phase ? "writing" : "handing_off",
                                         describe_owner(L::owner_of(w)), (w & L::skip_bit) != 0});
    }
    if (held > object_snapshot::max_held_slots)
      add_note(o, std::to_string(held - object_snapshot::max_held_slots) + " more held slots not listed");
  }
  finish_queue(o);
}

/// message_queue<M, N>, known by its kind "procsync::message_queue<M,N>" only.
inline void read_message_queue(const entry& e, object_snapshot& o) {
  using L = detail::message_queue_layout;
  namespace di = detail::inspect;
  o.short_kind = "message_queue";
  const std::string_view args = di::template_arguments(e.header.kind_prefix(), "procsync::message_queue");
  const std::size_t comma = args.find(',');
  std::optional<std::uint64_t> max_bytes, capacity;
  if (comma != std::string_view::npos) {
    max_bytes = di::whole_number(args.substr(0, comma), 0xffffffffu);
    capacity = di::whole_number(args.substr(comma + 1), std::uint64_t{1} << 24);
  }
  if (!max_bytes || !capacity || *capacity == 0 || e.header.layout_version != L::layout_version ||
      e.header.value_size != L::object_size(*max_bytes, *capacity) || e.header.value_align != L::object_align ||
      reinterpret_cast<std::uintptr_t>(e.value) % L::object_align != 0) {
    o.state = object_state::unknown;
    o.note = "layout version " + std::to_string(e.header.layout_version) + " (" +
             std::to_string(e.header.value_size) + " bytes) not known to this inspector for this kind (version " +
             std::to_string(L::layout_version) + ")";
    return;
  }
  const auto n = static_cast<std::size_t>(*capacity);
  o.capacity = capacity;
  o.max_message_bytes = max_bytes;
  const char* q = e.value;
  // The index lock: who holds it now (a few hundred ns per call, unless stopped there).
  const std::uint32_t word = std::launder(reinterpret_cast<const mutex*>(q + L::lock_offset))->lock_word();
  if (word != detail::word_not_recoverable && (word & detail::word_tid_mask) != 0)
    o.holder = describe_thread(word & detail::word_tid_mask);
  const bool holder_died = word != detail::word_not_recoverable && (word & detail::word_owner_died) != 0;
  // Every change to the index is journaled (each word's old value saved
  // before it is written; the commit empties the journal). The index is
  // shown as of the last commit: a dead holder's half-made change is rolled
  // back by the next holder, a live one's is not made until it commits.
  std::vector<std::pair<std::uint32_t, std::uint32_t>> before;  // offset, value at the last commit
  const auto journaled = di::load_word<std::uint32_t>(q + L::journal_count_offset);
  if (journaled > L::journal_capacity(n)) {
    add_note(o, "journal unreadable (" + std::to_string(journaled) + " entries): counts as they stand");
  } else {
    for (std::uint32_t i = 0; i < journaled; ++i) {
      const char* j = q + L::journal_offset + i * L::journal_entry_bytes;
      const auto offset = di::load_word<std::uint32_t>(j);
      const auto width = di::load_word<std::uint32_t>(j + 4);
      const auto old = di::load_word<std::uint64_t>(j + 8);
      // The first entry for a word holds its committed value; the inspector reads only 32-bit ones.
      if (width != 4 || std::any_of(before.begin(), before.end(), [&](const auto& b) { return b.first == offset; }))
        continue;
      before.emplace_back(offset, static_cast<std::uint32_t>(old));
    }
    if (journaled != 0)
      add_note(o, holder_died ? "the index lock's holder died mid-change: shown as of the last commit, which its "
                                "next holder restores"
                              : "a change is under way: shown as of the last commit");
  }
  if (holder_died && journaled == 0) add_note(o, "the index lock's holder died (between changes: nothing to undo)");
  const auto committed = [&](std::size_t offset) {
    for (const auto& [at, value] : before)
      if (at == offset) return value;
    return di::load_word<std::uint32_t>(q + offset);
  };
  // One word each: each is whole, two may be from different moments.
  const std::uint32_t queued = committed(L::queued_offset);
  if (queued <= n)
    o.items = queued;
  else
    add_note(o, "message count unreadable (" + std::to_string(queued) + ")");
  o.closed = di::load_word<std::uint32_t>(q + L::closed_offset(n), std::memory_order_acquire) != 0;
  o.consumers_waiting = sleeper_count(q + L::items_offset(n), "receiver", o);
  o.producers_waiting = sleeper_count(q + L::space_offset(n), "sender", o);
  std::size_t held = 0, unreadable = 0;
  for (std::size_t s = 0; s < n; ++s) {
    const std::size_t meta = L::meta_offset(n) + s * L::meta_bytes;
    const std::uint32_t state = committed(meta + L::meta_state_offset);
    if (state > L::queued_state) ++unreadable;
    if (state != L::reserved_state) continue;
    if (++held > object_snapshot::max_held_slots) continue;
    o.held_slots.push_back(slot_holder{static_cast<std::uint32_t>(s), "reserved",
                                       describe_owner(committed(meta + L::meta_owner_offset)), false});
  }
  if (held > object_snapshot::max_held_slots)
    add_note(o, std::to_string(held - object_snapshot::max_held_slots) + " more held slots not listed");
  if (unreadable != 0) add_note(o, std::to_string(unreadable) + " slot states unreadable");
  finish_queue(o);
}

}  // namespace detail::inspect

}  // namespace procsync
