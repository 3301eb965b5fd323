// procsync/detail/shared_value_traits.hpp — what shared_value<T> and
// shared_array<T, N> require of T, and how they store it (one atomic cell, or
// the double-buffered slots of shared_value_slots.hpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <string>
#include <type_traits>

#include "../error.hpp"

namespace procsync::detail {

template <class T>
struct atomic_ref_always_lock_free : std::bool_constant<std::atomic_ref<T>::is_always_lock_free> {};

/// T whose every operation maps to one atomic instruction.
template <class T>
inline constexpr bool lock_free_scalar =
    std::conjunction_v<std::disjunction<std::is_integral<T>, std::is_floating_point<T>, std::is_enum<T>>,
                       std::negation<std::disjunction<std::is_const<T>, std::is_volatile<T>>>,
                       atomic_ref_always_lock_free<T>>;

template <class T>
inline constexpr bool arithmetic_value =
    (std::is_integral_v<T> && !std::is_same_v<T, bool>) || std::is_floating_point_v<T>;

template <class T>
inline constexpr bool bitwise_value = std::is_integral_v<T> && !std::is_same_v<T, bool>;

// What T must be. Checked by static_asserts at the very top of shared_value
// and shared_array, so these messages come before any other diagnostic; a T
// that fails them gets rejected_storage, so no internal assertion fires too.
template <class T>
inline constexpr bool plain_object_value = !std::is_const_v<T> && !std::is_volatile_v<T> && !std::is_reference_v<T>;
template <class T>
inline constexpr bool pointer_free_value = !std::is_pointer_v<T> && !std::is_member_pointer_v<T>;
template <class T>
inline constexpr bool copyable_value = std::is_trivially_copyable_v<T>;
template <class T>
inline constexpr bool storable_value = plain_object_value<T>&& pointer_free_value<T>&& copyable_value<T>;

/// Instantiated first thing by shared_value<T> and shared_array<T, N>.
template <class T>
struct shared_value_type_check : std::true_type {
  static_assert(plain_object_value<T>,
                "shared_value<T>/shared_array<T, N>: T must be a plain object type (not const, volatile or a "
                "reference)");
  static_assert(pointer_free_value<T>,
                "shared_value<T>/shared_array<T, N>: a pointer means nothing in another process");
  static_assert(copyable_value<T>,
                "shared_value<T>/shared_array<T, N>: T is copied byte-wise between processes, so it must be "
                "trivially copyable (std::string, std::vector and the like point into one process's heap: use a "
                "fixed-size char array or std::array)");
};

/// Stands in for the storage of a T that failed the checks above: accepts the
/// constructor's arguments so that only the static_asserts are reported.
struct rejected_storage {
  template <class... A>
  explicit rejected_storage(const A&...) noexcept {}
};

/// The lock-free representation: one suitably aligned T.
template <class T>
struct scalar_cell {
  explicit scalar_cell(const T& initial) noexcept : value(initial) {}
  std::atomic_ref<T> ref() const noexcept { return std::atomic_ref<T>(const_cast<T&>(value)); }
  alignas(std::atomic_ref<T>::required_alignment) T value;
};

[[noreturn, gnu::cold, gnu::noinline]] inline void throw_index(const char* op, std::size_t index, std::size_t size) {
  throw_error(errc::invalid_argument, std::string("procsync::shared_array::") + op + ": index " +
                                          std::to_string(index) + " is out of range for an array of size " +
                                          std::to_string(size));
}

}  // namespace procsync::detail
