#!/usr/bin/env bash
# Times one full SAE training step in kibitzer and in PyTorch (CPU), in one
# run on the same threads, and prints steps/s of each and their ratio per
# architecture (standard, gated, topk k=32, topk k=64, batchtopk, jumprelu)
# as a Markdown table; the details go to a JSON file.
#
#   scripts/compare_torch.sh [--threads N] [--steps N] [--rounds R (default 3)]
#                            [--archs standard topk ...] [--json-out FILE]
#                            [--d-in N --d-sae N --batch N] [--adam default|foreach|fused]
#
# Environment: RUNNER=cli|example|auto (default auto: the `kibitzer bench sae`
# command, or the kibitzer-sae `bench_step` example where the binary does not
# build); CARGO_TARGET_DIR as for cargo; PYTHON (default python3).
#
# PyTorch runs with GLIBC_TUNABLES=glibc.malloc.mmap_max=0 (large temporaries
# stay on the heap instead of being mmapped and faulted in every step: its
# best case with glibc) and torch.set_num_threads equal to kibitzer's rayon
# thread count. Warm-up steps are excluded on both sides.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
RUNNER=${RUNNER:-auto}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

args=("$@")
threads=""
for ((i = 0; i < ${#args[@]}; i++)); do
  if [[ ${args[i]} == --threads ]]; then threads=${args[i + 1]:-}; fi
done
if [[ -z $threads ]]; then
  threads=$(nproc)
  args+=(--threads "$threads")
fi

if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
  # From the default index (PyPI) only: the machines this runs on cannot
  # reach extra package indexes such as download.pytorch.org.
  echo "PyTorch is missing: installing torch from PyPI with pip" >&2
  "$PYTHON" -m pip install --quiet torch
fi

kibitzer_cmd=""
if [[ $RUNNER == cli || $RUNNER == auto ]]; then
  echo "building kibitzer (release)..." >&2
  if cargo build --release --quiet -p kibitzer >&2; then
    kibitzer_cmd="$TARGET_DIR/release/kibitzer bench sae"
  elif [[ $RUNNER == cli ]]; then
    echo "error: the kibitzer binary does not build (RUNNER=cli)" >&2
    exit 1
  else
    echo "the kibitzer binary does not build; using the bench_step example" >&2
  fi
fi
if [[ -z $kibitzer_cmd ]]; then
  echo "building the kibitzer-sae bench_step example (release)..." >&2
  cargo build --release --quiet -p kibitzer-sae --example bench_step >&2
  kibitzer_cmd="$TARGET_DIR/release/examples/bench_step"
fi

echo "kibitzer: $kibitzer_cmd; threads: $threads" >&2
exec "$PYTHON" scripts/compare_torch.py compare --kibitzer "$kibitzer_cmd" "${args[@]}"
