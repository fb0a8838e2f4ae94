#!/usr/bin/env bash
# Reference 000 reproduced: a Maia-2-style skill-conditioned chess policy,
# trained on rated games made here; its move-match per rating bucket and
# skill sensitivity; square-wise threat concepts read from its activations
# at every rating (SAE features and linear probes); raising the threat
# features at a low rating (with a matched random control); a TopK
# transcoder in place of one MLP; and the calibration fine-tune (maia2_ft).
#
#   bash examples/reference_000_skill_adaptation.sh --quick            # CPU, 2 cores
#   bash examples/reference_000_skill_adaptation.sh --device cuda      # larger, a GPU job
#   bash examples/reference_000_skill_adaptation.sh --pgn lichess.pgn  # your own rated games
#
# --quick: games between built-in players at assigned ratings (random@800,
# greedy@1150, alpha-beta at depths 1-3 @1450/1750/2050; no engine needed),
# a 4-block policy of width 64, an SAE of 512 features on its last residual
# stream, a TopK transcoder (1024 features, k 16) on block 2's MLP.
# Without it: Stockfish at UCI_Elo 1350-2350 plus random and greedy at the
# bottom, an 8-block policy of width 256, the reference's transcoder width
# 16384 and k 256 on block 6 - a GPU job. --pgn replaces the games by a
# rated PGN (e.g. a Lichess export with WhiteElo/BlackElo).
#
# Every step is a `kibitzer` command and is skipped when its output exists;
# game generation and policy training resume. Everything lands in
# runs/reference-000/ (or --out DIR); the tables are collected in summary.md.
set -euo pipefail

quick=0
device=cpu
out=runs/reference-000
pgn=
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=1 ;;
        --device) device="$2"; shift ;;
        --out) out="$2"; shift ;;
        --pgn) pgn="$(realpath "$2")"; shift ;;
        *) echo "unknown argument: $1 (expected --quick, --device D, --out DIR, --pgn FILE)" >&2; exit 2 ;;
    esac
    shift
done

if [[ $quick == 1 ]]; then
    players=(random@800 greedy@1150 alphabeta:1@1450 alphabeta:2@1750 alphabeta:3@2050)
    games=3000 max_plies=160 test_games=200
    layers=4 d_model=64 heads=4 d_mlp=256 steps=1500 batch=128 lr=1e-3
    ratings=800,1150,1450,1750,2050 low=800 high=2050
    harvest_positions=20000 d_sae=512 sae_steps=4000
    tc_layer=2 tc_d_sae=1024 tc_k=16 tc_steps=3000
    concept_positions=1000 calibrate_steps=300
else
    players=(random@800 greedy@1000 "stockfish:elo=1350,nodes=5000" "stockfish:elo=1650,nodes=5000"
        "stockfish:elo=1950,nodes=5000" "stockfish:elo=2350,nodes=5000")
    games=40000 max_plies=300 test_games=1000
    layers=8 d_model=256 heads=8 d_mlp=1024 steps=60000 batch=256 lr=5e-4
    ratings=800,1000,1350,1650,1950,2350 low=800 high=2350
    harvest_positions=200000 d_sae=4096 sae_steps=30000
    tc_layer=6 tc_d_sae=16384 tc_k=256 tc_steps=30000
    concept_positions=4000 calibrate_steps=2000
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

step "1. rated games"
if [[ -n $pgn ]]; then
    [[ -f games.jsonl ]] || "$kibitzer" games import-pgn "$pgn" --out games.jsonl --skip-invalid
else
    player_flags=()
    for p in "${players[@]}"; do player_flags+=(--players "$p"); done
    resume=()
    [[ -f games.jsonl.run.json ]] && resume=(--resume)
    "$kibitzer" games generate chess "${player_flags[@]}" --games "$games" --max-plies "$max_plies" \
        --openings 4 --seed 1 --out games.jsonl "${resume[@]}"
fi
data=(--games games.jsonl --test-games "$test_games")

step "2. the skill-conditioned policy"
if [[ ! -f policy/training.json ]]; then
    resume=()
    [[ -f policy/checkpoint.safetensors ]] && resume=(--resume)
    "$kibitzer" skill train "${data[@]}" --out policy "${resume[@]}" --layers "$layers" --d-model "$d_model" \
        --heads "$heads" --d-mlp "$d_mlp" --steps "$steps" --batch-size "$batch" --lr "$lr" --device "$device"
fi
policy=(--policy policy/policy.safetensors)

step "3. move-match per rating bucket, skill sensitivity"
# Stockfish judges which move is stronger where it is installed; the
# built-in alpha-beta (depth 2) elsewhere.
judge=search
{ command -v stockfish || [[ -x /usr/games/stockfish ]]; } >/dev/null 2>&1 && judge=stockfish
judge_strength=20000
[[ $judge == search ]] && judge_strength=2
[[ -f eval/eval.json ]] || "$kibitzer" skill eval "${data[@]}" "${policy[@]}" --ratings "$ratings" \
    --judge "$judge" --judge-nodes "$judge_strength" --out eval --device "$device"

last=$((layers - 1))
site="blocks.$last.hook_resid_post"
step "4. an SAE on $site (standard, L1)"
[[ -d resid-acts ]] || "$kibitzer" skill harvest "${data[@]}" "${policy[@]}" --site "$site" --split train \
    --max-positions "$harvest_positions" --out resid-acts --device "$device"
cat > sae.toml <<EOF
lr = 4e-4
sparsity_warmup_steps = $((sae_steps / 20))
lr_decay_start = $((sae_steps * 4 / 5))
normalize_activations = true
EOF
if [[ ! -d sae/done ]]; then
    resume=()
    [[ -d sae ]] && resume=(--resume)
    "$kibitzer" sae train --arch standard --d-sae "$d_sae" --l1 5 --config sae.toml --steps "$sae_steps" \
        --batch-size 4096 --activations resid-acts --out sae "${resume[@]}" --device "$device"
    mkdir -p sae/done
fi
sae_dir=$(find sae -mindepth 1 -maxdepth 1 -type d ! -name done | head -1)
[[ -f sae-eval/metrics.json ]] || "$kibitzer" sae eval --sae "$sae_dir" --activations resid-acts --out sae-eval

step "5. threat concepts per rating"
[[ -f concepts/concepts.json ]] || "$kibitzer" skill concepts "${data[@]}" "${policy[@]}" --sae "$sae_dir" \
    --site "$site" --ratings "$ratings" --max-positions "$concept_positions" --out concepts --device "$device"

step "6. raising the threat features at rating $low"
[[ -f intervention/intervention.json ]] || "$kibitzer" skill intervene "${data[@]}" "${policy[@]}" \
    --sae "$sae_dir" --site "$site" --concepts concepts/concepts.json --low "$low" --high "$high" \
    --out intervention --device "$device"

step "7. a TopK transcoder on block $tc_layer's MLP"
[[ -d mlp-in ]] || "$kibitzer" skill harvest "${data[@]}" "${policy[@]}" --site "blocks.$tc_layer.ln2.hook_normalized" \
    --split train --max-positions "$harvest_positions" --out mlp-in --device "$device"
[[ -d mlp-out ]] || "$kibitzer" skill harvest "${data[@]}" "${policy[@]}" --site "blocks.$tc_layer.hook_mlp_out" \
    --split train --max-positions "$harvest_positions" --out mlp-out --device "$device"
if [[ ! -d transcoder/done ]]; then
    resume=()
    [[ -f transcoder/checkpoint.json ]] && resume=(--resume)
    "$kibitzer" xcoder train --kind transcoder --input-store mlp-in --output-store mlp-out --arch topk \
        --d-sae "$tc_d_sae" --k "$tc_k" --steps "$tc_steps" --batch-size 4096 --name tc --out transcoder \
        "${resume[@]}" --device "$device"
    mkdir -p transcoder/done
fi
[[ -f transcoder-eval/transcoder.json ]] || "$kibitzer" skill transcoder "${data[@]}" "${policy[@]}" \
    --transcoder transcoder/tc --layer "$tc_layer" --out transcoder-eval --device "$device"

step "8. calibration (maia2_ft)"
[[ -f calibration/calibration.json ]] || "$kibitzer" skill calibrate "${data[@]}" "${policy[@]}" \
    --low "$low" --high "$high" --steps "$calibrate_steps" --out calibration --device "$device"

step "summary"
{
    echo "# Reference 000 at $([[ $quick == 1 ]] && echo "CPU scale (--quick)" || echo "full scale")"
    echo
    echo "Games: $(wc -l < games.jsonl) rated games ($([[ -n $pgn ]] && echo "from $pgn" || echo "${players[*]}")), the last $test_games held out."
    echo "Policy: $layers blocks, d_model $d_model, $heads heads, d_mlp $d_mlp, $steps steps of $batch positions."
    echo
    cat eval/eval.md
    echo
    echo "## The SAE on $site"
    echo
    cat sae-eval/metrics.md 2>/dev/null || cat sae-eval/metrics.json
    echo
    cat concepts/concepts.md
    echo
    cat intervention/intervention.md
    echo
    cat transcoder-eval/transcoder.md
    echo
    cat calibration/calibration.md
} > summary.md
step "done: $out/summary.md"
cat summary.md
