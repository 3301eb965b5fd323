#!/usr/bin/env python3
"""test_procsync_shm.py TOOL MAKE_SEGMENT VERSION LOCK_SCENE — checks procsync-shm as a
Unix tool: what goes to stdout and stderr, and the exit status, for --help,
--version, usage errors, ls/rm on real segments (dead, in use, missing) and a
segment the caller may not read (run as `nobody` through setpriv when the
suite runs as root; skipped with a message otherwise), and `locks` /
`deadlock` (text, JSON, --dot, --watch) against a segment whose locks real
processes hold, wait for, die holding and deadlock on, and whose queues they
fill, sleep on, stop inside and close. Exits 0 if every check passed, 1
otherwise, listing each failure."""
import os
import pwd
import grp
import json
import shutil
import signal
import subprocess
import sys
import tempfile

tool, make_segment, version, lock_scene = sys.argv[1:5]
failures = []
prefix = f"pscli-{os.getpid()}-"


def run(*args, user=None):
    cmd = [tool, *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups", *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def check(what, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
        if detail:
            print("     " + detail.replace("\n", "\n     "))


def expect(what, result, rc, out_has=(), err_has=(), out_empty=False, err_empty=False):
    code, out, err = result
    detail = f"exit {code}\nstdout: {out!r}\nstderr: {err!r}"
    check(f"{what}: exit {rc}", code == rc, detail)
    for s in out_has:
        check(f"{what}: stdout has {s!r}", s in out, detail)
    for s in err_has:
        check(f"{what}: stderr has {s!r}", s in err, detail)
    if out_empty:
        check(f"{what}: stdout empty", out == "", detail)
    if err_empty:
        check(f"{what}: stderr empty", err == "", detail)
    # Errors speak the tool's language, not the library's.
    check(f"{what}: no internal 'procsync::' prefix", "procsync::" not in out + err, detail)


def shm(name):
    return os.path.join("/dev/shm", name)


def line_of(out, name):
    return next((l for l in out.splitlines() if l.split()[:1] == [name]), None)


# --- help, version, usage ------------------------------------------------------
for flag in ("--help", "-h"):
    expect(flag, run(flag), 0, out_has=("usage: procsync-shm", "exit status", "  2  bad usage"), err_empty=True)
expect("rm --help", run("rm", "--help"), 0, out_has=("usage: procsync-shm",), err_empty=True)
expect("--version", run("--version"), 0, out_has=(f"procsync-shm {version}\n",), err_empty=True)
expect("no arguments", run(), 2, err_has=("procsync-shm: ", "--help"), out_empty=True)
expect("unknown option", run("--bogus"), 2, err_has=("--bogus",), out_empty=True)
expect("unknown command", run("frobnicate"), 2, err_has=("frobnicate",), out_empty=True)
expect("unknown rm option", run("rm", "--zap", "x"), 2, err_has=("--zap",), out_empty=True)
expect("rm without names", run("rm"), 2, out_empty=True)
expect("ls with two prefixes", run("ls", "a", "b"), 2, out_empty=True)
expect("rm --dead --force", run("rm", "--dead", "--force"), 2, out_empty=True)

# --- real segments ---------------------------------------------------------------
dead, held, missing = prefix + "dead", prefix + "held", prefix + "missing"
holder = None
try:
    subprocess.run([make_segment, dead], check=True)
    holder = subprocess.Popen([make_segment, held, "--hold"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    check("holder started", holder.stdout.readline() == "ready\n")

    code, out, err = run("ls", prefix)
    expect("ls PREFIX", (code, out, err), 0, out_has=("NAME", dead, held), err_empty=True)
    d, h = line_of(out, dead), line_of(out, held)
    check("ls: dead segment is ready, 0600, not in use",
          d is not None and " ready " in d and " 0600 " in d and d.split()[6:8] == ["no", "no"], repr(d))
    check("ls: held segment in use", h is not None and h.split()[7] == "yes", repr(h))

    expect("rm missing", run("rm", missing), 1, err_has=(f"procsync-shm: {missing}: no such procsync segment",),
           out_empty=True)
    expect("rm in-use", run("rm", held), 1, err_has=(f"{held}: in use",), out_empty=True)
    check("rm in-use left it", os.path.exists(shm(held)))
    expect("rm --dead -n", run("rm", "--dead", "-n", prefix), 0, out_has=(f"would remove {dead}\n",), err_empty=True)
    check("rm --dead -n removed nothing", os.path.exists(shm(dead)))
    code, out, err = run("rm", "--dead", prefix)
    expect("rm --dead", (code, out, err), 0, out_has=(f"removed {dead}\n",), err_empty=True)
    check("rm --dead removed only the dead one", not os.path.exists(shm(dead)) and os.path.exists(shm(held))
          and held not in out)
    expect("rm NAME missing NAME", run("rm", "--force", held, missing), 1, out_has=(f"removed {held}\n",),
           err_has=(missing,))
    check("rm --force removed the held one", not os.path.exists(shm(held)))

    # --- a segment the caller may not read ----------------------------------------
    secret = prefix + "secret"
    if os.geteuid() != 0:
        print("SKIP permission cases: they need root (to run the tool as 'nobody' against a root-owned "
              "0600 segment); this run is not root")
    elif shutil.which("setpriv") is None:
        print("SKIP permission cases: setpriv (util-linux) is not installed")
    else:
        nobody = pwd.getpwnam("nobody")
        user = (nobody.pw_uid, nobody.pw_gid)
        subprocess.run([make_segment, secret], check=True)
        os.chmod(shm(secret), 0o600)
        # The build tree may not be reachable by nobody: run a copy from a 0755 folder.
        with tempfile.TemporaryDirectory() as tmp:
            os.chmod(tmp, 0o755)
            copy = os.path.join(tmp, "procsync-shm")
            shutil.copy(tool, copy)
            os.chmod(copy, 0o755)
            tool_as_root, tool = tool, copy
            try:
                code, out, err = run("ls", prefix, user=user)
                expect("ls as nobody", (code, out, err), 0, out_has=(secret,), err_empty=True)
                s = line_of(out, secret)
                check("ls as nobody: unreadable segment shown with owner, mode, no-permission",
                      s is not None and s.split()[2:5] == ["root", "0600", "no-permission"], repr(s))
                expect("rm as nobody", run("rm", secret, user=user), 1,
                       err_has=(f"procsync-shm: {secret}: permission denied",), out_empty=True)
                expect("rm --dead as nobody", run("rm", "--dead", prefix, user=user), 0, out_empty=True)
                check("nobody removed nothing", os.path.exists(shm(secret)))
            finally:
                tool = tool_as_root
        expect("rm as root", run("rm", secret), 0, out_has=(f"removed {secret}\n",))
finally:
    if holder is not None:
        holder.stdin.close()
        holder.wait(timeout=30)
    for name in os.listdir("/dev/shm"):
        if name.startswith(prefix):
            os.unlink(shm(name))


# --- locks and deadlock ------------------------------------------------------------
expect("locks --help", run("locks", "--help"), 0, out_has=("procsync-shm locks", "deadlock SEGMENT", "--watch"))
expect("locks without segment", run("locks"), 2, out_empty=True)
expect("locks --count without --watch", run("locks", "x", "--count", "2"), 2, out_empty=True)
expect("deadlock --json --dot", run("deadlock", "x", "--json", "--dot"), 2, out_empty=True)
expect("locks missing", run("locks", prefix + "missing"), 1, err_has=("no such procsync segment",), out_empty=True)
expect("deadlock missing", run("deadlock", prefix + "missing"), 1, err_has=("no such procsync segment",), out_empty=True)

scene_name = prefix + "scene"
scene = subprocess.Popen([lock_scene, scene_name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
try:
    facts = {}
    for line in scene.stdout:
        line = line.strip()
        if line == "ready":
            break
        k, v = line.split("=")
        facts[k] = int(v)
    check("scene ready", len(facts) == 13, repr(facts))
    code, out, err = run("locks", scene_name)
    expect("locks SEGMENT", (code, out, err), 0, out_has=("NAME", "KIND", "STATE", "HOLDER", "WAITERS"), err_empty=True)
    row = lambda name: (line_of(out, name) or "").split()
    h = row("held")
    check("locks: held by the holder, named, waiters 1+",
          h[1:5] == ["mutex", "held", f"{facts['holder']}:{facts['holder']}", "(ps-holder)"] and h[5] == "1+", repr(h))
    check("locks: held is reserved for its starved waiter",
          f"reserved for {facts['waiter']}:{facts['waiter']} (ps-waiter)" in (line_of(out, "held") or ""),
          line_of(out, "held"))
    check("locks: orphaned is inconsistent", row("orphaned")[1:3] == ["mutex", "inconsistent"], repr(row("orphaned")))
    check("locks: poisoned", row("poisoned")[2] == "poisoned", repr(row("poisoned")))
    check("locks: free", row("free")[2:5] == ["free", "-", "0"], repr(row("free")))
    seats = line_of(out, "seats") or ""
    check("locks: semaphore value and undo holder",
          "value 2/4" in seats and f"{facts['permits']} (ps-permits) 2" in seats, seats)
    check("locks: event set", row("door")[1:3] == ["event", "set"], repr(row("door")))
    check("locks: barrier 1/3 waiting", "1/3 parties waiting" in (line_of(out, "gate") or ""), line_of(out, "gate"))
    check("locks: shared_mutex reader", f"{facts['reader']}:{facts['reader']} (ps-reader)" in (line_of(out, "table") or ""),
          line_of(out, "table"))
    # Queues: jobs (5 of 8 pushed by ps-producer), inbox (empty, ps-consumer
    # asleep in pop), stuck (ps-pusher stopped in its third push, holding slot 2),
    # mail (3 of 16 messages sent by ps-sender, stopped in its fourth send).
    jobs = line_of(out, "jobs") or ""
    check("locks: queue fill level", row("jobs")[1:5] == ["queue", "nonempty", "-", "0"] and
          jobs.split("  ")[-1].strip() == "5/8 items", jobs)
    inbox = line_of(out, "inbox") or ""
    check("locks: empty queue, its consumer asleep", row("inbox")[1:5] == ["queue", "empty", "-", "1"] and
          "0/4 items, 1 consumer waiting" in inbox, inbox)
    stuck = line_of(out, "stuck") or ""
    check("locks: a push under way holds its slot",
          f"3/4 items, slot 2 writing by {facts['pusher']}:{facts['pusher']} (ps-pusher)" in stuck, stuck)
    mail = line_of(out, "mail") or ""
    check("locks: message_queue fill level and a reserved slot",
          row("mail")[1:5] == ["message_queue", "nonempty", "-", "0"] and "3/16 messages of up to 64 bytes" in mail and
          f"reserved by {facts['sender']}:{facts['sender']} (ps-sender)" in mail, mail)
    code, out1, err = run("locks", scene_name, "held")
    check("locks SEGMENT OBJECT: one row", code == 0 and line_of(out1, "held") and not line_of(out1, "free"), out1)
    expect("locks SEGMENT missing-object", run("locks", scene_name, "nothing"), 1, err_has=("no object 'nothing'",))

    code, out, err = run("locks", "--json", scene_name)
    # (kinds are spelled "procsync::mutex" in JSON, so expect()'s prefix rule does not apply)
    check("locks --json: exit 0, nothing on stderr", code == 0 and err == "", err)
    doc = json.loads(out)
    objs = {o["name"]: o for o in doc["objects"]}
    check("json: schema", doc["schema"] == "procsync-locks/2")
    check("json: segment", doc["segment"]["name"] == scene_name and doc["segment"]["ready"] and
          doc["segment"]["creator_pid"] == scene.pid)
    held = objs["held"]
    check("json: holder pid/tid/name", held["holder"] == {"tid": facts["holder"], "pid": facts["holder"],
                                                          "name": "ps-holder", "alive": True}, repr(held))
    check("json: waiters", held["waiters"] == 1 and held["waiters_exact"] is False, repr(held))
    check("json: reserved_for", held["reserved_for"] == {"tid": facts["waiter"], "pid": facts["waiter"],
                                                         "name": "ps-waiter", "alive": True} and
          objs["free"]["reserved_for"] is None, repr(held))
    check("json: states", [objs[n]["state"] for n in ("orphaned", "poisoned", "free", "door", "gate", "table")] ==
          ["inconsistent", "poisoned", "free", "set", "waiting", "shared"], repr(objs))
    check("json: semaphore", objs["seats"]["value"] == 2 and objs["seats"]["max"] == 4 and
          objs["seats"]["permit_holders"] == [{"pid": facts["permits"], "name": "ps-permits", "alive": True,
                                               "permits": 2}], repr(objs["seats"]))
    check("json: barrier", objs["gate"]["parties"] == 3 and objs["gate"]["arrived"] == 1 and objs["gate"]["waiters"] == 1)
    check("json: every object has every field",
          all(set(o) == set(held) for o in doc["objects"]), repr(sorted(held)))
    pick = lambda o, *keys: {k: o[k] for k in keys}
    qkeys = ("type", "state", "items", "capacity", "max_message_bytes", "closed", "consumers_waiting",
             "producers_waiting", "waiters", "waiters_exact", "held_slots")
    check("json: queue", pick(objs["jobs"], "kind", *qkeys) == {
        "kind": "procsync::queue<int64,8>", "type": "queue", "state": "nonempty", "items": 5, "capacity": 8,
        "max_message_bytes": None, "closed": False, "consumers_waiting": 0, "producers_waiting": 0, "waiters": 0,
        "waiters_exact": True, "held_slots": []}, repr(objs["jobs"]))
    check("json: empty queue, a consumer asleep", pick(objs["inbox"], *qkeys) == {
        "type": "queue", "state": "empty", "items": 0, "capacity": 4, "max_message_bytes": None, "closed": False,
        "consumers_waiting": 1, "producers_waiting": 0, "waiters": 1, "waiters_exact": True, "held_slots": []},
        repr(objs["inbox"]))
    pusher = {"tid": facts["pusher"], "pid": facts["pusher"], "name": "ps-pusher", "alive": True}
    check("json: a push under way holds its slot", objs["stuck"]["items"] == 3 and objs["stuck"]["held_slots"] ==
          [{"slot": 2, "phase": "writing", "thread": pusher, "skipped": False}], repr(objs["stuck"]))
    sender = {"tid": facts["sender"], "pid": facts["sender"], "name": "ps-sender", "alive": True}
    m = objs["mail"]
    check("json: message_queue", pick(m, "type", "items", "capacity", "max_message_bytes", "closed", "waiters") == {
        "type": "message_queue", "items": 3, "capacity": 16, "max_message_bytes": 64, "closed": False, "waiters": 0}
        and [(h["phase"], h["thread"]) for h in m["held_slots"]] == [("reserved", sender)], repr(m))
    check("json: a lock has no queue fields", pick(held, "items", "capacity", "closed", "held_slots") ==
          {"items": None, "capacity": None, "closed": None, "held_slots": []}, repr(held))

    # Closed by another process: the consumer wakes with queue_closed and is gone.
    scene.stdin.write("close\n")
    scene.stdin.flush()
    check("scene closed the inbox", scene.stdout.readline().strip() == "closed")
    code, out, err = run("locks", scene_name, "inbox")
    inbox = line_of(out, "inbox") or ""
    check("locks: closed queue, nobody waits", code == 0 and inbox.split()[1:5] == ["queue", "closed", "-", "0"] and
          "0/4 items, closed" in inbox, inbox)
    doc = json.loads(run("locks", "--json", scene_name, "inbox")[1])
    check("json: closed queue", [pick(o, "state", "closed", "consumers_waiting", "waiters") for o in doc["objects"]] ==
          [{"state": "closed", "closed": True, "consumers_waiting": 0, "waiters": 0}], repr(doc["objects"]))

    code, out, err = run("locks", "--watch", "--interval", "100", "--count", "3", scene_name)
    expect("locks --watch --count 3", (code, out, err), 0, err_empty=True)
    check("watch: 3 frames, each after a clear-screen", out.count("\x1b[H\x1b[2J") == 3 and out.count("NAME ") == 3)
    code, out, err = run("locks", "--watch", "--json", "-i", "50", "-c", "2", scene_name)
    check("watch --json: 2 documents, one per line",
          code == 0 and [json.loads(l)["schema"] for l in out.splitlines()] == ["procsync-locks/2"] * 2, out[:200])
    # End of input on a pipe stops an unbounded watch.
    p = subprocess.run([tool, "locks", "--watch", "-i", "50", scene_name], input="", capture_output=True, text=True,
                       timeout=30)
    check("watch: stops at end of input on a pipe", p.returncode == 0 and p.stdout.count("NAME ") >= 1, p.stderr)
    # SIGINT stops it too.
    w = subprocess.Popen([tool, "locks", "--watch", "-i", "50", scene_name], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, text=True)
    first = w.stdout.readline()
    w.send_signal(signal.SIGINT)
    check("watch: SIGINT stops it with exit 0", w.wait(timeout=30) == 0 and "segment" in first)

    code, out, err = run("deadlock", scene_name)
    expect("deadlock SEGMENT", (code, out, err), 0, err_empty=True,
           out_has=("classes (2)", "ledger -> accounts  by " + str(facts["transfer"]) + " (transfer) [exited]",
                    "cycles now: 1", "reports: 1 made, the newest 16 are kept", "order_violation",
                    f"by {facts['audit']} (audit)"))
    doc = json.loads(run("deadlock", "--json", scene_name)[1])
    check("deadlock json: schema", doc["schema"] == "procsync-deadlock/1")
    check("deadlock json: order", doc["orders"] == [{"from": "ledger", "to": "accounts", "pid": facts["transfer"],
                                                     "tid": facts["transfer"], "label": "transfer", "alive": False}],
          repr(doc["orders"]))
    check("deadlock json: the cycle", [sorted(c) for c in doc["cycles"]] == [sorted([facts["dl_high"], facts["dl_low"]])],
          repr(doc["cycles"]))
    check("deadlock json: waits", sorted((w["waiter"]["pid"], w["holder"]["pid"]) for w in doc["waits"]) ==
          sorted([(facts["dl_high"], facts["dl_low"]), (facts["dl_low"], facts["dl_high"])]), repr(doc["waits"]))
    code, dot, err = run("deadlock", "--dot", scene_name)
    check("deadlock --dot", code == 0 and dot.startswith("digraph") and "refused" in dot and
          f"t{facts['dl_high']} -> t{facts['dl_low']}" in dot, dot[:300])
    scene.stdin.write("resume\n")
    scene.stdin.flush()
    check("scene resumed", scene.stdout.readline().strip() == "resumed")
    doc = json.loads(run("deadlock", "--json", scene_name)[1])
    last = doc["reports"][-1]
    check("after the victim acted: no cycle, a deadlock report by the victim",
          doc["cycles"] == [] and doc["reports_total"] == 2 and last["type"] == "deadlock" and
          last["pid"] == facts["dl_high"] and last["cycle_length"] == 2, repr(doc["reports"]))
    expect("deadlock on a segment without registry", run("deadlock", scene_name, "--registry", "held"), 1,
           err_has=("'held' is not a deadlock registry",))

    # clear-poison: refused for a held, a free and an inconsistent lock and for a
    # non-lock; a poisoned one becomes free and usable.
    expect("clear-poison usage", run("clear-poison", scene_name), 2, out_empty=True)
    expect("clear-poison held", run("clear-poison", scene_name, "held"), 1, err_has=("is not poisoned (held)",),
           out_empty=True)
    expect("clear-poison free", run("clear-poison", scene_name, "free"), 1, err_has=("is not poisoned (free)",))
    expect("clear-poison inconsistent", run("clear-poison", scene_name, "orphaned"), 1,
           err_has=("is not poisoned (inconsistent)",))
    expect("clear-poison event", run("clear-poison", scene_name, "door"), 1, err_has=("not a lock",))
    expect("clear-poison missing", run("clear-poison", scene_name, "nothing"), 1, err_has=("no object 'nothing'",))
    expect("clear-poison poisoned", run("clear-poison", scene_name, "poisoned"), 0,
           out_has=(f"cleared {scene_name} poisoned",), err_empty=True)
    after = line_of(run("locks", scene_name, "poisoned")[1], "poisoned") or ""
    check("clear-poison: now free", after.split()[2:3] == ["free"], repr(after))
finally:
    scene.stdin.close()
    scene.wait(timeout=60)
    check("scene removed its segment", not os.path.exists(shm(scene_name)))

print(f"{len(failures)} failed" if failures else "all passed")
sys.exit(1 if failures else 0)
