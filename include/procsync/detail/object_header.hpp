// procsync/detail/object_header.hpp — the identity every object in a named
// segment carries, and the traits that compute it.
//
// A named segment may be opened by a process built from other sources, by
// another compiler, or by an older release. Boost.Interprocess's find<T> checks
// no type at all, so a block is trusted only after its header matches what the
// caller asks for: kind (a name), layout version, size and alignment.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

namespace procsync::detail {

/// The compiler's spelling of T ("point", "ns::point", "std::array<int, 4>").
/// Stable for one compiler; g++ and clang++ may spell template arguments
/// differently ("4" vs "4UL"), so types shared between builds of different
/// compilers should declare kind_name (see kind_of).
template <class T>
std::string_view type_name() noexcept {
  // __PRETTY_FUNCTION__ reads "... type_name() [with T = X; ...]" (g++) or
  // "... type_name() [T = X]" (clang++): X is between "T = " and ';' or ']'.
  const std::string_view pretty = __PRETTY_FUNCTION__;
  const std::size_t start = pretty.find("T = ");
  if (start == std::string_view::npos) return pretty;
  std::string_view rest = pretty.substr(start + 4);
  // Template arguments may themselves contain ']' (arrays) or ';' only inside
  // brackets, so stop at the first terminator at bracket depth 0.
  int depth = 0;
  for (std::size_t i = 0; i < rest.size(); ++i) {
    const char c = rest[i];
    if (c == '<' || c == '(' || c == '[') ++depth;
    else if ((c == '>' || c == ')') && depth > 0) --depth;
    else if (c == ']' && depth > 0) --depth;
    else if ((c == ';' || c == ']') && depth == 0) return rest.substr(0, i);
  }
  return rest;
}

template <class T>
concept has_kind_name_function = requires {
  { T::kind_name() } -> std::convertible_to<std::string_view>;
};

template <class T>
concept has_kind_name_value = !has_kind_name_function<T> && requires {
  { T::kind_name } -> std::convertible_to<std::string_view>;
};

/// The kind recorded for a T placed in a named segment, and checked by find<T>:
///  - T::kind_name if T declares it: a `static constexpr const char*`, a
///    `static constexpr std::string_view`, or a static function returning
///    something convertible to std::string_view (templates such as
///    shared_value<T> may build it from their arguments);
///  - otherwise the compiler's name for T (type_name<T>()).
template <class T>
std::string kind_of() {
  if constexpr (has_kind_name_function<T>) {
    return std::string(std::string_view(T::kind_name()));
  } else if constexpr (has_kind_name_value<T>) {
    return std::string(std::string_view(T::kind_name));
  } else {
    return std::string(type_name<T>());
  }
}

/// T::layout_version (a static value or a static function) if declared, else 0.
template <class T>
constexpr std::uint32_t layout_version_of() noexcept {
  if constexpr (requires { { T::layout_version() } -> std::convertible_to<std::uint32_t>; }) {
    return static_cast<std::uint32_t>(T::layout_version());
  } else if constexpr (requires { { T::layout_version } -> std::convertible_to<std::uint32_t>; }) {
    return static_cast<std::uint32_t>(T::layout_version);
  } else {
    return 0;
  }
}

/// 64-bit FNV-1a: identifies a kind longer than the header can spell out.
constexpr std::uint64_t fnv1a(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

inline constexpr std::uint64_t object_magic = 0x314a424f434e5953ull;  // "SYNCOBJ1" little-endian
inline constexpr std::size_t object_kind_capacity = 120;

/// Object life in the segment: constructing until T's constructor returned.
enum class object_state : std::uint32_t { constructing = 1, ready = 2 };

/// Sits at the start of every block procsync allocates in a named segment; the
/// object itself follows at value_offset. Written once (under the segment's
/// guard) before the object is published; never changed after.
struct object_header {
  std::uint64_t magic;
  std::uint64_t kind_hash;        // fnv1a of the full kind
  std::uint64_t value_size;       // sizeof(T)
  std::uint32_t value_align;      // alignof(T)
  std::uint32_t value_offset;     // from the start of this header
  std::uint32_t layout_version;   // T::layout_version or 0
  std::uint32_t kind_length;      // of the full kind; kind[] holds a prefix
  std::uint32_t state;            // object_state
  std::uint32_t reserved;
  char kind[object_kind_capacity];  // not NUL-terminated when full

  /// The recorded kind, cut to the first object_kind_capacity characters.
  std::string_view kind_prefix() const noexcept {
    return {kind, kind_length < object_kind_capacity ? kind_length : object_kind_capacity};
  }

  /// The recorded kind for messages ("..." marks a cut).
  std::string kind_for_message() const {
    std::string s(kind_prefix());
    if (kind_length > object_kind_capacity) s += "...";
    return s;
  }

  bool same_kind(std::string_view k) const noexcept {
    return kind_hash == fnv1a(k) && kind_length == k.size() &&
           kind_prefix() == k.substr(0, kind_prefix().size());
  }

  void set_kind(std::string_view k) noexcept {
    kind_hash = fnv1a(k);
    kind_length = static_cast<std::uint32_t>(k.size());
    std::memset(kind, 0, sizeof kind);
    std::memcpy(kind, k.data(), k.size() < object_kind_capacity ? k.size() : object_kind_capacity);
  }
};

static_assert(std::is_standard_layout_v<object_header> && std::is_trivially_copyable_v<object_header>);
static_assert(sizeof(object_header) == 168, "object_header is part of the segment format");

}  // namespace procsync::detail
