#!/usr/bin/env python3
"""faultline's linearizability checker side by side with Porcupine, on the same files.

Fetches and builds nothing. It needs:
  --build DIR            a Release build of faultline (bench/checker_bench, apps/faultline/faultline)
  --harness BIN          a Porcupine harness binary with checker_bench --check's interface:
                           BIN -model register|kv [-init JSON] [-iterations N] FILE...
                         printing "FILE<TAB>verdict<TAB>check_ms<TAB>parse_ms" per file, check_ms
                         the median of N porcupine.CheckOperations calls (GOMAXPROCS=1). See the
                         README ("Performance") for what the harness does.
  --test-data DIR        the test_data directory of a Porcupine checkout (Jepsen etcd register
                         logs in jepsen/, Jepsen-style kv append logs in kv/)
  --out DIR              where histories and results go

For each class it writes (or converts) the histories, then runs 5 rounds; in each round, class
by class, faultline's Check() (checker_bench --check), the Porcupine harness and the faultline CLI
(`faultline check linearizable`, one process for all of the class's files: start, parse, check)
one after the other. Each in-process figure is the median of --iterations checks; a class's figure
is the sum over its files; the table gives the median over rounds. Verdicts must agree file by
file, and the generated classes must give the verdict they were built to have; any disagreement
is printed and makes the exit code 1.

Usage: compare.py --build build/release --harness /path/to/harness \
                  --test-data /path/to/porcupine/test_data --out /tmp/cmp [--rounds 5]
"""
import argparse
import glob
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# name, model, writer flags, expected verdict. 10,000 operations, 10 clients, seed 1 each.
GENERATED = [
    ("register, linearizable", "register",
     ["--history-format=register", "--history-info-one-in=200"], "linearizable"),
    ("register, not linearizable", "register",
     ["--history-format=register", "--history-info-one-in=0", "--history-corrupt"],
     "not linearizable"),
    ("kv, linearizable", "kv", ["--history-format=kv", "--history-info-one-in=200"], "linearizable"),
    ("kv, not linearizable", "kv",
     ["--history-format=kv", "--history-info-one-in=200", "--history-corrupt"], "not linearizable"),
    ("kv with append, linearizable", "kv",
     ["--history-format=kv-append", "--history-info-one-in=200"], "linearizable"),
    ("kv with append, not linearizable", "kv",
     ["--history-format=kv-append", "--history-info-one-in=200", "--history-corrupt"],
     "not linearizable"),
]


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode not in (0, 1):
        sys.exit(f"compare: {' '.join(cmd[:3])}...: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def parse_rows(text):
    rows = {}
    for line in text.strip().splitlines():
        path, verdict, check_ms, _parse_ms = line.split("\t")
        rows[path] = (verdict, float(check_ms))
    return rows


def prepare(args):
    bench = os.path.join(args.build, "bench", "checker_bench")
    classes = []
    os.makedirs(args.out, exist_ok=True)
    for name, model, flags, expected in GENERATED:
        path = os.path.join(args.out, name.replace(", ", "-").replace(" ", "_") + ".jsonl")
        subprocess.run([bench, f"--write-history={path}", "--history-ops=10000", *flags],
                       check=True, capture_output=True)
        classes.append({"name": name, "model": model, "init": "null", "files": [path],
                        "expected": expected})
    convert = os.path.join(HERE, "jepsen_to_jsonl.py")
    for name, pattern, model, init in [
            ("Jepsen etcd register logs", "jepsen/etcd_*.log", "register", "null"),
            ("Jepsen-style kv append logs", "kv/*.txt", "kv", '""')]:
        files = []
        for src in sorted(glob.glob(os.path.join(args.test_data, pattern))):
            dst = os.path.join(args.out, "real-" + os.path.basename(src).rsplit(".", 1)[0] + ".jsonl")
            subprocess.run([sys.executable, convert, src, dst], check=True)
            files.append(dst)
        if not files:
            sys.exit(f"compare: no {pattern} under {args.test_data}")
        classes.append({"name": f"{name} ({len(files)} files)", "model": model, "init": init,
                        "files": files, "expected": None})
    return classes


def measure(args, classes):
    bench = os.path.join(args.build, "bench", "checker_bench")
    cli = os.path.join(args.build, "apps", "faultline", "faultline")
    it = str(args.iterations)
    for c in classes:
        c["fl"], c["pc"], c["cli"] = [], [], []
    for r in range(args.rounds):
        for c in classes:
            fl = parse_rows(run([bench, "--check", f"--model={c['model']}",
                                 f"--initial-value={c['init']}", f"--iterations={it}", *c["files"]]))
            pc = parse_rows(run([args.harness, "-model", c["model"], "-init", c["init"],
                                 "-iterations", it, *c["files"]]))
            start = time.perf_counter()
            subprocess.run([cli, "check", "linearizable", "--model", c["model"], "--initial-value",
                            c["init"], *c["files"]], stdout=subprocess.DEVNULL)
            c["cli"].append((time.perf_counter() - start) * 1000)
            c["fl"].append(sum(v[1] for v in fl.values()))
            c["pc"].append(sum(v[1] for v in pc.values()))
            c["verdicts"] = {f: (fl[f][0], pc[f][0]) for f in c["files"]}
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)


def report(classes):
    bad = 0
    print("| history | faultline `Check()` | Porcupine check | speedup | `faultline check` CLI "
          "wall (start, parse, check) | CLI vs Porcupine check | verdicts |")
    print("|---|---|---|---|---|---|---|")
    for c in classes:
        fl, pc, cli = (statistics.median(c[k]) for k in ("fl", "pc", "cli"))
        verdicts = c["verdicts"]
        disagree = [f for f, (a, b) in verdicts.items() if a != b]
        wrong = [f for f, (a, _) in verdicts.items() if c["expected"] and a != c["expected"]]
        bad += len(disagree) + len(wrong)
        for f in disagree:
            print(f"DISAGREE {f}: faultline {verdicts[f][0]}, Porcupine {verdicts[f][1]}",
                  file=sys.stderr)
        for f in wrong:
            print(f"WRONG {f}: {verdicts[f][0]}, built to be {c['expected']}", file=sys.stderr)
        nonlin = sum(1 for a, _ in verdicts.values() if a != "linearizable")
        summary = ("identical" if not disagree else f"{len(disagree)} differ") + (
            f", {nonlin} of {len(verdicts)} not linearizable" if len(verdicts) > 1
            else f" ({next(iter(verdicts.values()))[0]})")
        print(f"| {c['name']} | {fl:.2f} ms | {pc:.2f} ms | {pc / fl:.1f}x | {cli:.1f} ms | "
              f"{pc / cli:.1f}x | {summary} |")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--harness", required=True)
    ap.add_argument("--test-data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=5)
    args = ap.parse_args()
    classes = prepare(args)
    measure(args, classes)
    return 1 if report(classes) else 0


if __name__ == "__main__":
    sys.exit(main())
