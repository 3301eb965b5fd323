// procsync/deadlock.hpp — deadlock detection across processes.
//
// Three tools, all working across processes through one deadlock_registry in
// shared memory (make_anonymous before fork, or a named segment):
//
// 1. Lock-order validation (potential deadlocks). A checked_mutex belongs to a
//    lock class (a name defined in the registry). Acquiring class B while the
//    thread holds class A records the order A -> B in the registry's graph,
//    whichever process does it. A blocking acquisition that would close a
//    cycle in that graph (any length) is refused *before* it blocks, with
//    errc::lock_order_violation and a message naming every class on the cycle
//    and the process (pid, label) that first took each order — even when that
//    process has long exited. Validated lock chains are cached per thread by
//    hash, so the steady state is one hash and one local lookup: no shared
//    writes, no system call.
// 2. Actual deadlocks (wait-for graph). With a detector installed in a process
//    (install_deadlock_detector), every contended wait there on *any* procsync
//    mutex (plain mutex and recursive_mutex included) sleeps in slices; after
//    half the registry's deadlock timeout it publishes "thread T waits for a
//    lock held by thread H" and follows holder -> waiter links across
//    processes, again every 1/8 timeout. If it is on a cycle (seen on two
//    consecutive looks, so a deadlock is broken within the timeout plus
//    scheduling delay), exactly one member
//    — the thread with the highest TID — gets errc::deadlock_detected from its
//    lock call, with a PostgreSQL-style report; the others keep waiting and
//    proceed once the victim backs off. Entries of dead processes are purged.
// 3. Ranked locks. A class may carry a rank (> 0). Ranks must *descend*: while
//    holding a ranked lock of rank r, only ranked locks of rank < r may be
//    acquired (take the rank-100 lock first, then rank 50, then rank 10).
//    Violations are errc::lock_order_violation naming both ranks.
// Plus lock_all(m...): takes several locks without deadlock whatever order
// other processes use (lock one, try the rest, back off and rotate).
//
// Rules of lock-order validation (what is and is not an edge):
//  - lock() / lock_robust() validate and record. try_lock() and the timed
//    try_lock_for/until() never hang forever, so they are neither refused nor
//    recorded; a lock they take is still "held" for later acquisitions.
//  - Acquiring a class that the thread already holds is an error unless the
//    class was defined nestable (class_options::nestable): then same-class
//    nesting is allowed and records nothing (order inside a class is yours).
//  - Unlocking in any order is fine.
//  - Only processes/threads that installed a detector check anything;
//    checked_mutex works as a plain robust mutex elsewhere.
//
// Limits: see docs/deadlock.md. In short: 4096 classes, 65,536 order edges,
// 256 simultaneously blocked threads in the wait-for table, 64 checked locks
// held at once per thread; on overflow the registry warns once on stderr and
// keeps working (orders not recorded cannot be checked). The wait-for graph
// sees only threads in processes with a detector installed. Gate locks (a
// common outer lock that makes an inversion harmless) are reported like any
// other inversion, as Linux lockdep does.
#pragma once

//
// The parts, one header each: deadlock_registry.hpp (the shared tables),
// deadlock_detector.hpp (install_deadlock_detector; its two halves live in
// detail/), checked_mutex.hpp and lock_all.hpp.
#pragma once

#include "checked_mutex.hpp"
#include "deadlock_detector.hpp"
#include "deadlock_registry.hpp"
#include "lock_all.hpp"
