"""Coverage per package from the suite's coverage JSON, and the engine's line floor.

``make test`` runs pytest with pytest-cov (branch coverage) and then this: one line per
package (lines and branches, so a module nobody tests cannot hide in a large total), and a
non-zero exit when ``engine/`` falls below the floor of covered lines (issue 13: 90 %).

Usage: python tests/quality/coverage_gate.py coverage.json [--floor 90]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any


def package_of(path: str) -> str:
    parts = Path(path).parts
    return "/".join(parts[:2]) if len(parts) > 2 else f"{parts[0]}/*.py"


def sums(files: dict[str, Any]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for path, data in files.items():
        s = data["summary"]
        for key in (package_of(path), Path(path).parts[0]):
            acc = out[key]
            acc["lines"] += s["num_statements"]
            acc["covered"] += s["covered_lines"]
            acc["branches"] += s.get("num_branches", 0)
            acc["covered_branches"] += s.get("covered_branches", 0)
    return out


def pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 100.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("report", type=Path)
    parser.add_argument("--floor", type=float, default=90.0)
    args = parser.parse_args()
    files = json.loads(args.report.read_text())["files"]
    table = sums(files)
    print(f"{'package':22} {'lines':>6} {'line %':>7} {'branches':>8} {'branch %':>8}")
    for key in sorted(table, key=lambda k: (k.split("/")[0], "/" in k, k)):
        t = table[key]
        name = key if "/" in key else f"{key}/ (all)"
        print(f"{name:22} {t['lines']:6} {pct(t['covered'], t['lines']):6.1f}% "
              f"{t['branches']:8} {pct(t['covered_branches'], t['branches']):7.1f}%")
    engine = table["engine"]
    line_pct = pct(engine["covered"], engine["lines"])
    if line_pct < args.floor:
        print(f"engine/ line coverage {line_pct:.1f}% is below the floor of {args.floor:.0f}%")
        return 1
    print(f"engine/ line coverage {line_pct:.1f}% (floor {args.floor:.0f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
