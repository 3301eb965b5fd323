// procsync/detail/inspect_entry.hpp — the objects the inspector
// (procsync/inspect.hpp) finds in a segment: one walk of the segment's object
// index, done without its guard lock and given up when the allocator is busy,
// and the one check before an entry is read as a T (its recorded layout is T's).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "inspect_types.hpp"
#include "object_header.hpp"
#include "segment_header.hpp"
#include "segment_mapping.hpp"

namespace procsync {

namespace detail::inspect {

struct entry {
  std::string name;
  detail::object_header header{};
  const char* value = nullptr;  // the object, in the read-only mapping; null if not readable
};

/// Walks the object index of the segment mapped at `base` (its header `h`)
/// once. False if the allocator was (or became) busy meanwhile.
inline bool list_entries(const detail::segment_header& h, const char* base, std::vector<entry>& out) {
  out.clear();
  const auto busy = [&] { return h.manager_busy.load(std::memory_order_acquire) != 0; };
  if (busy()) return false;
  const std::size_t buffer_size = static_cast<std::size_t>(h.total_size) - detail::segment_header_bytes;
  const char* buffer = base + detail::segment_header_bytes;
  // Boost only reads through a const manager opened on existing memory;
  // the mapping is PROT_READ, so any write would fault rather than land.
  detail::segment_manager_buffer manager(boost::interprocess::open_only, const_cast<char*>(buffer), buffer_size);
  const auto& index = *manager.get_segment_manager();
  const std::size_t limit = buffer_size / 64;
  std::size_t steps = 0;
  for (auto it = index.named_begin(); it != index.named_end(); ++it) {
    if (++steps > limit) return false;  // a loop: the tree changed under us
    const char* value = static_cast<const char*>(it->value());
    const char* name = it->name();
    const std::size_t name_length = it->name_length();
    if (value < buffer || value + sizeof(detail::object_header) > buffer + buffer_size || name < buffer ||
        name + name_length > buffer + buffer_size || name_length == 0)
      return false;
    entry e;
    e.name.assign(name, name_length);
    std::memcpy(&e.header, value, sizeof e.header);
    if (e.header.magic == detail::object_magic && e.header.value_offset >= sizeof(detail::object_header) &&
        value + e.header.value_offset + e.header.value_size <= buffer + buffer_size)
      e.value = value + e.header.value_offset;
    out.push_back(std::move(e));
  }
  return !busy();
}

template <class T>
const T* as(const entry& e, object_snapshot& o) {
  if (e.header.layout_version != detail::layout_version_of<T>() || e.header.value_size != sizeof(T) ||
      e.header.value_align != alignof(T) || reinterpret_cast<std::uintptr_t>(e.value) % alignof(T) != 0) {
    o.state = object_state::unknown;
    o.note = "layout version " + std::to_string(e.header.layout_version) + " (" +
             std::to_string(e.header.value_size) + " bytes) not known to this inspector (version " +
             std::to_string(detail::layout_version_of<T>()) + ", " + std::to_string(sizeof(T)) + " bytes)";
    return nullptr;
  }
  return std::launder(reinterpret_cast<const T*>(e.value));
}

}  // namespace detail::inspect

}  // namespace procsync
