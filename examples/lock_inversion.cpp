// lock_inversion.cpp — two processes, two locks, opposite orders.
//
// The classic deadlock: process A holds lock "ledger" and wants "accounts",
// process B holds "accounts" and wants "ledger". Neither can go on. procsync's
// deadlock.hpp catches this two ways (state shared through a
// deadlock_registry in shared memory; each process opts in with
// install_deadlock_detector):
//
// Part 1, lock-order validation (potential deadlocks): checked_mutex objects
//   carry a lock class. When A takes ledger -> accounts, the order is recorded.
//   When B later tries accounts -> ledger, the acquisition is refused *before*
//   it blocks, with errc::lock_order_violation and a report naming both orders
//   and who established them — even though A has exited long ago and no
//   deadlock ever happened.
// Part 2, the wait-for graph (actual deadlocks): two processes really
//   deadlock on two plain procsync::mutex objects. After the registry's
//   deadlock timeout one of them (the victim) gets errc::deadlock_detected
//   from lock(), releases what it holds, and the other one proceeds.
//
// The registry and the locks live in a named segment, so that they can be
// looked at from outside while (or after) this runs: the end of the program
// reads them back with procsync::segment_inspector (procsync/inspect.hpp),
// which is what `procsync-shm deadlock SEGMENT` prints. With `--keep NAME`
// the segment is called NAME and left in /dev/shm, for
//   procsync-shm deadlock NAME --dot | dot -Tsvg > lock_inversion.svg
//   procsync-shm rm NAME
// (scripts/render-graphs.sh draws docs/img/ this way); otherwise it is removed.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include <procsync/deadlock.hpp>
#include <procsync/error.hpp>
#include <procsync/inspect.hpp>
#include <procsync/mutex.hpp>
#include <procsync/process.hpp>
#include <procsync/segment.hpp>

namespace {

// A counter in the segment: a class stored in a named segment names its kind.
struct counter {
  static constexpr const char* kind_name = "example::counter";
  std::atomic<int> value{0};
};

// Everything the processes share, as named objects of one segment.
struct bank {
  procsync::deadlock_registry& registry;
  procsync::checked_mutex& ledger;
  procsync::checked_mutex& accounts;
  procsync::mutex& left;  // plain mutexes for part 2
  procsync::mutex& right;
  std::atomic<int>& holding;
};

// Removes the segment at exit unless it is to be kept.
struct segment_owner {
  std::string name;
  bool keep;
  ~segment_owner() {
    if (!keep) procsync::named_segment::remove(name);
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const bool keep = argc == 3 && std::string_view(argv[1]) == "--keep";
  if (argc != 1 && !keep) {
    std::fprintf(stderr, "usage: lock_inversion [--keep SEGMENT]\n");
    return 2;
  }
  const segment_owner owner{keep ? argv[2] : "lock_inversion-" + std::to_string(::getpid()), keep};
  procsync::named_segment seg(procsync::create_only, owner.name, 8u << 20);  // the registry takes ~3 MiB
  auto& registry = seg.construct<procsync::deadlock_registry>("registry", std::chrono::milliseconds(100));
  bank shared{registry,
              seg.construct<procsync::checked_mutex>("ledger", registry.define_class("ledger")),
              seg.construct<procsync::checked_mutex>("accounts", registry.define_class("accounts")),
              seg.construct<procsync::mutex>("left"),
              seg.construct<procsync::mutex>("right"),
              seg.construct<counter>("holding").value};
  bank* b = &shared;  // children are forks: the segment is mapped at the same address there

  std::printf("== Part 1: an inversion is refused before it can deadlock\n");
  procsync::process transfer{[b] {
    procsync::install_deadlock_detector(b->registry, "transfer");
    // One lock_guard after the other, so the order is ours: ledger, then accounts.
    std::lock_guard first(b->ledger);
    std::lock_guard second(b->accounts);
    std::printf("transfer (pid %d): took ledger, then accounts; exiting\n", ::getpid());
    return 0;
  }};
  transfer.start();
  transfer.join();
  procsync::process audit{[b] {
    procsync::install_deadlock_detector(b->registry, "audit");
    std::lock_guard first(b->accounts);
    try {
      std::lock_guard second(b->ledger);  // the opposite order
      std::printf("audit: took accounts, then ledger (unexpected)\n");
    } catch (const procsync::error& e) {
      std::printf("audit (pid %d): refused: %s\n", ::getpid(), e.what());
      return e.code() == procsync::errc::lock_order_violation ? 0 : 1;
    }
    return 1;
  }};
  audit.start();
  audit.join();
  std::printf("audit exited with %d (0: it got errc::lock_order_violation)\n", audit.exitcode().value());

  std::printf("\n== Part 2: a real deadlock is broken\n");
  auto worker = [b](int me) {
    procsync::install_deadlock_detector(b->registry, me == 0 ? "worker A" : "worker B");
    procsync::mutex& mine = me == 0 ? b->left : b->right;
    procsync::mutex& other = me == 0 ? b->right : b->left;
    std::lock_guard first(mine);
    b->holding.fetch_add(1);
    while (b->holding.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // both hold one
    try {
      std::lock_guard second(other);  // deadlock: each waits for the other
      std::printf("worker %c: got both locks\n", 'A' + me);
    } catch (const procsync::error& e) {
      std::printf("worker %c: %s\n", 'A' + me, e.code() == procsync::errc::deadlock_detected
                                                   ? "chosen as the victim (errc::deadlock_detected), backing off"
                                                   : e.what());
      std::printf("report: %s\n", e.what());
    }
    return 0;  // unlocking `first` lets the survivor proceed
  };
  procsync::process wa{worker, 0}, wb{worker, 1};
  wa.start();
  wb.start();
  wa.join();
  wb.join();
  std::printf("both workers exited: %d %d\n", wa.exitcode().value(), wb.exitcode().value());

  // What the registry kept, read from outside: a read-only inspector.
  const procsync::deadlock_snapshot d = procsync::segment_inspector(owner.name).deadlock();
  std::printf("\n== The registry in segment %s (procsync-shm deadlock %s)\n", owner.name.c_str(),
              owner.name.c_str());
  for (const auto& o : d.orders)
    std::printf("order %s -> %s, first taken by %d (%s)\n", o.from_name.c_str(), o.to_name.c_str(), o.pid,
                o.label.c_str());
  for (const auto& r : d.reports)
    std::printf("report #%llu: %s by %d (%s), a cycle of %u\n", static_cast<unsigned long long>(r.number),
                r.type.c_str(), r.pid, r.label.c_str(), r.cycle_length);
  if (keep)
    std::printf("segment kept: procsync-shm deadlock %s --dot | dot -Tsvg > graph.svg; then procsync-shm rm %s\n",
                owner.name.c_str(), owner.name.c_str());
  return 0;
}
