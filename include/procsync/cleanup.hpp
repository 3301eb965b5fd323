// procsync/cleanup.hpp — find and remove named segments nobody uses any more.
//
// A named segment lives in /dev/shm until someone removes it, so a program
// that crashes before calling named_segment::remove() leaves it behind, and
// /dev/shm (RAM) slowly fills up. This header lists the procsync segments in
// /dev/shm with their creator and users, and removes the dead ones:
//
//   for (const auto& s : procsync::list_segments()) ...   // what is there
//   procsync::remove_dead_segments();                      // crash-safe cleanup
//
// The same is available from the shell: tools/procsync-shm (ls, rm).
//
// What "dead" means. A segment is dead when its creator (pid + start time,
// recorded in the segment header, so a reused pid is never taken for it) is no
// longer running AND no running process maps it (found in /proc/<pid>/maps).
// A SIGSTOPped process is running. A segment whose header was never finished
// (its creator died while initializing it) is dead as soon as the creator is.
//
// Safety and limits:
//  - Only files that carry procsync's segment header are listed or removed;
//    other files in /dev/shm are never touched. A regular file the caller may
//    not read cannot be told apart: it is listed with readable == false (its
//    owner, mode and size only, since it may be someone else's segment), is
//    never removed by remove_dead_segments(), and inspect_segment() reports
//    errc::permission_denied for it. Files are read with pread
//    through O_NOFOLLOW descriptors, never mapped, so a truncated or hostile
//    file cannot crash the caller; a symlink or non-regular file is skipped.
//  - Users are found only among processes whose /proc/<pid>/maps the caller
//    may read (all of them for root; one's own otherwise). A default (0600)
//    segment can be mapped only by its owner (or root), so a non-root caller
//    sees every user of its own segments, except root processes.
//  - Race: a process that opens a segment just as it is judged dead loses
//    only the name (its mapping stays valid, later opens by name fail). Run
//    cleanup when the segment's applications are not starting up, or use a
//    name prefix to limit it to one application's segments.
// All functions throw procsync::error for a failure of /dev/shm as a whole
// (errno errors); a single unreadable file is reported in its entry.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "detail/process_identity.hpp"
#include "detail/segment_header.hpp"
#include "error.hpp"

namespace procsync {

/// What list_segments()/inspect_segment() found about one segment.
struct segment_info {
  std::string name;                 ///< without the leading '/'
  std::uint64_t size = 0;           ///< bytes of the file
  ::uid_t owner = 0;                ///< the file's owner
  ::mode_t mode = 0;                ///< permission bits
  bool ready = false;               ///< the creator finished initializing it
  std::int32_t creator_pid = 0;     ///< 0 if none was recorded
  std::uint64_t creator_start_time = 0;  ///< clock ticks after boot (/proc/<pid>/stat)
  bool creator_alive = false;       ///< the creator (same pid AND start time) still runs
  std::vector<std::int32_t> users;  ///< running processes that map it (readable ones)
  bool readable = true;             ///< false: the caller may not read the file (EACCES);
                                    ///< only name, size, owner and mode are known

  /// True if some running process may still use it (see the header comment);
  /// always true for an unreadable file, whose creator is unknown.
  [[nodiscard]] bool in_use() const noexcept { return !readable || creator_alive || !users.empty(); }
};

namespace detail {

inline constexpr const char* shm_directory = "/dev/shm";

/// Closes a descriptor at scope exit.
struct fd_closer {
  int fd;
  ~fd_closer() {
    if (fd >= 0) ::close(fd);
  }
};

/// Reads the segment header of /dev/shm/<name> into `info`; false if the file
/// is not a regular file, too small, or carries no procsync header. A regular
/// file the caller may not open (EACCES) gives true with info.readable false.
inline bool read_segment_header(const std::string& name, segment_info& info) {
  std::string path = shm_directory;
  path += '/';
  path += name;  // appended: see segment.hpp on g++ 12's false -Wrestrict
  // O_NOFOLLOW: never read through a symlink planted in /dev/shm; O_NONBLOCK:
  // never block opening a FIFO planted there.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    struct stat st {};
    if (errno != EACCES || ::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
    info.name = name;
    info.size = static_cast<std::uint64_t>(st.st_size);
    info.owner = st.st_uid;
    info.mode = st.st_mode & 07777;
    info.readable = false;
    return true;
  }
  const fd_closer closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return false;
  if (static_cast<std::uint64_t>(st.st_size) < segment_header_bytes) return false;
  unsigned char bytes[segment_header_bytes];
  if (::pread(fd, bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) return false;
  // The header's fields are read from the copy at their offsets: a standard
  // layout struct whose atomics are lock-free and have the size of their value.
  std::uint64_t magic = 0;
  std::int32_t pid = 0;
  std::uint64_t start = 0;
  std::memcpy(&magic, bytes + offsetof(segment_header, magic), sizeof magic);
  std::memcpy(&pid, bytes + offsetof(segment_header, creator_pid), sizeof pid);
  std::memcpy(&start, bytes + offsetof(segment_header, creator_start_time), sizeof start);
  // A procsync segment: ready (magic), or being initialized (magic 0) by a
  // recorded creator. Anything else is someone else's file.
  if (magic != segment_magic && !(magic == 0 && pid > 0)) return false;
  info.name = name;
  info.size = static_cast<std::uint64_t>(st.st_size);
  info.owner = st.st_uid;
  info.mode = st.st_mode & 07777;
  info.ready = magic == segment_magic;
  info.creator_pid = pid;
  info.creator_start_time = start;
  return true;
}

/// Pids of running processes whose /proc/<pid>/maps shows one of `paths`'
/// mappings; result[i] lists the users of paths[i].
inline std::vector<std::vector<std::int32_t>> mapping_users(const std::vector<std::string>& paths) {
  std::vector<std::vector<std::int32_t>> users(paths.size());
  if (paths.empty()) return users;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) throw_errno(errno, "procsync::list_segments: opendir /proc");
  std::string line;
  while (const dirent* e = ::readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || end == nullptr || *end != '\0') continue;
    const std::string maps = std::string("/proc/") + e->d_name + "/maps";
    std::FILE* f = std::fopen(maps.c_str(), "re");
    if (f == nullptr) continue;  // gone, or not ours to read
    std::vector<bool> seen(paths.size(), false);
    char buf[4096];
    while (std::fgets(buf, sizeof buf, f) != nullptr) {
      // "start-end perms offset dev inode   /dev/shm/name[ (deleted)]"
      const char* slash = std::strstr(buf, " /dev/shm/");
      if (slash == nullptr) continue;
      std::string_view mapped(slash + 1);
      while (!mapped.empty() && (mapped.back() == '\n' || mapped.back() == ' ')) mapped.remove_suffix(1);
      for (std::size_t i = 0; i < paths.size(); ++i)
        if (!seen[i] && mapped == paths[i]) {
          seen[i] = true;
          users[i].push_back(static_cast<std::int32_t>(pid));
        }
    }
    std::fclose(f);
  }
  ::closedir(proc);
  return users;
}

inline void fill_liveness(std::vector<segment_info>& found) {
  std::vector<std::string> paths;
  paths.reserve(found.size());
  for (const auto& s : found) paths.push_back(std::string(shm_directory) + "/" + s.name);
  const auto users = mapping_users(paths);
  for (std::size_t i = 0; i < found.size(); ++i) {
    segment_info& s = found[i];
    if (!s.readable) continue;
    s.users = users[i];
    if (s.creator_pid > 0) {
      process_identity creator{};
      creator.pid = s.creator_pid;
      creator.start_time = s.creator_start_time;
      s.creator_alive = process_alive(creator);
    }
  }
}

}  // namespace detail

/// The procsync segments in /dev/shm whose name starts with `prefix`, with
/// their creator's and users' liveness, sorted by name. Throws an errno error
/// if /dev/shm or /proc cannot be read.
inline std::vector<segment_info> list_segments(std::string_view prefix = {}) {
  DIR* dir = ::opendir(detail::shm_directory);
  if (dir == nullptr) detail::throw_errno(errno, "procsync::list_segments: opendir /dev/shm");
  std::vector<segment_info> found;
  while (const dirent* e = ::readdir(dir)) {
    const std::string_view name(e->d_name);
    if (name == "." || name == ".." || name.substr(0, prefix.size()) != prefix) continue;
    segment_info info;
    if (detail::read_segment_header(std::string(name), info)) found.push_back(std::move(info));
  }
  ::closedir(dir);
  std::sort(found.begin(), found.end(), [](const segment_info& a, const segment_info& b) { return a.name < b.name; });
  detail::fill_liveness(found);
  return found;
}

/// What list_segments() reports for the one segment `name`. Throws
/// errc::segment_not_found if /dev/shm/<name> does not exist or is not a
/// procsync segment, errc::permission_denied if the caller may not read it.
inline segment_info inspect_segment(std::string_view name) {
  std::vector<segment_info> one(1);
  if (name.empty() || name.find('/') != std::string_view::npos ||
      !detail::read_segment_header(std::string(name), one[0]))
    detail::throw_error(errc::segment_not_found, "procsync::inspect_segment: no procsync segment '" +
                                                     std::string(name) + "' in /dev/shm");
  if (!one[0].readable)
    detail::throw_error(errc::permission_denied, "procsync::inspect_segment: no permission to read segment '" +
                                                     std::string(name) + "' in /dev/shm");
  detail::fill_liveness(one);
  return one[0];
}

/// Removes every dead procsync segment (see the header comment) whose name
/// starts with `prefix`; returns what it removed (or, with dry_run, what it
/// would remove). A segment the caller may not remove is skipped.
inline std::vector<segment_info> remove_dead_segments(std::string_view prefix = {}, bool dry_run = false) {
  std::vector<segment_info> removed;
  for (auto& s : list_segments(prefix)) {
    if (s.in_use()) continue;
    if (!dry_run) {
      const std::string path = detail::shm_object_path(s.name);
      if (::shm_unlink(path.c_str()) != 0) continue;
    }
    removed.push_back(std::move(s));
  }
  return removed;
}

}  // namespace procsync
