// procsync/detail/placement.hpp — constructing an object in shared memory,
// for anonymous mappings and named segments alike.
#pragma once

#include <new>
#include <type_traits>
#include <utility>

namespace procsync::detail {

template <class T>
constexpr void check_placeable() {
  static_assert(std::is_trivially_destructible_v<T>,
                "objects in shared memory outlive every process's handle, so their destructor never runs: "
                "T must be trivially destructible");
  static_assert(!std::is_polymorphic_v<T>, "a vtable pointer is process-local: T must not be polymorphic");
}

/// Constructs a T at `where`: T(args...) when such a constructor exists, else
/// aggregate initialization T{args...} (clang++ 14 lacks C++20's parenthesized
/// aggregate initialization).
template <class T, class... Args>
T* place(void* where, Args&&... args) {
  if constexpr (std::is_constructible_v<T, Args...>)
    return ::new (where) T(std::forward<Args>(args)...);
  else
    return ::new (where) T{std::forward<Args>(args)...};
}

}  // namespace procsync::detail
