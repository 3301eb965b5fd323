// Crash-safe cleanup of named segments (cleanup.hpp), and hostile input at the
// segment-opening path: truncated files, another user's segment, bad names,
// symlinks planted at the name.
#define BOOST_TEST_MODULE procsync cleanup and hostile input
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <procsync/cleanup.hpp>
#include <procsync/mutex.hpp>
#include <procsync/process.hpp>
#include <procsync/segment.hpp>
#include <procsync/semaphore.hpp>

#include <algorithm>
#include <string>
#include <string_view>

#include "child.hpp"
#include "errors.hpp"

using namespace procsync_test;
using namespace std::chrono_literals;

namespace {

/// The message of the procsync::error f throws ("" if it throws none).
template <class F>
std::string procsync_error_message(F&& f) {
  try {
    f();
  } catch (const procsync::error& e) {
    return e.what();
  }
  return "";
}

constexpr std::size_t kSize = 64 * 1024;

const procsync::segment_info* find_in(const std::vector<procsync::segment_info>& list, const std::string& name) {
  const auto it = std::find_if(list.begin(), list.end(), [&](const auto& s) { return s.name == name; });
  return it == list.end() ? nullptr : &*it;
}

/// A child that creates `name`, then waits for `go` (a pipe) or dies.
pid_t creator_child(const std::string& name, int ready_fd, bool stay) {
  return fork_child([=] {
    procsync::named_segment seg(procsync::create_only, name, kSize);
    (void)seg.construct<procsync::mutex>("m");
    char c = 1;
    if (::write(ready_fd, &c, 1) != 1) return 2;
    if (stay) ::pause();
    return 0;
  });
}

void wait_ready(int fd) {
  char c = 0;
  BOOST_REQUIRE(::read(fd, &c, 1) == 1);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_segment_whose_creator_died_is_listed_dead_and_removed) {
  scoped_name name("dead-creator");
  int p[2];
  BOOST_REQUIRE(::pipe(p) == 0);
  const pid_t kid = creator_child(name.name, p[1], false);
  wait_ready(p[0]);
  BOOST_REQUIRE(wait_exit_code(kid) == 0);
  ::close(p[0]);
  ::close(p[1]);

  const auto list = procsync::list_segments(name.name);
  const auto* s = find_in(list, name.name);
  BOOST_REQUIRE(s != nullptr);
  BOOST_TEST(s->creator_pid == kid);
  BOOST_TEST(!s->creator_alive);
  BOOST_TEST(s->users.empty());
  BOOST_TEST(s->ready);
  BOOST_TEST(s->size == kSize);
  BOOST_TEST((s->mode & 0777) == 0600u);

  // A dry run removes nothing; the real one removes exactly it.
  BOOST_TEST(procsync::remove_dead_segments(name.name, true).size() == 1u);
  BOOST_TEST(shm_exists(name.name));
  const auto removed = procsync::remove_dead_segments(name.name);
  BOOST_REQUIRE(removed.size() == 1u);
  BOOST_TEST(removed[0].name == name.name);
  BOOST_TEST(!shm_exists(name.name));
}

BOOST_AUTO_TEST_CASE(a_segment_with_a_live_or_stopped_creator_is_kept) {
  scoped_name name("live-creator");
  int p[2];
  BOOST_REQUIRE(::pipe(p) == 0);
  const pid_t kid = creator_child(name.name, p[1], true);
  wait_ready(p[0]);
  auto s = procsync::inspect_segment(name.name);
  BOOST_TEST(s.creator_pid == kid);
  BOOST_TEST(s.creator_alive);
  BOOST_TEST(s.in_use());
  // It maps the segment: listed as a user too.
  BOOST_TEST((std::find(s.users.begin(), s.users.end(), kid) != s.users.end()));
  // Paused is not dead.
  ::kill(kid, SIGSTOP);
  BOOST_TEST(procsync::remove_dead_segments(name.name).empty());
  BOOST_TEST(shm_exists(name.name));
  ::kill(kid, SIGKILL);
  BOOST_TEST(wait_exit_code(kid) == -SIGKILL);
  BOOST_TEST(procsync::remove_dead_segments(name.name).size() == 1u);
  BOOST_TEST(!shm_exists(name.name));
  ::close(p[0]);
  ::close(p[1]);
}

BOOST_AUTO_TEST_CASE(a_segment_still_mapped_by_a_user_is_kept_after_its_creator_died) {
  scoped_name name("live-user");
  int p[2];
  BOOST_REQUIRE(::pipe(p) == 0);
  const pid_t creator = creator_child(name.name, p[1], false);
  wait_ready(p[0]);
  BOOST_REQUIRE(wait_exit_code(creator) == 0);
  const pid_t user = fork_child([&] {
    procsync::named_segment seg(procsync::open_only, name.name);
    char c = 1;
    if (::write(p[1], &c, 1) != 1) return 2;
    ::pause();
    return 0;
  });
  wait_ready(p[0]);
  const auto s = procsync::inspect_segment(name.name);
  BOOST_TEST(!s.creator_alive);
  BOOST_TEST(s.users == std::vector<std::int32_t>{user});
  BOOST_TEST(procsync::remove_dead_segments(name.name).empty());
  ::kill(user, SIGKILL);
  BOOST_TEST(wait_exit_code(user) == -SIGKILL);
  BOOST_TEST(procsync::remove_dead_segments(name.name).size() == 1u);
  ::close(p[0]);
  ::close(p[1]);
}

BOOST_AUTO_TEST_CASE(a_creator_killed_before_initializing_leaves_a_removable_segment) {
  scoped_name name("half-made");
  // The bytes a creator leaves when killed between publishing its identity and
  // the magic: header zero but for creator pid and start time.
  const pid_t kid = fork_child([] { return 0; });
  const auto identity = procsync::detail::identity_of(kid);  // read while it may still run
  BOOST_REQUIRE(wait_exit_code(kid) == 0);
  {
    const int fd = ::shm_open(("/" + name.name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    BOOST_REQUIRE(fd >= 0);
    BOOST_REQUIRE(::ftruncate(fd, kSize) == 0);
    procsync::detail::segment_header h;
    h.creator_pid.store(kid);
    h.creator_start_time = identity.start_time;
    BOOST_REQUIRE(::pwrite(fd, &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h));
    ::close(fd);
  }
  const auto s = procsync::inspect_segment(name.name);
  BOOST_TEST(!s.ready);
  BOOST_TEST(!s.in_use());
  BOOST_TEST(procsync::remove_dead_segments(name.name).size() == 1u);
  BOOST_TEST(!shm_exists(name.name));
}

BOOST_AUTO_TEST_CASE(other_files_in_dev_shm_are_never_listed_or_removed) {
  scoped_name plain("not-procsync"), small("tiny"), link("a-link"), target("link-target");
  {
    const int fd = ::shm_open(("/" + plain.name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    BOOST_REQUIRE(fd >= 0);
    BOOST_REQUIRE(::ftruncate(fd, 8192) == 0);  // zeros: no magic, no creator
    ::close(fd);
    const int fd2 = ::shm_open(("/" + small.name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    BOOST_REQUIRE(fd2 >= 0);
    BOOST_REQUIRE(::write(fd2, "x", 1) == 1);
    ::close(fd2);
  }
  // A symlink to a dead procsync segment is not followed.
  int p[2];
  BOOST_REQUIRE(::pipe(p) == 0);
  const pid_t kid = creator_child(target.name, p[1], false);
  wait_ready(p[0]);
  BOOST_REQUIRE(wait_exit_code(kid) == 0);
  BOOST_REQUIRE(::symlink(("/dev/shm/" + target.name).c_str(), ("/dev/shm/" + link.name).c_str()) == 0);
  const auto list = procsync::list_segments("procsync-test-" + std::to_string(::getpid()));
  BOOST_TEST(find_in(list, plain.name) == nullptr);
  BOOST_TEST(find_in(list, small.name) == nullptr);
  BOOST_TEST(find_in(list, link.name) == nullptr);
  BOOST_TEST(find_in(list, target.name) != nullptr);
  BOOST_TEST((error_of([&] { (void)procsync::inspect_segment(plain.name); }) == procsync::errc::segment_not_found));
  (void)procsync::remove_dead_segments("procsync-test-" + std::to_string(::getpid()));
  BOOST_TEST(shm_exists(plain.name));
  BOOST_TEST(shm_exists(small.name));
  BOOST_TEST(shm_exists(link.name));
  BOOST_TEST(!shm_exists(target.name));
  ::close(p[0]);
  ::close(p[1]);
}

// ---- hostile input on the opening path ------------------------------------

BOOST_AUTO_TEST_CASE(a_truncated_segment_is_corrupt_never_a_crash) {
  scoped_name name("truncated");
  { procsync::named_segment seg(procsync::create_only, name, kSize); }
  for (const off_t size : {off_t{kSize / 2}, off_t{4096}, off_t{300}, off_t{100}, off_t{0}}) {
    const int fd = ::shm_open(("/" + name.name).c_str(), O_RDWR, 0);
    BOOST_REQUIRE(fd >= 0);
    BOOST_REQUIRE(::ftruncate(fd, size) == 0);
    ::close(fd);
    std::string msg;
    // A short init_timeout: a file smaller than a header looks like a segment
    // whose creator has not sized it yet.
    const auto code = error_of([&] { procsync::named_segment s(procsync::open_only, name.name, 200ms); }, &msg);
    BOOST_TEST((code == procsync::errc::corrupt_segment), "size " << size << ": " << msg);
    BOOST_TEST(msg.find(name.name) != std::string::npos, msg);
  }
}

BOOST_AUTO_TEST_CASE(another_users_segment_is_refused_unless_asked_for) {
  if (::geteuid() != 0) {
    BOOST_TEST_MESSAGE("needs root to make another user's segment; skipped");
    return;
  }
  scoped_name name("foreign");
  // nobody creates a segment everyone may open (0666); root must still refuse it.
  const pid_t kid = fork_child([&] {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) return 2;
    procsync::named_segment seg(procsync::create_only, name, kSize, 0666);
    (void)seg.construct<procsync::mutex>("m");
    return 0;
  });
  BOOST_REQUIRE(wait_exit_code(kid) == 0);
  std::string msg;
  BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::open_only, name.name); }, &msg) ==
              procsync::errc::permission_denied));
  BOOST_TEST(msg.find("uid 65534") != std::string::npos, msg);
  BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::open_or_create, name.name, kSize); }) ==
              procsync::errc::permission_denied));
  // Asked for: it opens, and its objects work.
  procsync::named_segment seg(procsync::open_only, name.name, procsync::foreign_owner);
  auto& m = seg.find<procsync::mutex>("m");
  BOOST_TEST(m.try_lock());
  m.unlock();
}

BOOST_AUTO_TEST_CASE(bad_names_are_invalid_name_errors) {
  const std::string too_long(procsync::named_segment::max_name_length + 1, 'a');
  const std::string max_len(procsync::named_segment::max_name_length, 'a');
  for (const std::string& bad : {std::string(), std::string("a/b"), std::string("/lead"), std::string("trail/"),
                                 std::string(".."), std::string("."), std::string(".hidden"), too_long,
                                 std::string("caf\xc3\xa9"), std::string("\xff\xfe"), std::string("nul\0in", 6),
                                 std::string("sp ace"), std::string("new\nline")}) {
    std::string msg;
    BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::create_only, bad, kSize); }, &msg) ==
                procsync::errc::invalid_name));
    BOOST_TEST(msg.find("invalid segment name") != std::string::npos, msg);
    BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::open_only, bad); }) == procsync::errc::invalid_name));
    BOOST_TEST((error_of([&] { procsync::named_segment::remove(bad); }) == procsync::errc::invalid_name));
  }
  // The longest valid name works (and is cleaned up).
  scoped_name longest("x");
  longest.name = max_len.substr(0, max_len.size() - 1) + "z";
  { procsync::named_segment s(procsync::create_only, longest.name, kSize); }
  BOOST_TEST(procsync::named_segment::remove(longest.name));
}

BOOST_AUTO_TEST_CASE(a_symlink_at_the_name_is_never_followed) {
  scoped_name link("symlink"), victim("victim");
  // The target: a file the attacker wants procsync to write into.
  const std::string victim_path = "/dev/shm/" + victim.name;
  {
    const int fd = ::open(victim_path.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    BOOST_REQUIRE(fd >= 0);
    BOOST_REQUIRE(::write(fd, "precious", 8) == 8);
    ::close(fd);
  }
  BOOST_REQUIRE(::symlink(victim_path.c_str(), ("/dev/shm/" + link.name).c_str()) == 0);
  // create: O_EXCL refuses an existing name, symlink included.
  BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::create_only, link.name, kSize); }) ==
              procsync::errc::segment_exists));
  // open: O_NOFOLLOW refuses it with a clear error (ELOOP); never a crash or a hang.
  std::string msg = procsync_error_message([&] { procsync::named_segment s(procsync::open_only, link.name, 200ms); });
  BOOST_TEST(msg.find(link.name) != std::string::npos, msg);
  BOOST_TEST(msg.find("symbolic link") != std::string::npos, msg);
  // open_or_create neither follows it nor replaces it.
  msg = procsync_error_message([&] { procsync::named_segment s(procsync::open_or_create, link.name, kSize); });
  BOOST_TEST(msg.find(link.name) != std::string::npos, msg);
  // The victim is untouched.
  struct stat st {};
  BOOST_REQUIRE(::stat(victim_path.c_str(), &st) == 0);
  BOOST_TEST(st.st_size == 8);
  // A dangling symlink: create still refuses (no file is made at its target).
  scoped_name dangling("dangling"), nowhere("nowhere");
  BOOST_REQUIRE(::symlink(("/dev/shm/" + nowhere.name).c_str(), ("/dev/shm/" + dangling.name).c_str()) == 0);
  BOOST_TEST((error_of([&] { procsync::named_segment s(procsync::create_only, dangling.name, kSize); }) ==
              procsync::errc::segment_exists));
  BOOST_TEST(!shm_exists(nowhere.name));
}

// ---- a parent killed while its daemon children hold locks -----------------

namespace {
struct daemon_block {
  procsync::mutex m;
  procsync::undo_semaphore<2, 8> sem{procsync::undo, 2};
  std::atomic<int> ready{0};
  procsync::detail::process_identity kids[2] = {};
};
}  // namespace

BOOST_AUTO_TEST_CASE(a_killed_parent_takes_its_daemons_and_their_locks_come_back) {
  auto b = procsync::make_anonymous<daemon_block>();
  const pid_t parent = fork_child([&] {
    procsync::process holder([&] {
      b->m.lock();
      b->sem.acquire();
      b->kids[0] = procsync::detail::current_process_identity();
      b->ready.fetch_add(1);
      for (;;) ::pause();
      return 0;
    });
    procsync::process permit([&] {
      b->sem.acquire();
      b->kids[1] = procsync::detail::current_process_identity();
      b->ready.fetch_add(1);
      for (;;) ::pause();
      return 0;
    });
    holder.set_daemon(true);
    permit.set_daemon(true);
    holder.start();
    permit.start();
    for (;;) ::pause();
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return b->ready.load() == 2; }));
  BOOST_TEST(b->sem.value() == 0);
  ::kill(parent, SIGKILL);  // no atexit handler runs: the kernel must take the daemons
  BOOST_TEST(wait_exit_code(parent) == -SIGKILL);
  BOOST_TEST(eventually([&] {
    return !procsync::detail::process_alive(b->kids[0]) && !procsync::detail::process_alive(b->kids[1]);
  }));
  // The mutex comes back with the death reported; the permits come back.
  BOOST_TEST((b->m.try_lock_robust_for(10s) == procsync::lock_status::owner_died));
  b->m.consistent();
  b->m.unlock();
  BOOST_TEST(b->sem.try_acquire_for(10s));
  BOOST_TEST(b->sem.try_acquire_for(10s));
  b->sem.release(2);
  BOOST_TEST(b->sem.value() == 2);
}
