//! Token corpora: texts into fixed-length sequences, the unigram baseline,
//! and corpus files.

use std::path::Path;

use crate::error::{Result, StoriesError, invalid};
use crate::io::write_atomic;
use crate::tokenizer::StoryTokenizer;

/// How texts become sequences. Every sequence starts with `<|endoftext|>`
/// as BOS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// One text per sequence: `<|endoftext|>`, the text, `<|endoftext|>`,
    /// cut at `seq_len`, then padded with the **pad id** ([`StoryTokenizer::pad_id`],
    /// not the end-of-text id) to exactly `seq_len`. A loss must skip
    /// targets equal to the pad id; the closing `<|endoftext|>` stays a
    /// target, so the model learns where stories end.
    Padded,
    /// As [`Padded`](Packing::Padded) without the padding: lengths up to
    /// `seq_len`. For consumers that pad themselves, like kibitzer-models'
    /// `TokenDataset::new(&seqs, Some(pad_id), d_vocab, n_ctx)`, which
    /// rejects a pad id inside a sequence.
    Unpadded,
    /// Texts concatenated, each followed by `<|endoftext|>`, and cut into
    /// sequences of exactly `seq_len`: `<|endoftext|>` then the next
    /// `seq_len - 1` tokens of the stream. No padding, no waste; a sequence
    /// may hold the end of one story and the start of the next. The last,
    /// incomplete sequence is dropped.
    Concatenated,
}

/// `texts` as token sequences of `seq_len` (see [`Packing`]). `seq_len`
/// must be at least 2.
pub fn pack<S: AsRef<str> + Sync>(
    texts: &[S],
    tokenizer: &StoryTokenizer,
    seq_len: usize,
    packing: Packing,
) -> Result<Vec<Vec<u32>>> {
    if seq_len < 2 {
        return Err(invalid(
            "seq_len",
            format!("{seq_len}: a sequence needs at least 2 tokens"),
        ));
    }
    let eot = tokenizer.eot_id();
    let encoded = tokenizer.encode_batch(texts);
    Ok(match packing {
        Packing::Padded | Packing::Unpadded => encoded
            .into_iter()
            .map(|ids| {
                let mut seq = Vec::with_capacity(seq_len);
                seq.push(eot);
                seq.extend(ids);
                seq.push(eot);
                seq.truncate(seq_len);
                if packing == Packing::Padded {
                    seq.resize(seq_len, tokenizer.pad_id());
                }
                seq
            })
            .collect(),
        Packing::Concatenated => {
            let stream: Vec<u32> = encoded
                .into_iter()
                .flat_map(|ids| ids.into_iter().chain(std::iter::once(eot)))
                .collect();
            stream
                .chunks_exact(seq_len - 1)
                .map(|chunk| {
                    let mut seq = Vec::with_capacity(seq_len);
                    seq.push(eot);
                    seq.extend_from_slice(chunk);
                    seq
                })
                .collect()
        }
    })
}

/// Each sequence padded with `pad` to `seq_len` (longer ones are cut).
pub fn pad_to(sequences: &[Vec<u32>], seq_len: usize, pad: u32) -> Vec<Vec<u32>> {
    sequences
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.resize(seq_len, pad);
            s
        })
        .collect()
}

/// The held-out cross-entropy, in nats per token, of the add-one-smoothed
/// unigram model fitted on `train`: `p(t) = (count(t) + 1) / (N + vocab_size)`
/// over the `N` training targets, averaged as `-ln p(t)` over the eval
/// targets. A target is every token after the first of a sequence (the first
/// is BOS, never predicted) that is not `pad`. The baseline a trained
/// model must beat; uniform guessing scores `ln(vocab_size)`.
pub fn unigram_loss(
    train: &[Vec<u32>],
    eval: &[Vec<u32>],
    vocab_size: usize,
    pad: Option<u32>,
) -> Result<f64> {
    if vocab_size == 0 {
        return Err(invalid("vocab_size", "0"));
    }
    let targets = |seqs: &'_ [Vec<u32>], field: &'static str| -> Result<Vec<u32>> {
        let mut out = Vec::new();
        for (i, s) in seqs.iter().enumerate() {
            for (p, &t) in s.iter().enumerate().skip(1) {
                if Some(t) == pad {
                    continue;
                }
                if t as usize >= vocab_size {
                    return Err(invalid(
                        field,
                        format!(
                            "sequence {i}, position {p}: id {t} is outside the vocabulary of {vocab_size}"
                        ),
                    ));
                }
                out.push(t);
            }
        }
        Ok(out)
    };
    let train_targets = targets(train, "train")?;
    let eval_targets = targets(eval, "eval")?;
    if eval_targets.is_empty() {
        return Err(invalid("eval", "no targets to score"));
    }
    let mut counts = vec![0u64; vocab_size];
    for &t in &train_targets {
        counts[t as usize] += 1;
    }
    let denom = (train_targets.len() + vocab_size) as f64;
    let total: f64 = eval_targets
        .iter()
        .map(|&t| -((counts[t as usize] + 1) as f64 / denom).ln())
        .sum();
    Ok(total / eval_targets.len() as f64)
}

/// Writes sequences as JSON lines (one array of ids per line), atomically.
pub fn write_corpus(path: impl AsRef<Path>, sequences: &[Vec<u32>]) -> Result<()> {
    let mut text = String::new();
    for s in sequences {
        text.push_str(&serde_json::to_string(s).expect("a list of integers serialises"));
        text.push('\n');
    }
    write_atomic(path.as_ref(), text.as_bytes())
}

/// Reads what [`write_corpus`] wrote. Errors name the file and line.
pub fn read_corpus(path: impl AsRef<Path>) -> Result<Vec<Vec<u32>>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| StoriesError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| StoriesError::Corpus {
                path: path.to_path_buf(),
                line: i + 1,
                reason: e.to_string(),
            })
        })
        .collect()
}
