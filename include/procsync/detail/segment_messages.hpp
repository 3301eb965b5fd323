// procsync/detail/segment_messages.hpp — every error a named segment reports,
// in one place (named_segment.hpp only decides *when*).
//
// Each message says what was asked for, what was found, and what to do: a
// segment is opened by processes built elsewhere, so the message is often all
// its reader has. `what` is the operation's prefix, as
// "procsync::named_segment: open segment 'orders'".
#pragma once

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <boost/interprocess/exceptions.hpp>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "../error.hpp"
#include "segment_header.hpp"

namespace procsync::detail {

inline std::string quoted(std::string_view s) {
  std::string q;  // appended, not "'" + string: see shm_object_path() on g++ 12 -O3
  q.reserve(s.size() + 2);
  q += '\'';
  q += s;
  q += '\'';
  return q;
}

/// Turns a Boost.Interprocess exception into procsync::error.
[[noreturn, gnu::cold]] inline void rethrow_boost(const boost::interprocess::interprocess_exception& e,
                                                  const std::string& what) {
  namespace bip = boost::interprocess;
  switch (e.get_error_code()) {
    case bip::already_exists_error: throw_error(errc::segment_exists, what + ": already exists");
    case bip::not_found_error:
    case bip::not_such_file_or_directory: throw_error(errc::segment_not_found, what + ": does not exist");
    case bip::security_error: throw_error(errc::permission_denied, what);  // what() appends ": permission denied"
    case bip::out_of_space_error:
    case bip::out_of_memory_error:
    case bip::size_error: throw_error(errc::segment_too_small, what + ": out of space (" + e.what() + ")");
    case bip::corrupted_error: throw_error(errc::corrupt_segment, what + ": " + e.what());
    default: break;
  }
  const int native = e.get_native_error();
  throw_errno(native != 0 ? native : EIO, what + ": " + e.what());
}

// ---- names -------------------------------------------------------------------

/// `which` is "segment" or "object".
[[noreturn, gnu::cold]] inline void throw_invalid_name(const char* which, std::string_view name,
                                                       const std::string& why) {
  throw_error(errc::invalid_name, std::string("procsync::named_segment: invalid ") + which + " name " +
                                      quoted(name.substr(0, 64)) + (name.size() > 64 ? "..." : "") + ": " + why);
}

// ---- creating and opening ----------------------------------------------------

[[noreturn, gnu::cold]] inline void throw_create_too_small(const std::string& what, std::size_t size,
                                                           std::size_t minimum) {
  throw_error(errc::segment_too_small,
              what + ": " + std::to_string(size) + " bytes requested, expected at least " + std::to_string(minimum));
}

[[noreturn, gnu::cold]] inline void throw_smaller_than(std::string_view name, std::size_t size, std::size_t minimum) {
  throw_error(errc::segment_too_small, "procsync::named_segment: segment " + quoted(name) + " is " +
                                           std::to_string(size) + " bytes, expected at least " +
                                           std::to_string(minimum));
}

/// The message for a segment whose mode keeps this process out: who owns it,
/// its mode, who we are, and what to change (the mode is the creator's choice,
/// so the fix is on their side, or in which user runs us).
[[gnu::cold]] inline std::string access_denied_message(const std::string& what, std::string_view name) {
  std::string m = what + ": ";
  struct stat st {};
  // shm_open refused us, so stat the file by its path (never followed:
  // lstat) to say why; glibc keeps POSIX shared memory in /dev/shm.
  const std::string path = "/dev/shm" + shm_object_path(name);
  if (::lstat(path.c_str(), &st) != 0) {
    return m + "its mode does not allow this process (uid " + std::to_string(::geteuid()) +
           ") to read and write it; ask its creator to create it with permissions that include you "
           "(the `permissions` argument of create_only or open_or_create, e.g. 0660 for its group)";
  }
  char mode[8];
  std::snprintf(mode, sizeof mode, "0%03o", static_cast<unsigned>(st.st_mode & 07777));
  if (st.st_uid == ::geteuid())
    return m + "its mode " + mode + " does not let even its owner (this process, uid " + std::to_string(st.st_uid) +
           ") read and write it; it must be created with a mode that includes 0600 " +
           "(the `permissions` argument of create_only or open_or_create)";
  m += "it belongs to uid " + std::to_string(st.st_uid) + " (gid " + std::to_string(st.st_gid) + ") with mode " + mode +
       ", and this process is uid " + std::to_string(::geteuid()) + " (gid " + std::to_string(::getegid()) +
       "), which that mode does not allow to read and write it. Its creator chooses "
       "the mode: ask for one that includes you, passed as the `permissions` argument of create_only or "
       "open_or_create (e.g. 0660 for members of gid " +
       std::to_string(st.st_gid) +
       ", 0666 for every user; "
       "another user's segment is then opened with procsync::foreign_owner), or run this program as uid " +
       std::to_string(st.st_uid);
  return m;
}

[[noreturn, gnu::cold]] inline void throw_foreign_owner(const std::string& what, ::uid_t owner) {
  throw_error(errc::permission_denied,
              what + ": owned by uid " + std::to_string(owner) + ", expected uid " + std::to_string(::geteuid()) +
                  " (another user's segment is not trusted by default: if you trust uid " + std::to_string(owner) +
                  ", pass procsync::foreign_owner after the name to open_only, or after the size to "
                  "open_or_create)");
}

[[noreturn, gnu::cold]] inline void throw_between_zero_and_header(const std::string& what, std::size_t bytes) {
  throw_error(errc::corrupt_segment, what + ": not a procsync segment: it is " + std::to_string(bytes) +
                                         " bytes, and a procsync segment is never between 0 and its " +
                                         std::to_string(segment_header_bytes) +
                                         "-byte header (another program's "
                                         "file? remove it or choose another name)");
}

[[noreturn, gnu::cold]] inline void throw_empty_and_stale(const std::string& what, std::chrono::milliseconds timeout) {
  throw_error(errc::corrupt_segment, what + ": it is empty and has not changed for more than " +
                                         std::to_string(timeout.count()) +
                                         " ms: its creator died before sizing it, or it is not a procsync segment");
}

[[noreturn, gnu::cold]] inline void throw_never_sized(const std::string& what, std::size_t bytes,
                                                      std::chrono::milliseconds timeout) {
  throw_error(errc::corrupt_segment,
              what + ": it is " + std::to_string(bytes) + " bytes, too small for a procsync segment header (" +
                  std::to_string(segment_header_bytes) + " bytes), still after " + std::to_string(timeout.count()) +
                  " ms: its creator died before sizing it, or it is not a procsync segment");
}

[[noreturn, gnu::cold]] inline void throw_foreign_magic(const std::string& what, std::uint64_t magic) {
  char found[20];
  std::snprintf(found, sizeof found, "%016llx", static_cast<unsigned long long>(magic));
  throw_error(errc::corrupt_segment,
              what + ": not a procsync segment (magic 0x" + found + " found where procsync's is expected)");
}

[[noreturn, gnu::cold]] inline void throw_creator_died(const std::string& what, std::int32_t pid) {
  throw_error(errc::corrupt_segment, what + ": its creator (process " + std::to_string(pid) +
                                         ") died before initializing it; remove and create it again");
}

[[noreturn, gnu::cold]] inline void throw_no_magic_and_stale(const std::string& what,
                                                             std::chrono::milliseconds timeout) {
  throw_error(errc::corrupt_segment, what +
                                         ": not a procsync segment: no procsync magic and no creator recorded, "
                                         "and the file has not changed for more than " +
                                         std::to_string(timeout.count()) + " ms");
}

[[noreturn, gnu::cold]] inline void throw_not_initialized(const std::string& what, std::int32_t pid,
                                                          std::chrono::milliseconds timeout) {
  throw_error(errc::corrupt_segment, what + ": not initialized within " + std::to_string(timeout.count()) + " ms (" +
                                         (pid != 0 ? "creator process " + std::to_string(pid) + " still running"
                                                   : std::string("no creator recorded: not a procsync segment?")) +
                                         ")");
}

[[noreturn, gnu::cold]] inline void throw_other_format(const std::string& what, std::uint32_t format,
                                                       std::uint32_t header_bytes) {
  throw_error(errc::layout_mismatch, what + ": procsync segment format " + std::to_string(format) + " with a " +
                                         std::to_string(header_bytes) + "-byte header found, expected format " +
                                         std::to_string(segment_format_version) + " with a " +
                                         std::to_string(segment_header_bytes) + "-byte header");
}

[[noreturn, gnu::cold]] inline void throw_bad_total_size(const std::string& what, std::uint64_t recorded,
                                                         std::size_t mapped) {
  throw_error(errc::corrupt_segment, what + ": header records " + std::to_string(recorded) +
                                         " bytes, the segment has " + std::to_string(mapped));
}

// ---- using -------------------------------------------------------------------

[[noreturn, gnu::cold]] inline void throw_guard_not_recoverable(const std::string& what) {
  throw_error(errc::corrupt_segment, what + ": its guard lock is not recoverable");
}

[[noreturn, gnu::cold]] inline void throw_died_in_allocator(const std::string& what) {
  throw_error(errc::corrupt_segment,
              what + ": a process died inside its allocator, which may be inconsistent; remove and create it again");
}

// ---- objects -----------------------------------------------------------------

[[noreturn, gnu::cold]] inline void throw_object_exists(const std::string& oname, std::string_view segment,
                                                        const std::string& found_kind) {
  throw_error(errc::object_exists, "procsync::named_segment::construct: object " + quoted(oname) +
                                       " already exists in segment " + quoted(segment) + " (a " + found_kind + ")");
}

[[noreturn, gnu::cold]] inline void throw_object_not_found(const std::string& oname, std::string_view segment) {
  throw_error(errc::object_not_found,
              "procsync::named_segment::find: no object " + quoted(oname) + " in segment " + quoted(segment) +
                  " (if another process constructs it, it may not have done so yet: to not depend on "
                  "who starts first, let every process open the segment with open_or_create and call "
                  "find_or_construct<T>(name, args...), which constructs it once and returns it to "
                  "all)");
}

[[noreturn, gnu::cold]] inline void throw_does_not_fit(const std::string& what, const std::string& oname,
                                                       const std::string& kind, std::size_t bytes, std::size_t free,
                                                       std::size_t size) {
  throw_error(errc::segment_too_small, what + ": object " + quoted(oname) + " (" + kind + ", " + std::to_string(bytes) +
                                           " bytes with its header) does not fit; " + std::to_string(free) + " of " +
                                           std::to_string(size) + " bytes free");
}

/// The checks find<T> makes on an object's header; `where` names the object
/// and its segment, `kind` is what the caller asked for.
struct object_check_failure {
  std::string where;
  std::string kind;

  [[noreturn, gnu::cold]] void no_header() const {
    throw_error(errc::corrupt_segment, prefix() + " has no valid procsync object header (expected a " + kind + ")");
  }
  [[noreturn, gnu::cold]] void wrong_kind(const std::string& found) const {
    throw_error(errc::wrong_object_kind, prefix() + " is a " + found + ", expected " + kind);
  }
  [[noreturn, gnu::cold]] void wrong_version(std::uint32_t found, std::uint32_t expected) const {
    throw_error(errc::layout_mismatch, prefix() + " (" + kind + ") has layout version " + std::to_string(found) +
                                           ", expected " + std::to_string(expected));
  }
  [[noreturn, gnu::cold]] void wrong_size(std::size_t size, std::size_t align, std::size_t expected_size,
                                          std::size_t expected_align) const {
    throw_error(errc::layout_mismatch, prefix() + " (" + kind + ") is " + std::to_string(size) + " bytes aligned to " +
                                           std::to_string(align) + ", expected " + std::to_string(expected_size) +
                                           " bytes aligned to " + std::to_string(expected_align));
  }
  [[noreturn, gnu::cold]] void bad_offset() const {
    throw_error(errc::corrupt_segment, prefix() + " has a bad value offset");
  }

 private:
  std::string prefix() const { return "procsync::named_segment::find: " + where; }
};

}  // namespace procsync::detail
