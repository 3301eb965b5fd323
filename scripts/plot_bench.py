#!/usr/bin/env python3
"""Turns procsync's Google Benchmark JSON into a summary table and PNG plots.

Usage: plot_bench.py [--results DIR] [--summary] [--no-plots]

Reads DIR/bench_{contention,mutex,semaphore,latency,shared_value}.json (any
that exist; default DIR is bench/results). With repetitions, the median
aggregate of each benchmark is used. --summary prints the tables, with ratios
against pthread and Boost.Interprocess, and the DESIGN.md targets (met or not).
Plots (unless --no-plots, or when matplotlib is missing) go to DIR:
contention_counter.png, contention_record.png (throughput vs processes, one
line per implementation), uncontended.png (ns per lock+unlock /
acquire+release), latency.png (round-trip p50/p99), shared_value.png.
"""
import argparse
import json
import math
import os
import re
import sys

SUFFIX = re.compile(r"/(iterations:\d+|manual_time|real_time|min_time:[\d.]+s?|repeats:\d+)")


def load(path):
    """{benchmark name: row}, one row per benchmark (median if repeated)."""
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
    return out, doc.get("context", {})


def load_all(results):
    data, context = {}, {}
    for bench in ("contention", "mutex", "semaphore", "latency", "shared_value"):
        loaded = load(os.path.join(results, f"bench_{bench}.json"))
        if loaded:
            data[bench], ctx = loaded
            context = context or ctx
        else:
            data[bench] = {}
    return data, context


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
    base_p = series.get("pthread", {})
    base_b = series.get("boost_interprocess", {})
    order = ["serial", "unlocked", "atomic", "cas_spin", "procsync", "pthread", "pthread_robust",
             "boost_interprocess", "boost_named", "sem_t", "procsync_batched64", "pthread_batched64"]
    rows = []
    for impl in order + sorted(set(series) - set(order)):
        if impl not in series:
            continue
        s = series[impl]
        cells = [impl] + [fmt(mops(s.get(p))) for p in PROCS]
        for p in (2, 8):
            cells.append(fmt(ratio(mops(s.get(p)), mops(base_p.get(p))), 2))
            cells.append(fmt(ratio(mops(s.get(p)), mops(base_b.get(p))), 2))
        fair = s.get(4, {}).get("fair_min_max")
        lost = max((s[p].get("lost_pct", 0) for p in s), default=0)
        torn = max((s[p].get("torn", 0) for p in s), default=0)
        cells += [fmt(fair, 2), fmt(lost, 1), fmt(torn, 0)]
        rows.append(cells)
    table(["impl"] + [f"P={p}" for p in PROCS] + ["xpthr@2", "xboost@2", "xpthr@8", "xboost@8",
                                                  "fair@4", "lost%", "torn"], rows)


# --- uncontended ----------------------------------------------------------------

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
            rows.append([impl, fmt(ns), fmt(ratio(ns, mutexes.get("pthread")), 2),
                         fmt(ratio(ns, mutexes.get("boost_interprocess")), 2), fmt(ratio(ns, mutexes.get("cas_spin")), 2)])
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


def targets(data):
    """[(target, measured, met)] for the DESIGN.md targets this run measures."""
    out = []
    mx = uncontended_rows(data, "mutex")
    if {"procsync", "pthread", "cas_spin"} <= set(mx):
        r = mx["procsync"] / mx["pthread"]
        out.append(("mutex uncontended <= 1.0x pthread non-robust", f"{r:.2f}x", r <= 1.0))
        r = mx["procsync"] / mx["cas_spin"]
        out.append(("mutex uncontended <= 2.0x the CAS floor", f"{r:.2f}x", r <= 2.0))
    c = {}
    for name, row in data["mutex"].items():
        m = re.match(r"contended/([^/]+)/counter/procs:2$", name)
        if m:
            c[m.group(1)] = row.get("ops_per_s")
    if {"procsync", "pthread_robust", "pthread"} <= set(c):
        r = c["procsync"] / c["pthread_robust"]
        out.append(("2-proc contended throughput >= 1.25x glibc robust", f"{r:.2f}x", r >= 1.25))
        r = c["procsync"] / c["pthread"]
        out.append(("2-proc contended throughput >= 1.0x pthread non-robust", f"{r:.2f}x", r >= 1.0))
    sems = uncontended_rows(data, "semaphore")
    if {"procsync_counting", "sem_t"} <= set(sems):
        r = sems["procsync_counting"] / sems["sem_t"]
        out.append(("counting_semaphore acquire+release <= 1.0x sem_t", f"{r:.2f}x", r <= 1.0))
    lat = latency_rows(data)
    if {"procsync_event", "raw_futex"} <= set(lat):
        r = lat["procsync_event"][0] / lat["raw_futex"][0]
        out.append(("event wake latency (p50) <= 1.1x raw futex ping-pong", f"{r:.2f}x", r <= 1.1))
    counter = contention_series(data, "counter")
    if "procsync" in counter and "pthread" in counter:
        for p in (8,):
            a, b = mops(counter["procsync"].get(p)), mops(counter["pthread"].get(p))
            if a and b:
                r = a / b
                out.append((f"{p} procs contended >= 1.5x pthread (DESIGN: 8-16 procs on 16 cores)",
                            f"{r:.2f}x", r >= 1.5))
    return out


def summary_targets(data):
    rows = [[t, m, "met" if ok else "NOT met"] for t, m, ok in targets(data)]
    if rows:
        print("== DESIGN.md targets (ratios measured in this run)")
        table(["target", "measured", ""], rows)


# --- plots ----------------------------------------------------------------------

def plots(data, results):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot_bench.py: matplotlib is not installed; no plots", file=sys.stderr)
        return []
    written = []

    for kind in ("counter", "record"):
        series = contention_series(data, kind)
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(9, 5.5))
        palette = plt.get_cmap("tab20").colors
        for index, impl in enumerate(sorted(series)):
            s = series[impl]
            ps = sorted(p for p in s if mops(s[p]))
            if impl == "serial":
                ax.axhline(mops(s[1]), color="grey", linestyle=":", label="serial (1 process, no lock)")
                continue
            style = "--" if impl in ("unlocked", "atomic") or "batched" in impl else "-"
            width = 2.5 if impl == "procsync" else 1.2
            ax.plot(ps, [mops(s[p]) for p in ps], style, marker="o", linewidth=width, label=impl,
                    color="tab:red" if impl == "procsync" else palette[(2 * index + index // 10) % 20])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(list(PROCS))
        ax.set_xticklabels([str(p) for p in PROCS])
        ax.set_xlabel("processes")
        ax.set_ylabel("million modifications / s (log)")
        ax.set_title(f"Shared {kind}: throughput vs processes (higher is better)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.tight_layout()
        path = os.path.join(results, f"contention_{kind}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    mx = uncontended_rows(data, "mutex")
    sems = {f"sem:{k}": v for k, v in uncontended_rows(data, "semaphore").items() if "undo" not in k}
    bars = sorted(mx.items(), key=lambda kv: kv[1]) + sorted(sems.items(), key=lambda kv: kv[1])
    if bars:
        fig, ax = plt.subplots(figsize=(9, 5))
        colors = ["tab:red" if "procsync" in k else "tab:blue" for k, _ in bars]
        ax.barh([k for k, _ in bars], [v for _, v in bars], color=colors)
        for i, (_, v) in enumerate(bars):
            ax.text(v, i, f" {v:.1f}", va="center", fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("ns per lock+unlock / acquire+release (CPU time, lower is better)")
        ax.set_title("Uncontended cost (procsync in red)")
        fig.tight_layout()
        path = os.path.join(results, "uncontended.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    lat = latency_rows(data)
    if lat:
        items = sorted(lat.items(), key=lambda kv: kv[1][0] or 0)
        fig, ax = plt.subplots(figsize=(9, 5))
        xs = range(len(items))
        ax.bar([x - 0.2 for x in xs], [v[0] / 1e3 for _, v in items], 0.4, label="p50")
        ax.bar([x + 0.2 for x in xs], [v[1] / 1e3 for _, v in items], 0.4, label="p99")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([k for k, _ in items], rotation=20, ha="right")
        ax.set_ylabel("round trip, us (lower is better)")
        ax.set_title("Wake-up ping-pong between two processes")
        ax.legend()
        fig.tight_layout()
        path = os.path.join(results, "latency.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    sv = data["shared_value"]
    if sv:
        impls = [re.match(r"uncontended/(.+)$", n).group(1) for n in sv if n.startswith("uncontended/")]
        fig, ax = plt.subplots(figsize=(9, 5))
        xs = range(len(impls))
        for offset, (label, getter) in zip((-0.27, 0, 0.27), (
                ("1 process (CPU)", lambda i: to_ns(sv[f"uncontended/{i}"], "cpu_time")),
                ("2 processes", lambda i: sv.get(f"contended/{i}/procs:2", {}).get("ns_per_op", 0)),
                ("4 processes", lambda i: sv.get(f"contended/{i}/procs:4", {}).get("ns_per_op", 0)))):
            ax.bar([x + offset for x in xs], [getter(i) for i in impls], 0.27, label=label)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(impls, rotation=25, ha="right")
        ax.set_ylabel("ns per update (lower is better)")
        ax.set_title("shared_value vs a locked struct vs atomics")
        ax.legend()
        fig.tight_layout()
        path = os.path.join(results, "shared_value.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
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
    if args.summary:
        if context:
            print(f"Machine: {context.get('host_name', '?')}, {context.get('num_cpus', '?')} CPUs "
                  f"@ {context.get('mhz_per_cpu', '?')} MHz; load average {context.get('load_avg', '?')}")
            print()
        summary_contention(data, "counter")
        summary_contention(data, "record")
        summary_uncontended(data)
        summary_latency(data)
        summary_shared_value(data)
        summary_targets(data)
    if not args.no_plots:
        for path in plots(data, args.results):
            print(f"plot: {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
