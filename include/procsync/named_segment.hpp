// procsync/named_segment.hpp — shared memory that unrelated processes open
// by name.
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
//
// Every error message is written in detail/segment_messages.hpp.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <boost/interprocess/exceptions.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "detail/object_header.hpp"
#include "detail/placement.hpp"
#include "detail/robust_guard.hpp"
#include "detail/segment_header.hpp"
#include "detail/segment_mapping.hpp"
#include "detail/segment_messages.hpp"
#include "error.hpp"
#include "lock_status.hpp"

namespace procsync {

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

class named_segment {
 public:
  static constexpr std::size_t max_name_length = detail::segment_max_name_length;
  static constexpr std::size_t max_object_name_length = detail::segment_max_object_name_length;
  static constexpr ::mode_t default_permissions = 0600;
  static constexpr std::chrono::milliseconds default_init_timeout{10000};

  /// Creates segment `name` of exactly `size` bytes, readable and writable by
  /// `permissions` (exactly: not reduced by the umask).
  /// Throws errc::invalid_name, errc::segment_exists, errc::segment_too_small
  /// (size below minimum_size()), errc::permission_denied, or the errno of a
  /// failed system call. Nothing is left behind on failure.
  named_segment(create_only_t, std::string_view name, std::size_t size, ::mode_t permissions = default_permissions)
      : map_(name) {
    map_.create(size, permissions);
  }

  /// Opens segment `name`, waiting at most `init_timeout` for its creator to
  /// finish initializing it. Throws errc::invalid_name, errc::segment_not_found,
  /// errc::permission_denied (the mode forbids it, or the file belongs to
  /// another user: see foreign_owner), errc::corrupt_segment (not a procsync segment,
  /// garbage, or its creator died or did not finish in time),
  /// errc::layout_mismatch (another procsync segment format version).
  named_segment(open_only_t, std::string_view name, std::chrono::milliseconds init_timeout = default_init_timeout)
      : map_(name) {
    map_.open(init_timeout);
  }

  /// As open_only, and also opens a segment owned by another user (the
  /// caller trusts that user; the file's mode must still allow the access).
  named_segment(open_only_t, std::string_view name, foreign_owner_t,
                std::chrono::milliseconds init_timeout = default_init_timeout)
      : map_(name) {
    map_.open(init_timeout, true);
  }

  /// As open_only, and requires the segment to be at least `minimum_size`
  /// bytes (else errc::segment_too_small), so `(open_only, name, size)` mirrors
  /// the creator's call.
  named_segment(open_only_t, std::string_view name, std::size_t minimum_size,
                std::chrono::milliseconds init_timeout = default_init_timeout)
      : map_(name) {
    map_.open(init_timeout);
    if (size() < minimum_size) detail::throw_smaller_than(map_.name(), size(), minimum_size);
  }

  /// Opens segment `name` if it exists (its size stays what its creator chose;
  /// `size` and `permissions` are ignored), else creates it as create_only
  /// does. Safe when many processes race to do this. Errors: those of both.
  named_segment(open_or_create_t, std::string_view name, std::size_t size, ::mode_t permissions = default_permissions,
                std::chrono::milliseconds init_timeout = default_init_timeout)
      : map_(name) {
    map_.open_or_create(size, permissions, init_timeout, false);
  }

  /// As open_or_create, and when the segment exists, also opens it if it
  /// belongs to another user (see foreign_owner; the mode must still allow
  /// this process to read and write it). A segment it creates is its own.
  named_segment(open_or_create_t, std::string_view name, std::size_t size, foreign_owner_t,
                ::mode_t permissions = default_permissions,
                std::chrono::milliseconds init_timeout = default_init_timeout)
      : map_(name) {
    map_.open_or_create(size, permissions, init_timeout, true);
  }

  /// Moves the mapping; the moved-from object may only be destroyed or assigned to.
  named_segment(named_segment&&) noexcept = default;
  named_segment& operator=(named_segment&&) noexcept = default;
  /// Unmaps this process's view; the segment and its objects remain.
  ~named_segment() = default;

  /// The segment's name, as given.
  const std::string& name() const noexcept { return map_.name(); }

  /// Bytes in the whole segment (header and allocator bookkeeping included).
  std::size_t size() const noexcept { return map_.size(); }

  /// Bytes still available for objects (a new object needs its own size plus
  /// its header and allocator overhead: about 200 bytes plus its name).
  std::size_t free_memory() const {
    return guarded([&] { return static_cast<std::size_t>(map_.buffer().get_free_memory()); });
  }

  /// Where this process mapped the segment. Two named_segment objects for one
  /// name map it at different addresses; procsync objects work at any of them.
  void* address() const noexcept { return map_.address(); }

  /// The smallest size create_only accepts.
  static std::size_t minimum_size() noexcept { return detail::segment_minimum_size(); }

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
        detail::throw_object_exists(oname, map_.name(), found.header->kind_for_message());
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
      if (found.header == nullptr) detail::throw_object_not_found(oname, map_.name());
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
      busy_scope busy(map_.header());
      return map_.buffer().destroy<detail::object_unit>(oname.c_str());
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
  static void validate_name(std::string_view name) { detail::validate_segment_name(name); }

  /// Throws errc::invalid_name unless `object` is a valid object name.
  static void validate_object_name(std::string_view object) { detail::validate_object_name(object); }

 private:
  struct found_block {
    detail::object_header* header = nullptr;
    std::size_t bytes = 0;
  };

  /// Marks the segment manager as being modified for the scope's duration. The
  /// flag is only read by the next guard holder, after this holder's death:
  /// the robust mutex orders it, relaxed suffices.
  struct busy_scope {
    explicit busy_scope(detail::segment_header& h) noexcept : h_(h) {
      h_.manager_busy.store(1, std::memory_order_relaxed);
    }
    ~busy_scope() { h_.manager_busy.store(0, std::memory_order_relaxed); }
    busy_scope(const busy_scope&) = delete;
    busy_scope& operator=(const busy_scope&) = delete;
    detail::segment_header& h_;
  };

  /// Runs `body` holding the segment's robust guard, first repairing what a
  /// holder that died left behind.
  template <class F>
  std::invoke_result_t<F&> guarded(F&& body) const {
    detail::segment_header& h = map_.header();
    const auto hold = [&] {
      try {
        return detail::robust_guard(h.guard, [&] { recover(h); });
      } catch (const error& e) {
        if (e.code() == errc::not_recoverable) detail::throw_guard_not_recoverable(map_.what("use"));
        throw;
      }
    };
    const auto held = hold();
    if (h.corrupt.load(std::memory_order_relaxed) != 0) detail::throw_died_in_allocator(map_.what("use"));
    return body();
  }

  /// Called holding the guard after its previous holder died.
  void recover(detail::segment_header& h) const {
    if (h.manager_busy.load(std::memory_order_relaxed) != 0) {
      // The allocator may be half-updated; nothing can repair Boost's tree.
      h.corrupt.store(1, std::memory_order_relaxed);
    } else if (h.pending_block != 0) {
      // The holder died in an object's constructor: free that block.
      auto* block = reinterpret_cast<detail::object_unit*>(map_.buffer_base() + (h.pending_block - 1));
      busy_scope busy(h);
      map_.buffer().destroy_ptr(block);
    }
    h.pending_block = 0;
  }

  found_block lookup(const std::string& oname) const {
    const auto [units, count] = map_.buffer().find<detail::object_unit>(oname.c_str());
    if (units == nullptr) return {};
    return {reinterpret_cast<detail::object_header*>(units), count * sizeof(detail::object_unit)};
  }

  template <class T>
  T& checked(const found_block& found, const std::string& oname) const {
    const detail::object_header& hdr = *found.header;
    const detail::object_check_failure fail{
        "object " + detail::quoted(oname) + " in segment " + detail::quoted(map_.name()), detail::kind_of<T>()};
    if (found.bytes < sizeof(detail::object_header) || hdr.magic != detail::object_magic ||
        hdr.state != static_cast<std::uint32_t>(detail::object_state::ready))
      fail.no_header();
    if (!hdr.same_kind(fail.kind)) fail.wrong_kind(hdr.kind_for_message());
    constexpr std::uint32_t version = detail::layout_version_of<T>();
    if (hdr.layout_version != version) fail.wrong_version(hdr.layout_version, version);
    if (hdr.value_size != sizeof(T) || hdr.value_align != alignof(T))
      fail.wrong_size(hdr.value_size, hdr.value_align, sizeof(T), alignof(T));
    char* value = reinterpret_cast<char*>(found.header) + hdr.value_offset;
    if (hdr.value_offset + sizeof(T) > found.bytes || reinterpret_cast<std::uintptr_t>(value) % alignof(T) != 0)
      fail.bad_offset();
    return *std::launder(reinterpret_cast<T*>(value));
  }

  /// Allocates, constructs and publishes a T; called holding the guard.
  template <class T, class... Args>
  T& construct_unlocked(const std::string& oname, Args&&... args) {
    namespace bip = boost::interprocess;
    detail::segment_header& h = map_.header();
    const std::string kind = detail::kind_of<T>();
    // Blocks are 8-aligned; a T aligned more strictly gets slack to align in.
    // Every mapping starts on a page boundary, so the offset chosen here
    // aligns the object in every process's mapping.
    static_assert(alignof(T) <= 4096, "objects in a named segment may be aligned to at most a page");
    constexpr std::size_t unit = sizeof(detail::object_unit);
    constexpr std::size_t slack = alignof(T) > unit ? alignof(T) - unit : 0;
    constexpr std::size_t needed = detail::round_up(sizeof(detail::object_header), alignof(T)) + slack + sizeof(T);
    const std::size_t count = (needed + unit - 1) / unit;
    detail::object_unit* units = nullptr;
    {
      busy_scope busy(h);
      try {
        units = map_.buffer().construct<detail::object_unit>(oname.c_str(), std::nothrow)[count]();
      } catch (const bip::interprocess_exception& e) {
        detail::rethrow_boost(e, map_.what("construct in"));
      }
    }
    if (units == nullptr)
      detail::throw_does_not_fit(map_.what("construct in"), oname, kind, count * unit, map_.buffer().get_free_memory(),
                                 size());
    auto* block = reinterpret_cast<char*>(units);
    const std::uintptr_t address = reinterpret_cast<std::uintptr_t>(block) + sizeof(detail::object_header);
    const std::size_t offset = sizeof(detail::object_header) + (alignof(T) - address % alignof(T)) % alignof(T);
    auto* hdr = ::new (block) detail::object_header{};
    hdr->magic = detail::object_magic;
    hdr->set_kind(kind);
    hdr->value_size = sizeof(T);
    hdr->value_align = alignof(T);
    hdr->value_offset = static_cast<std::uint32_t>(offset);
    hdr->layout_version = detail::layout_version_of<T>();
    hdr->state = static_cast<std::uint32_t>(detail::object_state::constructing);
    h.pending_block = static_cast<std::uint64_t>(block - map_.buffer_base()) + 1;
    T* object = nullptr;
    try {
      object = detail::place<T>(block + offset, std::forward<Args>(args)...);
    } catch (...) {
      busy_scope busy(h);
      map_.buffer().destroy_ptr(units);
      h.pending_block = 0;
      throw;
    }
    hdr->state = static_cast<std::uint32_t>(detail::object_state::ready);
    h.pending_block = 0;
    return *object;
  }

  detail::segment_mapping map_;
};

}  // namespace procsync
