// procsync/detail/segment_header.hpp — the first bytes of every named segment.
//
// Layout of a named segment (one POSIX shared memory object):
//   [0, segment_header_bytes)   segment_header (this file), zero-padded
//   [segment_header_bytes, end) a Boost.Interprocess segment manager
//                               (rbtree_best_fit<null_mutex_family>, iset_index)
//                               built on that buffer
// The segment manager takes no lock of its own (null_mutex_family): Boost's
// lock is not robust, so every manager call is made under `guard`, a robust
// lock with procsync::mutex's bytes (internal_mutex.hpp), instead.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "internal_mutex.hpp"

namespace procsync::detail {

inline constexpr std::uint64_t segment_magic = 0x3147455343595350ull;  // "PSYCSEG1" little-endian
/// Bumped whenever the bytes of segment_header, object_header or the
/// segment-manager configuration change meaning.
inline constexpr std::uint32_t segment_format_version = 1;
inline constexpr std::size_t segment_header_bytes = 256;

struct segment_header {
  /// 0 while the creator initializes, segment_magic once the segment is ready.
  std::atomic<std::uint64_t> magic{0};
  std::uint32_t format_version = 0;
  std::uint32_t header_bytes = 0;
  std::uint64_t total_size = 0;
  /// The creator, published before initialization starts so that an opener
  /// can tell "still initializing" from "the creator died" (0: not yet known).
  std::atomic<std::int32_t> creator_pid{0};
  std::uint32_t reserved0 = 0;
  std::uint64_t creator_start_time = 0;
  /// 1 while a process is inside a call that modifies the segment manager.
  /// Found set by the next guard holder after an owner death, it means the
  /// allocator may be half-updated: the segment is declared corrupt.
  std::atomic<std::uint32_t> manager_busy{0};
  /// Sticky: a process died inside the segment manager.
  std::atomic<std::uint32_t> corrupt{0};
  /// Offset (from the buffer start) + 1 of a block whose object was being
  /// constructed; 0 if none. A holder that dies constructing leaves it set,
  /// and the next guard holder frees that block.
  std::uint64_t pending_block = 0;
  /// Serializes every segment-manager call among all processes; robust.
  internal_mutex guard;
};

static_assert(std::is_standard_layout_v<segment_header>);
static_assert(std::is_trivially_destructible_v<segment_header>);
static_assert(sizeof(segment_header) <= segment_header_bytes);

/// The shm_open/shm_unlink path of segment `name`: "/" + name. Built by
/// appending: g++ 12 at -O3 reports a false -Wrestrict (GCC bug 105329) inside
/// the `"/" + std::string` operator, which -Werror users would trip over.
inline std::string shm_object_path(std::string_view name) {
  std::string path;
  path.reserve(name.size() + 1);
  path += '/';
  path += name;
  return path;
}

}  // namespace procsync::detail
