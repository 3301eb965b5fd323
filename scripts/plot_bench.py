#!/usr/bin/env python3
"""Turns procsync's Google Benchmark JSON into a summary table and PNG plots.

Usage: plot_bench.py [--results DIR] [--summary] [--no-plots]

Reads DIR/bench_{contention,mutex,semaphore,latency,shared_value,queue,
shared_mutex,wait}.json (any that exist; default DIR is bench/results). With
repetitions, the median aggregate of each benchmark is used. --summary prints
the tables, with ratios against pthread and Boost.Interprocess, and the design
targets.

Repeated runs (--benchmark_repetitions): every ratio is the median of the
per-run ratios (run i of one benchmark against run i of the other), printed
with its min-max over the runs; a target is "met" only when every run meets
it, "NOT met" when none does, and "unclear" when the spread crosses it. The
load average before and after the run (DIR/load.txt, written by
bench-summary.sh) is printed, with a loud warning when it exceeds the number
of CPUs: the numbers then measure the other load as much as the locks.

Plots (unless --no-plots, or when matplotlib is missing) go to DIR:
contention_counter.png, contention_record.png (throughput vs processes, one
line per implementation; the unlocked baseline is marked incorrect),
uncontended.png (ns per lock+unlock / acquire+release), latency.png
(round-trip p50/p99, log scale), shared_value.png, queue_throughput.png
(items per second per queue, 8- and 256-byte items, 1+1 and 4+4 processes)
and queue_latency.png (one-way p50/p99).
"""
import argparse
import json
import math
import os
import re
import sys

SUFFIX = re.compile(r"/(iterations:\d+|manual_time|real_time|min_time:[\d.]+s?|repeats:\d+)")


def load(path):
    """({benchmark name: row}, context, {name: [row per repetition]}): one row
    per benchmark (the median if repeated)."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        doc = json.load(f)
    rows, medians = {}, {}
    for b in doc.get("benchmarks", []):
        name = SUFFIX.sub("", b.get("run_name", b["name"]))
        if b.get("error_occurred"):
            continue
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = b
        else:
            rows.setdefault(name, []).append(b)
    out = {}
    for name, runs in rows.items():
        if name in medians:
            out[name] = medians[name]
        else:  # one run, or repetitions without aggregates: average the numbers
            merged = dict(runs[0])
            for key, value in runs[0].items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    merged[key] = sum(r.get(key, 0) for r in runs) / len(runs)
            out[name] = merged
    for runs in rows.values():
        runs.sort(key=lambda r: r.get("repetition_index", 0))
    return out, doc.get("context", {}), rows


# {bench: {name: [row per repetition]}}, filled by load_all.
REPS = {}


def load_all(results):
    data, context = {}, {}
    for bench in ("contention", "mutex", "semaphore", "latency", "shared_value", "queue", "shared_mutex", "wait"):
        loaded = load(os.path.join(results, f"bench_{bench}.json"))
        if loaded:
            data[bench], ctx, REPS[bench] = loaded
            context = context or ctx
        else:
            data[bench], REPS[bench] = {}, {}
    return data, context


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def run_ratios(bench, name_a, name_b, value):
    """Per-run ratios value(run i of a) / value(run i of b), or [] if either is
    missing. With one run each this is the single ratio. name_b None: the
    values of a themselves (a target on an absolute number, such as fairness)."""
    a = REPS.get(bench, {}).get(name_a, [])
    if name_b is None:
        return [v for v in (value(r) for r in a) if v is not None]
    b = REPS.get(bench, {}).get(name_b, [])
    out = []
    for ra, rb in zip(a, b):
        va, vb = value(ra), value(rb)
        if va is not None and vb not in (None, 0):
            out.append(va / vb)
    return out


def spread_text(ratios, digits=2, unit="x"):
    """"1.06x (0.98-1.12, 3 runs)", or "1.06x (1 run)"; unit "" for a plain value."""
    if not ratios:
        return "-"
    m = median(ratios)
    if len(ratios) == 1:
        return f"{m:.{digits}f}{unit} (1 run)"
    return f"{m:.{digits}f}{unit} ({min(ratios):.{digits}f}-{max(ratios):.{digits}f}, {len(ratios)} runs)"


def ratio_cell(bench, name_a, name_b, value, digits=2):
    """A table cell: the median per-run ratio, with its min-max when repeated."""
    r = run_ratios(bench, name_a, name_b, value)
    if not r:
        return "-"
    if len(r) == 1:
        return f"{r[0]:.{digits}f}"
    return f"{median(r):.{digits}f} [{min(r):.{digits}f}-{max(r):.{digits}f}]"


def to_ns(row, key):
    """A time column of a row in nanoseconds."""
    scale = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}[row.get("time_unit", "ns")]
    return row[key] * scale


def fmt(value, digits=1):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    line = "  ".join(str(h).ljust(w) if i == 0 else str(h).rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    print()


# --- contention ---------------------------------------------------------------

PROCS = (1, 2, 4, 8)


def contention_series(data, kind):
    """{impl: {procs: row}} for kind in {counter, record}."""
    series = {}
    for name, row in data["contention"].items():
        m = re.match(rf"contention/([^/]+)/{kind}/procs:(\d+)$", name)
        if m:
            series.setdefault(m.group(1), {})[int(m.group(2))] = row
    return series


def mops(row):
    return row["ops_per_s"] / 1e6 if row and "ops_per_s" in row else None


def summary_contention(data, kind):
    series = contention_series(data, kind)
    if not series:
        return
    print(f"== Lock contention: {kind} ({'64-bit counter' if kind == 'counter' else '64-byte record, 8 words must agree'})")
    print("   Mops/s of modifications by P processes (higher is better); x = throughput ratio at the same P")
    order = ["serial", "unlocked", "atomic", "cas_spin", "procsync", "pthread", "pthread_robust",
             "boost_interprocess", "boost_named", "sem_t", "procsync_batched64", "pthread_batched64"]
    rows = []
    for impl in order + sorted(set(series) - set(order)):
        if impl not in series:
            continue
        s = series[impl]
        cells = [impl] + [fmt(mops(s.get(p))) for p in PROCS]
        for p in (2, 8):
            for base in ("pthread", "boost_interprocess"):
                if impl == "serial" or p not in s:
                    cells.append("-")
                    continue
                cells.append(ratio_cell("contention", f"contention/{impl}/{kind}/procs:{p}",
                                        f"contention/{base}/{kind}/procs:{p}", mops))
        fair = s.get(4, {}).get("fair_min_max")
        lost = max((s[p].get("lost_pct", 0) for p in s), default=0)
        torn = max((s[p].get("torn", 0) for p in s), default=0)
        cells += [fmt(fair, 2), fmt(lost, 1), fmt(torn, 0)]
        rows.append(cells)
    table(["impl"] + [f"P={p}" for p in PROCS] + ["xpthr@2", "xboost@2", "xpthr@8", "xboost@8",
                                                  "fair@4", "lost%", "torn"], rows)


# --- uncontended ----------------------------------------------------------------

def cpu_ns(row):
    return to_ns(row, "cpu_time")


def uncontended_rows(data, bench):
    out = {}
    for name, row in data[bench].items():
        m = re.match(r"uncontended/([^/]+)$", name)
        if m:
            # CPU time: on a loaded machine wall time also counts other processes' slices.
            out[m.group(1)] = to_ns(row, "cpu_time")
    return out


def summary_uncontended(data):
    mutexes = uncontended_rows(data, "mutex")
    if mutexes:
        print("== Uncontended lock+unlock, ns (CPU time, lower is better)")
        rows = []
        for impl, ns in sorted(mutexes.items(), key=lambda kv: kv[1]):
            cells = [impl, fmt(ns)]
            for base in ("pthread", "boost_interprocess", "cas_spin"):
                cells.append(ratio_cell("mutex", f"uncontended/{impl}", f"uncontended/{base}", cpu_ns))
            rows.append(cells)
        table(["impl", "ns", "x pthread", "x boost", "x floor"], rows)
    contended = {}
    for name, row in data["mutex"].items():
        m = re.match(r"contended/([^/]+)/counter/procs:(\d+)$", name)
        if m:
            contended.setdefault(m.group(1), {})[int(m.group(2))] = row.get("ns_per_op")
    if contended:
        print("== Contended locked increments, ns per increment (lower is better)")
        rows = []
        for impl, by_p in sorted(contended.items(), key=lambda kv: kv[1].get(2) or 1e18):
            rows.append([impl] + [fmt(by_p.get(p)) for p in (2, 3, 4)]
                        + [fmt(ratio(contended.get("pthread", {}).get(2), by_p.get(2)), 2),
                           fmt(ratio(contended.get("pthread_robust", {}).get(2), by_p.get(2)), 2)])
        table(["impl", "P=2", "P=3", "P=4", "thr x pthread@2", "thr x robust@2"], rows)
    sems = uncontended_rows(data, "semaphore")
    if sems:
        print("== Semaphore acquire+release, ns (uncontended: CPU time; contended: 2 processes)")
        rows = []
        for impl, ns in sorted(sems.items(), key=lambda kv: kv[1]):
            c = data["semaphore"].get(f"contended/{impl}/counter/procs:2", {}).get("ns_per_op")
            rows.append([impl, fmt(ns), fmt(ratio(ns, sems.get("sem_t")), 2), fmt(c),
                         fmt(ratio(c, data["semaphore"].get("contended/sem_t/counter/procs:2", {}).get("ns_per_op")), 2)])
        table(["impl", "uncontended", "x sem_t", "2 procs", "x sem_t"], rows)


def latency_rows(data):
    out = {}
    for name, row in data["latency"].items():
        m = re.match(r"latency/([^/]+)$", name)
        if m:
            out[m.group(1)] = (row.get("p50_ns"), row.get("p99_ns"), row.get("mean_ns"))
    return out


def summary_latency(data):
    lat = latency_rows(data)
    if not lat:
        return
    print("== Wake-up ping-pong between two processes, round trip in us (lower is better)")
    floor = lat.get("raw_futex", (None, None, None))
    rows = []
    for impl, (p50, p99, mean) in sorted(lat.items(), key=lambda kv: kv[1][0] or 1e18):
        rows.append([impl, fmt(p50 / 1e3, 2), fmt(p99 / 1e3, 2), fmt(mean / 1e3, 2),
                     fmt(ratio(p50, floor[0]), 2), fmt(ratio(p99, floor[1]), 2)])
    table(["impl", "p50", "p99", "mean", "p50 x futex", "p99 x futex"], rows)


def summary_shared_value(data):
    sv = data["shared_value"]
    if not sv:
        return
    print("== shared_value vs a locked struct vs atomics, ns per update (lower is better)")
    impls = []
    for name in sv:
        m = re.match(r"uncontended/([^/]+)$", name)
        if m:
            impls.append(m.group(1))
    rows = []
    for impl in impls:
        un = to_ns(sv[f"uncontended/{impl}"], "cpu_time")
        c2 = sv.get(f"contended/{impl}/procs:2", {}).get("ns_per_op")
        c4 = sv.get(f"contended/{impl}/procs:4", {}).get("ns_per_op")
        lost = max(sv.get(f"contended/{impl}/procs:{p}", {}).get("lost", 0) for p in (2, 4))
        rows.append([impl, fmt(un), fmt(c2), fmt(c4), fmt(lost, 0)])
    table(["impl", "1 proc", "2 procs", "4 procs", "lost"], rows)


WAIT_IMPLS = ("procsync", "pthread", "pthread_robust")
WAIT_PROCS = (2, 4, 8)


def tail_ratio(row):
    return row.get("tail_ratio") if row else None


def summary_wait(data):
    w = data.get("wait", {})
    if not w:
        return
    print("== Lock wait times under contention (bench_wait), ns from lock() called to lock() returned")
    print("   (lower is better; tail = p99.9 / p50, median [min-max] over the runs; fair = min/max acquisitions)")
    rows = []
    for impl in WAIT_IMPLS:
        for procs in WAIT_PROCS:
            name = f"wait/{impl}/procs:{procs}"
            row = w.get(name)
            if not row:
                continue
            rows.append([impl, procs, fmt(row.get("p50_ns"), 0), fmt(row.get("p99_ns"), 0),
                         fmt(row.get("p999_ns"), 0), fmt(row.get("max_ns"), 0),
                         ratio_cell("wait", name, None, tail_ratio, digits=1), fmt(fair_min_max(row), 2)])
    table(["impl", "P", "p50", "p99", "p99.9", "max", "tail p99.9/p50", "fair"], rows)


def fair_min_max(row):
    return row.get("fair_min_max") if row else None


def contended(impl, procs):
    return f"contended/{impl}/counter/procs:{procs}"


TARGETS = [
    # (target, bench, benchmark, baseline (None: the value itself), value, "<=" or ">=", threshold)
    ("mutex uncontended <= 1.0x pthread non-robust", "mutex",
     "uncontended/procsync", "uncontended/pthread", cpu_ns, "<=", 1.0),
    ("mutex uncontended <= 0.80x glibc robust", "mutex",
     "uncontended/procsync", "uncontended/pthread_robust", cpu_ns, "<=", 0.8),
    ("recursive_mutex uncontended within 5 % of mutex", "mutex",
     "uncontended/procsync_recursive", "uncontended/procsync", cpu_ns, "<=", 1.05),
    ("mutex uncontended <= 2.0x the CAS floor", "mutex",
     "uncontended/procsync", "uncontended/cas_spin", cpu_ns, "<=", 2.0),
] + [
    (f"{procs}-proc contended throughput >= {threshold}x {label}", "mutex",
     contended("procsync", procs), contended(base, procs), lambda r: r.get("ops_per_s"), ">=", threshold)
    for procs in (2, 4)
    for base, label, threshold in (("pthread", "pthread non-robust", 1.25), ("pthread_robust", "glibc robust", 1.6))
] + [
    ("8 procs contended >= 1.0x pthread (on this machine's cores)", "contention",
     "contention/procsync/counter/procs:8", "contention/pthread/counter/procs:8", mops, ">=", 1.0),
    ("fairness at 4 procs: fair_min_max >= 0.8 (a value, not a ratio)", "contention",
     "contention/procsync/counter/procs:4", None, fair_min_max, ">=", 0.8),
    ("counting_semaphore acquire+release <= 1.0x sem_t", "semaphore",
     "uncontended/procsync_counting", "uncontended/sem_t", cpu_ns, "<=", 1.0),
    ("event wake latency (p50) <= 1.1x raw futex ping-pong", "latency",
     "latency/procsync_event", "latency/raw_futex", lambda r: r.get("p50_ns"), "<=", 1.1),
] + [
    (f"shared_mutex read-mostly (95 % reads) P={procs} >= 1.0x pthread_rwlock", "shared_mutex",
     f"read_mostly/procsync/procs:{procs}", f"read_mostly/pthread_rwlock/procs:{procs}",
     lambda r: r.get("ops_per_s"), ">=", 1.0)
    for procs in (2, 4)
] + [
    ("p99.9 wait at P=4 <= 10x its median (a value, not a ratio)", "wait",
     "wait/procsync/procs:4", None, tail_ratio, "<=", 10.0),
    ("p99.9 wait at P=4 <= 1.0x pthread non-robust's (same run)", "wait",
     "wait/procsync/procs:4", "wait/pthread/procs:4", lambda r: r.get("p999_ns"), "<=", 1.0),
    ("fairness at 4 procs in bench_wait: fair_min_max >= 0.8 (a value)", "wait",
     "wait/procsync/procs:4", None, fair_min_max, ">=", 0.8),
]


QUEUE_IMPLS = ["procsync_queue", "procsync_mq", "boost_mq", "posix_mq", "pipe", "procsync_mutex_cv"]
QUEUE_LABELS = {
    "procsync_queue": "procsync::queue",
    "procsync_mq": "procsync::message_queue",
    "boost_mq": "Boost message_queue",
    "posix_mq": "POSIX mq",
    "pipe": "pipe",
    "procsync_mutex_cv": "procsync mutex + condvar ring",
}


def queue_name(impl, size, pairs):
    return f"throughput/{impl}/bytes:{size}/pc:{pairs}"


def items_per_s(row):
    return row.get("items_per_s") if row else None


def summary_queue(data):
    q = data.get("queue", {})
    if not q:
        return
    print("== Queues: million items per second (N producers + N consumers), ratio of procsync::queue to each")
    for size in (8, 256):
        rows = []
        for impl in QUEUE_IMPLS:
            cells = [QUEUE_LABELS[impl]]
            for pairs in (1, 4):
                row = q.get(queue_name(impl, size, pairs))
                cells.append(fmt(items_per_s(row) / 1e6, 2) if items_per_s(row) else "-")
                cells.append(ratio_cell("queue", queue_name("procsync_queue", size, pairs), queue_name(impl, size, pairs),
                                        items_per_s))
            lat = q.get(f"latency/{impl}/bytes:{size}", {})
            cells.append(f"{fmt(lat.get('p50_ns'), 0)} / {fmt(lat.get('p99_ns'), 0)}" if lat else "-")
            rows.append(cells)
        print(f"-- {size}-byte items")
        table(["queue", "1+1 M/s", "queue/this", "4+4 M/s", "queue/this", "one-way p50 / p99 ns"], rows)
        print()
    goals = [("queue<uint64_t> 1+1 >= 2.0x Boost message_queue", 8, 1, "boost_mq", 2.0),
             ("queue<uint64_t> 1+1 >= 1.0x POSIX mq", 8, 1, "posix_mq", 1.0),
             ("queue<uint64_t> 4+4 >= 1.5x Boost message_queue", 8, 4, "boost_mq", 1.5)]
    rows = []
    for text, size, pairs, peer, threshold in goals:
        r = run_ratios("queue", queue_name("procsync_queue", size, pairs), queue_name(peer, size, pairs), items_per_s)
        rows.append([text, spread_text(r), verdict(r, ">=", threshold)])
    print("== Queue targets")
    table(["target", "measured", ""], rows)
    print()


def verdict(ratios, op, threshold):
    """met when every run meets the target, NOT met when none does, else unclear."""
    ok = [(r <= threshold) if op == "<=" else (r >= threshold) for r in ratios]
    if all(ok):
        return "met"
    if not any(ok):
        return "NOT met"
    return "unclear: spread crosses the target"


def targets(data):
    """[(target, measured, verdict)] for the design targets this run measures."""
    out = []
    for label, bench, name, base, value, op, threshold in TARGETS:
        ratios = run_ratios(bench, name, base, value)
        if ratios:
            out.append((label, spread_text(ratios, unit="x" if base else ""), verdict(ratios, op, threshold)))
    return out


def print_noise_floor():
    """The A/A line: pthread's mutex against itself, measured twice in the run
    (bench_mutex's pthread_again rows). Identical code, so how far its per-run
    ratios stray from 1.00 is how far any ratio above can stray for no reason."""
    cells = [("uncontended", run_ratios("mutex", "uncontended/pthread_again", "uncontended/pthread", cpu_ns))]
    for procs in (2, 4):
        cells.append((f"contended P={procs}", run_ratios("mutex", contended("pthread_again", procs),
                                                          contended("pthread", procs), mops)))
    if all(r for _, r in cells):
        print("A/A noise floor, pthread against itself in this run: "
              + ", ".join(f"{name} {spread_text(r)}" for name, r in cells))


def summary_targets(data):
    rows = [[t, m, v] for t, m, v in targets(data)]
    if rows:
        print("== design targets (median of the per-run ratios, min-max over the runs)")
        table(["target", "measured", ""], rows)
    print_noise_floor()
    calls = [data.get("mutex", {}).get(f"syscall/{op}") for op in ("futex_wake_nobody", "futex_wait_changed")]
    floor = [cpu_ns(row) if row else None for row in calls]
    if all(floor):
        print(f"a futex call that finds nothing to do: wake {floor[0]:.0f} ns, wait {floor[1]:.0f} ns "
              "(the least any lock() that enters the kernel costs)")
    sizes = {impl: data.get("shared_mutex", {}).get(f"uncontended_shared/{impl}", {}).get("bytes")
             for impl in ("procsync", "pthread_rwlock")}
    if all(sizes.values()):
        print(f"size: procsync::shared_mutex {sizes['procsync']:.0f} bytes, "
              f"pthread_rwlock_t {sizes['pthread_rwlock']:.0f} bytes")


def read_load(results):
    """{"before": [1, 5, 15 min], "after": [...], "cpus": n} from DIR/load.txt."""
    out = {}
    try:
        with open(os.path.join(results, "load.txt")) as f:
            for line in f:
                key, *values = line.split()
                out[key] = [float(v) for v in values]
    except (OSError, ValueError):
        return {}
    if "cpus" in out:
        out["cpus"] = int(out["cpus"][0])
    return out


def load_warning(load):
    """Lines of a loud warning if other work competed with the benchmarks: the
    1-minute load average before the run exceeded the CPUs, or other tasks were
    still running once the benchmarks had ended (others_running, the median of
    samples taken then). The load average after the run is not judged: it counts
    the benchmarks' own processes. Results without others_running (older runs)
    are judged by the larger of before and after, as they were."""
    cpus = load.get("cpus") or os.cpu_count() or 1
    before = load.get("before", [0])[0]
    if "others_running" in load:
        others = load["others_running"][0]
        if before <= cpus and others < 1:
            return []
        what = (f"load average {before:.2f} > {cpus} CPUs before the run" if before > cpus else
                f"{others:.0f} other task(s) still running after it")
    else:
        worst = max(before, load.get("after", [0])[0])
        if worst <= cpus:
            return []
        what = f"load average {worst:.2f} > {cpus} CPUs"
    bar = "!" * 78
    return [bar,
            f"!! WARNING: the machine was busy: {what}.",
            "!! Other processes competed with the benchmarks for the CPUs, so throughput,",
            "!! latency and every ratio here measure that load as much as the locks.",
            "!! Read the min-max spreads; rerun on an idle machine before drawing conclusions.",
            bar]


# --- plots ----------------------------------------------------------------------

# Each implementation in words, and its colour: procsync alone is red; the
# others come from a palette without red.
LABELS = {
    "procsync": "procsync::mutex",
    "procsync_recursive": "procsync::recursive_mutex",
    "procsync_batched64": "procsync::mutex, 64 updates per lock",
    "pthread": "pthread mutex (process-shared)",
    "pthread_robust": "pthread mutex, robust (glibc)",
    "pthread_batched64": "pthread mutex, 64 updates per lock",
    "pthread_again": "pthread mutex, measured again (A/A)",
    "boost_interprocess": "Boost interprocess_mutex",
    "boost_named": "Boost named_mutex",
    "sem_t": "POSIX sem_t used as a lock",
    "cas_spin": "CAS spin lock (the floor)",
    "atomic": "lock-free atomic add (no lock)",
    "std_mutex": "std::mutex (one process only)",
    "unlocked": "no lock: INCORRECT, loses updates",
    "serial": "1 process, no lock",
    # semaphores
    "procsync_counting": "procsync counting_semaphore",
    "procsync_binary": "procsync binary_semaphore",
    "procsync_counting_undo": "procsync undo_semaphore",
    # wake-up latency
    "raw_futex": "bare futex word (the floor)",
    "procsync_event": "procsync event",
    "procsync_semaphore": "procsync semaphore",
    "procsync_condvar": "procsync condition_variable",
    "pthread_cond": "pthread condition variable",
    # shared_value
    "sv_fetch_add": "shared_value<long>::fetch_add",
    "sv_update": "shared_value<long>::update",
    "sv_with_lock": "shared_value<long>::with_lock",
    "locked_struct": "procsync::mutex + long",
    "atomic_fetch_add": "std::atomic<long>::fetch_add",
    "sv_record_with_lock": "shared_value<record>::with_lock",
    "sv_record_update": "shared_value<record>::update",
    "locked_record": "procsync::mutex + record",
    "sv_record_load": "shared_value<record>::load (reader)",
}
LATENCY_LABELS = {"sem_t": "POSIX sem_t"}
SEMAPHORE_LABELS = {"sem_t": "semaphore: POSIX sem_t", "boost_interprocess": "semaphore: Boost interprocess_semaphore"}
PROCSYNC_COLOR = "#d62728"  # red, for procsync only
OTHER_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
                "#17becf", "#bcbd22", "#393b79", "#637939", "#7f7f7f"]


def label(impl, prefix=""):
    return prefix + LABELS.get(impl, impl.replace("_", " "))


def is_procsync(impl):
    return impl.startswith("procsync") or impl.startswith("sv_")


def plots(data, results):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot_bench.py: matplotlib is not installed; no plots", file=sys.stderr)
        return []
    written = []

    def save(fig, name):
        fig.tight_layout()
        path = os.path.join(results, name)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(path)

    for kind in ("counter", "record"):
        series = contention_series(data, kind)
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(10, 5.8))
        others = iter(OTHER_COLORS)
        order = ["procsync", "pthread", "pthread_robust", "boost_interprocess", "boost_named", "sem_t",
                 "cas_spin", "atomic", "procsync_batched64", "pthread_batched64"]
        for impl in order + sorted(set(series) - set(order) - {"serial", "unlocked"}):
            if impl not in series:
                continue
            s = series[impl]
            ps = sorted(p for p in s if mops(s[p]))
            mine = impl == "procsync" or impl == "procsync_batched64"
            style = "--" if impl == "atomic" or "batched" in impl else "-"
            ax.plot(ps, [mops(s[p]) for p in ps], style, marker="o", label=label(impl),
                    linewidth=2.8 if impl == "procsync" else 1.3, zorder=5 if mine else 3,
                    color=PROCSYNC_COLOR if mine else next(others))
        if "serial" in series and mops(series["serial"].get(1)):
            ax.axhline(mops(series["serial"][1]), color="grey", linestyle=":", linewidth=1,
                       label=label("serial") + " (reference)")
        if "unlocked" in series:
            # Not a competitor: it is fast because it is wrong. Drawn faint and
            # behind, with how much it lost in the legend.
            s = series["unlocked"]
            ps = sorted(p for p in s if mops(s[p]))
            lost = max((s[p].get("lost_pct", 0) for p in ps), default=0)
            torn = max((s[p].get("torn", 0) for p in ps), default=0)
            what = f"lost {lost:.0f}% of updates" + (f", tore {torn:.0f} records" if torn else "")
            ax.plot(ps, [mops(s[p]) for p in ps], ":", marker="x", color="black", alpha=0.35, zorder=1,
                    label=f"no lock: INCORRECT\n({what})")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(list(PROCS))
        ax.set_xticklabels([str(p) for p in PROCS])
        ax.set_xlabel("processes sharing the " + ("counter" if kind == "counter" else "64-byte record"))
        ax.set_ylabel("million updates per second (log scale)")
        what = "64-bit counter" if kind == "counter" else "64-byte record (8 words)"
        ax.set_title(f"Updates of a shared {what}: throughput vs processes\n"
                     "higher is better; procsync in red; the faint dotted line is wrong, not fast")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
        save(fig, f"contention_{kind}.png")

    mx = uncontended_rows(data, "mutex")
    sems = {k: v for k, v in uncontended_rows(data, "semaphore").items() if "undo" not in k}
    bars = [(label(k, "lock: "), k, v) for k, v in sorted(mx.items(), key=lambda kv: kv[1])] + \
           [(SEMAPHORE_LABELS.get(k, label(k, "semaphore: ")), k, v) for k, v in sorted(sems.items(), key=lambda kv: kv[1])]
    if bars:
        fig, ax = plt.subplots(figsize=(10, 5.5))
        colors = [PROCSYNC_COLOR if is_procsync(k) else "#1f77b4" for _, k, _ in bars]
        ax.barh([t for t, _, _ in bars], [v for _, _, v in bars], color=colors)
        for i, (_, _, v) in enumerate(bars):
            ax.text(v, i, f" {v:.1f} ns", va="center", fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, max(v for _, _, v in bars) * 1.15)
        ax.set_xlabel("nanoseconds per lock+unlock or acquire+release, one process (CPU time; lower is better)")
        ax.set_title("Uncontended cost: no other process wants the lock (procsync in red)")
        save(fig, "uncontended.png")

    lat = latency_rows(data)
    if lat:
        items = sorted(lat.items(), key=lambda kv: kv[1][0] or 0)
        fig, ax = plt.subplots(figsize=(10, 5.5))
        ys = range(len(items))
        p50 = [v[0] / 1e3 for _, v in items]
        p99 = [v[1] / 1e3 for _, v in items]
        colors = [PROCSYNC_COLOR if is_procsync(k) else "#1f77b4" for k, _ in items]
        ax.barh([y - 0.2 for y in ys], p50, 0.4, color=colors, label="median (p50)")
        ax.barh([y + 0.2 for y in ys], p99, 0.4, color=colors, alpha=0.45, hatch="//", label="99th percentile (p99)")
        for y, a, b in zip(ys, p50, p99):
            ax.text(a, y - 0.2, f" {a:.1f}", va="center", fontsize=8)
            ax.text(b, y + 0.2, f" {b:.1f}", va="center", fontsize=8)
        ax.set_xscale("log")
        ax.set_xlim(min(p50) / 2, max(p99) * 3)
        ax.set_yticks(list(ys))
        ax.set_yticklabels([LATENCY_LABELS.get(k, label(k)) for k, _ in items])
        ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
                 if min(p50) / 2 <= t <= max(p99) * 3]
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks])
        ax.minorticks_off()
        ax.invert_yaxis()
        ax.set_xlabel("round trip in microseconds, log scale (two wake-ups; lower is better)")
        ax.set_title("Wake-up latency: ping-pong between two processes (procsync in red)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8)
        ax.grid(True, axis="x", which="both", alpha=0.3)
        save(fig, "latency.png")

    sv = data["shared_value"]
    if sv:
        impls = [re.match(r"uncontended/(.+)$", n).group(1) for n in sv if n.startswith("uncontended/")]
        fig, ax = plt.subplots(figsize=(10, 5.8))
        ys = range(len(impls))
        for offset, (what, alpha, getter) in zip((-0.27, 0, 0.27), (
                ("1 process (CPU time)", 1.0, lambda i: to_ns(sv[f"uncontended/{i}"], "cpu_time")),
                ("2 processes", 0.65, lambda i: sv.get(f"contended/{i}/procs:2", {}).get("ns_per_op")),
                ("4 processes", 0.35, lambda i: sv.get(f"contended/{i}/procs:4", {}).get("ns_per_op")))):
            vals = [getter(i) for i in impls]
            shown = [(y, v) for y, v in zip(ys, vals) if v]
            ax.barh([y + offset for y, _ in shown], [v for _, v in shown], 0.27, color="#1f77b4",
                    alpha=alpha, label=what)
        ax.set_yticks(list(ys))
        ax.set_yticklabels([label(i) for i in impls])
        for tick, impl in zip(ax.get_yticklabels(), impls):
            if not is_procsync(impl):
                tick.set_color("#555555")
        ax.invert_yaxis()
        ax.set_xlabel("nanoseconds per update (lower is better); a missing bar: not measured")
        ax.set_title("shared_value against a mutex-protected value and std::atomic\n"
                     "(+1 to a counter, or to every word of a 64-byte record)")
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(True, axis="x", alpha=0.3)
        save(fig, "shared_value.png")

    q = data.get("queue", {})
    if q:
        fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), sharey=False)
        for ax, size in zip(axes, (8, 256)):
            impls = [i for i in QUEUE_IMPLS if any(q.get(queue_name(i, size, p)) for p in (1, 4))]
            ys = range(len(impls))
            for offset, pairs, alpha in ((-0.2, 1, 1.0), (0.2, 4, 0.5)):
                vals = [(items_per_s(q.get(queue_name(i, size, pairs))) or 0) / 1e6 for i in impls]
                ax.barh([y + offset for y in ys], vals, 0.4, alpha=alpha,
                        color=[PROCSYNC_COLOR if i.startswith("procsync_queue") else "#1f77b4" for i in impls],
                        label=f"{pairs} producer{'s' if pairs > 1 else ''} + {pairs} consumer{'s' if pairs > 1 else ''}")
                for y, v in zip(ys, vals):
                    if v:
                        ax.text(v, y + offset, f" {v:.2f}", va="center", fontsize=7)
            ax.set_yticks(list(ys))
            ax.set_yticklabels([QUEUE_LABELS[i] for i in impls])
            ax.invert_yaxis()
            ax.set_xlabel("million items per second (higher is better)")
            ax.set_title(f"{size}-byte items")
            ax.grid(True, axis="x", alpha=0.3)
            ax.legend(fontsize=7, loc="lower right")
        fig.suptitle("Cross-process queues: throughput (procsync::queue in red)")
        save(fig, "queue_throughput.png")

        fig, ax = plt.subplots(figsize=(10, 5))
        items = [(f"{QUEUE_LABELS[i]}, {size} B", q.get(f"latency/{i}/bytes:{size}"), i)
                 for size in (8, 256) for i in QUEUE_IMPLS if q.get(f"latency/{i}/bytes:{size}")]
        ys = range(len(items))
        p50 = [r["p50_ns"] / 1e3 for _, r, _ in items]
        p99 = [r["p99_ns"] / 1e3 for _, r, _ in items]
        colors = [PROCSYNC_COLOR if i.startswith("procsync_queue") else "#1f77b4" for _, _, i in items]
        ax.barh([y - 0.2 for y in ys], p50, 0.4, color=colors, label="median (p50)")
        ax.barh([y + 0.2 for y in ys], p99, 0.4, color=colors, alpha=0.45, hatch="//", label="99th percentile (p99)")
        ax.set_yticks(list(ys))
        ax.set_yticklabels([t for t, _, _ in items], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("one-way latency in microseconds (half a ping-pong round trip; lower is better)")
        ax.set_title("Cross-process queues: one-way latency (procsync::queue in red)")
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(True, axis="x", alpha=0.3)
        save(fig, "queue_latency.png")
    return written


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=os.path.join(os.path.dirname(__file__), "..", "bench", "results"))
    parser.add_argument("--summary", action="store_true", help="print the summary tables")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args()
    data, context = load_all(args.results)
    if not any(data.values()):
        print(f"plot_bench.py: no benchmark JSON in {args.results}", file=sys.stderr)
        return 1
    load = read_load(args.results)
    warning = load_warning(load)
    if args.summary:
        if context:
            print(f"Machine: {context.get('host_name', '?')}, {context.get('num_cpus', '?')} CPUs "
                  f"@ {context.get('mhz_per_cpu', '?')} MHz; date {context.get('date', '?')}")
        if load:
            fmt_load = lambda v: " ".join(f"{x:.2f}" for x in v) if v else "?"
            others = load.get("others_running")
            print(f"Load average (1, 5, 15 min): before {fmt_load(load.get('before'))}, "
                  f"after {fmt_load(load.get('after'))} (with the benchmarks' own processes); "
                  f"{load.get('cpus', '?')} CPUs" +
                  (f"; other tasks running after the run: {others[0]:.0f}" if others else ""))
        elif context:
            print(f"Load average (1, 5, 15 min) at the start of the first program: {context.get('load_avg', '?')}")
        runs = max((len(v) for b in REPS.values() for v in b.values()), default=0)
        print(f"Runs per benchmark: {runs}" + ("" if runs > 1 else
              " (no spread: use --benchmark_repetitions=3 or more to tell signal from noise)"))
        print()
        for line in warning:
            print(line)
        if warning:
            print()
        summary_contention(data, "counter")
        summary_contention(data, "record")
        summary_uncontended(data)
        summary_latency(data)
        summary_shared_value(data)
        summary_queue(data)
        summary_wait(data)
        summary_targets(data)
        for line in warning:  # again, next to the verdicts
            print(line)
    if not args.no_plots:
        for path in plots(data, args.results):
            print(f"plot: {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
