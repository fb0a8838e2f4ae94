//! A cross-layer transcoder as the replacement model of a GPT
//! (`kibitzer xcoder fidelity`): every MLP of the layers it covers is
//! replaced by the CLT's output, through kibitzer-hooks. One transcoder per
//! layer ([`Replacement::PerLayer`], circuit-tracer's `TranscoderSet`) is
//! the baseline a CLT is measured against, scored the same way.
//!
//! The replacement runs layer by layer, as circuit-tracer's replacement
//! model does: at `blocks.l.<input hook>` (e.g. `hook_resid_mid`) layer
//! `l`'s features are computed from the replaced run's own residual stream,
//! and at `blocks.l.<output hook>` (e.g. `hook_mlp_out`) the MLP's output is
//! replaced by `sum_{s <= l} a_s W_dec^(s -> l) + b_dec^(l)`. Errors
//! compound from layer to layer, with no error terms: this is the model a
//! CLT claims to be.
//!
//! Scored on every next-token prediction whose target is not padding:
//! - the cross-entropy of the clean model, the replacement, and the model
//!   with every replaced MLP zero-ablated; `loss_recovered = (ablated -
//!   replaced) / (ablated - clean)`;
//! - `KL(clean || replacement)` per prediction and the share of predictions
//!   whose most likely token is the clean model's (top-1 agreement);
//! - per layer, the mean number of active features per token in the
//!   replacement run.

use crate::gpt::{GameCorpus, GptRunError, Result};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor};
use kibitzer_hooks::{Hook, HookError, HookSite, HookedModel, Hooks};
use kibitzer_models::Gpt;
use kibitzer_sae::dictionary::Dictionary;
use kibitzer_sae::ops::to_host;
use kibitzer_xcoder::{Clt, Transcoder, Xcoder};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

fn invalid(message: impl Into<String>) -> GptRunError {
    GptRunError::Invalid(message.into())
}

/// The scores of one replacement run (see the [module documentation](self)).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fidelity {
    /// Next-token predictions scored.
    pub predictions: usize,
    /// Layers whose MLP was replaced (`0..layers_replaced`).
    pub layers_replaced: usize,
    /// Mean cross-entropy of the clean model (nats).
    pub clean_loss: f64,
    /// ... of the replacement model.
    pub replaced_loss: f64,
    /// ... with every replaced MLP's output zeroed.
    pub mlp_ablated_loss: f64,
    /// `(ablated - replaced) / (ablated - clean)`.
    pub loss_recovered: f64,
    /// Mean `KL(clean || replacement)` per prediction (nats).
    pub kl_divergence: f64,
    /// Share of predictions whose argmax is the clean model's.
    pub top1_agreement: f64,
    /// Mean active features per token, per layer, in the replacement run.
    pub l0_per_layer: Vec<f64>,
}

/// What replaces a model's MLPs, layer by layer.
#[derive(Clone, Debug)]
pub enum Replacement {
    /// A cross-layer transcoder over layers `0..n`.
    Clt(Clt),
    /// One transcoder per layer `0..n`, transcoder `l` reading layer `l`'s
    /// input site and predicting its output site.
    PerLayer(Vec<Transcoder>),
}

impl Replacement {
    /// Layers replaced (`0..n`).
    pub fn layers(&self) -> usize {
        match self {
            Replacement::Clt(c) => c.config().n_layers,
            Replacement::PerLayer(t) => t.len(),
        }
    }

    /// Layer `l`'s input and output sites.
    fn sites(&self, l: usize) -> (String, String) {
        match self {
            Replacement::Clt(c) => (c.config().input_site(l), c.config().output_site(l)),
            Replacement::PerLayer(t) => (t[l].input_site.clone(), t[l].output_site.clone()),
        }
    }

    /// Layer `l`'s input and output widths.
    fn widths(&self, l: usize) -> (usize, usize) {
        match self {
            Replacement::Clt(c) => (c.config().d_model, c.config().d_model),
            Replacement::PerLayer(t) => (t[l].d_in(), t[l].d_out()),
        }
    }

    /// The device the weights live on.
    fn device(&self) -> Device {
        match self {
            Replacement::Clt(c) => c.device(),
            Replacement::PerLayer(t) => t[0].sae.params.w_enc.device(),
        }
    }

    /// Layer `l`'s features from its input `x [rows, d]`.
    fn encode_layer(&self, l: usize, x: Tensor<2>) -> std::result::Result<Tensor<2>, String> {
        match self {
            Replacement::Clt(c) => c.encode_layer(l, x).map_err(|e| e.to_string()),
            Replacement::PerLayer(t) => Ok(t[l].encode(x)),
        }
    }

    /// Layer `l`'s output from every layer's (input, features) so far.
    fn decode_layer(
        &self,
        l: usize,
        seen: &[(Tensor<2>, Tensor<2>)],
    ) -> std::result::Result<Tensor<2>, String> {
        match self {
            Replacement::Clt(c) => {
                let features: Vec<Tensor<2>> = seen.iter().map(|(_, a)| a.clone()).collect();
                c.decode_layer(l, &features).map_err(|e| e.to_string())
            }
            Replacement::PerLayer(t) => {
                let (x, a) = seen.get(l).ok_or("the layer's input was not seen")?;
                let mut y = t[l].decode(a.clone());
                if let Some(w) = &t[l].sae.params.w_skip {
                    y = y + x.clone().matmul(w.clone().transpose());
                }
                Ok(y)
            }
        }
    }
}

/// Checks that `replacement` fits `model`: its sites exist and have the
/// model's width, and it covers no more layers than the model has.
pub fn check_fits(model: &Gpt, replacement: &Replacement) -> Result<Vec<(HookSite, HookSite)>> {
    let m = model.config();
    let n = replacement.layers();
    if n == 0 {
        return Err(invalid("nothing to replace: no layer"));
    }
    if n > m.n_layers {
        return Err(invalid(format!(
            "the replacement covers {n} layers, but the model has {}",
            m.n_layers
        )));
    }
    (0..n)
        .map(|l| {
            let (input, output) = replacement.sites(l);
            let expected = (format!("blocks.{l}."), format!("blocks.{l}."));
            if !input.starts_with(&expected.0) || !output.starts_with(&expected.1) {
                return Err(invalid(format!(
                    "layer {l} of the replacement reads {input} and writes {output}; expected sites of block {l} (one transcoder per layer 0..{n}, in order)"
                )));
            }
            let (d_in, d_out) = replacement.widths(l);
            if d_in != m.d_model || d_out != m.d_model {
                return Err(invalid(format!(
                    "layer {l} of the replacement reads width {d_in} and writes width {d_out}, but the model's d_model is {}",
                    m.d_model
                )));
            }
            Ok((model.site(&input)?, model.site(&output)?))
        })
        .collect()
}

/// The replacement model's scores on `sequences` (token ids, at most the
/// model's context each), `batch_size` sequences per forward pass, padded
/// with `pad`.
pub fn replacement_fidelity(
    model: &Gpt,
    replacement: &Replacement,
    sequences: &[Vec<u32>],
    pad: u32,
    batch_size: usize,
) -> Result<Fidelity> {
    let sites = check_fits(model, replacement)?;
    if batch_size == 0 {
        return Err(invalid("--batch-size must be at least 1"));
    }
    let n = sites.len();
    let device = replacement.device();
    let mut totals = Totals::new(n);
    for chunk in sequences.chunks(batch_size) {
        let (ids, seq_len, tokens) = crate::gpt::padded_batch(chunk, pad, &device);
        if seq_len < 2 {
            continue;
        }

        let clean = model.forward(&tokens)?;

        let mut ablate = Hooks::new();
        for &(_, output) in &sites {
            ablate.add(output, Hook::zero());
        }
        let ablated = model.run_with_hooks(&tokens, &mut ablate)?;

        // Layer l's input and features, set at its input site, read at its
        // output site and at every later one.
        let features: Rc<RefCell<Vec<(Tensor<2>, Tensor<2>)>>> = Rc::new(RefCell::new(Vec::new()));
        let active: Rc<RefCell<Vec<Vec<f32>>>> = Rc::new(RefCell::new(Vec::new()));
        let mut replace = Hooks::new();
        for (layer, &(input, output)) in sites.iter().enumerate() {
            let (features_in, active_in) = (features.clone(), active.clone());
            replace.add(
                input,
                Hook::custom(move |site, act| {
                    let x = act.position_rows();
                    let a = replacement
                        .encode_layer(layer, x.clone())
                        .map_err(|e| HookError::Input(format!("{site}: {e}")))?;
                    active_in
                        .borrow_mut()
                        .push(to_host(a.clone().greater_elem(0.0).float().sum_dim(1)));
                    features_in.borrow_mut().push((x, a));
                    Ok(act)
                }),
            );
            let features_out = features.clone();
            replace.add(
                output,
                Hook::custom(move |site, act| {
                    let y = replacement
                        .decode_layer(layer, &features_out.borrow())
                        .map_err(|e| HookError::Input(format!("{site}: {e}")))?;
                    Ok(act.with_position_rows(y))
                }),
            );
        }
        let replaced = model.run_with_hooks(&tokens, &mut replace)?;
        drop(replace);
        totals.add(
            &ids,
            seq_len,
            pad,
            clean,
            replaced,
            ablated,
            &active.borrow(),
        )?;
    }
    totals.finish()
}

/// Running sums over batches.
struct Totals {
    predictions: usize,
    tokens: usize,
    clean: f64,
    replaced: f64,
    ablated: f64,
    kl: f64,
    agree: usize,
    active: Vec<f64>,
}

impl Totals {
    fn new(layers: usize) -> Totals {
        Totals {
            predictions: 0,
            tokens: 0,
            clean: 0.0,
            replaced: 0.0,
            ablated: 0.0,
            kl: 0.0,
            agree: 0,
            active: vec![0.0; layers],
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        ids: &[i64],
        seq_len: usize,
        pad: u32,
        clean: Tensor<3>,
        replaced: Tensor<3>,
        ablated: Tensor<3>,
        active: &[Vec<f32>],
    ) -> Result<()> {
        let vocab = clean.dims()[2];
        let host = |t: Tensor<3>| -> Vec<f32> {
            let [b, p, v] = t.dims();
            to_host(log_softmax(t, 2).reshape([b * p, v]))
        };
        let (clean, replaced, ablated) = (host(clean), host(replaced), host(ablated));
        let pad = pad as i64;
        for (row, &token) in ids.iter().enumerate() {
            if token != pad {
                self.tokens += 1;
                for (sum, layer) in self.active.iter_mut().zip(active) {
                    *sum += layer[row] as f64;
                }
            }
            let p = row % seq_len;
            if p + 1 == seq_len {
                continue;
            }
            let target = ids[row + 1];
            if target == pad {
                continue;
            }
            let target = usize::try_from(target)
                .ok()
                .filter(|&t| t < vocab)
                .ok_or_else(|| {
                    invalid(format!(
                        "token {target} is outside the vocabulary of {vocab}"
                    ))
                })?;
            let span = row * vocab..(row + 1) * vocab;
            let (c, r, a) = (
                &clean[span.clone()],
                &replaced[span.clone()],
                &ablated[span],
            );
            self.predictions += 1;
            self.clean -= c[target] as f64;
            self.replaced -= r[target] as f64;
            self.ablated -= a[target] as f64;
            self.kl += c
                .iter()
                .zip(r)
                .map(|(&lc, &lr)| (lc.exp() * (lc - lr)) as f64)
                .sum::<f64>();
            if argmax(c) == argmax(r) {
                self.agree += 1;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Fidelity> {
        if self.predictions == 0 {
            return Err(invalid(
                "no next-token prediction to score: every game is shorter than 2 tokens",
            ));
        }
        let n = self.predictions as f64;
        let (clean, replaced, ablated) = (self.clean / n, self.replaced / n, self.ablated / n);
        Ok(Fidelity {
            predictions: self.predictions,
            layers_replaced: self.active.len(),
            clean_loss: clean,
            replaced_loss: replaced,
            mlp_ablated_loss: ablated,
            loss_recovered: (ablated - replaced) / (ablated - clean),
            kl_divergence: self.kl / n,
            top1_agreement: self.agree as f64 / n,
            l0_per_layer: self
                .active
                .iter()
                .map(|s| s / self.tokens.max(1) as f64)
                .collect(),
        })
    }
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 { (i, x) } else { best }
        })
        .0
}

/// What `kibitzer xcoder fidelity` writes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FidelityReport {
    /// The GPT's directory.
    pub model: PathBuf,
    /// What replaced the MLPs: `clt` or `per-layer transcoders`.
    pub replacement: String,
    /// The directory of the CLT, or of each layer's transcoder.
    pub dictionaries: Vec<PathBuf>,
    /// The games file.
    pub games: PathBuf,
    /// Games scored.
    pub games_scored: usize,
    /// The scores.
    #[serde(flatten)]
    pub fidelity: Fidelity,
}

/// The replacement saved in `dirs`: one directory holding a CLT, or one
/// transcoder directory per layer `0..n` in order.
pub fn load_replacement(dirs: &[PathBuf], device: &Device) -> Result<Replacement> {
    let load = |dir: &PathBuf| {
        kibitzer_xcoder::format::load(dir, device).map_err(|e| invalid(e.to_string()))
    };
    if let [dir] = dirs {
        if let Xcoder::Clt(c) = load(dir)? {
            return Ok(Replacement::Clt(c));
        }
    }
    let transcoders = dirs
        .iter()
        .map(|dir| match load(dir)? {
            Xcoder::Transcoder(t) => Ok(t),
            other => Err(invalid(format!(
                "{}: holds a {}; give one CLT, or one transcoder per layer",
                dir.display(),
                other.kind().name()
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    if transcoders.is_empty() {
        return Err(invalid(
            "no dictionary given: a CLT or one transcoder per layer",
        ));
    }
    Ok(Replacement::PerLayer(transcoders))
}

/// [`replacement_fidelity`] of the CLT or per-layer transcoders saved in
/// `dirs` ([`load_replacement`]) on the GPT saved in `model_dir`, over the
/// first `max_games` games of `games_path` (cut to the model's context).
pub fn fidelity_on_games(
    model_dir: &Path,
    dirs: &[PathBuf],
    games_path: &Path,
    max_games: Option<usize>,
    batch_size: usize,
    device: &Device,
) -> Result<FidelityReport> {
    let games = GameCorpus::open(games_path, max_games)?;
    let model = games.load_model(model_dir, device)?;
    let replacement = load_replacement(dirs, device)?;
    let sequences = games.token_sequences(model.config().n_ctx, true)?.tokens;
    let fidelity = replacement_fidelity(
        &model,
        &replacement,
        &sequences,
        games.pad_token(),
        batch_size,
    )?;
    Ok(FidelityReport {
        model: model_dir.to_path_buf(),
        replacement: match replacement {
            Replacement::Clt(_) => "clt".into(),
            Replacement::PerLayer(_) => "per-layer transcoders".into(),
        },
        dictionaries: dirs.to_vec(),
        games: games_path.to_path_buf(),
        games_scored: games.len(),
        fidelity,
    })
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::tensor::{Int, TensorData};
    use kibitzer_models::gpt::GptConfig;
    use kibitzer_sae::{Architecture, Params};
    use kibitzer_xcoder::CltConfig;

    fn tiny_gpt(device: &Device) -> Gpt {
        let mut config = GptConfig::new(2, 16, 2, 32, 11, 10);
        config.seed = Some(3);
        Gpt::new(config, device).unwrap()
    }

    /// An L1 CLT over the tiny GPT's two layers, `features` per layer.
    fn standard_config(features: usize) -> CltConfig {
        CltConfig {
            architecture: Architecture::Standard,
            n_layers: 2,
            d_model: 16,
            d_transcoder: features,
            input_hook: "hook_resid_mid".into(),
            output_hook: "hook_mlp_out".into(),
        }
    }

    fn sequences() -> Vec<Vec<u32>> {
        (0..5)
            .map(|g| (0..(6 + g)).map(|i| ((i * 3 + g) % 10) as u32).collect())
            .collect()
    }

    /// A CLT whose every layer's reconstruction is exactly the model's MLP
    /// output is impossible to build by hand, but one whose decoder is zero
    /// and whose b_dec is zero *is* the ablation: the replaced loss must
    /// then equal the ablated one, and loss recovered be 0.
    #[test]
    fn a_zero_clt_is_the_ablation_and_misfits_are_named() {
        let device = Device::flex();
        let model = tiny_gpt(&device);
        let config = standard_config(8);
        let clt = Clt::init(config.clone(), 1, &device).unwrap();
        let mut p: Params = clt.params().clone();
        p.w_dec = p.w_dec.zeros_like();
        let zero = Clt::from_params(config.clone(), p).unwrap();
        let f = replacement_fidelity(&model, &Replacement::Clt(zero), &sequences(), 10, 2).unwrap();
        assert_eq!(f.predictions, 5 * 5 + 10);
        assert!((f.replaced_loss - f.mlp_ablated_loss).abs() < 1e-5, "{f:?}");
        assert!(f.loss_recovered.abs() < 1e-4, "{f:?}");
        assert!(f.kl_divergence > 0.0 && f.mlp_ablated_loss != f.clean_loss);
        assert_eq!(f.l0_per_layer.len(), 2);
        // A random CLT is something else again, and its features fire.
        let f = replacement_fidelity(&model, &Replacement::Clt(clt.clone()), &sequences(), 10, 3)
            .unwrap();
        assert!((f.replaced_loss - f.mlp_ablated_loss).abs() > 1e-4, "{f:?}");
        assert!(f.l0_per_layer.iter().all(|&l0| l0 > 0.0), "{f:?}");

        let wide = CltConfig {
            d_model: 8,
            ..config.clone()
        };
        let e = replacement_fidelity(
            &model,
            &Replacement::Clt(Clt::init(wide, 1, &device).unwrap()),
            &sequences(),
            10,
            2,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("d_model is 16"), "{e}");
        let deep = CltConfig {
            n_layers: 3,
            ..config.clone()
        };
        let e = replacement_fidelity(
            &model,
            &Replacement::Clt(Clt::init(deep, 1, &device).unwrap()),
            &sequences(),
            10,
            2,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("the model has 2"), "{e}");
        let odd = CltConfig {
            input_hook: "hook_nonsense".into(),
            ..config
        };
        let e = replacement_fidelity(
            &model,
            &Replacement::Clt(Clt::init(odd, 1, &device).unwrap()),
            &sequences(),
            10,
            2,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("hook_nonsense"), "{e}");
    }

    /// One transcoder per layer scores as the CLT with the same encoders
    /// and only the diagonal decoder blocks: the same replacement model.
    #[test]
    fn per_layer_transcoders_are_the_diagonal_clt() {
        use kibitzer_sae::ops::{from_host, to_host};
        use kibitzer_xcoder::TranscoderConfig;
        let device = Device::flex();
        let model = tiny_gpt(&device);
        let transcoders: Vec<Transcoder> = (0..2)
            .map(|l| {
                let config = TranscoderConfig {
                    architecture: Architecture::Standard,
                    input_site: format!("blocks.{l}.hook_resid_mid"),
                    d_in: 16,
                    output_site: format!("blocks.{l}.hook_mlp_out"),
                    d_out: 16,
                    d_sae: 8,
                    skip: false,
                };
                let mut t = Transcoder::init(&config, 10 + l as u64, &device).unwrap();
                t.sae.params.b_enc = t.sae.params.b_enc.clone().add_scalar(0.05);
                t.sae.params.b_dec = t.sae.params.b_dec.clone().add_scalar(0.01 * l as f32);
                t
            })
            .collect();
        let config = standard_config(8);
        let (mut enc, mut dec) = (vec![0f32; 32 * 16], vec![0f32; 16 * 32]);
        let (mut b_enc, mut b_dec) = (Vec::new(), Vec::new());
        for (l, t) in transcoders.iter().enumerate() {
            let p = &t.sae.params;
            let (we, wd) = (to_host(p.w_enc.clone()), to_host(p.w_dec.clone()));
            for r in 0..16 {
                for j in 0..8 {
                    enc[(l * 16 + r) * 16 + l * 8 + j] = we[r * 8 + j];
                    dec[(l * 8 + j) * 32 + l * 16 + r] = wd[j * 16 + r];
                }
            }
            b_enc.extend(to_host(p.b_enc.clone()));
            b_dec.extend(to_host(p.b_dec.clone()));
        }
        let mut params = Clt::init(config.clone(), 0, &device)
            .unwrap()
            .params()
            .clone();
        params.w_enc = from_host(enc, 32, 16, &device);
        params.w_dec = from_host(dec, 16, 32, &device);
        params.b_enc = from_host(b_enc, 1, 16, &device);
        params.b_dec = from_host(b_dec, 1, 32, &device);
        let clt = Clt::from_params(config, params).unwrap();
        let a = replacement_fidelity(&model, &Replacement::Clt(clt), &sequences(), 10, 2).unwrap();
        let b = replacement_fidelity(
            &model,
            &Replacement::PerLayer(transcoders.clone()),
            &sequences(),
            10,
            2,
        )
        .unwrap();
        for (x, y) in [
            (a.replaced_loss, b.replaced_loss),
            (a.kl_divergence, b.kl_divergence),
            (a.l0_per_layer[0], b.l0_per_layer[0]),
            (a.l0_per_layer[1], b.l0_per_layer[1]),
        ] {
            assert!((x - y).abs() < 1e-4, "{a:?} vs {b:?}");
        }
        assert!(a.l0_per_layer[0] > 0.0);
        // Transcoders given out of layer order are refused.
        let swapped = vec![transcoders[1].clone(), transcoders[0].clone()];
        let e = replacement_fidelity(&model, &Replacement::PerLayer(swapped), &sequences(), 10, 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected sites of block 0"), "{e}");
    }

    /// A CLT whose decoders are zero and whose `b_dec` holds the clean
    /// run's MLP outputs at position 0 reproduces the clean model on the
    /// one prediction made there: the features are read and the outputs
    /// replaced at the right sites, layer after layer.
    #[test]
    fn a_clt_holding_the_clean_mlp_outputs_is_the_clean_model() {
        let device = Device::flex();
        let model = tiny_gpt(&device);
        let seq = vec![vec![1u32, 4]];
        let tokens: Tensor<2, Int> =
            Tensor::from_data(TensorData::new(vec![1i64, 4], [1, 2]), &device);
        // Position 0's MLP outputs of the clean run, as b_dec: exact for
        // the one prediction scored (position 0 predicts token 1).
        let sites: Vec<HookSite> = (0..2)
            .map(|l| model.site(&format!("blocks.{l}.hook_mlp_out")).unwrap())
            .collect();
        let (_, cache) = model.run_with_cache(&tokens, &sites).unwrap();
        let mut b_dec = Vec::new();
        for site in &sites {
            let rows = to_host(cache.get(*site).unwrap().position_rows());
            b_dec.extend_from_slice(&rows[..16]);
        }
        let config = standard_config(4);
        let mut p = Clt::init(config.clone(), 1, &device)
            .unwrap()
            .params()
            .clone();
        p.w_dec = p.w_dec.zeros_like();
        p.b_dec = kibitzer_sae::ops::from_host(b_dec, 1, 32, &device);
        let clt = Clt::from_params(config, p).unwrap();
        let f = replacement_fidelity(&model, &Replacement::Clt(clt), &seq, 10, 1).unwrap();
        assert_eq!(f.predictions, 1);
        assert!((f.replaced_loss - f.clean_loss).abs() < 1e-5, "{f:?}");
        assert!(
            f.kl_divergence.abs() < 1e-6 && f.top1_agreement == 1.0,
            "{f:?}"
        );
        assert!((f.loss_recovered - 1.0).abs() < 1e-3, "{f:?}");
    }
}
