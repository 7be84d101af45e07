"""Summarize py-spy collapsed stacks (`py-spy record --format raw`): where the worker's time goes.

`python -m bench.profile FILE [--top N]` prints the functions with the most samples on top of the
stack (self) and anywhere in the stack (inclusive), as shares of all samples."""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(.*) (\d+)$")


def _short(frame: str) -> str:
    # py-spy frames look like "function (path/to/file.py:123)"; keep the function and the
    # file's tail
    m = re.match(r"^(.*?) \((.*?):(\d+)\)$", frame.strip())
    if not m:
        return frame.strip()
    func, path, _ = m.groups()
    parts = path.split("/")
    tail = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{func} ({tail})"


def summarize(path: Path, top: int = 15) -> str:
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        stack, count = m.group(1), int(m.group(2))
        frames = [_short(f) for f in stack.split(";")]
        # the first frame is the thread/process label py-spy adds
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        self_c[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    out = [f"{path.name}: {total} samples"]
    out.append("  self (on top of the stack):")
    for f, c in self_c.most_common(top):
        out.append(f"    {c / total:6.1%}  {f}")
    out.append("  inclusive (anywhere in the stack):")
    for f, c in incl.most_common(top + 10):
        out.append(f"    {c / total:6.1%}  {f}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args(argv)
    for f in args.files:
        print(summarize(f, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
