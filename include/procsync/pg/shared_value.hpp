// procsync/pg/shared_value.hpp — a value shared by processes on any machines
// that reach one PostgreSQL server (Python's multiprocessing.Value, remote).
//
//   procsync::pg::shared_value<long> total{s, "total", 0};
//   total.update([](long t) { return t + 1; });   // an exact cross-client += 1
//   long now = total.load();
//
// The value is a row of procsync.shared_values (its bytes and its type's
// identity). Every change is a committed transaction, so a client killed in
// the middle of store() or update() leaves the last committed value: never a
// torn or half-updated one (the server rolls the open transaction back when
// the session ends).
//
// T must be trivially copyable, and every client must use the same T: the row
// records the type (its ABI name and size) and opening it as another type
// throws errc::wrong_object_kind. Clients on other CPU architectures would see
// other byte orders: store portable types (fixed-width integers, same endianness).
#pragma once

#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>

#include "session.hpp"

namespace procsync::pg {

template <class T>
class shared_value {
  static_assert(std::is_trivially_copyable_v<T>, "procsync::pg::shared_value<T> requires a trivially copyable T");

 public:
  /// Opens the value `name`, creating it with `initial` if new (an existing
  /// value keeps its contents). Throws errc::wrong_object_kind if it exists
  /// with another T, and mutex's constructor's errors.
  shared_value(const session& s, std::string_view name, const T& initial = T{})
      : c_(s.shared_state()), name_(name) {
    key_ = c_->register_name(detail::kind::shared_value, name, 0, "shared_value");
    key_s_ = std::to_string(key_);
    const std::string type = type_label();
    detail::result r = c_->exec_params(
        "WITH ins AS (INSERT INTO procsync.shared_values (key, type, bytes) VALUES ($1, $2, decode($3, 'hex')) "
        "ON CONFLICT DO NOTHING RETURNING type) "
        "SELECT type FROM ins UNION ALL SELECT type FROM procsync.shared_values WHERE key = $1",
        {key_s_, type, hex(initial)}, "shared_value");
    // No row: another client created it concurrently; read its type again.
    if (r.rows() == 0) r = c_->exec("SELECT type FROM procsync.shared_values WHERE key = " + key_s_, "shared_value");
    if (r.rows() != 1 || type != r.value())
      throw error(errc::wrong_object_kind, "procsync::pg::shared_value '" + name_ + "' holds type " +
                                               (r.rows() ? r.value() : "?") + ", opened as " + type);
  }
  shared_value(const shared_value&) = delete;
  shared_value& operator=(const shared_value&) = delete;

  /// The last committed value. One round trip.
  [[nodiscard]] T load() {
    return decode(c_->exec("SELECT encode(bytes, 'hex') FROM procsync.shared_values WHERE key = " + key_s_,
                           "shared_value::load"));
  }

  /// Replaces the value (one committed statement, one round trip).
  void store(const T& v) {
    (void)c_->exec("UPDATE procsync.shared_values SET bytes = decode('" + hex(v) + "', 'hex') WHERE key = " + key_s_,
                   "shared_value::store");
  }

  /// value = fn(value), as one transaction: fn sees the last committed value
  /// and its result is committed only if nobody committed another value in
  /// between; otherwise (serialization failure, SQLSTATE 40001) it is rolled
  /// back and fn runs again on the new value. Returns the value committed.
  /// fn must not use this session. If fn throws, nothing is changed and the
  /// exception propagates. Two round trips per attempt; nobody is blocked
  /// while fn runs (REPEATABLE READ, no row lock until the UPDATE).
  template <class F>
  T update(F&& fn) {
    for (;;) {
      T next;
      try {
        const T current = decode(c_->exec(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; "
            "SELECT encode(bytes, 'hex') FROM procsync.shared_values WHERE key = " + key_s_,
            "shared_value::update"));
        next = static_cast<T>(fn(current));
        (void)c_->exec("UPDATE procsync.shared_values SET bytes = decode('" + hex(next) + "', 'hex') WHERE key = " +
                           key_s_ + "; COMMIT",
                       "shared_value::update");
        return next;
      } catch (const error& e) {
        (void)c_->exec_quiet("ROLLBACK");
        if (e.code() == errc::server_error && c_->last_sqlstate() == "40001") continue;
        throw;
      } catch (...) {
        (void)c_->exec_quiet("ROLLBACK");
        throw;
      }
    }
  }

  [[nodiscard]] const std::string& name() const noexcept { return name_; }

 private:
  static std::string type_label() { return std::string(typeid(T).name()) + "/" + std::to_string(sizeof(T)); }

  static std::string hex(const T& v) {
    static constexpr char digits[] = "0123456789abcdef";
    unsigned char bytes[sizeof(T)];
    std::memcpy(bytes, &v, sizeof(T));
    std::string out;
    out.reserve(2 * sizeof(T));
    for (const unsigned char b : bytes) {
      out += digits[b >> 4];
      out += digits[b & 15];
    }
    return out;
  }

  T decode(const detail::result& r) const {
    const char* text = r.rows() == 1 ? r.value() : "";
    if (std::strlen(text) != 2 * sizeof(T))
      throw error(errc::layout_mismatch, "procsync::pg::shared_value '" + name_ + "': stored value has " +
                                             std::to_string(std::strlen(text) / 2) + " bytes, expected " +
                                             std::to_string(sizeof(T)));
    unsigned char bytes[sizeof(T)];
    auto nibble = [](char c) { return static_cast<unsigned char>(c <= '9' ? c - '0' : c - 'a' + 10); };
    for (std::size_t i = 0; i < sizeof(T); ++i)
      bytes[i] = static_cast<unsigned char>(nibble(text[2 * i]) << 4 | nibble(text[2 * i + 1]));
    T v;
    std::memcpy(&v, bytes, sizeof(T));
    return v;
  }

  std::shared_ptr<detail::connection> c_;
  std::string name_;
  std::int32_t key_ = 0;
  std::string key_s_;
};

}  // namespace procsync::pg
