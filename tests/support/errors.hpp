// tests/support/errors.hpp — asserting on procsync errors.
#pragma once

#include <string>

#include <procsync/error.hpp>

namespace procsync_test {

/// Runs `f` and returns the errc of the procsync::error it threw, or errc{} (0)
/// when it threw nothing; the message goes to `*what` when asked for. An error
/// of another category (a failed syscall's errno) maps to -errno, which equals
/// no errc, so it can never pass for one.
template <class F>
procsync::errc error_of(F&& f, std::string* what = nullptr) {
  try {
    f();
  } catch (const procsync::error& e) {
    if (what != nullptr) *what = e.what();
    if (e.code().category() != procsync::error_category()) return static_cast<procsync::errc>(-e.code().value());
    return static_cast<procsync::errc>(e.code().value());
  }
  return procsync::errc{};
}

}  // namespace procsync_test
