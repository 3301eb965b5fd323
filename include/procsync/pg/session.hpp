// procsync/pg/session.hpp — one connection to PostgreSQL, the engine behind
// procsync::pg's locks.
//
// procsync::pg gives processes on several machines the shapes procsync gives
// processes on one machine (mutex, shared_mutex, counting_semaphore, event,
// shared_value), backed by a PostgreSQL server instead of shared memory:
//
//   procsync::pg::session s{"host=/run/postgresql dbname=app"};
//   procsync::pg::mutex m{s, "orders"};
//   { std::lock_guard g(m); ... }
//
// Why PostgreSQL: its session-level advisory locks are released by the server
// the moment a client's session ends (a killed client, a cut network once TCP
// keepalives notice, a server-side timeout), which is the robustness a
// kernel robust list gives procsync::mutex; its lock manager detects
// deadlocks between sessions; LISTEN/NOTIFY wakes waiters without polling.
//
// A session is one libpq connection (one server backend). Every lock, permit
// and event subscription taken through it belongs to it, and the server
// releases them all when the connection ends.
//
// Connection loss. When the connection breaks (server restart, failover,
// pg_terminate_backend, idle_session_timeout, network), the server has already
// released everything the session held. The session then becomes *broken* for
// good: the next operation that needs the server (lock, try_lock*, acquire,
// set, load, check(), ...) throws procsync::error with errc::connection_lost,
// and so does every later one. It never reconnects by itself: a silent
// reconnect would hide from a holder that it lost its locks. Make a new
// session. unlock()/release() never throw for a lost connection (guards call
// them from destructors): there is nothing left to release.
//
// Requirements and limits:
//  - One thread at a time uses a session and the objects made from it (as with
//    a PGconn). Use one session per thread for concurrency.
//  - A session may not be used in a child made by fork(): the child shares the
//    parent's socket. Any use there throws errc::unsupported; the child opens
//    its own session. (Destroying it in the child leaves the parent's
//    connection alone.)
//  - Objects made from a session share its connection (reference-counted), so
//    they stay valid if the session object is moved or destroyed first.
//  - The server must be PostgreSQL 14 or newer (idle_session_timeout).
//
// Schema objects. On the first object made through a session, procsync
// creates, if missing, a schema `procsync` with three tables: `names` (each
// name's kind, key, parameter and fencing counter), `events` and
// `shared_values`. The first user needs CREATE on the database (or an
// administrator runs it once); afterwards users need USAGE on the schema and
// SELECT, INSERT, UPDATE on its tables. Advisory lock keys used: the
// two-int4 form with key1 in 0x70730000..0x70730005, and the int8 form with
// the top 16 bits 0x7073 (semaphore permits). Keep your own advisory locks
// out of these ranges.
//
// Server-side settings. A session sets lock_timeout and statement_timeout to 0
// (lock waits are timed by the client, never cut short by the server). To let
// the server end the session of a client that stops responding while it holds
// a lock (paused, swapped out, its machine gone quiet), set
// idle_session_timeout and TCP keepalives in the conninfo, e.g.
// "... options='-c idle_session_timeout=30s' keepalives_idle=10". Such a
// holder may wake up after its locks were handed to someone else: that is
// what mutex::fencing_token() is for.
#pragma once

#include <memory>
#include <string>

#include "../error.hpp"
#include "connection.hpp"

namespace procsync::pg {

/// A connection to the PostgreSQL server; see the top of this file.
class session {
 public:
  /// Connects. `conninfo` is a libpq connection string or URI
  /// ("host=/run/postgresql dbname=app", "postgresql://u@db:5432/app").
  /// Throws errc::invalid_argument for a malformed conninfo,
  /// errc::connection_failed if the server cannot be reached or refuses us
  /// (the message is libpq's), errc::unsupported for a server older than 14.
  explicit session(const std::string& conninfo) : state_(std::make_shared<detail::connection>(conninfo)) {}

  /// Moves the connection; the moved-from session may only be destroyed or
  /// assigned. Objects made from it keep working.
  session(session&&) noexcept = default;
  session& operator=(session&&) noexcept = default;

  /// One round trip to the server. Throws errc::connection_lost if the
  /// connection is gone (then every lock this session held has been released
  /// by the server). A holder calls it before a critical write; see also
  /// mutex::fencing_token(), which protects the write even when the check
  /// passes and the holder is paused right after.
  void check() { (void)conn().exec("SELECT 1", "session::check"); }

  /// True once a loss was noticed (no round trip; check() asks the server).
  [[nodiscard]] bool broken() const noexcept { return state_ && state_->broken(); }

  /// The server process id of this session (pg_stat_activity.pid).
  [[nodiscard]] int backend_pid() const noexcept { return state_ ? state_->backend_pid() : 0; }

  /// The libpq connection, for statements of your own. Do not change the
  /// session's advisory locks, LISTEN state or lock_timeout through it.
  [[nodiscard]] PGconn* native_handle() const noexcept { return state_ ? state_->native() : nullptr; }

  /// The shared state (used by the primitives).
  [[nodiscard]] const std::shared_ptr<detail::connection>& shared_state() const {
    if (!state_) throw error(errc::invalid_argument, "procsync::pg::session: use of a moved-from session");
    return state_;
  }

 private:
  detail::connection& conn() const { return *shared_state(); }
  std::shared_ptr<detail::connection> state_;
};

}  // namespace procsync::pg
