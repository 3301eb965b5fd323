#define BOOST_TEST_MODULE procsync segment
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/interprocess/managed_shared_memory.hpp>
#include <procsync/mutex.hpp>
#include <procsync/recursive_mutex.hpp>
#include <procsync/segment.hpp>

#include <array>
#include <cstring>
#include <mutex>
#include <string_view>
#include <thread>

#include "child.hpp"
#include "errors.hpp"
#include "kinds.hpp"

using namespace procsync_test;
using namespace std::chrono_literals;

namespace {

/// Removes the segment when the test ends, pass or fail: nothing is left in /dev/shm.
constexpr std::size_t kSize = 64 * 1024;

constexpr char point_kind[] = "test::point", other_point_kind[] = "test::other_point";
using point = kinded_xy<int, point_kind>;
using other_point = kinded_xy<int, other_point_kind>;  // point's layout, another kind

// Same kind and version as procsync::mutex, another version / size: what an
// old or new build of the library would place.
struct mutex_v2 {
  static constexpr const char* kind_name = "procsync::mutex";
  static constexpr std::uint32_t layout_version = 2;
  unsigned char bytes[40];
};
struct mutex_bigger {
  static constexpr const char* kind_name = "procsync::mutex";
  static constexpr std::uint32_t layout_version = 1;
  unsigned char bytes[48];
};
struct with_view_kind {
  static constexpr std::string_view kind_name = "test::view_kind";
  int v = 0;
};
template <int N>
struct with_function_kind {
  static std::string kind_name() { return "test::function_kind<" + std::to_string(N) + ">"; }
  static constexpr std::uint32_t layout_version() { return 7; }
  int v = N;
};
struct alignas(64) cache_line {
  static constexpr const char* kind_name = "test::cache_line";
  std::uint64_t value = 0;
};

enum class colour : unsigned char { red, green };

using big_t = std::array<char, 1000>;
using huge_t = std::array<char, 8192>;
using int4_t = std::array<int, 4>;

struct counter_block {
  static constexpr const char* kind_name = "test::counter_block";
  procsync::mutex m;
  long count = 0;
};

}  // namespace

// An enum cannot declare a member: it is named through the customization point.
template <>
struct procsync::kind_name_of<colour> {
  static constexpr const char* value = "test::colour";
};

// Fixed-width names by signedness and size, never the compiler's spelling:
// tests/compile_checks/run.sh checks that g++ and clang++ print the same.
BOOST_AUTO_TEST_CASE(standard_types_have_portable_kind_names) {
  using procsync::detail::kind_of;
  BOOST_TEST(kind_of<bool>() == "bool");
  BOOST_TEST(kind_of<char>() == "char");
  BOOST_TEST(kind_of<signed char>() == "int8");
  BOOST_TEST(kind_of<unsigned char>() == "uint8");
  BOOST_TEST(kind_of<short>() == "int16");
  BOOST_TEST(kind_of<std::uint16_t>() == "uint16");
  BOOST_TEST(kind_of<int>() == "int32");
  BOOST_TEST(kind_of<unsigned>() == "uint32");
  BOOST_TEST(kind_of<long>() == "int64");
  BOOST_TEST(kind_of<long long>() == "int64");  // one layout, one name
  BOOST_TEST(kind_of<unsigned long>() == "uint64");
  BOOST_TEST(kind_of<float>() == "float32");
  BOOST_TEST(kind_of<double>() == "float64");
  BOOST_TEST(kind_of<char32_t>() == "char32");
  BOOST_TEST(kind_of<std::byte>() == "byte");
  BOOST_TEST(kind_of<const int>() == "int32");
  BOOST_TEST(kind_of<int[3]>() == "int32[3]");
  BOOST_TEST((kind_of<std::array<double, 2>>() == "std::array<float64,2>"));
  BOOST_TEST((kind_of<std::pair<int, point>>() == "std::pair<int32,test::point{size=8,align=4}>"));
  BOOST_TEST((kind_of<std::array<point, 2>>() == "std::array<test::point{size=8,align=4},2>"));
  BOOST_TEST((kind_of<std::array<with_function_kind<1>, 1>>() ==
              "std::array<test::function_kind<1>{size=4,align=4,version=7},1>"));
  // Same size, other element type: other kinds.
  BOOST_TEST((kind_of<std::array<int, 4>>() != kind_of<std::array<unsigned, 4>>()));
  BOOST_TEST((kind_of<std::array<int, 4>>() != kind_of<std::array<float, 4>>()));
  BOOST_TEST(kind_of<point>() != kind_of<other_point>());
}

BOOST_AUTO_TEST_CASE(kind_of_reads_every_declaration_form) {
  BOOST_TEST(procsync::detail::kind_of<procsync::mutex>() == "procsync::mutex");
  BOOST_TEST(procsync::detail::kind_of<with_view_kind>() == "test::view_kind");
  BOOST_TEST(procsync::detail::kind_of<with_function_kind<3>>() == "test::function_kind<3>");
  BOOST_TEST(procsync::detail::kind_of<point>() == "test::point");
  BOOST_TEST(procsync::detail::kind_of<colour>() == "test::colour");  // procsync::kind_name_of specialization
  BOOST_TEST(procsync::detail::kind_of<int4_t>() == "std::array<int32,4>");
  BOOST_TEST(procsync::detail::layout_version_of<procsync::mutex>() == 1u);
  BOOST_TEST(procsync::detail::layout_version_of<with_function_kind<1>>() == 7u);
  BOOST_TEST(procsync::detail::layout_version_of<point>() == 0u);
}

BOOST_AUTO_TEST_CASE(unrelated_child_opens_by_name_and_shares_a_mutex) {
  scoped_name name("share");
  procsync::named_segment seg(procsync::create_only, name, kSize);
  BOOST_TEST(seg.name() == name.name);
  BOOST_TEST(seg.size() == kSize);
  BOOST_TEST(seg.free_memory() > 0u);
  BOOST_TEST(seg.free_memory() < kSize);
  auto& block = seg.construct<counter_block>("counter");
  constexpr int procs = 3, iters = 5000;
  std::vector<pid_t> kids;
  for (int i = 0; i < procs; ++i)
    kids.push_back(fork_child([&] {
      // A fresh mapping in the child, found by name only.
      procsync::named_segment mine(procsync::open_only, name.name);
      auto& b = mine.find<counter_block>("counter");
      if (&b == &block && mine.address() == seg.address()) return 3;  // must be a new mapping
      for (int j = 0; j < iters; ++j) {
        std::lock_guard g(b.m);
        ++b.count;
      }
      return 0;
    }));
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  std::lock_guard g(block.m);
  BOOST_TEST(block.count == procs * iters);
}

BOOST_AUTO_TEST_CASE(two_mappings_in_one_process_share_objects) {
  scoped_name name("twomap");
  procsync::named_segment a(procsync::create_only, name, kSize);
  procsync::named_segment b(procsync::open_only, name, kSize);
  BOOST_TEST(a.address() != b.address());
  auto& pa = a.construct<point>("p", 1, 2);
  auto& pb = b.find<point>("p");
  BOOST_TEST(static_cast<void*>(&pa) != static_cast<void*>(&pb));
  pa.x = 42;
  BOOST_TEST(pb.x == 42);
  // A mutex locked through one mapping is held through the other.
  auto& ma = a.construct<procsync::mutex>("m");
  auto& mb = b.find<procsync::mutex>("m");
  ma.lock();
  const pid_t kid = fork_child([&] { return mb.try_lock() ? 1 : 0; });
  BOOST_TEST(wait_exit_code(kid) == 0);
  BOOST_CHECK_THROW(mb.lock(), procsync::error);  // same thread: would_deadlock through the other mapping
  ma.unlock();
  BOOST_TEST(mb.try_lock());
  mb.unlock();
  // Over-aligned objects are aligned in every mapping.
  auto& ca = a.construct<cache_line>("line");
  auto& cb = b.find<cache_line>("line");
  BOOST_TEST(reinterpret_cast<std::uintptr_t>(&ca) % 64 == 0u);
  BOOST_TEST(reinterpret_cast<std::uintptr_t>(&cb) % 64 == 0u);
}

BOOST_AUTO_TEST_CASE(open_only_of_missing_segment_is_segment_not_found) {
  scoped_name name("missing");
  std::string msg;
  BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::open_only, name); }, &msg) ==
              procsync::errc::segment_not_found));
  BOOST_TEST(msg.find(name.name) != std::string::npos);
  const pid_t kid = fork_child([&] {
    return error_of([&] { procsync::named_segment s(procsync::open_only, name); }) ==
                   procsync::errc::segment_not_found
               ? 0
               : 1;
  });
  BOOST_TEST(wait_exit_code(kid) == 0);
}

BOOST_AUTO_TEST_CASE(create_only_of_existing_segment_is_segment_exists) {
  scoped_name name("exists");
  procsync::named_segment seg(procsync::create_only, name, kSize);
  seg.construct<point>("keep", 5, 6);
  const pid_t kid = fork_child([&] {
    if (error_of([&] { procsync::named_segment s(procsync::create_only, name, kSize); }) !=
        procsync::errc::segment_exists)
      return 1;
    // The failed create removed nothing.
    procsync::named_segment s(procsync::open_only, name);
    return s.find<point>("keep").y == 6 ? 0 : 2;
  });
  BOOST_TEST(wait_exit_code(kid) == 0);
}

BOOST_AUTO_TEST_CASE(open_or_create_races_to_one_segment_and_one_object) {
  scoped_name name("race");
  constexpr int procs = 4, iters = 2000;
  std::vector<pid_t> kids;
  for (int i = 0; i < procs; ++i)
    kids.push_back(fork_child([&] {
      procsync::named_segment s(procsync::open_or_create, name, kSize);
      auto& b = s.find_or_construct<counter_block>("counter");
      for (int j = 0; j < iters; ++j) {
        std::lock_guard g(b.m);
        ++b.count;
      }
      return 0;
    }));
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  procsync::named_segment s(procsync::open_or_create, name, kSize * 2);
  BOOST_TEST(s.size() == kSize);  // opened, not recreated
  BOOST_TEST(s.find<counter_block>("counter").count == procs * iters);
}

BOOST_AUTO_TEST_CASE(invalid_names_are_refused) {
  const std::string too_long(procsync::named_segment::max_name_length + 1, 'a');
  for (const std::string& bad : {std::string(), std::string("a/b"), std::string("/lead"), std::string("sp ace"),
                                 std::string(".hidden"), std::string(".."), too_long, std::string("tab\t"),
                                 std::string("caf\xc3\xa9")}) {
    std::string msg;
    BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::create_only, bad, kSize); }, &msg) ==
                procsync::errc::invalid_name),
               "name '" << bad << "'");
    BOOST_TEST(msg.find("expected") != std::string::npos);
    BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::open_only, bad); }) == procsync::errc::invalid_name));
    BOOST_TEST((error_of([&] { procsync::named_segment::remove(bad); }) == procsync::errc::invalid_name));
  }
  std::string msg;
  error_of([&] { procsync::named_segment s(procsync::create_only, "a/b", kSize); }, &msg);
  BOOST_TEST(msg.find("'/' at position 1") != std::string::npos, msg);
  // The longest valid name works.
  const std::string longest = unique_name("") + std::string(procsync::named_segment::max_name_length -
                                                                 unique_name("").size(), 'z');
  BOOST_REQUIRE(longest.size() <= procsync::named_segment::max_name_length);
  { procsync::named_segment s(procsync::create_only, longest, kSize); }
  BOOST_TEST(procsync::named_segment::remove(longest));

  scoped_name name("objnames");
  procsync::named_segment seg(procsync::create_only, name, kSize);
  BOOST_TEST((error_of([&] { seg.construct<point>(""); }) == procsync::errc::invalid_name));
  BOOST_TEST((error_of([&] { seg.construct<point>(std::string(300, 'o')); }) == procsync::errc::invalid_name));
  BOOST_TEST((error_of([&] { seg.find<point>("new\nline"); }) == procsync::errc::invalid_name));
  seg.construct<point>("with spaces / and slashes ok");
  BOOST_TEST(seg.find<point>("with spaces / and slashes ok").x == 0);
}

BOOST_AUTO_TEST_CASE(permissions_are_exact_whatever_the_umask) {
  struct case_t {
    ::mode_t umask_value;
    bool use_default;
    ::mode_t asked;
    ::mode_t expected;
  };
  for (const case_t c : {case_t{077, true, 0, 0600}, case_t{022, true, 0, 0600}, case_t{077, false, 0644, 0644},
                         case_t{022, false, 0666, 0666}, case_t{077, false, 0660, 0660}}) {
    scoped_name name("perm");
    const ::mode_t old = ::umask(c.umask_value);
    {
      auto seg = c.use_default ? procsync::named_segment(procsync::create_only, name, kSize)
                               : procsync::named_segment(procsync::create_only, name, kSize, c.asked);
      ::umask(old);
      const int fd = ::shm_open(("/" + name.name).c_str(), O_RDONLY, 0);
      BOOST_REQUIRE(fd >= 0);
      struct stat st {};
      BOOST_REQUIRE(::fstat(fd, &st) == 0);
      ::close(fd);
      BOOST_TEST((st.st_mode & 0777) == c.expected, "umask " << std::oct << c.umask_value << " asked " << c.asked
                                                             << " got " << (st.st_mode & 0777));
    }
    ::umask(old);
  }
  // open_or_create applies them too when it creates.
  scoped_name name("perm-ooc");
  const ::mode_t old = ::umask(077);
  { procsync::named_segment seg(procsync::open_or_create, name, kSize, 0640); }
  ::umask(old);
  struct stat st {};
  BOOST_REQUIRE(::stat(("/dev/shm/" + name.name).c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == 0640u);
}

BOOST_AUTO_TEST_CASE(object_exists_not_found_and_find_or_construct) {
  scoped_name name("objects");
  procsync::named_segment seg(procsync::create_only, name, kSize);
  auto& p = seg.construct<point>("p", 3, 4);
  std::string msg;
  BOOST_TEST((error_of([&] { seg.construct<point>("p"); }, &msg) == procsync::errc::object_exists));
  BOOST_TEST(msg.find("'p'") != std::string::npos);
  BOOST_TEST((error_of([&] { seg.construct<procsync::mutex>("p"); }) == procsync::errc::object_exists));
  BOOST_TEST((error_of([&] { seg.find<point>("q"); }, &msg) == procsync::errc::object_not_found));
  BOOST_TEST(msg.find("'q'") != std::string::npos);
  BOOST_TEST(&seg.find_or_construct<point>("p", 9, 9) == &p);
  BOOST_TEST(p.x == 3);
  auto& q = seg.find_or_construct<point>("q", 7, 8);
  BOOST_TEST(q.y == 8);
  BOOST_TEST(&seg.find<point>("q") == &q);
  // Seen from another process.
  const pid_t kid = fork_child([&] {
    procsync::named_segment s(procsync::open_only, name);
    if (s.find<point>("q").x != 7) return 1;
    if (error_of([&] { s.find<point>("nope"); }) != procsync::errc::object_not_found) return 2;
    if (error_of([&] { s.construct<point>("q"); }) != procsync::errc::object_exists) return 3;
    s.construct<point>("from-child", 11, 12);
    return 0;
  });
  BOOST_TEST(wait_exit_code(kid) == 0);
  BOOST_TEST(seg.find<point>("from-child").y == 12);
}

BOOST_AUTO_TEST_CASE(wrong_kind_and_layout_are_reported_with_both_sides) {
  scoped_name name("kinds");
  procsync::named_segment seg(procsync::create_only, name, kSize);
  seg.construct<procsync::mutex>("m");
  seg.construct<point>("p");
  seg.construct<with_function_kind<1>>("f");
  const pid_t kid = fork_child([&] {
    procsync::named_segment s(procsync::open_only, name);
    std::string msg;
    if (error_of([&] { s.find<procsync::recursive_mutex>("m"); }, &msg) != procsync::errc::wrong_object_kind) return 1;
    if (msg.find("is a procsync::mutex, expected procsync::recursive_mutex") == std::string::npos) return 2;
    if (error_of([&] { s.find<other_point>("p"); }, &msg) != procsync::errc::wrong_object_kind) return 3;
    if (msg.find("other_point") == std::string::npos) return 4;
    if (error_of([&] { s.find<mutex_v2>("m"); }, &msg) != procsync::errc::layout_mismatch) return 5;
    if (msg.find("layout version 1, expected 2") == std::string::npos) return 6;
    if (error_of([&] { s.find<mutex_bigger>("m"); }, &msg) != procsync::errc::layout_mismatch) return 7;
    if (msg.find("40 bytes") == std::string::npos || msg.find("expected 48 bytes") == std::string::npos) return 8;
    if (error_of([&] { s.find<with_function_kind<2>>("f"); }) != procsync::errc::wrong_object_kind) return 9;
    if (error_of([&] { s.find_or_construct<other_point>("p"); }) != procsync::errc::wrong_object_kind) return 10;
    if (error_of([&] { s.destroy<other_point>("p"); }) != procsync::errc::wrong_object_kind) return 11;
    return s.find<with_function_kind<1>>("f").v == 1 ? 0 : 12;
  });
  BOOST_TEST(wait_exit_code(kid) == 0);
  BOOST_TEST(seg.find<point>("p").x == 0);  // the refused destroy left it
}

BOOST_AUTO_TEST_CASE(destroy_frees_and_reports_absence) {
  scoped_name name("destroy");
  procsync::named_segment seg(procsync::create_only, name, kSize);
  const std::size_t before = seg.free_memory();
  seg.construct<big_t>("big");
  BOOST_TEST(seg.free_memory() < before - 1000);
  BOOST_TEST(seg.destroy<big_t>("big"));
  BOOST_TEST(seg.free_memory() == before);
  BOOST_TEST(!seg.destroy<big_t>("big"));
  BOOST_TEST((error_of([&] { seg.find<big_t>("big"); }) == procsync::errc::object_not_found));
}

BOOST_AUTO_TEST_CASE(too_small_is_segment_too_small_never_bad_alloc) {
  scoped_name name("small");
  std::string msg;
  BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::create_only, name, 100); }, &msg) ==
              procsync::errc::segment_too_small));
  BOOST_TEST(msg.find("expected at least") != std::string::npos);
  BOOST_TEST(!shm_exists(name.name));
  procsync::named_segment seg(procsync::create_only, name, procsync::named_segment::minimum_size());
  BOOST_TEST((error_of([&] { seg.construct<huge_t>("huge"); }, &msg) ==
              procsync::errc::segment_too_small));
  BOOST_TEST(msg.find("'huge'") != std::string::npos, msg);
  // Fill it with small objects until it refuses: always our error, never std::bad_alloc.
  int made = 0;
  procsync::errc last{};
  for (; made < 10000; ++made) {
    last = error_of([&] { seg.construct<point>("p" + std::to_string(made)); });
    if (last != procsync::errc{}) break;
  }
  BOOST_TEST((last == procsync::errc::segment_too_small));
  BOOST_TEST(made > 0);
  BOOST_TEST(seg.find<point>("p0").x == 0);  // still usable
  BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::open_only, name, kSize); }) ==
              procsync::errc::segment_too_small));
}

BOOST_AUTO_TEST_CASE(constructor_exception_leaves_nothing_behind) {
  struct throwing {
    static constexpr const char* kind_name() { return "test::throwing"; }  // a local class: the function form
    explicit throwing(int) { throw std::runtime_error("no"); }
  };
  scoped_name name("throwing");
  procsync::named_segment seg(procsync::create_only, name, kSize);
  const std::size_t before = seg.free_memory();
  BOOST_CHECK_THROW(seg.construct<throwing>("t", 1), std::runtime_error);
  BOOST_TEST(seg.free_memory() == before);
  BOOST_TEST((error_of([&] { seg.find<point>("t"); }) == procsync::errc::object_not_found));
}

BOOST_AUTO_TEST_CASE(other_format_version_is_layout_mismatch_and_garbage_is_corrupt) {
  scoped_name name("format");
  {
    procsync::named_segment seg(procsync::create_only, name, kSize);
    static_cast<procsync::detail::segment_header*>(seg.address())->format_version = 99;
  }
  std::string msg;
  const pid_t kid = fork_child([&] {
    return error_of([&] { procsync::named_segment s(procsync::open_only, name); }, &msg) ==
                       procsync::errc::layout_mismatch &&
                   msg.find("format 99") != std::string::npos
               ? 0
               : 1;
  });
  BOOST_TEST(wait_exit_code(kid) == 0);
  BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::open_or_create, name, kSize); }) ==
              procsync::errc::layout_mismatch));

  // Garbage bytes.
  scoped_name garbage("garbage");
  {
    const int fd = ::shm_open(("/" + garbage.name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    BOOST_REQUIRE(fd >= 0);
    std::vector<unsigned char> bytes(8192);
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 131 + 7);
    BOOST_REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
    ::close(fd);
  }
  BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::open_only, garbage); }, &msg) ==
              procsync::errc::corrupt_segment));
  BOOST_TEST(msg.find("not a procsync segment") != std::string::npos, msg);

  // A segment made by plain Boost.Interprocess is not a procsync segment either.
  scoped_name boost_made("boost-made");
  { boost::interprocess::managed_shared_memory m(boost::interprocess::create_only, boost_made.name.c_str(), kSize); }
  BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::open_only, boost_made); }) ==
              procsync::errc::corrupt_segment));
}

BOOST_AUTO_TEST_CASE(opening_is_time_bounded_when_the_creator_never_finishes) {
  // A zero-filled, sized segment: a creator that died before writing anything.
  scoped_name name("never-init");
  {
    const int fd = ::shm_open(("/" + name.name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    BOOST_REQUIRE(fd >= 0);
    BOOST_REQUIRE(::ftruncate(fd, kSize) == 0);
    ::close(fd);
  }
  std::string msg;
  auto start = std::chrono::steady_clock::now();
  BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::open_only, name, 200ms); }, &msg) ==
              procsync::errc::corrupt_segment));
  auto took = std::chrono::steady_clock::now() - start;
  BOOST_TEST((took >= 200ms));  // not early
  BOOST_TEST((took < 20s));     // a watchdog, not a timing: only a near-hang trips it
  BOOST_TEST(msg.find("not initialized within 200 ms") != std::string::npos, msg);

  // Empty (never sized) likewise.
  scoped_name empty("never-sized");
  {
    const int fd = ::shm_open(("/" + empty.name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    BOOST_REQUIRE(fd >= 0);
    ::close(fd);
  }
  start = std::chrono::steady_clock::now();
  BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::open_only, empty, 100ms); }, &msg) ==
              procsync::errc::corrupt_segment));
  BOOST_TEST((std::chrono::steady_clock::now() - start >= 100ms));
  BOOST_TEST(msg.find("too small") != std::string::npos, msg);

  // A creator that died mid-initialization is detected at once, long before the timeout.
  scoped_name dead("dead-creator");
  const pid_t creator = fork_child([&] {
    const int fd = ::shm_open(("/" + dead.name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0 || ::ftruncate(fd, kSize) != 0) return 1;
    void* p = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return 2;
    // What named_segment's creator publishes first; then it "dies".
    auto* h = ::new (p) procsync::detail::segment_header();
    h->creator_start_time = procsync::detail::current_process_identity().start_time;
    h->creator_pid.store(::getpid());
    return 0;
  });
  BOOST_REQUIRE(wait_exit_code(creator) == 0);
  start = std::chrono::steady_clock::now();
  BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::open_only, dead, 30s); }, &msg) ==
              procsync::errc::corrupt_segment));
  // A watchdog, not a timing: it can only trip if the opener waited out its 30 s.
  BOOST_TEST((std::chrono::steady_clock::now() - start < 10s));
  BOOST_TEST(msg.find("died before initializing") != std::string::npos, msg);
}

BOOST_AUTO_TEST_CASE(a_process_killed_holding_the_segment_lock_does_not_block_others) {
  scoped_name name("killed");
  procsync::named_segment seg(procsync::create_only, name, kSize);
  seg.construct<point>("before", 1, 1);
  // A child takes the segment's guard (as during a find_or_construct) and is SIGKILLed.
  BOOST_REQUIRE(die_holding([&](const hold_here& hold) {
    procsync::named_segment s(procsync::open_only, name);
    static_cast<procsync::detail::segment_header*>(s.address())->guard.lock();
    hold();  // still mapped
  }) == -SIGKILL);
  // Boost's own lock would now hang every user (#90); ours recovers.
  BOOST_TEST(seg.find<point>("before").x == 1);
  seg.construct<point>("after", 2, 2);
  const pid_t other = fork_child([&] {
    procsync::named_segment s(procsync::open_only, name);
    return s.find_or_construct<point>("after").x == 2 ? 0 : 1;
  });
  BOOST_TEST(wait_exit_code(other) == 0);
}

BOOST_AUTO_TEST_CASE(a_process_killed_while_constructing_leaves_no_half_object) {
  struct slow {
    static constexpr const char* kind_name() { return "test::slow"; }
    explicit slow(const hold_here& hold) { hold(); }  // killed in the middle of its construction
  };
  scoped_name name("half");
  procsync::named_segment seg(procsync::create_only, name, kSize);
  const std::size_t before = seg.free_memory();
  BOOST_REQUIRE(die_holding([&](const hold_here& hold) {
    procsync::named_segment s(procsync::open_only, name);
    s.construct<slow>("slow", hold);
  }) == -SIGKILL);
  BOOST_TEST((error_of([&] { seg.find<point>("slow"); }) == procsync::errc::object_not_found));
  BOOST_TEST(seg.free_memory() == before);
}

BOOST_AUTO_TEST_CASE(a_process_killed_inside_the_allocator_marks_the_segment_corrupt) {
  scoped_name name("allocator");
  procsync::named_segment seg(procsync::create_only, name, kSize);
  BOOST_TEST(die_holding([&](const hold_here& hold) {
    procsync::named_segment s(procsync::open_only, name);
    auto* h = static_cast<procsync::detail::segment_header*>(s.address());
    h->guard.lock();
    h->manager_busy.store(1);  // as if SIGKILLed mid-allocation
    hold();
  }) == -SIGKILL);
  std::string msg;
  BOOST_TEST((error_of([&] { seg.construct<point>("p"); }, &msg) == procsync::errc::corrupt_segment));
  BOOST_TEST(msg.find("died inside its allocator") != std::string::npos, msg);
  BOOST_TEST((error_of([&] { seg.find<point>("p"); }) == procsync::errc::corrupt_segment));  // sticky
}

BOOST_AUTO_TEST_CASE(remove_reports_existence_and_leaves_mappings_valid) {
  const std::string name = unique_name("remove");
  BOOST_TEST(!procsync::named_segment::remove(name));
  procsync::named_segment seg(procsync::create_only, name, kSize);
  auto& p = seg.construct<point>("p", 1, 2);
  BOOST_TEST(shm_exists(name));
  BOOST_TEST(procsync::named_segment::remove(name));
  BOOST_TEST(!shm_exists(name));
  BOOST_TEST(!procsync::named_segment::remove(name));
  p.x = 5;  // the mapping outlives the name
  BOOST_TEST(seg.find<point>("p").x == 5);
  BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::open_only, name); }) ==
              procsync::errc::segment_not_found));
}

BOOST_AUTO_TEST_CASE(segments_move) {
  scoped_name name("move");
  procsync::named_segment a(procsync::create_only, name, kSize);
  a.construct<point>("p", 4, 4);
  procsync::named_segment b = std::move(a);
  BOOST_TEST(b.find<point>("p").x == 4);
  BOOST_TEST(b.name() == name.name);
}

// procsync primitives in the user's own Boost managed segment: no procsync
// header involved, just the mutex in memory Boost allocated.
BOOST_AUTO_TEST_CASE(procsync_mutex_in_a_users_boost_managed_segment) {
  namespace bip = boost::interprocess;
  const std::string name = unique_name("user-boost");
  struct remover {
    std::string n;
    ~remover() { bip::shared_memory_object::remove(n.c_str()); }
  } cleanup{name};
  bip::managed_shared_memory first(bip::create_only, name.c_str(), kSize);
  auto* block = first.construct<counter_block>("counter")();
  bip::managed_shared_memory second(bip::open_only, name.c_str());
  BOOST_TEST(first.get_address() != second.get_address());
  auto* other = second.find<counter_block>("counter").first;
  BOOST_REQUIRE(other != nullptr);
  BOOST_TEST(static_cast<void*>(other) != static_cast<void*>(block));
  constexpr int iters = 5000;
  // Parent uses one mapping, the child the other (inherited) mapping, a third
  // child opens its own.
  const pid_t a = fork_child([&] {
    for (int j = 0; j < iters; ++j) {
      std::lock_guard g(other->m);
      ++other->count;
    }
    return 0;
  });
  const pid_t b = fork_child([&] {
    bip::managed_shared_memory mine(bip::open_only, name.c_str());
    auto* c = mine.find<counter_block>("counter").first;
    for (int j = 0; j < iters; ++j) {
      std::lock_guard g(c->m);
      ++c->count;
    }
    return 0;
  });
  for (int j = 0; j < iters; ++j) {
    std::lock_guard g(block->m);
    ++block->count;
  }
  BOOST_TEST(wait_exit_code(a) == 0);
  BOOST_TEST(wait_exit_code(b) == 0);
  BOOST_TEST(block->count == 3 * iters);
  // Robustness holds there too: a holder killed through one mapping is seen through the other.
  BOOST_TEST(die_holding([&] { other->m.lock(); }) == -SIGKILL);
  BOOST_TEST((block->m.lock_robust() == procsync::lock_status::owner_died));
  block->m.consistent();
  block->m.unlock();
}

// SIGKILL at arbitrary instructions of construct/destroy: the survivors never
// hang, and either carry on or are told the segment is corrupt (when the kill
// landed inside Boost's allocator); never a crash or a silent half-object.
BOOST_AUTO_TEST_CASE(random_kills_during_allocation_never_hang_the_survivors) {
  int usable = 0, corrupt = 0;
  for (int round = 0; round < 12; ++round) {
    scoped_name name("chaos");
    procsync::named_segment seg(procsync::create_only, name, kSize);
    int ready[2];
    BOOST_REQUIRE(::pipe(ready) == 0);
    const pid_t kid = fork_child([&] {
      procsync::named_segment s(procsync::open_only, name);
      (void)!::write(ready[1], "x", 1);
      for (unsigned i = 0;; ++i) {
        const std::string n = "o" + std::to_string(i % 8);
        s.find_or_construct<point>(n, 1, 2);
        s.destroy<point>(n);
      }
      return 0;
    });
    char c;
    BOOST_REQUIRE(::read(ready[0], &c, 1) == 1);
    ::close(ready[0]);
    ::close(ready[1]);
    // The behaviour under test: a kill at a different point of the churn each round.
    std::this_thread::sleep_for(std::chrono::microseconds(200 + 397 * round));
    ::kill(kid, SIGKILL);
    BOOST_TEST(wait_exit_code(kid) == -SIGKILL);
    // The survivor's calls return (a hang would trip the test's timeout).
    const procsync::errc e = error_of([&] {
      auto& p = seg.find_or_construct<point>("survivor", 3, 4);
      if (p.y != 4) throw std::logic_error("bad object");
      for (int i = 0; i < 8; ++i) {
        const std::string n = "o" + std::to_string(i);
        try {
          if (seg.find<point>(n).y != 2) throw std::logic_error("half-built object visible");
        } catch (const procsync::error& err) {
          if (err.code() != procsync::errc::object_not_found) throw;
        }
      }
    });
    if (e == procsync::errc{}) ++usable;
    else if (e == procsync::errc::corrupt_segment) ++corrupt;
    else BOOST_ERROR("unexpected error " << static_cast<int>(e));
  }
  BOOST_TEST_MESSAGE("after a kill: " << usable << " segments usable, " << corrupt << " reported corrupt");
  BOOST_TEST(usable + corrupt == 12);
}

BOOST_AUTO_TEST_CASE(mode_forbidding_access_is_permission_denied) {
  scoped_name name("noaccess");
  // Owner read-only: the owner cannot open it read-write. Root ignores modes,
  // so as root the child becomes another user (nobody), which 0600 excludes.
  const bool root = ::geteuid() == 0;
  procsync::named_segment seg(procsync::create_only, name, kSize, root ? 0600 : 0400);
  const pid_t kid = fork_child([&] {
    if (root && (::setgid(65534) != 0 || ::setuid(65534) != 0)) return 2;
    std::string msg;
    if (error_of([&] { procsync::named_segment s(procsync::open_only, name); }, &msg) !=
        procsync::errc::permission_denied)
      return 1;
    return msg.find(name.name) != std::string::npos ? 0 : 3;
  });
  BOOST_TEST(wait_exit_code(kid) == 0);
}

BOOST_AUTO_TEST_CASE(permission_denied_names_owner_mode_and_the_option_to_use) {
  scoped_name name("perm-msg");
  // As root (modes do not bind root) the opener is a child that becomes
  // nobody; otherwise the owner itself is locked out by a read-only mode.
  const bool root = ::geteuid() == 0;
  procsync::named_segment seg(procsync::create_only, name, kSize, root ? 0600 : 0400);
  int report[2];
  BOOST_REQUIRE(::pipe(report) == 0);
  const pid_t kid = fork_child([&] {
    if (root && (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0)) return 2;
    std::string msg, msg2;
    if (error_of([&] { procsync::named_segment s(procsync::open_only, name); }, &msg) !=
        procsync::errc::permission_denied)
      return 1;
    if (error_of([&] { procsync::named_segment s(procsync::open_or_create, name, kSize); }, &msg2) !=
        procsync::errc::permission_denied)
      return 3;
    msg += "\n" + msg2;
    (void)!::write(report[1], msg.data(), msg.size());
    return 0;
  });
  ::close(report[1]);
  std::string msg;
  char buf[1024];
  for (ssize_t n; (n = ::read(report[0], buf, sizeof buf)) > 0;) msg.append(buf, static_cast<std::size_t>(n));
  ::close(report[0]);
  BOOST_TEST(wait_exit_code(kid) == 0);
  BOOST_TEST(msg.find(name.name) != std::string::npos, msg);
  BOOST_TEST(msg.find("permission denied: permission denied") == std::string::npos, msg);
  BOOST_TEST(msg.find("`permissions` argument of create_only or open_or_create") != std::string::npos, msg);
  if (root) {
    BOOST_TEST(msg.find("belongs to uid 0 ") != std::string::npos, msg);
    BOOST_TEST(msg.find("with mode 0600") != std::string::npos, msg);
    BOOST_TEST(msg.find("this process is uid 65534") != std::string::npos, msg);
    BOOST_TEST(msg.find("or run this program as uid 0") != std::string::npos, msg);
  } else {
    BOOST_TEST(msg.find("its mode 0400 does not let even its owner") != std::string::npos, msg);
  }
}

BOOST_AUTO_TEST_CASE(open_or_create_has_a_foreign_owner_form) {
  if (::geteuid() != 0) {
    BOOST_TEST_MESSAGE("skipped: giving a segment to another user needs root");
    return;
  }
  scoped_name name("foreign-ooc");
  {
    procsync::named_segment seg(procsync::create_only, name, kSize);
    seg.construct<point>("p", 5, 6);
  }
  const int fd = ::shm_open(("/" + name.name).c_str(), O_RDWR, 0);
  BOOST_REQUIRE(fd >= 0);
  BOOST_REQUIRE(::fchown(fd, 65534, 65534) == 0);
  ::close(fd);
  std::string msg;
  BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::open_or_create, name, kSize); }, &msg) ==
              procsync::errc::permission_denied));
  BOOST_TEST(msg.find("owned by uid 65534") != std::string::npos, msg);
  BOOST_TEST(msg.find("after the size to open_or_create") != std::string::npos, msg);
  procsync::named_segment s(procsync::open_or_create, name, kSize, procsync::foreign_owner);
  BOOST_TEST(s.find<point>("p").y == 6);
  // It creates too, when the name is free (the new segment is ours).
  scoped_name fresh("foreign-ooc-new");
  procsync::named_segment created(procsync::open_or_create, fresh, kSize, procsync::foreign_owner, 0640);
  BOOST_TEST(shm_exists(fresh.name));
}

BOOST_AUTO_TEST_CASE(a_file_that_can_never_become_a_segment_fails_at_once) {
  // Another program's small file: a creator sizes a segment with one
  // ftruncate from 0 to at least a header, so this size is never a segment.
  scoped_name text("not-a-segment");
  {
    const int fd = ::shm_open(("/" + text.name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    BOOST_REQUIRE(fd >= 0);
    const std::string hello = "hello, I am somebody else's file\n";
    BOOST_REQUIRE(::write(fd, hello.data(), hello.size()) == static_cast<ssize_t>(hello.size()));
    ::close(fd);
  }
  std::string msg;
  auto start = std::chrono::steady_clock::now();
  // The answer must come at once, not after the opener's timeout: with a 60 s
  // one, a 30 s watchdog tells the two apart on any machine.
  BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::open_only, text, 60s); }, &msg) ==
              procsync::errc::corrupt_segment));
  BOOST_TEST((std::chrono::steady_clock::now() - start < 30s));
  BOOST_TEST(msg.find("not a procsync segment") != std::string::npos, msg);
  BOOST_TEST(msg.find("33 bytes") != std::string::npos, msg);
  BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::open_or_create, text, kSize); }) ==
              procsync::errc::corrupt_segment));

  // Empty, and sized but zero, files that nothing has changed for longer than
  // the opener would wait: no creator is working on them, fail at once.
  scoped_name empty("stale-empty");
  scoped_name zeros("stale-zeros");
  for (const auto* n : {&empty, &zeros}) {
    const int fd = ::shm_open(("/" + n->name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    BOOST_REQUIRE(fd >= 0);
    if (n == &zeros) BOOST_REQUIRE(::ftruncate(fd, kSize) == 0);
    ::close(fd);
  }
  // The behaviour under test, not a sequencing step: the files must have been
  // unchanged for longer than the opener's 1000 ms.
  std::this_thread::sleep_for(1200ms);
  // Both fail at once, not after the 1000 ms an opener used to wait for each:
  // "has not changed for more than" is only said at the first look (a wait
  // that ran out says "still after" or "not initialized within" instead), so
  // the reason tells it, not the time taken.
  BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::open_only, empty, 1000ms); }, &msg) ==
              procsync::errc::corrupt_segment));
  BOOST_TEST(msg.find("has not changed for more than 1000 ms") != std::string::npos, msg);
  BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::open_only, zeros, 1000ms); }, &msg) ==
              procsync::errc::corrupt_segment));
  BOOST_TEST(msg.find("has not changed for more than 1000 ms") != std::string::npos, msg);
}

BOOST_AUTO_TEST_CASE(find_before_the_creator_constructs_hints_at_find_or_construct) {
  scoped_name name("early-find");
  procsync::named_segment seg(procsync::open_or_create, name, kSize);
  std::string msg;
  BOOST_TEST((error_of([&] { seg.find<point>("later"); }, &msg) == procsync::errc::object_not_found));
  BOOST_TEST(msg.find("no object 'later'") != std::string::npos, msg);
  BOOST_TEST(msg.find("open_or_create") != std::string::npos, msg);
  BOOST_TEST(msg.find("find_or_construct<T>(name, args...)") != std::string::npos, msg);
  // The pattern it names: whoever comes first constructs, everybody gets it.
  const pid_t kid = fork_child([&] {
    procsync::named_segment s(procsync::open_or_create, name, kSize);
    return s.find_or_construct<point>("later", 1, 2).y == 2 ? 0 : 1;
  });
  BOOST_TEST(wait_exit_code(kid) == 0);
  BOOST_TEST(seg.find_or_construct<point>("later", 9, 9).y == 2);
}
