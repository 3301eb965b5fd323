#!/usr/bin/env python3
"""check-snippets.py [ROOT] — compiles every C++ snippet in README.md,
docs/*.md and examples/README.md, so the documentation cannot rot.

Each ```cpp block must be one of:
  - a full program (it defines `int main`): compiled and linked;
  - a fragment, marked by an HTML comment right before the block that gives
    the code around it, with @SNIPPET@ where the block goes:

        <!-- compile-as:
        #include <procsync/mutex.hpp>
        void f(procsync::mutex& m) {
        @SNIPPET@
        }
        -->

    compiled (-fsyntax-only) in that context.
An unmarked fragment is an error: every C++ snippet is checked. Compilers:
g++ and, when installed, clang++, with -std=c++20 -Wall -Wextra -Wpedantic
-Werror, like the headers. Because procsync's headers include much of the
standard library, a snippet that forgets an include still compiles: each one
must also include the standard header of every std name it uses from the
table below ("include what you use"). Exits 0 if all pass, 1 otherwise."""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

BLOCK = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
MARK = re.compile(r"<!--\s*compile-as:\s*\n(.*?)-->\s*\Z", re.S)


# std names a snippet may use only with their own header included.
OWN_HEADER = {
    "vector": "vector", "unique_ptr": "memory", "make_unique": "memory", "shared_ptr": "memory",
    "make_shared": "memory", "string": "string", "to_string": "string", "printf": "cstdio",
    "puts": "cstdio", "lock_guard": "mutex", "scoped_lock": "mutex", "unique_lock": "mutex",
    "thread": "thread", "chrono": "chrono", "cout": "iostream", "cerr": "iostream", "array": "array",
    "optional": "optional", "atomic": "atomic", "function": "functional",
}


def missing_includes(source):
    """Standard headers the source uses names from but does not include."""
    included = set(re.findall(r"#include\s*<([^>]+)>", source))
    used = set(re.findall(r"\bstd::(\w+)", source))
    return sorted({OWN_HEADER[n] for n in used if n in OWN_HEADER} - included)


def snippets(path):
    """[(line, kind, source)] for the ```cpp blocks of one Markdown file."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    out = []
    for m in BLOCK.finditer(text):
        lang = m.group(1).strip().split()[:1]
        if lang not in (["cpp"], ["c++"]):
            continue
        line = text.count("\n", 0, m.start()) + 1
        body = m.group(2)
        before = text[:m.start()]
        # Only the comment that ends right before the block (the last one).
        mark = MARK.search(before[before.rfind("<!--"):]) if "<!--" in before else None
        if mark:
            template = mark.group(1)
            if "@SNIPPET@" not in template:
                out.append((line, "error", "compile-as comment without @SNIPPET@"))
            else:
                out.append((line, "fragment", template.replace("@SNIPPET@", body)))
        elif re.search(r"^\s*int\s+main\s*\(", body, re.M):
            out.append((line, "program", body))
        else:
            out.append((line, "error", "neither a full program nor marked with a compile-as comment"))
    return out


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    files = [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "docs", "*.md"))) + \
        [os.path.join(root, "examples", "README.md")]
    compilers = [c for c in ("g++", "clang++") if shutil.which(c)]
    flags = ["-std=c++20", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-pthread",
             "-I", os.path.join(root, "include")]
    # procsync::pg snippets need libpq's headers (and the library, for programs).
    cflags = subprocess.run(["pkg-config", "--cflags", "libpq"], capture_output=True, text=True)
    libs = subprocess.run(["pkg-config", "--libs", "libpq"], capture_output=True, text=True)
    libpq_cflags = cflags.stdout.split() if cflags.returncode == 0 else []
    libpq_libs = libs.stdout.split() if libs.returncode == 0 else []
    failed = checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in files:
            if not os.path.exists(path):
                continue
            rel = os.path.relpath(path, root)
            for line, kind, source in snippets(path):
                where = f"{rel}:{line}"
                if kind == "error":
                    print(f"FAIL {where}: {source}")
                    failed += 1
                    continue
                missing = missing_includes(source)
                if missing:
                    print(f"FAIL {where}: uses std names without including " + ", ".join(f"<{h}>" for h in missing))
                    failed += 1
                src = os.path.join(tmp, f"snippet{checked}.cpp")
                with open(src, "w") as f:
                    f.write(source)
                checked += 1
                for cxx in compilers:
                    mode = ["-o", os.path.join(tmp, "a.out")] if kind == "program" else ["-fsyntax-only"]
                    extra = (libpq_cflags + (libpq_libs if kind == "program" else [])) if "procsync/pg" in source else []
                    p = subprocess.run([cxx, *flags, src, *mode, *extra], capture_output=True, text=True)
                    if p.returncode != 0:
                        print(f"FAIL {where} ({kind}, {cxx}):\n{p.stdout}{p.stderr}")
                        failed += 1
                    else:
                        print(f"ok   {where} ({kind}, {cxx})")
    print(f"{checked} snippets, {failed} failures")
    return 1 if failed or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
