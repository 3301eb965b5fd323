#define BOOST_TEST_MODULE procsync error
#include <boost/test/unit_test.hpp>

#include <procsync/error.hpp>
#include <procsync/mutex.hpp>
#include <procsync/segment.hpp>

#include <cerrno>
#include <set>
#include <string>
#include <system_error>

#include "child.hpp"

namespace {

constexpr int first_errc = static_cast<int>(procsync::errc::not_owner);
constexpr int last_errc = static_cast<int>(procsync::errc::unsupported);

}  // namespace

BOOST_AUTO_TEST_CASE(category_is_named_procsync_and_unique) {
  BOOST_TEST(std::string(procsync::error_category().name()) == "procsync");
  BOOST_TEST(&procsync::error_category() == &procsync::error_category());
  const std::error_code ec = procsync::errc::not_owner;  // implicit: is_error_code_enum
  BOOST_TEST(&ec.category() == &procsync::error_category());
  BOOST_TEST(ec.value() == 1);
  BOOST_TEST(static_cast<bool>(ec));
}

BOOST_AUTO_TEST_CASE(every_code_has_its_own_message) {
  // Codes are appended over time: every value from the first up to the first
  // "unknown" one has a distinct message, and that range covers at least
  // everything up to errc::unsupported.
  std::set<std::string> seen;
  int v = first_errc;
  for (; v < 1000; ++v) {
    const std::string m = procsync::error_category().message(v);
    if (m.find("unknown procsync error") != std::string::npos) break;
    BOOST_TEST(!m.empty());
    BOOST_TEST(seen.insert(m).second, "duplicate message " << m);
  }
  BOOST_TEST(v > last_errc);
  BOOST_TEST(v < 1000);
  BOOST_TEST(procsync::error_category().message(0).find("unknown procsync error") != std::string::npos);
  BOOST_TEST(procsync::error_category().message(v).find(std::to_string(v)) != std::string::npos);
  BOOST_TEST(procsync::make_error_code(procsync::errc::segment_not_found).message() ==
             "shared memory segment not found");
  BOOST_TEST(procsync::make_error_code(procsync::errc::would_deadlock).message() ==
             "the calling thread already holds this lock");
}

BOOST_AUTO_TEST_CASE(values_are_stable) {
  // Logged values must not move: spot-check both ends and the middle.
  BOOST_TEST(static_cast<int>(procsync::errc::not_owner) == 1);
  BOOST_TEST(static_cast<int>(procsync::errc::owner_dead) == 8);
  BOOST_TEST(static_cast<int>(procsync::errc::invalid_name) == 13);
  BOOST_TEST(static_cast<int>(procsync::errc::unsupported) == 23);
}

BOOST_AUTO_TEST_CASE(errors_compare_with_errc_and_catch_as_system_error) {
  try {
    procsync::detail::throw_error(procsync::errc::object_exists, "object 'x' already exists");
    BOOST_FAIL("throw_error returned");
  } catch (const std::system_error& e) {
    BOOST_TEST((e.code() == procsync::errc::object_exists));
    BOOST_TEST((e.code() != procsync::errc::object_not_found));
    BOOST_TEST(std::string(e.what()).find("object 'x' already exists") != std::string::npos);
    BOOST_TEST(std::string(e.what()).find("object already exists in segment") != std::string::npos);
    BOOST_TEST(dynamic_cast<const procsync::error*>(&e) != nullptr);
  }
  // Also catchable as std::runtime_error and std::exception.
  BOOST_CHECK_THROW(procsync::detail::throw_error(procsync::errc::invalid_argument, "x"), std::runtime_error);
  BOOST_CHECK_THROW(procsync::detail::throw_error(procsync::errc::invalid_argument, "x"), std::exception);
}

BOOST_AUTO_TEST_CASE(throw_errno_keeps_the_errno_in_the_generic_category) {
  try {
    procsync::detail::throw_errno(ENOENT, "shm_open of 'x'");
    BOOST_FAIL("throw_errno returned");
  } catch (const procsync::error& e) {
    BOOST_TEST(&e.code().category() == &std::generic_category());
    BOOST_TEST(e.code().value() == ENOENT);
    BOOST_TEST((e.code() == std::errc::no_such_file_or_directory));
    BOOST_TEST((e.code() != procsync::errc::segment_not_found));  // another category
    BOOST_TEST(std::string(e.what()).find("shm_open of 'x'") != std::string::npos);
  }
  try {
    procsync::detail::throw_errno(EACCES, "open");
  } catch (const std::system_error& e) {
    BOOST_TEST((e.code() == std::errc::permission_denied));
  }
}

BOOST_AUTO_TEST_CASE(error_codes_compare_equal_only_within_their_category) {
  const std::error_code a = procsync::errc::invalid_argument;
  const std::error_code b = procsync::make_error_code(procsync::errc::invalid_argument);
  const std::error_code errno_code(static_cast<int>(procsync::errc::invalid_argument), std::generic_category());
  BOOST_TEST((a == b));
  BOOST_TEST((a != errno_code));  // same number, other category
  const procsync::error from_code(a, "via error_code");
  BOOST_TEST((from_code.code() == procsync::errc::invalid_argument));
}

// Library paths raise these errors in real processes: a child misuses a mutex
// and an absent segment, and reports what it caught.
BOOST_AUTO_TEST_CASE(library_errors_carry_their_errc_across_fork) {
  auto m = procsync::make_anonymous<procsync::mutex>();
  const pid_t kid = procsync_test::fork_child([&] {
    try {
      m->unlock();
      return 1;
    } catch (const std::system_error& e) {
      if (e.code() != procsync::errc::not_owner) return 2;
    }
    m->lock();
    try {
      m->lock();
      return 3;
    } catch (const procsync::error& e) {
      if (e.code() != procsync::errc::would_deadlock) return 4;
    }
    m->unlock();
    try {
      procsync::named_segment s(procsync::open_only, procsync_test::unique_name("absent"));
      return 5;
    } catch (const procsync::error& e) {
      if (e.code() != procsync::errc::segment_not_found) return 6;
      if (std::string(e.what()).find("absent") == std::string::npos) return 7;
    }
    return 0;
  });
  BOOST_TEST(procsync_test::wait_exit_code(kid) == 0);
}
