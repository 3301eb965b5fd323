// procsync/detail/inspect_read.hpp — what the inspector (procsync/inspect.hpp)
// reads with: small /proc files, a whole decimal number, a kind's template
// arguments and its element's size and alignment, and one load of a word of a
// read-only mapping. None of them writes, locks or waits.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "object_header.hpp"

namespace procsync {

namespace detail::inspect {

inline std::string read_small_file(const std::string& path) {
  std::string out;
  if (std::FILE* f = std::fopen(path.c_str(), "re")) {
    char buf[4096];
    const std::size_t n = std::fread(buf, 1, sizeof buf, f);
    out.assign(buf, n);
    std::fclose(f);
  }
  return out;
}

inline std::string comm_of(std::int32_t pid) {
  std::string c = read_small_file("/proc/" + std::to_string(pid) + "/comm");
  while (!c.empty() && (c.back() == '\n' || c.back() == '\0')) c.pop_back();
  return c;
}

/// A decimal number that is the whole of `s` and at most `limit`.
inline std::optional<std::uint64_t> whole_number(std::string_view s, std::uint64_t limit) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  std::uint64_t n = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (n > limit) return std::nullopt;
  return n;
}

/// "name<a,...,z>" -> its arguments' text "a,...,z"; "" unless `kind` is
/// exactly that (a kind cut short has no closing '>').
inline std::string_view template_arguments(std::string_view kind, std::string_view name) {
  if (kind.size() < name.size() + 2 || kind.substr(0, name.size()) != name || kind[name.size()] != '<' ||
      kind.back() != '>')
    return {};
  return kind.substr(name.size() + 1, kind.size() - name.size() - 2);
}

/// Size and alignment of a queue's element, as its kind spells them.
struct element_shape {
  std::size_t size = 0;
  std::size_t align = 0;
};

template <class... U>
std::optional<element_shape> arithmetic_shape(std::string_view kind) {
  std::optional<element_shape> found;
  // The names come from the function that spelled the kind, on this ABI.
  ((found || detail::arithmetic_kind<U>() != kind ? void() : void(found = element_shape{sizeof(U), alignof(U)})), ...);
  return found;
}

/// The element's size and alignment from its kind (detail::element_kind):
/// every kind but an arithmetic one ends in "{size=S,align=A...}" (the last
/// such suffix is the element's own: inner ones belong to its parts); an
/// arithmetic kind ("int64", "float64", ...) fixes both. std::nullopt for
/// anything else.
inline std::optional<element_shape> shape_of_element(std::string_view kind) {
  if (!kind.empty() && kind.back() == '}') {
    const std::size_t at = kind.rfind("{size=");
    if (at == std::string_view::npos) return std::nullopt;
    std::string_view rest = kind.substr(at + 6, kind.size() - at - 7);  // "S,align=A..." without the '}'
    const std::size_t comma = rest.find(",align=");
    if (comma == std::string_view::npos) return std::nullopt;
    const auto size = whole_number(rest.substr(0, comma), std::uint64_t{1} << 40);
    rest.remove_prefix(comma + 7);
    const auto align = whole_number(rest.substr(0, rest.find(',')), 1u << 16);
    if (!size || !align || *size == 0 || *align == 0 || (*align & (*align - 1)) != 0) return std::nullopt;
    return element_shape{static_cast<std::size_t>(*size), static_cast<std::size_t>(*align)};
  }
  return arithmetic_shape<bool, char, signed char, unsigned char, wchar_t, char8_t, char16_t, char32_t, short,
                          unsigned short, int, unsigned, long, unsigned long, long long, unsigned long long, float,
                          double, long double>(kind);
}

/// One load of a word of the segment. The mapping is read-only: atomic_ref's
/// load only reads (as the queues' own racy reads do), whether the word is a
/// std::atomic or a plain word its owner writes with atomic_ref.
template <class W>
W load_word(const char* at, std::memory_order order = std::memory_order_relaxed) noexcept {
  return std::atomic_ref<W>(*const_cast<W*>(reinterpret_cast<const W*>(at))).load(order);
}

}  // namespace detail::inspect

}  // namespace procsync
