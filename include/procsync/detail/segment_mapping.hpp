// procsync/detail/segment_mapping.hpp — this process's mapping of one named
// segment: creating it, opening it (the bounded wait for its creator and the
// checks that it is a procsync segment), and the Boost segment manager over it.
// named_segment.hpp puts typed objects in it; the messages are in
// segment_messages.hpp.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <boost/interprocess/creation_tags.hpp>
#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/indexes/iset_index.hpp>
#include <boost/interprocess/managed_external_buffer.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/mem_algo/rbtree_best_fit.hpp>
#include <boost/interprocess/permissions.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <boost/interprocess/sync/mutex_family.hpp>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <new>
#include <string>
#include <string_view>
#include <thread>

#include "../error.hpp"
#include "process_identity.hpp"
#include "segment_header.hpp"
#include "segment_messages.hpp"
#include "waiting_floor.hpp"

namespace procsync::detail {

namespace bip = boost::interprocess;

using segment_manager_buffer =
    bip::basic_managed_external_buffer<char, bip::rbtree_best_fit<bip::null_mutex_family>, bip::iset_index>;

/// The allocation unit of object blocks: Boost's find<U> requires a block's
/// size to be a multiple of sizeof(U), so every block is an array of these
/// whatever the object's type. Boost aligns a named block's value only to 8
/// bytes (its name and header precede it), so more strictly aligned objects
/// are aligned inside the block (see construct_unlocked).
struct object_unit {
  std::uint64_t word;
};

constexpr std::size_t round_up(std::size_t n, std::size_t to) noexcept { return (n + to - 1) / to * to; }

inline constexpr std::size_t segment_max_name_length = 200;
inline constexpr std::size_t segment_max_object_name_length = 255;

/// The smallest size a segment may be created with.
inline std::size_t segment_minimum_size() noexcept {
  return segment_header_bytes + segment_manager_buffer::segment_manager::get_min_size() + 1024;
}

/// Throws errc::invalid_name unless `name` is a valid segment name (see
/// named_segment.hpp, "Names").
inline void validate_segment_name(std::string_view name) {
  const auto fail = [&](const std::string& why) { detail::throw_invalid_name("segment", name, why); };
  if (name.empty()) fail("expected 1 to " + std::to_string(segment_max_name_length) + " characters, found none");
  if (name.size() > segment_max_name_length)
    fail("expected at most " + std::to_string(segment_max_name_length) + " characters, found " +
         std::to_string(name.size()));
  if (name.front() == '.') fail("expected a name not starting with '.'");
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) {
      char shown[8];
      std::snprintf(shown, sizeof shown, c >= 0x20 && c < 0x7f ? "'%c'" : "\\x%02x",
                    c >= 0x20 && c < 0x7f ? c : static_cast<unsigned char>(c));
      fail("expected only letters, digits, '.', '_' and '-', found " + std::string(shown) + " at position " +
           std::to_string(i));
    }
  }
}

/// Throws errc::invalid_name unless `object` is a valid object name.
inline void validate_object_name(std::string_view object) {
  const auto fail = [&](const std::string& why) { detail::throw_invalid_name("object", object, why); };
  if (object.empty())
    fail("expected 1 to " + std::to_string(segment_max_object_name_length) + " characters, found none");
  if (object.size() > segment_max_object_name_length)
    fail("expected at most " + std::to_string(segment_max_object_name_length) + " characters, found " +
         std::to_string(object.size()));
  for (std::size_t i = 0; i < object.size(); ++i)
    if (object[i] < 0x20 || object[i] > 0x7e)
      fail("expected printable ASCII, found byte " + std::to_string(static_cast<unsigned char>(object[i])) +
           " at position " + std::to_string(i));
}

class segment_mapping {
 public:
  explicit segment_mapping(std::string_view name) : name_(name) {}

  const std::string& name() const noexcept { return name_; }
  std::size_t size() const noexcept { return region_.get_size(); }
  void* address() const noexcept { return region_.get_address(); }
  segment_manager_buffer& buffer() const noexcept { return buffer_; }

  detail::segment_header& header() const noexcept {
    return *std::launder(static_cast<detail::segment_header*>(region_.get_address()));
  }

  char* buffer_base() const noexcept {
    return static_cast<char*>(region_.get_address()) + detail::segment_header_bytes;
  }

  std::string what(const char* op) const {
    return std::string("procsync::named_segment: ") + op + " segment " + detail::quoted(name_);
  }

  void create(std::size_t size, ::mode_t permissions) {
    namespace bip = boost::interprocess;
    validate_segment_name(name_);
    if (size < segment_minimum_size()) detail::throw_create_too_small(what("create"), size, segment_minimum_size());
    bip::shared_memory_object shm;
    try {
      bip::permissions perm;
      perm.set_permissions(static_cast<int>(permissions));
      shm = bip::shared_memory_object(bip::create_only, name_.c_str(), bip::read_write, perm);
    } catch (const bip::interprocess_exception& e) {
      detail::rethrow_boost(e, what("create"));
    }
    try {
      // shm_open applied the umask; fchmod sets exactly what was asked for.
      if (::fchmod(shm.get_mapping_handle().handle, permissions) != 0)
        detail::throw_errno(errno, what("create") + ": fchmod");
      shm.truncate(static_cast<bip::offset_t>(size));
      region_ = bip::mapped_region(shm, bip::read_write);
      detail::segment_header& h = *::new (region_.get_address()) detail::segment_header();
      const detail::process_identity& me = detail::current_process_identity();
      h.creator_start_time = me.start_time;
      // Release: an opener that reads the pid also reads the start time.
      h.creator_pid.store(me.pid, std::memory_order_release);
      buffer_ = detail::segment_manager_buffer(bip::create_only, buffer_base(), size - detail::segment_header_bytes);
      h.format_version = detail::segment_format_version;
      h.header_bytes = static_cast<std::uint32_t>(detail::segment_header_bytes);
      h.total_size = size;
      // Release: an opener that sees the magic sees the initialized manager.
      h.magic.store(detail::segment_magic, std::memory_order_release);
    } catch (...) {
      bip::shared_memory_object::remove(name_.c_str());
      try {
        throw;
      } catch (const bip::interprocess_exception& e) {
        detail::rethrow_boost(e, what("create"));
      }
    }
  }

  void open_or_create(std::size_t size, ::mode_t permissions, std::chrono::milliseconds init_timeout,
                      bool allow_foreign_owner) {
    validate_segment_name(name_);
    // Each failed round means another process created or removed the segment
    // between our two attempts; a few rounds settle any real race.
    for (int round = 0;; ++round) {
      try {
        create(size, permissions);
        return;
      } catch (const error& e) {
        if (e.code() != errc::segment_exists || round >= 16) throw;
      }
      try {
        open(init_timeout, allow_foreign_owner);
        return;
      } catch (const error& e) {
        if (e.code() != errc::segment_not_found || round >= 16) throw;
      }
    }
  }

  /// Whether nothing has changed the file (created, resized, chmod: its
  /// ctime) for more than `limit`, on the real-time clock the kernel stamps
  /// it with. A clock stepped forward can only make an opener give up early
  /// on a segment whose creator is stalled anyway.
  static bool unchanged_for(const struct stat& st, std::chrono::milliseconds limit) noexcept {
    const auto changed = std::chrono::seconds(st.st_ctim.tv_sec) + std::chrono::nanoseconds(st.st_ctim.tv_nsec);
    const auto current = std::chrono::system_clock::now().time_since_epoch();
    return current - changed > limit;
  }

  void open(std::chrono::milliseconds init_timeout, bool allow_foreign_owner = false) {
    namespace bip = boost::interprocess;
    validate_segment_name(name_);
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + init_timeout;
    detail::backoff poll;  // the creator has no futex word to wake us with yet
    const auto wait_a_little = [&] { poll.pause(); };
    // Whether the file was already stale when we first looked: then it can
    // never become a segment and we fail at once instead of at the deadline.
    bool first_look = true;
    bip::shared_memory_object shm;
    try {
      shm = bip::shared_memory_object(bip::open_only, name_.c_str(), bip::read_write);
      // Another user's segment is not trusted unless asked for (root passes
      // every mode check, so the mode alone would not stop it). shm_open uses
      // O_NOFOLLOW, so this is the file itself, not a symlink's target.
      struct stat st {};
      if (::fstat(shm.get_mapping_handle().handle, &st) != 0) detail::throw_errno(errno, what("open") + ": fstat");
      if (!S_ISREG(st.st_mode)) detail::throw_error(errc::corrupt_segment, what("open") + ": not a regular file");
      if (st.st_uid != ::geteuid() && !allow_foreign_owner) detail::throw_foreign_owner(what("open"), st.st_uid);
      // The creator sizes the object right after creating it, with one
      // ftruncate from 0 to its full size (at least a header).
      for (;;) {
        struct stat now {};
        if (::fstat(shm.get_mapping_handle().handle, &now) != 0) detail::throw_errno(errno, what("open") + ": fstat");
        const auto bytes = static_cast<std::size_t>(now.st_size);
        if (bytes >= detail::segment_header_bytes) break;
        if (bytes != 0) detail::throw_between_zero_and_header(what("open"), bytes);
        if (first_look && unchanged_for(now, init_timeout)) detail::throw_empty_and_stale(what("open"), init_timeout);
        first_look = false;
        if (std::chrono::steady_clock::now() >= deadline) detail::throw_never_sized(what("open"), bytes, init_timeout);
        wait_a_little();
      }
      region_ = bip::mapped_region(shm, bip::read_write);
    } catch (const bip::interprocess_exception& e) {
      if (e.get_error_code() == bip::security_error)
        detail::throw_error(errc::permission_denied, detail::access_denied_message(what("open"), name_));
      detail::rethrow_boost(e, what("open"));
    }
    detail::segment_header& h = header();
    first_look = true;
    for (;;) {
      // Acquire: pairs with the creator's release, so the manager is visible.
      const std::uint64_t magic = h.magic.load(std::memory_order_acquire);
      if (magic == detail::segment_magic) break;
      if (magic != 0) detail::throw_foreign_magic(what("open"), magic);
      // Acquire: pairs with the creator's release of its identity.
      const std::int32_t pid = h.creator_pid.load(std::memory_order_acquire);
      detail::process_identity creator{};
      creator.pid = pid;
      creator.start_time = h.creator_start_time;
      if (pid != 0 && !detail::process_alive(creator)) detail::throw_creator_died(what("open"), pid);
      // A creator records its pid right after sizing the file; a sized file
      // without one that nothing has touched for longer than we would wait
      // will never become a segment.
      if (pid == 0 && first_look) {
        struct stat st {};
        if (::fstat(shm.get_mapping_handle().handle, &st) == 0 && unchanged_for(st, init_timeout))
          detail::throw_no_magic_and_stale(what("open"), init_timeout);
      }
      first_look = false;
      if (std::chrono::steady_clock::now() >= deadline) detail::throw_not_initialized(what("open"), pid, init_timeout);
      wait_a_little();
    }
    if (h.format_version != detail::segment_format_version || h.header_bytes != detail::segment_header_bytes)
      detail::throw_other_format(what("open"), h.format_version, h.header_bytes);
    if (h.total_size > region_.get_size() || h.total_size < segment_minimum_size())
      detail::throw_bad_total_size(what("open"), h.total_size, region_.get_size());
    try {
      buffer_ =
          detail::segment_manager_buffer(bip::open_only, buffer_base(), h.total_size - detail::segment_header_bytes);
    } catch (const bip::interprocess_exception& e) {
      detail::rethrow_boost(e, what("open"));
    }
  }

 private:
  std::string name_;
  boost::interprocess::mapped_region region_;
  mutable segment_manager_buffer buffer_;
};

}  // namespace procsync::detail
