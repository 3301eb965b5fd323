// procsync/queue.hpp — a bounded, lock-free, multi-producer multi-consumer
// queue of trivially copyable items, shared between processes, that no crash
// or stop can wedge.
//
//   auto q = procsync::make_anonymous<procsync::queue<job, 64>>();
//   // producers:  q->push(j);            consumers:  job j = q->pop();
//   // shutdown:   q->close();            consumers drain, then get errc::queue_closed
//
// queue<T, Capacity> holds up to Capacity items of T (trivially copyable,
// pointer-free) in a ring of slots; it is fixed-size, pointer-free and
// trivially destructible: place it with make_anonymous<> or in a named segment
// (its kind spells T and Capacity: a queue<int32,8> is not a queue<int64,8>
// nor a queue<int32,16>). Order: FIFO per producer; between producers, the
// order in which they claimed slots.
//
// A producer killed at any instruction leaves its item entirely queued or not
// at all; its slot is voided by a blocked caller after one re-arm slice
// (50 ms). A consumer killed inside pop() or try_pop*() loses at most the one
// item that call took; pop_into(handoff<T>&) loses none (see resolve()). A
// stopped producer holds only its own slot, which the others pass; a stopped
// consumer blocks no one. try_push()/try_pop() never block and never read
// /proc: a caller that only polls should call recover() now and then.
//
// close(): every later push throws errc::queue_closed; pops return what is
// still queued (also behind a dead or stopped producer's slot), then throw
// errc::queue_closed at once (a timed pop does not wait out its timeout).
//
// Limits: Capacity <= 2^30. How it works (the slot word and its phases, the
// recovery of dead and stopped owners, the hand-off of pop_into, the
// doorbells): docs/queues.md.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <atomic>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <type_traits>

#include "detail/clock.hpp"
#include "detail/object_header.hpp"
#include "detail/queue_common.hpp"
#include "detail/queue_layout.hpp"
#include "detail/queue_ring.hpp"
#include "detail/shared_value_slots.hpp"
#include "detail/waiting_floor.hpp"
#include "error.hpp"
#include "handoff.hpp"

namespace procsync {

/// A bounded MPMC queue of T between processes: see the top of this file.
template <class T, std::size_t Capacity>
class queue : private detail::queue_ring<T, Capacity> {
  static_assert(std::is_trivially_copyable_v<T>,
                "procsync::queue<T, N>: T is copied byte-wise between processes, so it must be trivially copyable "
                "(use procsync::message_queue for variable-length messages)");
  static_assert(!std::is_pointer_v<T> && !std::is_member_pointer_v<T>,
                "procsync::queue<T, N>: a pointer means nothing in another process");
  static_assert(Capacity >= 1 && Capacity <= (std::size_t{1} << 30),
                "procsync::queue<T, N>: expected 1 <= Capacity <= 2^30");

  // The ring (slot words, one attempt at a push or a pop, recovery) is
  // detail::queue_ring; this class adds waiting, close(), pop_into's hand-off
  // and its resolve(). The ring holds every byte, so the layout is its.
  using ring = detail::queue_ring<T, Capacity>;
  using slot = typename ring::slot;
  using ring::advance;
  using ring::closed_;
  using ring::deq_;
  using ring::empty_phase;
  using ring::enq_;
  using ring::full_phase;
  using ring::into_phase;
  using ring::items_;
  using ring::make;
  using ring::owner_of;
  using ring::pass_baton;
  using ring::phase_of;
  using ring::pop_once;
  using ring::push_once;
  using ring::release_into;
  using ring::seq_of;
  using ring::skip_bit;
  using ring::slots_;
  using ring::space_;
  using ring::writing_phase;

 public:
  using value_type = T;

  /// Layout identity, checked when opened in a named segment: spells T and
  /// Capacity ("procsync::queue<int64,8>").
  static std::string kind_name() {
    return detail::template_kind("procsync::queue", detail::element_kind<T>(), std::to_string(Capacity));
  }
  static constexpr std::uint32_t layout_version = detail::queue_layout::layout_version;

  /// An empty, open queue.
  queue() noexcept {
    // The layout an observer reads without T (detail::queue_layout), pinned
    // here because only a complete class can be measured, and every queue in
    // a segment was made by this constructor.
    using L = detail::queue_layout;
    static_assert(std::is_standard_layout_v<queue> && std::is_standard_layout_v<slot>,
                  "procsync::queue: offsetof below needs a standard-layout class");
    static_assert(offsetof(queue, enq_) == L::enq_offset && offsetof(queue, deq_) == L::deq_offset &&
                      offsetof(queue, items_) == L::items_offset && offsetof(queue, space_) == L::space_offset &&
                      offsetof(queue, closed_) == L::closed_offset &&
                      offsetof(queue, closed_) + sizeof(closed_) == L::control_end,
                  "procsync::queue: a control word moved: update detail::queue_layout (and its layout_version)");
    static_assert(sizeof(detail::wait_word) == 8 && offsetof(detail::wait_word, sleepers) == 4 &&
                      sizeof(std::atomic<std::uint64_t>) == 8 && sizeof(std::atomic<std::uint32_t>) == 4,
                  "procsync::queue: the control words' sizes are part of its layout");
    static_assert(offsetof(slot, word) == 0 && sizeof(slot) == L::slot_stride(sizeof(T), alignof(T)) &&
                      alignof(slot) == L::slot_align(sizeof(T), alignof(T)),
                  "procsync::queue: the slot's shape moved: update detail::queue_layout");
    static_assert(offsetof(queue, slots_) == L::slots_offset(sizeof(T), alignof(T)) &&
                      sizeof(queue) == L::object_size(sizeof(T), alignof(T), Capacity) &&
                      alignof(queue) == L::object_align(sizeof(T), alignof(T)),
                  "procsync::queue: the slots moved: update detail::queue_layout");
    for (std::size_t i = 0; i < Capacity; ++i) slots_[i].word.store(make(static_cast<std::uint32_t>(i), empty_phase, 0),
                                                                      std::memory_order_relaxed);
  }
  queue(const queue&) = delete;
  queue& operator=(const queue&) = delete;

  /// How many items the queue holds at most.
  static constexpr std::size_t capacity() noexcept { return Capacity; }

  /// Items queued now: a snapshot (it counts pushes under way, and slots
  /// skipped for a stopped thread), in [0, capacity()].
  [[nodiscard]] std::size_t size() const noexcept {
    const std::uint64_t d = deq_.load(std::memory_order_acquire);
    return detail::queue_layout::fill(enq_.load(std::memory_order_acquire), d, Capacity);
  }

  /// Appends `item`, blocking while the queue is full.
  /// Throws errc::queue_closed after close().
  void push(const T& item) { (void)push_until(item, nullptr); }

  /// Appends `item` if there is room now; never blocks. Throws
  /// errc::queue_closed after close().
  [[nodiscard]] bool try_push(const T& item) {
    check_open("try_push");
    return push_once(item);
  }

  /// Appends `item`, waiting at most `timeout` for room; returns whether it
  /// did. Never returns false early. Throws errc::queue_closed after close().
  template <class Rep, class Period>
  [[nodiscard]] bool try_push_for(const T& item, const std::chrono::duration<Rep, Period>& timeout) {
    timespec storage{};
    return push_until(item, detail::futex_deadline(detail::deadline_after(timeout), storage));
  }

  /// Like try_push_for, until `deadline` (another clock's deadline is
  /// converted to steady_clock once: clock jumps do not move it).
  template <class Clock, class Duration>
  [[nodiscard]] bool try_push_until(const T& item, const std::chrono::time_point<Clock, Duration>& deadline) {
    timespec storage{};
    return push_until(item, detail::futex_deadline(detail::to_steady(deadline), storage));
  }

  /// Removes and returns the oldest item, blocking while the queue is empty.
  /// Throws errc::queue_closed once the queue is closed and drained.
  T pop() { return *pop_until(nullptr); }

  /// Removes the oldest item if there is one now; never blocks. Throws
  /// errc::queue_closed once the queue is closed and drained.
  [[nodiscard]] std::optional<T> try_pop() {
    if (std::optional<T> item = pop_once()) return item;
    return closed_drained("try_pop");
  }

  /// Removes the oldest item, waiting at most `timeout` for one; never
  /// returns empty early. Closed and drained: throws errc::queue_closed at once.
  template <class Rep, class Period>
  [[nodiscard]] std::optional<T> try_pop_for(const std::chrono::duration<Rep, Period>& timeout) {
    timespec storage{};
    return pop_until(detail::futex_deadline(detail::deadline_after(timeout), storage));
  }

  /// Like try_pop_for, until `deadline` (converted to steady_clock once).
  template <class Clock, class Duration>
  [[nodiscard]] std::optional<T> try_pop_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    timespec storage{};
    return pop_until(detail::futex_deadline(detail::to_steady(deadline), storage));
  }

  /// Moves the oldest item into `destination` (in shared memory), blocking
  /// while the queue is empty: when it returns, and whenever its caller dies,
  /// the item is in exactly one of the queue and `destination` (see the top
  /// of this file and resolve()). Requires destination.state() == empty (else
  /// errc::invalid_argument: take() or resolve() it first). Throws
  /// errc::queue_closed once the queue is closed and drained.
  void pop_into(handoff<T>& destination) { (void)pop_into_until(destination, nullptr); }

  /// pop_into() if an item is there now; returns whether one was moved.
  [[nodiscard]] bool try_pop_into(handoff<T>& destination) {
    require_empty(destination);
    return into_once(destination) || into_closed_drained(destination, "try_pop_into");
  }

  /// pop_into(), waiting at most `timeout`; returns whether an item was moved.
  template <class Rep, class Period>
  [[nodiscard]] bool try_pop_into_for(handoff<T>& destination, const std::chrono::duration<Rep, Period>& timeout) {
    timespec storage{};
    return pop_into_until(destination, detail::futex_deadline(detail::deadline_after(timeout), storage));
  }

  /// Finishes a hand-off into `destination` whose pop_into() caller died.
  /// Afterwards the
  /// destination is full (the item was taken for it: returns true) or empty
  /// (it was not: the item is still queued, or was never this destination's;
  /// returns false), and the slot that call held is released. On a full or
  /// empty destination it only releases such a slot and returns state() ==
  /// full. Throws errc::invalid_argument if that caller still runs (or is
  /// stopped): only a dead caller's hand-off may be finished for it.
  /// `destination` must be one used with this queue.
  bool resolve(handoff<T>& destination) {
    const std::uint64_t st = destination.state_.load(std::memory_order_acquire);
    const auto phase = static_cast<typename handoff<T>::status>(st & handoff<T>::phase_mask);
    if (phase == handoff<T>::status::empty) return false;
    if (phase == handoff<T>::status::full && (st & handoff<T>::released_bit) != 0) return true;
    const std::uint64_t where = destination.where_.load(std::memory_order_relaxed);
    const auto index = static_cast<std::size_t>(where >> 32);
    const auto owner = static_cast<detail::owner_token>(where & 0xffffffffu);
    const auto position = static_cast<std::uint32_t>(st >> 32);
    if (index >= Capacity)
      detail::throw_error(errc::invalid_argument, "procsync::queue::resolve: the destination names slot " +
                                                      std::to_string(index) + " of a queue of capacity " +
                                                      std::to_string(Capacity) + ": it was not used with this queue");
    // Only a dead caller's hand-off may be finished by someone else: a live
    // (or stopped) one would race us.
    if (owner == detail::current_owner_token() || detail::owner_state(owner) != detail::process_state::dead)
      detail::throw_error(errc::invalid_argument,
                          "procsync::queue::resolve: expected a destination whose pop_into() caller died, but thread " +
                              std::to_string(owner >> detail::owner_tag_bits) + " that fills it is still " +
                              (owner == detail::current_owner_token() ? "running (the calling thread)"
                                                                      : "running or stopped"));
    slot& s = slots_[index];
    const std::uint64_t w = s.word.load(std::memory_order_acquire);
    const bool held = phase_of(w) == into_phase && owner_of(w) == owner &&
                      static_cast<std::int32_t>(seq_of(w) - position) >= 0;
    if (phase == handoff<T>::status::receiving && !held) {
      destination.state_.store(0, std::memory_order_release);  // never taken: the item is not ours
      return false;
    }
    // Taken for this destination: its bytes were complete before the take.
    const std::uint64_t full = (st & ~handoff<T>::phase_mask) | std::uint64_t(handoff<T>::status::full);
    destination.state_.store(full, std::memory_order_release);
    if (held) release_into(s, w, owner);
    destination.state_.store(full | handoff<T>::released_bit, std::memory_order_release);
    return true;
  }

  /// std::size_t recover() noexcept: looks at every slot held by another
  /// thread and deals with dead or stopped owners; returns how many slots it
  /// changed. Blocked and timed calls do this after every re-arm slice
  /// without progress; a caller that only uses try_push()/try_pop() may call
  /// it now and then. (Defined with the ring, detail/queue_ring.hpp.)
  using ring::recover;

  /// Closes the queue: pushes throw errc::queue_closed from now on, pops
  /// drain what is queued and then throw it. Wakes every blocked caller.
  /// Idempotent; async-signal-safe.
  void close() noexcept {
    closed_.store(1, std::memory_order_seq_cst);
    detail::ring(items_, INT_MAX);
    detail::ring(space_, INT_MAX);
  }

  /// Whether close() was called.
  [[nodiscard]] bool closed() const noexcept { return closed_.load(std::memory_order_acquire) != 0; }

 private:
  bool into_once(handoff<T>& dst) {
    const detail::owner_token me = detail::current_owner_token();
    for (;;) {
      std::uint64_t pos = deq_.load(std::memory_order_relaxed);
      const std::size_t index = pos % Capacity;
      slot& s = slots_[index];
      std::uint64_t w = s.word.load(std::memory_order_acquire);
      const auto d = static_cast<std::int32_t>(seq_of(w) - static_cast<std::uint32_t>(pos));
      if (d < 0) return false;
      if (d == 0 && (w & skip_bit) == 0) {
        const std::uint64_t phase = phase_of(w);
        if (phase == empty_phase || phase == writing_phase) return false;
        if (phase == full_phase) {
          const std::uint64_t at = std::uint64_t{static_cast<std::uint32_t>(pos)} << 32;
          // Relaxed + release: a successor reads where_ after state_ (acquire).
          dst.where_.store(std::uint64_t{index} << 32 | me, std::memory_order_relaxed);
          dst.state_.store(at | std::uint64_t(handoff<T>::status::receiving), std::memory_order_release);
          PROCSYNC_QUEUE_STEP(into_receiving);
          detail::racy_copy(dst.bytes_, s.bytes, sizeof(T));
          std::atomic_thread_fence(std::memory_order_acquire);
          PROCSYNC_QUEUE_STEP(into_copied);
          const std::uint64_t mine = make(static_cast<std::uint32_t>(pos), into_phase, me);
          // seq_cst: the decision; from here the item is dst's.
          if (!s.word.compare_exchange_strong(w, mine, std::memory_order_seq_cst, std::memory_order_relaxed)) {
            dst.state_.store(0, std::memory_order_release);
            continue;
          }
          advance(deq_, pos);
          PROCSYNC_QUEUE_STEP(into_claimed);
          pass_baton(items_, pos + 1, false);
          dst.state_.store(at | std::uint64_t(handoff<T>::status::full), std::memory_order_release);
          PROCSYNC_QUEUE_STEP(into_full);
          release_into(s, mine, me);
          PROCSYNC_QUEUE_STEP(into_released);
          dst.state_.store(at | std::uint64_t(handoff<T>::status::full) | handoff<T>::released_bit,
                           std::memory_order_release);
          return true;
        }
      }
      advance(deq_, pos);
    }
  }

  // --- waiting ------------------------------------------------------------------
  void check_open(const char* op) const {
    if (closed_.load(std::memory_order_acquire) != 0)
      detail::throw_error(errc::queue_closed, std::string("procsync::queue::") + op + ": the queue is closed");
  }

  /// After an empty attempt: nothing if open; if closed, one more look (an item
  /// pushed before close() must not be missed), then errc::queue_closed.
  std::optional<T> closed_drained(const char* op) {
    if (closed_.load(std::memory_order_seq_cst) == 0) return std::nullopt;
    if (std::optional<T> item = pop_once()) return item;
    if (recovered_behind_held_slot())
      if (std::optional<T> item = pop_once()) return item;
    detail::throw_error(errc::queue_closed,
                        std::string("procsync::queue::") + op + ": the queue is closed and has no item left");
  }

  /// closed_drained() for pop_into: the last looks move the item into `dst`
  /// too (a plain pop here would take an item and drop it). False if open.
  bool into_closed_drained(handoff<T>& dst, const char* op) {
    if (closed_.load(std::memory_order_seq_cst) == 0) return false;
    if (into_once(dst)) return true;
    if (recovered_behind_held_slot() && into_once(dst)) return true;
    detail::throw_error(errc::queue_closed,
                        std::string("procsync::queue::") + op + ": the queue is closed and has no item left");
  }

  /// A consumer stops at the first position not yet published, so a slot that
  /// a dead or stopped producer holds WRITING hides every item published
  /// behind it. On an open queue a blocked caller deals with that slot after
  /// one re-arm slice; on a closed one a pop that finds nothing would throw
  /// errc::queue_closed at once and leave those items queued for nobody. So a
  /// closed, empty-looking queue runs recover() (/proc reads only for slots
  /// held by others) before it says "drained"; returns whether it changed a slot.
  bool recovered_behind_held_slot() noexcept { return recover() != 0; }

  static void require_empty(const handoff<T>& dst) {
    if (dst.state() != handoff<T>::status::empty)
      detail::throw_error(errc::invalid_argument,
                          std::string("procsync::queue::pop_into: expected an empty destination, found one ") +
                              (dst.state() == handoff<T>::status::full ? "full: take() or clear() it first"
                                                                        : "still receiving: resolve() it first"));
  }

  bool push_until(const T& item, const timespec* deadline) {
    check_open("push");
    return detail::wait_until_rung(
        space_, deadline,
        [&](std::uint32_t) {
          check_open("push");
          return push_once(item);
        },
        [this] { (void)recover(); });
  }

  std::optional<T> pop_until(const timespec* deadline) {
    std::optional<T> out;
    (void)detail::wait_until_rung(
        items_, deadline,
        [&](std::uint32_t) {
          out = pop_once();
          if (!out) out = closed_drained("pop");
          return out.has_value();
        },
        [this] { (void)recover(); });
    return out;
  }

  bool pop_into_until(handoff<T>& dst, const timespec* deadline) {
    require_empty(dst);
    return detail::wait_until_rung(
        items_, deadline, [&](std::uint32_t) { return into_once(dst) || into_closed_drained(dst, "pop_into"); },
        [this] { (void)recover(); });
  }

};

}  // namespace procsync
