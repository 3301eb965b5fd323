#!/usr/bin/env python3
"""test_procsync_shm.py TOOL MAKE_SEGMENT VERSION — checks procsync-shm as a
Unix tool: what goes to stdout and stderr, and the exit status, for --help,
--version, usage errors, ls/rm on real segments (dead, in use, missing) and a
segment the caller may not read (run as `nobody` through setpriv when the
suite runs as root; skipped with a message otherwise). Exits 0 if every check
passed, 1 otherwise, listing each failure."""
import os
import pwd
import grp
import shutil
import subprocess
import sys
import tempfile

tool, make_segment, version = sys.argv[1:4]
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

print(f"{len(failures)} failed" if failures else "all passed")
sys.exit(1 if failures else 0)
