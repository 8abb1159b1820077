#!/usr/bin/env python3
"""Converts Jepsen histories to faultline's JSON-lines history format.

Two input shapes are understood, the ones Porcupine's test data holds:
  etcd register logs:  INFO  jepsen.util - 3	:invoke	:cas	[1 4]
      f = read / write / cas; value nil | N | [A B] | :timed-out
  kv EDN maps:         {:process 0, :type :invoke, :f :append, :key "0", :value "x 0 0 y"}
      f = get / put / append, which become read / write / append over {"key": k, "value": v}

Jepsen's :fail means the operation did not happen and :info that it may have; a completion
with :timed-out carries the invocation's value. Lines are kept in order and get no time_ns, so
time follows line order. Lines that are not operations (other log output) are skipped.

Usage: jepsen_to_jsonl.py IN OUT
Exit 0 on success, 2 on a line that looks like an operation but cannot be read.
"""
import json
import re
import sys

ETCD = re.compile(r"^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)\s+(.*?)\s*$")
EDN = re.compile(r'^\{:process (\d+), :type :(invoke|ok|fail|info), :f :(get|put|append), '
                 r':key ("(?:[^"\\]|\\.)*"), :value (nil|"(?:[^"\\]|\\.)*")\}\s*$')


def etcd_value(text, line_no):
    if text == "nil":
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    m = re.fullmatch(r"\[(-?\d+)\s+(-?\d+)\]", text)
    if m:
        return [int(m.group(1)), int(m.group(2))]
    raise ValueError(f"line {line_no}: unreadable value {text!r}")


def convert(lines):
    out = []
    invoked = {}  # process -> invocation value, for :timed-out completions
    for line_no, line in enumerate(lines, 1):
        m = ETCD.match(line)
        if m:
            proc, typ, f, raw = int(m.group(1)), m.group(2), m.group(3), m.group(4)
            if raw == ":timed-out":
                if typ == "invoke":
                    raise ValueError(f"line {line_no}: an invocation cannot time out")
                value = invoked.get(proc)
            else:
                value = etcd_value(raw, line_no)
            if typ == "invoke":
                invoked[proc] = value
            out.append({"process": proc, "type": typ, "f": f, "value": value})
            continue
        m = EDN.match(line)
        if m:
            proc, typ, f = int(m.group(1)), m.group(2), m.group(3)
            key = json.loads(m.group(4))
            value = None if m.group(5) == "nil" else json.loads(m.group(5))
            f = {"get": "read", "put": "write", "append": "append"}[f]
            out.append({"process": proc, "type": typ, "f": f, "value": {"key": key, "value": value}})
            continue
        if "jepsen.util" in line and re.search(r":(invoke|ok|fail|info)\b", line):
            raise ValueError(f"line {line_no}: looks like an operation but cannot be read: {line.strip()!r}")
    return out


def main(argv):
    if len(argv) != 3:
        print("usage: jepsen_to_jsonl.py IN OUT", file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as f:
            ops = convert(f)
    except (OSError, ValueError) as e:
        print(f"jepsen_to_jsonl: {argv[1]}: {e}", file=sys.stderr)
        return 2
    with open(argv[2], "w", encoding="utf-8") as f:
        for op in ops:
            f.write(json.dumps(op, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
