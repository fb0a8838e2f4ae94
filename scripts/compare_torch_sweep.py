#!/usr/bin/env python3
"""A whole sweep's training speed in kibitzer and in PyTorch, same run, same threads.

    compare_torch_sweep.py compare --kibitzer CMD [--grid small|reference] [--steps N] [--rounds R]
        For `--rounds` rounds, runs `CMD --grid G --steps N --json` (kibitzer's
        `bench sweep`) and this script's `torch-sweep` (each a fresh process,
        back to back), then prints dictionary-steps/s of each side and their
        ratio as a Markdown table and writes a JSON file.

    compare_torch_sweep.py torch-sweep [--grid small|reference] [--steps N]
        Times PyTorch alone: every dictionary of the grid takes one step on
        the same batch, one dictionary after another (as a Python training
        loop over a sweep does), and prints one JSON object shaped like
        `kibitzer bench sweep --json`.

The grids are kibitzer's `SweepGrid` presets (crates/kibitzer/src/sweep/grid.rs):
small is the demo's 12 dictionaries (standard L1 1 and 3, p-annealing,
gated, TopK k=16, JumpReLU, each at 256 and 512 features, batch 2048);
reference is reference 001's 125 (five families x five values x 256..4096
features, batch 16384). Each PyTorch dictionary is compare_torch.py's step of
its architecture (dictionary_learning's trainers); p-annealing runs as the
standard step (the Lp penalty's extra elementwise pass is not counted in its
favour). The GFLOP/s column counts the same dense-equivalent work on both
sides: the five dense products of a step, 2 B F (2 d_in + 3 d_out) for each
dictionary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_torch as ct  # noqa: E402

# (family, torch arch, values): kibitzer's presets, in the grid's order.
GRIDS = {
    "small": {
        "features": [256, 512],
        "batch": 2048,
        "families": [
            ("standard", "standard", [1, 3]),
            ("panneal", "standard", [3]),
            ("gated", "gated", [3]),
            ("topk", "topk", [16]),
            ("jumprelu", "jumprelu", [3]),
        ],
    },
    "reference": {
        "features": [256, 512, 1024, 2048, 4096],
        "batch": 16384,
        "families": [
            ("standard", "standard", [1, 2, 3, 4, 5]),
            ("panneal", "standard", [1, 2, 3, 4, 5]),
            ("gated", "gated", [1, 2, 3, 4, 5]),
            ("topk", "topk", [4, 8, 16, 32, 64]),
            ("jumprelu", "jumprelu", [1, 2, 3, 4, 5]),
        ],
    },
}


def members(grid: str):
    """(family, torch arch, k, d_sae) of every dictionary of the grid."""
    g = GRIDS[grid]
    out = []
    for family, arch, values in g["families"]:
        for value in values:
            for d_sae in g["features"]:
                out.append((family, arch, value if arch == "topk" else 32, d_sae))
    return out


def dense_flops(batch: int, d_in: int, d_sae: int) -> float:
    return 2.0 * batch * d_sae * (2 * d_in + 3 * d_in)


def torch_sweep_main(a: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(a.threads)
    torch.manual_seed(7)
    batch = a.batch or GRIDS[a.grid]["batch"]
    grid = members(a.grid)
    x = torch.rand(batch, a.d_in) * 2 - 1
    steps = []
    for i, (_, arch, k, d_sae) in enumerate(grid):
        step, init_b_dec = ct.torch_trainer(ct.step_config(arch, k, a.d_in, d_sae, batch), a.adam, seed=i)
        with torch.no_grad():
            init_b_dec(x)
        steps.append(step)
    for _ in range(a.warmup):
        for step in steps:
            step(x)
    start = time.perf_counter()
    for _ in range(a.steps):
        for step in steps:
            loss = step(x)
    float(loss.detach())
    seconds = time.perf_counter() - start
    sweep_rate = a.steps / seconds
    flops = sum(dense_flops(batch, a.d_in, d_sae) for (_, _, _, d_sae) in grid)
    print(
        json.dumps(
            {
                "implementation": "pytorch",
                "torch": torch.__version__,
                "kind": "sweep",
                "grid": a.grid,
                "dictionaries": len(grid),
                "d_in": a.d_in,
                "batch": batch,
                "steps": a.steps,
                "seconds": seconds,
                "steps_per_s": sweep_rate,
                "dictionary_steps_per_s": sweep_rate * len(grid),
                "dense_equivalent_gflops": flops * sweep_rate / 1e9,
                "threads": torch.get_num_threads(),
                "adam": a.adam,
            }
        )
    )


def compare_main(a: argparse.Namespace) -> None:
    import shlex

    threads = {name: str(a.threads) for name in ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env = {**{k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}, **threads}
    # As in compare_torch.py: large temporaries stay on the heap (PyTorch's best case with glibc).
    torch_env = {**env, "GLIBC_TUNABLES": a.glibc_tunables}
    common = ["--grid", a.grid, "--steps", str(a.steps), "--d-in", str(a.d_in)]
    if a.batch:
        common += ["--batch", str(a.batch)]
    rounds = []
    for r in range(a.rounds):
        k = ct.run_json(shlex.split(a.kibitzer) + common + ["--json"], env)
        t = ct.run_json(
            [sys.executable, os.path.abspath(__file__), "torch-sweep", "--threads", str(a.threads),
             "--warmup", str(a.warmup), "--adam", a.adam] + common,
            torch_env,
        )
        ratio = k["dictionary_steps_per_s"] / t["dictionary_steps_per_s"]
        print(
            f"  round {r + 1}: kibitzer {k['dictionary_steps_per_s']:.2f}, pytorch "
            f"{t['dictionary_steps_per_s']:.2f} dictionary-steps/s, ratio {ratio:.2f}",
            file=sys.stderr,
        )
        rounds.append({"kibitzer": k, "pytorch": t, "ratio": ratio})
    best_k = max(rounds, key=lambda r: r["kibitzer"]["dictionary_steps_per_s"])["kibitzer"]
    best_t = max(rounds, key=lambda r: r["pytorch"]["dictionary_steps_per_s"])["pytorch"]
    ratio = statistics.median(r["ratio"] for r in rounds)
    print(
        f"grid {a.grid}: {best_k['dictionaries']} dictionaries, d_in {a.d_in}, batch {best_k['batch']}; "
        f"{a.threads} threads; {a.steps} timed sweep steps; {a.rounds} round(s) on {ct.cpu_name()}."
    )
    print("dictionary-steps/s and GFLOP/s: best round of each; ratio: median over rounds of the ratio within a round.")
    print()
    print("| implementation | dictionary-steps/s | GFLOP/s (dense-equivalent) | of the sgemm peak |")
    print("|---|---:|---:|---:|")
    peak = best_k.get("sgemm_peak_gflops", float("nan"))
    for name, r in (("kibitzer", best_k), ("PyTorch, one dictionary after another", best_t)):
        gf = r["dense_equivalent_gflops"]
        print(f"| {name} | {r['dictionary_steps_per_s']:.2f} | {gf:.1f} | {100 * gf / peak:.0f}% |")
    print()
    print(f"kibitzer / PyTorch: **{ratio:.2f}x**; sgemm peak measured by kibitzer in each round: {peak:.1f} GFLOP/s (best round)")
    ct.write_atomic(a.json_out, json.dumps({"grid": a.grid, "rounds": rounds, "ratio": ratio}, indent=2))
    print(f"\nwrote {a.json_out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def shape_args(p):
        p.add_argument("--grid", choices=sorted(GRIDS), default="small")
        p.add_argument("--d-in", type=int, default=256)
        p.add_argument("--batch", type=int, default=0, help="rows per batch (default: the grid's)")
        p.add_argument("--steps", type=int, default=5, help="timed sweep steps")
        p.add_argument("--warmup", type=int, default=2, help="untimed sweep steps (PyTorch side)")
        p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
        p.add_argument("--adam", choices=["default", "foreach", "fused"], default="fused")

    t = sub.add_parser("torch-sweep", help="time PyTorch alone")
    shape_args(t)
    c = sub.add_parser("compare", help="time kibitzer and PyTorch, print the table")
    c.add_argument("--kibitzer", required=True, help="kibitzer's bench command, e.g. 'target/release/kibitzer bench sweep'")
    c.add_argument("--rounds", type=int, default=2)
    c.add_argument("--json-out", default="target/compare_torch_sweep.json")
    c.add_argument("--glibc-tunables", default="glibc.malloc.mmap_max=0")
    shape_args(c)
    a = parser.parse_args()
    ct.check_positive(parser, a, ("d_in", "steps", "threads"))
    if a.command == "torch-sweep":
        torch_sweep_main(a)
    else:
        ct.check_positive(parser, a, ("rounds",))
        compare_main(a)


if __name__ == "__main__":
    main()
