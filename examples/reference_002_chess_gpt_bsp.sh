#!/usr/bin/env bash
# Reference 002 reproduced on chess: a ChessGPT trained on character-level
# transcripts (";1.e4 e5 2.Nf3 ...", Karvonen's format), SAEs of several
# families on one block's residual stream judged by coverage and board
# reconstruction at every "." (White to move), beside the reference's
# baselines: the MLP neurons of the same block, the same SAEs on a randomly
# initialised ChessGPT, and supervised linear probes.
#
#   bash examples/reference_002_chess_gpt_bsp.sh --quick   # CPU, ~1 hour on 2 cores
#   bash examples/reference_002_chess_gpt_bsp.sh --device cuda   # Karvonen's shape
#
# Games come from the built-in players (a random player, one- and two-ply
# alpha-beta), or from Stockfish levels with --stockfish (Karvonen's
# ChessGPT read Stockfish games and Lichess games; any .pgn works: put it at
# OUT/train.pgn and OUT/analysis.pgn before running).
# --quick trains a small GPT (4 blocks, d_model 128) on the first 128
# characters of each game and reads block 2 (the third of four, as the
# reference's layer 6 of 8 sits three quarters deep). Without it:
# Karvonen's shape (8 blocks, d_model 512, 8 heads) on the first 256
# characters, the characters reference 002 reads the board in - a GPU job.
#
# Every step is a `kibitzer` command, so each can be rerun alone; steps whose
# output exists are skipped, and `gpt train` resumes from its checkpoint.
# Everything lands in runs/reference-002-chess/ (or --out DIR); the
# comparison table is printed at the end and written to summary.md.
set -euo pipefail

quick=0
device=cpu
out=runs/reference-002-chess
stockfish=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=1 ;;
        --device) device="$2"; shift ;;
        --out) out="$2"; shift ;;
        --stockfish) stockfish=1 ;;
        *) echo "unknown argument: $1 (expected --quick, --device D, --out DIR, --stockfish)" >&2; exit 2 ;;
    esac
    shift
done

if [[ $quick == 1 ]]; then
    # 60 plies fill the 128 characters the model reads.
    train_games=40000 max_plies=60 layers=4 d_model=128 heads=4 n_ctx=128 steps=2000 lr=2e-3 layer=2
    analysis_games=3000 label_games=3000 sae_steps=1000 d_sae=1024
else
    train_games=500000 max_plies=200 layers=8 d_model=512 heads=8 n_ctx=256 steps=20000 lr=5e-4 layer=6
    analysis_games=4000 label_games=4000 sae_steps=5000 d_sae=4096
fi
if [[ $stockfish == 1 ]]; then
    players=(--players "stockfish:skill=0,nodes=200@800" --players "stockfish:skill=5,nodes=1000@1400"
        --players "stockfish:skill=10,nodes=2000@1900")
else
    players=(--players random@400 --players alphabeta:1@900 --players alphabeta:2@1200)
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

step "1. games: ${players[*]}"
[[ -f train.pgn ]] || "$kibitzer" games generate chess "${players[@]}" --games "$train_games" --seed 1 \
    --max-plies "$max_plies" --out train.pgn
[[ -f analysis.pgn ]] || "$kibitzer" games generate chess "${players[@]}" --games "$analysis_games" --seed 2 \
    --max-plies "$max_plies" --out analysis.pgn

step "2. the ChessGPT"
if [[ ! -f gpt/training.json ]]; then
    resume=()
    [[ -f gpt/checkpoint.safetensors ]] && resume=(--resume)
    "$kibitzer" gpt train --games train.pgn --out gpt "${resume[@]}" \
        --layers "$layers" --d-model "$d_model" --heads "$heads" --n-ctx "$n_ctx" \
        --steps "$steps" --lr "$lr" --batch-size 32 --eval-every 500 --device "$device"
fi
if [[ ! -f gpt-eval.json ]]; then
    "$kibitzer" gpt eval --model gpt --games analysis.pgn --max-games 200 --device "$device" --json > gpt-eval.json.tmp
    mv gpt-eval.json.tmp gpt-eval.json
fi

step "3. activations at every '.': the residual stream and MLP neurons of block $layer, and the random-init GPT's residual stream"
site="blocks.$layer.hook_resid_post"
harvest() { "$kibitzer" gpt harvest --model gpt --games analysis.pgn --max-games "$label_games" --truncate \
    --device "$device" --quiet "$@"; }
[[ -d acts ]] || harvest --site "$site" --out acts
[[ -d mlp ]] || harvest --site "blocks.$layer.mlp.hook_post" --out mlp
[[ -d acts-random ]] || harvest --site "$site" --random-init 1 --out acts-random
[[ -f labels.jsonl ]] || "$kibitzer" bsp labels --game chess --pgn analysis.pgn --max-games "$label_games" \
    --max-chars "$n_ctx" --out labels.jsonl

step "4. SAEs ($d_sae features: standard, p-annealing, gated, TopK) on both GPTs, judged on the board"
# Reference 002's families at the sparsities of `kibitzer sweep --preset small`;
# each line trains its grid in one pass over the activations.
saes=(
    "standard:--arch standard --l1 1,3"
    "panneal:--arch panneal --l1 3"
    "gated:--arch gated --l1 3"
    "topk:--arch topk --k 16,32"
)
for acts in acts acts-random; do
    for entry in "${saes[@]}"; do
        name="${entry%%:*}" flags="${entry#*:}"
        dir="saes-$acts/$name"
        if [[ ! -f "$dir/trained" ]]; then
            resume=()
            [[ -f "$dir/checkpoint.json" ]] && resume=(--resume)
            # shellcheck disable=SC2086 # the flags are words
            "$kibitzer" sae train $flags --d-sae "$d_sae" --steps "$sae_steps" --batch-size 2048 --lr 1e-3 \
                --activations "$acts" --device "$device" --seed 1 --quiet --out "$dir" "${resume[@]}"
            touch "$dir/trained"
        fi
        for sae in "$dir"/*/; do
            [[ -f "$sae/cfg.json" && ! -f "$sae/bsp/report.json" ]] || continue
            "$kibitzer" eval bsp --sae "$sae" --activations "$acts" --labels labels.jsonl --game chess \
                --device "$device" --out "$sae/bsp" > /dev/null
        done
    done
done

step "5. baselines: MLP neurons; residual-stream neurons and linear probes"
[[ -f eval-mlp/report.json ]] || "$kibitzer" eval bsp --activations mlp --labels labels.jsonl --game chess \
    --neurons --device "$device" --out eval-mlp > /dev/null
[[ -f eval-resid/report.json ]] || "$kibitzer" eval bsp --activations acts --labels labels.jsonl --game chess \
    --neurons --probes --probe-epochs 20 --device "$device" --out eval-resid > /dev/null

step "6. summary"
python3 - <<'EOF' | tee summary.md
import glob, json

GROUP = "low_level"  # reference 002's chess numbers: the pieces on the board, blank squares left out

def aggregate(items, field, group=GROUP):
    return next(a[field] for a in items if a["name"] == group)

def numbers(report, group=GROUP):
    return (aggregate(report["coverage"]["aggregates"], "coverage", group),
            aggregate(report["reconstruction"]["aggregates"], "f1", group))

def saes(acts):
    out = {}
    for path in sorted(glob.glob(f"saes-{acts}/*/*/bsp/report.json")):
        name = path.split("/")[2]
        report = json.load(open(path))["dictionary"]
        out[name] = (numbers(report), numbers(report, "high_level"))
    return out

gpt = json.load(open("gpt-eval.json"))
trained, random = saes("acts"), saes("acts-random")
mlp = numbers(json.load(open("eval-mlp/report.json"))["neurons"])
resid = json.load(open("eval-resid/report.json"))
res = numbers(resid["neurons"])
probe_f1 = aggregate(resid["probes"]["aggregates"], "f1")
print(f"ChessGPT: legal moves written at {gpt['legal_move_accuracy']:.3f} of {gpt['positions']} held-out move starts; "
      f"eval loss {gpt['eval_loss']:.3f} (uniform {gpt['uniform_loss']:.3f})\n")
print("| features (pieces on squares) | coverage | board reconstruction F1 | reference 002, ChessGPT layer 6 |")
print("|---|---:|---:|---|")
cov = max(trained, key=lambda n: trained[n][0][0])
rec = max(trained, key=lambda n: trained[n][0][1])
print(f"| best SAE, trained GPT | {trained[cov][0][0]:.3f} ({cov}) | {trained[rec][0][1]:.3f} ({rec}) | 0.50 / 0.84 (p-annealing) |")
print(f"| MLP neurons, same block | {mlp[0]:.3f} | {mlp[1]:.3f} | 0.26 / 0.56 |")
print(f"| residual-stream neurons | {res[0]:.3f} | {res[1]:.3f} | - |")
rcov = max(v[0][0] for v in random.values())
rrec = max(v[0][1] for v in random.values())
print(f"| best SAE, random-init GPT | {rcov:.3f} | {rrec:.3f} | far below the trained GPT |")
print(f"| linear probes (supervised) | - | {probe_f1:.3f} | above every SAE |")
print("\n| SAE | trained GPT: coverage / reconstruction (pieces) | high-level BSPs | random-init GPT (pieces) |")
print("|---|---|---|---|")
for name, (low, high) in trained.items():
    rlow = random[name][0] if name in random else (float("nan"), float("nan"))
    print(f"| {name} | {low[0]:.3f} / {low[1]:.3f} | {high[0]:.3f} / {high[1]:.3f} | {rlow[0]:.3f} / {rlow[1]:.3f} |")
EOF
echo "done in $((SECONDS - start)) s; everything in $out" >&2
