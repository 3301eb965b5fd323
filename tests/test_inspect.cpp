// procsync/inspect.hpp: snapshots of a segment whose locks real processes
// hold, wait for, die holding and deadlock on, and whose queues they fill,
// drain, sleep on, close and stop inside (tests/support/lock_scene.hpp and the
// cases below), checked against what the test knows to be true.
#define BOOST_TEST_MODULE procsync inspect
#define PROCSYNC_QUEUE_TEST_HOOK 1  // lock_scene.hpp and the cases below stop children inside queue calls
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <procsync/inspect.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <span>
#include <string>
#include <vector>

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

/// A named segment of its own, removed at the end of the test (failed or not),
/// with the children it forked, killed and reaped first.
struct scratch {
  std::string name;
  procsync::named_segment seg;
  std::vector<pid_t> children;

  explicit scratch(const std::string& what) : name(unique_name(what)), seg(procsync::create_only, name, 4u << 20) {}
  ~scratch() {
    for (const pid_t p : children) {
      ::kill(p, SIGKILL);
      ::kill(p, SIGCONT);
      (void)wait_status(p);
    }
    procsync::named_segment::remove(name);
  }
  scratch(const scratch&) = delete;
  scratch& operator=(const scratch&) = delete;

  /// A child that stays (killed at the end); see fork_child.
  template <class F>
  pid_t keep(F&& body) {
    children.push_back(fork_child(std::forward<F>(body)));
    return children.back();
  }
  /// A child that runs to its end: its exit code.
  template <class F>
  int run(F&& body) {
    return wait_exit_code(fork_child(std::forward<F>(body)));
  }
  /// Waits for a kept child's exit: its exit code.
  int finish(pid_t child) {
    std::erase(children, child);
    return wait_exit_code(child);
  }
  procsync::object_snapshot look(const std::string& object) const {
    auto o = procsync::segment_inspector(name).object(object);
    BOOST_REQUIRE(o.has_value());
    return *o;
  }
};

std::span<const std::byte> bytes_of(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

bool is_thread(const procsync::thread_info& t, pid_t pid, const std::string& name) {
  return t.tid == static_cast<std::uint32_t>(pid) && t.pid == pid && t.name == name && t.alive;
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
  BOOST_REQUIRE(held.reserved_for.has_value());
  BOOST_TEST(is_thread(*held.reserved_for, scene.waiter, "ps-waiter"));

  const auto& orphaned = find(s, "orphaned");
  BOOST_TEST(to_string(orphaned.state) == "inconsistent");
  BOOST_TEST(!orphaned.holder.has_value());  // the kernel cleared the dead holder's TID

  BOOST_TEST(to_string(find(s, "poisoned").state) == "poisoned");
  BOOST_TEST(to_string(find(s, "free").state) == "free");
  BOOST_TEST(find(s, "free").waiters.value_or(9) == 0u);
  BOOST_TEST(!find(s, "free").reserved_for.has_value());

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
  // A death mark ends the reservation: the new owner holds it, reserved for no one.
  BOOST_TEST(eventually([&] { return !in.object("held")->reserved_for.has_value(); }));
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

// --- queues --------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(queues_filled_slept_on_stopped_inside_and_closed_by_real_processes) {
  lock_scene scene(unique_name("inspect-queues"));
  procsync::segment_inspector in(scene.name);
  const procsync::segment_snapshot s = in.snapshot();
  auto& seg = scene.segment();

  const auto& jobs = find(s, "jobs");  // 5 pushed by ps-producer
  BOOST_TEST(jobs.short_kind == "queue");
  BOOST_TEST(jobs.kind == "procsync::queue<int64,8>");
  BOOST_TEST(to_string(jobs.state) == "nonempty");
  BOOST_TEST(jobs.items.value_or(0) == 5u);
  const std::size_t jobs_size = seg.find<procsync::queue<std::int64_t, 8>>("jobs").size();
  BOOST_TEST(jobs.items.value_or(0) == jobs_size);
  BOOST_TEST(jobs.capacity.value_or(0) == 8u);
  BOOST_TEST((jobs.closed == std::optional<bool>(false)));
  BOOST_TEST(jobs.consumers_waiting.value_or(9) == 0u);
  BOOST_TEST(jobs.producers_waiting.value_or(9) == 0u);
  BOOST_TEST(jobs.waiters.value_or(9) == 0u);
  BOOST_TEST(jobs.waiters_exact);
  BOOST_TEST(jobs.held_slots.empty());
  BOOST_TEST(!jobs.max_message_bytes.has_value());
  BOOST_TEST(!jobs.holder.has_value());
  BOOST_TEST(jobs.note == "");

  const auto& inbox = find(s, "inbox");  // empty; ps-consumer sleeps in pop()
  BOOST_TEST(to_string(inbox.state) == "empty");
  BOOST_TEST(inbox.items.value_or(9) == 0u);
  BOOST_TEST(inbox.capacity.value_or(0) == 4u);
  BOOST_TEST(inbox.consumers_waiting.value_or(0) == 1u);
  BOOST_TEST(inbox.producers_waiting.value_or(9) == 0u);
  BOOST_TEST(inbox.waiters.value_or(0) == 1u);
  BOOST_TEST(inbox.waiters_exact);

  const auto& stuck = find(s, "stuck");  // 2 pushed, the third stopped holding slot 2
  BOOST_TEST(stuck.kind == "procsync::queue<test::scene_item{size=24,align=8},4>");
  BOOST_TEST(stuck.note == "");
  const std::size_t stuck_size = seg.find<procsync::queue<scene_item, 4>>("stuck").size();
  BOOST_TEST(stuck.items.value_or(0) == stuck_size);
  BOOST_TEST(stuck.items.value_or(0) == 3u);  // size() counts the push under way
  BOOST_REQUIRE(stuck.held_slots.size() == 1u);
  BOOST_TEST(stuck.held_slots[0].slot == 2u);
  BOOST_TEST(stuck.held_slots[0].phase == "writing");
  BOOST_TEST(is_thread(stuck.held_slots[0].thread, scene.pusher, "ps-pusher"));
  BOOST_TEST(!stuck.held_slots[0].skipped);

  const auto& mail = find(s, "mail");  // 3 sent, the fourth stopped holding its reserved slot
  BOOST_TEST(mail.short_kind == "message_queue");
  BOOST_TEST(mail.kind == "procsync::message_queue<64,16>");
  BOOST_TEST(to_string(mail.state) == "nonempty");
  BOOST_TEST(mail.items.value_or(0) == 3u);
  const std::size_t mail_size = seg.find<procsync::message_queue<64, 16>>("mail").size();
  BOOST_TEST(mail.items.value_or(0) == mail_size);
  BOOST_TEST(mail.capacity.value_or(0) == 16u);
  BOOST_TEST(mail.max_message_bytes.value_or(0) == 64u);
  BOOST_TEST(!mail.holder.has_value());  // the index lock is free: the sender copies without it
  BOOST_TEST(mail.waiters.value_or(9) == 0u);
  BOOST_REQUIRE(mail.held_slots.size() == 1u);
  BOOST_TEST(mail.held_slots[0].phase == "reserved");
  BOOST_TEST(mail.held_slots[0].slot < 16u);
  BOOST_TEST(is_thread(mail.held_slots[0].thread, scene.sender, "ps-sender"));
  BOOST_TEST(mail.note == "");

  // Not a queue: none of a queue's fields.
  const auto& held = find(s, "held");
  BOOST_TEST((!held.items && !held.capacity && !held.closed && !held.consumers_waiting && held.held_slots.empty()));

  // Closed by another process: the consumer wakes (queue_closed) and is gone.
  scene.close_inbox();
  const auto closed = in.object("inbox");
  BOOST_REQUIRE(closed.has_value());
  BOOST_TEST(to_string(closed->state) == "closed");
  BOOST_TEST(closed->closed.value_or(false));
  BOOST_TEST(closed->consumers_waiting.value_or(9) == 0u);
  BOOST_TEST(closed->waiters.value_or(9) == 0u);
  BOOST_TEST(!in.object("jobs")->closed.value_or(true));
}

BOOST_AUTO_TEST_CASE(a_queue_fill_level_follows_real_pushes_and_pops_and_a_blocked_producer_waits) {
  scratch t("inspect-fill");
  auto& q = t.seg.construct<procsync::queue<std::int64_t, 8>>("q");
  auto o = t.look("q");
  BOOST_TEST(to_string(o.state) == "empty");
  BOOST_TEST(o.items.value_or(9) == 0u);

  BOOST_TEST(t.run([&] {
    for (std::int64_t i = 0; i < 6; ++i) q.push(i);
    return 0;
  }) == 0);
  o = t.look("q");
  BOOST_TEST(o.items.value_or(0) == 6u);
  BOOST_TEST(to_string(o.state) == "nonempty");

  BOOST_TEST(t.run([&] { return q.pop() == 0 && q.pop() == 1 ? 0 : 1; }) == 0);
  BOOST_TEST(t.look("q").items.value_or(0) == 4u);

  BOOST_TEST(t.run([&] {
    for (std::int64_t i = 6; i < 10; ++i) q.push(i);
    return 0;
  }) == 0);
  o = t.look("q");
  BOOST_TEST(o.items.value_or(0) == 8u);
  BOOST_TEST(to_string(o.state) == "full");
  BOOST_TEST(o.producers_waiting.value_or(9) == 0u);

  const pid_t blocked = t.keep([&] {
    try {
      q.push(99);
    } catch (const procsync::error& e) {
      return e.code() == procsync::errc::queue_closed ? 0 : 2;
    }
    return 1;
  });
  BOOST_REQUIRE(eventually([&] { return blocked_in_futex(blocked); }));
  o = t.look("q");
  BOOST_TEST(o.producers_waiting.value_or(0) == 1u);
  BOOST_TEST(o.consumers_waiting.value_or(9) == 0u);
  BOOST_TEST(o.waiters.value_or(0) == 1u);
  BOOST_TEST(o.items.value_or(0) == 8u);

  BOOST_TEST(t.run([&] {
    q.close();
    return 0;
  }) == 0);
  BOOST_TEST(t.finish(blocked) == 0);  // woke with queue_closed
  o = t.look("q");
  BOOST_TEST(to_string(o.state) == "closed");
  BOOST_TEST(o.closed.value_or(false));
  BOOST_TEST(o.items.value_or(0) == 8u);  // close() keeps what is queued
  BOOST_TEST(o.producers_waiting.value_or(9) == 0u);

  BOOST_TEST(t.run([&] {
    for (int i = 0; i < 8; ++i) (void)q.pop();
    return 0;
  }) == 0);
  o = t.look("q");
  BOOST_TEST(o.items.value_or(9) == 0u);
  BOOST_TEST(to_string(o.state) == "closed");
}

BOOST_AUTO_TEST_CASE(a_message_queue_fill_level_follows_real_sends_and_receives_and_a_blocked_receiver_waits) {
  scratch t("inspect-mq");
  auto& m = t.seg.construct<procsync::message_queue<32, 4>>("m");
  BOOST_TEST(t.run([&] {
    for (const std::string text : {"a", "bb", "ccc", "dddd"}) m.send(bytes_of(text));
    return 0;
  }) == 0);
  auto o = t.look("m");
  BOOST_TEST(o.items.value_or(0) == 4u);
  BOOST_TEST(o.capacity.value_or(0) == 4u);
  BOOST_TEST(o.max_message_bytes.value_or(0) == 32u);
  BOOST_TEST(to_string(o.state) == "full");

  BOOST_TEST(t.run([&] {
    std::array<std::byte, 32> buf;
    return m.receive(buf).size == 1 ? 0 : 1;
  }) == 0);
  BOOST_TEST(t.look("m").items.value_or(0) == 3u);

  BOOST_TEST(t.run([&] {
    std::array<std::byte, 32> buf;
    for (int i = 0; i < 3; ++i) (void)m.receive(buf);
    return 0;
  }) == 0);
  o = t.look("m");
  BOOST_TEST(o.items.value_or(9) == 0u);
  BOOST_TEST(to_string(o.state) == "empty");

  const pid_t receiver = t.keep([&] {
    std::array<std::byte, 32> buf;
    try {
      (void)m.receive(buf);
    } catch (const procsync::error& e) {
      return e.code() == procsync::errc::queue_closed ? 0 : 2;
    }
    return 1;
  });
  BOOST_REQUIRE(eventually([&] { return blocked_in_futex(receiver); }));
  o = t.look("m");
  BOOST_TEST(o.consumers_waiting.value_or(0) == 1u);
  BOOST_TEST(o.producers_waiting.value_or(9) == 0u);
  BOOST_TEST(o.waiters.value_or(0) == 1u);

  BOOST_TEST(t.run([&] {
    m.close();
    return 0;
  }) == 0);
  BOOST_TEST(t.finish(receiver) == 0);
  o = t.look("m");
  BOOST_TEST(to_string(o.state) == "closed");
  BOOST_TEST(o.closed.value_or(false));
  BOOST_TEST(o.consumers_waiting.value_or(9) == 0u);
}

namespace {

struct wide_item {  // slots of a cache line or more: 128 bytes each, 64-aligned
  static constexpr const char* kind_name = "test::wide_item";
  char bytes[100] = {};
};
struct aligned_item {  // 16-aligned: the item starts 16 bytes into its 32-byte slot
  static constexpr const char* kind_name = "test::aligned_item";
  alignas(16) std::int64_t v[2] = {};
};

/// A push stopped holding slot 3 of a queue<T, 5> is found there (the slots
/// are read at the stride the kind implies), alive, then gone once killed.
template <class T>
void check_a_stopped_push_is_found_in_its_slot(const std::string& what) {
  BOOST_TEST_CONTEXT(what) {
    scratch t("inspect-slot-" + what);
    auto& q = t.seg.construct<procsync::queue<T, 5>>("q");
    const pid_t pusher = t.keep([&] {
      for (int i = 0; i < 3; ++i) q.push(T{});
      procsync::detail::queue_test_hook.store(&stop_holding_a_slot);
      q.push(T{});
      return 0;
    });
    BOOST_REQUIRE(eventually([&] { return stopped_now(pusher); }));
    auto o = t.look("q");
    BOOST_TEST(o.note == "");
    BOOST_TEST(o.capacity.value_or(0) == 5u);
    BOOST_TEST(o.items.value_or(0) == q.size());
    BOOST_REQUIRE(o.held_slots.size() == 1u);
    BOOST_TEST(o.held_slots[0].slot == 3u);
    BOOST_TEST(o.held_slots[0].phase == "writing");
    BOOST_TEST(o.held_slots[0].thread.pid == pusher);
    BOOST_TEST(o.held_slots[0].thread.alive);  // stopped is alive

    ::kill(pusher, SIGKILL);
    BOOST_TEST(t.finish(pusher) == -SIGKILL);
    o = t.look("q");
    BOOST_REQUIRE(o.held_slots.size() == 1u);
    BOOST_TEST(o.held_slots[0].thread.tid == static_cast<std::uint32_t>(pusher));
    BOOST_TEST(o.held_slots[0].thread.pid == 0);
    BOOST_TEST(!o.held_slots[0].thread.alive);

    BOOST_TEST(q.recover() == 1u);  // voids the dead push's slot
    BOOST_TEST(t.look("q").held_slots.empty());
  }
}

void stop_in_hand_off(procsync::detail::queue_step s) {
  if (s == procsync::detail::queue_step::into_claimed) ::raise(SIGSTOP);
}
void stop_under_index_lock(procsync::detail::queue_step s) {
  if (s == procsync::detail::queue_step::send_journaled) ::raise(SIGSTOP);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_stopped_push_is_found_in_its_slot_for_every_element_shape) {
  check_a_stopped_push_is_found_in_its_slot<std::int16_t>("int16");
  check_a_stopped_push_is_found_in_its_slot<long double>("float80");
  check_a_stopped_push_is_found_in_its_slot<std::array<std::int32_t, 3>>("array");
  check_a_stopped_push_is_found_in_its_slot<wide_item>("wide");
  check_a_stopped_push_is_found_in_its_slot<aligned_item>("aligned");
}

BOOST_AUTO_TEST_CASE(a_hand_off_stopped_inside_pop_into_holds_its_slot) {
  scratch t("inspect-into");
  auto& q = t.seg.construct<procsync::queue<std::int64_t, 4>>("q");
  auto& dst = t.seg.construct<procsync::handoff<std::int64_t>>("dst");
  BOOST_TEST(t.run([&] {
    q.push(7);
    q.push(8);
    return 0;
  }) == 0);
  const pid_t taker = t.keep([&] {
    procsync::detail::queue_test_hook.store(&stop_in_hand_off);
    q.pop_into(dst);
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return stopped_now(taker); }));
  auto o = t.look("q");
  BOOST_TEST(o.items.value_or(0) == 1u);
  BOOST_REQUIRE(o.held_slots.size() == 1u);
  BOOST_TEST(o.held_slots[0].slot == 0u);
  BOOST_TEST(o.held_slots[0].phase == "handing_off");
  BOOST_TEST(o.held_slots[0].thread.pid == taker);
  BOOST_TEST(o.held_slots[0].thread.alive);

  ::kill(taker, SIGCONT);
  BOOST_TEST(t.finish(taker) == 0);
  BOOST_TEST(t.look("q").held_slots.empty());
  BOOST_TEST(dst.value() == 7);
}

BOOST_AUTO_TEST_CASE(a_message_queue_change_under_way_is_shown_as_of_its_last_commit) {
  scratch t("inspect-journal");
  auto& m = t.seg.construct<procsync::message_queue<16, 4>>("m");
  const pid_t sender = t.keep([&] {
    m.send(bytes_of("one"));
    m.send(bytes_of("two"));
    procsync::detail::queue_test_hook.store(&stop_under_index_lock);
    m.send(bytes_of("three"));  // stopped under the index lock, its change half made
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return stopped_now(sender); }));
  auto o = t.look("m");
  BOOST_REQUIRE(o.holder.has_value());
  BOOST_TEST(o.holder->pid == sender);
  BOOST_TEST(o.items.value_or(0) == 2u);  // the queued count already says 3: not committed
  BOOST_TEST(o.note.find("under way") != std::string::npos, o.note);
  BOOST_REQUIRE(o.held_slots.size() == 1u);  // as of the last commit, its slot is still reserved
  BOOST_TEST(o.held_slots[0].phase == "reserved");
  BOOST_TEST(o.held_slots[0].thread.pid == sender);

  ::kill(sender, SIGKILL);
  BOOST_TEST(t.finish(sender) == -SIGKILL);
  o = t.look("m");
  BOOST_TEST(!o.holder.has_value());  // the kernel cleared the dead holder's TID
  BOOST_TEST(o.items.value_or(0) == 2u);
  BOOST_TEST(o.note.find("died") != std::string::npos, o.note);

  // The next holder rolls the change back: two messages, the dead sender's
  // slot reserved until recover() frees it.
  std::array<std::byte, 16> buf;
  BOOST_TEST(m.try_receive(buf).has_value());
  o = t.look("m");
  BOOST_TEST(o.items.value_or(0) == 1u);
  BOOST_TEST(o.items.value_or(0) == m.size());
  BOOST_TEST(o.note == "");
  BOOST_REQUIRE(o.held_slots.size() == 1u);
  BOOST_TEST(!o.held_slots[0].thread.alive);
  BOOST_TEST(m.recover() == 1u);
  BOOST_TEST(t.look("m").held_slots.empty());
}

BOOST_AUTO_TEST_CASE(corrupt_queue_words_are_clamped_or_dropped_with_a_note) {
  using L = procsync::detail::queue_layout;
  using M = procsync::detail::message_queue_layout;
  scratch t("inspect-corrupt");
  auto& q = t.seg.construct<procsync::queue<std::int64_t, 4>>("q");
  auto& m = t.seg.construct<procsync::message_queue<16, 4>>("m");
  q.push(1);
  q.push(2);
  char* qb = reinterpret_cast<char*>(&q);
  char* mb = reinterpret_cast<char*>(&m);
  const auto put64 = [](char* at, std::uint64_t v) { std::memcpy(at, &v, sizeof v); };
  const auto put32 = [](char* at, std::uint32_t v) { std::memcpy(at, &v, sizeof v); };

  // Position counters out of order: no fill level, said so.
  put64(qb + L::enq_offset, 3);
  put64(qb + L::deq_offset, 10);
  auto o = t.look("q");
  BOOST_TEST(!o.items.has_value());
  BOOST_TEST(to_string(o.state) == "unknown");
  BOOST_TEST(o.note.find("out of order") != std::string::npos, o.note);
  BOOST_TEST(o.capacity.value_or(0) == 4u);

  // Far apart: clamped to the capacity, as size() does.
  put64(qb + L::enq_offset, 1000);
  put64(qb + L::deq_offset, 0);
  o = t.look("q");
  BOOST_TEST(o.items.value_or(0) == 4u);
  BOOST_TEST(o.items.value_or(0) == q.size());
  BOOST_TEST(to_string(o.state) == "full");

  // A sleeper count no thread count reaches; slot words naming a TID that
  // cannot exist, and no owner at all.
  put32(qb + L::items_offset + offsetof(procsync::detail::wait_word, sleepers), 0xfffffff0u);
  const std::size_t stride = L::slot_stride(8, 8);
  char* slots = qb + L::slots_offset(8, 8);
  const procsync::detail::owner_token nobody = (0x3fffffu << procsync::detail::owner_tag_bits) | 5u;
  put64(slots + 1 * stride, 1 | L::writing_phase << 32 | std::uint64_t{nobody} << L::owner_shift);
  put64(slots + 2 * stride, 2 | L::into_phase << 32 | L::skip_bit);
  o = t.look("q");
  BOOST_TEST(!o.consumers_waiting.has_value());
  BOOST_TEST(!o.waiters.has_value());
  BOOST_TEST(o.note.find("consumer sleeper count unreadable") != std::string::npos, o.note);
  BOOST_REQUIRE(o.held_slots.size() == 2u);
  BOOST_TEST(o.held_slots[0].slot == 1u);
  BOOST_TEST(o.held_slots[0].thread.tid == 0x3fffffu);
  BOOST_TEST(o.held_slots[0].thread.pid == 0);
  BOOST_TEST(!o.held_slots[0].thread.alive);
  BOOST_TEST(o.held_slots[1].phase == "handing_off");
  BOOST_TEST(o.held_slots[1].thread.tid == 0u);
  BOOST_TEST(o.held_slots[1].skipped);

  // message_queue: a count beyond the capacity, a slot state that is none, a
  // journal longer than it can be.
  put32(mb + M::queued_offset, 99);
  put32(mb + M::meta_offset(4) + 2 * M::meta_bytes + M::meta_state_offset, 7);
  put32(mb + M::journal_count_offset, 1000);
  o = t.look("m");
  BOOST_TEST(!o.items.has_value());
  BOOST_TEST(to_string(o.state) == "unknown");
  BOOST_TEST(o.note.find("message count unreadable (99)") != std::string::npos, o.note);
  BOOST_TEST(o.note.find("1 slot states unreadable") != std::string::npos, o.note);
  BOOST_TEST(o.note.find("journal unreadable") != std::string::npos, o.note);
  BOOST_TEST(o.capacity.value_or(0) == 4u);
}

namespace {
struct long_named_item {
  static constexpr const char* kind_name =
      "test::an_item_whose_kind_name_is_so_long_that_the_queue_kind_spelling_it_is_cut_short_in_the_object_header";
  std::int64_t v = 0;
};
}  // namespace

BOOST_AUTO_TEST_CASE(a_queue_whose_kind_is_cut_short_shows_what_the_fixed_words_say) {
  scratch t("inspect-cut");
  auto& q = t.seg.construct<procsync::queue<long_named_item, 4>>("q");
  BOOST_TEST(t.run([&] {
    q.push(long_named_item{});
    q.push(long_named_item{});
    return 0;
  }) == 0);
  const auto o = t.look("q");
  BOOST_TEST(o.short_kind == "queue");
  BOOST_TEST(!o.capacity.has_value());
  BOOST_TEST(o.items.value_or(0) == 2u);
  BOOST_TEST(!o.closed.value_or(true));
  BOOST_TEST(o.waiters.value_or(9) == 0u);
  BOOST_TEST(to_string(o.state) == "nonempty");
  BOOST_TEST(o.note.find("capacity not readable") != std::string::npos, o.note);
}
