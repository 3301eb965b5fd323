// procsync/detail/object_header.hpp — the identity every object in a named
// segment carries, and the traits that compute it.
//
// A named segment may be opened by a process built from other sources, by
// another compiler, or by an older release. Boost.Interprocess's find<T> checks
// no type at all, so a block is trusted only after its header matches what the
// caller asks for: kind (a name), layout version, size and alignment.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace procsync {

/// Customization point naming a type that cannot declare kind_name itself
/// (an enum, or a type from a library you do not own) when it is stored in a
/// named segment. Specialize it in namespace procsync:
///
///   template <> struct procsync::kind_name_of<color> {
///     static constexpr const char* value = "paint::color";
///   };
///
/// `value` may be a const char*, a std::string_view, or anything convertible
/// to std::string_view. The primary template is empty: "not declared".
template <class T>
struct kind_name_of {};

}  // namespace procsync

namespace procsync::detail {

template <class T>
concept has_kind_name_trait = requires {
  { procsync::kind_name_of<T>::value } -> std::convertible_to<std::string_view>;
};

template <class T>
concept has_kind_name_function = requires {
  { T::kind_name() } -> std::convertible_to<std::string_view>;
};

template <class T>
concept has_kind_name_value = !has_kind_name_function<T> && requires {
  { T::kind_name } -> std::convertible_to<std::string_view>;
};

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

/// Whether T's kind is spelled by the user (kind_name or kind_name_of).
template <class T>
inline constexpr bool kind_declared =
    has_kind_name_trait<T> || has_kind_name_function<T> || has_kind_name_value<T>;

template <class T>
inline constexpr bool always_false = false;

template <class T>
struct std_array_traits : std::false_type {};
template <class E, std::size_t N>
struct std_array_traits<std::array<E, N>> : std::true_type {
  using element = E;
  static constexpr std::size_t size = N;
};

template <class T>
struct std_pair_traits : std::false_type {};
template <class A, class B>
struct std_pair_traits<std::pair<A, B>> : std::true_type {
  using first = A;
  using second = B;
};

/// "name<a,b,...>": the kind of a template, spelled from its arguments' kinds
/// (element_kind<T>()) and values (std::to_string(N)). For procsync's own
/// templates: shared_value<T>, shared_array<T, N>, and later queues.
template <class... Parts>
std::string template_kind(std::string_view name, const Parts&... parts) {
  std::string k(name);
  k += '<';
  bool first = true;
  const auto add = [&](std::string_view part) {
    if (!first) k += ',';
    first = false;
    k += part;
  };
  (add(std::string_view(parts)), ...);
  k += '>';
  return k;
}

template <class T>
std::string kind_of();

/// The kind of T as a template argument: kind_of<T>(), and for any T whose
/// name does not fix its bytes (class, union, enum, array of those, or a
/// user-declared name) also its size, alignment and layout version, so that
/// shared_value<account> changes kind when account changes size.
template <class T>
std::string element_kind() {
  using U = std::remove_cv_t<T>;
  std::string k = kind_of<U>();
  if constexpr (!std::is_arithmetic_v<U> || kind_declared<U>) {
    k += "{size=" + std::to_string(sizeof(U)) + ",align=" + std::to_string(alignof(U));
    if constexpr (layout_version_of<U>() != 0) k += ",version=" + std::to_string(layout_version_of<U>());
    k += '}';
  }
  return k;
}

/// The portable name of an arithmetic type: by kind, signedness and width,
/// never by the compiler's spelling, so g++ and clang++ builds agree
/// (long and long long are both "int64" on x86-64: they have one layout).
template <class U>
std::string arithmetic_kind() {
  constexpr std::size_t bits = sizeof(U) * 8;
  if constexpr (std::is_same_v<U, bool>) {
    return "bool";
  } else if constexpr (std::is_same_v<U, char>) {
    return "char";  // signed or not by ABI; always a distinct type from int8/uint8
  } else if constexpr (std::is_same_v<U, wchar_t>) {
    return "wchar" + std::to_string(bits);
  } else if constexpr (std::is_same_v<U, char8_t>) {
    return "char8";
  } else if constexpr (std::is_same_v<U, char16_t>) {
    return "char16";
  } else if constexpr (std::is_same_v<U, char32_t>) {
    return "char32";
  } else if constexpr (std::is_integral_v<U>) {
    return (std::is_signed_v<U> ? "int" : "uint") + std::to_string(bits);
  } else {
    // By mantissa digits: x86's long double is 80-bit extended in 16 bytes.
    constexpr int digits = std::numeric_limits<U>::digits;
    if constexpr (digits == 24) return "float32";
    else if constexpr (digits == 53) return "float64";
    else if constexpr (digits == 64) return "float80";
    else if constexpr (digits == 113) return "float128";
    else return "float" + std::to_string(bits) + "_digits" + std::to_string(digits);
  }
}

/// The kind recorded for a T placed in a named segment, and checked by find<T>.
/// The rule, the same on every compiler:
///  - procsync::kind_name_of<T>::value if specialized, else T::kind_name if T
///    declares it: a `static constexpr const char*`, a `static constexpr
///    std::string_view`, or a static function returning something convertible
///    to std::string_view (procsync's templates build theirs from their
///    arguments with template_kind and element_kind);
///  - arithmetic types: a fixed portable name ("int32", "uint64", "float64",
///    "bool", "char", ...), see arithmetic_kind;
///  - std::byte: "byte"; E[N]: "E[N]"; std::array<E, N>: "std::array<E,N>";
///    std::pair<A, B>: "std::pair<A,B>" (with E, A, B spelled by element_kind);
///  - any other class, union or enum type: a compile-time error asking for
///    kind_name. The compiler's own spelling is not used: g++ and clang++
///    differ (a type in an anonymous namespace is "{anonymous}::point" for one
///    and "(anonymous namespace)::point" for the other, template arguments
///    "4" vs "4UL"), so a segment written by one build would be refused, or
///    worse accepted as another type, by the other.
template <class T>
std::string kind_of() {
  using U = std::remove_cv_t<T>;
  if constexpr (has_kind_name_trait<U>) {
    return std::string(std::string_view(procsync::kind_name_of<U>::value));
  } else if constexpr (has_kind_name_function<U>) {
    return std::string(std::string_view(U::kind_name()));
  } else if constexpr (has_kind_name_value<U>) {
    return std::string(std::string_view(U::kind_name));
  } else if constexpr (std::is_arithmetic_v<U>) {
    return arithmetic_kind<U>();
  } else if constexpr (std::is_same_v<U, std::byte>) {
    return "byte";
  } else if constexpr (std::is_bounded_array_v<U>) {
    return element_kind<std::remove_extent_t<U>>() + "[" + std::to_string(std::extent_v<U>) + "]";
  } else if constexpr (std_array_traits<U>::value) {
    return template_kind("std::array", element_kind<typename std_array_traits<U>::element>(),
                         std::to_string(std_array_traits<U>::size));
  } else if constexpr (std_pair_traits<U>::value) {
    return template_kind("std::pair", element_kind<typename std_pair_traits<U>::first>(),
                         element_kind<typename std_pair_traits<U>::second>());
  } else if constexpr (std::is_pointer_v<U> || std::is_member_pointer_v<U>) {
    static_assert(always_false<U>,
                  "procsync: a pointer means nothing in another process: it cannot be stored in a named segment");
    return {};
  } else {
    static_assert(always_false<U>,
                  "procsync: a class, union or enum type stored in a named segment (directly, or as the T of "
                  "shared_value<T>, shared_array<T, N>, std::array or std::pair) must name itself the same way on "
                  "every compiler: declare `static constexpr const char* kind_name = \"my::type\";` in it (in a "
                  "local class: `static constexpr const char* kind_name() { return \"my::type\"; }`), or "
                  "specialize procsync::kind_name_of<T> with a `value` (enums, types you cannot edit). The "
                  "compiler's own type names differ between g++ and clang++, e.g. for types in an anonymous "
                  "namespace");
    return {};
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
