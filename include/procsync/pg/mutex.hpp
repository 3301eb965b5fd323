// procsync/pg/mutex.hpp — a mutex and a reader/writer lock shared by processes
// on any machines that reach one PostgreSQL server.
//
// pg::mutex meets Lockable and TimedLockable, so std::lock_guard,
// std::unique_lock and std::scoped_lock work, and code written against those
// concepts works with procsync::mutex and pg::mutex alike:
//
//   template <class Lockable> void deposit(Lockable& m, long& balance) {
//     std::lock_guard g(m);  // procsync::mutex or procsync::pg::mutex
//     ++balance;
//   }
//
// It is a session-level advisory lock, pg_advisory_lock(key1, key2), with key1
// the kind's namespace and key2 the name's key (see session.hpp).
//
// Robustness: the lock belongs to the session. If the holder dies (SIGKILL,
// crash, machine loss noticed by TCP keepalives, idle_session_timeout), the
// server releases it at once and the next waiter gets it. Unlike
// procsync::mutex there is no "owner died" report: the server does not tell
// the next holder. Protect data that can be left half-written with a
// transaction, or keep it in a pg::shared_value (committed all at once).
//
// Fencing tokens: why. A holder can outlive its session: it is paused (GC,
// SIGSTOP, swap, a VM migration) long enough for the server to end its
// session and give the lock to another client, then wakes up believing it
// still holds the lock and writes. No lock service can prevent this; the
// resource it protects can refuse the stale write. fencing_token() returns a
// number that is strictly greater for every later hold of this name, by any
// client. Send it with each write and have the resource reject tokens lower
// than the highest it has seen:
//
//   std::lock_guard g(m);
//   const auto token = m.fencing_token();
//   exec("UPDATE accounts SET balance = $1, token = $2 WHERE id = 7 AND token <= $2", ...);
//
// Costs: lock (uncontended), try_lock and unlock are one round trip each; a
// blocked lock() costs no round trip while it waits (the server answers when
// it grants the lock); fencing_token() costs one round trip the first time it
// is called during a hold, none after.
//
// Deadlocks between sessions are detected by the server: the victim's lock()
// throws errc::deadlock_detected with the server's DETAIL (who waits for
// whom) in what(). The victim keeps every lock it already held; it typically
// unlocks them (guards do) and retries.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "../detail/clock.hpp"
#include "session.hpp"

namespace procsync::pg {

namespace detail {

/// One advisory lock, exclusive or shared, in a namespace of its own: the
/// common core of mutex and shared_mutex.
class advisory_lock {
 public:
  advisory_lock(const session& s, std::string_view name, kind k, const char* label)
      : c_(s.shared_state()), name_(name), kind_(k), label_(label) {
    key_ = c_->register_name(k, name, 0, label);
    // Built once: a lock or unlock allocates nothing on the client.
    const std::string args = "(" + std::to_string(static_cast<std::int32_t>(k)) + ", " + std::to_string(key_) + ")";
    for (int shared = 0; shared < 2; ++shared) {
      const std::string mode = shared ? "_shared" : "";
      lock_sql_[shared] = "SELECT pg_advisory_lock" + mode + args;
      try_sql_[shared] = "SELECT pg_try_advisory_lock" + mode + args;
      unlock_sql_[shared] = "SELECT pg_advisory_unlock" + mode + args;
    }
  }
  advisory_lock(const advisory_lock&) = delete;
  advisory_lock& operator=(const advisory_lock&) = delete;
  ~advisory_lock() { release_noexcept(); }

  void acquire(bool shared, const std::optional<steady::time_point>& deadline) {
    c_->usable();
    c_->claim(kind_, key_, name_);
    try {
      if (deadline && steady::now() >= *deadline) {
        // A deadline already passed: one attempt, never a wait.
        if (!c_->exec(try_sql_[shared], what_lock()).boolean()) {
          c_->unclaim(kind_, key_);
          return;
        }
      } else {
        result r = c_->exec_until(lock_sql_[shared], deadline, what_lock());
        if (!r.r) {  // cancelled at the deadline
          c_->unclaim(kind_, key_);
          return;
        }
      }
    } catch (...) {
      c_->unclaim(kind_, key_);
      throw;
    }
    held_ = shared ? 2 : 1;
    token_ = 0;
  }

  bool try_acquire(bool shared) {
    c_->usable();
    c_->claim(kind_, key_, name_);
    bool got = false;
    try {
      got = c_->exec(try_sql_[shared], what_lock()).boolean();
    } catch (...) {
      c_->unclaim(kind_, key_);
      throw;
    }
    if (!got) c_->unclaim(kind_, key_);
    else {
      held_ = shared ? 2 : 1;
      token_ = 0;
    }
    return got;
  }

  void release(bool shared) {
    if (held_ != (shared ? 2 : 1))
      throw error(errc::not_owner, std::string("procsync::pg::") + label_ + " '" + name_ + "': " +
                                       (shared ? "unlock_shared" : "unlock") + " without holding it" +
                                       (held_ ? " in that mode" : ""));
    release_noexcept();
  }

  std::uint64_t fence() {
    if (held_ != 1)
      throw error(errc::not_owner, std::string("procsync::pg::") + label_ + " '" + name_ +
                                       "': fencing_token() requires holding the lock");
    if (token_ == 0) {
      result r = c_->exec("UPDATE procsync.names SET fence = fence + 1 WHERE kind = " +
                              std::to_string(static_cast<std::int32_t>(kind_)) + " AND key = " + std::to_string(key_) +
                              " RETURNING fence",
                          "fencing_token");
      if (r.rows() != 1)
        throw error(errc::server_error, "procsync::pg: fencing counter row missing for '" + name_ + "'");
      token_ = std::strtoull(r.value(), nullptr, 10);
    }
    return token_;
  }

  [[nodiscard]] int held() const noexcept { return held_; }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }

 private:
  const char* what_lock() const noexcept { return label_; }

  void release_noexcept() noexcept {
    if (!held_) return;
    const bool shared = held_ == 2;
    held_ = 0;
    c_->unclaim(kind_, key_);
    // A lost connection has released it already: nothing to report here.
    (void)c_->exec_quiet(unlock_sql_[shared]);
  }

  std::shared_ptr<connection> c_;
  std::string name_;
  kind kind_;
  const char* label_;
  std::int32_t key_ = 0;
  std::string lock_sql_[2], try_sql_[2], unlock_sql_[2];  // [0] exclusive, [1] shared
  int held_ = 0;  // 0 free, 1 exclusive, 2 shared (by this object)
  std::uint64_t token_ = 0;
};

}  // namespace detail

namespace detail {

/// The exclusive side, the same for pg::mutex and pg::shared_mutex's writers:
/// written once here, documented for both.
class exclusive_side {
 public:
  /// Blocks until held. Throws errc::would_deadlock if this session already
  /// holds the name (through this or another object: advisory locks are
  /// re-entrant per session, so two holders would be silently merged; for a
  /// shared_mutex, also when it holds the name shared),
  /// errc::deadlock_detected if the server picked this waiter as a deadlock
  /// victim (it keeps its other locks), errc::connection_lost.
  void lock() { core_.acquire(false, std::nullopt); }

  /// Takes the lock if it is free now. One round trip; same errors as lock().
  [[nodiscard]] bool try_lock() { return core_.try_acquire(false); }

  /// Waits at most `timeout` (steady_clock); never returns false early, and
  /// at most a few ms late (the wait is cancelled on the server).
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    return try_lock_until(procsync::detail::deadline_after(timeout));
  }
  template <class Clock, class Duration>
  [[nodiscard]] bool try_lock_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    core_.acquire(false, procsync::detail::to_steady(deadline));
    return core_.held() == 1;
  }

  /// Releases. Throws errc::not_owner if this object does not hold it
  /// exclusively; never throws for a lost connection (the server released it
  /// already).
  void unlock() { core_.release(false); }

  /// While held: a number strictly greater than any returned for an earlier
  /// hold of this name by any client (see the top of this file). Throws
  /// errc::not_owner when not held, errc::connection_lost if the session is
  /// gone (then the lock is gone too).
  [[nodiscard]] std::uint64_t fencing_token() { return core_.fence(); }

  [[nodiscard]] const std::string& name() const noexcept { return core_.name(); }

 protected:
  exclusive_side(const session& s, std::string_view name, kind k, const char* label) : core_(s, name, k, label) {}
  ~exclusive_side() = default;  // releases the lock if this object still holds it (never throws)

  advisory_lock core_;
};

}  // namespace detail

/// An exclusive lock named `name`, shared by every client of the server.
/// lock, try_lock, try_lock_for/until, unlock, fencing_token, name: see
/// detail::exclusive_side above.
class mutex : public detail::exclusive_side {
 public:
  /// Registers `name` (1..max_name_length bytes) on first use by any client.
  /// Throws errc::invalid_name, errc::name_collision (another mutex name has
  /// the same key), errc::connection_lost, errc::server_error.
  mutex(const session& s, std::string_view name) : exclusive_side(s, name, detail::kind::mutex, "mutex") {}

  /// Whether this object holds the lock (as far as the client knows; a lost
  /// connection shows at the next operation or session::check()).
  [[nodiscard]] bool owned() const noexcept { return core_.held() == 1; }
};

/// A reader/writer lock named `name` (std::shared_mutex's shape). The server
/// queues requests: a waiting writer blocks later readers, so writers do not
/// starve. A dead reader or writer is released with its session. The
/// exclusive side (lock ... fencing_token) is mutex's, detail::exclusive_side;
/// a session holds a name in one mode at a time (errc::would_deadlock otherwise).
class shared_mutex : public detail::exclusive_side {
 public:
  /// Same as mutex's constructor; shared_mutex names are a namespace of their own.
  shared_mutex(const session& s, std::string_view name)
      : exclusive_side(s, name, detail::kind::shared_mutex, "shared_mutex") {}

  /// Shared ownership: any number of sessions at once, none while a writer
  /// holds or waits. Same errors as lock().
  void lock_shared() { core_.acquire(true, std::nullopt); }
  [[nodiscard]] bool try_lock_shared() { return core_.try_acquire(true); }
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_shared_for(const std::chrono::duration<Rep, Period>& timeout) {
    return try_lock_shared_until(procsync::detail::deadline_after(timeout));
  }
  template <class Clock, class Duration>
  [[nodiscard]] bool try_lock_shared_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    core_.acquire(true, procsync::detail::to_steady(deadline));
    return core_.held() == 2;
  }
  /// Throws errc::not_owner unless this object holds it shared.
  void unlock_shared() { core_.release(true); }
};

}  // namespace procsync::pg
