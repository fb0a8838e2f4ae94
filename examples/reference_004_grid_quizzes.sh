#!/usr/bin/env bash
# Reference 004 reproduced: a culture-style GPT trained on generated grid
# quizzes, its attention and MLP ablations, layer 0's patterns, an SAE on
# the MLP output of the block that carries "contact", the features at the
# transform cell, feature recovery and steering.
#
#   bash examples/reference_004_grid_quizzes.sh --quick           # CPU, 2 cores
#   bash examples/reference_004_grid_quizzes.sh --device cuda     # the reference's shape
#
# --quick: 8x8 grids, two tasks (contact, replace_color), a 4-block GPT of
# width 128 trained on f(A) and f(B) (--loss-on answers), the SAE on 1M
# tokens of its MLP output.
# Without it: 10x10 grids and all eight tasks, the reference's 12 blocks of
# width 512 (about 37M parameters), an SAE of 16,384 features on 2M tokens
# - a GPU job (build with `--features cuda` and pass `--device cuda`).
#
# Every step is a `kibitzer` command, so each can be rerun alone; steps whose
# output exists are skipped, and `quiz train` resumes from its checkpoint.
# Everything lands in runs/reference-004/ (or --out DIR); the tables are
# printed at the end and written to summary.md.
set -euo pipefail

quick=0
device=cpu
out=runs/reference-004
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
    size=8 tasks=contact,replace_color loss_on=answers
    train_quizzes=60000 layers=4 d_model=128 heads=4 steps=4000 batch=32 lr=3e-3
    analysis_quizzes=2000 harvest_quizzes=4000 d_sae=1024 sae_steps=3000 feature_quizzes=500
else
    size=10 tasks=replace_color,translate,grow,half_fill,frame,detect,corners,contact loss_on=final
    train_quizzes=1000000 layers=12 d_model=512 heads=8 steps=30000 batch=64 lr=3e-4
    analysis_quizzes=4000 harvest_quizzes=5000 d_sae=16384 sae_steps=30000 feature_quizzes=4000
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
features=()
[[ $device == cuda* ]] && features=(--features cuda)
[[ $device == wgpu* ]] && features=(--features wgpu)
cargo build --release -p kibitzer "${features[@]}" --manifest-path "$root/Cargo.toml"
kibitzer="${CARGO_TARGET_DIR:-$root/target}/release/kibitzer"
mkdir -p "$out"
cd "$out"
start=$SECONDS
step() { echo "== $* ($((SECONDS - start)) s)" >&2; }

step "1. quizzes: $tasks on ${size}x${size} grids"
[[ -f train.jsonl ]] || "$kibitzer" quiz generate --tasks "$tasks" --size "$size" --count "$train_quizzes" --seed 1 --out train.jsonl
[[ -f analysis.jsonl ]] || "$kibitzer" quiz generate --tasks "$tasks" --size "$size" --count "$analysis_quizzes" --seed 2 --out analysis.jsonl
[[ -f harvest.jsonl ]] || "$kibitzer" quiz generate --tasks "$tasks" --size "$size" --count "$harvest_quizzes" --seed 3 --out harvest.jsonl
[[ -f quizzes.html ]] || "$kibitzer" quiz show --quizzes analysis.jsonl --max 12 --out quizzes.html

step "2. the GPT (sinusoidal positions, no final LayerNorm, BOS 0; loss on --loss-on $loss_on)"
if [[ ! -f gpt/training.json ]]; then
    resume=()
    [[ -f gpt/checkpoint.safetensors ]] && resume=(--resume)
    "$kibitzer" quiz train --quizzes train.jsonl --out gpt "${resume[@]}" \
        --layers "$layers" --d-model "$d_model" --heads "$heads" --batch-size "$batch" \
        --steps "$steps" --lr "$lr" --loss-on "$loss_on" --eval-every 250 --device "$device"
fi
if [[ ! -f accuracy.md ]]; then
    "$kibitzer" quiz eval --model gpt --quizzes analysis.jsonl --device "$device" > accuracy.md.tmp
    mv accuracy.md.tmp accuracy.md
fi
cat accuracy.md

step "3. experiments 1-3: attention ablation, layer 0, MLP ablation per task"
[[ -f ablations/ablations.json ]] || "$kibitzer" quiz ablate --model gpt --quizzes analysis.jsonl --device "$device" --out ablations
layer=$(python3 -c 'import json,sys; print(json.load(open("ablations/ablations.json"))["mlp_ablation"]["contact_block"])' 2>/dev/null \
    || sed -n 's/.*hurts contact most[^*]*\*\*\([0-9]*\)\*\*.*/\1/p' ablations/ablations.md)
[[ -n $layer && $layer != None ]] || { echo "no block carries contact (no contact quizzes?)" >&2; exit 1; }
echo "the MLP of block $layer carries contact (its ablation costs contact the most beyond the other tasks)" >&2

step "4. an SAE on blocks.$layer.hook_mlp_out (the reference's recipe: L1 5 warmed up over 5%, lr decayed over the last 20%)"
[[ -d mlp-acts ]] || "$kibitzer" quiz harvest --model gpt --quizzes harvest.jsonl --site "blocks.$layer.hook_mlp_out" \
    --device "$device" --out mlp-acts
cat > sae.toml <<EOF
lr = 2e-4
sparsity_warmup_steps = $((sae_steps / 20))
lr_decay_start = $((sae_steps * 4 / 5))
normalize_activations = true
EOF
if [[ ! -d sae/done ]]; then
    resume=()
    [[ -d sae ]] && resume=(--resume)
    "$kibitzer" sae train --arch standard --d-sae "$d_sae" --l1 5 --config sae.toml --steps "$sae_steps" \
        --batch-size 4096 --activations mlp-acts --out sae "${resume[@]}" --device "$device"
    mkdir -p sae/done
fi
sae_dir=$(find sae -mindepth 1 -maxdepth 1 -type d ! -name done | head -1)
[[ -f sae-eval/metrics.json ]] || "$kibitzer" sae eval --sae "$sae_dir" --activations mlp-acts --out sae-eval

step "5-6. the SAE spliced in, transform cells, feature multiplier, recovery, steering"
[[ -f features/features.json ]] || "$kibitzer" quiz features --model gpt --sae "$sae_dir" --layer "$layer" \
    --quizzes analysis.jsonl --max-quizzes "$feature_quizzes" --device "$device" --out features

step "summary"
{
    echo "# Reference 004 at $([[ $quick == 1 ]] && echo "CPU scale (--quick)" || echo "full scale")"
    echo
    echo "Tasks: $tasks; grids ${size}x${size}; GPT: $layers blocks, d_model $d_model, $heads heads, $steps steps of $batch quizzes at lr $lr, loss on: $loss_on (--loss-on)."
    echo
    echo "## Held-out accuracy (greedy, exact grid)"
    echo
    cat accuracy.md
    echo
    cat ablations/ablations.md
    echo
    echo "## The SAE (reference: variance explained 85%, L0 43, L2 ratio 0.48, 20% dead)"
    echo
    python3 - <<'EOF' 2>/dev/null || cat sae-eval/metrics.json
import json
m = json.load(open("sae-eval/metrics.json"))
m = m.get("metrics", m)
def get(*names):
    for n in names:
        if n in m: return m[n]
    return float("nan")
print("| variance explained | L0 | L2 ratio | dead |")
print("|---:|---:|---:|---:|")
print(f"| {get('explained_variance'):.3f} | {get('l0'):.1f} | {get('l2_ratio'):.3f} | {get('dead_fraction'):.3f} |")
EOF
    echo
    cat features/features.md
} > summary.md
cat summary.md
step "done: $out/summary.md"
