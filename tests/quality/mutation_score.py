"""Per-module mutation score from mutmut's results (``make mutate`` runs this after mutmut).

Killed = killed by a test, timed out, or rejected by the type checker. Everything else that
was generated (survived, no test reached it, suspicious) counts against the module. Lines
marked ``# pragma: no mutate`` generate no mutants: each carries its reason beside it (an
equivalent mutant, e.g. a cache size or a log text), and the table counts them so none
hides. The run fails when a module is below the target.

Usage: python tests/quality/mutation_score.py [--target 90] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KILLED = {"killed", "timeout", "caught by type check", "segfault"}
LINE = re.compile(r"^\s+(?P<name>[\w.]+)__mutmut_\d+: (?P<status>.+)$")


def module_of(mutant: str) -> str:
    """``engine.feed.gate.x_IdGate__check`` → ``engine/feed/gate.py``."""
    return mutant.rsplit(".", 1)[0].replace(".", "/") + ".py"


def pragma_lines(path: str) -> int:
    file = ROOT / path
    if not file.is_file():
        return 0
    return sum("pragma: no mutate" in line for line in file.read_text().splitlines())


def collect(results_text: str) -> dict[str, Counter[str]]:
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for line in results_text.splitlines():
        m = LINE.match(line)
        if m:
            by_module[module_of(m["name"])][m["status"]] += 1
    return by_module


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", type=float, default=90.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    by_module = collect(out)
    if not by_module:
        print("no mutmut results: run `make mutate`")
        return 1
    rows = []
    print(f"{'module':32} {'mutants':>7} {'killed':>6} {'survived':>8} {'no test':>7} "
          f"{'score':>6} {'pragma':>6}")
    failing = []
    for module in sorted(by_module):
        c = by_module[module]
        total = sum(c.values())
        killed = sum(n for s, n in c.items() if s in KILLED)
        score = 100.0 * killed / total if total else 100.0
        row = {"module": module, "mutants": total, "killed": killed,
               "survived": c["survived"], "no_tests": c["no tests"],
               "other": total - killed - c["survived"] - c["no tests"],
               "score": round(score, 1), "pragma_lines": pragma_lines(module)}
        rows.append(row)
        print(f"{module:32} {total:7} {killed:6} {c['survived']:8} {c['no tests']:7} "
              f"{score:5.1f}% {row['pragma_lines']:6}")
        if score < args.target:
            failing.append(module)
    total = sum(r["mutants"] for r in rows)
    killed = sum(r["killed"] for r in rows)
    print(f"{'all':32} {total:7} {killed:6} {'':8} {'':7} {100.0 * killed / total:5.1f}%")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if failing:
        print(f"below {args.target:.0f}%: {', '.join(failing)}  (`mutmut results` lists the "
              "survivors, `mutmut show NAME` the change)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
