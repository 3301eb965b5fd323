#!/usr/bin/env python3
"""Counts test cases over one or more Meson build dirs and prints the closing
line CI reads: `N passed, N failed`. A Boost.Test executable contributes its
per-case XML report; any other test (or a Boost one that crashed before writing
its report) counts as one case. For each failed test it repeats the first
error lines of its output just above that line, where a CI log's tail shows
them."""
import json, re, sys, xml.etree.ElementTree as ET
from pathlib import Path

passed = failed = 0
failures = []
ansi = re.compile(r'\x1b\[[0-9;]*m')


def first_errors(entry, limit=8):
    lines = [ansi.sub('', l) for l in (entry.get('stdout') or '').splitlines()]
    hits = [l for l in lines if re.search(r'error: in "|fatal error|ERROR: |runtime error:|Sanitizer', l)]
    return (hits or lines[-limit:])[:limit]


for build in sys.argv[1:]:
    log = Path(build) / 'meson-logs' / 'testlog.json'
    if not log.exists():
        print(f'tally: {log} missing: counted as one failure'); failed += 1; continue
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        ok = entry['result'] in ('OK', 'EXPECTEDFAIL', 'SKIP')
        name = entry['name'].split(' / ')[-1]  # meson may prefix 'project / '
        report = Path(build) / 'tests' / 'reports' / (name + '.xml')
        p = f = 0
        if report.exists():
            try:
                for case in ET.parse(report).iter('TestCase'):
                    if case.get('result') == 'passed': p += 1
                    elif case.get('result') != 'skipped': f += 1
            except ET.ParseError:
                p = f = 0
        if p + f == 0:
            p, f = (1, 0) if ok else (0, 1)
        elif not ok and f == 0:
            f = 1  # the executable failed outside any case (crash, leak, timeout)
        passed += p; failed += f
        if f: failures.append((f'{build}: {entry["name"]} ({entry["result"]})', first_errors(entry)))
for name, errors in failures:
    print(f'FAILED: {name}')
    for line in errors: print(f'  {line[:400]}')
print(f'{passed} passed, {failed} failed')
sys.exit(1 if failed else 0)
