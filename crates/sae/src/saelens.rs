//! SAELens-compatible files: a directory with `cfg.json` and
//! `sae_weights.safetensors` that `sae_lens.SAE.load_from_disk` (sae-lens 6.x)
//! loads, and a loader for the directories SAELens writes.
//!
//! The layout follows `shared/fixtures/saelens/FORMAT.md` (read from the
//! source of sae-lens 6.54.12 and checked against it):
//!
//! | kibitzer [`Sae`] | SAELens `architecture` | tensors |
//! |---|---|---|
//! | `Standard` | `standard` | `W_enc`, `b_enc`, `W_dec`, `b_dec` |
//! | `Gated` | `gated` | `W_enc`, `b_gate` (our `b_enc`), `b_mag`, `r_mag`, `W_dec`, `b_dec` |
//! | `TopK { k }` | `topk` (+ `k`, `rescale_acts_by_decoder_norm`) | standard four |
//! | `JumpRelu` | `jumprelu` | standard four + `threshold` |
//! | `BatchTopK { k }` with its global threshold | `jumprelu`, `metadata.training_architecture = "batchtopk"` (`"matryoshka_batchtopk"` with `matryoshka_widths` when the recorded training config has them) | standard four + `threshold` |
//! | `Standard`, transcoder | `transcoder` / `skip_transcoder` (+ `d_out`) | `W_dec [d_sae, d_out]`, `b_dec [d_out]` (+ `W_skip [d_out, d_in]`) |
//! | `JumpRelu` or `BatchTopK`, transcoder | `jumprelu_transcoder` / `jumprelu_skip_transcoder` | as above + `threshold` |
//!
//! An [`Sae`] is saved as a transcoder when `d_out != d_in`, when it has a
//! `W_skip`, or when the caller's metadata names an output hook
//! (`hook_name_out`, SAELens's own metadata key for transcoders); otherwise a
//! dictionary with `d_out == d_in` is an autoencoder, and one that does not
//! subtract `b_dec` from its input is written as such
//! (`apply_b_dec_to_input: false`), which SAELens computes identically.
//!
//! Biases are stored as 1-D `[n]` tensors (kibitzer keeps `[1, n]` rows).
//! Training-only settings SAELens has no field for (the JumpReLU bandwidth,
//! BatchTopK's `k`) go to `metadata.training_architecture_details`, where
//! SAELens's own trainer puts them, so that saving and loading again gives back
//! the same [`SaeConfig`].

use crate::arch::Architecture;
use crate::io::{HostTensor, atomic_write, read_f32_safetensors};
use crate::ops::{from_host, to_host};
use crate::sae::{Params, RowNorm, Sae, SaeConfig};
use burn::tensor::Device;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// Name of the config file in an SAE directory.
pub const CFG_FILE: &str = "cfg.json";
/// Name of the weights file in an SAE directory.
pub const WEIGHTS_FILE: &str = "sae_weights.safetensors";
/// `metadata.sae_lens_version` written by [`save`]: a PEP 440 version of at
/// least 6.0.0rc0 makes SAELens read the file with its version-6 rules
/// (kibitzer's own version goes to `metadata.kibitzer_version`, because a
/// non-PEP 440 string there makes SAELens raise `InvalidVersion`).
pub const SAELENS_VERSION: &str = "6.0.0";
/// JumpReLU bandwidth given to a loaded JumpReLU SAE whose metadata does not
/// record one (the paper's value; it matters only for further training).
pub const DEFAULT_JUMPRELU_BANDWIDTH: f64 = 0.001;
/// SAELens architectures this module reads and writes.
pub const SUPPORTED_ARCHITECTURES: [&str; 8] = [
    "standard",
    "gated",
    "topk",
    "jumprelu",
    "transcoder",
    "skip_transcoder",
    "jumprelu_transcoder",
    "jumprelu_skip_transcoder",
];
/// `dtype` values SAELens accepts (its `DTYPE_MAP`).
const DTYPES: [&str; 8] = [
    "float32",
    "float64",
    "float16",
    "bfloat16",
    "torch.float32",
    "torch.float64",
    "torch.float16",
    "torch.bfloat16",
];
/// SAELens's default `k` for a `topk` config without one.
const DEFAULT_TOPK_K: u64 = 100;
/// SAELens's default `d_out` for a transcoder config without one.
const DEFAULT_TRANSCODER_D_OUT: u64 = 768;

/// Floating-point type of the saved tensors (`cfg.json`'s `dtype`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SaveDtype {
    /// 32-bit floats, bit-exact.
    #[default]
    Float32,
    /// IEEE half precision (round to nearest even).
    Float16,
    /// bfloat16 (round to nearest even).
    BFloat16,
}

impl SaveDtype {
    /// The name written to `cfg.json`.
    pub fn cfg_name(self) -> &'static str {
        match self {
            SaveDtype::Float32 => "float32",
            SaveDtype::Float16 => "float16",
            SaveDtype::BFloat16 => "bfloat16",
        }
    }

    fn safetensors(self) -> safetensors::Dtype {
        match self {
            SaveDtype::Float32 => safetensors::Dtype::F32,
            SaveDtype::Float16 => safetensors::Dtype::F16,
            SaveDtype::BFloat16 => safetensors::Dtype::BF16,
        }
    }

    /// Little-endian bytes of `values` in this type.
    fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            SaveDtype::Float32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            SaveDtype::Float16 => values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
            SaveDtype::BFloat16 => values
                .iter()
                .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                .collect(),
        }
    }
}

/// How [`save`] writes a directory.
#[derive(Clone, Debug, Default)]
pub struct SaveOptions {
    /// Type of the stored tensors.
    pub dtype: SaveDtype,
    /// Extra entries for `cfg.json`'s `metadata` object (`model_name`,
    /// `hook_name`, `hook_name_out`, `context_size`, training settings, ...):
    /// a JSON object, or `null` for none. `sae_lens_version`,
    /// `kibitzer_version` and, for JumpReLU and BatchTopK, the
    /// `training_architecture` entries are set by [`save`] and override
    /// values given here.
    pub metadata: Value,
}

/// Why an SAE directory could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SaeLensError {
    /// Reading a file or creating the directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Writing a file failed (the message names the file).
    #[error(transparent)]
    Write(#[from] kibitzer_store::StoreError),
    /// `cfg.json` is not valid JSON, or not a JSON object.
    #[error("{}: not a valid SAELens config: {message}", path.display())]
    Json {
        /// The config file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A required config key is absent.
    #[error("{}: required key `{key}` is missing", path.display())]
    MissingKey {
        /// The config file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// A config key has a value of the wrong type or outside its range.
    #[error("{}: key `{key}` is {found}, expected {expected}", path.display())]
    InvalidValue {
        /// The config file.
        path: PathBuf,
        /// The key (dotted for nested keys).
        key: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// `architecture` names no architecture this module handles.
    #[error(
        "{}: unknown SAE architecture {architecture:?}; supported: {}",
        path.display(),
        SUPPORTED_ARCHITECTURES.join(", ")
    )]
    UnknownArchitecture {
        /// The config file.
        path: PathBuf,
        /// The name found.
        architecture: String,
    },
    /// The weights file could not be parsed.
    #[error("{}: {message}", path.display())]
    Safetensors {
        /// The weights file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A tensor the architecture needs is absent.
    #[error(
        "{}: tensor `{tensor}` is missing (architecture {architecture} needs {})",
        path.display(),
        expected.join(", ")
    )]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// The absent tensor.
        tensor: String,
        /// The SAELens architecture.
        architecture: String,
        /// Every tensor the architecture needs.
        expected: Vec<String>,
    },
    /// A tensor the architecture does not have is present (SAELens loads
    /// strictly and refuses it).
    #[error(
        "{}: unexpected tensor `{tensor}` (architecture {architecture} has exactly {})",
        path.display(),
        expected.join(", ")
    )]
    ExtraTensor {
        /// The weights file.
        path: PathBuf,
        /// The unexpected tensor.
        tensor: String,
        /// The SAELens architecture.
        architecture: String,
        /// Every tensor the architecture has.
        expected: Vec<String>,
    },
    /// A tensor's shape disagrees with `d_in` / `d_sae` / `d_out`.
    #[error(
        "{}: tensor `{tensor}` has shape {found:?}, expected {expected:?} ({dims})",
        path.display()
    )]
    Shape {
        /// The weights file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
        /// The config's widths, for the message.
        dims: String,
    },
    /// A tensor holds NaN or an infinity: such a dictionary would evaluate
    /// to NaN metrics, so it is refused on load.
    #[error(
        "{}: tensor `{tensor}` holds a non-finite value ({value} at flat index {index}); the weights are corrupt or the training run diverged",
        path.display()
    )]
    NonFinite {
        /// The weights file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The first non-finite value.
        value: f32,
        /// Its row-major index in the tensor.
        index: usize,
    },
    /// A legacy `scaling_factor` tensor that is not all ones (SAELens refuses
    /// it too; such an SAE needs its factor folded into the weights first).
    #[error(
        "{}: tensor `scaling_factor` is not all ones (found {found}); fold it into the weights before loading",
        path.display()
    )]
    ScalingFactor {
        /// The weights file.
        path: PathBuf,
        /// The first value that is not one.
        found: f32,
    },
    /// The config is valid for SAELens but describes something kibitzer's
    /// [`Sae`] cannot represent.
    #[error("{}: {reason}", path.display())]
    Unsupported {
        /// The config file.
        path: PathBuf,
        /// What cannot be represented.
        reason: String,
    },
    /// The in-memory [`Sae`] cannot be written in SAELens's format.
    #[error("cannot save to {}: {reason}", dir.display())]
    NotSaveable {
        /// The directory asked for.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
}

/// SAELens's architectures, each with its exact set of tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    Standard,
    Gated,
    TopK,
    JumpRelu,
    Transcoder,
    SkipTranscoder,
    JumpReluTranscoder,
    JumpReluSkipTranscoder,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Standard => "standard",
            Layout::Gated => "gated",
            Layout::TopK => "topk",
            Layout::JumpRelu => "jumprelu",
            Layout::Transcoder => "transcoder",
            Layout::SkipTranscoder => "skip_transcoder",
            Layout::JumpReluTranscoder => "jumprelu_transcoder",
            Layout::JumpReluSkipTranscoder => "jumprelu_skip_transcoder",
        }
    }

    fn from_name(name: &str) -> Option<Layout> {
        [
            Layout::Standard,
            Layout::Gated,
            Layout::TopK,
            Layout::JumpRelu,
            Layout::Transcoder,
            Layout::SkipTranscoder,
            Layout::JumpReluTranscoder,
            Layout::JumpReluSkipTranscoder,
        ]
        .into_iter()
        .find(|l| l.name() == name)
    }

    fn is_transcoder(self) -> bool {
        matches!(
            self,
            Layout::Transcoder
                | Layout::SkipTranscoder
                | Layout::JumpReluTranscoder
                | Layout::JumpReluSkipTranscoder
        )
    }

    fn has_threshold(self) -> bool {
        matches!(
            self,
            Layout::JumpRelu | Layout::JumpReluTranscoder | Layout::JumpReluSkipTranscoder
        )
    }

    fn has_skip(self) -> bool {
        matches!(
            self,
            Layout::SkipTranscoder | Layout::JumpReluSkipTranscoder
        )
    }

    /// The tensors of this architecture: SAELens name, kibitzer parameter
    /// name, and shape in the file.
    fn tensors(self, d_in: usize, d_sae: usize, d_out: usize) -> Vec<TensorSpec> {
        let spec = |file: &'static str, param: &'static str, shape: Vec<usize>| TensorSpec {
            file,
            param,
            shape,
        };
        let mut out = vec![spec("W_enc", "w_enc", vec![d_in, d_sae])];
        if self == Layout::Gated {
            out.push(spec("b_gate", "b_enc", vec![d_sae]));
            out.push(spec("b_mag", "b_mag", vec![d_sae]));
            out.push(spec("r_mag", "r_mag", vec![d_sae]));
        } else {
            out.push(spec("b_enc", "b_enc", vec![d_sae]));
        }
        out.push(spec("W_dec", "w_dec", vec![d_sae, d_out]));
        out.push(spec("b_dec", "b_dec", vec![d_out]));
        if self.has_threshold() {
            out.push(spec("threshold", "threshold", vec![d_sae]));
        }
        if self.has_skip() {
            out.push(spec("W_skip", "w_skip", vec![d_out, d_in]));
        }
        out
    }
}

/// One tensor of a [`Layout`].
struct TensorSpec {
    /// Name in `sae_weights.safetensors`.
    file: &'static str,
    /// Name in [`Params::named`].
    param: &'static str,
    /// Shape in the file (biases 1-D).
    shape: Vec<usize>,
}

impl TensorSpec {
    /// Shape of the kibitzer parameter: 1-D file tensors are `[1, n]` rows.
    fn param_shape(&self) -> [usize; 2] {
        match self.shape[..] {
            [n] => [1, n],
            [r, c] => [r, c],
            _ => unreachable!("every SAELens tensor is 1-D or 2-D"),
        }
    }
}

fn row_norm_name(row_norm: RowNorm) -> &'static str {
    match row_norm {
        RowNorm::None => "none",
        RowNorm::ConstantNormRescale => "constant_norm_rescale",
        RowNorm::LayerNorm => "layer_norm",
    }
}

/// Writes `sae` to `dir` (created if needed) as `sae_weights.safetensors`
/// and then `cfg.json`, each atomically, in the layout `SAE.load_from_disk`
/// of sae-lens 6 reads (see the module documentation for the mapping).
///
/// Errors, before anything is written, when SAELens has no architecture for
/// the dictionary (a gated or TopK transcoder, a transcoder that subtracts
/// `b_dec` from its input or normalises rows), when a BatchTopK SAE has no
/// estimated inference threshold, when a JumpReLU SAE has no threshold, when
/// a parameter's shape disagrees with the config, or when
/// `options.metadata` is neither an object nor `null`.
pub fn save(sae: &Sae, dir: impl AsRef<Path>, options: &SaveOptions) -> Result<(), SaeLensError> {
    let dir = dir.as_ref();
    let not_saveable = |reason: String| SaeLensError::NotSaveable {
        dir: dir.to_path_buf(),
        reason,
    };
    let user_metadata = match &options.metadata {
        Value::Null => Map::new(),
        Value::Object(m) => m.clone(),
        other => {
            return Err(not_saveable(format!(
                "SaveOptions::metadata must be a JSON object or null, got {}",
                json_kind(other)
            )));
        }
    };
    let c = &sae.config;
    let layout = save_layout(sae, &user_metadata).map_err(not_saveable)?;
    let specs = layout.tensors(c.d_in, c.d_sae, c.d_out);

    // Check the parameter set matches the architecture exactly, so that the
    // file passes SAELens's strict load.
    let mut named = sae.params.named();
    let mut tensors = Vec::with_capacity(specs.len());
    for spec in &specs {
        let Some(i) = named.iter().position(|(n, _)| *n == spec.param) else {
            return Err(not_saveable(match (spec.param, &c.architecture) {
                ("threshold", Architecture::BatchTopK { .. }) => {
                    "this BatchTopK SAE has no estimated inference threshold (params.threshold is None); \
                     SAELens stores BatchTopK as a JumpReLU with the global threshold learnt in training"
                        .to_string()
                }
                (param, _) => format!(
                    "a {} SAE needs parameter `{param}`, which is absent",
                    c.architecture.name()
                ),
            }));
        };
        let (_, t) = named.swap_remove(i);
        let expected = spec.param_shape();
        if t.dims() != expected {
            return Err(not_saveable(format!(
                "parameter `{}` has shape {:?}, expected {:?} (d_in = {}, d_sae = {}, d_out = {})",
                spec.param,
                t.dims(),
                expected,
                c.d_in,
                c.d_sae,
                c.d_out
            )));
        }
        tensors.push((spec.file, spec.shape.clone(), to_host(t)));
    }
    if let Some((name, _)) = named.first() {
        return Err(not_saveable(format!(
            "parameter `{name}` has no place in SAELens's `{}` architecture",
            layout.name()
        )));
    }

    let cfg = cfg_json(sae, layout, options.dtype, user_metadata);
    let weights = encode_safetensors(&tensors, options.dtype).map_err(not_saveable)?;
    let cfg_text =
        serde_json::to_string_pretty(&cfg).expect("a serde_json::Value always serialises");

    std::fs::create_dir_all(dir).map_err(|source| SaeLensError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    // Weights first: a reader that finds cfg.json finds matching weights.
    for (name, bytes) in [(WEIGHTS_FILE, weights), (CFG_FILE, cfg_text.into_bytes())] {
        atomic_write(&dir.join(name), &bytes)?;
    }
    Ok(())
}

/// The SAELens architecture `sae` is written as, or why there is none.
fn save_layout(sae: &Sae, metadata: &Map<String, Value>) -> Result<Layout, String> {
    let c = &sae.config;
    let skip = sae.params.w_skip.is_some();
    let transcoder = c.d_out != c.d_in || skip || metadata.contains_key("hook_name_out");
    if transcoder {
        if c.apply_b_dec_to_input {
            return Err(format!(
                "SAELens transcoders never subtract b_dec from the input, but this dictionary \
                 (d_in = {}, d_out = {}) has apply_b_dec_to_input = true",
                c.d_in, c.d_out
            ));
        }
        if c.row_norm != RowNorm::None {
            return Err(format!(
                "SAELens transcoders normalise the input but never de-normalise the output, \
                 so a transcoder with row_norm {} would compute something else there",
                row_norm_name(c.row_norm)
            ));
        }
    }
    Ok(match (&c.architecture, transcoder, skip) {
        (Architecture::Standard, false, _) => Layout::Standard,
        (Architecture::Standard, true, false) => Layout::Transcoder,
        (Architecture::Standard, true, true) => Layout::SkipTranscoder,
        (Architecture::Gated, false, _) => Layout::Gated,
        (Architecture::TopK { .. }, false, _) => Layout::TopK,
        (Architecture::JumpRelu { .. } | Architecture::BatchTopK { .. }, false, _) => {
            Layout::JumpRelu
        }
        (Architecture::JumpRelu { .. } | Architecture::BatchTopK { .. }, true, false) => {
            Layout::JumpReluTranscoder
        }
        (Architecture::JumpRelu { .. } | Architecture::BatchTopK { .. }, true, true) => {
            Layout::JumpReluSkipTranscoder
        }
        (arch @ (Architecture::Gated | Architecture::TopK { .. }), true, _) => {
            return Err(format!(
                "SAELens has no {} transcoder (d_in = {}, d_out = {}, W_skip {}); its transcoders are \
                 transcoder, skip_transcoder, jumprelu_transcoder and jumprelu_skip_transcoder",
                arch.name(),
                c.d_in,
                c.d_out,
                if skip { "present" } else { "absent" }
            ));
        }
    })
}

/// The `cfg.json` object for `sae`.
fn cfg_json(
    sae: &Sae,
    layout: Layout,
    dtype: SaveDtype,
    mut metadata: Map<String, Value>,
) -> Value {
    let c = &sae.config;
    metadata.insert("sae_lens_version".into(), json!(SAELENS_VERSION));
    metadata
        .entry("sae_lens_training_version")
        .or_insert(Value::Null);
    metadata.insert("kibitzer_version".into(), json!(env!("CARGO_PKG_VERSION")));
    match &c.architecture {
        Architecture::JumpRelu { bandwidth } => training_details(
            &mut metadata,
            "jumprelu",
            json!({ "jumprelu_bandwidth": bandwidth }),
        ),
        Architecture::BatchTopK { k } => {
            // A Matryoshka BatchTopK saves the same way under its own
            // training name, with SAELens's `matryoshka_widths` (the
            // levels, d_sae last), read from the training config the
            // caller records (kibitzer's sweeps: `training_config`).
            let widths = metadata
                .get("training_config")
                .and_then(|t| t.get("matryoshka_widths"))
                .and_then(Value::as_array)
                .map(|w| {
                    let mut levels: Vec<u64> = w
                        .iter()
                        .filter_map(Value::as_u64)
                        .filter(|&x| x < c.d_sae as u64)
                        .collect();
                    levels.push(c.d_sae as u64);
                    levels
                });
            let mut details =
                json!({ "k": k, "rescale_acts_by_decoder_norm": c.rescale_acts_by_decoder_norm });
            let name = match widths {
                Some(levels) => {
                    details["matryoshka_widths"] = json!(levels);
                    "matryoshka_batchtopk"
                }
                None => "batchtopk",
            };
            training_details(&mut metadata, name, details)
        }
        _ => {}
    }
    let mut cfg = json!({
        "architecture": layout.name(),
        "d_in": c.d_in,
        "d_sae": c.d_sae,
        "dtype": dtype.cfg_name(),
        "device": "cpu",
        "apply_b_dec_to_input": c.apply_b_dec_to_input && !layout.is_transcoder(),
        "normalize_activations": row_norm_name(c.row_norm),
        "reshape_activations": "none",
        "metadata": metadata,
    });
    let obj = cfg
        .as_object_mut()
        .expect("the json! literal above is an object");
    if let Architecture::TopK { k } = c.architecture {
        obj.insert("k".into(), json!(k));
        obj.insert(
            "rescale_acts_by_decoder_norm".into(),
            json!(c.rescale_acts_by_decoder_norm),
        );
    }
    if layout.is_transcoder() {
        obj.insert("d_out".into(), json!(c.d_out));
    }
    cfg
}

/// Records the training architecture in `metadata` as SAELens's trainer does,
/// merging `details` into any `training_architecture_details` the caller gave.
fn training_details(metadata: &mut Map<String, Value>, name: &str, details: Value) {
    metadata.insert("training_architecture".into(), json!(name));
    let entry = metadata
        .entry("training_architecture_details")
        .or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    if let (Value::Object(into), Value::Object(from)) = (entry, details) {
        into.extend(from);
    }
}

/// safetensors bytes of `(name, shape, values)` stored as `dtype`, without
/// `__metadata__` (SAELens writes none).
fn encode_safetensors(
    tensors: &[(&'static str, Vec<usize>, Vec<f32>)],
    dtype: SaveDtype,
) -> Result<Vec<u8>, String> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, _, v)| dtype.encode(v)).collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            safetensors::tensor::TensorView::new(dtype.safetensors(), shape.clone(), b)
                .map(|v| (name.to_string(), v))
                .map_err(|e| format!("tensor {name}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::tensor::serialize(views, None).map_err(|e| e.to_string())
}

/// Reads an SAE directory written by SAELens (any version it still loads) or
/// by [`save`], with SAELens's rules:
///
/// - `dtype` (`float32`, `torch.float32`, ... ), `d_in` and `d_sae` are
///   required; unknown keys are ignored; tensors of any float type are cast
///   to `f32` (computation is always in `f32`, also for a `float16` config);
/// - a config without `sae_lens_version` (top level or in `metadata`), or
///   with one before 6.0.0rc0, is read with SAELens's legacy rules:
///   `architecture` defaults to `standard`, `activation_fn` (or
///   `activation_fn_str`) `"topk"` with `activation_fn_kwargs.k` means `topk`,
///   a boolean `normalize_activations` means `expected_average_only_in` or
///   `none`, and a `scaling_factor` tensor of all ones is dropped;
/// - `normalize_activations` `none`, `constant_norm_rescale` and `layer_norm`
///   become the [`RowNorm`]; `expected_average_only_in` and
///   `covariance_whitening` are the identity at inference (SAELens folds them
///   into the weights before saving);
/// - the tensors must be exactly the architecture's, with the shapes
///   `d_in`, `d_sae` and `d_out` imply;
/// - a `jumprelu` file whose `metadata.training_architecture` is `batchtopk`
///   becomes a [`Architecture::BatchTopK`] with its threshold (`k` from
///   `training_architecture_details`), so [`save`] then [`load`] gives back
///   the same SAE.
pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Sae, SaeLensError> {
    let dir = dir.as_ref();
    let cfg_path = dir.join(CFG_FILE);
    let text = std::fs::read_to_string(&cfg_path).map_err(|source| SaeLensError::Io {
        path: cfg_path.clone(),
        source,
    })?;
    let raw: Value = serde_json::from_str(&text).map_err(|e| SaeLensError::Json {
        path: cfg_path.clone(),
        message: e.to_string(),
    })?;
    let parsed = parse_cfg(&raw, &cfg_path)?;
    let c = &parsed.config;

    let weights_path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&weights_path).map_err(|source| SaeLensError::Io {
        path: weights_path.clone(),
        source,
    })?;
    let (mut tensors, _) =
        read_f32_safetensors(&bytes).map_err(|message| SaeLensError::Safetensors {
            path: weights_path.clone(),
            message,
        })?;
    drop_unit_scaling_factor(&mut tensors, &weights_path)?;

    let specs = parsed.layout.tensors(c.d_in, c.d_sae, c.d_out);
    let expected_names = || specs.iter().map(|s| s.file.to_string()).collect::<Vec<_>>();
    let mut named = Vec::with_capacity(specs.len());
    for spec in &specs {
        let Some(i) = tensors.iter().position(|t| t.name == spec.file) else {
            return Err(SaeLensError::MissingTensor {
                path: weights_path,
                tensor: spec.file.to_string(),
                architecture: parsed.layout.name().to_string(),
                expected: expected_names(),
            });
        };
        let t = tensors.swap_remove(i);
        check_finite(&t, &weights_path)?;
        if t.shape != spec.shape {
            let dims = if parsed.layout.is_transcoder() {
                format!(
                    "d_in = {}, d_sae = {}, d_out = {}",
                    c.d_in, c.d_sae, c.d_out
                )
            } else {
                format!("d_in = {}, d_sae = {}", c.d_in, c.d_sae)
            };
            return Err(SaeLensError::Shape {
                path: weights_path,
                tensor: spec.file.to_string(),
                expected: spec.shape.clone(),
                found: t.shape,
                dims,
            });
        }
        let [rows, cols] = spec.param_shape();
        named.push((spec.param, from_host(t.data, rows, cols, device)));
    }
    if let Some(extra) = tensors.first() {
        return Err(SaeLensError::ExtraTensor {
            path: weights_path,
            tensor: extra.name.clone(),
            architecture: parsed.layout.name().to_string(),
            expected: expected_names(),
        });
    }
    let params = Params::from_named(named)
        .expect("every layout lists W_enc, b_enc (or b_gate), W_dec and b_dec");
    Ok(Sae {
        config: parsed.config,
        params,
    })
}

/// Refuses a tensor holding NaN or an infinity, naming it and the file.
fn check_finite(t: &HostTensor, path: &Path) -> Result<(), SaeLensError> {
    match t.data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(SaeLensError::NonFinite {
            path: path.to_path_buf(),
            tensor: t.name.clone(),
            value: t.data[index],
            index,
        }),
    }
}

/// Removes a legacy `scaling_factor` tensor that is all ones (torch's
/// `allclose` tolerance, as SAELens checks); any other value is an error.
fn drop_unit_scaling_factor(
    tensors: &mut Vec<HostTensor>,
    path: &Path,
) -> Result<(), SaeLensError> {
    let Some(i) = tensors.iter().position(|t| t.name == "scaling_factor") else {
        return Ok(());
    };
    if let Some(&found) = tensors[i]
        .data
        .iter()
        .find(|v| !((**v - 1.0).abs() <= 1e-8 + 1e-5))
    {
        return Err(SaeLensError::ScalingFactor {
            path: path.to_path_buf(),
            found,
        });
    }
    tensors.remove(i);
    Ok(())
}

/// What `cfg.json` says, in kibitzer's terms.
struct ParsedCfg {
    layout: Layout,
    config: SaeConfig,
}

/// Typed access to the keys of one config object, with errors naming the
/// file and the key.
struct Keys<'a> {
    obj: &'a Map<String, Value>,
    path: &'a Path,
    /// Prefix for nested keys in messages (`metadata.training_architecture_details.`).
    prefix: &'a str,
}

impl<'a> Keys<'a> {
    fn invalid(&self, key: &str, expected: &str, found: &Value) -> SaeLensError {
        SaeLensError::InvalidValue {
            path: self.path.to_path_buf(),
            key: format!("{}{key}", self.prefix),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }

    fn missing(&self, key: &str) -> SaeLensError {
        SaeLensError::MissingKey {
            path: self.path.to_path_buf(),
            key: format!("{}{key}", self.prefix),
        }
    }

    /// The value of `key`, treating JSON `null` as absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn str(&self, key: &str) -> Result<Option<&'a str>, SaeLensError> {
        self.get(key)
            .map(|v| v.as_str().ok_or_else(|| self.invalid(key, "a string", v)))
            .transpose()
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, SaeLensError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.invalid(key, "true or false", v)),
        }
    }

    /// A positive JSON integer (`4.0` is refused, as SAELens's `topk` does).
    fn positive(&self, key: &str, default: Option<u64>) -> Result<usize, SaeLensError> {
        let n = match self.get(key) {
            None => default.ok_or_else(|| self.missing(key))?,
            Some(v) => v
                .as_u64()
                .filter(|&n| n > 0)
                .ok_or_else(|| self.invalid(key, "a positive integer", v))?,
        };
        usize::try_from(n)
            .map_err(|_| self.invalid(key, "an integer that fits in usize", &json!(n)))
    }

    fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, SaeLensError> {
        self.get(key)
            .map(|v| {
                v.as_object()
                    .ok_or_else(|| self.invalid(key, "a JSON object", v))
            })
            .transpose()
    }
}

fn parse_cfg(raw: &Value, path: &Path) -> Result<ParsedCfg, SaeLensError> {
    let obj = raw.as_object().ok_or_else(|| SaeLensError::Json {
        path: path.to_path_buf(),
        message: format!("expected a JSON object, found {}", json_kind(raw)),
    })?;
    let keys = Keys {
        obj,
        path,
        prefix: "",
    };
    let metadata = keys.object("metadata")?;
    let meta_keys = metadata.map(|m| Keys {
        obj: m,
        path,
        prefix: "metadata.",
    });
    let version = match keys.str("sae_lens_version")? {
        Some(v) if !v.is_empty() => Some(("sae_lens_version", v)),
        _ => match &meta_keys {
            Some(m) => m
                .str("sae_lens_version")?
                .filter(|v| !v.is_empty())
                .map(|v| ("metadata.sae_lens_version", v)),
            None => None,
        },
    };
    let legacy = match version {
        None => true,
        Some((key, v)) => is_before_v6(v).ok_or_else(|| SaeLensError::InvalidValue {
            path: path.to_path_buf(),
            key: key.to_string(),
            expected: "a PEP 440 version such as \"6.0.0\"".into(),
            found: json!(v).to_string(),
        })?,
    };

    // SAELens reads `dtype` before anything else: a KeyError without it.
    let dtype = keys.str("dtype")?.ok_or_else(|| keys.missing("dtype"))?;
    if !DTYPES.contains(&dtype) {
        return Err(keys.invalid(
            "dtype",
            &format!("one of {}", DTYPES.join(", ")),
            &json!(dtype),
        ));
    }
    let d_in = keys.positive("d_in", None)?;
    let d_sae = keys.positive("d_sae", None)?;

    let mut architecture_name = keys.str("architecture")?.map(str::to_string);
    let mut legacy_k = None;
    if legacy {
        let activation_fn = match keys.str("activation_fn")? {
            Some(f) => Some(f),
            None => keys.str("activation_fn_str")?,
        };
        let kwargs_k = match keys.object("activation_fn_kwargs")? {
            Some(kwargs) => kwargs.get("k").filter(|v| !v.is_null()),
            None => None,
        };
        if let (Some("topk"), Some(k)) = (activation_fn, kwargs_k) {
            architecture_name = Some("topk".into());
            legacy_k = Some(k);
        }
        architecture_name.get_or_insert_with(|| "standard".into());
    }
    let architecture_name = architecture_name.ok_or_else(|| keys.missing("architecture"))?;
    let layout =
        Layout::from_name(&architecture_name).ok_or_else(|| SaeLensError::UnknownArchitecture {
            path: path.to_path_buf(),
            architecture: architecture_name.clone(),
        })?;

    let row_norm = match keys.get("normalize_activations") {
        None => RowNorm::None,
        // Legacy booleans: `true` is `expected_average_only_in`, `false` is
        // `none`; both are the identity at inference.
        Some(Value::Bool(_)) if legacy => RowNorm::None,
        Some(v) => match v.as_str() {
            Some("none" | "expected_average_only_in" | "covariance_whitening") => RowNorm::None,
            Some("constant_norm_rescale") => RowNorm::ConstantNormRescale,
            Some("layer_norm") => RowNorm::LayerNorm,
            _ => {
                return Err(keys.invalid(
                    "normalize_activations",
                    "none, expected_average_only_in, constant_norm_rescale, layer_norm or covariance_whitening",
                    v,
                ));
            }
        },
    };
    // hook_z reshaping flattens [.., n_heads, d_head] inputs; kibitzer's
    // inputs are already [batch, d_in], where it is the identity.
    if let Some(v) = keys.get("reshape_activations")
        && !matches!(v.as_str(), Some("none" | "hook_z"))
    {
        return Err(keys.invalid("reshape_activations", "none or hook_z", v));
    }
    let apply_b_dec_to_input = keys.bool("apply_b_dec_to_input", true)?;

    let d_out = if layout.is_transcoder() {
        if apply_b_dec_to_input {
            return Err(keys.invalid(
                "apply_b_dec_to_input",
                &format!("false (SAELens refuses true for a {})", layout.name()),
                &json!(true),
            ));
        }
        if row_norm != RowNorm::None {
            return Err(SaeLensError::Unsupported {
                path: path.to_path_buf(),
                reason: format!(
                    "a {} with normalize_activations {} normalises its input but not its output, \
                     which kibitzer's Sae does not represent",
                    layout.name(),
                    row_norm_name(row_norm)
                ),
            });
        }
        keys.positive("d_out", Some(DEFAULT_TRANSCODER_D_OUT))?
    } else {
        d_in
    };

    let mut rescale_acts_by_decoder_norm = false;
    let architecture = match layout {
        Layout::Standard | Layout::Transcoder | Layout::SkipTranscoder => Architecture::Standard,
        Layout::Gated => Architecture::Gated,
        Layout::TopK => {
            let k = match legacy_k {
                Some(v) => v
                    .as_u64()
                    .filter(|&k| k > 0)
                    .and_then(|k| usize::try_from(k).ok())
                    .ok_or_else(|| {
                        keys.invalid("activation_fn_kwargs.k", "a positive integer", v)
                    })?,
                None => keys.positive("k", Some(DEFAULT_TOPK_K))?,
            };
            if k > d_sae {
                return Err(keys.invalid(
                    "k",
                    &format!("at most d_sae = {d_sae} (SAELens's default k is {DEFAULT_TOPK_K})"),
                    &json!(k),
                ));
            }
            rescale_acts_by_decoder_norm = keys.bool("rescale_acts_by_decoder_norm", false)?;
            Architecture::TopK { k }
        }
        Layout::JumpRelu | Layout::JumpReluTranscoder | Layout::JumpReluSkipTranscoder => {
            let training = match &meta_keys {
                Some(m) => m.str("training_architecture")?,
                None => None,
            };
            let details = match (&meta_keys, training) {
                (Some(m), Some(_)) => m.object("training_architecture_details")?,
                _ => None,
            };
            let detail_keys = details.map(|d| Keys {
                obj: d,
                path,
                prefix: "metadata.training_architecture_details.",
            });
            // A Matryoshka BatchTopK is a BatchTopK at inference: its
            // nested widths only shaped training.
            match (training, detail_keys) {
                (Some("batchtopk" | "matryoshka_batchtopk"), Some(d)) => {
                    rescale_acts_by_decoder_norm = d.bool("rescale_acts_by_decoder_norm", false)?;
                    Architecture::BatchTopK {
                        k: d.positive("k", None)?,
                    }
                }
                (Some("batchtopk" | "matryoshka_batchtopk"), None) => {
                    return Err(SaeLensError::MissingKey {
                        path: path.to_path_buf(),
                        key: "metadata.training_architecture_details.k".into(),
                    });
                }
                (Some("jumprelu"), Some(d)) => {
                    let bandwidth = match d.get("jumprelu_bandwidth") {
                        None => DEFAULT_JUMPRELU_BANDWIDTH,
                        Some(v) => v.as_f64().filter(|b| *b > 0.0).ok_or_else(|| {
                            d.invalid("jumprelu_bandwidth", "a positive number", v)
                        })?,
                    };
                    Architecture::JumpRelu { bandwidth }
                }
                _ => Architecture::JumpRelu {
                    bandwidth: DEFAULT_JUMPRELU_BANDWIDTH,
                },
            }
        }
    };

    Ok(ParsedCfg {
        layout,
        config: SaeConfig {
            architecture,
            d_in,
            d_sae,
            d_out,
            apply_b_dec_to_input,
            rescale_acts_by_decoder_norm,
            row_norm,
        },
    })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether SAELens treats `version` as older than 6.0.0rc0 and so reads the
/// config with its legacy rules (`packaging.version.Version` ordering);
/// `None` when `version` is not a PEP 440 version (SAELens raises
/// `InvalidVersion`).
fn is_before_v6(version: &str) -> Option<bool> {
    let v = version.trim().to_ascii_lowercase();
    let v = v.strip_prefix('v').unwrap_or(&v);
    let (epoch, v) = match v.split_once('!') {
        Some((e, rest)) => (e.parse::<u64>().ok()?, rest),
        None => (0, v),
    };
    // A local label (`+abc`) does not affect ordering against a public version.
    let v = match v.split_once('+') {
        Some((public, local)) if !local.is_empty() => public,
        Some(_) => return None,
        None => v,
    };
    let mut rest = v;
    let mut release = Vec::new();
    loop {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return None;
        }
        release.push(rest[..digits].parse::<u64>().ok()?);
        rest = &rest[digits..];
        match rest.strip_prefix('.') {
            Some(after) if after.starts_with(|c: char| c.is_ascii_digit()) => rest = after,
            _ => break,
        }
    }
    // Suffix segments, each optionally preceded by a separator:
    // pre-release (a, b, rc), post-release, dev-release, in that order.
    let mut pre: Option<(u8, u64)> = None;
    let mut post = false;
    let mut dev = false;
    let mut stage = 0;
    while !rest.is_empty() {
        let dash = rest.starts_with('-');
        rest = rest.trim_start_matches(['.', '-', '_']);
        let label_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let label = &rest[..label_len];
        rest = rest[label_len..].trim_start_matches(['.', '-', '_']);
        let num_len = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let number = if num_len == 0 {
            0
        } else {
            rest[..num_len].parse::<u64>().ok()?
        };
        rest = &rest[num_len..];
        let (kind, next_stage) = match label {
            "a" | "alpha" => (0, 1),
            "b" | "beta" => (1, 1),
            "c" | "rc" | "pre" | "preview" => (2, 1),
            "post" | "rev" | "r" => (3, 2),
            // Implicit post-release: `1.0-1`.
            "" if dash && num_len > 0 => (3, 2),
            "dev" => (4, 3),
            _ => return None,
        };
        if next_stage <= stage {
            return None;
        }
        stage = next_stage;
        match kind {
            0..=2 => pre = Some((kind, number)),
            3 => post = true,
            _ => dev = true,
        }
    }
    if epoch > 0 {
        return Some(false);
    }
    let mut padded = release.clone();
    padded.resize(padded.len().max(3), 0);
    let target = [6u64, 0, 0];
    let release_cmp = padded[..3].cmp(&target[..]).then_with(|| {
        if padded[3..].iter().any(|&n| n > 0) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    Some(match release_cmp {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Greater => false,
        // Same release as 6.0.0rc0: compare the suffixes.
        std::cmp::Ordering::Equal => match pre {
            Some(p) if p < (2, 0) => true,
            // rc0 itself: a dev release of it is older, a post release newer.
            Some(p) if p == (2, 0) => dev && !post,
            Some(_) => false,
            // 6.0.0.devN precedes every pre-release of 6.0.0.
            None => dev && !post,
        },
    })
}

impl Sae {
    /// The same dictionary for raw activations, when it was trained on scaled
    /// ones: inputs `x' = c_in x` and (for a transcoder) targets
    /// `y' = c_out y`. An autoencoder uses `c_in = c_out = c`. The result
    /// computes `folded(x) = original(c_in x) / c_out` exactly (in real
    /// arithmetic), so the saved SAE works on the model's activations.
    ///
    /// # Derivation
    ///
    /// Write `z` for what the encoder sees (the raw row, or its per-row
    /// normalisation), `s = z - b_dec` (or `s = z`), `pre = s W_enc + b_enc`,
    /// `x_hat = f W_dec + b_dec (+ x W_skip^T)`.
    ///
    /// Without row normalisation the trained SAE sees `z = c_in x`:
    /// `pre = (c_in x - b_dec) W_enc + b_enc = (x - b_dec / c_in)(c_in W_enc) + b_enc`.
    /// So `W_enc *= c_in` and `b_dec /= c_in` on the input side leave every
    /// pre-activation, hence `f`, unchanged; thresholds, `b_enc` and the gated
    /// `b_mag`, `r_mag` stay as they are (the gated magnitude path
    /// `s (W_enc * exp(r_mag)) + b_mag` scales with `W_enc` the same way).
    /// The output must shrink by `c_out`: `W_dec /= c_out`, `b_dec /= c_out`.
    /// The two uses of `b_dec` agree when `c_in = c_out`. A transcoder never
    /// subtracts `b_dec` from its input, so its scales are independent; when
    /// an autoencoder that subtracts `b_dec` is folded with `c_in != c_out`,
    /// `b_dec` is first moved out of the input
    /// (`s W_enc = z W_enc - b_dec W_enc`: `b_enc -= b_dec W_enc`, for gated
    /// also `b_mag -= b_dec (W_enc * exp(r_mag))`, and
    /// `apply_b_dec_to_input = false`). The skip path sees the raw input:
    /// `c_in x W_skip^T / c_out`, so `W_skip *= c_in / c_out`.
    ///
    /// With `RowNorm::ConstantNormRescale` the encoder input is the same for
    /// `x` and `c_in x` and the output is de-normalised by the row norm, which
    /// carries a factor `c_in`: the encoder is unchanged and
    /// `W_dec, b_dec *= c_in / c_out`. `RowNorm::LayerNorm` is the same when
    /// `c_in = c_out` (the weights are unchanged; only the `1e-5` added to the
    /// standard deviation sees the scale).
    ///
    /// TopK with `rescale_acts_by_decoder_norm` selects on `pre * ||W_dec_j||`
    /// and decodes with unit rows, so its features are in output units: they
    /// come out scaled by `1 / c_out` (by `c_in / c_out` with
    /// `ConstantNormRescale`) while `x_hat` is exact.
    ///
    /// # Panics
    ///
    /// If `c_in` or `c_out` is not finite and positive, or for
    /// `RowNorm::LayerNorm` with `c_in != c_out` (its de-normalisation
    /// re-adds the row mean at input scale, which no weights can rescale).
    pub fn fold_activation_scale(&self, c_in: f32, c_out: f32) -> Sae {
        assert!(
            c_in.is_finite() && c_in > 0.0 && c_out.is_finite() && c_out > 0.0,
            "activation scales must be finite and positive, got c_in = {c_in}, c_out = {c_out}"
        );
        let mut sae = self.clone();
        if sae.config.apply_b_dec_to_input && c_in != c_out {
            let p = &mut sae.params;
            let shift = p.b_dec.clone().matmul(p.w_enc.clone());
            if let (Some(b_mag), Some(r_mag)) = (&p.b_mag, &p.r_mag) {
                let mag_shift = p
                    .b_dec
                    .clone()
                    .matmul(p.w_enc.clone() * r_mag.clone().exp());
                p.b_mag = Some(b_mag.clone() - mag_shift);
            }
            p.b_enc = p.b_enc.clone() - shift;
            sae.config.apply_b_dec_to_input = false;
        }
        let (enc_scale, dec_scale) = match sae.config.row_norm {
            RowNorm::None => (c_in, 1.0 / c_out),
            RowNorm::ConstantNormRescale => (1.0, c_in / c_out),
            RowNorm::LayerNorm => {
                assert!(
                    c_in == c_out,
                    "a LayerNorm-normalised dictionary cannot fold different input and output \
                     scales (c_in = {c_in}, c_out = {c_out})"
                );
                (1.0, 1.0)
            }
        };
        let p = &mut sae.params;
        p.w_enc = p.w_enc.clone().mul_scalar(enc_scale);
        p.w_dec = p.w_dec.clone().mul_scalar(dec_scale);
        p.b_dec = p.b_dec.clone().mul_scalar(dec_scale);
        p.w_skip = p.w_skip.take().map(|w| w.mul_scalar(c_in / c_out));
        sae
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;

    #[test]
    fn version_rules_match_packaging() {
        for (v, legacy) in [
            ("6.54.12", false),
            ("6.0.0", false),
            ("6.0.0-rc.0", false),
            ("6.0.0rc0", false),
            ("6.0.0rc1", false),
            ("6.0.0.post1", false),
            ("7", false),
            ("6.0.1a1", false),
            ("6.0.0.0.1", false),
            ("1!0.1", false),
            ("v6.1.0", false),
            ("6.0.0+local", false),
            ("5.9.1", true),
            ("3.0.0", true),
            ("6.0.0b3", true),
            ("6.0.0a0", true),
            ("6.0.0.dev4", true),
            ("6.0.0rc0.dev1", true),
            ("6", false),
            ("5.99", true),
        ] {
            assert_eq!(is_before_v6(v), Some(legacy), "{v}");
        }
        for bad in [
            "0.1.0-kibitzer",
            "six",
            "",
            "6..0",
            "6.0.0+",
            "6.0.0dev1rc1",
        ] {
            assert_eq!(is_before_v6(bad), None, "{bad}");
        }
    }

    #[test]
    fn save_dtype_encodes_little_endian() {
        assert_eq!(
            SaveDtype::Float32.encode(&[1.0]),
            1.0f32.to_le_bytes().to_vec()
        );
        assert_eq!(SaveDtype::Float16.encode(&[1.0]), vec![0x00, 0x3c]);
        assert_eq!(SaveDtype::BFloat16.encode(&[1.0]), vec![0x80, 0x3f]);
    }

    #[test]
    fn unit_scaling_factor_is_dropped_and_others_refused() {
        let path = Path::new("w.safetensors");
        let t = |name: &str, data: Vec<f32>| HostTensor {
            name: name.into(),
            shape: vec![data.len()],
            data,
        };
        let mut tensors = vec![
            t("W_enc", vec![2.0]),
            t("scaling_factor", vec![1.0, 1.000001]),
        ];
        drop_unit_scaling_factor(&mut tensors, path).unwrap();
        assert_eq!(tensors.len(), 1);
        let mut tensors = vec![t("scaling_factor", vec![1.0, 0.5])];
        let err = drop_unit_scaling_factor(&mut tensors, path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("scaling_factor") && err.contains("0.5") && err.contains("w.safetensors"),
            "{err}"
        );
    }

    #[test]
    fn non_finite_weights_are_refused_naming_tensor_and_file() {
        use crate::{Architecture, Sae, SaeConfig};
        let device = burn::tensor::Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let sae = Sae::init(SaeConfig::new(Architecture::Standard, 4, 8), 0, &device);
        save(&sae, dir.path(), &SaveOptions::default()).unwrap();
        assert!(load(dir.path(), &device).is_ok());
        let weights = dir.path().join(WEIGHTS_FILE);
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let (mut tensors, meta) =
                read_f32_safetensors(&std::fs::read(&weights).unwrap()).unwrap();
            let w = tensors.iter_mut().find(|t| t.name == "W_dec").unwrap();
            w.data[3] = bad;
            let bytes = crate::io::f32_safetensors(&tensors, Some(meta)).unwrap();
            let nan_dir = tempfile::tempdir().unwrap();
            std::fs::copy(dir.path().join(CFG_FILE), nan_dir.path().join(CFG_FILE)).unwrap();
            std::fs::write(nan_dir.path().join(WEIGHTS_FILE), bytes).unwrap();
            let err = load(nan_dir.path(), &device).unwrap_err().to_string();
            assert!(
                err.contains("W_dec")
                    && err.contains("non-finite")
                    && err.contains(WEIGHTS_FILE)
                    && err.contains("index 3"),
                "{err}"
            );
        }
    }
}
