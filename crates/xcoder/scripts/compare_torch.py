#!/usr/bin/env python3
"""Steps/s of one TopK transcoder training step in kibitzer and in PyTorch, same run, same threads.

    python3 crates/xcoder/scripts/compare_torch.py [--batch 1024] [--threads N] [--steps 5] [--rounds 2]
        [--d-in 1024 --d-out 1024 --d-sae 16384 --k 256] [--kibitzer PATH] [--json-out FILE]

Builds nothing: run `cargo build --release -p kibitzer-xcoder --example transcoder_step` first
(or pass --kibitzer). Each side runs in a fresh process, alternating, `--rounds` times; each
side's best round is kept. Two PyTorch steps are timed:

* `dictionary_learning`: the TopK step of dictionary_learning's TopK trainer, with the transcoder's
  target: relu(x W_enc + b_enc), top-k scattered into a dense tensor, y_hat = f W_dec + b_dec,
  loss mean_b ||y - y_hat||^2, autograd backward, the radial part of the decoder gradient removed,
  Adam (lr 2e-4 / sqrt(d_sae / 16384)), decoder rows renormalised, fired-feature bookkeeping.
  This is the same step kibitzer's `XTrainer::step` takes.
* `maia2`: reference 000's own `transcoder_train.py` step: nn.Linear encoder and decoder,
  TopKActivation (mask of relu(pre) >= the k-th value), F.mse_loss, the input made to require a
  gradient (as that script does), Adam lr 1e-4, decoder rows renormalised.

PyTorch runs with torch.set_num_threads equal to kibitzer's rayon thread count, and with
GLIBC_TUNABLES=glibc.malloc.mmap_max=0 (large temporaries stay on the heap rather than being
mapped and faulted in every step: its best case with glibc). Two warm-up steps are excluded on
both sides. Inputs are uniform in [-1, 1) on both sides.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time


def torch_step(a: argparse.Namespace) -> dict:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.rand(a.batch, a.d_in) * 2 - 1
    y = torch.rand(a.batch, a.d_out) * 2 - 1

    if a.style == "dictionary_learning":
        w_dec = torch.randn(a.d_sae, a.d_out)
        w_dec /= w_dec.norm(dim=1, keepdim=True)
        p = {
            "w_enc": nn.Parameter(torch.randn(a.d_in, a.d_sae) / math.sqrt(a.d_in)),
            "b_enc": nn.Parameter(torch.zeros(a.d_sae)),
            "w_dec": nn.Parameter(w_dec),
            "b_dec": nn.Parameter(torch.zeros(a.d_out)),
        }
        opt = torch.optim.Adam(list(p.values()), lr=2e-4 / math.sqrt(a.d_sae / 16384), betas=(0.9, 0.999), eps=1e-8)
        since_fired = torch.zeros(a.d_sae, dtype=torch.long)

        def step():
            post_relu = F.relu(torch.addmm(p["b_enc"], x, p["w_enc"]))
            top = post_relu.topk(a.k, sorted=False, dim=-1)
            f = torch.zeros_like(post_relu).scatter_(-1, top.indices, top.values)
            with torch.no_grad():
                fired = torch.zeros(a.d_sae, dtype=torch.bool)
                fired[top.indices.flatten()] = True
                since_fired.add_(a.batch)
                since_fired[fired] = 0
            y_hat = torch.addmm(p["b_dec"], f, p["w_dec"])
            loss = (y - y_hat).pow(2).sum(dim=-1).mean()
            loss.backward()
            with torch.no_grad():
                w = p["w_dec"]
                unit = w / (w.norm(dim=1, keepdim=True) + 1e-6)
                g = w.grad
                g -= (g * unit).sum(dim=1, keepdim=True) * unit
            opt.step()
            opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                w = p["w_dec"]
                w /= w.norm(dim=1, keepdim=True) + torch.finfo(w.dtype).eps
            return float(loss.detach())

    else:
        encoder = nn.Linear(a.d_in, a.d_sae)
        decoder = nn.Linear(a.d_sae, a.d_out)
        opt = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=1e-4)

        def step():
            xi = x.detach().clone().requires_grad_(True)
            pre = encoder(xi)
            relu = F.relu(pre)
            kth = torch.topk(relu, a.k, dim=1).values[:, -1].unsqueeze(1)
            hidden = relu * (relu >= kth).float()
            out = decoder(hidden)
            loss = F.mse_loss(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                w = decoder.weight.data
                w /= torch.clamp(torch.norm(w, dim=1, keepdim=True), min=1e-8)
            return float(loss.detach())

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    seconds = time.perf_counter() - start
    return {
        "implementation": f"pytorch ({a.style})",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "d_in": a.d_in,
        "d_out": a.d_out,
        "d_sae": a.d_sae,
        "k": a.k,
        "batch": a.batch,
        "steps": a.steps,
        "seconds": seconds,
        "steps_per_second": a.steps / seconds,
    }


def run_json(cmd: list[str], env: dict) -> dict:
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(a: argparse.Namespace) -> None:
    shape = ["--d-in", str(a.d_in), "--d-out", str(a.d_out), "--d-sae", str(a.d_sae), "--k", str(a.k),
             "--batch", str(a.batch), "--steps", str(a.steps)]
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    torch_env = dict(env, GLIBC_TUNABLES="glibc.malloc.mmap_max=0")
    best: dict[str, dict] = {}
    for _ in range(a.rounds):
        runs = [("kibitzer", [a.kibitzer, *shape], env)]
        for style in ("dictionary_learning", "maia2"):
            runs.append((style, [sys.executable, os.path.abspath(__file__), "torch-step", "--style", style,
                                 "--threads", str(a.threads), *shape], torch_env))
        for name, cmd, e in runs:
            r = run_json(cmd, e)
            if name not in best or r["steps_per_second"] > best[name]["steps_per_second"]:
                best[name] = r
    ours = best["kibitzer"]["steps_per_second"]
    print(f"TopK transcoder step, d_in {a.d_in}, d_out {a.d_out}, hidden {a.d_sae}, k {a.k}, batch {a.batch}, "
          f"{a.threads} threads (best of {a.rounds} rounds of {a.steps} steps)\n")
    print("| implementation | steps/s | kibitzer / this |\n|---|---|---|")
    for name, r in best.items():
        print(f"| {r['implementation']} | {r['steps_per_second']:.3f} | {ours / r['steps_per_second']:.2f} |")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(best, f, indent=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    for p in (parser, sub.add_parser("torch-step")):
        p.add_argument("--d-in", type=int, default=1024)
        p.add_argument("--d-out", type=int, default=1024)
        p.add_argument("--d-sae", type=int, default=16384)
        p.add_argument("--k", type=int, default=256)
        p.add_argument("--batch", type=int, default=1024)
        p.add_argument("--steps", type=int, default=5)
        p.add_argument("--threads", type=int, default=os.cpu_count())
    sub.choices["torch-step"].add_argument("--style", choices=["dictionary_learning", "maia2"], default="dictionary_learning")
    parser.add_argument("--rounds", type=int, default=2)
    here = os.path.dirname(os.path.abspath(__file__))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(here, "../../../target"))
    parser.add_argument("--kibitzer", default=os.path.join(target, "release/examples/transcoder_step"))
    parser.add_argument("--json-out")
    a = parser.parse_args()
    if a.command == "torch-step":
        print(json.dumps(torch_step(a)))
    else:
        compare(a)


if __name__ == "__main__":
    main()
