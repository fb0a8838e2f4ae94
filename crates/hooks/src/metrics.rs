//! Metrics that need a model: loss recovered by a spliced dictionary, and
//! how much an intervention changes the output.

use crate::error::HookError;
use crate::hooks::{Hook, Hooks, SharedDictionary};
use crate::model::HookedModel;
use crate::site::HookSite;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

/// Mean next-token cross-entropy (nats) of `logits` `[batch, pos, vocab]`
/// on `tokens` `[batch, pos]` as a device scalar, differentiable (the
/// training loss of a GPT): position `p` predicts token `p + 1`;
/// predictions of a `pad` token are left out. A batch whose targets are all
/// padding gives NaN; [`next_token_cross_entropy`] checks for that.
pub fn next_token_loss(
    logits: Tensor<3>,
    tokens: Tensor<2, Int>,
    pad: Option<u32>,
) -> Result<Tensor<1>, HookError> {
    next_token_loss_from(logits, tokens, pad, 1)
}

/// [`next_token_loss`] on the targets at positions `from..` only: the loss
/// of a model that reads a prompt and is scored on what it writes after it
/// (a grid quiz's answer grid, reference 004: "for eval, only the final
/// grid should be used"). `from = 1` scores every target. Only the logits
/// that predict those targets enter the softmax, so a late `from` is also
/// cheaper.
pub fn next_token_loss_from(
    logits: Tensor<3>,
    tokens: Tensor<2, Int>,
    pad: Option<u32>,
    from: usize,
) -> Result<Tensor<1>, HookError> {
    let pos = logits.dims()[1];
    let (sum, count) = next_token_terms(logits, tokens, pad, from..pos.max(from + 1))?;
    Ok(sum.neg() / count)
}

/// [`next_token_loss`] on the targets inside `targets` only, several
/// disjoint ranges of target positions: a grid quiz scored on both of its
/// transformed grids (f(A) and f(B)) and not on the scenes it is given.
/// Every range must lie in `1..pos`, be non-empty and start after the
/// previous one ends.
pub fn next_token_loss_over(
    logits: Tensor<3>,
    tokens: Tensor<2, Int>,
    pad: Option<u32>,
    targets: &[std::ops::Range<usize>],
) -> Result<Tensor<1>, HookError> {
    let pos = logits.dims()[1];
    check_target_ranges(targets, pos)?;
    let mut total: Option<(Tensor<1>, Tensor<1>)> = None;
    for range in targets {
        let (sum, count) = next_token_terms(logits.clone(), tokens.clone(), pad, range.clone())?;
        total = Some(match total {
            Some((s, c)) => (s + sum, c + count),
            None => (sum, count),
        });
    }
    let (sum, count) = total.expect("check_target_ranges refuses an empty list");
    Ok(sum.neg() / count)
}

/// Checks that `targets` are non-empty, ordered, disjoint ranges of target
/// positions inside `1..pos`, naming the first one that is not.
pub fn check_target_ranges(
    targets: &[std::ops::Range<usize>],
    pos: usize,
) -> Result<(), HookError> {
    if targets.is_empty() {
        return Err(HookError::Input(
            "next-token loss over no target ranges: name at least one".into(),
        ));
    }
    let mut end = 1;
    for r in targets {
        if r.start < end || r.end <= r.start || r.end > pos {
            return Err(HookError::Input(format!(
                "next-token loss over target positions {r:?}: each range must be non-empty, start at {end} or later (after the previous one) and end by {pos}, the sequence length"
            )));
        }
        end = r.end;
    }
    Ok(())
}

/// The summed log-likelihood of the targets at positions `targets` and
/// their number, on the device.
fn next_token_terms(
    logits: Tensor<3>,
    tokens: Tensor<2, Int>,
    pad: Option<u32>,
    targets: std::ops::Range<usize>,
) -> Result<(Tensor<1>, Tensor<1>), HookError> {
    let [batch, pos, vocab] = logits.dims();
    if tokens.dims() != [batch, pos] {
        return Err(HookError::Input(format!(
            "next-token loss: logits are {:?} but tokens are {:?} (expected [{batch}, {pos}])",
            logits.dims(),
            tokens.dims()
        )));
    }
    if pos < 2 {
        return Err(HookError::Input(
            "next-token loss needs sequences of at least 2 tokens".into(),
        ));
    }
    let (from, to) = (targets.start, targets.end);
    if from == 0 || from >= pos || to <= from || to > pos {
        return Err(HookError::Input(format!(
            "next-token loss over target positions {from}..{to}: the sequences have {pos} tokens, so the scored targets must lie in 1..{pos}"
        )));
    }
    let n = to - from;
    let log_probs = log_softmax(logits.slice([0..batch, from - 1..to - 1, 0..vocab]), 2);
    let targets = tokens.slice([0..batch, from..to]);
    // The pad token may lie outside the predicted vocabulary (ChessGPT reads
    // a padding token it never predicts): gather padded targets at 0, as
    // the mask below drops them anyway.
    let gathered = match pad {
        Some(p) => targets
            .clone()
            .mask_fill(targets.clone().equal_elem(i64::from(p)), 0),
        None => targets.clone(),
    };
    let picked: Tensor<2> = log_probs
        .gather(2, gathered.reshape([batch, n, 1]))
        .reshape([batch, n]);
    Ok(match pad {
        Some(p) => {
            let mask = targets.not_equal_elem(i64::from(p)).float();
            ((picked * mask.clone()).sum(), mask.sum())
        }
        None => {
            let device = picked.device();
            (
                picked.sum(),
                Tensor::<1>::from_data(
                    burn::tensor::TensorData::new(vec![(batch * n) as f32], [1]),
                    &device,
                ),
            )
        }
    })
}

/// [`next_token_loss`] read back to the host, or an error when every
/// target is padding.
pub fn next_token_cross_entropy(
    logits: Tensor<3>,
    tokens: Tensor<2, Int>,
    pad: Option<u32>,
) -> Result<f64, HookError> {
    next_token_cross_entropy_from(logits, tokens, pad, 1)
}

/// [`next_token_loss_from`] read back to the host, or an error when every
/// scored target is padding.
pub fn next_token_cross_entropy_from(
    logits: Tensor<3>,
    tokens: Tensor<2, Int>,
    pad: Option<u32>,
    from: usize,
) -> Result<f64, HookError> {
    let pos = logits.dims()[1];
    let (sum, count) = next_token_terms(logits, tokens, pad, from..pos.max(from + 1))?;
    let count = kibitzer_sae::ops::scalar(count);
    if count == 0.0 {
        return Err(HookError::Input(
            "next-token loss: every target is padding".into(),
        ));
    }
    Ok(-kibitzer_sae::ops::scalar(sum) / count)
}

/// Mean KL divergence `KL(p || q)` between the softmax distributions of two
/// logit tensors over their last axis, averaged over all other positions.
pub fn mean_kl_divergence<const D: usize>(p_logits: Tensor<D>, q_logits: Tensor<D>) -> f64 {
    let last = D - 1;
    let log_p = log_softmax(p_logits, last);
    let log_q = log_softmax(q_logits, last);
    let rows: usize = log_p.dims()[..last].iter().product();
    let kl = (log_p.clone().exp() * (log_p - log_q)).sum();
    kibitzer_sae::ops::scalar(kl) / rows.max(1) as f64
}

/// The three losses behind "loss recovered" and the fraction itself.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossRecovered {
    /// Loss of the unmodified model.
    pub clean: f64,
    /// Loss with the dictionary's reconstruction in place of the activation.
    pub spliced: f64,
    /// Loss with the activation zeroed.
    pub zero_ablated: f64,
    /// `(zero_ablated - spliced) / (zero_ablated - clean)`: 1 when splicing
    /// costs nothing, 0 when it is as bad as removing the activation.
    pub fraction: f64,
}

/// Loss recovered by `dictionary` at `site`, averaged over `inputs` (each
/// input weighted equally): `(CE_zero_ablation - CE_spliced) /
/// (CE_zero_ablation - CE_clean)`. `loss` scores one output (e.g. with
/// [`next_token_cross_entropy`]).
pub fn loss_recovered<M: HookedModel>(
    model: &M,
    inputs: &[M::Input],
    site: HookSite,
    dictionary: SharedDictionary,
    loss: impl Fn(&M::Input, M::Output) -> Result<f64, HookError>,
) -> Result<LossRecovered, HookError> {
    if inputs.is_empty() {
        return Err(HookError::Input(
            "loss recovered needs at least one input batch".into(),
        ));
    }
    let (mut clean, mut spliced, mut zero) = (0.0, 0.0, 0.0);
    for input in inputs {
        clean += loss(input, model.forward(input)?)?;
        let mut hooks = Hooks::new().with(site, Hook::splice(dictionary.clone()));
        spliced += loss(input, model.run_with_hooks(input, &mut hooks)?)?;
        let mut hooks = Hooks::new().with(site, Hook::zero());
        zero += loss(input, model.run_with_hooks(input, &mut hooks)?)?;
    }
    let n = inputs.len() as f64;
    let (clean, spliced, zero_ablated) = (clean / n, spliced / n, zero / n);
    if (zero_ablated - clean).abs() < 1e-12 {
        return Err(HookError::Input(format!(
            "zero-ablating {site} leaves the loss at {clean}: loss recovered is undefined there"
        )));
    }
    Ok(LossRecovered {
        clean,
        spliced,
        zero_ablated,
        fraction: (zero_ablated - spliced) / (zero_ablated - clean),
    })
}

/// How much `hooks` change the model's output on `input`, as `measure`
/// (clean output, edited output) scores it, e.g. [`mean_kl_divergence`] of
/// the logits.
pub fn output_change<M: HookedModel>(
    model: &M,
    input: &M::Input,
    hooks: &mut Hooks<'_>,
    measure: impl FnOnce(M::Output, M::Output) -> f64,
) -> Result<f64, HookError> {
    let clean = model.forward(input)?;
    let edited = model.run_with_hooks(input, hooks)?;
    Ok(measure(clean, edited))
}
