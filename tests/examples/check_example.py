#!/usr/bin/env python3
"""check_example.py NAME EXECUTABLE — runs one procsync example and checks what
it prints, that it exits 0 within its time limit, and that it leaves no process
behind (every example runs in a session of its own; once it has exited, no
live process may remain in that session).

Each example has a check function below; an example without one fails, so a
new example cannot slip into the suite unchecked. Checks assert behaviour
(exact totals, orderings, states), never timing beyond generous bounds: CI is a
loaded 2-core machine."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

TIME_LIMIT = 60.0  # seconds per run; the examples take < 5 s


class CheckFailed(Exception):
    pass


def need(cond, what):
    if not cond:
        raise CheckFailed(what)


def find(pattern, text, what=None):
    """The first match of `pattern` (multiline regex) in `text`, else fail."""
    m = re.search(pattern, text, re.M)
    need(m, what or f'expected output matching {pattern!r}')
    return m


def lines_matching(pattern, text):
    return [m for m in re.finditer(pattern, text, re.M)]


def session_members(sid):
    """Live (non-zombie) processes of session `sid`."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(')') + 2:].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state != 'Z':
            found.append(int(entry))
    return found


def assert_no_leftovers(sid, grace=5.0):
    deadline = time.monotonic() + grace
    while True:
        left = session_members(sid)
        if not left:
            return
        if time.monotonic() >= deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            raise CheckFailed(f'processes left running after the example exited: {left}')
        time.sleep(0.05)


def start(exe, *args):
    return subprocess.Popen([exe, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def finish(proc, limit=TIME_LIMIT):
    """Waits for `proc` (killing its session on timeout); returns its stdout."""
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        print(out + err)
        raise CheckFailed(f'did not finish within {limit} s')
    sys.stdout.write(out)
    sys.stderr.write(err)
    need(proc.returncode == 0, f'exit status {proc.returncode}, expected 0')
    assert_no_leftovers(proc.pid)
    return out


def run(exe, *args):
    return finish(start(exe, *args))


# ---------------------------------------------------------------- the checks

def check_demo(exe):
    out = run(exe)
    m = find(r'^without a lock: total (\d+), expected (\d+), lost updates (-?\d+)$', out)
    need(int(m[2]) - int(m[1]) == int(m[3]), 'lost updates must be expected - total')
    need(0 < int(m[1]) <= int(m[2]), 'an unlocked total is positive and never above the expected one')
    m = find(r'^with procsync::mutex: total (\d+), expected (\d+), lost updates 0 ', out)
    need(m[1] == m[2], 'the locked total must be exact')
    find(r'^next owner: previous owner died; checking 700 \+ savings 0 = 700', out,
         'the next owner must be told the holder died, and see the half-done transfer')
    find(r'^repaired from the journal: checking 1000 \+ savings 0 = 1000$', out)
    find(r'^a new transfer completes: checking 700, savings 300, total 1000$', out)


def check_scheduling(exe):
    out = run(exe)
    # Averages computed by hand from the job tables (see scheduling.cpp):
    # (waiting, turnaround, response) per policy, workload 1 then workload 2.
    w1, w2 = out.split('== Workload 2', 1)
    expected = [(w1, {
        'FCFS': ('1.300', '2.025', '1.300'),
        'SJF': ('1.050', '1.775', '1.050'),
        'RR': ('1.425', '2.150', '0.200'),
        'MLFQ': ('1.450', '2.175', '0.450'),
    }), (w2, {
        'FCFS': ('1.175', '1.700', '1.175'),
        'SJF': ('1.150', '1.675', '1.150'),
        'RR': ('0.300', '0.825', '0.175'),
        'MLFQ': ('0.400', '0.925', '0.275'),
    })]
    for text, table in expected:
        for policy, (wait, turnaround, response) in table.items():
            find(rf'^  {policy} .*: average waiting {re.escape(wait)} s, average turnaround {re.escape(turnaround)} s, '
                 rf'average response {re.escape(response)} s$',
                 text, f'{policy}: expected average waiting {wait} s, turnaround {turnaround} s, response {response} s')
    find(r'^  timeline \|44444444444433333333222222111\|$', w1, 'FCFS timeline')
    find(r'^  timeline \|44444444444411122222233333333\|$', w1, 'SJF timeline')
    # The classic MLFQ story: J1 finishes in level 1 (0.4 s), J2 in level 2, J3 in 3, J4 in 4.
    find(r'^  timeline \|44443333222211144433322443444\|$', w1, 'MLFQ timeline')
    # The conclusion agrees with the numbers: RR/MLFQ worse than FCFS on
    # mostly long jobs, better on mostly short ones.
    find(r"RR's average waiting \(1\.425 s\) is worse than FCFS's \(1\.300 s\),\n\s+and MLFQ's \(1\.450 s\) is worse than it",
         out, 'workload 1 conclusion: RR and MLFQ worse than FCFS')
    find(r"RR's average waiting\n\s+\(0\.300 s\) is better than FCFS's \(1\.175 s\), and MLFQ's \(0\.400 s\) is better than it",
         out, 'workload 2 conclusion: RR and MLFQ better than FCFS')
    need('let short jobs finish\nearly' not in out, 'the old, contradicted conclusion is gone')


def check_ticket_sale(exe):
    out = run(exe)
    m = find(r'^without a lock:.*\n  sold (\d+) tickets for 10 seats, (-?\d+) left', out)
    need(int(m[1]) >= 10, 'without a lock every ticket is still sold (possibly several times)')
    m = find(r'^with procsync::mutex:((?: buyer\d=\d+)+)\n  sold 10 tickets for 10 seats, 0 left: correct$', out,
             'with the mutex exactly 10 tickets must be sold')
    need(sum(int(x) for x in re.findall(r'=(\d+)', m[1])) == 10, 'the buyers\' tickets add up to 10')


def check_pg_ticket_sale(exe):
    # Needs the test server scripts/test.sh starts; without it this check fails (never skips).
    need(os.environ.get('PROCSYNC_PG_CONNINFO'), 'PROCSYNC_PG_CONNINFO is not set (scripts/test.sh sets it)')
    out = run(exe)
    find(r'^buyer 3 holds the lock and pays for ticket \d+\.\.\.$', out)
    find(r'^buyer 3 was SIGKILLed mid-sale \(it held the lock\); exit -9$', out)
    need('failed' not in out, 'every other buyer exits 0')
    m = find(r'^with procsync::pg::mutex:((?: buyer\d=\d+)+)\n  sold 10 tickets for 10 seats, 0 left: correct$', out,
             'exactly 10 tickets must be sold')
    counts = [int(x) for x in re.findall(r'=(\d+)', m[1])]
    need(sum(counts) == 10 and counts[2] == 0, f'the tickets add up to 10 and buyer 3 sold none: {counts}')


def check_room_semaphore(exe):
    out = run(exe)
    inside = [int(m[1]) for m in lines_matching(r'^visitor \d+ enters \((\d+) inside\)$', out)]
    need(len(inside) == 8, f'8 visitors must enter, saw {len(inside)}')
    need(all(1 <= n <= 3 for n in inside), f'never more than 3 inside: {inside}')
    need(len(lines_matching(r'^visitor \d+ leaves$', out)) == 8, 'every visitor leaves')
    m = find(r'^everyone visited; at most (\d+) were inside at once \(limit 3\); 3 chairs free$', out)
    need(1 <= int(m[1]) <= 3, 'the semaphore bounds the room at 3')


def check_condition_queue(exe):
    out = run(exe)
    find(r'^20 items: 20 consumed exactly once, 0 lost, 0 consumed twice$', out)
    taken = [int(m[1]) for m in lines_matching(r'^consumer \d took (\d+) items$', out)]
    need(len(taken) == 2 and sum(taken) == 20, f'the two consumers take 20 items in all: {taken}')
    need(len(lines_matching(r'^producer \d made 10 items$', out)) == 2, 'both producers finish')


def check_queue_workers(exe):
    out = run(exe)
    for how, first, total in (('round 1 \\(poison pills\\)', 0, 2470), ('round 2 \\(close\\)', 100, 240470)):
        m = find(rf'^{how}:((?: \d+\^2=\d+)+)$', out, f'{how}: the results line')
        pairs = [tuple(map(int, p.split('^2='))) for p in m[1].split()]
        need([n for n, _ in pairs] == list(range(first, first + 20)),
             f'{how}: every job done exactly once: {[n for n, _ in pairs]}')
        need(all(sq == n * n for n, sq in pairs), f'{how}: every result is its square')
        find(rf'^{how}: 20 results, sum of squares {total}$', out)
    for r in (1, 2):
        find(rf'^round {r}: 4 workers exited 0$', out, f'round {r}: every worker stops (pill / close)')
    done = [int(m[1]) for m in lines_matching(r'^  worker \d did (\d+) jobs$', out)]
    need(len(done) == 8 and sum(done) == 40, f'4 workers per round share the 40 jobs: {done}')
    find(r'^a push after close\(\) throws: procsync::queue::push: the queue is closed', out)


def check_crash_recovery(exe):
    out = run(exe)
    need(len(lines_matching(r'^holder \d+ was SIGKILLed mid-transfer \(it held the lock\); exit -9$', out)) == 2,
         'a holder is SIGKILLed in each act')
    find(r'^next owner \d+: previous owner died! alice 300 \+ bob 500 = 800, journal says 200 in flight$', out,
         'the next owner is told of the death and sees the half-done transfer')
    find(r'^next owner \d+: rolled back; alice 500 \+ bob 500 = 1000$', out)
    find(r'^after a normal transfer: alice 300, bob 700, total 1000$', out)
    find(r'^lock\(\) succeeded; inconsistent\(\) = true$', out)
    find(r'^lock\(\) now throws: .*\(errc::not_recoverable: yes\)$', out, 'an unrepaired mutex is not recoverable')
    find(r'^writer was SIGKILLed after about \d+ commits; exit -9$', out)
    find(r'^a reader sees alice -?\d+ \+ bob -?\d+ = 1000$', out, 'shared_value never shows a torn transfer')
    find(r'^the next writer moved 100: alice \+ bob = 1000$', out)


def check_traffic_light(exe):
    out = run(exe)
    lines = out.splitlines()
    for k in range(1, 6):
        need(f'car {k}: passes on green' in lines, f'car {k} must pass')
        if f'car {k}: red light, waiting' in lines:
            need(lines.index(f'car {k}: red light, waiting') < lines.index(f'car {k}: passes on green'),
                 f'car {k} waits before it passes')
    # A waiting car passes only after the light turned green again.
    light = None
    for line in lines:
        if line.startswith('light: '):
            light = line[len('light: '):]
        elif line.endswith('passes on green'):
            need(light is not None, f'{line!r} before the light ever turned green')
    find(r'^all 5 cars passed$', out)


def check_barrier_rounds(exe):
    out = run(exe)
    lines = out.splitlines()
    totals = {1: 332833500, 2: 2664667000, 3: 8995500500}  # sum of x*x for x < 1000*r
    for r, total in totals.items():
        done = f'round {r} complete: sum of squares below {1000 * r} = {total}'
        need(done in lines, f'expected {done!r}')
        at = lines.index(done)
        finished = [i for i, l in enumerate(lines) if re.fullmatch(rf'worker \d finished round {r}', l)]
        need(len(finished) == 4, f'4 workers finish round {r}')
        need(max(finished) < at, f'round {r}: every worker finished before the round completed')
        later = [i for i, l in enumerate(lines) if re.fullmatch(rf'worker \d finished round {r + 1}', l)]
        need(all(i > at for i in later), f'nobody starts round {r + 1} before round {r} completed')
    find(r'^killed party \d+ while it waited at the barrier \(exitcode -9\)$', out)
    need(len(lines_matching(r'^party [12]: errc::barrier_broken$', out)) == 2,
         'both surviving parties get errc::barrier_broken')
    find(r'^barrier broken\(\) = true$', out)


def check_hello_process(exe):
    out = run(exe)
    child = find(r'^child: I am the greeter, pid (\d+), my parent is pid (\d+)$', out)
    parent = find(r'^parent: I am pid (\d+), my parent is pid \d+; I started child pid (\d+)$', out)
    need(child[2] == parent[1], "the child's parent is the main program")
    need(child[1] == parent[2], 'pid() is the pid the child sees')
    find(r'^child: counting 1\nchild: counting 2\nchild: counting 3$', out, 'the child got its argument n = 3')
    find(r'^parent: child exited with code 0$', out)


def check_data_isolation(exe):
    out = run(exe)
    find(r'^child: global total = 101$', out)
    find(r'^parent: global total = 100 ', out, "the child's change to a global stays in the child")
    find(r'^parent: shared total = 110 after 10 children added 1 each$', out)


def check_join_many(exe):
    out = run(exe)
    lines = out.splitlines()
    sent = sorted(int(m[1]) for m in lines_matching(r'^child (\d+) \(pid \d+\): first e-mail sent', out))
    need(sent == list(range(1, 11)), f'all ten children send their e-mail: {sent}')
    need(re.match(r'parent: all 10 children joined after', lines[-2]), 'the join report follows every child')
    need(lines[-1].startswith('parent: second e-mail sent'), "the parent's e-mail is the last line")


def check_custom_process(exe):
    out = run(exe)
    parent = find(r"^parent (\d+): 'downloader http://example.com/a.iso' exited with 0, "
                  r"'downloader http://example.com/b.txt' exited with 2$", out)[1]
    for url, size in (('a.iso', 700), ('b.txt', 0)):
        m = find(rf'^downloader http://example.com/{re.escape(url)}: pid (\d+), parent (\d+), '
                 rf'downloading http://example.com/{re.escape(url)} \({size} KiB\)$', out)
        need(m[2] == parent and m[1] != parent, 'run() runs in a child of the main program')


def check_exit_codes(exe):
    out = run(exe)
    find(r'^while running, exitcode\(\) has a value: no$', out)
    for what, code in (('returned 0:', 0), ('returned 3:', 3), (r'called std::exit\(7\):', 7),
                       ('threw an exception:', 1), (r'terminate\(\) \(SIGTERM\):', -15),
                       (r'kill\(\) \(SIGKILL\):', -9)):
        find(rf'^{what} +exitcode {code}$', out)


def check_daemon_heartbeat(exe):
    out = run(exe)  # run() also checks that the daemon did not outlive main
    lines = out.splitlines()
    end = [i for i, l in enumerate(lines) if l.startswith('main: worker finished; main ends now')]
    need(len(end) == 1, 'main reports its end once')
    beats = [i for i, l in enumerate(lines) if re.fullmatch(r'daemon \(pid \d+\): server 3 is alive, heartbeat \d+', l)]
    need(len([i for i in beats if i < end[0]]) >= 1, 'the daemon beats while the worker runs')
    # It is terminated right after main's last line; a loaded machine may let
    # a beat or two slip out first, never a steady stream (and run() checks it
    # is gone).
    need(len([i for i in beats if i > end[0]]) <= 3, 'the daemon stops when main ends')
    broke = [i for i, l in enumerate(lines) if "can't take it anymore" in l]
    need(len(broke) == 1 and broke[0] < end[0], 'main ends only after the worker (join)')


def check_zombie_orphan(exe):
    out = run(exe)
    z = find(r'^child (\d+) has exited but is not reaped yet: state Z \(zombie\)$', out)[1]
    find(rf'^after join\(\): exitcode 0, /proc/{z} is gone \(reaped\)$', out)
    m = find(r'^parent (\d+): started child (\d+) and exits without waiting for it$', out)
    o = find(rf'^orphan {m[2]}: my parent {m[1]} exited; my new parent is (\d+) \(main is pid (\d+)\)$', out)
    need(o[1] == o[2], 'the orphan is re-parented to the subreaper (main)')
    find(rf'^main reaped the orphan {m[2]}: exited normally$', out)


def check_tcp_echo_server(exe):
    proc = start(exe)
    try:
        first = ''
        deadline = time.monotonic() + 30
        # Up to the line after the port: how to run the example's own client.
        # (Read line by line here: communicate() later reads the pipe directly,
        # so anything readline() buffered beyond these lines would be lost.)
        while not re.search(r'^try: .* --client \d+ ', first, re.M):
            need(time.monotonic() < deadline and proc.poll() is None, 'the server prints its port and its client')
            first += proc.stdout.readline()
        port = int(re.search(r'listening on 127\.0\.0\.1:(\d+)', first)[1])

        def client(i):
            s = socket.create_connection(('127.0.0.1', port), timeout=20)
            s.sendall(f'hello from client {i}\n'.encode())
            return s

        def expect_echo(s, i):
            want, got = f'hello from client {i}\n'.encode(), b''
            while len(got) < len(want):
                chunk = s.recv(4096)
                need(chunk, f'client {i}: connection closed before the echo')
                got += chunk
            need(got == want, f'client {i}: echo {got!r}, expected {want!r}')

        # Five clients one after another: each gets its own line back.
        for i in range(5):
            s = client(i)
            expect_echo(s, i)
            s.close()
        # Three at once: two are served, the third waits for a free seat.
        a, b, c = client(5), client(6), client(7)
        expect_echo(a, 5)
        expect_echo(b, 6)
        c.settimeout(0.3)
        try:
            early = c.recv(4096)
        except socket.timeout:
            early = None
        need(early is None, 'a third simultaneous client must wait (the semaphore allows 2)')
        c.settimeout(20)
        a.close()  # frees a seat: the third is served now
        expect_echo(c, 7)
        b.close()
        c.close()
        # The example's own client (--client PORT LINE...): the ninth connection.
        cl = subprocess.run([exe, '--client', str(port), 'first line', 'second line'],
                            capture_output=True, text=True, timeout=30)
        need(cl.returncode == 0, f'--client exits 0, got {cl.returncode}: {cl.stderr}')
        need("client: sent 'first line', echoed 'first line': ok" in cl.stdout and
             "client: sent 'second line', echoed 'second line': ok" in cl.stdout, f'--client output: {cl.stdout!r}')
        bad = subprocess.run([exe, '--client', 'not-a-port'], capture_output=True, text=True, timeout=30)
        need(bad.returncode == 2 and 'usage' in bad.stderr, '--client with a bad port is a usage error (exit 2)')
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGTERM)
        out = first + finish(proc, limit=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    find(rf'^try: .* --client {port} ', first, 'the server tells how to run its own client')
    find(r'^main: SIGTERM; shutting down$', out)
    find(r'^main: workers exited with 0 0 0$', out, 'every worker stops gracefully with exit code 0')
    m = find(r'^main: served (\d+) connections, at most (\d+) at once; 0 workers still running$', out)
    need(int(m[1]) == 9, f'9 connections were served, the server counted {m[1]}')
    need(int(m[2]) == 2, 'two clients were served at once, never more')
    need(len(lines_matching(r'^worker \d: client #\d+ done, echoed \d+ bytes$', out)) == 9, 'every client is done')


def check_lock_inversion(exe):
    out = run(exe)
    t = find(r'^transfer \(pid (\d+)\): took ledger, then accounts; exiting$', out)[1]
    m = find(r"^audit \(pid \d+\): refused: .*lock order violation.*\n(?:  .*\n)*", out,
             'the opposite order is refused with a lock-order report')
    need("'ledger'" in m[0] and "'accounts'" in m[0], 'the report names both lock classes')
    need(f'process {t} (transfer)' in m[0], 'the report names the (exited) process that set the first order')
    find(r'^audit exited with 0 \(0: it got errc::lock_order_violation\)$', out)
    victims = lines_matching(r'^worker [AB]: chosen as the victim \(errc::deadlock_detected\), backing off$', out)
    need(len(victims) == 1, f'exactly one victim of the real deadlock, saw {len(victims)}')
    need(len(lines_matching(r'^worker [AB]: got both locks$', out)) == 1, 'the other worker proceeds')
    find(r'^report: .*deadlock detected: .*waits for .* held by .*', out)
    find(r'^both workers exited: 0 0$', out)
    # Read back from the named segment by segment_inspector (procsync/inspect.hpp).
    find(rf'^order ledger -> accounts, first taken by {t} \(transfer\)$', out)
    find(r'^report #1: order_violation by \d+ \(audit\), a cycle of 2$', out)
    find(r'^report #2: deadlock by \d+ \(worker [AB]\), a cycle of 2$', out)


def check_dining_philosophers(exe):
    out = run(exe)
    round1, rest = out.split('== Round 2')
    round2, round3 = rest.split('== Round 3')
    need(len(lines_matching(r'^philosopher \d: deadlock detected, puts the left fork down$', round1)) >= 1,
         'the five-process deadlock is detected')
    need(sorted(m[1] for m in lines_matching(r'^philosopher (\d) eats$', round1)) == list('12345'),
         'every philosopher eats once after the deadlock is broken')
    find(r'^5 meals eaten, 0 philosophers failed$', round1)
    need(len(lines_matching(r'^philosopher \d eats meal \d$', round2)) == 15, 'round 2: 15 meals')
    need('deadlock detected' not in round2, 'lock_all never deadlocks')
    find(r'^15 meals eaten, 0 philosophers failed$', round2)
    need(sorted(m[1] for m in lines_matching(r'^philosopher (\d) eats meal \d with scoped_lock$', round3))
         == sorted('12345' * 3), 'round 3: three meals each with std::scoped_lock')
    need('deadlock detected' not in round3, 'scoped_lock never deadlocks')
    find(r'^15 meals eaten, 0 philosophers failed$', round3)
    find(r'^report #1: deadlock, a cycle of 5:( philosopher \d ->){5} philosopher \d$', round3)


CHECKS = {name[len('check_'):]: fn for name, fn in globals().items() if name.startswith('check_')}


def main():
    if len(sys.argv) != 3:
        sys.exit('usage: check_example.py NAME EXECUTABLE')
    name, exe = sys.argv[1], sys.argv[2]
    os.environ['PROCSYNC_EXAMPLE_FAST'] = '1'
    check = CHECKS.get(name)
    if check is None:
        print(f'FAIL {name}: no check for this example in {__file__}')
        sys.exit(1)
    try:
        check(exe)
    except CheckFailed as e:
        print(f'\nFAIL {name}: {e}')
        sys.exit(1)
    print(f'\nOK {name}')


if __name__ == '__main__':
    main()
