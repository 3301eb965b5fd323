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
#include "detail/object_header.hpp"
#include "detail/queue_common.hpp"
#include "detail/waiting_floor.hpp"
#include "error.hpp"
#include "mutex.hpp"

namespace procsync {

namespace detail {

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

}  // namespace detail

template <std::size_t MaxMessageBytes, std::size_t Capacity>
class message_queue {
  static_assert(Capacity >= 1 && Capacity <= (std::size_t{1} << 24),
                "procsync::message_queue<MaxMessageBytes, Capacity>: expected 1 <= Capacity <= 2^24");
  static_assert(MaxMessageBytes <= 0xffffffffu,
                "procsync::message_queue<MaxMessageBytes, Capacity>: a message is at most 4 GiB - 1");

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
  static constexpr std::uint32_t free_state = detail::message_queue_layout::free_state;
  static constexpr std::uint32_t reserved_state = detail::message_queue_layout::reserved_state;
  static constexpr std::uint32_t queued_state = detail::message_queue_layout::queued_state;
  static constexpr std::size_t stride = MaxMessageBytes == 0 ? 1 : MaxMessageBytes;
  static constexpr std::size_t journal_capacity = detail::message_queue_layout::journal_capacity(Capacity);

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
    explicit guard(message_queue& q) : q_(q) {
      if (q_.lock_.lock_robust() == lock_status::owner_died) {
        q_.undo();
        q_.lock_.consistent();
      }
    }
    ~guard() { q_.lock_.unlock(); }
    guard(const guard&) = delete;
    guard& operator=(const guard&) = delete;
    message_queue& q_;
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

  /// A racy read of an index word, for wake-up decisions only.
  static std::uint32_t hint(const std::uint32_t& word) noexcept {
    return std::atomic_ref<std::uint32_t>(const_cast<std::uint32_t&>(word)).load(std::memory_order_relaxed);
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

  mutex lock_;  // guards everything below except the wait words, closed_ and the message bytes
  std::uint32_t journal_count_ = 0;
  std::uint32_t queued_ = 0;  // heap size
  std::uint32_t free_count_ = 0;
  std::uint32_t reserved_word_ = 0;  // padding: next_order_ 8-aligned
  std::uint64_t next_order_ = 0;
  journal_entry journal_[journal_capacity] = {};
  std::uint32_t heap_[Capacity] = {};
  std::uint32_t free_[Capacity] = {};
  slot_meta meta_[Capacity] = {};
  alignas(64) detail::wait_word items_;  // receivers sleep here; sends ring it
  detail::wait_word space_;              // senders sleep here; receives ring it
  std::atomic<std::uint32_t> closed_{0};
  alignas(64) unsigned char data_[Capacity * stride];
};

}  // namespace procsync
