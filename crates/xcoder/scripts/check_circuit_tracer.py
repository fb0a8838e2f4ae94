"""Opens CLTs that kibitzer wrote with circuit-tracer's own loader and checks
that circuit-tracer computes kibitzer's features and reconstructions.

    python3 check_circuit_tracer.py DIR

DIR holds one sub-directory per CLT (circuit-tracer's layout, written by
`kibitzer_xcoder::format::save`), each with `probe.safetensors` beside it:
`x [n_layers, rows, d_model]` (raw inputs), and what kibitzer computed from
them, `features [n_layers, rows, d_transcoder]` and
`reconstruction [n_layers, rows, d_model]`. Every CLT is loaded four ways
(lazy and eager encoder and decoder) through
`circuit_tracer.transcoder.cross_layer_transcoder.load_clt`, in float32 on
the CPU. Prints one JSON line per CLT and exits 1 on any mismatch, 3 when
circuit-tracer cannot be imported (the caller decides whether that is a
skip).
"""

import json
import sys
from pathlib import Path

try:
    import torch
    from safetensors.torch import load_file
    from circuit_tracer.transcoder.cross_layer_transcoder import load_clt
    import circuit_tracer
except ImportError as e:  # pragma: no cover - reported to the caller
    print(f"circuit-tracer unavailable: {e}", file=sys.stderr)
    sys.exit(3)


def check(clt_dir: Path) -> dict:
    probe = load_file(str(clt_dir.parent / f"{clt_dir.name}.probe.safetensors"))
    x = probe["x"]
    want_features = probe["features"]
    want_recon = probe["reconstruction"]
    worst = {"features": 0.0, "reconstruction": 0.0}
    for lazy_encoder in (False, True):
        for lazy_decoder in (False, True):
            clt = load_clt(
                str(clt_dir),
                device=torch.device("cpu"),
                dtype=torch.float32,
                lazy_encoder=lazy_encoder,
                lazy_decoder=lazy_decoder,
            )
            assert clt.n_layers == x.shape[0], (clt.n_layers, x.shape)
            with torch.no_grad():
                features = clt.encode(x)
                recon = clt.decode(features.to_sparse())
            # circuit-tracer sizes the output by the last position with an
            # active feature; every probe row has one.
            assert recon.shape == want_recon.shape, (recon.shape, want_recon.shape)
            worst["features"] = max(worst["features"], (features - want_features).abs().max().item())
            worst["reconstruction"] = max(worst["reconstruction"], (recon - want_recon).abs().max().item())
    activation = "jump_relu" if hasattr(clt.activation_function, "threshold") else "relu"
    return {
        "clt": clt_dir.name,
        "n_layers": clt.n_layers,
        "d_transcoder": clt.d_transcoder,
        "d_model": clt.d_model,
        "activation": activation,
        "active_features": int((want_features > 0).sum().item()),
        "max_abs_diff": worst,
    }


def main() -> int:
    root = Path(sys.argv[1])
    ok = True
    dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not dirs:
        print(f"{root}: no CLT directories", file=sys.stderr)
        return 1
    for d in dirs:
        result = check(d)
        result["circuit_tracer"] = getattr(circuit_tracer, "__version__", "unknown")
        print(json.dumps(result))
        if result["max_abs_diff"]["features"] > 1e-4 or result["max_abs_diff"]["reconstruction"] > 1e-4:
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
