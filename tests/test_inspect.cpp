// procsync/inspect.hpp: snapshots of a segment whose locks real processes
// hold, wait for, die holding and deadlock on (tests/support/lock_scene.hpp),
// checked against what the test knows to be true.
#define BOOST_TEST_MODULE procsync inspect
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <procsync/inspect.hpp>

#include <algorithm>
#include <fstream>
#include <string>

#include "child.hpp"
#include "errors.hpp"
#include "lock_scene.hpp"

using namespace procsync_test;

namespace {

const procsync::object_snapshot& find(const procsync::segment_snapshot& s, const std::string& name) {
  for (const auto& o : s.objects)
    if (o.name == name) return o;
  BOOST_FAIL("no object " + name);
  throw 0;
}

/// The permissions column of this process's mapping of /dev/shm/NAME ("" if none).
std::string mapping_perms(const std::string& segment) {
  std::ifstream maps("/proc/self/maps");
  std::string line, perms;
  while (std::getline(maps, line))
    if (line.size() >= segment.size() + 9 && line.compare(line.size() - segment.size() - 9, std::string::npos,
                                                          "/dev/shm/" + segment) == 0) {
      const auto sp = line.find(' ');
      perms += line.substr(sp + 1, 4) + ",";
    }
  return perms;
}

}  // namespace

BOOST_AUTO_TEST_CASE(locks_held_waited_for_died_and_poisoned) {
  lock_scene scene(unique_name("inspect-scene"));
  procsync::segment_inspector in(scene.name);
  const procsync::segment_snapshot s = in.snapshot();
  BOOST_TEST(s.ready);
  BOOST_TEST(s.creator_pid == ::getpid());
  BOOST_TEST(s.creator_alive);
  BOOST_TEST(!s.allocator_busy);
  BOOST_TEST(!s.guard_holder.has_value());
  BOOST_TEST(std::is_sorted(s.objects.begin(), s.objects.end(), [](auto& a, auto& b) { return a.name < b.name; }));

  const auto& held = find(s, "held");
  BOOST_TEST(held.short_kind == "mutex");
  BOOST_TEST(held.kind == "procsync::mutex");
  BOOST_TEST(to_string(held.state) == "held");
  BOOST_REQUIRE(held.holder.has_value());
  BOOST_TEST(held.holder->pid == scene.holder);
  BOOST_TEST(held.holder->tid == static_cast<std::uint32_t>(scene.holder));
  BOOST_TEST(held.holder->name == "ps-holder");
  BOOST_TEST(held.holder->alive);
  BOOST_TEST(held.waiters.value_or(0) == 1u);
  BOOST_TEST(!held.waiters_exact);

  const auto& orphaned = find(s, "orphaned");
  BOOST_TEST(to_string(orphaned.state) == "inconsistent");
  BOOST_TEST(!orphaned.holder.has_value());  // the kernel cleared the dead holder's TID

  BOOST_TEST(to_string(find(s, "poisoned").state) == "poisoned");
  BOOST_TEST(to_string(find(s, "free").state) == "free");
  BOOST_TEST(find(s, "free").waiters.value_or(9) == 0u);

  const auto& seats = find(s, "seats");
  BOOST_TEST(seats.short_kind == "semaphore");
  BOOST_TEST(seats.value.value_or(-1) == 2);
  BOOST_TEST(seats.max.value_or(-1) == 4);
  BOOST_TEST(seats.undo);
  BOOST_TEST(seats.undo_slots == 8u);
  BOOST_REQUIRE(seats.permit_holders.size() == 1u);
  BOOST_TEST(seats.permit_holders[0].pid == scene.permits);
  BOOST_TEST(seats.permit_holders[0].permits == 2u);
  BOOST_TEST(seats.permit_holders[0].name == "ps-permits");
  BOOST_TEST(seats.permit_holders[0].alive);

  const auto& door = find(s, "door");
  BOOST_TEST(to_string(door.state) == "set");
  BOOST_TEST(door.flag.value_or(false));
  BOOST_TEST(door.mode == "manual");

  const auto& gate = find(s, "gate");
  BOOST_TEST(to_string(gate.state) == "waiting");
  BOOST_TEST(gate.parties.value_or(0) == 3u);
  BOOST_TEST(gate.arrived.value_or(0) == 1u);
  BOOST_TEST(gate.waiters.value_or(0) == 1u);
  BOOST_TEST(gate.waiters_exact);

  const auto& table = find(s, "table");
  BOOST_TEST(to_string(table.state) == "shared");
  BOOST_REQUIRE(table.readers.size() == 1u);
  BOOST_TEST(table.readers[0].pid == scene.reader);
  BOOST_TEST(table.readers[0].name == "ps-reader");

  const auto& ledger = find(s, "ledger");
  BOOST_TEST(ledger.short_kind == "checked_mutex");
  BOOST_TEST(ledger.lock_class == "ledger");
  BOOST_TEST(to_string(ledger.state) == "free");

  const auto& left = find(s, "left");
  BOOST_TEST(to_string(left.state) == "held");
  BOOST_TEST(left.holder->pid == scene.dl_low);
  BOOST_TEST(left.waiters.value_or(0) == 1u);

  const auto& reg = find(s, "registry");
  BOOST_TEST(reg.short_kind == "deadlock_registry");
  BOOST_TEST(reg.classes.value_or(0) == 2u);
  BOOST_TEST(reg.orders.value_or(0) == 1u);
  BOOST_TEST(reg.reports.value_or(0) == 1u);

  BOOST_TEST(find(s, "control").short_kind == "data");

  const auto one = in.object("held");
  BOOST_REQUIRE(one.has_value());
  BOOST_TEST(one->holder->pid == scene.holder);
  BOOST_TEST(!in.object("nothing").has_value());

  // The holder dies: the lock is inconsistent, the waiter becomes its owner.
  ::kill(scene.holder, SIGKILL);
  BOOST_TEST(eventually([&] {
    const auto h = in.object("held");
    return h && h->state == procsync::object_state::inconsistent && h->holder && h->holder->pid == scene.waiter;
  }));
}

BOOST_AUTO_TEST_CASE(read_only_mapping_and_no_locks) {
  lock_scene scene(unique_name("inspect-ro"));
  {
    procsync::segment_inspector in(scene.name);
    (void)in.snapshot();
    // The inspector's own mapping is read-only and shared; the scene's is read-write.
    const std::string perms = mapping_perms(scene.name);
    BOOST_TEST(perms.find("r--s") != std::string::npos, perms);
  }
  // Reading took no lock: every lock is as the scene left it, and the
  // inspector's calls returned although locks are held by idle processes.
  auto& held = scene.segment().find<procsync::mutex>("held");
  BOOST_TEST(held.holder_tid() == static_cast<std::uint32_t>(scene.holder));
  BOOST_TEST(scene.segment().find<procsync::mutex>("poisoned").not_recoverable());
}

BOOST_AUTO_TEST_CASE(deadlock_registry_orders_waits_cycle_and_reports) {
  lock_scene scene(unique_name("inspect-dl"));
  procsync::segment_inspector in(scene.name);
  procsync::deadlock_snapshot d = in.deadlock();
  BOOST_TEST(d.object == "registry");
  BOOST_TEST(d.timeout == std::chrono::milliseconds(200));
  BOOST_TEST(d.policy == "throw_error");
  BOOST_REQUIRE(d.classes.size() == 2u);
  BOOST_REQUIRE(d.orders.size() == 1u);
  BOOST_TEST(d.orders[0].from_name == "ledger");
  BOOST_TEST(d.orders[0].to_name == "accounts");
  BOOST_TEST(d.orders[0].pid == scene.transfer);
  BOOST_TEST(d.orders[0].label == "transfer");
  BOOST_TEST(!d.orders[0].alive);

  BOOST_REQUIRE(d.reports.size() == 1u);
  BOOST_TEST(d.reports_total == 1u);
  BOOST_TEST(d.report_capacity == procsync::deadlock_registry::report_history);
  const auto& v = d.reports[0];
  BOOST_TEST(v.type == "order_violation");
  BOOST_TEST(v.pid == scene.audit);
  BOOST_TEST(v.label == "audit");
  BOOST_TEST(v.cycle_length == 2u);
  BOOST_REQUIRE(v.steps.size() == 2u);
  BOOST_TEST(v.steps[0].lock == "accounts");  // held, then refused: accounts -> ledger
  BOOST_TEST(v.steps[1].lock == "ledger");
  BOOST_TEST(v.steps[1].pid == scene.transfer);
  BOOST_TEST(v.text.find("lock order violation") != std::string::npos);

  // The live deadlock: two entries, one cycle.
  BOOST_REQUIRE(d.waits.size() == 2u);
  for (const auto& w : d.waits) {
    BOOST_TEST(w.in_cycle);
    BOOST_TEST(!w.stale);
    BOOST_TEST(w.kind == "mutex");
    const pid_t other = w.waiter.pid == scene.dl_high ? scene.dl_low : scene.dl_high;
    BOOST_TEST(w.holder.pid == other);
  }
  BOOST_REQUIRE(d.cycles.size() == 1u);
  std::vector<std::uint32_t> members = d.cycles[0];
  std::sort(members.begin(), members.end());
  BOOST_TEST((members == std::vector<std::uint32_t>{static_cast<std::uint32_t>(scene.dl_low),
                                                     static_cast<std::uint32_t>(scene.dl_high)}));

  const std::string dot = procsync::to_dot(d);
  BOOST_TEST(dot.find("digraph") == 0u);
  BOOST_TEST(dot.find("refused") != std::string::npos);
  BOOST_TEST(dot.find("first: " + std::to_string(scene.transfer) + " transfer") != std::string::npos);
  BOOST_TEST(dot.find("t" + std::to_string(scene.dl_high) + " -> t" + std::to_string(scene.dl_low)) !=
             std::string::npos);

  // Let the stopped one go: it is the victim; the report is kept.
  scene.resume_deadlock();
  d = in.deadlock();
  BOOST_TEST(d.cycles.empty());
  BOOST_TEST(d.reports_total == 2u);
  BOOST_REQUIRE(d.reports.size() == 2u);
  const auto& r = d.reports[1];
  BOOST_TEST(r.type == "deadlock");
  BOOST_TEST(r.pid == scene.dl_high);
  BOOST_TEST(r.label == "dl-high");
  BOOST_TEST(r.cycle_length == 2u);
  BOOST_TEST(r.steps.size() == 2u);
  BOOST_TEST(r.text.find("deadlock detected") != std::string::npos);
  BOOST_TEST(procsync::to_dot(d).find("last deadlock (report #2 of 2)") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(report_history_is_bounded) {
  const std::string name = unique_name("inspect-hist");
  procsync::named_segment seg(procsync::create_only, name, 8u << 20);
  auto& reg = seg.construct<procsync::deadlock_registry>("dl", std::chrono::milliseconds(100),
                                                          procsync::order_policy::report);
  auto& a = seg.construct<procsync::checked_mutex>("a", reg.define_class("a"));
  auto& b = seg.construct<procsync::checked_mutex>("b", reg.define_class("b"));
  const int n = static_cast<int>(procsync::deadlock_registry::report_history) + 5;
  const pid_t child = fork_child([&] {
    procsync::install_deadlock_detector(reg, "looper");
    { std::lock_guard x(a); std::lock_guard y(b); }
    for (int i = 0; i < n; ++i) {
      procsync::uninstall_deadlock_detector();  // a fresh chain cache: report again
      procsync::install_deadlock_detector(reg, "looper");
      std::lock_guard y(b);
      std::lock_guard x(a);  // report policy: printed, recorded, acquired
    }
    return 0;
  });
  BOOST_TEST(wait_exit_code(child) == 0);
  const auto d = procsync::segment_inspector(name).deadlock("dl");
  BOOST_TEST(d.reports_total == static_cast<std::uint64_t>(n));
  BOOST_REQUIRE(d.reports.size() == procsync::deadlock_registry::report_history);
  BOOST_TEST(d.reports.front().number == static_cast<std::uint64_t>(n) - procsync::deadlock_registry::report_history + 1);
  BOOST_TEST(d.reports.back().number == static_cast<std::uint64_t>(n));
  procsync::named_segment::remove(name);
}

BOOST_AUTO_TEST_CASE(initializing_missing_and_wrong_kind) {
  BOOST_CHECK_EXCEPTION(procsync::segment_inspector(unique_name("inspect-none")), procsync::error,
                        [](const procsync::error& e) { return e.code() == procsync::errc::segment_not_found; });
  // A segment whose creator has only just created the file (size 0), then
  // sized it with no magic yet: "initializing", never a wait.
  const std::string name = unique_name("inspect-init");
  const int fd = ::shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  BOOST_REQUIRE(fd >= 0);
  {
    procsync::segment_inspector in(name);
    auto s = in.snapshot();
    BOOST_TEST(!s.ready);
    BOOST_TEST(s.objects.empty());
    BOOST_TEST(::ftruncate(fd, 1 << 20) == 0);
    const std::int32_t me = ::getpid();
    const std::uint64_t start = procsync::detail::current_process_identity().start_time;
    BOOST_TEST(::pwrite(fd, &start, sizeof start, offsetof(procsync::detail::segment_header, creator_start_time)) ==
               static_cast<ssize_t>(sizeof start));
    BOOST_TEST(::pwrite(fd, &me, sizeof me, offsetof(procsync::detail::segment_header, creator_pid)) ==
               static_cast<ssize_t>(sizeof me));
    s = in.snapshot();
    BOOST_TEST(!s.ready);
    BOOST_TEST(s.creator_pid == me);
    BOOST_TEST(s.creator_alive);
    BOOST_CHECK_EXCEPTION(in.deadlock(), procsync::error,
                          [](const procsync::error& e) { return e.code() == procsync::errc::corrupt_segment; });
  }
  ::close(fd);
  ::shm_unlink(("/" + name).c_str());

  const std::string plain = unique_name("inspect-plain");
  procsync::named_segment seg(procsync::create_only, plain, 1u << 20);
  seg.construct<procsync::mutex>("m");
  procsync::segment_inspector in(plain);
  BOOST_CHECK_EXCEPTION(in.deadlock(), procsync::error,
                        [](const procsync::error& e) { return e.code() == procsync::errc::object_not_found; });
  BOOST_CHECK_EXCEPTION(in.deadlock("m"), procsync::error,
                        [](const procsync::error& e) { return e.code() == procsync::errc::wrong_object_kind; });
  procsync::named_segment::remove(plain);
}
