"""A straightforward NumPy implementation of reference 002's coverage and
board reconstruction, for the ratio in `cargo bench -p kibitzer-bsp`.

It follows the reference code's shape: for every block of features, a dense
activation block, and for every threshold a boolean active matrix whose
product with the label matrix gives the true positives (the reference does
the same with einops sums). Inputs are the raw files the Rust bench writes
into a directory (see `meta.json`); output is one JSON object on stdout with
the per-group coverage and board reconstruction F1 and the seconds taken.

Usage: python3 numpy_metrics.py DIR
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

EPS = np.float32(1e-8)


def load_csc(d, prefix, cols):
    indptr = np.fromfile(d / f"{prefix}_indptr.bin", dtype="<i8")
    indices = np.fromfile(d / f"{prefix}_indices.bin", dtype="<u4")
    data = np.fromfile(d / f"{prefix}_data.bin", dtype="<f4")
    assert indptr.shape[0] == cols + 1
    return indptr, indices, data


def load_labels(d, prefix, rows, words, bsps):
    w = np.fromfile(d / f"{prefix}_labels.bin", dtype="<u8").reshape(rows, words)
    bits = np.unpackbits(w.view(np.uint8), axis=1, bitorder="little")[:, :bsps]
    return bits.astype(bool)


def dense_block(csc, rows, cols):
    indptr, indices, data = csc
    block = np.zeros((rows, len(cols)), dtype=np.float32)
    for k, c in enumerate(cols):
        a, b = indptr[c], indptr[c + 1]
        block[indices[a:b], k] = data[a:b]
    return block


def f1(tp, fp, fn):
    tp = np.float32(tp)
    precision = tp / (np.float32(tp + fp) + EPS)
    recall = tp / (np.float32(tp + fn) + EPS)
    return np.float32(2) * (precision * recall) / (precision + recall + EPS)


def main():
    d = Path(sys.argv[1])
    meta = json.loads((d / "meta.json").read_text())
    rows, test_rows, cols = meta["rows"], meta["test_rows"], meta["features"]
    bsps, words, max_tokens = meta["bsps"], meta["words"], meta["max_tokens"]
    train = load_csc(d, "train", cols)
    test = load_csc(d, "test", cols)
    labels = load_labels(d, "train", rows, words, bsps)
    test_labels = load_labels(d, "test", test_rows, words, bsps)
    start = time.perf_counter()

    # Feature scale: max over the first max_tokens rows, alive if nonzero.
    n = min(rows, max_tokens)
    indptr, indices, data = train
    max_abs = np.zeros(cols, dtype=np.float32)
    alive = np.zeros(cols, dtype=bool)
    for c in range(cols):
        a, b = indptr[c], indptr[c + 1]
        vals = data[a:b][indices[a:b] < n]
        if len(vals):
            alive[c] = True
            m = vals.max()
            if len(vals) < n:
                m = max(m, np.float32(0))
            max_abs[c] = abs(m)
    thresholds = np.arange(0.0, 1.1, 0.1).astype(np.float32)
    rec_t = len(thresholds) - 1

    lf = labels.astype(np.float32)
    positives = lf.sum(axis=0)
    best = np.zeros((len(thresholds), bsps), dtype=np.float32)
    hp = np.zeros((rec_t, cols, bsps), dtype=bool)
    batch = 256
    for start_col in range(0, cols, batch):
        cs = list(range(start_col, min(cols, start_col + batch)))
        block = dense_block(train, rows, cs)
        for ti, t in enumerate(thresholds):
            active = (block > t * max_abs[cs]) & alive[cs]
            af = active.astype(np.float32)
            on = af.sum(axis=0)
            tp = af.T @ lf
            precision = tp / (on[:, None] + EPS)
            recall = tp / (positives[None, :] + EPS)
            f = np.float32(2) * (precision * recall) / (precision + recall + EPS)
            best[ti] = np.maximum(best[ti], f.max(axis=0))
            if ti < rec_t:
                with np.errstate(divide="ignore", invalid="ignore"):
                    inv = np.float32(1) / on
                    hp[ti, cs] = (tp * inv[:, None] >= np.float32(0.95)) & (tp >= 10)

    coverage = {}
    for g in meta["groups"]:
        members = g["bsps"]
        per_t = best[:, members].astype(np.float64).sum(axis=1) / len(members)
        coverage[g["name"]] = float(per_t.max())

    tl = test_labels
    recon = {}
    counts = {g["name"]: [] for g in meta["groups"]}
    for ti in range(rec_t):
        pred = np.zeros((test_rows, bsps), dtype=np.float32)
        for start_col in range(0, cols, batch):
            cs = list(range(start_col, min(cols, start_col + batch)))
            h = hp[ti, cs]
            if not h.any():
                continue
            block = dense_block(test, test_rows, cs)
            active = (block > thresholds[ti] * max_abs[cs]) & alive[cs]
            pred += active.astype(np.float32) @ h.astype(np.float32)
        predicted = pred > 0
        tp_m = predicted & tl
        fp_m = predicted & ~tl
        fn_m = ~predicted & tl
        for g in meta["groups"]:
            members = g["bsps"]
            both = 0
            for slot in meta["slots"]:
                if slot["group"] == g["name"]:
                    s = slot["bsps"]
                    both += int(((tp_m[:, s].sum(1) == 1) & (fp_m[:, s].sum(1) == 1)).sum())
            counts[g["name"]].append(
                (int(tp_m[:, members].sum()), int(fp_m[:, members].sum()), int(fn_m[:, members].sum()), both)
            )
    for name, per_t in counts.items():
        per_square = [f1(tp - both, fp, fn) for tp, fp, fn, both in per_t]
        i = int(np.argmax(per_square))
        tp, fp, fn, _ = per_t[i]
        recon[name] = float(f1(tp, fp, fn))
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "coverage": coverage, "reconstruction": recon}))


if __name__ == "__main__":
    main()
