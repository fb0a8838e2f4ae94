#!/usr/bin/env python3
"""GPT forward and activation-harvesting tokens/s: kibitzer beside PyTorch
(TransformerLens's HookedTransformer), same configuration, same machine,
one run.

    python3 crates/models/scripts/compare_torch.py [--seconds 5] [--batch 32] [--rounds 3]

In --rounds alternating rounds, runs `cargo run --release -p
kibitzer-models --example gpt_throughput` and times TransformerLens on the
same configuration
(OthelloGPT: 8 layers, d_model 512, 8 heads, d_mlp 2048, 61 tokens, n_ctx
59) with torch's default thread count: the forward pass (`model(tokens)`
under `torch.inference_mode()`) and harvesting `blocks.5.hook_resid_post`
(`run_with_cache(names_filter=site, stop_at_layer=6)`, copied to a NumPy
array). Prints a Markdown table of the medians with their ratio (kibitzer /
PyTorch) and each round's ratio, and writes them as JSON to --out.

Needs `pip install "transformer_lens<4"` (version 4 removed HookedTransformer).
"""

import argparse
import json
import os
import subprocess
import sys
import time

CONFIG = dict(n_layers=8, d_model=512, n_heads=8, d_mlp=2048, d_vocab=61, n_ctx=59)
HARVEST_LAYER = 5


def torch_throughput(batch, seconds):
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        d_head=CONFIG["d_model"] // CONFIG["n_heads"], act_fn="gelu", normalization_type="LN", seed=0, device="cpu", **CONFIG
    )
    model = HookedTransformer(cfg).eval()
    n_ctx, vocab = CONFIG["n_ctx"], CONFIG["d_vocab"]
    tokens = torch.tensor([[((b * n_ctx + i) * 7919) % (vocab - 1) + 1 for i in range(n_ctx)] for b in range(batch)])
    site = f"blocks.{HARVEST_LAYER}.hook_resid_post"

    def measure(f):
        f()
        start, runs = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            f()
            runs += 1
        return runs * batch * n_ctx / (time.perf_counter() - start)

    with torch.inference_mode():
        forward = measure(lambda: model(tokens))

        def harvest():
            _, cache = model.run_with_cache(tokens, names_filter=site, stop_at_layer=HARVEST_LAYER + 1)
            rows = cache[site].reshape(-1, CONFIG["d_model"]).numpy()
            assert rows.shape[0] == batch * n_ctx

        harvested = measure(harvest)
    return {"forward_tokens_per_s": forward, "harvest_tokens_per_s": harvested, "threads": torch.get_num_threads()}


def median(values):
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="alternating kibitzer/PyTorch rounds; medians are compared")
    parser.add_argument("--out", default="gpt_throughput.json")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    c = CONFIG
    # `cargo run` finds the binary wherever CARGO_TARGET_DIR puts it; it builds
    # in the first round only, and the example times itself, so the build is
    # never measured.
    cmd = [
        "cargo", "run", "--quiet", "--release", "-p", "kibitzer-models", "--example", "gpt_throughput", "--",
        *map(str, [c["n_layers"], c["d_model"], c["n_heads"], c["d_mlp"], c["d_vocab"], c["n_ctx"], args.batch, args.seconds, HARVEST_LAYER]),
    ]
    # Alternate the two sides so that a slow spell of a shared machine falls
    # on both, and compare medians.
    ours_runs, theirs_runs = [], []
    for _ in range(args.rounds):
        ours_runs.append(json.loads(subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]))
        theirs_runs.append(torch_throughput(args.batch, args.seconds))
    rows = []
    for key, label in [("forward_tokens_per_s", "forward"), ("harvest_tokens_per_s", f"harvest blocks.{HARVEST_LAYER}.hook_resid_post")]:
        ours, theirs = median([r[key] for r in ours_runs]), median([r[key] for r in theirs_runs])
        per_round = [o[key] / t[key] for o, t in zip(ours_runs, theirs_runs)]
        rows.append({"what": label, "kibitzer": ours, "pytorch": theirs, "ratio": ours / theirs, "round_ratios": per_round})
    print(
        f"OthelloGPT config {CONFIG}, batch {args.batch}, kibitzer threads {ours_runs[0]['threads']}, "
        f"torch threads {theirs_runs[0]['threads']}, medians of {args.rounds} alternating rounds of {args.seconds} s\n"
    )
    print("| tokens/s | kibitzer | PyTorch (TransformerLens) | ratio | ratio per round |")
    print("|---|---:|---:|---:|---|")
    for r in rows:
        rounds = ", ".join(f"{x:.2f}" for x in r["round_ratios"])
        print(f"| {r['what']} | {r['kibitzer']:.0f} | {r['pytorch']:.0f} | {r['ratio']:.2f} | {rounds} |")
    with open(args.out, "w") as f:
        json.dump({"config": CONFIG, "batch": args.batch, "rows": rows, "kibitzer": ours_runs, "pytorch": theirs_runs}, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
