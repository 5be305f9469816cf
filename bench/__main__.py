"""Run every benchmark module (bench/bench_*.py) and print one table per benchmark.

Each module defines `run(ctx: BenchContext) -> list[Result]` and a one-line docstring.
    python -m bench --scale 0.05            # quick look
    python -m bench --only processing       # one benchmark
The server is $BENCH_DATABASE_URL, else a Docker engine, else a throwaway local cluster.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path

import bench
from bench.harness import BenchContext, Result, bench_server_url
from loader.devdb.provision import throwaway_server


def print_table(title: str, results: list[Result]) -> None:
    print(f"\n== {title}")
    header = f"{'figure':44} {'value':>14} {'baseline':>14} {'ratio':>8}  target"
    print(header)
    print("-" * len(header))
    for r in results:
        baseline = f"{r.baseline:,.1f}" if r.baseline is not None else "-"
        ratio = f"{r.ratio:.3f}" if r.ratio is not None else "-"
        print(f"{r.name + ' (' + r.unit + ')':44} {r.value:>14,.1f} {baseline:>14} {ratio:>8}"
              f"  {r.target}")
        if r.baseline_name:
            print(f"{'  baseline: ' + r.baseline_name}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of the issue's data sizes (default 1.0)")
    parser.add_argument("--only", action="append", default=[],
                        help="run only benchmarks whose module name contains this")
    parser.add_argument("--json", type=Path, help="also write all results to this JSON file")
    args = parser.parse_args()
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__)
                   if m.name.startswith("bench_"))
    if args.only:
        names = [n for n in names if any(o in n for o in args.only)]
    everything: dict[str, list[dict[str, object]]] = {}
    with throwaway_server(bench_server_url()) as url:
        ctx = BenchContext(server_url=url, scale=args.scale)
        try:
            for name in names:
                module = importlib.import_module(f"bench.{name}")
                title = (f"{name[len('bench_'):]}: "
                         f"{(module.__doc__ or '').strip().splitlines()[0]}")
                results = module.run(ctx)
                print_table(title, results)
                sys.stdout.flush()
                everything[name] = [{**r.__dict__, "ratio": r.ratio} for r in results]
        finally:
            ctx.close()
    if args.json:
        args.json.write_text(json.dumps(everything, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
