// procsync/error.hpp — the one exception type procsync throws, and its codes.
//
// Every failure procsync reports is a procsync::error, a std::system_error whose
// code() is either a procsync::errc (misuse, robustness, validation) or a plain
// errno value from a failed system call (std::generic_category). The message
// always says what was expected and what was found, so a log line is enough to
// diagnose the problem without a debugger.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <cerrno>
#include <string>
#include <type_traits>
#include <system_error>

namespace procsync {

/// Conditions procsync detects itself. Values are stable: they may be logged.
enum class errc {
  // --- misuse ---------------------------------------------------------------
  not_owner = 1,          ///< unlock/consistent() by a thread that does not hold the lock
  would_deadlock,         ///< relocking a non-recursive mutex the caller already holds
  semaphore_overflow,     ///< release() would raise the count above max()
  invalid_argument,       ///< a parameter is out of its documented range
  already_started,        ///< process::start() called twice
  not_started,            ///< join()/terminate() on a process that never started
  daemon_children,        ///< a daemon process tried to start a child
  // --- robustness ------------------------------------------------------------
  owner_dead,             ///< the previous owner died holding the lock (thrown by predicate waits; robust calls return lock_status::owner_died)
  not_recoverable,        ///< owner died and nobody called consistent(): the lock is poisoned
  barrier_broken,         ///< the barrier was aborted, timed out, or a party died
  deadlock_detected,      ///< this waiter was chosen as the victim of a real deadlock
  lock_order_violation,   ///< this acquisition would close a cycle in the lock order
  // --- segments and objects -------------------------------------------------
  invalid_name,           ///< empty, too long, contains '/', or not printable
  segment_not_found,      ///< open of a named segment that does not exist
  segment_exists,         ///< create-only of a segment that already exists
  segment_too_small,      ///< the segment cannot hold what was asked for
  object_not_found,       ///< find of a named object that does not exist
  object_exists,          ///< construct of a named object that already exists
  wrong_object_kind,      ///< the named object is of another type
  layout_mismatch,        ///< the object or segment has another layout version or size
  corrupt_segment,        ///< the segment's bytes fail validation
  permission_denied,      ///< the segment belongs to another user or mode forbids access
  unsupported,            ///< the platform lacks something procsync needs
  undo_slots_exhausted,   ///< every undo slot of a semaphore is held by a live process
  not_parent,             ///< join/is_alive/exitcode on a child by a process that did not start it
  // --- queues ----------------------------------------------------------------
  message_too_large,      ///< a message longer than the queue's MaxMessageBytes
  buffer_too_small,       ///< a receive buffer shorter than the next message (which stays queued)
  queue_closed,           ///< send/push after close(), or receive/pop of a closed, drained queue
  // --- procsync::pg (PostgreSQL backend) -------------------------------------
  connection_lost,        ///< the session's connection broke: the server released all it held
  connection_failed,      ///< a pg::session could not connect (server down, refused, bad auth)
  server_error,           ///< any other SQL error; what() has the server's message and SQLSTATE
  name_collision,         ///< two names of one kind map to the same key: the second is refused
};

}  // namespace procsync

// Lets a procsync::errc convert to std::error_code, so
// `e.code() == procsync::errc::not_owner` compiles and compares category + value.
template <>
struct std::is_error_code_enum<procsync::errc> : std::true_type {};

namespace procsync {
namespace detail {

class error_category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "procsync"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::not_owner: return "operation by a thread that does not own the lock";
      case errc::would_deadlock: return "the calling thread already holds this lock";
      case errc::semaphore_overflow: return "semaphore released too many times";
      case errc::invalid_argument: return "invalid argument";
      case errc::already_started: return "process already started";
      case errc::not_started: return "process not started";
      case errc::daemon_children: return "daemonic processes are not allowed to have children";
      case errc::owner_dead: return "previous owner died holding the lock";
      case errc::not_recoverable: return "lock is not recoverable";
      case errc::barrier_broken: return "barrier is broken";
      case errc::deadlock_detected: return "deadlock detected";
      case errc::lock_order_violation: return "lock order violation";
      case errc::invalid_name: return "invalid name";
      case errc::segment_not_found: return "shared memory segment not found";
      case errc::segment_exists: return "shared memory segment already exists";
      case errc::segment_too_small: return "shared memory segment too small";
      case errc::object_not_found: return "object not found in segment";
      case errc::object_exists: return "object already exists in segment";
      case errc::wrong_object_kind: return "object is of another kind";
      case errc::layout_mismatch: return "object layout version or size mismatch";
      case errc::corrupt_segment: return "corrupt shared memory segment";
      case errc::permission_denied: return "permission denied";
      case errc::unsupported: return "unsupported on this platform";
      case errc::undo_slots_exhausted: return "semaphore undo slots exhausted";
      case errc::not_parent: return "only the process that started a child may wait for it";
      case errc::connection_lost: return "connection to the server lost";
      case errc::connection_failed: return "cannot connect to the server";
      case errc::server_error: return "server error";
      case errc::name_collision: return "name collides with another name's key";
      case errc::message_too_large: return "message longer than the queue's maximum message size";
      case errc::buffer_too_small: return "receive buffer shorter than the next message";
      case errc::queue_closed: return "queue closed";
    }
    return "unknown procsync error " + std::to_string(value);
  }
};

/// The one instance, initialized before main() (a namespace-scope variable, not
/// a function-local static: a fork while another thread sits in a guarded
/// first-use initialisation would leave the child waiting on that guard).
inline const error_category error_category_instance{};

}  // namespace detail

/// The category of every procsync::errc (name "procsync").
inline const std::error_category& error_category() noexcept { return detail::error_category_instance; }

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// procsync's exception: a std::system_error, so callers may catch either and
/// compare `e.code() == procsync::errc::not_owner`.
class error : public std::system_error {
 public:
  error(errc code, const std::string& what) : std::system_error(make_error_code(code), what) {}
  error(std::error_code code, const std::string& what) : std::system_error(code, what) {}
};

namespace detail {

/// Throws procsync::error for a failed system call: `what` names the call and
/// its object, the error code is the errno value.
[[noreturn, gnu::cold, gnu::noinline]] inline void throw_errno(int err, const std::string& what) {
  throw error(std::error_code(err, std::generic_category()), what);
}

/// Throws procsync::error with `code`; `what` says what was expected and found.
[[noreturn, gnu::cold, gnu::noinline]] inline void throw_error(errc code, const std::string& what) {
  throw error(code, what);
}

}  // namespace detail
}  // namespace procsync
