#!/usr/bin/env python3
"""Mutation testing for procsync: does the suite fail when the code is wrong?

Each mutant in tests/mutants/mutants.txt is one small, plausible bug: a
(header, old snippet, new snippet) triple. For each mutant this script

  1. copies include/ to a scratch directory and replaces the snippet there
     (it must occur exactly once in the header, else the list is out of date
     and the script fails loudly: the headers are never touched);
  2. compiles the mutant's tests (its `tests:` line, in that order) against
     the scratch headers with g++ -O1;
  3. runs each test under a time limit until one fails: the mutant is then
     *killed* by that test (a test over its time limit kills it too: a hang
     is a failure); if all pass it *survived*.

Mutants marked `equivalent:` are applied and compiled (so the snippet stays in
sync) but not run: the reason is printed in the report.

Usage:
  scripts/mutate.py                      every mutant, report to stdout
  scripts/mutate.py --only ID [--only ID]
  scripts/mutate.py --sample 2 [--seed S] CI: a rotating sample (seed: the
                                         date by default); exit 1 if a sampled
                                         non-equivalent mutant survives
  scripts/mutate.py --check              only check that every snippet applies
  options: -j N (parallel mutants, default 2), --markdown FILE (write the
  table), --timeout S (per test run, default 300), --keep (keep scratch dirs)
"""

import argparse
import concurrent.futures as cf
import datetime
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIST = os.path.join(ROOT, "tests", "mutants", "mutants.txt")
CXX = os.environ.get("CXX_MUTATE", "g++")


class Mutant:
    def __init__(self, mid):
        self.id = mid
        self.file = None
        self.primitive = None
        self.what = ""
        self.tests = []
        self.old = None
        self.new = None
        self.equivalent = None


def parse(path):
    """The list's format: `version: N` once; then per mutant a header line
    `=== id`, key lines (file:, primitive:, what:, tests:, equivalent:), and the
    snippets between `--- old`, `--- new` and `--- end` (verbatim lines)."""
    version = None
    mutants = []
    cur = None
    mode = None
    buf = []
    with open(path) as f:
        lines = f.read().split("\n")
    for n, line in enumerate(lines, 1):
        if mode in ("old", "new"):
            if line in ("--- new", "--- end"):
                setattr(cur, mode, "\n".join(buf))
                buf = []
                mode = "new" if line == "--- new" else None
            else:
                buf.append(line)
            continue
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("version:"):
            version = int(line.split(":", 1)[1])
        elif line.startswith("=== "):
            cur = Mutant(line[4:].strip())
            mutants.append(cur)
        elif line == "--- old":
            mode = "old"
        elif cur is not None and re.match(r"^(file|primitive|what|tests|equivalent):", line):
            key, val = line.split(":", 1)
            val = val.strip()
            if key == "tests":
                cur.tests = val.split()
            else:
                setattr(cur, key, val)
        else:
            sys.exit(f"{path}:{n}: cannot parse: {line!r}")
    if version is None:
        sys.exit(f"{path}: no `version:` line")
    ids = set()
    for m in mutants:
        if m.id in ids:
            sys.exit(f"{path}: duplicate mutant id {m.id}")
        ids.add(m.id)
        if not (m.file and m.primitive and m.old is not None and m.new is not None):
            sys.exit(f"{path}: mutant {m.id} lacks file/primitive/old/new")
        if not m.tests and not m.equivalent:
            sys.exit(f"{path}: mutant {m.id} names no tests")
    return version, mutants


def apply(m, scratch):
    """Copies include/ into `scratch` and applies the mutant there."""
    inc = os.path.join(scratch, "include")
    shutil.copytree(os.path.join(ROOT, "include"), inc)
    target = os.path.join(inc, "procsync", m.file)
    with open(target) as f:
        text = f.read()
    count = text.count(m.old)
    if count != 1:
        raise RuntimeError(f"mutant {m.id}: the old snippet occurs {count} times in include/procsync/{m.file} "
                           "(must be exactly once: update tests/mutants/mutants.txt)")
    with open(target, "w") as f:
        f.write(text.replace(m.old, m.new))
    return inc


def compile_test(test, inc, out_dir):
    src = os.path.join(ROOT, "tests", test + ".cpp")
    exe = os.path.join(out_dir, test)
    cmd = [CXX, "-std=c++20", "-O1", "-pthread", "-w", "-I" + inc,
           "-I" + os.path.join(ROOT, "tests", "support"), "-I" + os.path.join(ROOT, "tests")]
    if test != "torture":
        cmd.append("-DBOOST_TEST_DYN_LINK")
    cmd += [src, "-o", exe]
    if test != "torture":
        cmd.append("-lboost_unit_test_framework")
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return exe, r.returncode, r.stdout


def shm_names():
    try:
        return set(os.listdir("/dev/shm"))
    except OSError:
        return set()


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def clean_shm(before):
    """Removes test segments a killed run left behind: new since `before`,
    named by a test (procsync-test-<pid>-...) whose process is gone."""
    for name in shm_names() - before:
        mt = re.match(r"^procsync-test-(\d+)-", name)
        if mt and not pid_alive(int(mt.group(1))):
            try:
                os.unlink(os.path.join("/dev/shm", name))
            except OSError:
                pass


def run_test(test, exe, timeout):
    """Returns (passed, detail)."""
    args = [exe]
    if test == "torture":
        args += ["--seconds", "20", "--workers", "6"]
    else:
        args += ["--log_level=error", "--report_level=no"]
    before = shm_names()
    start = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True, cwd=tempfile.gettempdir())
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        clean_shm(before)
        return False, f"over its {timeout} s limit", time.monotonic() - start
    clean_shm(before)
    elapsed = time.monotonic() - start
    if p.returncode == 0:
        return True, "", elapsed
    failed = sorted(set(re.findall(r'in "([A-Za-z0-9_/]+)"', out)))
    detail = ", ".join(failed[:3]) if failed else f"exit {p.returncode}"
    return False, detail, elapsed


def evaluate(m, timeout, keep, log):
    scratch = tempfile.mkdtemp(prefix="procsync-mutant-")
    try:
        inc = apply(m, scratch)
        if m.equivalent:
            return {"id": m.id, "verdict": "equivalent", "by": "", "detail": m.equivalent, "seconds": 0.0}
        t0 = time.monotonic()
        for test in m.tests:
            exe, rc, out = compile_test(test, inc, scratch)
            if rc != 0:
                # A mutant that does not compile is a bad mutant, not a kill.
                log(f"  {m.id}: {test} does not compile:\n{out[-2000:]}")
                return {"id": m.id, "verdict": "error", "by": test, "detail": "does not compile",
                        "seconds": time.monotonic() - t0}
            passed, detail, secs = run_test(test, exe, timeout)
            log(f"  {m.id}: {test} {'passed' if passed else 'FAILED'} ({secs:.0f} s){' ' + detail if detail else ''}")
            if not passed:
                return {"id": m.id, "verdict": "killed", "by": test, "detail": detail,
                        "seconds": time.monotonic() - t0}
        return {"id": m.id, "verdict": "survived", "by": "", "detail": "all of: " + " ".join(m.tests),
                "seconds": time.monotonic() - t0}
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)


def sample(mutants, k, seed):
    live = [m for m in mutants if not m.equivalent]
    h = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
    start = (h % len(live)) if live else 0
    # Rotating: consecutive seeds (days) walk through the list k at a time.
    return [live[(start + i * (len(live) // k or 1)) % len(live)] for i in range(min(k, len(live)))]


def markdown(version, mutants, results):
    by_id = {r["id"]: r for r in results}
    live = [r for r in results if r["verdict"] not in ("equivalent", "error")]
    killed = sum(r["verdict"] == "killed" for r in live)
    lines = []
    score = 100.0 * killed / len(live) if live else 0.0
    lines.append(f"Mutant list version {version}: {len(mutants)} mutants, "
                 f"{len(mutants) - len(live)} equivalent, {killed} of {len(live)} killed: "
                 f"**score {score:.1f} %**.")
    lines.append("")
    lines.append("| mutant | primitive | header | the bug | verdict | by | detail |")
    lines.append("|---|---|---|---|---|---|---|")
    for m in mutants:
        r = by_id.get(m.id)
        if r is None:
            continue
        detail = r["detail"].replace("|", "\\|")
        lines.append(f"| `{m.id}` | {m.primitive} | {m.file} | {m.what} | {r['verdict']} | {r['by']} | {detail} |")
    return "\n".join(lines) + "\n", score


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--sample", type=int, default=0)
    ap.add_argument("--seed", default=None)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("-j", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--list", default=LIST)
    a = ap.parse_args()

    version, mutants = parse(a.list)
    if a.check:
        bad = 0
        for m in mutants:
            d = tempfile.mkdtemp(prefix="procsync-mutant-")
            try:
                apply(m, d)
            except RuntimeError as e:
                print(e)
                bad += 1
            finally:
                shutil.rmtree(d, ignore_errors=True)
        if bad:
            return 1
        print(f"mutant list version {version}: all {len(mutants)} snippets apply exactly once")
        return 0
    chosen = mutants
    if a.only:
        chosen = [m for m in mutants if m.id in a.only]
        missing = set(a.only) - {m.id for m in chosen}
        if missing:
            sys.exit("unknown mutant(s): " + ", ".join(sorted(missing)))
    if a.sample:
        seed = a.seed or datetime.date.today().isoformat()
        chosen = sample(mutants, a.sample, seed)
        # Within CI's budget: each sampled mutant runs only its first test,
        # which the list keeps as the one that kills it in the full run.
        for m in chosen:
            m.tests = m.tests[:1]
        print(f"sample of {len(chosen)} (seed {seed}): " + " ".join(m.id for m in chosen), flush=True)

    def log(s):
        print(s, flush=True)

    results = []
    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(max_workers=max(1, a.j)) as pool:
        futs = {pool.submit(evaluate, m, a.timeout, a.keep, log): m for m in chosen}
        for fut in cf.as_completed(futs):
            r = fut.result()
            results.append(r)
            log(f"{r['id']}: {r['verdict'].upper()}{' by ' + r['by'] if r['by'] else ''} "
                f"({r['seconds']:.0f} s) {r['detail']}")
    order = {m.id: i for i, m in enumerate(mutants)}
    results.sort(key=lambda r: order[r["id"]])
    table, score = markdown(version, [m for m in mutants if m in chosen], results)
    print()
    print(table)
    print(f"total {time.monotonic() - t0:.0f} s")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(table)
    survivors = [r["id"] for r in results if r["verdict"] in ("survived", "error")]
    if survivors:
        print("SURVIVED (or did not compile): " + " ".join(survivors))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
