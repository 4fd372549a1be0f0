"""Render bench/results.json as the README's performance table (between markers)."""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _fmt(v):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def table(results: dict) -> str:
    rows = ["| figure | value | unit | target | baseline (same run) | value ÷ baseline |",
            "|---|---:|---|---:|---:|---:|"]
    for key, fig in sorted(results.items()):
        value, base = fig.get("value"), fig.get("baseline")
        ratio = f"{value / base:.2f}" if isinstance(value, (int, float)) and isinstance(base, (int, float)) and base else "–"
        rows.append(f"| `{key}` | {_fmt(value)} | {fig.get('unit', '')} | {_fmt(fig.get('target'))} | {_fmt(base)} | {ratio} |")
    return "\n".join(rows)


def main() -> int:
    results_path = ROOT / "bench" / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    readme = ROOT / "README.md"
    text = readme.read_text()
    block = f"{START}\n{table(results)}\n{END}"
    if START in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), block, text, flags=re.S)
    else:
        text += "\n" + block + "\n"
    readme.write_text(text)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
