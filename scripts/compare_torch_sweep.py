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
        `kibitzer bench sweep --json`. With `--grouped`, the dictionaries
        of each architecture and size step all at once instead: parameters
        stacked on a group axis, batched products (`torch.baddbmm`).

    compare_torch_sweep.py check [--grid small] [--steps N] [--batch B]
        The grouped steps against the one-after-another steps from the same
        seeds: every parameter after N steps, within a relative tolerance.

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



def grouped_trainer(cfg: ct.StepConfig, singles: list, adam: str):
    """One step for every dictionary of `singles` (compare_torch's trainers
    of one architecture and size, after their `init_b_dec`), taken all at
    once: each parameter stacked on a leading group axis `[G, ...]`, every
    product a batched one (`torch.baddbmm`), the members' losses summed.
    The members share no parameter, so each one's gradients, gradient
    clipping, Adam update and decoder normalisation are its own (Adam is
    elementwise; clipping and norms are taken per member), and the result
    equals stepping them one after another up to the products' summation
    order (`check` measures it)."""
    import torch
    import torch.nn.functional as F

    JumpReLU, Step = ct.jumprelu_functions()
    n = len(singles)
    names = list(singles[0].params)
    P = torch.nn.Parameter
    p = {}
    for name in names:
        stacked = torch.stack([s.params[name].detach() for s in singles])
        if stacked.dim() == 2:  # a bias or a per-feature vector: [G, 1, width]
            stacked = stacked[:, None, :]
        p[name] = P(stacked.clone())
    plist = list(p.values())
    optimizer = ct.make_adam(cfg, plist, adam)
    since = torch.zeros(n, cfg.d_sae, dtype=torch.long)
    state = {"threshold": [-1.0] * n}

    def encoder_input(x):
        return x - p["b_dec"] if cfg.subtract_b_dec else x.expand(n, -1, -1)

    def recon_loss(x, x_hat):
        return (x - x_hat).pow(2).sum(dim=-1).mean(dim=-1)  # [G]

    def track_fired(fired, rows):
        since.add_(rows)
        since[fired] = 0

    def loss_of(x):
        rows = x.shape[0]
        if cfg.arch == "standard":
            f = F.relu(torch.baddbmm(p["b_enc"], encoder_input(x), p["w_enc"]))
            x_hat = torch.baddbmm(p["b_dec"], f, p["w_dec"])
            l1 = (f * p["w_dec"].norm(dim=2)[:, None, :]).sum(dim=-1).mean(dim=-1)
            return recon_loss(x, x_hat) + cfg.sparsity_coefficient * l1
        if cfg.arch == "gated":
            x_enc = torch.bmm(encoder_input(x), p["w_enc"])
            pi_gate = x_enc + p["b_enc"]
            gate_on = (pi_gate > 0).float()
            f = gate_on * F.relu(p["r_mag"].exp() * x_enc + p["b_mag"])
            x_hat = torch.baddbmm(p["b_dec"], f, p["w_dec"])
            f_gate = F.relu(pi_gate)
            x_hat_gate = torch.baddbmm(p["b_dec"].detach(), f_gate, p["w_dec"].detach())
            sparsity = f_gate.sum(dim=-1).mean(dim=-1)
            return recon_loss(x, x_hat) + cfg.sparsity_coefficient * sparsity + recon_loss(x, x_hat_gate)
        if cfg.arch == "jumprelu":
            pre = torch.baddbmm(p["b_enc"], encoder_input(x), p["w_enc"])
            f = JumpReLU.apply(pre, p["threshold"], cfg.bandwidth)
            with torch.no_grad():
                track_fired(f.sum(1) > 0, rows)
            x_hat = torch.baddbmm(p["b_dec"], f, p["w_dec"])
            l0 = Step.apply(f, p["threshold"], cfg.bandwidth).sum(dim=-1).mean(dim=-1)
            return recon_loss(x, x_hat) + cfg.sparsity_coefficient * l0
        if cfg.arch == "topk":
            post_relu = F.relu(torch.baddbmm(p["b_enc"], encoder_input(x), p["w_enc"]))
            top = post_relu.topk(cfg.k, sorted=False, dim=-1)
            f = torch.zeros_like(post_relu).scatter_(-1, top.indices, top.values)
            with torch.no_grad():
                fired = torch.zeros(n, cfg.d_sae, dtype=torch.bool)
                fired.scatter_(1, top.indices.reshape(n, -1), True)
                track_fired(fired, rows)
            x_hat = torch.baddbmm(p["b_dec"], f, p["w_dec"])
            e = x - x_hat
            loss = e.pow(2).sum(dim=-1).mean(dim=-1)
            dead = since >= cfg.dead_after_tokens
            if bool(dead.any()):
                # AuxK member by member: each has its own dead count.
                aux = []
                for g in range(n):
                    n_dead = int(dead[g].sum())
                    if n_dead == 0:
                        aux.append(loss[g] * 0)
                        continue
                    k_aux = min(cfg.d_in // 2, n_dead)
                    latents = torch.where(dead[g][None], post_relu[g], -torch.inf)
                    acts, idx = latents.topk(k_aux, sorted=False)
                    buf = torch.zeros_like(post_relu[g]).scatter_(-1, idx, acts)
                    residual = e[g].detach()
                    l2 = (residual - buf @ p["w_dec"][g]).pow(2).sum(dim=-1).mean()
                    denom = (residual - residual.mean(dim=0, keepdim=True)).pow(2).sum(dim=-1).mean()
                    aux.append((l2 / denom).nan_to_num(0.0))
                loss = loss + cfg.auxk_alpha * torch.stack(aux)
            return loss
        raise SystemExit(f"no grouped step for {cfg.arch!r}")

    def clip_each():
        # torch.nn.utils.clip_grad_norm_, member by member.
        with torch.no_grad():
            grads = [q.grad for q in plist if q.grad is not None]
            norms = torch.stack([g.pow(2).flatten(1).sum(dim=1) for g in grads]).sum(dim=0).sqrt()
            scale = (cfg.clip / (norms + 1e-6)).clamp(max=1.0)
            for g in grads:
                g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))

    def step(x):
        losses = loss_of(x)
        losses.sum().backward()
        ct.update(cfg, p, optimizer, row_dim=2, clip=clip_each)
        return losses

    def member_params(g: int) -> dict:
        # A 1-D parameter was stacked as [G, 1, width].
        return {name: (t[g, 0] if singles[0].params[name].dim() == 1 else t[g]).detach() for name, t in p.items()}

    step.member_params = member_params
    return step


def build_trainers(grid_members, d_in: int, batch: int, adam: str, x, grouped: bool):
    """The grid's PyTorch steps: one per dictionary, or (grouped) one per
    architecture and size, each stepping its dictionaries all at once.
    Dictionary i is seeded with i either way."""
    singles = []
    for i, (_, arch, k, d_sae) in enumerate(grid_members):
        cfg = ct.step_config(arch, k, d_in, d_sae, batch)
        step, init_b_dec = ct.torch_trainer(cfg, adam, seed=i)
        init_b_dec(x)
        singles.append((cfg, step))
    if not grouped:
        return [step for _, step in singles], [[i] for i in range(len(singles))]
    groups: dict = {}
    for i, (cfg, _) in enumerate(singles):
        groups.setdefault((cfg.arch, cfg.k, cfg.d_sae, cfg.sparsity_coefficient), []).append(i)
    steps = []
    for idx in groups.values():
        cfg = singles[idx[0]][0]
        steps.append(grouped_trainer(cfg, [singles[i][1] for i in idx], adam))
    return steps, list(groups.values())

def torch_sweep_main(a: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(a.threads)
    torch.manual_seed(7)
    batch = a.batch or GRIDS[a.grid]["batch"]
    grid = members(a.grid)
    x = torch.rand(batch, a.d_in) * 2 - 1
    steps, _ = build_trainers(grid, a.d_in, batch, a.adam, x, a.grouped)
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
                "implementation": "pytorch-grouped" if a.grouped else "pytorch",
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



def check_main(a: argparse.Namespace) -> None:
    """The grouped steps against the one-after-another steps: the same
    seeds, `--steps` steps on the same batches, every parameter of every
    dictionary compared. Exits 1 when one differs by more than `--tol`
    (relative to the parameter's largest magnitude)."""
    import torch

    torch.set_num_threads(a.threads)
    grid = members(a.grid)
    batch = a.batch or GRIDS[a.grid]["batch"]
    g = torch.Generator().manual_seed(3)
    batches = [torch.rand(batch, a.d_in, generator=g) * 2 - 1 for _ in range(a.steps)]
    singles, _ = build_trainers(grid, a.d_in, batch, a.adam, batches[0], grouped=False)
    grouped, groups = build_trainers(grid, a.d_in, batch, a.adam, batches[0], grouped=True)
    for x in batches:
        for step in singles + grouped:
            step(x)
    worst = 0.0
    for step, idx in zip(grouped, groups):
        for slot, i in enumerate(idx):
            mine = step.member_params(slot)
            for name, t in singles[i].params.items():
                scale = float(t.detach().abs().max()) or 1.0
                diff = float((mine[name] - t.detach()).abs().max()) / scale
                worst = max(worst, diff)
                if diff > a.tol:
                    print(f"dictionary {i} ({grid[i]}): {name} differs by {diff:.3g} (relative)", file=sys.stderr)
    print(f"grouped against one after another: {len(grid)} dictionaries in {len(groups)} groups, "
          f"{a.steps} steps, largest relative difference {worst:.3g} (tolerance {a.tol:g})")
    if worst > a.tol:
        sys.exit(1)

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
        tg = ct.run_json(
            [sys.executable, os.path.abspath(__file__), "torch-sweep", "--grouped", "--threads", str(a.threads),
             "--warmup", str(a.warmup), "--adam", a.adam] + common,
            torch_env,
        )
        best_torch = max(t["dictionary_steps_per_s"], tg["dictionary_steps_per_s"])
        ratio = k["dictionary_steps_per_s"] / best_torch
        print(
            f"  round {r + 1}: kibitzer {k['dictionary_steps_per_s']:.2f}, pytorch "
            f"{t['dictionary_steps_per_s']:.2f}, pytorch grouped {tg['dictionary_steps_per_s']:.2f} "
            f"dictionary-steps/s, ratio to PyTorch's faster {ratio:.2f}",
            file=sys.stderr,
        )
        rounds.append({"kibitzer": k, "pytorch": t, "pytorch_grouped": tg, "ratio": ratio})
    best_k = max(rounds, key=lambda r: r["kibitzer"]["dictionary_steps_per_s"])["kibitzer"]
    best_t = max(rounds, key=lambda r: r["pytorch"]["dictionary_steps_per_s"])["pytorch"]
    best_tg = max(rounds, key=lambda r: r["pytorch_grouped"]["dictionary_steps_per_s"])["pytorch_grouped"]
    ratio = statistics.median(r["ratio"] for r in rounds)
    print(
        f"grid {a.grid}: {best_k['dictionaries']} dictionaries, d_in {a.d_in}, batch {best_k['batch']}; "
        f"{a.threads} threads; {a.steps} timed sweep steps; {a.rounds} round(s) on {ct.cpu_name()}."
    )
    print("dictionary-steps/s and GFLOP/s: best round of each; ratio: median over rounds of the ratio within a round.")
    print()
    print("| implementation | dictionary-steps/s | GFLOP/s (dense-equivalent) | of the sgemm peak |")
    print("|---|---:|---:|---:|")
    # The peak is a best-of: the highest of the rounds (a round whose own
    # measurement caught a busy moment would otherwise inflate the shares).
    peak = max(r["kibitzer"].get("sgemm_peak_gflops", float("nan")) for r in rounds)
    for name, r in (
        ("kibitzer", best_k),
        ("PyTorch, one dictionary after another", best_t),
        ("PyTorch, grouped (each architecture and size at once)", best_tg),
    ):
        gf = r["dense_equivalent_gflops"]
        print(f"| {name} | {r['dictionary_steps_per_s']:.2f} | {gf:.1f} | {100 * gf / peak:.0f}% |")
    print()
    print(f"kibitzer / PyTorch's faster way: **{ratio:.2f}x**; sgemm peak measured by kibitzer in each round: {peak:.1f} GFLOP/s (the highest)")
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
    t.add_argument("--grouped", action="store_true",
                   help="step each architecture and size's dictionaries all at once (batched products)")
    k = sub.add_parser("check", help="the grouped steps equal the one-after-another steps")
    shape_args(k)
    k.add_argument("--tol", type=float, default=1e-4, help="largest relative difference allowed")
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
    elif a.command == "check":
        check_main(a)
    else:
        ct.check_positive(parser, a, ("rounds",))
        compare_main(a)


if __name__ == "__main__":
    main()
