#!/usr/bin/env bash
# Reference 002 reproduced on 8x8 Othello: a GPT trained on synthetic games
# (OthelloGPT's data), SAEs of every family on its residual stream judged by
# coverage and board reconstruction, beside the reference's baselines: the
# MLP neurons of the same block, the same SAE recipe on a randomly
# initialised GPT, and supervised linear probes.
#
#   bash examples/reference_002_othello_gpt_bsp.sh --quick   # CPU, ~1 hour on 2 cores
#   bash examples/reference_002_othello_gpt_bsp.sh --device cuda   # OthelloGPT's shape
#
# --quick trains a small GPT (4 blocks, d_model 128) for 3,000 steps of 64
# games (34 minutes on 2 cores; 0.92 of its top-1 moves legal) and reads
# block 2 (the third of four, as the reference's layer 5 of 8 sits three
# quarters deep); 12 SAEs train 1,000 steps of 2048 rows on each GPT.
# Without it: OthelloGPT's shape (8 blocks, d_model 512, 8 heads), 20,000
# steps on 1.3M games, block 5, SAEs 5,000 steps - a GPU job (build with
# `--features cuda` and pass `--device cuda`).
#
# Every step is a `kibitzer` command, so each can be rerun alone; steps whose
# output exists are skipped, and `gpt train` and `sweep` resume from their
# checkpoints. Everything lands in runs/reference-002/ (or --out DIR); the
# comparison table is printed at the end and written to summary.md.
set -euo pipefail

quick=0
device=cpu
out=runs/reference-002
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=1 ;;
        --device) device="$2"; shift ;;
        --out) out="$2"; shift ;;
        *) echo "unknown argument: $1 (expected --quick, --device D, --out DIR)" >&2; exit 2 ;;
    esac
    shift
done

if [[ $quick == 1 ]]; then
    train_games=200000 layers=4 d_model=128 heads=4 steps=3000 lr=2e-3 layer=2
    analysis_games=8000 label_games=2000 sae_steps=1000
else
    train_games=1300000 layers=8 d_model=512 heads=8 steps=20000 lr=5e-4 layer=5
    analysis_games=20000 label_games=4000 sae_steps=5000
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
features=()
[[ $device == cuda* ]] && features=(--features cuda)
cargo build --release -p kibitzer "${features[@]}" --manifest-path "$root/Cargo.toml"
kibitzer="$root/target/release/kibitzer"
mkdir -p "$out"
cd "$out"
start=$SECONDS
step() { echo "== $* ($((SECONDS - start)) s)" >&2; }

step "1. games: uniformly random legal moves"
[[ -f train.bin ]] || "$kibitzer" games generate othello --size 8 --games "$train_games" --seed 1 --out train.bin
[[ -f analysis.bin ]] || "$kibitzer" games generate othello --size 8 --games "$analysis_games" --seed 2 --out analysis.bin

step "2. the GPT"
if [[ ! -f gpt/training.json ]]; then
    resume=()
    [[ -f gpt/checkpoint.safetensors ]] && resume=(--resume)
    "$kibitzer" gpt train --games train.bin --out gpt "${resume[@]}" \
        --layers "$layers" --d-model "$d_model" --heads "$heads" \
        --steps "$steps" --lr "$lr" --eval-every 500 --device "$device"
fi
if [[ ! -f gpt-eval.json ]]; then
    "$kibitzer" gpt eval --model gpt --games analysis.bin --max-games 2000 --device "$device" --json > gpt-eval.json.tmp
    mv gpt-eval.json.tmp gpt-eval.json
fi

step "3. activations: the residual stream and the MLP neurons of block $layer, and the random-init GPT's residual stream"
site="blocks.$layer.hook_resid_post"
[[ -d acts ]] || "$kibitzer" gpt harvest --model gpt --games analysis.bin --site "$site" --device "$device" --out acts
[[ -d mlp ]] || "$kibitzer" gpt harvest --model gpt --games analysis.bin --site "blocks.$layer.mlp.hook_post" \
    --max-games "$label_games" --device "$device" --out mlp
[[ -d acts-random ]] || "$kibitzer" gpt harvest --model gpt --games analysis.bin --site "$site" --random-init 1 \
    --device "$device" --out acts-random
[[ -f labels.jsonl ]] || "$kibitzer" bsp labels --game othello --games analysis.bin --max-games "$label_games" --out labels.jsonl

step "4. SAEs (standard, p-annealing, gated, TopK, JumpReLU; 256 and 512 features) on both GPTs"
for run in sweep:acts sweep-random:acts-random; do
    dir="${run%%:*}" acts="${run##*:}"
    resume=()
    [[ -f "$dir/sweep-settings.json" ]] && resume=(--resume)
    [[ -f "$dir/scaling.json" ]] || "$kibitzer" sweep --activations "$acts" --labels labels.jsonl --game othello --size 8 \
        --preset small --steps "$sae_steps" --device "$device" --out "$dir" "${resume[@]}"
done

step "5. baselines: MLP neurons; residual-stream neurons and linear probes"
[[ -f eval-mlp/report.json ]] || "$kibitzer" eval bsp --activations mlp --labels labels.jsonl --game othello --size 8 \
    --neurons --device "$device" --out eval-mlp > /dev/null
[[ -f eval-resid/report.json ]] || "$kibitzer" eval bsp --activations acts --labels labels.jsonl --game othello --size 8 \
    --neurons --probes --probe-epochs 20 --device "$device" --out eval-resid > /dev/null

step "6. summary"
python3 - <<'EOF' | tee summary.md
import json

# Reference 002's numbers are for the board itself (every square x mine /
# yours / empty): the "board" category of the reports.
def sweep_best(path):
    runs = json.load(open(path))["runs"]
    cov = max(runs, key=lambda r: r["coverage"]["board"])
    rec = max(runs, key=lambda r: r["reconstruction"]["board"])
    return (cov["coverage"]["board"], cov["name"]), (rec["reconstruction"]["board"], rec["name"])

def aggregate(items, field):
    return next(a[field] for a in items if a["name"] == "board")

def report_numbers(report):
    return aggregate(report["coverage"]["aggregates"], "coverage"), aggregate(report["reconstruction"]["aggregates"], "f1")

gpt = json.load(open("gpt-eval.json"))
(cov, cov_run), (rec, rec_run) = sweep_best("sweep/scaling.json")
(rcov, _), (rrec, _) = sweep_best("sweep-random/scaling.json")
mlp_cov, mlp_rec = report_numbers(json.load(open("eval-mlp/report.json"))["neurons"])
resid = json.load(open("eval-resid/report.json"))
res_cov, res_rec = report_numbers(resid["neurons"])
probe_f1 = aggregate(resid["probes"]["aggregates"], "f1")
print(f"GPT: top-1 prediction legal at {gpt['legal_move_accuracy']:.3f} of {gpt['positions']} held-out positions\n")
print("| features (board squares) | coverage | board reconstruction F1 | reference 002, OthelloGPT layer 5 |")
print("|---|---:|---:|---|")
print(f"| best SAE, trained GPT | {cov:.3f} ({cov_run}) | {rec:.3f} ({rec_run}) | 0.52 / 0.95 |")
print(f"| MLP neurons, same block | {mlp_cov:.3f} | {mlp_rec:.3f} | 0.55 / 0.82 |")
print(f"| residual-stream neurons | {res_cov:.3f} | {res_rec:.3f} | - |")
print(f"| best SAE, random-init GPT | {rcov:.3f} | {rrec:.3f} | far below the trained GPT |")
print(f"| linear probes (supervised) | - | {probe_f1:.3f} | above every SAE |")
EOF
echo "done in $((SECONDS - start)) s; everything in $out" >&2
