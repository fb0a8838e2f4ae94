#!/usr/bin/env bash
# Measures kibitzer on a GPU and proves its results equal the CPU's: one
# JSON + Markdown report. Needs nothing from the internet.
#
#   bash scripts/gpu_check.sh                       # every stage on cuda
#   bash scripts/gpu_check.sh build parity          # some stages (each under 10 minutes on an H200)
#   bash scripts/gpu_check.sh grid                  # again to continue the grid (it resumes)
#   bash scripts/gpu_check.sh --device wgpu --quick # the same on wgpu (lavapipe: CUBECL_WGPU_DEFAULT_DEVICE=Cpu)
#
# Stages, in order (the default runs them all; `report` always runs last):
#   build   cuda: scripts/build_cuda_offline.sh --tests (Debian's LLVM, no
#           download); wgpu: cargo build --release --features wgpu
#   parity  the backend parity tests (crates/parity) on the device
#   bench   `kibitzer bench sae` for every architecture at d_in 256, d_sae
#           4096, batch 4096 (k 32); `bench transcoder` at reference 000's
#           transcoder size (1024 -> 16384, k 256); `bench gpt` forward and
#           training tokens/s at OthelloGPT's shape; the same on the CPU
#           with --with-cpu, for the ratio
#   grid    reference 001's full grid: 3M activations of the shipped
#           AlphaZero network, 25 standard SAEs (L1 1..5 x 256..4096
#           features), 12,000 steps of 16,384 rows, timed; each call runs
#           at most --budget seconds (default 540) and the next resumes
#   report  report.json and report.md from what the stages left
#
# --quick shrinks every size (a smoke test of the script, e.g. on lavapipe).
# Everything lands in runs/gpu-check/ (or --out DIR).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

device=cuda
quick=0
with_cpu=0
budget=540
out="$root/runs/gpu-check"
stages=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --device) device="$2"; shift ;;
        --quick) quick=1 ;;
        --with-cpu) with_cpu=1 ;;
        --budget) budget="$2"; shift ;;
        --out) out="$2"; shift ;;
        build|parity|bench|grid|report) stages+=("$1") ;;
        *) echo "unknown argument: $1 (expected stages build|parity|bench|grid|report, --device D, --quick, --with-cpu, --budget S, --out DIR)" >&2; exit 2 ;;
    esac
    shift
done
[[ ${#stages[@]} -gt 0 ]] || stages=(build parity bench grid)
case "$device" in
    cuda*) feature=cuda ;;
    wgpu) feature=wgpu ;;
    *) echo "--device must be cuda, cuda:N or wgpu, not $device" >&2; exit 2 ;;
esac
mkdir -p "$out"
out="$(cd "$out" && pwd)"
kibitzer="${CARGO_TARGET_DIR:-$root/target}/release/kibitzer"
if [[ $feature == cuda ]]; then
    # The offline LLVM prefix the build used (scripts/build_cuda_offline.sh).
    export XDG_DATA_HOME="$root/target/offline-llvm"
fi
start=$SECONDS
step() { echo "== $* ($((SECONDS - start)) s)" >&2; }
# Seconds a command took, appended to timings.jsonl.
timed() {
    local name="$1"; shift
    local t0=$SECONDS rc=0
    "$@" || rc=$?
    printf '{"stage":"%s","seconds":%d,"exit":%d}\n' "$name" $((SECONDS - t0)) "$rc" >> "$out/timings.jsonl"
    return $rc
}

if [[ $quick == 1 ]]; then
    sae=(--d-in 64 --d-sae 256 --batch 256 --k 8 --steps 3)
    transcoder=(--d-in 64 --d-out 64 --d-sae 512 --k 16 --batch 256 --steps 3)
    gpt=(--layers 2 --d-model 64 --heads 4 --batch 8 --steps 3)
    positions=20000 label_games=50 grid=(--features 256,512 --steps 20 --batch-size 1024)
else
    sae=(--d-in 256 --d-sae 4096 --batch 4096 --k 32 --steps 20)
    transcoder=(--d-in 1024 --d-out 1024 --d-sae 16384 --k 256 --batch 4096 --steps 10)
    gpt=(--steps 20)
    positions=3000000 label_games=2000 grid=()
fi

for stage in "${stages[@]}"; do
    case "$stage" in
    build)
        step "build ($feature)"
        if [[ $feature == cuda ]]; then
            timed build bash "$root/scripts/build_cuda_offline.sh" --tests 2>&1 | tail -5
        else
            (cd "$root" && timed build cargo build --release -p kibitzer --features wgpu \
                && cargo test --release -p kibitzer-parity --features wgpu --no-run) 2>&1 | tail -5
        fi
        ;;
    parity)
        step "parity tests on $device"
        rc=0
        (cd "$root" && export KIBITZER_TEST_DEVICE="$device" \
            && timed parity cargo test --release -p kibitzer-parity --no-default-features --features "$feature" -- --test-threads 1) \
            > "$out/parity.log" 2>&1 || rc=$?
        grep -E "^test |test result" "$out/parity.log" >&2 || true
        [[ $rc == 0 ]] || echo "parity tests failed (exit $rc): $out/parity.log" >&2
        ;;
    bench)
        step "benchmarks on $device"
        : > "$out/bench.jsonl"
        devices=("$device")
        [[ $with_cpu == 1 ]] && devices+=(cpu)
        for d in "${devices[@]}"; do
            for arch in standard panneal gated topk batchtopk jumprelu; do
                "$kibitzer" bench sae --arch "$arch" "${sae[@]}" --device "$d" --json | tee -a "$out/bench.jsonl"
            done
            "$kibitzer" bench transcoder --arch topk "${transcoder[@]}" --device "$d" --json | tee -a "$out/bench.jsonl"
            "$kibitzer" bench gpt "${gpt[@]}" --device "$d" --json | tee -a "$out/bench.jsonl"
            "$kibitzer" bench gpt --train "${gpt[@]}" --device "$d" --json | tee -a "$out/bench.jsonl"
        done
        ;;
    grid)
        step "reference 001's grid on $device"
        if [[ ! -f "$out/harvest/done" ]]; then
            timed harvest "$kibitzer" alphazero harvest --net shipped --positions "$positions" \
                --label-games "$label_games" --device "$device" --out "$out/harvest" --quiet
            touch "$out/harvest/done"
        fi
        resume=()
        [[ -f "$out/grid/checkpoint.json" ]] && resume=(--resume)
        rc=0
        timed grid timeout "$budget" "$kibitzer" sweep --activations "$out/harvest/activations" \
            --labels "$out/harvest/labels.jsonl" --game othello --size 6 --preset reference \
            --archs standard "${grid[@]}" --checkpoint-every 500 --device "$device" \
            --out "$out/grid" --quiet "${resume[@]}" || rc=$?
        if [[ $rc == 124 ]]; then
            echo "the grid is not finished after --budget $budget s; run this stage again to continue it" >&2
        elif [[ $rc != 0 ]]; then
            echo "the grid failed (exit $rc)" >&2
            exit $rc
        fi
        ;;
    report) ;;
    esac
done

step "report"
python3 - "$out" "$device" <<'EOF'
import json, os, sys
out, device = sys.argv[1], sys.argv[2]
def lines(name):
    p = os.path.join(out, name)
    return [json.loads(l) for l in open(p) if l.strip()] if os.path.exists(p) else []
timings = lines("timings.jsonl")
bench = lines("bench.jsonl")
parity = None
p = os.path.join(out, "parity.log")
if os.path.exists(p):
    text = open(p).read()
    tests = [l.split()[1] + " " + l.split()[-1] for l in text.splitlines() if l.startswith("test ") and l.split()[-1] in ("ok", "FAILED")]
    parity = {"tests": tests, "passed": sum(t.endswith("ok") for t in tests), "failed": sum(t.endswith("FAILED") for t in tests)}
grid = None
g = os.path.join(out, "grid", "scaling.json")
grid_seconds = sum(t["seconds"] for t in timings if t["stage"] == "grid")
if os.path.exists(g):
    runs = json.load(open(g)).get("runs", [])
    grid = {"runs": len(runs), "seconds": grid_seconds}
report = {"device": device, "timings": timings, "parity": parity, "bench": bench, "grid": grid,
          "grid_seconds_so_far": grid_seconds}
with open(os.path.join(out, "report.json"), "w") as f:
    json.dump(report, f, indent=2)
md = [f"# kibitzer on {device}", ""]
if parity:
    md += [f"Parity tests: {parity['passed']} passed, {parity['failed']} failed.", ""]
if bench:
    md += ["| benchmark | device | shape | steps/s | tokens/s |", "|---|---|---|---:|---:|"]
    for b in bench:
        kind = b.get("kind", "sae")
        if kind.startswith("gpt"):
            shape = f"{b['layers']} x {b['d_model']}, {b['heads']} heads, {b['batch']} x {b['context']}"
            name = kind.replace("_", " ")
        else:
            shape = f"{b['d_in']} -> {b.get('d_out', b['d_in'])}, {b['d_sae']} features, k {b['k']}, batch {b['batch']}"
            name = f"{b['arch']} {kind}"
        tok = f"{b['tokens_per_s']:.0f}" if "tokens_per_s" in b else ""
        md.append(f"| {name} | {b['device']} | {shape} | {b['steps_per_s']:.2f} | {tok} |")
    md.append("")
if grid:
    md += [f"Reference 001's grid: {grid['runs']} SAEs in {grid['seconds']} s.", ""]
elif grid_seconds:
    md += [f"Reference 001's grid: not finished after {grid_seconds} s.", ""]
md += ["| stage | seconds | exit |", "|---|---:|---:|"] + [f"| {t['stage']} | {t['seconds']} | {t['exit']} |" for t in timings]
with open(os.path.join(out, "report.md"), "w") as f:
    f.write("\n".join(md) + "\n")
print("\n".join(md))
EOF
step "done: $out/report.md"
