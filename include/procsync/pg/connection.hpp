// procsync/pg/connection.hpp — the connection state shared by a pg::session
// and every object made from it: the PGconn, error mapping, waiting without
// round trips, the name registry and what this session holds. Internal:
// the public API and its contract are in session.hpp.
#pragma once

#include <fcntl.h>
// libpq's header: on the include path given by `pkg-config --cflags libpq`, or
// (Debian, Fedora) under postgresql/ in the system include directory.
#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#elif __has_include(<postgresql/libpq-fe.h>)
#include <postgresql/libpq-fe.h>
#else
#error "procsync::pg needs libpq's header libpq-fe.h (Debian: apt-get install libpq-dev)"
#endif
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "../error.hpp"

namespace procsync::pg {

/// Longest accepted object name, in bytes.
inline constexpr std::size_t max_name_length = 200;

namespace detail {

using steady = std::chrono::steady_clock;

// Each kind of object has its own key space: key1 of the two-int4 advisory
// lock form and the `kind` column of procsync.names.
enum class kind : std::int32_t {
  schema = 0x70730000,
  mutex = 0x70730001,
  shared_mutex = 0x70730002,
  semaphore = 0x70730003,
  event = 0x70730004,
  shared_value = 0x70730005,
};

/// Counts forks in this process image (pthread_atfork, child side), so a
/// session notices it is in a forked child without a getpid() system call on
/// every operation.
inline std::atomic<unsigned>& fork_generation() noexcept {
  static std::atomic<unsigned> generation{0};
  return generation;
}
inline unsigned current_fork_generation() noexcept {
  static const bool registered = [] {
    ::pthread_atfork(nullptr, nullptr, [] { fork_generation().fetch_add(1, std::memory_order_relaxed); });
    return true;
  }();
  (void)registered;
  return fork_generation().load(std::memory_order_relaxed);
}

/// FNV-1a: a fixed, documented function, so every client maps a name to the
/// same key whatever its compiler or platform.
inline std::int32_t name_key(std::string_view name) noexcept {
  std::uint32_t h = 2166136261u;
  for (const unsigned char c : name) h = (h ^ c) * 16777619u;
  return static_cast<std::int32_t>(h);
}

/// Owns a PGresult.
struct result {
  PGresult* r = nullptr;
  result() = default;
  explicit result(PGresult* p) : r(p) {}
  result(result&& o) noexcept : r(std::exchange(o.r, nullptr)) {}
  result& operator=(result&& o) noexcept { std::swap(r, o.r); return *this; }
  ~result() { if (r) PQclear(r); }
  [[nodiscard]] const char* value(int row = 0, int col = 0) const { return PQgetvalue(r, row, col); }
  [[nodiscard]] bool boolean(int row = 0, int col = 0) const { return value(row, col)[0] == 't'; }
  [[nodiscard]] int rows() const { return PQntuples(r); }
};

/// The shared state of a session: the PGconn and what this session holds.
class connection {
 public:
  explicit connection(const std::string& conninfo) : generation_(current_fork_generation()) {
    char* err = nullptr;
    PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
    if (!opts) {
      const std::string why = err ? err : "out of memory";
      PQfreemem(err);
      throw error(errc::invalid_argument, "procsync::pg::session: bad conninfo: " + trim(why));
    }
    PQconninfoFree(opts);
    conn_ = PQconnectdb(conninfo.c_str());
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
      const std::string why = conn_ ? PQerrorMessage(conn_) : "out of memory";
      if (conn_) PQfinish(conn_);
      conn_ = nullptr;
      throw error(errc::connection_failed, "procsync::pg::session: cannot connect: " + trim(why));
    }
    if (PQserverVersion(conn_) < 140000) {
      PQfinish(conn_);
      conn_ = nullptr;
      throw error(errc::unsupported, "procsync::pg::session: PostgreSQL 14 or newer is required");
    }
    // Client-timed waits: a server-wide lock_timeout must not cut a lock() short.
    (void)exec("SET lock_timeout = 0; SET statement_timeout = 0", "session setup");
    backend_pid_ = PQbackendPID(conn_);
  }

  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  ~connection() {
    if (!conn_) return;
    if (forked()) {
      // A forked child: PQfinish would send the parent's backend a Terminate
      // message on the shared socket. Point our copy of the descriptor at
      // /dev/null first, so the goodbye goes nowhere and only our copy closes.
      const int fd = PQsocket(conn_);
      const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
      if (fd >= 0 && null >= 0) ::dup2(null, fd);
      if (null >= 0) ::close(null);
    }
    PQfinish(conn_);
  }

  /// Throws unless the session may talk to the server now.
  void usable() const {
    if (forked())
      throw error(errc::unsupported, "procsync::pg::session used in a forked child: open a new session there");
    if (broken_) throw error(errc::connection_lost, "procsync::pg::session: connection lost earlier: " + broken_why_);
  }

  /// May unlock()/release() talk to the server? False when broken or forked:
  /// then the server has released (or will release) everything anyway.
  [[nodiscard]] bool can_release() const noexcept { return !broken_ && !forked(); }

  [[nodiscard]] bool broken() const noexcept { return broken_; }
  [[nodiscard]] int backend_pid() const noexcept { return backend_pid_; }
  [[nodiscard]] PGconn* native() const noexcept { return conn_; }
  /// The SQLSTATE of the last statement that failed with a server error.
  [[nodiscard]] const std::string& last_sqlstate() const noexcept { return last_state_; }

  /// Runs `sql` (one or more statements, one round trip); throws on error.
  result exec(const std::string& sql, const char* what) {
    usable();
    return finish(PQexec(conn_, sql.c_str()), what);
  }

  /// One statement with text parameters; throws on error.
  result exec_params(const char* sql, std::initializer_list<std::string> params, const char* what) {
    usable();
    const char* values[8] = {};
    int n = 0;
    for (const auto& p : params) values[n++] = p.c_str();
    return finish(PQexecParams(conn_, sql, n, nullptr, values, nullptr, nullptr, 0), what);
  }

  /// Like exec(), for release paths: never throws; a lost connection marks the
  /// session broken. Returns the result, or an empty one on any failure.
  result exec_quiet(const std::string& sql) noexcept {
    if (!can_release()) return {};
    result r{PQexec(conn_, sql.c_str())};
    const auto st = r.r ? PQresultStatus(r.r) : PGRES_FATAL_ERROR;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      note_loss(r.r);
      return {};
    }
    return r;
  }

  /// Sends `sql` and waits for its result without a round trip while it
  /// waits, until `deadline` (none: forever). At the deadline the statement is
  /// cancelled: returns an empty result if the cancel took effect, the result
  /// if the statement completed first. Throws on any other error.
  result exec_until(const std::string& sql, const std::optional<steady::time_point>& deadline, const char* what) {
    usable();
    if (!PQsendQuery(conn_, sql.c_str())) finish(nullptr, what);
    bool cancelled = false;
    result first_error, last;
    for (;;) {
      while (!PQisBusy(conn_)) {
        PGresult* r = PQgetResult(conn_);
        if (!r) {
          if (PQstatus(conn_) == CONNECTION_BAD) finish(first_error.r ? std::exchange(first_error.r, nullptr) : nullptr, what);
          if (first_error.r) {
            const char* state = PQresultErrorField(first_error.r, PG_DIAG_SQLSTATE);
            if (cancelled && state && std::strcmp(state, "57014") == 0) return {};
            finish(std::exchange(first_error.r, nullptr), what);
          }
          return last;
        }
        const auto st = PQresultStatus(r);
        if (st == PGRES_FATAL_ERROR) {
          if (!first_error.r) first_error = result{r};
          else PQclear(r);
        } else {
          last = result{r};
        }
      }
      int timeout_ms = -1;
      if (deadline && !cancelled) {
        const auto now = steady::now();
        if (now >= *deadline) {
          cancel();
          cancelled = true;
        } else {
          // Round up: waking before the deadline only costs another loop.
          timeout_ms = static_cast<int>(
              std::chrono::ceil<std::chrono::milliseconds>(*deadline - now).count());
        }
      }
      pollfd p{PQsocket(conn_), POLLIN, 0};
      const int n = ::poll(&p, 1, timeout_ms);
      if (n < 0 && errno != EINTR) finish(nullptr, what);
      if (n > 0 && !PQconsumeInput(conn_)) finish(nullptr, what);
    }
  }

  /// Waits until a notification arrives or `deadline` passes; returns whether
  /// one arrived (for any channel: callers re-check their state, so a
  /// notification is only a hint and none can be lost). No round trip.
  bool wait_notification(const std::optional<steady::time_point>& deadline, const char* what) {
    usable();
    for (;;) {
      if (drain_notifications()) return true;
      int timeout_ms = -1;
      if (deadline) {
        const auto now = steady::now();
        if (now >= *deadline) return false;
        timeout_ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(*deadline - now).count());
      }
      pollfd p{PQsocket(conn_), POLLIN, 0};
      const int n = ::poll(&p, 1, timeout_ms);
      if (n < 0 && errno != EINTR) finish(nullptr, what);
      if (n > 0 && !PQconsumeInput(conn_)) finish(nullptr, what);
    }
  }

  /// Discards queued notifications; returns whether there were any.
  bool drain_notifications() noexcept {
    bool any = false;
    while (PGnotify* n = PQnotifies(conn_)) {
      PQfreemem(n);
      any = true;
    }
    return any;
  }

  /// Creates procsync's schema objects if missing (once per session).
  void ensure_schema() {
    if (schema_ready_) return;
    (void)exec(
        "DO $procsync$ BEGIN IF to_regclass('procsync.shared_values') IS NULL THEN "
        "PERFORM pg_advisory_xact_lock(1886584832, 0); "
        "CREATE SCHEMA IF NOT EXISTS procsync; "
        "CREATE TABLE IF NOT EXISTS procsync.names (kind integer NOT NULL, key integer NOT NULL, "
        "name text NOT NULL, param bigint NOT NULL, fence bigint NOT NULL DEFAULT 0, "
        "PRIMARY KEY (kind, key), UNIQUE (kind, name)); "
        "CREATE TABLE IF NOT EXISTS procsync.events (key integer PRIMARY KEY, is_set boolean NOT NULL DEFAULT false); "
        "CREATE TABLE IF NOT EXISTS procsync.shared_values (key integer PRIMARY KEY, type text NOT NULL, "
        "bytes bytea NOT NULL); "
        "END IF; END $procsync$",
        "creating the procsync schema");
    schema_ready_ = true;
  }

  /// Registers `name` of `k` (with its parameter, e.g. a semaphore's permit
  /// count) and returns its key. Refuses a name whose key another name of the
  /// same kind already has, and a parameter that differs from the registered one.
  std::int32_t register_name(kind k, std::string_view name, std::int64_t param, const char* type_label) {
    if (name.empty() || name.size() > max_name_length || name.find('\0') != std::string_view::npos)
      throw error(errc::invalid_name, std::string("procsync::pg::") + type_label + ": name must be 1.." +
                                          std::to_string(max_name_length) + " bytes without NUL, got " +
                                          std::to_string(name.size()) + " bytes");
    ensure_schema();
    const std::int32_t key = name_key(name);
    const std::string kind_s = std::to_string(static_cast<std::int32_t>(k)), key_s = std::to_string(key);
    for (int attempt = 0;; ++attempt) {
      // The CTE's SELECT cannot see the row its INSERT adds (one snapshot),
      // hence the UNION: one row comes back whether we inserted it or found it.
      // None comes back only if another client inserted it concurrently: retry.
      result r = exec_params(
          "WITH ins AS (INSERT INTO procsync.names (kind, key, name, param) VALUES ($1, $2, $3, $4) "
          "ON CONFLICT DO NOTHING RETURNING name, param) "
          "SELECT name, param FROM ins UNION ALL SELECT name, param FROM procsync.names WHERE kind = $1 AND key = $2",
          {kind_s, key_s, std::string(name), std::to_string(param)}, "registering a name");
      if (r.rows() == 0) {
        if (attempt < 10) continue;
        throw error(errc::server_error, "procsync::pg: name registration of '" + std::string(name) + "' kept racing");
      }
      if (name != r.value(0, 0))
        throw error(errc::name_collision, std::string("procsync::pg::") + type_label + " '" + std::string(name) +
                                              "' has the same key as the existing '" + r.value(0, 0) +
                                              "': choose another name");
      if (std::to_string(param) != r.value(0, 1))
        throw error(errc::layout_mismatch, std::string("procsync::pg::") + type_label + " '" + std::string(name) +
                                               "' exists with parameter " + r.value(0, 1) + ", not " +
                                               std::to_string(param));
      return key;
    }
  }

  /// Claims (kind, key) for one holder in this session: advisory locks are
  /// re-entrant within a session, so two objects of one name on one session
  /// would otherwise both "hold" the lock.
  void claim(kind k, std::int32_t key, const std::string& name) {
    if (!claims_.insert({static_cast<std::int32_t>(k), key}).second)
      throw error(errc::would_deadlock, "procsync::pg: '" + name +
                                            "' is already held through this session (another object or mode); "
                                            "use another session to wait for it");
  }
  void unclaim(kind k, std::int32_t key) noexcept { claims_.erase({static_cast<std::int32_t>(k), key}); }

  /// Permits of semaphore `key` this session holds (shared by every object of
  /// that name on this session).
  std::set<int>& permits(std::int32_t key) { return permits_[key]; }

 private:
  static std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }

  void cancel() noexcept {
    if (PGcancel* c = PQgetCancel(conn_)) {
      char err[256];
      (void)PQcancel(c, err, sizeof err);
      PQfreeCancel(c);
    }
  }

  bool forked() const noexcept { return current_fork_generation() != generation_; }

  static bool is_loss(const char* state) noexcept {
    return state && (std::strncmp(state, "08", 2) == 0 || std::strcmp(state, "57P01") == 0 ||
                     std::strcmp(state, "57P02") == 0 || std::strcmp(state, "57P03") == 0 ||
                     std::strcmp(state, "57P05") == 0);
  }

  void note_loss(PGresult* r) noexcept {
    const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    if (PQstatus(conn_) == CONNECTION_BAD || is_loss(state)) {
      broken_ = true;
      broken_why_ = trim(r && *PQresultErrorMessage(r) ? PQresultErrorMessage(r) : PQerrorMessage(conn_));
    }
  }

  /// Checks a result; throws the matching procsync::error on failure.
  result finish(PGresult* raw, const char* what) {
    result r{raw};
    const auto st = raw ? PQresultStatus(raw) : PGRES_FATAL_ERROR;
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) return r;
    note_loss(raw);
    if (broken_) throw error(errc::connection_lost, std::string("procsync::pg: connection lost during ") + what +
                                                        " (the server has released this session's locks): " +
                                                        broken_why_);
    const char* state = PQresultErrorField(raw, PG_DIAG_SQLSTATE);
    last_state_ = state ? state : "";
    const char* msg = PQresultErrorField(raw, PG_DIAG_MESSAGE_PRIMARY);
    const char* detail = PQresultErrorField(raw, PG_DIAG_MESSAGE_DETAIL);
    std::string text = std::string("procsync::pg: ") + what + ": " + (msg ? msg : trim(PQerrorMessage(conn_))) +
                       " (SQLSTATE " + (state ? state : "none") + ")";
    if (detail) text += "\nDETAIL: " + std::string(detail);
    errc code = errc::server_error;
    if (state && std::strcmp(state, "40P01") == 0) code = errc::deadlock_detected;
    else if (state && std::strcmp(state, "42501") == 0) code = errc::permission_denied;
    throw error(code, text);
  }

  PGconn* conn_ = nullptr;
  unsigned generation_;  // fork generation at connection time
  int backend_pid_ = 0;
  bool broken_ = false;
  bool schema_ready_ = false;
  std::string broken_why_;
  std::string last_state_;
  std::set<std::pair<std::int32_t, std::int32_t>> claims_;
  std::map<std::int32_t, std::set<int>> permits_;
};

}  // namespace detail

}  // namespace procsync::pg
