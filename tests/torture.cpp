// tests/torture.cpp — kill processes at random instructions and prove nothing
// is lost.
//
//   torture [--seconds S] [--workers N] [--seed X] [--kill-ms LO:HI] [--hang-s H]
//
// N worker processes hammer a mix of mutex, recursive_mutex, shared_mutex,
// condition_variable, undo-mode semaphore, event, barrier, shared_value, queue
// and message_queue operations, all in one anonymous shared mapping. This process (the
// orchestrator) is also the killer: every LO..HI ms (random) it SIGKILLs a
// random worker and starts a replacement, or SIGSTOPs one for up to half a
// second (a paused holder is not dead: nobody may steal its lock), then
// SIGCONTs it. Each worker incarnation owns one journal slot in shared memory.
//
// Invariants, checked continuously (by every worker) and at the end (here):
//  - mutual exclusion: a lock acquired without an owner-died report never finds
//    another holder's marks inside (also while that holder is SIGSTOPped);
//  - exactly once: every commit under a lock adds 1 to a total and to the
//    committing slot's count, with an undo log that the next holder rolls back
//    if the committer died; total == sum of counts at every repair, and at the
//    end each slot's count equals the commits its journal recorded, plus one
//    only for a killed worker that was mid-commit;
//  - shared_value<64-byte struct> is never torn (every load is a consistent
//    commit) and its generation is within the journals' bounds;
//  - undo semaphore: permits are conserved (all back when everyone is gone);
//  - auto-reset event: never fires more often than it was set;
//  - queue and message_queue: every item pushed (sent) is received exactly
//    once and untorn, except at most one per worker killed inside pop() or
//    receive(); none lost through pop_into() (the orchestrator resolves a
//    killed worker's hand-off); a push cut short by a kill counts either way;
//  - no hang: no worker makes progress for H seconds (default 20) -> failure,
//    as is a worker that does not exit within 30 s once asked to stop.
// Exit status: 0 if every invariant held, 1 otherwise (with a message).
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "child.hpp"
#include <procsync/barrier.hpp>
#include <procsync/condition_variable.hpp>
#include <procsync/event.hpp>
#include <procsync/message_queue.hpp>
#include <procsync/mutex.hpp>
#include <procsync/queue.hpp>
#include <procsync/recursive_mutex.hpp>
#include <procsync/segment.hpp>
#include <procsync/semaphore.hpp>
#include <procsync/shared_mutex.hpp>
#include <procsync/shared_value.hpp>

namespace {

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

constexpr int max_slots = 65536;  // worker incarnations (the killer stops killing when they run out)
constexpr int max_workers = 48;
constexpr int sem_permits = 4;
constexpr std::size_t sem_undo_slots = 64;
// Queue accounting: the first queue_slots incarnations produce, up to
// queue_items items each per queue (a bitmap of receipts).
constexpr int queue_slots = 4096;
constexpr int queue_items = 1024;
constexpr std::size_t message_bytes = 48;

// Relaxed stores with compiler-only fences: inside a critical section the only
// "observer" that can see a half-done step is the next holder after our death,
// and the kernel's exit path orders our stores before its robust-list release.
// The signal fences stop the compiler from reordering the steps.
inline void step() { std::atomic_signal_fence(std::memory_order_seq_cst); }

/// Per-incarnation journal; written only by its worker.
struct journal {
  std::atomic<std::int32_t> pid{0};
  std::atomic<std::uint32_t> killed{0};  // set by the orchestrator after reaping a SIGKILL
  std::atomic<std::uint64_t> ops{0};
  // Per ledger: commits done (after unlock) and 1 while a commit is under way.
  std::atomic<std::uint64_t> done[4] = {};
  std::atomic<std::uint32_t> pending[4] = {};
  std::atomic<std::uint64_t> sv_done{0};
  std::atomic<std::uint32_t> sv_pending{0};
  std::atomic<std::uint64_t> counter_done{0};
  std::atomic<std::uint32_t> counter_pending{0};
  // queue (0) and message_queue (1): pushes started / returned, inside a pop
  std::atomic<std::uint32_t> q_attempted[2] = {};
  std::atomic<std::uint32_t> q_done[2] = {};
  std::atomic<std::uint32_t> q_pop_pending[2] = {};
  procsync::handoff<std::uint64_t> dst;  // this incarnation's pop_into destination
};

/// Data protected by one lock, with an undo log for the holder's commit.
struct ledger {
  std::atomic<std::uint64_t> total{0};
  std::atomic<std::uint32_t> inside{0};  // slot + 1 of the holder while it commits
  std::atomic<std::uint32_t> log_active{0};
  std::atomic<std::uint32_t> log_slot{0};
  std::atomic<std::uint64_t> log_total{0};
  std::atomic<std::uint64_t> log_count{0};
  std::atomic<std::uint64_t> repairs{0};
  std::atomic<std::uint64_t> counts[max_slots] = {};
};

struct blob {  // 64 bytes: shared_value uses its lock-based committed slots
  std::uint64_t gen;
  std::uint64_t words[7];
};

enum ledger_id { L_MUTEX = 0, L_RMUTEX = 1, L_RW = 2, L_CV = 3 };

struct world {
  std::atomic<std::uint32_t> stop{0};
  std::atomic<std::uint64_t> progress{0};
  std::atomic<std::uint32_t> slots_used{0};
  std::atomic<std::uint32_t> failed{0};
  char failure[512] = {};

  procsync::mutex m;
  procsync::recursive_mutex rm;
  procsync::shared_mutex rw;
  procsync::mutex cv_m;
  procsync::condition_variable cv;
  procsync::undo_semaphore<sem_permits, sem_undo_slots> sem{procsync::undo, sem_permits};
  procsync::event ev{procsync::event::reset_mode::automatic};
  procsync::event manual_ev{procsync::event::reset_mode::manual};
  procsync::barrier bar{2};
  procsync::shared_value<blob> sv{blob{0, {0, 1, 2, 3, 4, 5, 6}}};
  procsync::shared_value<std::uint64_t> counter{0};

  std::atomic<std::uint64_t> ev_sets{0}, ev_fired{0}, bar_passed{0}, bar_broken{0}, sem_taken{0}, reads{0};

  procsync::queue<std::uint64_t, 8> q;
  procsync::message_queue<message_bytes, 8> mq;
  std::atomic<std::uint64_t> q_received{0}, mq_received{0};
  std::atomic<std::uint8_t> q_seen[queue_slots][queue_items] = {};
  std::atomic<std::uint8_t> q_seen_into[queue_slots][queue_items] = {};
  std::atomic<std::uint8_t> mq_seen[queue_slots][queue_items] = {};

  ledger ledgers[4];
  journal journals[max_slots];
};

world* W = nullptr;

[[noreturn]] void violation(const char* fmt, ...) {
  char buf[sizeof W->failure];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  std::uint32_t expected = 0;
  if (W->failed.compare_exchange_strong(expected, 1)) std::memcpy(W->failure, buf, sizeof buf);
  std::fprintf(stderr, "torture: pid %d: INVARIANT VIOLATED: %s\n", ::getpid(), buf);
  std::fflush(stderr);
  ::_exit(3);
}

std::uint64_t sum_counts(const ledger& L) {
  std::uint64_t s = 0;
  const std::uint32_t used = W->slots_used.load();
  for (std::uint32_t i = 0; i < used && i < max_slots; ++i) s += L.counts[i].load(std::memory_order_relaxed);
  return s;
}

/// Called holding L's lock after an owner died: roll back a half-done commit.
void repair(ledger& L, const char* what) {
  if (L.log_active.load(std::memory_order_relaxed)) {
    const std::uint32_t s = L.log_slot.load(std::memory_order_relaxed);
    L.total.store(L.log_total.load(std::memory_order_relaxed), std::memory_order_relaxed);
    L.counts[s].store(L.log_count.load(std::memory_order_relaxed), std::memory_order_relaxed);
    step();
    L.log_active.store(0, std::memory_order_relaxed);
  }
  step();
  L.inside.store(0, std::memory_order_relaxed);
  L.repairs.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t t = L.total.load(std::memory_order_relaxed), s = sum_counts(L);
  if (t != s) violation("%s ledger after repair: total %" PRIu64 " != sum of counts %" PRIu64, what, t, s);
}

/// Called holding L's lock, acquired without an owner-died report.
void check_exclusive(const ledger& L, const char* what) {
  const std::uint32_t in = L.inside.load(std::memory_order_relaxed);
  if (in != 0 || L.log_active.load(std::memory_order_relaxed) != 0)
    violation("%s: acquired (no owner death reported) but slot %u is still inside (log_active %u)", what, in - 1,
              L.log_active.load());
}

void spin(std::mt19937_64& rng);
void commit(ledger& L, int slot, std::mt19937_64& rng) {
  L.inside.store(static_cast<std::uint32_t>(slot + 1), std::memory_order_relaxed);
  L.log_slot.store(static_cast<std::uint32_t>(slot), std::memory_order_relaxed);
  L.log_total.store(L.total.load(std::memory_order_relaxed), std::memory_order_relaxed);
  L.log_count.store(L.counts[slot].load(std::memory_order_relaxed), std::memory_order_relaxed);
  step();
  L.log_active.store(1, std::memory_order_relaxed);
  step();
  L.total.store(L.total.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  step();
  // Widen the window in which a kill leaves a half-done commit.
  // A yield keeps the lock held while others run (and the killer looks).
  spin(rng);
  L.counts[slot].store(L.counts[slot].load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  step();
  L.log_active.store(0, std::memory_order_relaxed);
  step();
  L.inside.store(0, std::memory_order_relaxed);
}

/// Stays a while where we are: a short busy loop, sometimes a yield.
void spin(std::mt19937_64& rng) {
  volatile int i = static_cast<int>(rng() % 512);
  while (i > 0) i = i - 1;
  if (rng() % 4 == 0) ::sched_yield();
}

void check_blob(const blob& b, const char* where) {
  for (int i = 0; i < 7; ++i)
    if (b.words[i] != b.gen * 7 + static_cast<std::uint64_t>(i))
      violation("torn shared_value (%s): gen %" PRIu64 " word[%d] = %" PRIu64, where, b.gen, i, b.words[i]);
}

template <class Lock>
void locked_commit(Lock& lock, ledger& L, journal& j, int id, int slot, std::mt19937_64& rng, const char* what) {
  j.pending[id].store(1);
  const procsync::lock_status st = lock.lock_robust();
  if (st == procsync::lock_status::owner_died) {
    repair(L, what);
    lock.consistent();
  } else {
    check_exclusive(L, what);
  }
  commit(L, slot, rng);
  if (rng() % 128 == 0) {
    const std::uint64_t t = L.total.load(std::memory_order_relaxed), s = sum_counts(L);
    if (t != s) violation("%s ledger: total %" PRIu64 " != sum of counts %" PRIu64, what, t, s);
  }
  lock.unlock();
  j.done[id].fetch_add(1);
  step();
  j.pending[id].store(0);
}

std::uint64_t queue_item(int slot, std::uint32_t seq) { return std::uint64_t(slot) << 32 | seq; }

/// Records a queue item received by pop() (counted: duplicates show).
void q_record(std::uint64_t item) {
  const std::uint64_t slot = item >> 32, seq = item & 0xffffffffu;
  if (slot >= queue_slots || seq >= queue_items) violation("queue: item %" PRIx64 " was never pushed", item);
  W->q_seen[slot][seq].fetch_add(1);
  W->q_received.fetch_add(1, std::memory_order_relaxed);
}

/// Records an item delivered into a handoff: idempotent, so the orchestrator
/// may record it again for a worker killed between this and its clear().
void q_record_into(std::uint64_t item) {
  const std::uint64_t slot = item >> 32, seq = item & 0xffffffffu;
  if (slot >= queue_slots || seq >= queue_items) violation("queue: item %" PRIx64 " was never pushed", item);
  W->q_seen_into[slot][seq].store(1);
  W->q_received.fetch_add(1, std::memory_order_relaxed);
}

/// A message: (slot, seq, priority) then a pattern to its length; untorn or a violation.
std::size_t make_message(unsigned char* out, int slot, std::uint32_t seq, unsigned priority) {
  const std::uint32_t head[3] = {static_cast<std::uint32_t>(slot), seq, priority};
  std::memcpy(out, head, sizeof head);
  const std::size_t n = sizeof head + (seq * 7 + static_cast<std::uint32_t>(slot)) % (message_bytes - sizeof head + 1);
  for (std::size_t i = sizeof head; i < n; ++i) out[i] = static_cast<unsigned char>(seq * 31 + i + slot);
  return n;
}

void mq_record(const unsigned char* in, std::size_t n, unsigned priority) {
  std::uint32_t head[3];
  if (n < sizeof head) violation("message_queue: a %zu-byte message", n);
  std::memcpy(head, in, sizeof head);
  if (head[0] >= queue_slots || head[1] >= queue_items) violation("message_queue: message (%u, %u) never sent", head[0], head[1]);
  unsigned char expect[message_bytes];
  const std::size_t m = make_message(expect, static_cast<int>(head[0]), head[1], head[2]);
  if (m != n || std::memcmp(expect, in, n) != 0 || head[2] != priority)
    violation("message_queue: torn message (%u, %u): %zu bytes, priority %u", head[0], head[1], n, priority);
  W->mq_seen[head[0]][head[1]].fetch_add(1);
  W->mq_received.fetch_add(1, std::memory_order_relaxed);
}

int worker(int slot, std::uint64_t seed) {
  journal& j = W->journals[slot];
  j.pid.store(::getpid());
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + static_cast<std::uint64_t>(slot));
  while (!W->stop.load(std::memory_order_relaxed)) {
    try {
      switch (rng() % 13) {
        case 0:
        case 1: locked_commit(W->m, W->ledgers[L_MUTEX], j, L_MUTEX, slot, rng, "mutex"); break;
        case 2: {  // recursive: hold it twice around the commit
          ledger& L = W->ledgers[L_RMUTEX];
          j.pending[L_RMUTEX].store(1);
          const procsync::lock_status st = W->rm.lock_robust();
          if (st == procsync::lock_status::owner_died) {
            repair(L, "recursive_mutex");
            W->rm.consistent();
          } else {
            check_exclusive(L, "recursive_mutex");
          }
          if (W->rm.lock_robust() != procsync::lock_status::acquired) violation("recursive_mutex: re-entry not plain");
          commit(L, slot, rng);
          W->rm.unlock();
          W->rm.unlock();
          j.done[L_RMUTEX].fetch_add(1);
          step();
          j.pending[L_RMUTEX].store(0);
          break;
        }
        case 3:
          if (rng() % 2) {
            locked_commit(W->rw, W->ledgers[L_RW], j, L_RW, slot, rng, "shared_mutex (writer)");
          } else {
            const procsync::lock_status st = W->rw.lock_shared_robust();
            if (st == procsync::lock_status::acquired) check_exclusive(W->ledgers[L_RW], "shared_mutex (reader)");
            W->reads.fetch_add(1, std::memory_order_relaxed);
            W->rw.unlock_shared();
          }
          break;
        case 4: {  // condition variable: commit + notify, or wait for a commit
          ledger& L = W->ledgers[L_CV];
          if (rng() % 2) {
            locked_commit(W->cv_m, L, j, L_CV, slot, rng, "condition_variable mutex");
            W->cv.notify_all();
          } else {
            std::unique_lock<procsync::mutex> lk(W->cv_m, std::defer_lock);
            if (W->cv_m.lock_robust() == procsync::lock_status::owner_died) {
              repair(L, "condition_variable mutex");
              W->cv_m.consistent();
            }
            lk = std::unique_lock<procsync::mutex>(W->cv_m, std::adopt_lock);
            const std::uint64_t seen = L.total.load(std::memory_order_relaxed);
            const auto deadline = clk::now() + 20ms;
            while (L.total.load(std::memory_order_relaxed) == seen) {
              const std::cv_status r = W->cv.wait_until(lk, deadline);
              if (W->cv_m.inconsistent()) {
                repair(L, "condition_variable mutex (after wait)");
                W->cv_m.consistent();
              } else {
                check_exclusive(L, "condition_variable mutex (after wait)");
              }
              if (r == std::cv_status::timeout) break;
            }
          }
          break;
        }
        case 5:  // undo semaphore: take a permit, hold it a little, give it back
          if (W->sem.try_acquire_for(50ms)) {
            W->sem_taken.fetch_add(1, std::memory_order_relaxed);
            const std::ptrdiff_t v = W->sem.value();
            if (v < 0 || v > sem_permits) violation("semaphore value %td out of [0, %d]", v, sem_permits);
            spin(rng);
            W->sem.release();
          }
          break;
        case 6:  // auto-reset event: set, or wait for a set
          if (rng() % 2) {
            W->ev_sets.fetch_add(1);  // counted before: fired <= sets holds even if we die here
            W->ev.set();
          } else if (W->ev.wait_for(5ms)) {
            W->ev_fired.fetch_add(1);
          }
          if (rng() % 4 == 0) {
            if (rng() % 2) W->manual_ev.set();
            else W->manual_ev.clear();
          }
          break;
        case 7:  // barrier of two: meet whoever comes next, or break and reset
          try {
            (void)W->bar.wait(20ms);
            W->bar_passed.fetch_add(1, std::memory_order_relaxed);
          } catch (const procsync::error& e) {
            if (e.code() != procsync::errc::barrier_broken) throw;
            W->bar_broken.fetch_add(1, std::memory_order_relaxed);
            if (W->bar.broken()) W->bar.reset();
          }
          break;
        case 8:
        case 9: {  // shared_value of a 64-byte struct: never torn
          if (rng() % 2) {
            check_blob(W->sv.load(), "load");
          } else {
            j.sv_pending.store(1);
            W->sv.with_lock([&](blob& b) {
              check_blob(b, "with_lock");
              b.gen += 1;
              for (int i = 0; i < 7; ++i) {
                b.words[i] = b.gen * 7 + static_cast<std::uint64_t>(i);
                if (i == 3) spin(rng);
              }
            });
            j.sv_done.fetch_add(1);
            step();
            j.sv_pending.store(0);
          }
          break;
        }
        case 10: {  // queue: push, pop or pop_into, never blocking long
          const int what = static_cast<int>(rng() % 3);
          if (what == 0 && slot < queue_slots && j.q_attempted[0].load() < queue_items) {
            const std::uint32_t seq = j.q_attempted[0].load();
            j.q_attempted[0].store(seq + 1);
            if (W->q.try_push_for(queue_item(slot, seq), 5ms)) j.q_done[0].store(seq + 1);
            else j.q_attempted[0].store(seq);  // not pushed: the number is used again
          } else if (what == 1) {
            j.q_pop_pending[0].store(1);
            if (const auto got = W->q.try_pop_for(5ms)) q_record(*got);
            step();
            j.q_pop_pending[0].store(0);
          } else if (W->q.try_pop_into_for(j.dst, 5ms)) {
            q_record_into(j.dst.value());
            j.dst.clear();
          }
          break;
        }
        case 11: {  // message_queue: send with a random priority, or receive
          if (rng() % 2 == 0 && slot < queue_slots && j.q_attempted[1].load() < queue_items) {
            const std::uint32_t seq = j.q_attempted[1].load();
            const unsigned priority = static_cast<unsigned>(rng() % 4);
            unsigned char msg[message_bytes];
            const std::size_t n = make_message(msg, slot, seq, priority);
            j.q_attempted[1].store(seq + 1);
            if (W->mq.try_send_for(std::as_bytes(std::span(msg, n)), priority, 5ms)) j.q_done[1].store(seq + 1);
            else j.q_attempted[1].store(seq);
          } else {
            unsigned char buf[message_bytes];
            j.q_pop_pending[1].store(1);
            if (const auto got = W->mq.try_receive_for(std::as_writable_bytes(std::span(buf)), 5ms))
              mq_record(buf, got->size, got->priority);
            step();
            j.q_pop_pending[1].store(0);
          }
          break;
        }
        default:  // lock-free shared_value<uint64_t>
          j.counter_pending.store(1);
          (void)W->counter.fetch_add(1);
          j.counter_done.fetch_add(1);
          step();
          j.counter_pending.store(0);
          break;
      }
    } catch (const procsync::error& e) {
      violation("unexpected procsync::error: %s", e.what());
    }
    j.ops.fetch_add(1, std::memory_order_relaxed);
    W->progress.fetch_add(1, std::memory_order_relaxed);
  }
  return 0;
}

struct options {
  double seconds = 30;
  int workers = 8;
  std::uint64_t seed = 0;
  int kill_lo_ms = 10, kill_hi_ms = 150;
  int hang_s = 20;
  double warmup_s = -1;  // fault-free warm-up; < 0: seconds / 8, at most 5
  double floor_div = 10;  // the faulted phase must keep >= 1/floor_div of the warm-up's ops/s
};

options parse(int argc, char** argv) {
  options o;
  o.seed = static_cast<std::uint64_t>(clk::now().time_since_epoch().count());
  for (int i = 1; i < argc; i += 2) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (v == nullptr) {
      std::fprintf(stderr, "torture: %s needs a value\n", a.c_str());
      std::exit(2);
    }
    if (a == "--seconds") o.seconds = std::atof(v);
    else if (a == "--workers") o.workers = std::atoi(v);
    else if (a == "--seed") o.seed = std::strtoull(v, nullptr, 0);
    else if (a == "--kill-ms") std::sscanf(v, "%d:%d", &o.kill_lo_ms, &o.kill_hi_ms);
    else if (a == "--hang-s") o.hang_s = std::atoi(v);
    else if (a == "--warmup-s") o.warmup_s = std::atof(v);
    else if (a == "--floor") o.floor_div = std::atof(v);
    else {
      std::fprintf(stderr,
                   "usage: torture [--seconds S] [--workers N] [--seed X] [--kill-ms LO:HI] [--hang-s H] "
                   "[--warmup-s W] [--floor F]\n");
      std::exit(2);
    }
  }
  o.workers = std::clamp(o.workers, 1, max_workers);
  o.kill_hi_ms = std::max(o.kill_hi_ms, o.kill_lo_ms);
  if (o.warmup_s < 0) o.warmup_s = std::min(5.0, o.seconds / 8);
  return o;
}

int failures = 0;
void fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fprintf(stderr, "torture: FAILED: ");
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, "\n");
  va_end(ap);
  ++failures;
}

}  // namespace

int main(int argc, char** argv) {
  const options opt = parse(argc, argv);
  std::printf("torture: seed %" PRIu64 " (rerun with --seed %" PRIu64 "), %d workers, %.0f s, kill every %d..%d ms\n",
              opt.seed, opt.seed, opt.workers, opt.seconds, opt.kill_lo_ms, opt.kill_hi_ms);
  std::fflush(stdout);
  auto mapping = procsync::make_anonymous<world>();
  W = mapping.get();
  std::mt19937_64 rng(opt.seed);

  std::map<pid_t, int> live;  // pid -> slot
  auto spawn = [&]() -> bool {
    const std::uint32_t slot = W->slots_used.load();
    if (slot >= max_slots) return false;
    W->slots_used.store(slot + 1);
    const std::uint64_t seed = opt.seed;
    const pid_t pid = procsync_test::fork_child([slot, seed] { return worker(static_cast<int>(slot), seed); });
    W->journals[slot].pid.store(pid);
    live[pid] = static_cast<int>(slot);
    return true;
  };
  for (int i = 0; i < opt.workers; ++i) spawn();

  // Fault-free warm-up: the throughput every worker reaches with nothing
  // killed or stopped. The faulted run below must keep a fraction of it
  // (--floor): a recovery or hand-off that got much slower (a lost wake that
  // only a 50 ms re-arm slice repairs, a death noticed late) fails the run
  // instead of passing slowly.
  double warm_rate = 0;
  if (opt.warmup_s > 0) {
    const std::uint64_t p0 = W->progress.load();
    const auto w0 = clk::now();
    // The measurement window itself (a rate over a duration), not a sequencing step.
    std::this_thread::sleep_for(std::chrono::duration<double>(opt.warmup_s));
    warm_rate = double(W->progress.load() - p0) / std::chrono::duration<double>(clk::now() - w0).count();
    std::printf("torture: fault-free warm-up %.1f s: %.0f ops/s\n", opt.warmup_s, warm_rate);
    std::fflush(stdout);
  }
  const std::uint64_t faulted_p0 = W->progress.load();

  std::uint64_t kills = 0, stops = 0, targeted = 0;
  std::map<pid_t, clk::time_point> stopped;  // pid -> when to SIGCONT
  const auto start = clk::now();
  const auto end = start + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(opt.seconds));
  std::uint64_t last_progress = W->progress.load();
  auto last_progress_at = clk::now();
  bool hung = false;

  auto reap_unexpected = [&] {
    int status = 0;
    for (auto it = live.begin(); it != live.end();) {
      const pid_t r = ::waitpid(it->first, &status, WNOHANG);
      if (r == it->first) {
        fail("worker pid %d (slot %d) ended on its own: %s %d", r, it->second,
             WIFSIGNALED(status) ? "signal" : "exit code", WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        stopped.erase(it->first);
        it = live.erase(it);
      } else {
        ++it;
      }
    }
  };

  while (clk::now() < end && failures == 0) {
    // The behaviour under test: faults at random intervals, not a sequencing step.
    std::this_thread::sleep_for(std::chrono::milliseconds(
        opt.kill_lo_ms + static_cast<int>(rng() % static_cast<std::uint64_t>(opt.kill_hi_ms - opt.kill_lo_ms + 1))));
    const auto now = clk::now();
    for (auto it = stopped.begin(); it != stopped.end();) {
      if (now >= it->second) {
        ::kill(it->first, SIGCONT);
        it = stopped.erase(it);
      } else {
        ++it;
      }
    }
    reap_unexpected();
    if (failures) break;
    const std::uint64_t p = W->progress.load();
    if (p != last_progress) {
      last_progress = p;
      last_progress_at = now;
    } else if (now - last_progress_at > std::chrono::seconds(opt.hang_s)) {
      fail("no worker made progress for %d s: hang", opt.hang_s);
      hung = true;
      break;
    }
    if (live.empty()) break;
    auto victim = live.begin();
    std::advance(victim, static_cast<long>(rng() % live.size()));
    if (rng() % 100 < 60) {
      // Targeted: a worker seen holding a lock (or mid-commit), so that kills
      // land inside critical sections, not only in waits. Workers are single
      // threaded: the holder's TID is its pid.
      const auto give_up = clk::now() + 5ms;
      for (int poll = 0; clk::now() < give_up; ++poll) {
        if (poll % 16 == 15) ::sched_yield();
        const std::uint32_t rw_in = W->ledgers[L_RW].inside.load();
        const std::uint32_t candidates[] = {
            W->m.holder_tid(), W->rm.holder_tid(), W->cv_m.holder_tid(), W->sv.get_lock().holder_tid(),
            rw_in ? static_cast<std::uint32_t>(W->journals[rw_in - 1].pid.load()) : 0u};
        const std::uint32_t pick = candidates[rng() % std::size(candidates)];
        const auto found = live.find(static_cast<pid_t>(pick));
        if (pick != 0 && found != live.end() && !stopped.count(found->first)) {
          victim = found;
          ++targeted;
          break;
        }
      }
    }
    const pid_t pid = victim->first;
    if (rng() % 100 < 80) {
      if (W->slots_used.load() >= max_slots) continue;  // out of journal slots: keep the rest running
      ::kill(pid, SIGKILL);
      const int status = procsync_test::wait_status(pid, 30s);
      if (status == -1 || !WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
        fail("worker pid %d: expected death by SIGKILL, got status %d", pid, status);
        break;
      }
      W->journals[victim->second].killed.store(1);
      // Its pop_into hand-off, if one was under way: finished or undone.
      if (W->q.resolve(W->journals[victim->second].dst)) {
        q_record_into(W->journals[victim->second].dst.value());
        W->journals[victim->second].dst.clear();
      }
      live.erase(victim);
      stopped.erase(pid);
      ++kills;
      spawn();
    } else if (!stopped.count(pid)) {
      ::kill(pid, SIGSTOP);
      stopped[pid] = now + std::chrono::milliseconds(20 + rng() % 480);
      ++stops;
    }
  }

  const double faulted_rate =
      double(W->progress.load() - faulted_p0) / std::chrono::duration<double>(clk::now() - start).count();
  std::printf("torture: faulted run: %.0f ops/s (%.1f%% of the warm-up; floor %.1f%%)\n", faulted_rate,
              warm_rate > 0 ? 100 * faulted_rate / warm_rate : 0.0, 100 / opt.floor_div);
  if (warm_rate > 0 && failures == 0 && faulted_rate * opt.floor_div < warm_rate)
    fail("throughput %.0f ops/s under faults is below 1/%.0f of the fault-free warm-up's %.0f ops/s", faulted_rate,
         opt.floor_div, warm_rate);

  // Stop: resume the paused, ask everyone to finish, wait with a watchdog.
  for (const auto& s : stopped) ::kill(s.first, SIGCONT);
  W->stop.store(1);
  for (const auto& [pid, slot] : live) {
    const int status = procsync_test::wait_status(pid, hung ? 1s : 30s);
    if (status == -1) {
      fail("worker pid %d (slot %d) did not exit within 30 s of the stop request: hang", pid, slot);  // killed
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fail("worker pid %d (slot %d) ended with status %d", pid, slot, status);
    }
  }
  if (W->failed.load()) fail("a worker saw: %s", W->failure);
  const double elapsed = std::chrono::duration<double>(clk::now() - start).count();

  // Final checks. Take each lock once more, as a worker would, to roll back a
  // commit left half-done by the last kill.
  const std::uint32_t used = W->slots_used.load();
  std::uint64_t ops = 0;
  for (std::uint32_t s = 0; s < used; ++s) ops += W->journals[s].ops.load();
  const char* names[4] = {"mutex", "recursive_mutex", "shared_mutex", "condition_variable mutex"};
  std::uint64_t repairs = 0, commits = 0;
  if (failures == 0) {
    auto final_repair = [&](auto& lock, ledger& L, const char* what) {
      if (lock.lock_robust() == procsync::lock_status::owner_died) {
        repair(L, what);
        lock.consistent();
      } else {
        check_exclusive(L, what);
      }
      lock.unlock();
    };
    final_repair(W->m, W->ledgers[L_MUTEX], names[0]);
    final_repair(W->rm, W->ledgers[L_RMUTEX], names[1]);
    final_repair(W->rw, W->ledgers[L_RW], names[2]);
    final_repair(W->cv_m, W->ledgers[L_CV], names[3]);
    for (int id = 0; id < 4; ++id) {
      const ledger& L = W->ledgers[id];
      repairs += L.repairs.load();
      commits += L.total.load();
      if (L.total.load() != sum_counts(L))
        fail("%s ledger: total %" PRIu64 " != sum of counts %" PRIu64, names[id], L.total.load(), sum_counts(L));
      for (std::uint32_t s = 0; s < used; ++s) {
        const journal& j = W->journals[s];
        const std::uint64_t c = L.counts[s].load(), d = j.done[id].load();
        const bool killed = j.killed.load() != 0, pending = j.pending[id].load() != 0;
        const bool ok = c == d || (killed && pending && c == d + 1);
        if (!ok || (!killed && pending))
          fail("%s ledger, slot %u (%s): counted %" PRIu64 " commits, journal says %" PRIu64 " (pending %d)",
               names[id], s, killed ? "killed" : "exited", c, d, pending ? 1 : 0);
      }
    }
    std::uint64_t sv_done = 0, sv_pending = 0, c_done = 0, c_pending = 0;
    for (std::uint32_t s = 0; s < used; ++s) {
      const journal& j = W->journals[s];
      sv_done += j.sv_done.load();
      sv_pending += j.sv_pending.load();
      c_done += j.counter_done.load();
      c_pending += j.counter_pending.load();
    }
    const blob b = W->sv.load();
    check_blob(b, "final load");
    if (b.gen < sv_done || b.gen > sv_done + sv_pending)
      fail("shared_value<blob>: generation %" PRIu64 " outside journal bounds [%" PRIu64 ", %" PRIu64 "]", b.gen,
           sv_done, sv_done + sv_pending);
    const std::uint64_t cv = W->counter.load();
    if (cv < c_done || cv > c_done + c_pending)
      fail("shared_value<uint64_t>: %" PRIu64 " outside journal bounds [%" PRIu64 ", %" PRIu64 "]", cv, c_done,
           c_done + c_pending);
    const std::ptrdiff_t reclaimed = W->sem.reclaim_dead_holders();
    if (W->sem.value() != sem_permits)
      fail("semaphore: %td permits after everyone left (reclaimed %td at the end), expected %d", W->sem.value(),
           reclaimed, sem_permits);
    if (W->ev_fired.load() > W->ev_sets.load())
      fail("auto-reset event fired %" PRIu64 " times but was set only %" PRIu64 " times", W->ev_fired.load(),
           W->ev_sets.load());
    // Queues: drain (timed pops free slots that killed producers left), then
    // account for every item.
    while (const auto got = W->q.try_pop_for(100ms)) q_record(*got);
    unsigned char buf[message_bytes];
    while (const auto got = W->mq.try_receive_for(std::as_writable_bytes(std::span(buf)), 100ms))
      mq_record(buf, got->size, got->priority);
    const char* qnames[2] = {"queue", "message_queue"};
    for (int k = 0; k < 2; ++k) {
      std::uint64_t missing = 0, allowance = 0, pushed = 0;
      for (std::uint32_t s = 0; s < used; ++s) {
        const journal& j = W->journals[s];
        if (j.killed.load() && j.q_pop_pending[k].load()) ++allowance;
        if (s >= static_cast<std::uint32_t>(queue_slots)) continue;
        const std::uint32_t attempted = j.q_attempted[k].load(), done = j.q_done[k].load();
        pushed += done;
        for (std::uint32_t i = 0; i < attempted && i < static_cast<std::uint32_t>(queue_items); ++i) {
          const int n = k == 0 ? W->q_seen[s][i].load() + W->q_seen_into[s][i].load() : W->mq_seen[s][i].load();
          if (n > 1) fail("%s: item %u of slot %u received %d times", qnames[k], i, s, n);
          if (n == 0 && i < done) ++missing;
        }
      }
      if (missing > allowance)
        fail("%s: %" PRIu64 " items lost, but only %" PRIu64 " consumers died inside a pop", qnames[k], missing,
             allowance);
      std::printf("torture: %s: %" PRIu64 " pushed, %" PRIu64 " taken by consumers killed in the call (at most %" PRIu64
                  " allowed)\n",
                  qnames[k], pushed, missing, allowance);
    }
  }
  std::printf(
      "torture: %.1f s, %" PRIu64 " ops, %" PRIu64 " lock commits, %" PRIu64 " kills, %" PRIu64
      " stops, %" PRIu64 " targeted at lock holders, %u incarnations, %" PRIu64 " lock repairs after owner death, %" PRIu64 " semaphore acquisitions, %" PRIu64
      " barrier passes, %" PRIu64 " barrier breaks, %" PRIu64 " reads, shared_value gen %" PRIu64 "\n",
      elapsed, ops, commits, kills, stops, targeted, used, repairs, W->sem_taken.load(), W->bar_passed.load(),
      W->bar_broken.load(), W->reads.load(), W->sv.load().gen);
  std::printf("torture: %s\n", failures == 0 ? "PASSED" : "FAILED");
  return failures == 0 ? 0 : 1;
}
