//! Saved transcoders and crosscoders: one directory each, written atomically
//! (weights first, then `cfg.json`, so a reader that finds the config finds
//! matching weights).
//!
//! ## Transcoders
//!
//! SAELens's own layouts (kibitzer-sae's [`saelens`] module writes them)
//! wherever SAELens has one:
//!
//! | kibitzer | `cfg.json` `architecture` |
//! |---|---|
//! | L1 (`standard`) | `transcoder`, `skip_transcoder` |
//! | JumpReLU | `jumprelu_transcoder`, `jumprelu_skip_transcoder` |
//! | BatchTopK (with its threshold) | `jumprelu_transcoder`, `jumprelu_skip_transcoder`, `metadata.training_architecture = "batchtopk"` |
//! | TopK | `topk_transcoder`, `topk_skip_transcoder` (kibitzer layout, below) |
//! | gated | `gated_transcoder`, `gated_skip_transcoder` (kibitzer layout, below) |
//!
//! `metadata.hook_name` and `metadata.hook_name_out` hold the input and
//! output sites. SAELens 6 has no TopK or gated transcoder, so kibitzer
//! writes them in the same shape: `cfg.json` with `"format":
//! "kibitzer-transcoder"`, `"version": 1`, `architecture` as above, `d_in`,
//! `d_sae`, `d_out`, `k` (TopK), `dtype` (`"float32"`),
//! `apply_b_dec_to_input: false`, `normalize_activations: "none"` and
//! `metadata`; and `sae_weights.safetensors` with `W_enc [d_in, d_sae]`,
//! `b_enc [d_sae]`, `W_dec [d_sae, d_out]`, `b_dec [d_out]` (and `W_skip
//! [d_out, d_in]`): SAELens's transcoder tensors, plus `b_mag [d_sae]` and
//! `r_mag [d_sae]` for gated ones (SAELens's gated SAE tensors). TopK
//! features are `f = topk_k(relu(x W_enc + b_enc))` per row (ties to the
//! lower index); gated features `f = 1[x W_enc + b_enc > 0] relu(x (W_enc
//! exp(r_mag)) + b_mag)`; and `ŷ = f W_dec + b_dec (+ x W_skip^T)`.
//!
//! ## Cross-layer transcoders
//!
//! circuit-tracer's layout (per-layer `W_enc_{i}` / `W_dec_{i}` files), see
//! [`crate::clt::format`].
//!
//! ## Crosscoders (kibitzer layout)
//!
//! `cfg.json`:
//!
//! ```json
//! {
//!   "format": "kibitzer-crosscoder", "version": 1,
//!   "architecture": "standard" | "topk" | "batchtopk", "k": 32,
//!   "d_sae": 4096,
//!   "blocks": [{"name": "blocks.0.hook_resid_post", "width": 512}, ...],
//!   "block_scales": [0.71, ...],
//!   "dtype": "float32",
//!   "metadata": {...}
//! }
//! ```
//!
//! `crosscoder_weights.safetensors` (f32, row-major, `D = sum of the block
//! widths`, blocks side by side in `blocks` order):
//!
//! | tensor | shape | meaning |
//! |---|---|---|
//! | `W_enc` | `[D, d_sae]` | the per-block encoders stacked; with `n` blocks of width `d`, `W_enc.reshape(n, d, d_sae)[i]` is block `i`'s |
//! | `b_enc` | `[d_sae]` | |
//! | `W_dec` | `[d_sae, D]` | the per-block decoders side by side; `W_dec.reshape(d_sae, n, d)[:, i]` is block `i`'s |
//! | `b_dec` | `[D]` | |
//! | `threshold` | `[d_sae]` | BatchTopK only: inference threshold on `f_j s_j` |
//!
//! Inference on raw activations `x = [x_1 | .. | x_n]`: `z_i = c_i x_i`
//! (`c = block_scales`), `pre = z W_enc + b_enc`, `s_j = sum_i
//! ||W_dec[j, block i]||`, then `f = relu(pre)` (standard), the `k` largest
//! `relu(pre_j) s_j` of each row (topk), or `relu(pre_j)` where
//! `relu(pre_j) s_j > threshold_j` (batchtopk); the reconstruction of block
//! `i` is `(f W_dec + b_dec)[block i] / c_i`. L1 crosscoders are saved with
//! the scales folded into the weights (`block_scales` all 1).

use crate::blocks::Block;
use crate::crosscoder::{Crosscoder, CrosscoderConfig};
use crate::error::XcoderError;
use crate::transcoder::Transcoder;
use crate::xcoder::Xcoder;
use burn::tensor::Device;
use kibitzer_io::{FileError, FileResultExt};
use kibitzer_sae::io::{HostTensor, atomic_write, f32_safetensors, read_f32_safetensors};
use kibitzer_sae::ops::{from_host, to_host};
use kibitzer_sae::saelens::{self, SaveOptions};
use kibitzer_sae::{Architecture, Params, RowNorm, Sae, SaeConfig};
use serde_json::{Map, Value, json};
use std::path::Path;

/// The config file of a saved dictionary.
pub const CFG_FILE: &str = "cfg.json";
/// A transcoder's weights (SAELens's name).
pub const TRANSCODER_WEIGHTS_FILE: &str = "sae_weights.safetensors";
/// A crosscoder's weights.
pub const CROSSCODER_WEIGHTS_FILE: &str = "crosscoder_weights.safetensors";
/// `format` of a kibitzer crosscoder directory.
pub const CROSSCODER_FORMAT: &str = "kibitzer-crosscoder";
/// `format` of a kibitzer TopK or gated transcoder directory.
pub const TRANSCODER_FORMAT: &str = "kibitzer-transcoder";
/// Version of the kibitzer layouts (transcoders, crosscoders, CLTs).
pub const FORMAT_VERSION: u64 = 1;

/// Writes `xcoder` (already for raw activations) to `dir`, with `metadata`
/// (a JSON object or null) merged into `cfg.json`'s `metadata`.
pub fn save(xcoder: &Xcoder, dir: impl AsRef<Path>, metadata: &Value) -> Result<(), XcoderError> {
    let dir = dir.as_ref();
    let mut meta = match metadata {
        Value::Null => Map::new(),
        Value::Object(m) => m.clone(),
        other => {
            return Err(XcoderError::config(
                "save metadata",
                format!("must be a JSON object or null, got {other}"),
            ));
        }
    };
    meta.insert("kibitzer_version".into(), json!(env!("CARGO_PKG_VERSION")));
    match xcoder {
        Xcoder::Transcoder(t) => {
            meta.insert("hook_name".into(), json!(t.input_site));
            meta.insert("hook_name_out".into(), json!(t.output_site));
            if matches!(
                t.sae.config.architecture,
                Architecture::TopK { .. } | Architecture::Gated
            ) {
                save_kibitzer_transcoder(t, dir, meta)
            } else {
                let options = SaveOptions {
                    metadata: Value::Object(meta),
                    ..Default::default()
                };
                Ok(saelens::save(&t.sae, dir, &options)?)
            }
        }
        Xcoder::Crosscoder(c) => save_crosscoder(c, dir, meta),
        Xcoder::Clt(c) => crate::clt::format::save(c, dir, meta),
    }
}

/// Reads a dictionary written by [`save`] (or an SAELens transcoder).
pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Xcoder, XcoderError> {
    let dir = dir.as_ref();
    let cfg_path = dir.join(CFG_FILE);
    // A CLT directory written by circuit-tracer has no cfg.json.
    if crate::clt::format::is_clt_dir(dir) {
        return crate::clt::format::load(dir, device).map(Xcoder::Clt);
    }
    let text = std::fs::read_to_string(&cfg_path).at_file(&cfg_path)?;
    let cfg: Value = serde_json::from_str(&text)
        .map_err(|e| FileError::new(&cfg_path, format!("not valid JSON: {e}")))?;
    if !cfg.is_object() {
        return Err(FileError::new(&cfg_path, "expected a JSON object").into());
    }
    if cfg.get("format").and_then(Value::as_str) == Some(CROSSCODER_FORMAT) {
        return load_crosscoder(dir, &cfg, device).map(Xcoder::Crosscoder);
    }
    if cfg.get("format").and_then(Value::as_str) == Some(TRANSCODER_FORMAT) {
        return load_kibitzer_transcoder(dir, &cfg, device).map(Xcoder::Transcoder);
    }
    let sae = saelens::load(dir, device)?;
    let (input, output) = sites(&cfg);
    Transcoder::from_sae(sae, input, output)
        .map(Xcoder::Transcoder)
        .map_err(|e| FileError::new(dir, format!("not a transcoder or crosscoder: {e}")).into())
}

/// Input and output sites from `metadata` (`"input"`, `"output"` when absent).
fn sites(cfg: &Value) -> (String, String) {
    let get = |k: &str, default: &str| {
        cfg.get("metadata")
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    (get("hook_name", "input"), get("hook_name_out", "output"))
}

fn host(name: &str, t: burn::tensor::Tensor<2>, bias: bool) -> HostTensor {
    let dims = t.dims();
    HostTensor {
        name: name.to_string(),
        shape: if bias { vec![dims[1]] } else { dims.to_vec() },
        data: to_host(t),
    }
}

/// Weights then config, each atomically.
fn write(
    dir: &Path,
    weights_file: &str,
    tensors: &[HostTensor],
    cfg: &Value,
) -> Result<(), XcoderError> {
    std::fs::create_dir_all(dir).at_file(dir)?;
    write_tensors(&dir.join(weights_file), tensors)?;
    write_cfg(dir, cfg)
}

/// `tensors` as an f32 safetensors file at `path`, atomically.
pub(crate) fn write_tensors(path: &Path, tensors: &[HostTensor]) -> Result<(), XcoderError> {
    let bytes = f32_safetensors(tensors, None).at_file(path)?;
    atomic_write(path, &bytes).map_err(|e| FileError::new(path, e).into())
}

/// `cfg` as `dir/cfg.json`, atomically: written last, it marks a complete
/// directory.
pub(crate) fn write_cfg(dir: &Path, cfg: &Value) -> Result<(), XcoderError> {
    let path = dir.join(CFG_FILE);
    let text = serde_json::to_string_pretty(cfg).expect("a serde_json::Value always serialises");
    atomic_write(&path, text.as_bytes()).map_err(|e| FileError::new(&path, e).into())
}

/// The `architecture` of a kibitzer transcoder directory: `{topk,
/// gated}_transcoder` or `{topk, gated}_skip_transcoder`.
fn kibitzer_transcoder_name(arch: &Architecture, skip: bool) -> String {
    let base = match arch {
        Architecture::Gated => "gated",
        _ => "topk",
    };
    format!("{base}_{}transcoder", if skip { "skip_" } else { "" })
}

/// A TopK or gated transcoder in kibitzer's layout (SAELens has neither).
fn save_kibitzer_transcoder(
    t: &Transcoder,
    dir: &Path,
    meta: Map<String, Value>,
) -> Result<(), XcoderError> {
    let c = &t.sae.config;
    let p = &t.sae.params;
    let mut tensors = vec![
        host("W_enc", p.w_enc.clone(), false),
        host("b_enc", p.b_enc.clone(), true),
        host("W_dec", p.w_dec.clone(), false),
        host("b_dec", p.b_dec.clone(), true),
    ];
    if let (Some(b_mag), Some(r_mag)) = (&p.b_mag, &p.r_mag) {
        tensors.push(host("b_mag", b_mag.clone(), true));
        tensors.push(host("r_mag", r_mag.clone(), true));
    }
    if let Some(w) = &p.w_skip {
        tensors.push(host("W_skip", w.clone(), false));
    }
    let mut cfg = json!({
        "format": TRANSCODER_FORMAT,
        "version": FORMAT_VERSION,
        "architecture": kibitzer_transcoder_name(&c.architecture, t.has_skip()),
        "d_in": c.d_in,
        "d_sae": c.d_sae,
        "d_out": c.d_out,
        "dtype": "float32",
        "apply_b_dec_to_input": false,
        "normalize_activations": "none",
        "metadata": meta,
    });
    if let Architecture::TopK { k } = c.architecture {
        cfg["k"] = json!(k);
    }
    write(dir, TRANSCODER_WEIGHTS_FILE, &tensors, &cfg)
}

fn save_crosscoder(
    c: &Crosscoder,
    dir: &Path,
    meta: Map<String, Value>,
) -> Result<(), XcoderError> {
    let p = &c.params;
    let mut tensors = vec![
        host("W_enc", p.w_enc.clone(), false),
        host("b_enc", p.b_enc.clone(), true),
        host("W_dec", p.w_dec.clone(), false),
        host("b_dec", p.b_dec.clone(), true),
    ];
    if let Some(t) = &p.threshold {
        tensors.push(host("threshold", t.clone(), true));
    }
    let mut cfg = json!({
        "format": CROSSCODER_FORMAT,
        "version": FORMAT_VERSION,
        "architecture": c.config.architecture.name(),
        "d_sae": c.config.d_sae,
        "blocks": c.config.blocks,
        "block_scales": c.block_scales,
        "dtype": "float32",
        "metadata": meta,
    });
    if let Architecture::TopK { k } | Architecture::BatchTopK { k } = c.config.architecture {
        cfg["k"] = json!(k);
    }
    write(dir, CROSSCODER_WEIGHTS_FILE, &tensors, &cfg)
}

/// Typed access to a config object, with errors naming the file and key.
pub(crate) struct Cfg<'a> {
    pub(crate) value: &'a Value,
    pub(crate) path: &'a Path,
}

impl Cfg<'_> {
    pub(crate) fn get(&self, key: &str) -> Result<&Value, XcoderError> {
        self.value.get(key).ok_or_else(|| {
            FileError::new(self.path, format!("required key `{key}` is missing")).into()
        })
    }
    pub(crate) fn usize(&self, key: &str) -> Result<usize, XcoderError> {
        self.get(key)?.as_u64().map(|v| v as usize).ok_or_else(|| {
            FileError::new(
                self.path,
                format!(
                    "key `{key}` must be a non-negative integer, found {}",
                    self.value[key]
                ),
            )
            .into()
        })
    }
    pub(crate) fn str(&self, key: &str) -> Result<&str, XcoderError> {
        self.get(key)?.as_str().ok_or_else(|| {
            FileError::new(
                self.path,
                format!("key `{key}` must be a string, found {}", self.value[key]),
            )
            .into()
        })
    }
    /// The `version` and `dtype` every kibitzer layout records.
    pub(crate) fn check_format(&self, format: &str) -> Result<(), XcoderError> {
        let version = self.usize("version")? as u64;
        if version != FORMAT_VERSION {
            return Err(FileError::new(
                self.path,
                format!(
                    "{format} version {version} is not supported (this build reads version {FORMAT_VERSION})"
                ),
            ).into());
        }
        let dtype = self.str("dtype")?;
        if !matches!(
            dtype,
            "float32" | "torch.float32" | "float16" | "bfloat16" | "float64"
        ) {
            return Err(FileError::new(
                self.path,
                format!("key `dtype` is {dtype:?}, expected a float type such as \"float32\""),
            )
            .into());
        }
        Ok(())
    }
}

/// One tensor a layout may hold.
struct Expected {
    name: &'static str,
    shape: Vec<usize>,
    required: bool,
}

fn need(name: &'static str, shape: Vec<usize>) -> Expected {
    Expected {
        name,
        shape,
        required: true,
    }
}

/// Reads the weights file: every tensor must be one of `expected`, with its
/// shape, and every required one present. Returns them in `expected` order
/// as kibitzer parameters (`[n]` biases become `[1, n]` rows), `None` for an
/// absent optional one.
fn read_tensors(
    path: &Path,
    expected: &[Expected],
    device: &Device,
) -> Result<Vec<Option<burn::tensor::Tensor<2>>>, XcoderError> {
    let bytes = std::fs::read(path).at_file(path)?;
    let (tensors, _) = read_f32_safetensors(&bytes).at_file(path)?;
    let names: Vec<&str> = expected.iter().map(|e| e.name).collect();
    if let Some(extra) = tensors.iter().find(|t| !names.contains(&t.name.as_str())) {
        return Err(FileError::new(
            path,
            format!(
                "unexpected tensor `{}` (this layout holds {names:?})",
                extra.name
            ),
        )
        .into());
    }
    expected
        .iter()
        .map(|e| {
            let Some(t) = tensors.iter().find(|t| t.name == e.name) else {
                return if e.required {
                    Err(FileError::new(
                        path,
                        format!(
                            "tensor `{}` is missing (this layout holds {names:?})",
                            e.name
                        ),
                    )
                    .into())
                } else {
                    Ok(None)
                };
            };
            if t.shape != e.shape {
                return Err(FileError::new(
                    path,
                    format!(
                        "tensor `{}` has shape {:?}, expected {:?}",
                        e.name, t.shape, e.shape
                    ),
                )
                .into());
            }
            let (r, c) = match e.shape[..] {
                [n] => (1, n),
                [r, c] => (r, c),
                _ => unreachable!("every expected tensor is 1-D or 2-D"),
            };
            Ok(Some(from_host(t.data.clone(), r, c, device)))
        })
        .collect()
}

/// The four tensors every layout has, then the optional ones in order.
fn params_from(
    mut t: Vec<Option<burn::tensor::Tensor<2>>>,
) -> (Params, Vec<Option<burn::tensor::Tensor<2>>>) {
    let rest = t.split_off(4);
    let mut it = t
        .into_iter()
        .map(|v| v.expect("the first four tensors are required, so present"));
    let mut next = || it.next().expect("split_off(4) left the first four tensors");
    let params = Params {
        w_enc: next(),
        b_enc: next(),
        w_dec: next(),
        b_dec: next(),
        threshold: None,
        b_mag: None,
        r_mag: None,
        w_skip: None,
    };
    (params, rest)
}

fn load_kibitzer_transcoder(
    dir: &Path,
    cfg: &Value,
    device: &Device,
) -> Result<Transcoder, XcoderError> {
    let cfg_path = dir.join(CFG_FILE);
    let c = Cfg {
        value: cfg,
        path: &cfg_path,
    };
    c.check_format(TRANSCODER_FORMAT)?;
    let (d_in, d_sae, d_out) = (c.usize("d_in")?, c.usize("d_sae")?, c.usize("d_out")?);
    let name = c.str("architecture")?;
    let (architecture, skip) = match name {
        "topk_transcoder" | "topk_skip_transcoder" => (
            Architecture::TopK { k: c.usize("k")? },
            name.contains("skip"),
        ),
        "gated_transcoder" | "gated_skip_transcoder" => {
            (Architecture::Gated, name.contains("skip"))
        }
        other => {
            return Err(FileError::new(
                &cfg_path,
                format!(
                    "key `architecture` is {other:?}; a {TRANSCODER_FORMAT} directory holds topk_transcoder, topk_skip_transcoder, gated_transcoder or gated_skip_transcoder"
                ),
            ).into());
        }
    };
    let gated = matches!(architecture, Architecture::Gated);
    let expected = [
        need("W_enc", vec![d_in, d_sae]),
        need("b_enc", vec![d_sae]),
        need("W_dec", vec![d_sae, d_out]),
        need("b_dec", vec![d_out]),
        Expected {
            name: "b_mag",
            shape: vec![d_sae],
            required: gated,
        },
        Expected {
            name: "r_mag",
            shape: vec![d_sae],
            required: gated,
        },
        Expected {
            name: "W_skip",
            shape: vec![d_out, d_in],
            required: skip,
        },
    ];
    let (mut params, rest) = params_from(read_tensors(
        &dir.join(TRANSCODER_WEIGHTS_FILE),
        &expected,
        device,
    )?);
    let mut rest = rest.into_iter();
    params.b_mag = rest.next().flatten();
    params.r_mag = rest.next().flatten();
    params.w_skip = rest.next().flatten();
    if params.w_skip.is_some() != skip {
        return Err(FileError::new(
            dir.join(TRANSCODER_WEIGHTS_FILE),
            format!(
                "tensor `W_skip` is present but the architecture is {name} (use {})",
                kibitzer_transcoder_name(&architecture, true)
            ),
        )
        .into());
    }
    if !gated && (params.b_mag.is_some() || params.r_mag.is_some()) {
        return Err(FileError::new(
            dir.join(TRANSCODER_WEIGHTS_FILE),
            format!("tensors `b_mag` and `r_mag` belong to gated transcoders, not {name}"),
        )
        .into());
    }
    let k = match architecture {
        Architecture::TopK { k } => Some(k),
        _ => None,
    };
    let sae = Sae {
        config: SaeConfig {
            architecture,
            d_in,
            d_sae,
            d_out,
            apply_b_dec_to_input: false,
            rescale_acts_by_decoder_norm: false,
            row_norm: RowNorm::None,
        },
        params,
    };
    let (input, output) = sites(cfg);
    let t = Transcoder::from_sae(sae, input, output)?;
    let xc = Xcoder::Transcoder(t.clone());
    xc.check_shapes().at_file(dir)?;
    if let Some(k) = k
        && (k == 0 || k > d_sae)
    {
        return Err(FileError::new(
            &cfg_path,
            format!("key `k` is {k}, expected 1..={d_sae} (d_sae)"),
        )
        .into());
    }
    Ok(t)
}

fn load_crosscoder(dir: &Path, cfg: &Value, device: &Device) -> Result<Crosscoder, XcoderError> {
    let cfg_path = dir.join(CFG_FILE);
    let c = Cfg {
        value: cfg,
        path: &cfg_path,
    };
    c.check_format(CROSSCODER_FORMAT)?;
    let d_sae = c.usize("d_sae")?;
    let blocks: Vec<Block> = serde_json::from_value(c.get("blocks")?.clone()).map_err(|e| {
        FileError::new(
            &cfg_path,
            format!("key `blocks` must be a list of {{name, width}}: {e}"),
        )
    })?;
    let architecture = match c.str("architecture")? {
        "standard" => Architecture::Standard,
        "topk" => Architecture::TopK { k: c.usize("k")? },
        "batchtopk" => Architecture::BatchTopK { k: c.usize("k")? },
        other => {
            return Err(FileError::new(
                &cfg_path,
                format!(
                    "key `architecture` is {other:?}, expected \"standard\", \"topk\" or \"batchtopk\""
                ),
            ).into());
        }
    };
    let config = CrosscoderConfig {
        architecture,
        blocks,
        d_sae,
    };
    config.validate().at_file(&cfg_path)?;
    let block_scales: Vec<f32> =
        serde_json::from_value(c.get("block_scales")?.clone()).map_err(|e| {
            FileError::new(
                &cfg_path,
                format!("key `block_scales` must be a list of numbers: {e}"),
            )
        })?;
    if block_scales.len() != config.blocks.len()
        || block_scales.iter().any(|v| !(v.is_finite() && *v > 0.0))
    {
        return Err(FileError::new(
            &cfg_path,
            format!(
                "key `block_scales` must hold {} positive numbers, found {block_scales:?}",
                config.blocks.len()
            ),
        )
        .into());
    }
    let width = config.width();
    let weights = dir.join(CROSSCODER_WEIGHTS_FILE);
    let expected = [
        need("W_enc", vec![width, d_sae]),
        need("b_enc", vec![d_sae]),
        need("W_dec", vec![d_sae, width]),
        need("b_dec", vec![width]),
        // BatchTopK only, and only once its threshold has been estimated.
        Expected {
            name: "threshold",
            shape: vec![d_sae],
            required: false,
        },
    ];
    let (mut params, rest) = params_from(read_tensors(&weights, &expected, device)?);
    params.threshold = rest.into_iter().next().flatten();
    if params.threshold.is_some() && !matches!(config.architecture, Architecture::BatchTopK { .. })
    {
        return Err(FileError::new(
            &weights,
            format!(
                "tensor `threshold` is present but a {} crosscoder has none",
                config.architecture.name()
            ),
        )
        .into());
    }
    Ok(Crosscoder {
        config,
        params,
        block_scales,
    })
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::xcoder::XcoderConfig;
    use crate::{CrosscoderConfig, TranscoderConfig};
    use burn::tensor::Tensor;
    use kibitzer_sae::dictionary::Dictionary;
    use kibitzer_sae::ops::row_from_host;
    use std::path::PathBuf;

    fn dev() -> Device {
        Device::flex()
    }

    /// Non-zero biases and thresholds, so that a dropped tensor shows.
    fn perturbed(mut x: Xcoder, seed: u64) -> Xcoder {
        let p = x.params_mut();
        let bump = |t: &Tensor<2>, by: f32| t.clone().add_scalar(by) * t.clone().cos();
        p.b_enc = bump(&p.b_enc, 0.1 + seed as f32 * 0.01);
        p.b_dec = bump(&p.b_dec, -0.2);
        p.w_skip = p.w_skip.as_ref().map(|w| bump(w, 0.05));
        if let Some(t) = &p.threshold {
            p.threshold = Some(t.clone().add_scalar(0.3));
        }
        x
    }

    fn transcoders() -> Vec<Xcoder> {
        let mut out = Vec::new();
        for (i, (arch, skip)) in [
            (Architecture::Standard, false),
            (Architecture::Standard, true),
            (Architecture::JumpRelu { bandwidth: 0.01 }, true),
            (Architecture::TopK { k: 3 }, false),
            (Architecture::TopK { k: 3 }, true),
            (Architecture::BatchTopK { k: 2 }, false),
            (Architecture::BatchTopK { k: 2 }, true),
            (Architecture::Gated, false),
            (Architecture::Gated, true),
        ]
        .into_iter()
        .enumerate()
        {
            let config = XcoderConfig::Transcoder(TranscoderConfig {
                architecture: arch.clone(),
                input_site: "blocks.1.ln2.hook_normalized".into(),
                d_in: 6,
                output_site: "blocks.1.hook_mlp_out".into(),
                d_out: if i % 2 == 0 { 6 } else { 5 },
                d_sae: 12,
                skip,
            });
            let mut x = config.init(i as u64, &dev()).unwrap();
            if matches!(arch, Architecture::BatchTopK { .. }) {
                x.params_mut().threshold = Some(row_from_host(vec![0.25; 12], &dev()));
            }
            out.push(perturbed(x, i as u64));
        }
        out
    }

    fn crosscoders() -> Vec<Xcoder> {
        let blocks = vec![
            Block::new("blocks.0.hook_resid_post", 4),
            Block::new("blocks.1.hook_resid_post", 3),
        ];
        let mut out = Vec::new();
        for (i, arch) in [
            Architecture::Standard,
            Architecture::TopK { k: 2 },
            Architecture::BatchTopK { k: 2 },
        ]
        .into_iter()
        .enumerate()
        {
            let config = XcoderConfig::Crosscoder(CrosscoderConfig {
                architecture: arch.clone(),
                blocks: blocks.clone(),
                d_sae: 10,
            });
            let mut x = config.init(10 + i as u64, &dev()).unwrap();
            if let Xcoder::Crosscoder(c) = &mut x {
                if !matches!(arch, Architecture::Standard) {
                    c.block_scales = vec![2.0, 0.5];
                }
                if matches!(arch, Architecture::BatchTopK { .. }) {
                    c.params.threshold = Some(row_from_host(vec![0.1; 10], &dev()));
                }
            }
            out.push(perturbed(x, i as u64));
        }
        out
    }

    #[test]
    fn save_then_load_is_the_identity() {
        let tmp = tempfile::tempdir().unwrap();
        let x = Tensor::<2>::from_data(
            burn::tensor::TensorData::new(
                (0..42)
                    .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3)
                    .collect::<Vec<f32>>(),
                [6, 7],
            ),
            &dev(),
        );
        for (i, xc) in transcoders().into_iter().chain(crosscoders()).enumerate() {
            let dir = tmp.path().join(format!("d{i}"));
            save(&xc, &dir, &json!({"model_name": "othello-gpt"})).unwrap();
            let back = load(&dir, &dev()).unwrap();
            assert_eq!(back.config(), xc.config(), "config of {:?}", xc.config());
            assert_eq!(back.row_scales(), xc.row_scales());
            let (a, b) = (xc.params().named(), back.params().named());
            assert_eq!(a.len(), b.len(), "{:?}", xc.config());
            for ((name, s), (name2, t)) in a.into_iter().zip(b) {
                assert_eq!(name, name2);
                assert_eq!(to_host(s), to_host(t), "{name} of {:?}", xc.config());
            }
            let input = x.clone().narrow(1, 0, xc.d_in());
            // Equal weights; the products may round differently (a transposed
            // view against a contiguous copy), so compare to rounding.
            let (f1, f2) = (xc.forward(input.clone()), back.forward(input));
            for (a, b) in to_host(f1.reconstruction)
                .iter()
                .zip(to_host(f2.reconstruction))
            {
                assert!((a - b).abs() <= 1e-6 * (1.0 + a.abs()), "{a} vs {b}");
            }
            let cfg: Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join(CFG_FILE)).unwrap())
                    .unwrap();
            assert_eq!(cfg["metadata"]["model_name"], "othello-gpt");
        }
    }

    #[test]
    fn transcoders_use_saelens_architecture_names() {
        let tmp = tempfile::tempdir().unwrap();
        let names: Vec<String> = transcoders()
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let dir = tmp.path().join(format!("t{i}"));
                save(t, &dir, &Value::Null).unwrap();
                let cfg: Value =
                    serde_json::from_str(&std::fs::read_to_string(dir.join(CFG_FILE)).unwrap())
                        .unwrap();
                assert_eq!(cfg["metadata"]["hook_name_out"], "blocks.1.hook_mlp_out");
                assert_eq!(cfg["apply_b_dec_to_input"], false);
                cfg["architecture"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "transcoder",
                "skip_transcoder",
                "jumprelu_skip_transcoder",
                "topk_transcoder",
                "topk_skip_transcoder",
                "jumprelu_transcoder",
                "jumprelu_skip_transcoder",
                "gated_transcoder",
                "gated_skip_transcoder"
            ]
        );
    }

    fn fixtures() -> PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/saelens");
        assert!(
            dir.join("FORMAT.md").is_file(),
            "SAELens fixtures not found at {}",
            dir.display()
        );
        dir
    }

    #[test]
    fn saelens_transcoder_fixtures_load_and_predict_like_saelens() {
        for name in ["transcoder", "skip_transcoder", "jumprelu_transcoder"] {
            let dir = fixtures().join(name);
            let xc = load(&dir, &dev()).unwrap();
            assert_eq!(xc.kind(), crate::Kind::Transcoder);
            let (tensors, _) =
                read_f32_safetensors(&std::fs::read(dir.join("io.safetensors")).unwrap()).unwrap();
            let get = |n: &str| tensors.iter().find(|t| t.name == n).unwrap();
            let (x, f, y) = (get("x"), get("feature_acts"), get("x_hat"));
            let out = xc.forward(from_host(x.data.clone(), x.shape[0], x.shape[1], &dev()));
            for (what, got, want) in [
                ("features", out.features, f),
                ("x_hat", out.reconstruction, y),
            ] {
                for (a, b) in to_host(got).iter().zip(&want.data) {
                    assert!((a - b).abs() < 1e-4, "{name} {what}: {a} vs {b}");
                }
            }
        }
        // An autoencoder is not a transcoder.
        let err = load(fixtures().join("standard"), &dev())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a transcoder"), "{err}");
    }

    #[test]
    fn damaged_files_are_refused_naming_file_and_field() {
        let tmp = tempfile::tempdir().unwrap();
        let cc = crosscoders().remove(2);
        let dir = tmp.path().join("cc");
        save(&cc, &dir, &Value::Null).unwrap();
        let cfg_path = dir.join(CFG_FILE);
        let original = std::fs::read_to_string(&cfg_path).unwrap();
        let edit = |f: &dyn Fn(&mut Value)| {
            let mut v: Value = serde_json::from_str(&original).unwrap();
            f(&mut v);
            std::fs::write(&cfg_path, serde_json::to_string(&v).unwrap()).unwrap();
            load(&dir, &dev()).unwrap_err().to_string()
        };
        let err = edit(&|v| v["version"] = json!(2));
        assert!(
            err.contains("version 2") && err.contains("cfg.json"),
            "{err}"
        );
        let err = edit(&|v| v["architecture"] = json!("gated"));
        assert!(
            err.contains("`architecture`") && err.contains("gated"),
            "{err}"
        );
        let err = edit(&|v| v["block_scales"] = json!([1.0]));
        assert!(err.contains("block_scales"), "{err}");
        let err = edit(&|v| v["blocks"][1]["width"] = json!(4));
        assert!(err.contains("W_enc") && err.contains("[8, 10]"), "{err}");
        let err = edit(&|v| {
            v.as_object_mut().unwrap().remove("d_sae");
        });
        assert!(err.contains("`d_sae` is missing"), "{err}");
        std::fs::write(&cfg_path, &original).unwrap();
        // A weights file with an extra tensor.
        let weights = dir.join(CROSSCODER_WEIGHTS_FILE);
        let (mut tensors, _) = read_f32_safetensors(&std::fs::read(&weights).unwrap()).unwrap();
        tensors.push(HostTensor {
            name: "W_skip".into(),
            shape: vec![1],
            data: vec![0.0],
        });
        std::fs::write(&weights, f32_safetensors(&tensors, None).unwrap()).unwrap();
        let err = load(&dir, &dev()).unwrap_err().to_string();
        assert!(
            err.contains("unexpected tensor `W_skip`") && err.contains(CROSSCODER_WEIGHTS_FILE),
            "{err}"
        );
        tensors.pop();
        tensors.retain(|t| t.name != "b_dec");
        std::fs::write(&weights, f32_safetensors(&tensors, None).unwrap()).unwrap();
        let err = load(&dir, &dev()).unwrap_err().to_string();
        assert!(err.contains("`b_dec` is missing"), "{err}");
        assert!(
            load(tmp.path().join("nothing"), &dev())
                .unwrap_err()
                .to_string()
                .contains("cfg.json")
        );
    }
}
