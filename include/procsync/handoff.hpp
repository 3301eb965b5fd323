// procsync/handoff.hpp — the destination of queue<T, N>::pop_into(): an item
// and a small state machine in shared memory that tells a successor whether a
// hand-off interrupted by a death delivered the item here or left it in the
// queue (queue::resolve() decides; docs/queues.md explains the steps).
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "detail/object_header.hpp"
#include "error.hpp"

namespace procsync {

template <class T, std::size_t Capacity>
class queue;

/// A destination for queue<T, N>::pop_into() in shared memory: the item and a
/// small state machine that tells a successor whether a hand-off interrupted
/// by a death delivered the item here or left it in the queue (see
/// queue::resolve). Default-constructible (empty), trivially destructible,
/// pointer-free; place it next to the work it feeds.
template <class T>
class handoff {
  static_assert(std::is_trivially_copyable_v<T> && !std::is_pointer_v<T>,
                "procsync::handoff<T>: T must be trivially copyable and not a pointer");

 public:
  static std::string kind_name() { return detail::template_kind("procsync::handoff", detail::element_kind<T>()); }
  static constexpr std::uint32_t layout_version = 1;

  /// What the destination holds.
  enum class status : std::uint32_t {
    empty = 0,      ///< nothing
    receiving = 1,  ///< a pop_into() is (or was, if its caller died) under way: call queue::resolve()
    full = 2,       ///< an item, delivered exactly once
  };

  constexpr handoff() noexcept = default;
  handoff(const handoff&) = delete;
  handoff& operator=(const handoff&) = delete;

  /// The state now (a snapshot; acquire: when full, value() is complete).
  [[nodiscard]] status state() const noexcept {
    return static_cast<status>(state_.load(std::memory_order_acquire) & phase_mask);
  }

  /// The item. Requires state() == full (else throws errc::invalid_argument).
  [[nodiscard]] T value() const {
    require_full("value");
    T out;
    std::memcpy(static_cast<void*>(&out), bytes_, sizeof(T));
    return out;
  }

  /// Returns the item and empties the destination, so that it can take the
  /// next one. Requires state() == full (else throws errc::invalid_argument).
  /// A caller killed inside take() leaves the item here (full) or gone with
  /// its caller: take() is the consumer's own commit, so make the work that
  /// follows idempotent, or copy value() and call clear() after the work.
  T take() {
    T out = value();
    clear();
    return out;
  }

  /// Empties a full destination (the item is dropped). Requires state() !=
  /// receiving (else throws errc::invalid_argument: resolve it first).
  void clear() {
    if (state() == status::receiving)
      detail::throw_error(errc::invalid_argument,
                          "procsync::handoff::clear: expected an empty or full destination, found one still "
                          "receiving: call queue::resolve() on it first");
    state_.store(0, std::memory_order_release);
  }

 private:
  template <class, std::size_t>
  friend class queue;

  static constexpr std::uint64_t phase_mask = 3;
  static constexpr std::uint64_t released_bit = 4;  // with full: the slot is released too

  void require_full(const char* op) const {
    const status s = state();
    if (s != status::full)
      detail::throw_error(errc::invalid_argument, std::string("procsync::handoff::") + op +
                                                      ": expected a full destination, found " +
                                                      (s == status::empty ? "an empty one" : "one still receiving"));
  }

  // state_: status | released_bit | position << 32. where_: slot << 32 | owner.
  // The owner writes where_ before state_ says receiving; nobody else writes
  // either while it lives.
  std::atomic<std::uint64_t> state_{0};
  std::atomic<std::uint64_t> where_{0};
  alignas(T) unsigned char bytes_[sizeof(T)] = {};
};

}  // namespace procsync
