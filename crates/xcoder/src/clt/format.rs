//! Saved CLTs in circuit-tracer's layout (`CrossLayerTranscoder.to_safetensors`
//! and `load_clt` in circuit-tracer 0.5,
//! `circuit_tracer/transcoder/cross_layer_transcoder.py`), so that
//! `circuit_tracer.transcoder.cross_layer_transcoder.load_clt(dir)` opens a
//! CLT kibitzer trained, and kibitzer opens one circuit-tracer wrote.
//!
//! One directory; `F = d_transcoder`, `d = d_model`, `n = n_layers`, f32:
//!
//! | file | tensor | shape |
//! |---|---|---|
//! | `W_enc_{i}.safetensors` | `W_enc_{i}` | `[F, d]` (rows are features: `a = x W_enc_i^T + b_enc_i`) |
//! | | `b_enc_{i}` | `[F]` |
//! | | `b_dec_{i}` | `[d]` (added to layer `i`'s reconstruction) |
//! | | `threshold_{i}` | `[F]`, JumpReLU only (BatchTopK: its global threshold per feature) |
//! | `W_dec_{i}.safetensors` | `W_dec_{i}` | `[F, n - i, d]`: `W_dec_i[:, t - i]` writes layer `t` |
//! | `cfg.json` | | kibitzer's description (below) |
//! | `config.yaml` | | circuit-tracer's hub config: `model_kind: cross_layer_transcoder`, the hooks |
//!
//! circuit-tracer counts the layers by globbing `W_enc_*.safetensors`, takes
//! JumpReLU when `threshold_0` is present and ReLU otherwise, and computes
//! `features = x W_enc^T + b_enc` masked by `features > threshold`. A
//! BatchTopK CLT is saved as that JumpReLU with its global threshold on every
//! feature (what its inference is), so circuit-tracer computes exactly
//! kibitzer's features.
//!
//! `cfg.json`: `{"format": "kibitzer-clt", "version": 1, "architecture":
//! "jumprelu" | "batchtopk" | "standard", "k": (batchtopk), "n_layers",
//! "d_model", "d_transcoder", "feature_input_hook", "feature_output_hook",
//! "dtype": "float32", "metadata": {...}}`. Weights are written first, the
//! two configs last, each file atomically. A directory with the tensors but
//! no `cfg.json` (written by circuit-tracer) loads as JumpReLU or ReLU, with
//! the hooks of its `config.yaml` when there is one (circuit-tracer's
//! defaults `hook_resid_mid` and `hook_mlp_out` otherwise).

use super::{Clt, CltConfig};
use crate::error::XcoderError;
use crate::format::{Cfg, FORMAT_VERSION, write_cfg, write_tensors};
use burn::tensor::Device;
use kibitzer_io::{FileError, FileResultExt};
use kibitzer_sae::io::{HostTensor, atomic_write, read_f32_safetensors};
use kibitzer_sae::ops::{from_host, to_host};
use kibitzer_sae::{Architecture, Params};
use serde_json::{Map, Value, json};
use std::path::Path;

/// `format` of a kibitzer CLT directory's `cfg.json` (its version is
/// [`crate::format::FORMAT_VERSION`]).
pub const CLT_FORMAT: &str = "kibitzer-clt";
/// circuit-tracer's config file.
pub const CIRCUIT_TRACER_CONFIG: &str = "config.yaml";
/// JumpReLU's kernel width recorded for a CLT read from circuit-tracer's
/// files (they do not store one; it only matters for further training).
const DEFAULT_BANDWIDTH: f64 = 0.001;

fn encoder_file(layer: usize) -> String {
    format!("W_enc_{layer}.safetensors")
}

fn decoder_file(layer: usize) -> String {
    format!("W_dec_{layer}.safetensors")
}

/// Whether `dir` looks like a saved CLT (its layer-0 encoder file exists).
pub fn is_clt_dir(dir: &Path) -> bool {
    dir.join(encoder_file(0)).is_file()
}

/// Writes `clt` (already for raw activations) to `dir`, with `meta` in
/// `cfg.json`'s `metadata`.
pub fn save(clt: &Clt, dir: &Path, meta: Map<String, Value>) -> Result<(), XcoderError> {
    let c = clt.config();
    let (n, d, f) = (c.n_layers, c.d_model, c.d_transcoder);
    std::fs::create_dir_all(dir).at_file(dir)?;
    let p = clt.params();
    let (w_enc, w_dec) = (to_host(p.w_enc.clone()), to_host(p.w_dec.clone()));
    let (b_enc, b_dec) = (to_host(p.b_enc.clone()), to_host(p.b_dec.clone()));
    let threshold = p.threshold.clone().map(to_host);
    let (enc_cols, dec_cols) = (n * f, n * d);
    let write = |name: String, tensors: &[HostTensor]| write_tensors(&dir.join(name), tensors);
    for layer in 0..n {
        // W_enc_i[j, r] = stacked w_enc[layer d + r, layer F + j].
        let mut enc = vec![0f32; f * d];
        for r in 0..d {
            let row = &w_enc[(layer * d + r) * enc_cols + layer * f..][..f];
            for (j, &v) in row.iter().enumerate() {
                enc[j * d + r] = v;
            }
        }
        let mut tensors = vec![
            HostTensor {
                name: format!("W_enc_{layer}"),
                shape: vec![f, d],
                data: enc,
            },
            HostTensor {
                name: format!("b_enc_{layer}"),
                shape: vec![f],
                data: b_enc[layer * f..(layer + 1) * f].to_vec(),
            },
            HostTensor {
                name: format!("b_dec_{layer}"),
                shape: vec![d],
                data: b_dec[layer * d..(layer + 1) * d].to_vec(),
            },
        ];
        if let Some(theta) = &threshold {
            tensors.push(HostTensor {
                name: format!("threshold_{layer}"),
                shape: vec![f],
                data: theta[layer * f..(layer + 1) * f].to_vec(),
            });
        }
        write(encoder_file(layer), &tensors)?;
        // W_dec_i[j] = stacked w_dec[layer F + j, layer d..n d].
        let written = (n - layer) * d;
        let mut dec = Vec::with_capacity(f * written);
        for j in 0..f {
            dec.extend_from_slice(&w_dec[(layer * f + j) * dec_cols + layer * d..][..written]);
        }
        write(
            decoder_file(layer),
            &[HostTensor {
                name: format!("W_dec_{layer}"),
                shape: vec![f, n - layer, d],
                data: dec,
            }],
        )?;
    }
    let mut cfg = json!({
        "format": CLT_FORMAT,
        "version": FORMAT_VERSION,
        "architecture": c.architecture.name(),
        "n_layers": n,
        "d_model": d,
        "d_transcoder": f,
        "feature_input_hook": c.input_hook,
        "feature_output_hook": c.output_hook,
        "dtype": "float32",
        "metadata": meta,
    });
    match c.architecture {
        Architecture::BatchTopK { k } => cfg["k"] = json!(k),
        Architecture::JumpRelu { bandwidth } => cfg["bandwidth"] = json!(bandwidth),
        _ => {}
    }
    let yaml = format!(
        "# A cross-layer transcoder written by kibitzer; circuit-tracer's load_clt opens this directory.\n\
         model_kind: cross_layer_transcoder\n\
         feature_input_hook: {}\n\
         feature_output_hook: {}\n",
        c.input_hook, c.output_hook
    );
    let path = dir.join(CIRCUIT_TRACER_CONFIG);
    atomic_write(&path, yaml.as_bytes()).at_file(&path)?;
    write_cfg(dir, &cfg)
}

/// The configuration of a saved CLT: from `cfg.json` when present, else
/// from circuit-tracer's files (shapes, thresholds, `config.yaml`).
fn read_config(dir: &Path) -> Result<CltConfig, XcoderError> {
    let cfg_path = dir.join(crate::format::CFG_FILE);
    if cfg_path.is_file() {
        let text = std::fs::read_to_string(&cfg_path).at_file(&cfg_path)?;
        let cfg: Value = serde_json::from_str(&text)
            .map_err(|e| FileError::new(&cfg_path, format!("not valid JSON: {e}")))?;
        return config_from_json(&cfg, &cfg_path);
    }
    let first = dir.join(encoder_file(0));
    let tensors = read_file(&first)?;
    let w_enc = find(&tensors, "W_enc_0", &first)?;
    let [f, d] = w_enc.shape[..] else {
        return Err(FileError::new(
            &first,
            format!(
                "tensor `W_enc_0` has shape {:?}, expected [d_transcoder, d_model]",
                w_enc.shape
            ),
        )
        .into());
    };
    let n = (0..)
        .take_while(|&l| dir.join(encoder_file(l)).is_file())
        .count();
    let architecture = if tensors.iter().any(|t| t.name == "threshold_0") {
        Architecture::JumpRelu {
            bandwidth: DEFAULT_BANDWIDTH,
        }
    } else {
        Architecture::Standard
    };
    let (input_hook, output_hook) = yaml_hooks(dir)?;
    Ok(CltConfig {
        architecture,
        n_layers: n,
        d_model: d,
        d_transcoder: f,
        input_hook,
        output_hook,
    })
}

/// The hooks of circuit-tracer's flat `config.yaml` (`key: value` lines),
/// or its defaults when the file is absent.
fn yaml_hooks(dir: &Path) -> Result<(String, String), XcoderError> {
    let path = dir.join(CIRCUIT_TRACER_CONFIG);
    let (mut input, mut output) = ("hook_resid_mid".to_string(), "hook_mlp_out".to_string());
    if !path.is_file() {
        return Ok((input, output));
    }
    let text = std::fs::read_to_string(&path).at_file(&path)?;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        match key.trim() {
            "feature_input_hook" => input = value.to_string(),
            "feature_output_hook" => output = value.to_string(),
            _ => {}
        }
    }
    Ok((input, output))
}

fn config_from_json(cfg: &Value, path: &Path) -> Result<CltConfig, XcoderError> {
    let c = Cfg { value: cfg, path };
    if c.str("format")? != CLT_FORMAT {
        return Err(FileError::new(
            path,
            format!("key `format` is {}, expected {CLT_FORMAT:?}", cfg["format"]),
        )
        .into());
    }
    c.check_format(CLT_FORMAT)?;
    let architecture = match c.str("architecture")? {
        "standard" => Architecture::Standard,
        "jumprelu" => Architecture::JumpRelu {
            bandwidth: cfg
                .get("bandwidth")
                .and_then(Value::as_f64)
                .unwrap_or(DEFAULT_BANDWIDTH),
        },
        "batchtopk" => Architecture::BatchTopK { k: c.usize("k")? },
        other => {
            return Err(FileError::new(
                path,
                format!(
                    "key `architecture` is {other:?}; a CLT is \"jumprelu\", \"batchtopk\" or \"standard\""
                ),
            ).into());
        }
    };
    let config = CltConfig {
        architecture,
        n_layers: c.usize("n_layers")?,
        d_model: c.usize("d_model")?,
        d_transcoder: c.usize("d_transcoder")?,
        input_hook: c.str("feature_input_hook")?.to_string(),
        output_hook: c.str("feature_output_hook")?.to_string(),
    };
    config
        .validate()
        .map_err(|e| FileError::new(path, e.to_string()))?;
    Ok(config)
}

fn read_file(path: &Path) -> Result<Vec<HostTensor>, XcoderError> {
    let bytes = std::fs::read(path).at_file(path)?;
    Ok(read_f32_safetensors(&bytes).at_file(path)?.0)
}

fn find<'a>(
    tensors: &'a [HostTensor],
    name: &str,
    path: &Path,
) -> Result<&'a HostTensor, XcoderError> {
    tensors.iter().find(|t| t.name == name).ok_or_else(|| {
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        FileError::new(
            path,
            format!("tensor `{name}` is missing (found {names:?})"),
        )
        .into()
    })
}

fn shaped<'a>(
    tensors: &'a [HostTensor],
    name: &str,
    shape: &[usize],
    path: &Path,
) -> Result<&'a [f32], XcoderError> {
    let t = find(tensors, name, path)?;
    if t.shape != shape {
        return Err(FileError::new(
            path,
            format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                t.shape
            ),
        )
        .into());
    }
    Ok(&t.data)
}

/// Reads a CLT written by [`save`] or by circuit-tracer's `to_safetensors`.
pub fn load(dir: &Path, device: &Device) -> Result<Clt, XcoderError> {
    let config = read_config(dir)?;
    let (n, d, f) = (config.n_layers, config.d_model, config.d_transcoder);
    if dir.join(encoder_file(n)).exists() {
        return Err(FileError::new(
            dir,
            format!(
                "holds {} but its config says n_layers = {n}",
                encoder_file(n)
            ),
        )
        .into());
    }
    let with_threshold = !matches!(config.architecture, Architecture::Standard);
    let (enc_cols, dec_cols) = (n * f, n * d);
    let mut w_enc = vec![0f32; n * d * enc_cols];
    let mut w_dec = vec![0f32; n * f * dec_cols];
    let (mut b_enc, mut b_dec) = (Vec::with_capacity(n * f), Vec::with_capacity(n * d));
    let mut threshold = Vec::new();
    for layer in 0..n {
        let path = dir.join(encoder_file(layer));
        let tensors = read_file(&path)?;
        let enc = shaped(&tensors, &format!("W_enc_{layer}"), &[f, d], &path)?;
        for (j, row) in enc.chunks(d).enumerate() {
            for (r, &v) in row.iter().enumerate() {
                w_enc[(layer * d + r) * enc_cols + layer * f + j] = v;
            }
        }
        b_enc.extend_from_slice(shaped(&tensors, &format!("b_enc_{layer}"), &[f], &path)?);
        b_dec.extend_from_slice(shaped(&tensors, &format!("b_dec_{layer}"), &[d], &path)?);
        let theta_name = format!("threshold_{layer}");
        match (with_threshold, tensors.iter().any(|t| t.name == theta_name)) {
            (true, true) => {
                threshold.extend_from_slice(shaped(&tensors, &theta_name, &[f], &path)?)
            }
            (false, true) => {
                return Err(FileError::new(
                    &path,
                    format!("holds `{theta_name}`, but the CLT is configured as ReLU (standard)"),
                )
                .into());
            }
            (true, false) if matches!(config.architecture, Architecture::JumpRelu { .. }) => {
                return Err(FileError::new(
                    &path,
                    format!("tensor `{theta_name}` is missing; a JumpReLU CLT has one per layer"),
                )
                .into());
            }
            _ => {}
        }
        let path = dir.join(decoder_file(layer));
        let tensors = read_file(&path)?;
        let written = (n - layer) * d;
        let dec = shaped(
            &tensors,
            &format!("W_dec_{layer}"),
            &[f, n - layer, d],
            &path,
        )?;
        for (j, row) in dec.chunks(written).enumerate() {
            w_dec[(layer * f + j) * dec_cols + layer * d..][..written].copy_from_slice(row);
        }
    }
    if !threshold.is_empty() && threshold.len() != n * f {
        return Err(FileError::new(
            dir,
            "some layers have a threshold and some do not; a CLT has one on every layer or none",
        )
        .into());
    }
    let params = Params {
        w_enc: from_host(w_enc, n * d, enc_cols, device),
        b_enc: from_host(b_enc, 1, n * f, device),
        w_dec: from_host(w_dec, n * f, dec_cols, device),
        b_dec: from_host(b_dec, 1, n * d, device),
        threshold: (!threshold.is_empty()).then(|| from_host(threshold, 1, n * f, device)),
        b_mag: None,
        r_mag: None,
        w_skip: None,
    };
    Clt::from_params(config, params).map_err(|e| FileError::new(dir, e.to_string()).into())
}
