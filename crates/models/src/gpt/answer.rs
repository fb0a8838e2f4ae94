//! Scoring what a GPT writes after a prompt: a grid quiz's answer grid
//! (reference 004), or any fixed-length answer span.
//!
//! Reference 004 (Appendix 1) warns that the loss hides behaviour: a model
//! that gets the first "transform cell" wrong and then copies is cheap in
//! loss and wrong as an answer. The measure is therefore autoregressive:
//! the model writes the answer greedily, one token at a time, and counts
//! only when every token is right.
//!
//! That measure needs no token-by-token decoding. Greedy decoding writes
//! the true answer exactly when, at every answer position, the argmax of
//! the logits given the *true* prefix is the true token: if it is, each
//! step extends the true prefix by the true token; if it is not at some
//! position, the first such position is where the greedy writer goes
//! wrong (it has written the true prefix up to there). So one
//! teacher-forced forward pass gives the exact-answer rate and the first
//! wrong position (the reference's "transform cell") of greedy decoding,
//! for the plain model and for any intervention that acts position by
//! position ([`score_answers`]). [`write_greedy`] decodes token by token,
//! for pictures of what a model writes after its first mistake; a test
//! checks the two agree.

use super::Gpt;
use crate::error::ModelError;
use burn::tensor::Tensor;
use kibitzer_hooks::Hooks;
use std::ops::Range;

/// How a model does on the answer span of one sequence.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AnswerScore {
    /// The argmax token at each answer position, given the true prefix.
    pub predicted: Vec<u32>,
    /// The first answer position (offset into the span) whose argmax is
    /// not the true token: where greedy decoding first goes wrong. `None`
    /// when greedy decoding writes the whole answer right.
    pub first_wrong: Option<usize>,
    /// Mean cross-entropy (nats) of the true answer tokens.
    pub loss: f64,
    /// Answer positions whose argmax is the true token.
    pub right: usize,
}

impl AnswerScore {
    /// Whether greedy decoding writes the whole answer right.
    pub fn exact(&self) -> bool {
        self.first_wrong.is_none()
    }
}

fn check_span(sequences: &[Vec<u32>], answer: &Range<usize>) -> Result<usize, ModelError> {
    let len = sequences.first().map_or(0, Vec::len);
    if sequences.is_empty() {
        return Err(ModelError::Input("no sequences to score".into()));
    }
    if answer.start == 0 || answer.start >= answer.end || answer.end > len {
        return Err(ModelError::Input(format!(
            "answer span {answer:?} must be a non-empty range in 1..={len} (the sequences' length); position 0 has no prediction"
        )));
    }
    Ok(len)
}

/// Scores the answer span `answer` (token positions) of every sequence,
/// teacher-forced: one forward pass per batch of `batch_size` sequences,
/// with the hooks `hooks_for(batch)` returns for the sequences `batch`
/// (an index range into `sequences`). See the module docs for why this is
/// exactly what greedy decoding would write, for hooks that act position
/// by position.
pub fn score_answers<'h>(
    model: &Gpt,
    sequences: &[Vec<u32>],
    answer: Range<usize>,
    batch_size: usize,
    hooks_for: &mut dyn FnMut(Range<usize>) -> Hooks<'h>,
) -> Result<Vec<AnswerScore>, ModelError> {
    check_span(sequences, &answer)?;
    let mut scores = Vec::with_capacity(sequences.len());
    for start in (0..sequences.len()).step_by(batch_size.max(1)) {
        let batch = start..(start + batch_size.max(1)).min(sequences.len());
        let tokens = model.tokens(&sequences[batch.clone()])?;
        let mut hooks = hooks_for(batch.clone());
        let logits = kibitzer_hooks::HookedModel::run_with_hooks(model, &tokens, &mut hooks)?;
        let (rows, vocab) = answer_logits(logits, &answer);
        let n = answer.len();
        for (b, seq) in sequences[batch].iter().enumerate() {
            let mut predicted = Vec::with_capacity(n);
            let (mut first_wrong, mut loss, mut right) = (None, 0.0, 0);
            for i in 0..n {
                let row = &rows[(b * n + i) * vocab..(b * n + i + 1) * vocab];
                let target = seq[answer.start + i] as usize;
                let best = argmax(row);
                predicted.push(best as u32);
                if best == target {
                    right += 1;
                } else if first_wrong.is_none() {
                    first_wrong = Some(i);
                }
                loss -= log_softmax_at(row, target);
            }
            scores.push(AnswerScore {
                predicted,
                first_wrong,
                loss: loss / n as f64,
                right,
            });
        }
    }
    Ok(scores)
}

/// The logits that predict the answer tokens, on the host:
/// `[batch * answer.len(), vocab]` row-major, and `vocab`.
fn answer_logits(logits: Tensor<3>, answer: &Range<usize>) -> (Vec<f32>, usize) {
    let [b, _, vocab] = logits.dims();
    let rows = logits
        .slice([0..b, answer.start - 1..answer.end - 1, 0..vocab])
        .reshape([b * answer.len(), vocab]);
    (kibitzer_sae::ops::to_host(rows), vocab)
}

/// The index of the largest value (the first of equals): the greedy pick
/// from a row of logits.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// `log softmax(row)[i]`, in f64.
fn log_softmax_at(row: &[f32], i: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    row[i] as f64 - max - sum.ln()
}

/// Writes `n` tokens after each prompt greedily, one forward pass per
/// token (no cache: meant for the few quizzes a picture shows), with the
/// hooks `hooks_for(batch)` returns at every pass. Prompts must share one
/// length, and prompt + `n` must fit the context.
pub fn write_greedy<'h>(
    model: &Gpt,
    prompts: &[Vec<u32>],
    n: usize,
    batch_size: usize,
    hooks_for: &mut dyn FnMut(Range<usize>) -> Hooks<'h>,
) -> Result<Vec<Vec<u32>>, ModelError> {
    let len = prompts.first().map_or(0, Vec::len);
    if prompts.is_empty() || len == 0 || len + n > model.config().n_ctx + 1 {
        return Err(ModelError::Input(format!(
            "prompts of {len} tokens plus {n} written do not fit the context of {} (the last written token need not be read)",
            model.config().n_ctx
        )));
    }
    let mut written = Vec::with_capacity(prompts.len());
    for start in (0..prompts.len()).step_by(batch_size.max(1)) {
        let batch = start..(start + batch_size.max(1)).min(prompts.len());
        let mut seqs: Vec<Vec<u32>> = prompts[batch.clone()].to_vec();
        for _ in 0..n {
            let tokens = model.tokens(&seqs)?;
            let mut hooks = hooks_for(batch.clone());
            let logits = kibitzer_hooks::HookedModel::run_with_hooks(model, &tokens, &mut hooks)?;
            let p = seqs[0].len();
            let (rows, vocab) = answer_logits(logits, &(p..p + 1));
            for (b, seq) in seqs.iter_mut().enumerate() {
                seq.push(argmax(&rows[b * vocab..(b + 1) * vocab]) as u32);
            }
        }
        written.extend(seqs.into_iter().map(|s| s[len..].to_vec()));
    }
    Ok(written)
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::gpt::GptConfig;
    use burn::tensor::Device;

    fn dev() -> Device {
        Device::flex()
    }

    fn model() -> Gpt {
        let mut config = GptConfig::new(2, 16, 2, 32, 5, 12);
        config.seed = Some(3);
        Gpt::new(config, &dev()).unwrap()
    }

    #[test]
    fn teacher_forced_scores_agree_with_greedy_decoding() {
        let model = model();
        let prompts: Vec<Vec<u32>> = (0..6u32)
            .map(|i| (0..6).map(|j| (i * 3 + j * 7) % 5).collect())
            .collect();
        let written = write_greedy(&model, &prompts, 4, 4, &mut |_| Hooks::new()).unwrap();
        // The greedy answer scores exact; changing its first token makes
        // the first position wrong.
        let exact: Vec<Vec<u32>> = prompts
            .iter()
            .zip(&written)
            .map(|(p, w)| [p.clone(), w.clone()].concat())
            .collect();
        let scores = score_answers(&model, &exact, 6..10, 4, &mut |_| Hooks::new()).unwrap();
        for (s, w) in scores.iter().zip(&written) {
            assert!(s.exact(), "{s:?}");
            assert_eq!(&s.predicted, w);
            assert_eq!(s.right, 4);
        }
        let mut wrong = exact.clone();
        for (seq, w) in wrong.iter_mut().zip(&written) {
            seq[8] = (w[2] + 1) % 5;
        }
        let scores = score_answers(&model, &wrong, 6..10, 3, &mut |_| Hooks::new()).unwrap();
        for s in &scores {
            assert_eq!(s.first_wrong, Some(2), "{s:?}");
            assert!(!s.exact());
        }
    }

    #[test]
    fn answer_loss_is_the_span_cross_entropy() {
        let model = model();
        let seqs: Vec<Vec<u32>> = vec![vec![1, 2, 3, 4, 0, 1, 2, 3], vec![4, 3, 2, 1, 0, 4, 3, 2]];
        let scores = score_answers(&model, &seqs, 5..8, 8, &mut |_| Hooks::new()).unwrap();
        let tokens = model.tokens(&seqs).unwrap();
        let logits = kibitzer_hooks::HookedModel::forward(&model, &tokens).unwrap();
        let ce = kibitzer_hooks::next_token_cross_entropy_from(logits, tokens, None, 5).unwrap();
        let mean = scores.iter().map(|s| s.loss).sum::<f64>() / 2.0;
        assert!((mean - ce).abs() < 1e-5, "{mean} vs {ce}");
    }

    #[test]
    fn bad_spans_and_contexts_are_errors() {
        let model = model();
        let seqs = vec![vec![1u32, 2, 3]];
        assert!(score_answers(&model, &seqs, 0..2, 1, &mut |_| Hooks::new()).is_err());
        assert!(score_answers(&model, &seqs, 2..4, 1, &mut |_| Hooks::new()).is_err());
        assert!(write_greedy(&model, &seqs, 11, 1, &mut |_| Hooks::new()).is_err());
    }
}
