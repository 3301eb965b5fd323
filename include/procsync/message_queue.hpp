// procsync/message_queue.hpp — a bounded queue of variable-length messages
// with priorities, shared between processes, that no crash can corrupt.
//
//   auto mq = procsync::make_anonymous<procsync::message_queue<256, 64>>();
//   mq->send(std::as_bytes(std::span(text)), /*priority=*/2);
//   std::array<std::byte, 256> buf;
//   auto got = mq->receive(buf);            // got.size bytes, got.priority
//
// message_queue<MaxMessageBytes, Capacity> holds up to Capacity messages of
// 0..MaxMessageBytes bytes. Highest priority first, FIFO within a priority
// (any unsigned priority). Fixed-size, pointer-free, trivially destructible:
// place it with make_anonymous<> or in a named segment (its kind spells both
// parameters).
//  - A message longer than MaxMessageBytes: errc::message_too_large, from
//    every send variant (try_send too: never "false" for it).
//  - A receive buffer shorter than the next message: errc::buffer_too_small,
//    and the message stays queued. Any buffer at least as long as the message
//    will do (it need not be MaxMessageBytes long).
//  - close(): sends throw errc::queue_closed; receives return what is queued,
//    then throw errc::queue_closed at once (timed ones do not wait it out).
//
// Design, and why a lock: Capacity message slots, a free list and a binary heap
// of queued slots ordered by (priority, arrival), the index guarded by a robust
// procsync::mutex. Priorities over any unsigned need an ordered index; a
// lock-free priority index that survives a death at any instruction is a
// research project, and the lock is held only for O(log Capacity) index work
// (plus the copy out in receive), never while a sender copies its message in.
//  - Crash consistency: every index change made under the lock is journaled
//    (the old value of each word written, before writing it); the commit is
//    one store that empties the journal. A holder killed at any instruction
//    is undone by the next holder (the robust lock reports the death): a send
//    is then either entirely queued or not at all, a receive either took its
//    message (committed) or left it queued.
//  - A sender reserves a free slot under the lock (recording itself as the
//    slot's owner), copies its message in *without* the lock, then queues it
//    under the lock. A sender killed while copying leaves a reserved slot:
//    blocked callers free it after one re-arm slice of the waiting floor
//    (50 ms), as does recover(). A sender stopped there holds only that slot.
//  - A receiver killed after its commit and before its return loses the one
//    message its call took: at most one per killed receiver.
//  - Limit: a process stopped (SIGSTOP) while it holds the lock — a window of
//    a few hundred nanoseconds per call — stalls the others until it
//    continues. A dead one never does (the kernel releases its lock).
//
// Blocking: receivers sleep on one wait_word, senders on another, coalescing
// doorbells of the waiting floor (detail::ring_one): a send rings the
// receivers only when someone sleeps and no wake-up is already on its way.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <atomic>
#include <bit>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <optional>
#include <span>
#include <string>

#include "detail/clock.hpp"
#include "detail/message_queue_index.hpp"
#include "detail/message_queue_layout.hpp"
#include "detail/object_header.hpp"
#include "detail/queue_common.hpp"
#include "detail/waiting_floor.hpp"
#include "error.hpp"
#include "mutex.hpp"

namespace procsync {

template <std::size_t MaxMessageBytes, std::size_t Capacity>
class message_queue : private detail::message_queue_index<mutex, MaxMessageBytes, Capacity> {
  static_assert(Capacity >= 1 && Capacity <= (std::size_t{1} << 24),
                "procsync::message_queue<MaxMessageBytes, Capacity>: expected 1 <= Capacity <= 2^24");
  static_assert(MaxMessageBytes <= 0xffffffffu,
                "procsync::message_queue<MaxMessageBytes, Capacity>: a message is at most 4 GiB - 1");

  // The bytes and the journaled index (journal, heap, free list, slot
  // metadata) are detail::message_queue_index; this class adds sending,
  // receiving, waiting, recovery and close(). The index holds every byte, so
  // the layout is its.
  using index = detail::message_queue_index<mutex, MaxMessageBytes, Capacity>;
  using guard = typename index::guard;
  using journal_entry = typename index::journal_entry;
  using slot_meta = typename index::slot_meta;
  using index::closed_;
  using index::commit;
  using index::data;
  using index::data_;
  using index::free_;
  using index::free_count_;
  using index::free_state;
  using index::heap_;
  using index::heap_pop;
  using index::heap_push;
  using index::hint;
  using index::items_;
  using index::journal_;
  using index::journal_count_;
  using index::jset;
  using index::lock_;
  using index::meta_;
  using index::next_order_;
  using index::queued_;
  using index::queued_state;
  using index::reserved_state;
  using index::space_;

 public:
  /// What a receive found: the message's length (bytes written to the
  /// buffer) and priority.
  struct received {
    std::size_t size;
    unsigned priority;
  };

  /// Layout identity, checked when opened in a named segment:
  /// "procsync::message_queue<256,64>".
  static std::string kind_name() {
    return detail::template_kind("procsync::message_queue", std::to_string(MaxMessageBytes), std::to_string(Capacity));
  }
  static constexpr std::uint32_t layout_version = detail::message_queue_layout::layout_version;

  /// An empty, open queue.
  message_queue() noexcept {
    // The layout an observer reads knowing only the two parameters
    // (detail::message_queue_layout), pinned here because only a complete
    // class can be measured, and every queue in a segment was made here.
    using L = detail::message_queue_layout;
    static_assert(std::is_standard_layout_v<message_queue> && std::is_standard_layout_v<slot_meta>,
                  "procsync::message_queue: offsetof below needs a standard-layout class");
    static_assert(offsetof(message_queue, lock_) == L::lock_offset &&
                      offsetof(message_queue, journal_count_) == L::journal_count_offset &&
                      offsetof(message_queue, queued_) == L::queued_offset &&
                      offsetof(message_queue, free_count_) == L::free_count_offset &&
                      offsetof(message_queue, journal_) == L::journal_offset,
                  "procsync::message_queue: an index word moved: update detail::message_queue_layout");
    static_assert(sizeof(journal_entry) == L::journal_entry_bytes && sizeof(slot_meta) == L::meta_bytes &&
                      offsetof(slot_meta, state) == L::meta_state_offset &&
                      offsetof(slot_meta, owner) == L::meta_owner_offset && sizeof(detail::wait_word) == 8 &&
                      offsetof(detail::wait_word, sleepers) == 4,
                  "procsync::message_queue: a record's shape changed: update detail::message_queue_layout");
    static_assert(offsetof(message_queue, heap_) == L::heap_offset(Capacity) &&
                      offsetof(message_queue, free_) == L::free_offset(Capacity) &&
                      offsetof(message_queue, meta_) == L::meta_offset(Capacity) &&
                      offsetof(message_queue, items_) == L::items_offset(Capacity) &&
                      offsetof(message_queue, space_) == L::space_offset(Capacity) &&
                      offsetof(message_queue, closed_) == L::closed_offset(Capacity) &&
                      offsetof(message_queue, data_) == L::data_offset(Capacity) &&
                      sizeof(message_queue) == L::object_size(MaxMessageBytes, Capacity) &&
                      alignof(message_queue) == L::object_align,
                  "procsync::message_queue: the arrays moved: update detail::message_queue_layout");
    for (std::size_t i = 0; i < Capacity; ++i) free_[i] = static_cast<std::uint32_t>(Capacity - 1 - i);
    free_count_ = static_cast<std::uint32_t>(Capacity);
  }
  message_queue(const message_queue&) = delete;
  message_queue& operator=(const message_queue&) = delete;

  /// How many messages the queue holds at most.
  static constexpr std::size_t capacity() noexcept { return Capacity; }
  /// The longest message, in bytes.
  static constexpr std::size_t max_message_size() noexcept { return MaxMessageBytes; }

  /// Messages queued now (a snapshot).
  [[nodiscard]] std::size_t size() const noexcept {
    return hint(queued_);
  }

  /// Queues `message` with `priority`, blocking while the queue is full.
  /// Throws errc::message_too_large if message.size() > MaxMessageBytes,
  /// errc::queue_closed after close().
  void send(std::span<const std::byte> message, unsigned priority = 0) {
    (void)send_until(message, priority, nullptr, "send");
  }

  /// Queues `message` if there is room now; never blocks. Same errors as send().
  [[nodiscard]] bool try_send(std::span<const std::byte> message, unsigned priority = 0) {
    check_send(message, "try_send");
    return send_once(message, priority, "try_send");
  }

  /// send(), waiting at most `timeout` for room; returns whether it queued
  /// the message. Never returns false early. Same errors as send().
  template <class Rep, class Period>
  [[nodiscard]] bool try_send_for(std::span<const std::byte> message, unsigned priority,
                                  const std::chrono::duration<Rep, Period>& timeout) {
    timespec storage{};
    return send_until(message, priority, detail::futex_deadline(detail::deadline_after(timeout), storage),
                      "try_send_for");
  }

  /// send(), until `deadline` (another clock's deadline is converted to
  /// steady_clock once).
  template <class Clock, class Duration>
  [[nodiscard]] bool try_send_until(std::span<const std::byte> message, unsigned priority,
                                    const std::chrono::time_point<Clock, Duration>& deadline) {
    timespec storage{};
    return send_until(message, priority, detail::futex_deadline(detail::to_steady(deadline), storage),
                      "try_send_until");
  }

  /// Removes the next message (highest priority, oldest first) into
  /// `buffer`, blocking while the queue is empty. Throws
  /// errc::buffer_too_small if buffer.size() is less than the message's
  /// length (the message stays queued), errc::queue_closed once the queue is
  /// closed and drained.
  received receive(std::span<std::byte> buffer) { return *receive_until(buffer, nullptr, "receive"); }

  /// receive() if a message is there now; never blocks. Same errors.
  [[nodiscard]] std::optional<received> try_receive(std::span<std::byte> buffer) {
    if (auto got = receive_once(buffer, "try_receive")) return got;
    if (closed_.load(std::memory_order_seq_cst) == 0) return std::nullopt;
    if (auto got = receive_once(buffer, "try_receive")) return got;
    throw_drained("try_receive");
  }

  /// receive(), waiting at most `timeout`; never returns empty early. Same
  /// errors (closed and drained: at once).
  template <class Rep, class Period>
  [[nodiscard]] std::optional<received> try_receive_for(std::span<std::byte> buffer,
                                                        const std::chrono::duration<Rep, Period>& timeout) {
    timespec storage{};
    return receive_until(buffer, detail::futex_deadline(detail::deadline_after(timeout), storage), "try_receive_for");
  }

  /// receive(), until `deadline` (converted to steady_clock once).
  template <class Clock, class Duration>
  [[nodiscard]] std::optional<received> try_receive_until(std::span<std::byte> buffer,
                                                          const std::chrono::time_point<Clock, Duration>& deadline) {
    timespec storage{};
    return receive_until(buffer, detail::futex_deadline(detail::to_steady(deadline), storage), "try_receive_until");
  }

  /// Frees slots reserved by senders that died before queuing their message;
  /// returns how many. Blocked and timed calls do this after every re-arm
  /// slice without progress.
  std::size_t recover() {
    std::size_t freed = 0;
    {
      guard g(*this);
      for (std::uint32_t s = 0; s < Capacity; ++s) {
        if (meta_[s].state != reserved_state) continue;
        if (detail::owner_state(meta_[s].owner) != detail::process_state::dead) continue;
        jset(meta_[s].state, free_state);
        jset(meta_[s].owner, 0u);
        jset(free_[free_count_], s);
        jset(free_count_, free_count_ + 1);
        commit();
        ++freed;
      }
    }
    if (freed != 0) detail::ring(space_, INT_MAX);
    return freed;
  }

  /// Closes the queue (see the top of this file) and wakes every blocked
  /// caller. Idempotent; async-signal-safe.
  void close() noexcept {
    closed_.store(1, std::memory_order_seq_cst);
    detail::ring(items_, INT_MAX);
    detail::ring(space_, INT_MAX);
  }

  /// Whether close() was called.
  [[nodiscard]] bool closed() const noexcept { return closed_.load(std::memory_order_acquire) != 0; }

 private:
  // --- one attempt ---------------------------------------------------------------
  void check_send(std::span<const std::byte> message, const char* op) const {
    if (message.size() > MaxMessageBytes)
      detail::throw_error(errc::message_too_large, std::string("procsync::message_queue::") + op +
                                                       ": expected a message of at most " +
                                                       std::to_string(MaxMessageBytes) + " bytes, got " +
                                                       std::to_string(message.size()));
    if (closed_.load(std::memory_order_acquire) != 0)
      detail::throw_error(errc::queue_closed, std::string("procsync::message_queue::") + op + ": the queue is closed");
  }

  bool send_once(std::span<const std::byte> message, unsigned priority, const char* op) {
    std::uint32_t s = 0;
    {
      guard g(*this);
      if (closed_.load(std::memory_order_acquire) != 0)
        detail::throw_error(errc::queue_closed, std::string("procsync::message_queue::") + op + ": the queue is closed");
      if (free_count_ == 0) return false;
      s = free_[free_count_ - 1];
      jset(free_count_, free_count_ - 1);
      jset(meta_[s].owner, detail::current_owner_token());
      jset(meta_[s].state, reserved_state);
      commit();
    }
    PROCSYNC_QUEUE_STEP(send_reserved);
    // The slot is ours alone: no lock while the message is copied in.
    if (!message.empty()) std::memcpy(data(s), message.data(), message.size());
    PROCSYNC_QUEUE_STEP(send_copied);
    {
      guard g(*this);
      // Always ours: only a dead sender's reservation is ever freed by others.
      if (meta_[s].state == reserved_state && meta_[s].owner == detail::current_owner_token()) {
        jset(meta_[s].size, static_cast<std::uint32_t>(message.size()));
        jset(meta_[s].priority, static_cast<std::uint32_t>(priority));
        jset(meta_[s].order, next_order_);
        jset(next_order_, next_order_ + 1);
        jset(meta_[s].state, queued_state);
        jset(meta_[s].owner, 0u);
        heap_push(s);
        commit();
      }
    }
    PROCSYNC_QUEUE_STEP(send_queued);
    // The unlock was a seq_cst RMW: the waker's half of the floor's Dekker pair.
    detail::ring_one(items_);
    if (hint(free_count_) != 0) detail::ring_one(space_);  // pass the baton (see queue.hpp)
    return true;
  }

  std::optional<received> receive_once(std::span<std::byte> buffer, const char* op) {
    received got{};
    {
      guard g(*this);
      if (queued_ == 0) return std::nullopt;
      const std::uint32_t s = heap_[0];
      const slot_meta& m = meta_[s];
      if (buffer.size() < m.size)
        detail::throw_error(errc::buffer_too_small, std::string("procsync::message_queue::") + op +
                                                        ": expected a buffer of at least " + std::to_string(m.size) +
                                                        " bytes for the next message, got " +
                                                        std::to_string(buffer.size()) + " (the message stays queued)");
      got = {m.size, m.priority};
      if (m.size != 0) std::memcpy(buffer.data(), data(s), m.size);
      (void)heap_pop();
      jset(meta_[s].state, free_state);
      jset(free_[free_count_], s);
      jset(free_count_, free_count_ + 1);
      PROCSYNC_QUEUE_STEP(receive_copied);
      commit();
      PROCSYNC_QUEUE_STEP(receive_committed);
    }
    detail::ring_one(space_);
    if (hint(queued_) != 0) detail::ring_one(items_);  // pass the baton
    return got;
  }

  [[noreturn]] static void throw_drained(const char* op) {
    detail::throw_error(errc::queue_closed, std::string("procsync::message_queue::") + op +
                                                ": the queue is closed and has no message left");
  }

  // --- waiting ---------------------------------------------------------------------
  bool send_until(std::span<const std::byte> message, unsigned priority, const timespec* deadline, const char* op) {
    check_send(message, op);
    return detail::wait_until_rung(
        space_, deadline, [&](std::uint32_t) { return send_once(message, priority, op); },
        [this] { (void)recover(); });
  }

  std::optional<received> receive_until(std::span<std::byte> buffer, const timespec* deadline, const char* op) {
    std::optional<received> out;
    (void)detail::wait_until_rung(
        items_, deadline,
        [&](std::uint32_t) {
          out = receive_once(buffer, op);
          if (out) return true;
          if (closed_.load(std::memory_order_seq_cst) == 0) return false;
          out = receive_once(buffer, op);
          if (out) return true;
          throw_drained(op);
        },
        [this] { (void)recover(); });
    return out;
  }

};

}  // namespace procsync
