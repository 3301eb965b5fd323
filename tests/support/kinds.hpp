// tests/support/kinds.hpp — plain types with a declared kind, for the tests
// that store objects by kind (named segments, shared values).
#pragma once

namespace procsync_test {

/// Two fields x, y under the kind name `Kind`: types stored by kind declare
/// it (procsync refuses to guess from the compiler's spelling, which g++ and
/// clang++ do not share). One Field under two names is one layout of two
/// kinds: what a find of the wrong kind must refuse.
template <class Field, const char* Kind>
struct kinded_xy {
  static constexpr const char* kind_name = Kind;
  Field x = 0;
  Field y = 0;
};

}  // namespace procsync_test
