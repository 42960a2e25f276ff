"""Lists the source lines that no input of a fuzz corpus executes, read with gdb.

libFuzzer's own report (`-print_coverage=1`) is per sanitizer-coverage PC, and in an optimised
build a PC's line is often a merged or cold block, so a line it calls uncovered may well run. This
script asks the debugger instead: a one-shot breakpoint on every code line of the given sources, a
debug (unoptimised) build of the fuzz target running the corpus once (`-runs=0`), and whatever
breakpoint is left at the end is a line no input reached. Lines that only close an expression
(`))`, `}),`) can be left over although their statement ran; read the list with the source.

Run from the repository root (needs gdb; the build takes about two minutes):

    RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=target-fuzz-dev cargo fuzz build --dev -s none onnx
    python3 fuzz/reached_lines.py target-fuzz-dev/x86_64-unknown-linux-gnu/debug/onnx \\
        --source src/io/onnx/mod.rs --source src/io/onnx/proto.rs \\
        --return-at klrp::io::onnx::OnnxModel::network fuzz/work/onnx fuzz/corpus/onnx

`--return-at LOCATION` makes the harness function that reaches LOCATION return there: the onnx
check would otherwise trace and explain every model it imports, which takes minutes per thousand
inputs without optimisation, and the importer's lines have all run by then. Build without the
sanitizer (`-s none`): AddressSanitizer's stack poisoning does not survive gdb's `return`.
With `REACHED_LINES_LOG=<file>` set, gdb's whole output is written there too.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

CLOSING_ONLY = re.compile(r"^[\s\)\]\}\;,]*$")


def code_lines(path):
    """Line numbers that may hold code: not blank, not a comment, not only closing brackets."""
    for n, line in enumerate(open(path, encoding="utf-8"), start=1):
        s = line.strip()
        if s and not s.startswith("//") and not CLOSING_ONLY.match(s):
            yield n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary", help="a debug build of the fuzz target")
    ap.add_argument("corpus", nargs="+", help="corpus directories")
    ap.add_argument("--source", action="append", required=True, help="a source file to check")
    ap.add_argument("--return-at", help="gdb location at which the harness function returns")
    args = ap.parse_args()

    sources = [os.path.abspath(s) for s in args.source]
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "lines.gdb")
        with open(script, "w") as g:
            g.write("set pagination off\nset confirm off\nset breakpoint pending on\n")
            g.write("set environment ASAN_OPTIONS=detect_leaks=0\n")
            for src in sources:
                for n in code_lines(src):
                    g.write(f"tbreak {src}:{n}\ncommands\nsilent\ncontinue\nend\n")
            if args.return_at:
                g.write(f"break {args.return_at}\ncommands\nsilent\nup\nreturn\ncontinue\nend\n")
            g.write("run\n")
        run = [args.binary, "-runs=0", "-timeout=600", f"-artifact_prefix={tmp}/"]
        run += [os.path.abspath(c) for c in args.corpus]
        # `info breakpoints` as its own command: gdb can lose the race with the exiting
        # process ("Couldn't get registers"), which aborts the rest of the script file.
        gdb = ["gdb", "-batch", "-x", script, "-ex", "info breakpoints", "--args"]
        out = subprocess.run(gdb + run,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             cwd=tmp).stdout
    if os.environ.get("REACHED_LINES_LOG"):
        open(os.environ["REACHED_LINES_LOG"], "w").write(out)
    done = re.search(r"^#\d+\s+DONE .*$", out, re.M)
    if not done:
        sys.exit("the corpus run did not finish:\n" + out[: out.find("Num     Type")][-3000:])
    print(done.group(0).split("\t", 1)[-1], file=sys.stderr)

    def source_of(path):
        for src in sources:
            if src.endswith(path) or path.endswith(os.path.relpath(src)):
                return src
        return None

    # Where each line's breakpoint landed (gdb moves it to the next line with code), and which of
    # those are still in `info breakpoints` at the end: the one-shot ones never hit.
    placed = set()
    for m in re.finditer(r"^Temporary breakpoint \d+ at 0x[0-9a-f]+: (?:file )?(\S+?)(?:, line |:)(\d+)\.",
                         out, re.M):
        if source_of(m.group(1)):
            placed.add((source_of(m.group(1)), int(m.group(2))))
    # (Temporary breakpoints at one address are all deleted when it is reached, even if gdb
    # runs the commands of only the first, so the table, not an echo, tells what ran.)
    if "Num     Type" in out:
        table = out[out.rfind("Num     Type"):]
    elif "No breakpoints or watchpoints." in out:
        table = ""
    else:
        sys.exit("gdb printed no breakpoint table:\n" + out[-3000:])
    left, one_shot = set(), False
    for row in table.split("\n"):
        parent = re.match(r"^\d+\s+breakpoint\s+(\w+)", row)
        if parent:
            one_shot = parent.group(1) == "del"
        m = re.search(r" at (\S+):(\d+)$", row)
        if one_shot and m and source_of(m.group(1)):
            left.add((source_of(m.group(1)), int(m.group(2))))
    ran = placed - left
    texts = {src: open(src, encoding="utf-8").read().split("\n") for src in sources}
    for src, n in sorted(left):
        lines = texts[src]
        # A statement spread over lines can have its breakpoint on an address that only an
        # unwinding path reaches; say so when a later line of the same expression ran.
        end, depth = n, 0
        for k in range(n, len(lines) + 1):
            text = lines[k - 1].split("//")[0]
            depth += sum(text.count(c) for c in "([{") - sum(text.count(c) for c in ")]}")
            end = k
            if depth <= 0:
                break
        later = next((k for k in range(n + 1, end + 1) if (src, k) in ran), None)
        note = f"   [line {later} of the expression ran]" if later else ""
        print(f"{os.path.relpath(src)}:{n}: {lines[n - 1].strip()}{note}")
    print(f"{len(left)} of {len(placed)} lines with a breakpoint not reached", file=sys.stderr)


if __name__ == "__main__":
    main()
