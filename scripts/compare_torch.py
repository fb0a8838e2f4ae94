#!/usr/bin/env python3
"""Steps/s of one SAE training step in kibitzer and in PyTorch, same run, same threads.

Two sub-commands:

  compare_torch.py compare --kibitzer CMD... [options]
      For each architecture, runs kibitzer's bench command and this script's
      `torch-step` (each in a fresh process, back to back, `--rounds` times),
      then prints a Markdown table (best steps/s of each side, median of the
      per-round ratios) and writes a JSON file. scripts/compare_torch.sh builds kibitzer and calls this.

  compare_torch.py torch-step --arch A [--k K] [options]
      Times the PyTorch step alone and prints one JSON object shaped like
      `kibitzer bench sae --json`.

The PyTorch steps follow dictionary_learning's trainers (forward, loss,
autograd backward, gradient clipping where kibitzer's TrainConfig clips,
Adam, and for the unit-norm architectures the decoder-gradient projection
before and the row renormalisation after the Adam step). The same sizes,
the same initialisation scheme (random unit directions as decoder rows, norm
0.1 for the standard SAE, encoder = decoder transpose, zero biases) and the
same input distribution (uniform in [-1, 1)) are used on both sides.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

# (row label, --arch, k or None): the architectures of issue 3's speed table.
ARCHS = [
    ("standard", "standard", None),
    ("gated", "gated", None),
    ("topk k=32", "topk", 32),
    ("topk k=64", "topk", 64),
    ("batchtopk k=32", "batchtopk", 32),
    ("jumprelu", "jumprelu", None),
    ("matryoshka k=32", "matryoshka", 32),
]

# Issue 3's targets: kibitzer / PyTorch steps/s.
TARGETS = {"standard": 1.0, "topk": 2.0}


# ---------------------------------------------------------------------------
# PyTorch side
# ---------------------------------------------------------------------------


@dataclass
class StepConfig:
    arch: str
    k: int
    d_in: int
    d_sae: int
    batch: int
    lr: float
    sparsity_coefficient: float
    clip: float | None
    unit_norm: bool
    subtract_b_dec: bool
    bandwidth: float = 0.001
    auxk_alpha: float = 1.0 / 32.0
    dead_after_tokens: int = 10_000_000


def step_config(arch: str, k: int, d_in: int, d_sae: int, batch: int) -> StepConfig:
    """The settings kibitzer's TrainConfig::for_architecture gives each architecture."""
    topk_lr = 2e-4 / math.sqrt(d_sae / 16384)
    table = {
        # lr, sparsity coefficient, clip, unit-norm decoder, subtract b_dec
        "standard": (5e-5, 5.0, 1.0, False, True),
        "gated": (5e-5, 1.0, 1.0, True, True),
        "topk": (topk_lr, 0.0, None, True, True),
        "batchtopk": (topk_lr, 0.0, None, True, True),
        "matryoshka": (topk_lr, 0.0, None, True, True),
        "jumprelu": (7e-5, 1.0, 1.0, True, False),
    }
    if arch not in table:
        raise SystemExit(f"unknown architecture {arch!r}: expected one of {', '.join(table)}")
    lr, coef, clip, unit, sub = table[arch]
    return StepConfig(arch, k, d_in, d_sae, batch, lr, coef, clip, unit, sub)


def jumprelu_functions():
    """JumpReLU's activation and its L0 step with the paper's
    straight-through gradients (rectangle kernel of width `eps`), as
    dictionary_learning's JumpReluTrainer writes them. Each broadcasts the
    threshold against the pre-activations, so a stacked `[G, 1, F]`
    threshold works as well as a `[F]` one."""
    import torch

    class Rectangle(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u):
            ctx.save_for_backward(u)
            return ((u > -0.5) & (u < 0.5)).float()

        @staticmethod
        def backward(ctx, grad):
            (u,) = ctx.saved_tensors
            return grad * ((u > -0.5) & (u < 0.5)).float()

    class JumpReLU(torch.autograd.Function):
        @staticmethod
        def forward(ctx, pre, theta, eps):
            ctx.save_for_backward(pre, theta)
            ctx.eps = eps
            return pre * (pre > theta).float()

        @staticmethod
        def backward(ctx, grad):
            pre, theta = ctx.saved_tensors
            eps = ctx.eps
            d_pre = (pre > theta).float() * grad
            d_theta = -(theta / eps) * Rectangle.apply((pre - theta) / eps) * grad
            return d_pre, d_theta, None

    class Step(torch.autograd.Function):
        @staticmethod
        def forward(ctx, pre, theta, eps):
            ctx.save_for_backward(pre, theta)
            ctx.eps = eps
            return (pre > theta).float()

        @staticmethod
        def backward(ctx, grad):
            pre, theta = ctx.saved_tensors
            eps = ctx.eps
            d_theta = -(1.0 / eps) * Rectangle.apply((pre - theta) / eps) * grad
            return torch.zeros_like(pre), d_theta, None
    return JumpReLU, Step


def make_adam(cfg: StepConfig, plist, adam: str):
    """PyTorch's Adam at `cfg.lr`, in the implementation `adam` names."""
    import torch

    options = {"lr": cfg.lr, "betas": (0.9, 0.999), "eps": 1e-8}
    if adam == "fused":
        options["fused"] = True
    elif adam == "foreach":
        options["foreach"] = True
    return torch.optim.Adam(plist, **options)


def update(cfg: StepConfig, p: dict, optimizer, row_dim: int, clip) -> None:
    """Everything of a step after `backward`, as dictionary_learning's
    trainers do it: the decoder-row gradient projected onto the unit
    sphere's tangent, `clip()` (gradient clipping) when `cfg.clip` is set,
    Adam, the decoder rows renormalised, JumpReLU's thresholds kept at or
    above zero. `row_dim` is the axis of a decoder row's entries (1, or 2
    for parameters stacked on a group axis)."""
    import torch

    if cfg.unit_norm:
        with torch.no_grad():
            w = p["w_dec"]
            unit = w / (w.norm(dim=row_dim, keepdim=True) + 1e-6)
            gw = w.grad
            gw -= (gw * unit).sum(dim=row_dim, keepdim=True) * unit
    if cfg.clip is not None:
        clip()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if cfg.unit_norm:
        with torch.no_grad():
            w = p["w_dec"]
            w /= w.norm(dim=row_dim, keepdim=True) + torch.finfo(w.dtype).eps
    if cfg.arch == "jumprelu":
        with torch.no_grad():
            p["threshold"].clamp_(min=0.0)


def torch_trainer(cfg: StepConfig, adam: str, seed: int = 0):
    """Returns `step(x)`, one full training step of `cfg.arch` in PyTorch."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    norm = 1.0 if cfg.unit_norm else 0.1
    w_dec = torch.randn(cfg.d_sae, cfg.d_in, generator=g)
    w_dec = w_dec / w_dec.norm(dim=1, keepdim=True) * norm
    P = torch.nn.Parameter
    params = {
        "w_enc": P(w_dec.t().contiguous().clone()),  # [d_in, d_sae]
        "b_enc": P(torch.zeros(cfg.d_sae)),
        "w_dec": P(w_dec.clone()),  # [d_sae, d_in], one row per feature
        "b_dec": P(torch.zeros(cfg.d_in)),
    }
    if cfg.arch == "gated":
        params["b_mag"] = P(torch.zeros(cfg.d_sae))
        params["r_mag"] = P(torch.zeros(cfg.d_sae))
    if cfg.arch == "jumprelu":
        params["threshold"] = P(torch.full((cfg.d_sae,), 0.001))
    plist = list(params.values())
    optimizer = make_adam(cfg, plist, adam)
    state = {"tokens_since_fired": torch.zeros(cfg.d_sae, dtype=torch.long), "threshold": -1.0}
    p = params

    def encoder_input(x):
        return x - p["b_dec"] if cfg.subtract_b_dec else x

    def recon_loss(x, x_hat):
        return (x - x_hat).pow(2).sum(dim=-1).mean()

    def track_fired(fired_mask, rows):
        # dictionary_learning's num_tokens_since_fired bookkeeping.
        since = state["tokens_since_fired"]
        since += rows
        since[fired_mask] = 0

    def auxk_loss(residual, post_relu):
        # Gao et al.'s AuxK, as dictionary_learning's TopK trainers write it.
        dead = state["tokens_since_fired"] >= cfg.dead_after_tokens
        n_dead = int(dead.sum())
        if n_dead == 0:
            return None
        k_aux = min(cfg.d_in // 2, n_dead)
        latents = torch.where(dead[None], post_relu, -torch.inf)
        acts, idx = latents.topk(k_aux, sorted=False)
        buf = torch.zeros_like(post_relu).scatter_(-1, idx, acts)
        e_hat = buf @ p["w_dec"]
        l2 = (residual - e_hat).pow(2).sum(dim=-1).mean()
        mu = residual.mean(dim=0, keepdim=True)
        denom = (residual - mu).pow(2).sum(dim=-1).mean()
        return (l2 / denom).nan_to_num(0.0)

    JumpReLU, Step = jumprelu_functions()

    def loss_of(x):
        rows = x.shape[0]
        if cfg.arch == "standard":
            # dictionary_learning StandardTrainerAprilUpdate.
            f = F.relu(torch.addmm(p["b_enc"], encoder_input(x), p["w_enc"]))
            x_hat = torch.addmm(p["b_dec"], f, p["w_dec"])
            l1 = (f * p["w_dec"].norm(dim=1)).sum(dim=-1).mean()
            return recon_loss(x, x_hat) + cfg.sparsity_coefficient * l1
        if cfg.arch == "gated":
            # dictionary_learning GatedAutoEncoder / GatedSAETrainer: the
            # magnitude path reuses the encoder product, rescaled per feature.
            x_enc = encoder_input(x) @ p["w_enc"]
            pi_gate = x_enc + p["b_enc"]
            gate_on = (pi_gate > 0).float()
            pi_mag = p["r_mag"].exp() * x_enc + p["b_mag"]
            f = gate_on * F.relu(pi_mag)
            x_hat = torch.addmm(p["b_dec"], f, p["w_dec"])
            f_gate = F.relu(pi_gate)
            x_hat_gate = torch.addmm(p["b_dec"].detach(), f_gate, p["w_dec"].detach())
            sparsity = f_gate.sum(dim=-1).mean()
            return recon_loss(x, x_hat) + cfg.sparsity_coefficient * sparsity + recon_loss(x, x_hat_gate)
        if cfg.arch == "jumprelu":
            # dictionary_learning JumpReluTrainer, with the paper's L0 penalty.
            pre = torch.addmm(p["b_enc"], x, p["w_enc"])
            f = JumpReLU.apply(pre, p["threshold"], cfg.bandwidth)
            with torch.no_grad():
                track_fired(f.sum(0) > 0, rows)
            x_hat = torch.addmm(p["b_dec"], f, p["w_dec"])
            l0 = Step.apply(f, p["threshold"], cfg.bandwidth).sum(dim=-1).mean()
            return recon_loss(x, x_hat) + cfg.sparsity_coefficient * l0
        if cfg.arch in ("topk", "batchtopk", "matryoshka"):
            # dictionary_learning AutoEncoderTopK / BatchTopKSAE and trainers.
            post_relu = F.relu(torch.addmm(p["b_enc"], encoder_input(x), p["w_enc"]))
            if cfg.arch == "topk":
                top = post_relu.topk(cfg.k, sorted=False, dim=-1)
                f = torch.zeros_like(post_relu).scatter_(-1, top.indices, top.values)
                with torch.no_grad():
                    fired = torch.zeros(cfg.d_sae, dtype=torch.bool)
                    fired[top.indices.flatten()] = True
            else:
                flat = post_relu.flatten()
                top = flat.topk(cfg.k * rows, sorted=False, dim=-1)
                f = torch.zeros_like(flat).scatter_(-1, top.indices, top.values).reshape(post_relu.shape)
                with torch.no_grad():
                    fired = f.sum(0) > 0
                    active = f[f > 0]
                    m = float(active.min()) if active.numel() else 0.0
                    t = state["threshold"]
                    state["threshold"] = m if t < 0 else 0.999 * t + 0.001 * m
            with torch.no_grad():
                track_fired(fired, rows)
            if cfg.arch == "matryoshka":
                # SAELens's MatryoshkaBatchTopKTrainingSAE: each nested
                # prefix decodes on its own (_iterable_decode), every
                # level's MSE summed; kibitzer's default widths.
                widths = sorted({cfg.d_sae // q for q in (64, 16, 4) if cfg.d_sae // q >= 4})
                decoded, prev, loss = p["b_dec"], 0, 0.0
                for width in widths:
                    decoded = f[:, prev:width] @ p["w_dec"][prev:width] + decoded
                    loss = loss + recon_loss(x, decoded)
                    prev = width
                x_hat = f[:, prev:] @ p["w_dec"][prev:] + decoded
            else:
                x_hat = torch.addmm(p["b_dec"], f, p["w_dec"])
                loss = 0.0
            e = x - x_hat
            loss = loss + e.pow(2).sum(dim=-1).mean()
            aux = auxk_loss(e.detach(), post_relu)
            if aux is not None:
                loss = loss + cfg.auxk_alpha * aux
            return loss
        raise AssertionError(cfg.arch)

    def step(x):
        loss = loss_of(x)
        loss.backward()
        update(cfg, p, optimizer, row_dim=1, clip=lambda: torch.nn.utils.clip_grad_norm_(plist, cfg.clip))
        return loss

    def init_b_dec(x):
        # Geometric median of the first batch (Weiszfeld), as every
        # dictionary_learning trainer but JumpReLU does at step 0.
        if cfg.arch == "jumprelu":
            return
        with torch.no_grad():
            guess = x.mean(dim=0)
            for _ in range(100):
                prev = guess
                w = 1 / (x - guess).norm(dim=1)
                guess = (w[:, None] * x).sum(dim=0) / w.sum()
                if (guess - prev).norm() < 1e-5:
                    break
            p["b_dec"].copy_(guess)

    # The parameters, for compare_torch_sweep.py's grouped steps and check.
    step.params = params
    return step, init_b_dec


def torch_step_main(a: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(a.threads)
    torch.manual_seed(7)
    cfg = step_config(a.arch, a.k, a.d_in, a.d_sae, a.batch)
    step, init_b_dec = torch_trainer(cfg, a.adam)
    x = torch.rand(a.batch, a.d_in) * 2 - 1
    with torch.no_grad():
        init_b_dec(x)
    for _ in range(a.warmup):
        step(x)
    start = time.perf_counter()
    for _ in range(a.steps):
        loss = step(x)
    loss = float(loss.detach())
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "implementation": "pytorch",
                "torch": torch.__version__,
                "adam": a.adam,
                "arch": a.arch,
                "d_in": a.d_in,
                "d_sae": a.d_sae,
                "batch": a.batch,
                "k": a.k,
                "steps": a.steps,
                "seconds": seconds,
                "steps_per_s": a.steps / seconds,
                "threads": torch.get_num_threads(),
                "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
                "last_loss": loss,
            }
        )
    )


# ---------------------------------------------------------------------------
# Comparison driver
# ---------------------------------------------------------------------------


def run_json(cmd: list[str], env: dict[str, str]) -> dict:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(
            f"command failed ({proc.returncode}): {shlex.join(cmd)}\n{proc.stderr.strip()}"
        )
    lines = [line for line in proc.stdout.splitlines() if line.strip().startswith("{")]
    if not lines:
        raise SystemExit(f"no JSON object in the output of {shlex.join(cmd)}:\n{proc.stdout}")
    return json.loads(lines[-1])


def write_atomic(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".compare_torch.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def compare_main(a: argparse.Namespace) -> None:
    kibitzer = shlex.split(a.kibitzer)
    thread_vars = {
        "RAYON_NUM_THREADS": str(a.threads),
        "OMP_NUM_THREADS": str(a.threads),
        "MKL_NUM_THREADS": str(a.threads),
    }
    base_env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    kib_env = {**base_env, **thread_vars}
    # glibc would mmap and fault in every large temporary afresh; keeping them
    # on the heap is PyTorch's best case on this allocator (issue 3).
    torch_env = {**base_env, **thread_vars, "GLIBC_TUNABLES": a.glibc_tunables}
    shape = ["--d-in", str(a.d_in), "--d-sae", str(a.d_sae), "--batch", str(a.batch)]
    selected = [r for r in ARCHS if a.archs is None or r[0].split()[0] in a.archs or r[0] in a.archs]
    rows = []
    for label, arch, k in selected:
        k_args = ["--k", str(k)] if k is not None else []
        kib_cmd = kibitzer + ["--arch", arch, *shape, *k_args, "--steps", str(a.steps), "--json"]
        torch_cmd = [
            sys.executable, os.path.abspath(__file__), "torch-step", "--arch", arch, *shape, *k_args,
            "--steps", str(a.steps), "--warmup", str(a.warmup), "--threads", str(a.threads),
            "--adam", a.adam,
        ]
        best_kib, best_torch, round_ratios = None, None, []
        for _ in range(a.rounds):
            kib = run_json(kib_cmd, kib_env)
            tor = run_json(torch_cmd, torch_env)
            if best_kib is None or kib["steps_per_s"] > best_kib["steps_per_s"]:
                best_kib = kib
            if best_torch is None or tor["steps_per_s"] > best_torch["steps_per_s"]:
                best_torch = tor
            round_ratios.append(kib["steps_per_s"] / tor["steps_per_s"])
            print(
                f"  {label}: kibitzer {kib['steps_per_s']:.3f} steps/s, "
                f"pytorch {tor['steps_per_s']:.3f} steps/s, ratio {round_ratios[-1]:.2f}",
                file=sys.stderr,
            )
        # The ratio of runs taken back to back is the one other load on the
        # machine disturbs least: the median over rounds is reported.
        ratio = statistics.median(round_ratios)
        rows.append(
            {
                "arch": label,
                "kibitzer_steps_per_s": best_kib["steps_per_s"],
                "pytorch_steps_per_s": best_torch["steps_per_s"],
                "ratio": ratio,
                "round_ratios": round_ratios,
                "target": TARGETS.get(arch) if (k is None or k <= 64) else None,
                "kibitzer": best_kib,
                "pytorch": best_torch,
            }
        )

    lines = [
        f"d_in {a.d_in}, d_sae {a.d_sae}, batch {a.batch}; {a.threads} threads; "
        f"{a.steps} timed steps after warm-up; {a.rounds} round(s), each running kibitzer then PyTorch.",
        "steps/s: best round of each; ratio: median over rounds of the ratio within a round.",
        "",
        "| architecture | kibitzer steps/s | PyTorch steps/s | kibitzer / PyTorch | target |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        target = f">= {r['target']:.1f}x" if r["target"] else ""
        lines.append(
            f"| {r['arch']} | {r['kibitzer_steps_per_s']:.3f} | {r['pytorch_steps_per_s']:.3f} "
            f"| {r['ratio']:.2f}x | {target} |"
        )
    table = "\n".join(lines)
    print(table)
    import torch

    report = {
        "d_in": a.d_in,
        "d_sae": a.d_sae,
        "batch": a.batch,
        "threads": a.threads,
        "steps": a.steps,
        "warmup": a.warmup,
        "rounds": a.rounds,
        "kibitzer_command": a.kibitzer,
        "pytorch": {"version": torch.__version__, "adam": a.adam, "glibc_tunables": a.glibc_tunables},
        "machine": {"cpu": cpu_name(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "results": rows,
        "markdown": table,
    }
    write_atomic(a.json_out, json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {a.json_out}", file=sys.stderr)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def shape_args(p):
        p.add_argument("--d-in", type=int, default=256)
        p.add_argument("--d-sae", type=int, default=4096)
        p.add_argument("--batch", type=int, default=4096)
        p.add_argument("--steps", type=int, default=10, help="timed steps")
        p.add_argument("--warmup", type=int, default=2, help="untimed steps before timing (PyTorch side)")
        p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
        p.add_argument(
            "--adam",
            choices=["default", "foreach", "fused"],
            default="fused",
            help="PyTorch Adam implementation (default: fused, the fastest on CPU)",
        )

    t = sub.add_parser("torch-step", help="time the PyTorch step alone")
    t.add_argument("--arch", required=True)
    t.add_argument("--k", type=int, default=32)
    shape_args(t)

    c = sub.add_parser("compare", help="time kibitzer and PyTorch, print the table")
    c.add_argument("--kibitzer", required=True, help="kibitzer bench command, e.g. 'target/release/kibitzer bench sae'")
    c.add_argument("--archs", nargs="*", help="subset: standard gated topk batchtopk jumprelu matryoshka")
    c.add_argument("--rounds", type=int, default=3)
    c.add_argument("--json-out", default="target/compare_torch.json")
    c.add_argument("--glibc-tunables", default="glibc.malloc.mmap_max=0")
    shape_args(c)

    a = parser.parse_args()
    check_positive(parser, a, ("d_in", "d_sae", "batch", "steps", "threads"))
    if a.command == "torch-step":
        torch_step_main(a)
    else:
        check_positive(parser, a, ("rounds",))
        compare_main(a)


def check_positive(parser: argparse.ArgumentParser, a: argparse.Namespace, names) -> None:
    """Stops with argparse's usage error when one of the options `names` is below 1."""
    for name in names:
        if getattr(a, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")


if __name__ == "__main__":
    main()
