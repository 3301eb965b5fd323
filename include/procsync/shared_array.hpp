// procsync/shared_array.hpp — N values shared between processes, with one
// built-in robust lock, that no crash can tear: Python's multiprocessing.Array.
//
// The same guarantees, costs and lock as shared_value<T> for a T that is not
// lock-free (shared_value.hpp explains them): reads take no lock and see one
// commit; every write commits a new copy of the whole array under the lock.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "detail/object_header.hpp"
#include "detail/robust_guard.hpp"
#include "detail/shared_value_slots.hpp"
#include "detail/shared_value_traits.hpp"
#include "error.hpp"
#include "lock_status.hpp"
#include "mutex.hpp"

namespace procsync {

/// N values of trivially copyable T in shared memory, with one robust lock:
/// per-element and whole-array operations, and multi-element changes that
/// commit all or nothing (see the top of this file). Reads take no lock;
/// every write takes the lock and commits a new copy of the whole array, so
/// a write costs O(N * sizeof(T)): batch many element writes in one
/// with_lock() or lock() view.
template <class T, std::size_t N>
class shared_array {
  static_assert(detail::shared_value_type_check<T>::value);  // T's requirements, reported first
  static_assert(N > 0, "shared_array<T, N>: N must be at least 1");

 public:
  using value_type = T;
  using array_type = std::array<T, N>;

  /// Layout identity, checked when opened in a named segment (with sizeof):
  /// spells T and N ("procsync::shared_array<int32,8>"), as shared_value's.
  static std::string kind_name() {
    return detail::template_kind("procsync::shared_array", detail::element_kind<T>(), std::to_string(N));
  }
  static constexpr std::uint32_t layout_version = 1;

  /// Every element value-initialized (zero for scalars).
  shared_array() noexcept : shared_array(array_type{}) {}

  /// Every element equal to `fill`.
  explicit shared_array(const T& fill) noexcept : shared_array(filled(fill)) {}

  /// The elements of `initial`.
  explicit shared_array(const array_type& initial) noexcept : slots_(initial) {}

  shared_array(const shared_array&) = delete;
  shared_array& operator=(const shared_array&) = delete;

  [[nodiscard]] static constexpr std::size_t size() noexcept { return N; }

  /// Element `i` as last committed. No lock (as shared_value::load).
  /// Throws errc::invalid_argument if i >= size().
  [[nodiscard]] T load(std::size_t i) const {
    check(i, "load");
    T value;
    slots_.read(lock_, i * sizeof(T), sizeof(T), &value);
    return value;
  }

  /// All elements, from one commit (never a mix of two). No lock.
  [[nodiscard]] array_type snapshot() const { return slots_.read(lock_); }

  /// Sets element `i` (one commit, under the lock). errc::invalid_argument if
  /// i >= size().
  void store(std::size_t i, const T& desired) {
    check(i, "store");
    (void)detail::write_transaction(lock_, slots_, [&](array_type& a) { a[i] = desired; });
  }

  /// Replaces every element, in one commit.
  void store_all(const array_type& desired) {
    detail::replace_committed(lock_, slots_, desired);
  }

  /// Sets element `i`; returns its previous value (atomically).
  T exchange(std::size_t i, const T& desired) {
    check(i, "exchange");
    return detail::write_transaction(lock_, slots_, [&](array_type& a) -> T { return std::exchange(a[i], desired); });
  }

  /// Replaces element `i` by fn's result (fn as in shared_value::update; runs
  /// once, under the lock); returns the new value. Nothing changes if fn
  /// throws.
  template <class F>
  T update(std::size_t i, F&& fn) {
    check(i, "update");
    return detail::write_transaction(lock_, slots_, [&](array_type& a) -> T {
      detail::apply_update_in_place<T>(fn, a[i]);
      return a[i];
    });
  }

  /// Adds `delta` to element `i`; returns its previous value.
  T fetch_add(std::size_t i, T delta)
    requires detail::arithmetic_value<T>
  {
    check(i, "fetch_add");
    return detail::write_transaction(lock_, slots_, [&](array_type& a) -> T {
      const T previous = a[i];
      a[i] = static_cast<T>(a[i] + delta);
      return previous;
    });
  }

  /// Runs fn(std::span<T, N>) holding the lock; commits every change fn made
  /// when it returns, or none (fn throws, or the caller is killed). Returns
  /// fn's result by value; the span is valid only inside fn. Throws
  /// errc::would_deadlock if the caller holds the lock.
  template <class F>
  auto with_lock(F&& fn) {
    static_assert(std::is_invocable_v<F&, std::span<T, N>>, "with_lock(fn): fn must accept std::span<T, N>");
    return detail::write_transaction(lock_, slots_, [&fn](array_type& a) { return fn(std::span<T, N>(a)); });
  }

  /// A view holding the lock over an uncommitted copy of the array; committed
  /// when destroyed, as shared_value::locked_view.
  class locked_view : public detail::commit_view<array_type, procsync::mutex> {
    using base = detail::commit_view<array_type, procsync::mutex>;

   public:
    /// Element i of the uncommitted copy (unchecked, like std::array).
    T& operator[](std::size_t i) const noexcept { return this->scratch()[i]; }

    /// Element i; errc::invalid_argument if i >= size().
    T& at(std::size_t i) const {
      check(i, "locked_view::at");
      return this->scratch()[i];
    }

    /// All elements of the uncommitted copy.
    std::span<T, N> elements() const noexcept { return std::span<T, N>(this->scratch()); }

   private:
    friend class shared_array;
    explicit locked_view(shared_array& owner) : base(owner.lock_, owner.slots_) {}
  };

  /// Takes the lock and returns a view (see locked_view).
  [[nodiscard]] locked_view lock() {
    detail::lock_for_commit(lock_);
    return locked_view(*this);
  }

  /// The robust lock every write uses (see shared_value::get_lock()).
  [[nodiscard]] procsync::mutex& get_lock() const noexcept { return lock_; }

 private:
  static void check(std::size_t i, const char* op) {
    if (i >= N) [[unlikely]]
      detail::throw_index(op, i, N);
  }

  static array_type filled(const T& fill) noexcept {
    array_type a;
    a.fill(fill);
    return a;
  }

  mutable procsync::mutex lock_{owner_death::nothing_to_repair};
  std::conditional_t<detail::storable_value<T>, detail::committed_slots<array_type>, detail::rejected_storage> slots_;
};

}  // namespace procsync
