// procsync/segment.hpp — where procsync objects live.
//
// Two kinds of shared memory:
//  - anonymous: a MAP_SHARED|MAP_ANONYMOUS mapping created before fork(); the
//    children inherit it at the same address. make_anonymous<T>(args...).
//  - named: a segment in /dev/shm that unrelated processes open by name
//    (named_segment, built on Boost.Interprocess's shared memory objects and
//    segment manager; this header needs the Boost headers, 1.71 or later).
//
// Objects placed in shared memory outlive any one process's handle, so their
// destructors never run: T must be trivially destructible, and must not hold
// pointers (every procsync primitive qualifies; so does any trivially
// copyable struct without pointers).
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <sys/mman.h>
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
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>

#include "detail/object_header.hpp"
#include "detail/process_identity.hpp"
#include "detail/robust_guard.hpp"
#include "detail/segment_header.hpp"
#include "error.hpp"
#include "mutex.hpp"

namespace procsync {

/// A process-local, reference-counted handle to one T in an anonymous shared
/// mapping. Copies share the mapping; it is unmapped when the last handle *in
/// this process* goes away (other processes keep theirs). After fork(), the
/// child's copies refer to the same shared T.
template <class T>
class anonymous_ptr {
 public:
  anonymous_ptr() noexcept = default;

  T* get() const noexcept { return object_.get(); }
  T& operator*() const noexcept { return *object_; }
  T* operator->() const noexcept { return object_.get(); }
  explicit operator bool() const noexcept { return object_ != nullptr; }

  /// Bytes mapped for the object (a whole number of pages).
  std::size_t mapping_size() const noexcept { return bytes_; }

 private:
  template <class U, class... Args>
  friend anonymous_ptr<U> make_anonymous(Args&&... args);

  anonymous_ptr(T* object, std::size_t bytes)
      : object_(object, [bytes](T* p) { ::munmap(static_cast<void*>(p), bytes); }), bytes_(bytes) {}

  std::shared_ptr<T> object_;
  std::size_t bytes_ = 0;
};

namespace detail {

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

}  // namespace detail

/// Maps fresh anonymous shared memory and constructs a T in it with `args`.
/// Create it before fork() so children share it. Throws procsync::error if the
/// mapping fails (the errno of mmap).
template <class T, class... Args>
anonymous_ptr<T> make_anonymous(Args&&... args) {
  detail::check_placeable<T>();
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t bytes = (sizeof(T) + page - 1) / page * page;
  void* memory = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED)
    detail::throw_errno(errno, "procsync::make_anonymous: mmap of " + std::to_string(bytes) + " bytes failed");
  try {
    return anonymous_ptr<T>(detail::place<T>(memory, std::forward<Args>(args)...), bytes);
  } catch (...) {
    ::munmap(memory, bytes);
    throw;
  }
}

// ---------------------------------------------------------------------------
// Named segments
// ---------------------------------------------------------------------------
//
// A named_segment is a POSIX shared memory object (/dev/shm/<name>) that
// unrelated processes open by name, holding named objects (procsync primitives
// or the user's trivially copyable, pointer-free structs).
//
// Built on Boost.Interprocess (shared_memory_object, mapped_region and a
// segment manager over the mapping, managed_external_buffer), with what Boost
// lacks added on top:
//  - Typed objects. Each object carries a header (kind, layout version, size,
//    alignment, see detail/object_header.hpp); find<T> checks it and throws
//    errc::wrong_object_kind or errc::layout_mismatch instead of reinterpreting.
//    A kind spells template arguments (shared_value<int64>), with the same
//    names from every compiler; a class, union or enum T stored here must
//    declare kind_name or specialize procsync::kind_name_of (a compile-time
//    error says so otherwise).
//  - A robust allocator lock. The segment manager runs with Boost's null
//    mutex; every call into it is serialized by a robust procsync::mutex in
//    the segment header. A process killed while constructing an object leaves
//    no lock behind (Boost #90): the next user frees the half-built block and
//    carries on. A process killed *inside* the allocator (a few instructions
//    per call) may leave its tree half-updated; that is detected and every
//    later call throws errc::corrupt_segment rather than crash or hang.
//  - Bounded opening. An opener waits for the creator to finish initializing
//    at most `init_timeout` (default 10 s), and fails at once with
//    errc::corrupt_segment if the creator died (Boost spins 300 s, #128).
//  - Exact permissions: default 0600 (Boost's is 0644), applied with fchmod so
//    the umask cannot reduce them.
//  - Errors: every failure is a procsync::error; Boost exceptions (including
//    its bad_alloc) never escape.
//
// Names: 1 to max_name_length characters from [A-Za-z0-9._-], not starting with
// '.' (so no '/', no "." or ".."), the set every POSIX shm implementation
// accepts. Object names: 1 to max_object_name_length printable ASCII characters.
//
// Lifetime: a segment exists until remove(name) (or reboot), whether or not any
// process has it open; a named_segment object is only this process's mapping.
// Objects are never destroyed implicitly (their types are trivially
// destructible); destroy<T>() frees one that nobody uses any more.
//
// Threads: a named_segment may be used by several threads at once. Do not call
// a named_segment member from inside the constructor of an object it is
// constructing (the guard is held: errc::would_deadlock).

/// Tag types selecting how named_segment's constructor treats an existing segment.
struct create_only_t {
  explicit create_only_t() = default;
};
struct open_only_t {
  explicit open_only_t() = default;
};
struct open_or_create_t {
  explicit open_or_create_t() = default;
};
/// Tag for named_segment's open_only and open_or_create constructors: also
/// open a segment whose file belongs to another user (by default that is
/// errc::permission_denied, even for root, so that a segment planted by
/// another user is never trusted by accident).
struct foreign_owner_t {
  explicit foreign_owner_t() = default;
};
inline constexpr foreign_owner_t foreign_owner{};
/// Create a new segment; errc::segment_exists if the name is taken.
inline constexpr create_only_t create_only{};
/// Open an existing segment; errc::segment_not_found if there is none.
inline constexpr open_only_t open_only{};
/// Open the segment if it exists, else create it (race-free between processes).
inline constexpr open_or_create_t open_or_create{};

namespace detail {

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

inline std::string quoted(std::string_view s) {
  std::string q;  // appended, not "'" + string: see shm_object_path() on g++ 12 -O3
  q.reserve(s.size() + 2);
  q += '\'';
  q += s;
  q += '\'';
  return q;
}

/// Turns a Boost.Interprocess exception into procsync::error.
[[noreturn]] inline void rethrow_boost(const bip::interprocess_exception& e, const std::string& what) {
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

constexpr std::size_t round_up(std::size_t n, std::size_t to) noexcept { return (n + to - 1) / to * to; }

}  // namespace detail

class named_segment {
 public:
  static constexpr std::size_t max_name_length = 200;
  static constexpr std::size_t max_object_name_length = 255;
  static constexpr ::mode_t default_permissions = 0600;
  static constexpr std::chrono::milliseconds default_init_timeout{10000};

  /// Creates segment `name` of exactly `size` bytes, readable and writable by
  /// `permissions` (exactly: not reduced by the umask).
  /// Throws errc::invalid_name, errc::segment_exists, errc::segment_too_small
  /// (size below minimum_size()), errc::permission_denied, or the errno of a
  /// failed system call. Nothing is left behind on failure.
  named_segment(create_only_t, std::string_view name, std::size_t size, ::mode_t permissions = default_permissions)
      : name_(name) {
    create(size, permissions);
  }

  /// Opens segment `name`, waiting at most `init_timeout` for its creator to
  /// finish initializing it. Throws errc::invalid_name, errc::segment_not_found,
  /// errc::permission_denied (the mode forbids it, or the file belongs to
  /// another user: see foreign_owner), errc::corrupt_segment (not a procsync segment,
  /// garbage, or its creator died or did not finish in time),
  /// errc::layout_mismatch (another procsync segment format version).
  named_segment(open_only_t, std::string_view name, std::chrono::milliseconds init_timeout = default_init_timeout)
      : name_(name) {
    open(init_timeout);
  }

  /// As open_only, and also opens a segment owned by another user (the
  /// caller trusts that user; the file's mode must still allow the access).
  named_segment(open_only_t, std::string_view name, foreign_owner_t,
                std::chrono::milliseconds init_timeout = default_init_timeout)
      : name_(name) {
    open(init_timeout, true);
  }

  /// As open_only, and requires the segment to be at least `minimum_size`
  /// bytes (else errc::segment_too_small), so `(open_only, name, size)` mirrors
  /// the creator's call.
  named_segment(open_only_t, std::string_view name, std::size_t minimum_size,
                std::chrono::milliseconds init_timeout = default_init_timeout)
      : name_(name) {
    open(init_timeout);
    if (size() < minimum_size)
      detail::throw_error(errc::segment_too_small, "procsync::named_segment: segment " + detail::quoted(name_) +
                                                       " is " + std::to_string(size()) + " bytes, expected at least " +
                                                       std::to_string(minimum_size));
  }

  /// Opens segment `name` if it exists (its size stays what its creator chose;
  /// `size` and `permissions` are ignored), else creates it as create_only
  /// does. Safe when many processes race to do this. Errors: those of both.
  named_segment(open_or_create_t, std::string_view name, std::size_t size,
                ::mode_t permissions = default_permissions,
                std::chrono::milliseconds init_timeout = default_init_timeout)
      : name_(name) {
    open_or_create(size, permissions, init_timeout, false);
  }

  /// As open_or_create, and when the segment exists, also opens it if it
  /// belongs to another user (see foreign_owner; the mode must still allow
  /// this process to read and write it). A segment it creates is its own.
  named_segment(open_or_create_t, std::string_view name, std::size_t size, foreign_owner_t,
                ::mode_t permissions = default_permissions,
                std::chrono::milliseconds init_timeout = default_init_timeout)
      : name_(name) {
    open_or_create(size, permissions, init_timeout, true);
  }

  /// Moves the mapping; the moved-from object may only be destroyed or assigned to.
  named_segment(named_segment&&) noexcept = default;
  named_segment& operator=(named_segment&&) noexcept = default;
  /// Unmaps this process's view; the segment and its objects remain.
  ~named_segment() = default;

  /// The segment's name, as given.
  const std::string& name() const noexcept { return name_; }

  /// Bytes in the whole segment (header and allocator bookkeeping included).
  std::size_t size() const noexcept { return region_.get_size(); }

  /// Bytes still available for objects (a new object needs its own size plus
  /// its header and allocator overhead: about 200 bytes plus its name).
  std::size_t free_memory() const {
    return guarded([&] { return static_cast<std::size_t>(buffer_.get_free_memory()); });
  }

  /// Where this process mapped the segment. Two named_segment objects for one
  /// name map it at different addresses; procsync objects work at any of them.
  void* address() const noexcept { return region_.get_address(); }

  /// The smallest size create_only accepts.
  static std::size_t minimum_size() noexcept {
    return detail::segment_header_bytes + detail::segment_manager_buffer::segment_manager::get_min_size() + 1024;
  }

  /// Constructs a T named `object` with `args` and returns it.
  /// Requires T trivially destructible, not polymorphic, pointer-free, and a
  /// class/union/enum T (or one inside T's template arguments) to declare its
  /// kind (see "Typed objects" above; checked at compile time).
  /// Throws errc::invalid_name, errc::object_exists (whatever its kind),
  /// errc::segment_too_small if it does not fit, or what T's constructor throws
  /// (nothing is left behind then).
  template <class T, class... Args>
  T& construct(std::string_view object, Args&&... args) {
    detail::check_placeable<T>();
    validate_object_name(object);
    const std::string oname(object);
    return guarded([&]() -> T& {
      if (const auto found = lookup(oname); found.header != nullptr)
        detail::throw_error(errc::object_exists, "procsync::named_segment::construct: object " + detail::quoted(oname) +
                                                     " already exists in segment " + detail::quoted(name_) + " (a " +
                                                     found.header->kind_for_message() + ")");
      return construct_unlocked<T>(oname, std::forward<Args>(args)...);
    });
  }

  /// The T named `object`. Throws errc::object_not_found (its message names
  /// the open_or_create + find_or_construct pattern for processes that may
  /// start before the creator has constructed it), errc::wrong_object_kind
  /// (it is of another kind; the message names both), errc::layout_mismatch
  /// (same kind, other layout version, size or alignment), errc::invalid_name.
  template <class T>
  T& find(std::string_view object) {
    validate_object_name(object);
    const std::string oname(object);
    return guarded([&]() -> T& {
      const auto found = lookup(oname);
      if (found.header == nullptr)
        detail::throw_error(errc::object_not_found,
                            "procsync::named_segment::find: no object " + detail::quoted(oname) + " in segment " +
                                detail::quoted(name_) +
                                " (if another process constructs it, it may not have done so yet: to not depend on "
                                "who starts first, let every process open the segment with open_or_create and call "
                                "find_or_construct<T>(name, args...), which constructs it once and returns it to "
                                "all)");
      return checked<T>(found, oname);
    });
  }

  /// The T named `object` if it exists (checked as find does), else a new one
  /// constructed with `args`. Atomic with respect to other processes.
  template <class T, class... Args>
  T& find_or_construct(std::string_view object, Args&&... args) {
    detail::check_placeable<T>();
    validate_object_name(object);
    const std::string oname(object);
    return guarded([&]() -> T& {
      if (const auto found = lookup(oname); found.header != nullptr) return checked<T>(found, oname);
      return construct_unlocked<T>(oname, std::forward<Args>(args)...);
    });
  }

  /// Frees the T named `object`; false if there is none. Checked as find does
  /// (a wrong kind throws and frees nothing). Requires: no process uses it any
  /// more (in particular nobody holds it, if it is a lock).
  template <class T>
  bool destroy(std::string_view object) {
    validate_object_name(object);
    const std::string oname(object);
    return guarded([&] {
      const auto found = lookup(oname);
      if (found.header == nullptr) return false;
      (void)checked<T>(found, oname);
      busy_scope busy(header());
      return buffer_.destroy<detail::object_unit>(oname.c_str());
    });
  }

  /// Removes segment `name` from the system: later opens fail, existing
  /// mappings stay valid. True if it existed. Throws errc::invalid_name, or
  /// errc::permission_denied / an errno on other failures.
  static bool remove(std::string_view name) {
    validate_name(name);
    const std::string path = detail::shm_object_path(name);
    if (::shm_unlink(path.c_str()) == 0) return true;
    if (errno == ENOENT) return false;
    if (errno == EACCES || errno == EPERM)
      detail::throw_error(errc::permission_denied,
                          "procsync::named_segment::remove: not allowed to remove segment " + detail::quoted(name));
    detail::throw_errno(errno, "procsync::named_segment::remove: shm_unlink of " + detail::quoted(name));
  }

  /// Throws errc::invalid_name unless `name` is a valid segment name (see above).
  static void validate_name(std::string_view name) {
    const auto fail = [&](const std::string& why) {
      detail::throw_error(errc::invalid_name, "procsync::named_segment: invalid segment name " +
                                                  detail::quoted(name.substr(0, 64)) + (name.size() > 64 ? "..." : "") +
                                                  ": " + why);
    };
    if (name.empty()) fail("expected 1 to " + std::to_string(max_name_length) + " characters, found none");
    if (name.size() > max_name_length)
      fail("expected at most " + std::to_string(max_name_length) + " characters, found " + std::to_string(name.size()));
    if (name.front() == '.') fail("expected a name not starting with '.'");
    for (std::size_t i = 0; i < name.size(); ++i) {
      const char c = name[i];
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == '-';
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
  static void validate_object_name(std::string_view object) {
    const auto fail = [&](const std::string& why) {
      detail::throw_error(errc::invalid_name, "procsync::named_segment: invalid object name " +
                                                  detail::quoted(object.substr(0, 64)) +
                                                  (object.size() > 64 ? "..." : "") + ": " + why);
    };
    if (object.empty()) fail("expected 1 to " + std::to_string(max_object_name_length) + " characters, found none");
    if (object.size() > max_object_name_length)
      fail("expected at most " + std::to_string(max_object_name_length) + " characters, found " +
           std::to_string(object.size()));
    for (std::size_t i = 0; i < object.size(); ++i)
      if (object[i] < 0x20 || object[i] > 0x7e)
        fail("expected printable ASCII, found byte " + std::to_string(static_cast<unsigned char>(object[i])) +
             " at position " + std::to_string(i));
  }

 private:
  struct found_block {
    detail::object_header* header = nullptr;
    std::size_t bytes = 0;
  };

  /// Marks the segment manager as being modified for the scope's duration. The
  /// flag is only read by the next guard holder, after this holder's death:
  /// the robust mutex orders it, relaxed suffices.
  struct busy_scope {
    explicit busy_scope(detail::segment_header& h) noexcept : h_(h) { h_.manager_busy.store(1, std::memory_order_relaxed); }
    ~busy_scope() { h_.manager_busy.store(0, std::memory_order_relaxed); }
    busy_scope(const busy_scope&) = delete;
    busy_scope& operator=(const busy_scope&) = delete;
    detail::segment_header& h_;
  };

  detail::segment_header& header() const noexcept {
    return *std::launder(static_cast<detail::segment_header*>(region_.get_address()));
  }

  char* buffer_base() const noexcept { return static_cast<char*>(region_.get_address()) + detail::segment_header_bytes; }

  std::string what(const char* op) const { return std::string("procsync::named_segment: ") + op + " segment " + detail::quoted(name_); }

  void create(std::size_t size, ::mode_t permissions) {
    namespace bip = boost::interprocess;
    validate_name(name_);
    if (size < minimum_size())
      detail::throw_error(errc::segment_too_small, what("create") + ": " + std::to_string(size) +
                                                       " bytes requested, expected at least " +
                                                       std::to_string(minimum_size()));
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
    validate_name(name_);
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

  /// The message for a segment whose mode keeps this process out: who owns
  /// it, its mode, who we are, and what to change (the mode is the creator's
  /// choice, so the fix is on their side, or in which user runs us).
  std::string access_denied_message(const char* op) const {
    std::string m = what(op) + ": ";
    struct stat st {};
    // shm_open refused us, so stat the file by its path (never followed:
    // lstat) to say why; glibc keeps POSIX shared memory in /dev/shm.
    const std::string path = "/dev/shm" + detail::shm_object_path(name_);
    if (::lstat(path.c_str(), &st) != 0) {
      return m + "its mode does not allow this process (uid " + std::to_string(::geteuid()) +
             ") to read and write it; ask its creator to create it with permissions that include you "
             "(the `permissions` argument of create_only or open_or_create, e.g. 0660 for its group)";
    }
    char mode[8];
    std::snprintf(mode, sizeof mode, "0%03o", static_cast<unsigned>(st.st_mode & 07777));
    if (st.st_uid == ::geteuid())
      return m + "its mode " + mode + " does not let even its owner (this process, uid " +
             std::to_string(st.st_uid) + ") read and write it; it must be created with a mode that includes 0600 " +
             "(the `permissions` argument of create_only or open_or_create)";
    m += "it belongs to uid " + std::to_string(st.st_uid) + " (gid " + std::to_string(st.st_gid) + ") with mode " +
         mode + ", and this process is uid " + std::to_string(::geteuid()) + " (gid " +
         std::to_string(::getegid()) + "), which that mode does not allow to read and write it. Its creator chooses "
         "the mode: ask for one that includes you, passed as the `permissions` argument of create_only or "
         "open_or_create (e.g. 0660 for members of gid " + std::to_string(st.st_gid) + ", 0666 for every user; "
         "another user's segment is then opened with procsync::foreign_owner), or run this program as uid " +
         std::to_string(st.st_uid);
    return m;
  }

  /// Whether nothing has changed the file (created, resized, chmod: its
  /// ctime) for more than `limit`, on the real-time clock the kernel stamps
  /// it with. A clock stepped forward can only make an opener give up early
  /// on a segment whose creator is stalled anyway.
  static bool unchanged_for(const struct stat& st, std::chrono::milliseconds limit) noexcept {
    timespec now{};
    if (::clock_gettime(CLOCK_REALTIME, &now) != 0) return false;
    const auto changed = std::chrono::seconds(st.st_ctim.tv_sec) + std::chrono::nanoseconds(st.st_ctim.tv_nsec);
    const auto current = std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec);
    return current - changed > limit;
  }

  void open(std::chrono::milliseconds init_timeout, bool allow_foreign_owner = false) {
    namespace bip = boost::interprocess;
    validate_name(name_);
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + init_timeout;
    auto pause = std::chrono::microseconds(100);
    const auto wait_a_little = [&] {
      std::this_thread::sleep_for(pause);
      if (pause < std::chrono::milliseconds(10)) pause *= 2;
    };
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
      if (!S_ISREG(st.st_mode))
        detail::throw_error(errc::corrupt_segment, what("open") + ": not a regular file");
      if (st.st_uid != ::geteuid() && !allow_foreign_owner)
        detail::throw_error(errc::permission_denied,
                            what("open") + ": owned by uid " + std::to_string(st.st_uid) + ", expected uid " +
                                std::to_string(::geteuid()) +
                                " (another user's segment is not trusted by default: if you trust uid " +
                                std::to_string(st.st_uid) +
                                ", pass procsync::foreign_owner after the name to open_only, or after the size to "
                                "open_or_create)");
      // The creator sizes the object right after creating it, with one
      // ftruncate from 0 to its full size (at least a header).
      for (;;) {
        struct stat now {};
        if (::fstat(shm.get_mapping_handle().handle, &now) != 0) detail::throw_errno(errno, what("open") + ": fstat");
        const auto bytes = static_cast<std::size_t>(now.st_size);
        if (bytes >= detail::segment_header_bytes) break;
        if (bytes != 0)
          detail::throw_error(errc::corrupt_segment,
                              what("open") + ": not a procsync segment: it is " + std::to_string(bytes) +
                                  " bytes, and a procsync segment is never between 0 and its " +
                                  std::to_string(detail::segment_header_bytes) + "-byte header (another program's "
                                  "file? remove it or choose another name)");
        if (first_look && unchanged_for(now, init_timeout))
          detail::throw_error(errc::corrupt_segment,
                              what("open") + ": it is empty and has not changed for more than " +
                                  std::to_string(init_timeout.count()) +
                                  " ms: its creator died before sizing it, or it is not a procsync segment");
        first_look = false;
        if (std::chrono::steady_clock::now() >= deadline)
          detail::throw_error(errc::corrupt_segment,
                              what("open") + ": it is " + std::to_string(bytes) +
                                  " bytes, too small for a procsync segment header (" +
                                  std::to_string(detail::segment_header_bytes) + " bytes), still after " +
                                  std::to_string(init_timeout.count()) +
                                  " ms: its creator died before sizing it, or it is not a procsync segment");
        wait_a_little();
      }
      region_ = bip::mapped_region(shm, bip::read_write);
    } catch (const bip::interprocess_exception& e) {
      if (e.get_error_code() == bip::security_error)
        detail::throw_error(errc::permission_denied, access_denied_message("open"));
      detail::rethrow_boost(e, what("open"));
    }
    detail::segment_header& h = header();
    first_look = true;
    for (;;) {
      // Acquire: pairs with the creator's release, so the manager is visible.
      const std::uint64_t magic = h.magic.load(std::memory_order_acquire);
      if (magic == detail::segment_magic) break;
      if (magic != 0) {
        char found[20];
        std::snprintf(found, sizeof found, "%016llx", static_cast<unsigned long long>(magic));
        detail::throw_error(errc::corrupt_segment, what("open") + ": not a procsync segment (magic 0x" + found +
                                                       " found where procsync's is expected)");
      }
      // Acquire: pairs with the creator's release of its identity.
      const std::int32_t pid = h.creator_pid.load(std::memory_order_acquire);
      detail::process_identity creator{};
      creator.pid = pid;
      creator.start_time = h.creator_start_time;
      if (pid != 0 && !detail::process_alive(creator))
        detail::throw_error(errc::corrupt_segment, what("open") + ": its creator (process " + std::to_string(pid) +
                                                       ") died before initializing it; remove and create it again");
      // A creator records its pid right after sizing the file; a sized file
      // without one that nothing has touched for longer than we would wait
      // will never become a segment.
      if (pid == 0 && first_look) {
        struct stat st {};
        if (::fstat(shm.get_mapping_handle().handle, &st) == 0 && unchanged_for(st, init_timeout))
          detail::throw_error(errc::corrupt_segment,
                              what("open") + ": not a procsync segment: no procsync magic and no creator recorded, "
                                             "and the file has not changed for more than " +
                                  std::to_string(init_timeout.count()) + " ms");
      }
      first_look = false;
      if (std::chrono::steady_clock::now() >= deadline)
        detail::throw_error(errc::corrupt_segment,
                            what("open") + ": not initialized within " + std::to_string(init_timeout.count()) +
                                " ms (" + (pid != 0 ? "creator process " + std::to_string(pid) + " still running"
                                                    : std::string("no creator recorded: not a procsync segment?")) +
                                ")");
      wait_a_little();
    }
    if (h.format_version != detail::segment_format_version || h.header_bytes != detail::segment_header_bytes)
      detail::throw_error(errc::layout_mismatch,
                          what("open") + ": procsync segment format " + std::to_string(h.format_version) +
                              " with a " + std::to_string(h.header_bytes) + "-byte header found, expected format " +
                              std::to_string(detail::segment_format_version) + " with a " +
                              std::to_string(detail::segment_header_bytes) + "-byte header");
    if (h.total_size > region_.get_size() || h.total_size < minimum_size())
      detail::throw_error(errc::corrupt_segment, what("open") + ": header records " + std::to_string(h.total_size) +
                                                     " bytes, the segment has " + std::to_string(region_.get_size()));
    try {
      buffer_ = detail::segment_manager_buffer(bip::open_only, buffer_base(), h.total_size - detail::segment_header_bytes);
    } catch (const bip::interprocess_exception& e) {
      detail::rethrow_boost(e, what("open"));
    }
  }

  /// Runs `body` holding the segment's robust guard, first repairing what a
  /// holder that died left behind.
  template <class F>
  std::invoke_result_t<F&> guarded(F&& body) const {
    detail::segment_header& h = header();
    const auto hold = [&] {
      try {
        return detail::robust_guard(h.guard, [&] { recover(h); });
      } catch (const error& e) {
        if (e.code() == errc::not_recoverable)
          detail::throw_error(errc::corrupt_segment, what("use") + ": its guard lock is not recoverable");
        throw;
      }
    };
    const auto held = hold();
    if (h.corrupt.load(std::memory_order_relaxed) != 0)
      detail::throw_error(errc::corrupt_segment,
                          what("use") +
                              ": a process died inside its allocator, which may be inconsistent; remove and create it again");
    return body();
  }

  /// Called holding the guard after its previous holder died.
  void recover(detail::segment_header& h) const {
    if (h.manager_busy.load(std::memory_order_relaxed) != 0) {
      // The allocator may be half-updated; nothing can repair Boost's tree.
      h.corrupt.store(1, std::memory_order_relaxed);
    } else if (h.pending_block != 0) {
      // The holder died in an object's constructor: free that block.
      auto* block = reinterpret_cast<detail::object_unit*>(buffer_base() + (h.pending_block - 1));
      busy_scope busy(h);
      buffer_.destroy_ptr(block);
    }
    h.pending_block = 0;
  }

  found_block lookup(const std::string& oname) const {
    const auto [units, count] = buffer_.find<detail::object_unit>(oname.c_str());
    if (units == nullptr) return {};
    return {reinterpret_cast<detail::object_header*>(units), count * sizeof(detail::object_unit)};
  }

  template <class T>
  T& checked(const found_block& found, const std::string& oname) const {
    const detail::object_header& hdr = *found.header;
    const std::string kind = detail::kind_of<T>();
    const std::string where = "object " + detail::quoted(oname) + " in segment " + detail::quoted(name_);
    if (found.bytes < sizeof(detail::object_header) || hdr.magic != detail::object_magic ||
        hdr.state != static_cast<std::uint32_t>(detail::object_state::ready))
      detail::throw_error(errc::corrupt_segment, "procsync::named_segment::find: " + where +
                                                     " has no valid procsync object header (expected a " + kind + ")");
    if (!hdr.same_kind(kind))
      detail::throw_error(errc::wrong_object_kind,
                          "procsync::named_segment::find: " + where + " is a " + hdr.kind_for_message() + ", expected " + kind);
    constexpr std::uint32_t version = detail::layout_version_of<T>();
    if (hdr.layout_version != version)
      detail::throw_error(errc::layout_mismatch, "procsync::named_segment::find: " + where + " (" + kind +
                                                     ") has layout version " + std::to_string(hdr.layout_version) +
                                                     ", expected " + std::to_string(version));
    if (hdr.value_size != sizeof(T) || hdr.value_align != alignof(T))
      detail::throw_error(errc::layout_mismatch, "procsync::named_segment::find: " + where + " (" + kind + ") is " +
                                                     std::to_string(hdr.value_size) + " bytes aligned to " +
                                                     std::to_string(hdr.value_align) + ", expected " +
                                                     std::to_string(sizeof(T)) + " bytes aligned to " +
                                                     std::to_string(alignof(T)));
    char* value = reinterpret_cast<char*>(found.header) + hdr.value_offset;
    if (hdr.value_offset + sizeof(T) > found.bytes || reinterpret_cast<std::uintptr_t>(value) % alignof(T) != 0)
      detail::throw_error(errc::corrupt_segment, "procsync::named_segment::find: " + where + " has a bad value offset");
    return *std::launder(reinterpret_cast<T*>(value));
  }

  /// Allocates, constructs and publishes a T; called holding the guard.
  template <class T, class... Args>
  T& construct_unlocked(const std::string& oname, Args&&... args) {
    namespace bip = boost::interprocess;
    detail::segment_header& h = header();
    const std::string kind = detail::kind_of<T>();
    // Blocks are 8-aligned; a T aligned more strictly gets slack to align in.
    // Every mapping starts on a page boundary, so the offset chosen here
    // aligns the object in every process's mapping.
    static_assert(alignof(T) <= 4096, "objects in a named segment may be aligned to at most a page");
    constexpr std::size_t unit = sizeof(detail::object_unit);
    constexpr std::size_t slack = alignof(T) > unit ? alignof(T) - unit : 0;
    constexpr std::size_t needed =
        detail::round_up(sizeof(detail::object_header), alignof(T)) + slack + sizeof(T);
    const std::size_t count = (needed + unit - 1) / unit;
    detail::object_unit* units = nullptr;
    {
      busy_scope busy(h);
      try {
        units = buffer_.construct<detail::object_unit>(oname.c_str(), std::nothrow)[count]();
      } catch (const bip::interprocess_exception& e) {
        detail::rethrow_boost(e, what("construct in"));
      }
    }
    if (units == nullptr)
      detail::throw_error(errc::segment_too_small,
                          what("construct in") + ": object " + detail::quoted(oname) + " (" + kind + ", " +
                              std::to_string(count * unit) + " bytes with its header) does not fit; " +
                              std::to_string(buffer_.get_free_memory()) + " of " + std::to_string(size()) +
                              " bytes free");
    auto* block = reinterpret_cast<char*>(units);
    const std::uintptr_t address = reinterpret_cast<std::uintptr_t>(block) + sizeof(detail::object_header);
    const std::size_t offset =
        sizeof(detail::object_header) + (alignof(T) - address % alignof(T)) % alignof(T);
    auto* hdr = ::new (block) detail::object_header{};
    hdr->magic = detail::object_magic;
    hdr->set_kind(kind);
    hdr->value_size = sizeof(T);
    hdr->value_align = alignof(T);
    hdr->value_offset = static_cast<std::uint32_t>(offset);
    hdr->layout_version = detail::layout_version_of<T>();
    hdr->state = static_cast<std::uint32_t>(detail::object_state::constructing);
    h.pending_block = static_cast<std::uint64_t>(block - buffer_base()) + 1;
    T* object = nullptr;
    try {
      object = detail::place<T>(block + offset, std::forward<Args>(args)...);
    } catch (...) {
      busy_scope busy(h);
      buffer_.destroy_ptr(units);
      h.pending_block = 0;
      throw;
    }
    hdr->state = static_cast<std::uint32_t>(detail::object_state::ready);
    h.pending_block = 0;
    return *object;
  }

  std::string name_;
  boost::interprocess::mapped_region region_;
  mutable detail::segment_manager_buffer buffer_;
};

}  // namespace procsync
