//! Reference 004: GPTs trained on grid quizzes (Fleuret's "culture"
//! world, kibitzer-quizzes), and the experiments that interpret them.
//!
//! - [`culture_gpt_config`]: the culture GPT's shape (sinusoidal positions,
//!   no final LayerNorm, ReLU MLPs, BOS 0 prepended, vocabulary 15).
//! - [`score`] / [`AccuracyTable`]: autoregressive exact-grid accuracy per
//!   task (kibitzer-models' [`answer`](kibitzer_models::gpt::answer)
//!   module explains why one teacher-forced pass gives exactly what greedy
//!   writing would) and the loss on the final grid.
//! - [`attention_ablation`], [`layer0_attention`], [`direct_path`],
//!   [`mlp_ablation`]: experiments 1 to 3 of the issue (which attention
//!   layer matters, what layer 0 attends to, which MLP carries "contact").
//! - [`splice_report`], [`transform_cells`], [`train_feature_multiplier`],
//!   [`feature_recovery`], [`steering`]: experiments 4 to 6 (an SAE on that
//!   MLP's output, the features at the first cell the ablated model gets
//!   wrong, and whether those features steer other tasks).
//!
//! Every intervention acts at every position of the sequence (as a zero
//! ablation does), so the teacher-forced scores are those of greedy
//! writing under the same intervention.

use burn::tensor::{Tensor, TensorData};
use kibitzer_hooks::{Activation, Hook, HookError, HookSite, HookedModel, Hooks, SharedDictionary};
use kibitzer_models::gpt::answer::{AnswerScore, score_answers, write_greedy};
use kibitzer_models::gpt::{Gpt, GptConfig, Positional};
use kibitzer_models::{ActFn, ModelError};
use kibitzer_quizzes::{Grid, Layout, Quiz, TaskKind, VOCAB};
use kibitzer_sae::{Dictionary, Sae};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What can go wrong in an experiment.
#[derive(Debug, thiserror::Error)]
pub enum QuizError {
    /// The model failed (shapes, files).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A hook failed.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// The quizzes are bad.
    #[error(transparent)]
    Quizzes(#[from] kibitzer_quizzes::QuizError),
    /// The inputs do not fit together (a model and quizzes of another grid
    /// size, an SAE of another width...).
    #[error("{0}")]
    Input(String),
}

type Result<T> = std::result::Result<T, QuizError>;

/// The culture GPT's shape for quizzes of `layout`'s grid size: sinusoidal
/// positions, no final LayerNorm, ReLU MLPs, vocabulary 15, context = one
/// quiz with its BOS token (405 tokens for 10x10 grids). Reference 004's
/// model is `culture_gpt_config(&Layout::new(10)?, 12, 512, 8, 2048, seed)`
/// (about 37M parameters).
pub fn culture_gpt_config(
    layout: &Layout,
    n_layers: usize,
    d_model: usize,
    n_heads: usize,
    d_mlp: usize,
    seed: u64,
) -> GptConfig {
    let mut config = GptConfig::new(n_layers, d_model, n_heads, d_mlp, VOCAB, layout.seq_len());
    config.act_fn = ActFn::Relu;
    config.positional_embedding_type = Positional::Sinusoidal;
    config.final_ln = false;
    config.seed = Some(seed);
    config
}

/// Which tokens of a quiz the training loss scores. Evaluation always
/// scores the final grid alone (reference 004: "for eval, only the final
/// grid should be used").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossOn {
    /// f(B)'s cells, the grid the model is asked to write.
    #[default]
    Final,
    /// The cells of both transformed grids, f(A) and f(B): twice the
    /// examples of the transformation per quiz, at the same cost per step.
    /// Writing f(A), the model has not yet seen the task and must guess
    /// it from the first changed cells, as the culture GPTs do.
    Answers,
    /// Every token after BOS, the scenes A and B included.
    All,
}

impl LossOn {
    /// The scored target positions of a quiz of `layout`.
    pub fn targets(self, layout: &Layout) -> Vec<std::ops::Range<usize>> {
        match self {
            LossOn::Final => vec![layout.answer_range()],
            LossOn::Answers => vec![layout.grid_range(1), layout.grid_range(3)],
            LossOn::All => vec![1..layout.seq_len()],
        }
    }

    /// The name on the command line and in run files.
    pub fn name(self) -> &'static str {
        match self {
            LossOn::Final => "final",
            LossOn::Answers => "answers",
            LossOn::All => "all",
        }
    }
}

impl std::fmt::Display for LossOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for LossOn {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<LossOn, String> {
        [LossOn::Final, LossOn::Answers, LossOn::All]
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| format!("unknown loss target {s:?}: expected final, answers or all"))
    }
}

/// The grid size a quiz GPT reads, from its context length
/// (`n_ctx = 1 + 4 (1 + s^2)`), or `None` when the context fits no grid.
pub fn model_grid_size(config: &GptConfig) -> Option<usize> {
    let n = config.n_ctx.checked_sub(1)?;
    if !n.is_multiple_of(4) {
        return None;
    }
    let cells = (n / 4).checked_sub(1)?;
    let s = (cells as f64).sqrt().round() as usize;
    (s * s == cells).then_some(s)
}

/// Checks that `model` reads quizzes of `layout` (vocabulary 15, a context
/// of exactly one quiz of that grid size).
pub fn check_model(model: &Gpt, layout: &Layout) -> Result<()> {
    let c = model.config();
    if c.d_vocab != VOCAB || c.vocab_out() != VOCAB {
        return Err(QuizError::Input(format!(
            "the model's vocabulary is {} in / {} out; a quiz GPT reads and writes the {VOCAB} quiz tokens",
            c.d_vocab,
            c.vocab_out()
        )));
    }
    if c.n_ctx != layout.seq_len() {
        let trained = model_grid_size(c)
            .map_or_else(|| "no grid size".to_string(), |s| format!("{s}x{s} grids"));
        return Err(QuizError::Input(format!(
            "the model reads {} tokens ({trained}); these quizzes have {g}x{g} grids ({} tokens): use quizzes of the grid size the model was trained on",
            c.n_ctx,
            layout.seq_len(),
            g = layout.grid_size
        )));
    }
    Ok(())
}

/// The token sequences of `quizzes` (BOS first), after checking they
/// all have `layout`'s grid size.
pub fn sequences(quizzes: &[Quiz], layout: &Layout) -> Result<Vec<Vec<u32>>> {
    quizzes
        .iter()
        .enumerate()
        .map(|(i, q)| {
            if q.grid_size() != layout.grid_size {
                return Err(QuizError::Input(format!(
                    "quiz {i} has {g}x{g} grids, expected {e}x{e}",
                    g = q.grid_size(),
                    e = layout.grid_size
                )));
            }
            Ok(q.tokens())
        })
        .collect()
}

/// A way of running the model: which interventions at which sites. Every
/// variant acts at every position.
#[derive(Clone)]
pub enum Run {
    /// The model as trained.
    Clean,
    /// These sites zero-ablated.
    Zero(Vec<HookSite>),
    /// `site` replaced by `dictionary`'s reconstruction, with each feature
    /// multiplied by `gains` (`None`: all 1, the plain splice).
    Dictionary {
        /// The site (an MLP output).
        site: HookSite,
        /// The dictionary.
        dictionary: Arc<Sae>,
        /// Per-feature gains `[d_sae]`.
        gains: Option<Vec<f32>>,
    },
    /// `scale * direction` added to `site` at every position.
    Add {
        /// The site.
        site: HookSite,
        /// The direction (width of the site).
        direction: Vec<f32>,
        /// Its multiplier.
        scale: f32,
    },
}

impl Run {
    /// The hooks of this run.
    pub fn hooks(&self) -> Hooks<'static> {
        match self {
            Run::Clean => Hooks::new(),
            Run::Zero(sites) => sites
                .iter()
                .fold(Hooks::new(), |h, &s| h.with(s, Hook::zero())),
            Run::Dictionary {
                site,
                dictionary,
                gains,
            } => match gains {
                None => {
                    Hooks::new().with(*site, Hook::splice(dictionary.clone() as SharedDictionary))
                }
                Some(gains) => {
                    let (dictionary, gains) = (dictionary.clone(), gains.clone());
                    Hooks::new().with(
                        *site,
                        Hook::custom(move |_, act: Activation| {
                            let gains = Tensor::<2>::from_data(
                                TensorData::new(gains.clone(), [1, gains.len()]),
                                &act.device(),
                            );
                            Ok(gained_reconstruction(&act, dictionary.as_ref(), gains))
                        }),
                    )
                }
            },
            Run::Add {
                site,
                direction,
                scale,
            } => {
                let (direction, scale) = (direction.clone(), *scale);
                Hooks::new().with(
                    *site,
                    Hook::custom(move |_, act: Activation| {
                        let v = Tensor::<2>::from_data(
                            TensorData::new(direction.clone(), [1, direction.len()]),
                            &act.device(),
                        );
                        Ok(act.with_position_rows(act.position_rows() + v * scale))
                    }),
                )
            }
        }
    }
}

/// `dictionary.decode(dictionary.encode(rows) * gains)` at every position
/// of `act`: the site replaced by a reconstruction whose features are
/// scaled one by one (`gains` `[1, d_sae]`; autodiff flows through it).
fn gained_reconstruction(act: &Activation, dictionary: &Sae, gains: Tensor<2>) -> Activation {
    let rows = act.position_rows();
    let features = dictionary.encode(rows) * gains;
    act.with_position_rows(dictionary.decode(features))
}

/// Scores `quizzes` under `run`, `batch_size` quizzes a forward pass.
pub fn score(
    model: &Gpt,
    layout: &Layout,
    quizzes: &[Quiz],
    run: &Run,
    batch_size: usize,
) -> Result<Vec<AnswerScore>> {
    check_model(model, layout)?;
    let seqs = sequences(quizzes, layout)?;
    Ok(score_answers(
        model,
        &seqs,
        layout.answer_range(),
        batch_size,
        &mut |_| run.hooks(),
    )?)
}

/// Exact-grid accuracy and final-grid loss of some quizzes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AccuracyRow {
    /// Quizzes scored.
    pub quizzes: usize,
    /// Quizzes whose whole fourth grid greedy writing gets right.
    pub exact: usize,
    /// `exact / quizzes`.
    pub accuracy: f64,
    /// Mean cross-entropy (nats) of the fourth grid's cells.
    pub loss: f64,
    /// Fraction of the fourth grid's cells predicted right (teacher-forced).
    pub cell_accuracy: f64,
}

impl AccuracyRow {
    fn of<'a>(scores: impl Iterator<Item = &'a AnswerScore>) -> AccuracyRow {
        let (mut n, mut exact, mut loss, mut right, mut cells) = (0, 0, 0.0, 0, 0);
        for s in scores {
            n += 1;
            exact += usize::from(s.exact());
            loss += s.loss;
            right += s.right;
            cells += s.predicted.len();
        }
        AccuracyRow {
            quizzes: n,
            exact,
            accuracy: exact as f64 / n.max(1) as f64,
            loss: loss / n.max(1) as f64,
            cell_accuracy: right as f64 / cells.max(1) as f64,
        }
    }
}

/// Accuracy overall and per task.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AccuracyTable {
    /// Every quiz.
    pub overall: AccuracyRow,
    /// Per task, in [`TaskKind::ALL`] order, tasks without quizzes left out.
    pub tasks: BTreeMap<String, AccuracyRow>,
}

impl AccuracyTable {
    /// The table of `scores` (one per quiz, in order).
    pub fn new(quizzes: &[Quiz], scores: &[AnswerScore]) -> AccuracyTable {
        let mut tasks = BTreeMap::new();
        for task in TaskKind::ALL {
            let of_task: Vec<&AnswerScore> = quizzes
                .iter()
                .zip(scores)
                .filter(|(q, _)| q.task == task)
                .map(|(_, s)| s)
                .collect();
            if !of_task.is_empty() {
                tasks.insert(
                    task.name().to_string(),
                    AccuracyRow::of(of_task.into_iter()),
                );
            }
        }
        AccuracyTable {
            overall: AccuracyRow::of(scores.iter()),
            tasks,
        }
    }

    /// Accuracy on one task (0 quizzes: `None`).
    pub fn task(&self, task: TaskKind) -> Option<&AccuracyRow> {
        self.tasks.get(task.name())
    }

    /// A Markdown table: one row per task and the total.
    pub fn markdown(&self) -> String {
        let mut md = String::from(
            "| task | quizzes | exact grids | accuracy | cells right | loss (final grid) |\n|---|---:|---:|---:|---:|---:|\n",
        );
        let row = |name: &str, r: &AccuracyRow| {
            format!(
                "| {name} | {} | {} | {:.3} | {:.4} | {:.4} |\n",
                r.quizzes, r.exact, r.accuracy, r.cell_accuracy, r.loss
            )
        };
        for (name, r) in &self.tasks {
            md += &row(name, r);
        }
        md += &row("**all**", &self.overall);
        md
    }
}

/// One row of experiment 1: the model with one attention layer's output
/// zero-ablated.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttentionAblationRow {
    /// The layer ablated (`None`: the clean model).
    pub layer: Option<usize>,
    /// Mean final-grid loss.
    pub loss: f64,
    /// Loss over the clean model's.
    pub loss_ratio: f64,
    /// Exact-grid accuracy.
    pub accuracy: f64,
}

/// Experiment 1: each layer's attention output zero-ablated in turn.
pub fn attention_ablation(
    model: &Gpt,
    layout: &Layout,
    quizzes: &[Quiz],
    batch_size: usize,
) -> Result<Vec<AttentionAblationRow>> {
    let clean = AccuracyRow::of(score(model, layout, quizzes, &Run::Clean, batch_size)?.iter());
    let mut rows = vec![AttentionAblationRow {
        layer: None,
        loss: clean.loss,
        loss_ratio: 1.0,
        accuracy: clean.accuracy,
    }];
    for layer in 0..model.config().n_layers {
        let run = Run::Zero(vec![HookSite::attn_out(layer)]);
        let r = AccuracyRow::of(score(model, layout, quizzes, &run, batch_size)?.iter());
        rows.push(AttentionAblationRow {
            layer: Some(layer),
            loss: r.loss,
            loss_ratio: r.loss / clean.loss.max(f64::MIN_POSITIVE),
            accuracy: r.accuracy,
        });
    }
    Ok(rows)
}

/// Experiment 2: where one head of layer 0 looks.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeadAttention {
    /// The head.
    pub head: usize,
    /// Mean attention, from a position whose next token is a cell of grid
    /// 1, 2 or 3, on the same cell of the previous grid (the key `s^2`
    /// tokens back: the cell the position predicts, one grid earlier).
    pub same_cell_previous_grid: f64,
    /// The same mean on the previous token.
    pub previous_token: f64,
    /// The same mean on the position itself.
    pub itself: f64,
    /// On grid A (no previous grid): mean attention on the previous token.
    pub previous_token_first_grid: f64,
}

/// Experiment 2: layer 0's attention patterns, per head, and the mean
/// pattern of the head that looks most at the previous grid's cell, as
/// `[window, window]` (the first `window` positions).
pub fn layer0_attention(
    model: &Gpt,
    layout: &Layout,
    quizzes: &[Quiz],
    batch_size: usize,
    window: usize,
) -> Result<(Vec<HeadAttention>, Vec<f32>, usize)> {
    check_model(model, layout)?;
    let seqs = sequences(quizzes, layout)?;
    let heads = model.config().n_heads;
    let (p, cells) = (layout.seq_len(), layout.cells());
    let window = window.min(p);
    let site = HookSite::attn_pattern(0);
    let mut sums = vec![[0f64; 4]; heads];
    let mut counts = [0usize; 2];
    let mut mean_pattern = vec![0f64; heads * window * window];
    for batch in seqs.chunks(batch_size.max(1)) {
        let tokens = model.tokens(batch)?;
        let cache = model.collect(&tokens, &[site])?;
        let pattern: Tensor<4> = cache.tensor(site)?;
        let host = kibitzer_sae::ops::to_host(pattern.reshape([batch.len() * heads * p, p]));
        let at =
            |b: usize, h: usize, q: usize, k: usize| host[((b * heads + h) * p + q) * p + k] as f64;
        for b in 0..batch.len() {
            for q in 1..p - 1 {
                let next = q + 1;
                let grid = (0..4).rev().find(|&g| next >= layout.grid_start(g));
                match grid {
                    Some(g) if g >= 1 && next < layout.grid_start(g) + cells => {
                        counts[0] += 1;
                        for (h, s) in sums.iter_mut().enumerate() {
                            s[0] += at(b, h, q, q - cells);
                            s[1] += at(b, h, q, q - 1);
                            s[2] += at(b, h, q, q);
                        }
                    }
                    Some(0) if next < layout.grid_start(0) + cells => {
                        counts[1] += 1;
                        for (h, s) in sums.iter_mut().enumerate() {
                            s[3] += at(b, h, q, q - 1);
                        }
                    }
                    _ => {}
                }
            }
            for h in 0..heads {
                for q in 0..window {
                    for k in 0..window {
                        mean_pattern[(h * window + q) * window + k] += at(b, h, q, k);
                    }
                }
            }
        }
    }
    let heads_report: Vec<HeadAttention> = sums
        .iter()
        .enumerate()
        .map(|(head, s)| HeadAttention {
            head,
            same_cell_previous_grid: s[0] / counts[0].max(1) as f64,
            previous_token: s[1] / counts[0].max(1) as f64,
            itself: s[2] / counts[0].max(1) as f64,
            previous_token_first_grid: s[3] / counts[1].max(1) as f64,
        })
        .collect();
    let best = heads_report
        .iter()
        .max_by(|a, b| {
            a.same_cell_previous_grid
                .total_cmp(&b.same_cell_previous_grid)
        })
        .map_or(0, |h| h.head);
    let n = seqs.len().max(1) as f64;
    let picture = mean_pattern[best * window * window..(best + 1) * window * window]
        .iter()
        .map(|&v| (v / n) as f32)
        .collect();
    Ok((heads_report, picture, best))
}

/// Experiment 2's direct path: everything but attention layer 0 removed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DirectPath {
    /// Quizzes scored.
    pub quizzes: usize,
    /// Fraction of quizzes whose greedily written fourth grid is the third
    /// grid (B) cell for cell.
    pub writes_previous_grid: f64,
    /// Fraction of fourth-grid cells predicted as B's cell (given B as the
    /// prefix).
    pub previous_grid_cells: f64,
    /// Fraction of quizzes whose written grid is the right answer.
    pub accuracy: f64,
}

/// The sites a direct path through attention layer 0 zero-ablates: every
/// other attention output and every MLP output.
pub fn direct_path_run(n_layers: usize) -> Run {
    let mut sites: Vec<HookSite> = (1..n_layers).map(HookSite::attn_out).collect();
    sites.extend((0..n_layers).map(HookSite::mlp_out));
    Run::Zero(sites)
}

/// Experiment 2: the model reduced to embeddings, attention layer 0 and
/// the unembedding (`W_E A_0 W_U`): how often it writes the previous grid.
///
/// "Writes B" is scored as greedy writing would: the fourth grid is set to
/// B and scored teacher-forced, which is exact for the same reason as the
/// accuracy (see [`score`]).
pub fn direct_path(
    model: &Gpt,
    layout: &Layout,
    quizzes: &[Quiz],
    batch_size: usize,
) -> Result<DirectPath> {
    let run = direct_path_run(model.config().n_layers);
    let right = score(model, layout, quizzes, &run, batch_size)?;
    let copies: Vec<Quiz> = quizzes
        .iter()
        .map(|q| {
            let mut c = q.clone();
            c.grids[3] = q.grids[2].clone();
            c
        })
        .collect();
    let copy = score(model, layout, &copies, &run, batch_size)?;
    let n = quizzes.len().max(1) as f64;
    let cells: usize = copy.iter().map(|s| s.predicted.len()).sum();
    Ok(DirectPath {
        quizzes: quizzes.len(),
        writes_previous_grid: copy.iter().filter(|s| s.exact()).count() as f64 / n,
        previous_grid_cells: copy.iter().map(|s| s.right).sum::<usize>() as f64
            / cells.max(1) as f64,
        accuracy: right.iter().filter(|s| s.exact()).count() as f64 / n,
    })
}

/// Experiment 3: per-task accuracy with each block's MLP zero-ablated.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MlpAblation {
    /// The clean model's table.
    pub clean: AccuracyTable,
    /// One table per block, its MLP output zero-ablated.
    pub ablated: Vec<AccuracyTable>,
    /// The block whose ablation costs `contact` the most beyond what it
    /// costs the other tasks (see [`contact_block`]): the reference's block
    /// 8, whose ablation "primarily impacted the contact task". `None`
    /// without contact quizzes.
    pub contact_block: Option<usize>,
    /// The block whose ablation costs `contact` the most accuracy, whatever
    /// it costs the other tasks (ties: the one that costs them least).
    #[serde(default)]
    pub largest_contact_drop: Option<usize>,
}

/// Experiment 3.
pub fn mlp_ablation(
    model: &Gpt,
    layout: &Layout,
    quizzes: &[Quiz],
    batch_size: usize,
) -> Result<MlpAblation> {
    let clean = AccuracyTable::new(
        quizzes,
        &score(model, layout, quizzes, &Run::Clean, batch_size)?,
    );
    let mut ablated = Vec::new();
    for layer in 0..model.config().n_layers {
        let run = Run::Zero(vec![HookSite::mlp_out(layer)]);
        ablated.push(AccuracyTable::new(
            quizzes,
            &score(model, layout, quizzes, &run, batch_size)?,
        ));
    }
    Ok(MlpAblation {
        contact_block: contact_block(&clean, &ablated),
        largest_contact_drop: largest_contact_drop(&clean, &ablated),
        clean,
        ablated,
    })
}

/// Accuracy lost by `ablated` against `clean`: contact's, and the mean over
/// the other tasks (0 without other tasks). `None` without contact quizzes.
fn contact_drops(clean: &AccuracyTable, ablated: &AccuracyTable) -> Option<(f64, f64)> {
    let contact = clean.task(TaskKind::Contact)?.accuracy;
    let contact_drop = contact - ablated.task(TaskKind::Contact).map_or(0.0, |r| r.accuracy);
    let others: Vec<f64> = clean
        .tasks
        .iter()
        .filter(|(n, _)| n.as_str() != TaskKind::Contact.name())
        .map(|(n, r)| r.accuracy - ablated.tasks.get(n).map_or(0.0, |a| a.accuracy))
        .collect();
    let others_drop = others.iter().sum::<f64>() / others.len().max(1) as f64;
    Some((contact_drop, others_drop))
}

/// The block (index into `ablated`) whose ablation costs `contact` the most
/// beyond what it costs the other tasks: the largest contact drop minus the
/// other tasks' mean drop (ties: the larger contact drop). A block that
/// every task needs (a small model's first MLP) is not the one that
/// carries contact; the reference's block 8 is named for hurting contact
/// while the other tasks survive. `None` without contact quizzes or blocks.
pub fn contact_block(clean: &AccuracyTable, ablated: &[AccuracyTable]) -> Option<usize> {
    block_by_drops(clean, ablated, |(ca, oa), (cb, ob)| {
        (ca - oa).total_cmp(&(cb - ob)).then(ca.total_cmp(&cb))
    })
}

/// The block whose ablation costs `contact` the most accuracy, whatever it
/// costs the other tasks (ties: the one that costs them least).
pub fn largest_contact_drop(clean: &AccuracyTable, ablated: &[AccuracyTable]) -> Option<usize> {
    block_by_drops(clean, ablated, |(ca, oa), (cb, ob)| {
        ca.total_cmp(&cb).then(ob.total_cmp(&oa))
    })
}

/// The block whose (contact drop, other tasks' mean drop) is greatest by
/// `order`.
fn block_by_drops(
    clean: &AccuracyTable,
    ablated: &[AccuracyTable],
    order: impl Fn((f64, f64), (f64, f64)) -> std::cmp::Ordering,
) -> Option<usize> {
    let drops: Vec<(f64, f64)> = ablated
        .iter()
        .map(|t| contact_drops(clean, t))
        .collect::<Option<_>>()?;
    (0..drops.len()).max_by(|&a, &b| order(drops[a], drops[b]))
}

/// Experiment 4: an SAE spliced in place of an MLP's output.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpliceReport {
    /// The site.
    pub site: String,
    /// Clean model.
    pub clean: AccuracyTable,
    /// SAE reconstruction in place of the site.
    pub spliced: AccuracyTable,
    /// The site zero-ablated.
    pub zero_ablated: AccuracyTable,
    /// `(loss_zero - loss_spliced) / (loss_zero - loss_clean)` on the
    /// final grid.
    pub loss_recovered: f64,
    /// The same fraction for exact-grid accuracy.
    pub accuracy_recovered: f64,
}

/// Experiment 4: accuracy and loss recovered with `sae` spliced at `site`.
pub fn splice_report(
    model: &Gpt,
    layout: &Layout,
    quizzes: &[Quiz],
    site: HookSite,
    sae: Arc<Sae>,
    batch_size: usize,
) -> Result<SpliceReport> {
    check_dictionary(model, site, &sae)?;
    let table = |run: &Run| -> Result<AccuracyTable> {
        Ok(AccuracyTable::new(
            quizzes,
            &score(model, layout, quizzes, run, batch_size)?,
        ))
    };
    let clean = table(&Run::Clean)?;
    let spliced = table(&Run::Dictionary {
        site,
        dictionary: sae,
        gains: None,
    })?;
    let zero_ablated = table(&Run::Zero(vec![site]))?;
    let frac = |c: f64, s: f64, z: f64| {
        if (z - c).abs() < 1e-12 {
            f64::NAN
        } else {
            (z - s) / (z - c)
        }
    };
    Ok(SpliceReport {
        site: site.to_string(),
        loss_recovered: frac(
            clean.overall.loss,
            spliced.overall.loss,
            zero_ablated.overall.loss,
        ),
        accuracy_recovered: frac(
            clean.overall.accuracy,
            spliced.overall.accuracy,
            zero_ablated.overall.accuracy,
        ),
        clean,
        spliced,
        zero_ablated,
    })
}

/// Checks that `sae` reads and writes `site` of `model`.
pub fn check_dictionary(model: &Gpt, site: HookSite, sae: &Sae) -> Result<()> {
    let d = model.config().d_model;
    if sae.d_in() != d || sae.d_out() != d {
        return Err(QuizError::Input(format!(
            "the SAE reads {} and writes {} values, but {site} of this model is {d} wide",
            sae.d_in(),
            sae.d_out()
        )));
    }
    Ok(())
}

/// One quiz that the model gets right and gets wrong with the MLP ablated:
/// where it first goes wrong (reference 004's "transform cell").
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TransformCell {
    /// Index of the quiz in the set.
    pub quiz: usize,
    /// Token position of the first wrong cell.
    pub position: usize,
    /// The right token there.
    pub right: u32,
    /// What the ablated model predicts there.
    pub ablated: u32,
}

/// Experiment 5, first half: the quizzes of `task` the clean model gets
/// right and the model with `site` zero-ablated gets wrong, with their
/// transform cells.
pub fn transform_cells(
    model: &Gpt,
    layout: &Layout,
    quizzes: &[Quiz],
    site: HookSite,
    task: TaskKind,
    batch_size: usize,
) -> Result<Vec<TransformCell>> {
    let picked: Vec<usize> = (0..quizzes.len())
        .filter(|&i| quizzes[i].task == task)
        .collect();
    let subset: Vec<Quiz> = picked.iter().map(|&i| quizzes[i].clone()).collect();
    let clean = score(model, layout, &subset, &Run::Clean, batch_size)?;
    let ablated = score(model, layout, &subset, &Run::Zero(vec![site]), batch_size)?;
    let start = layout.answer_range().start;
    Ok(picked
        .iter()
        .zip(clean.iter().zip(&ablated))
        .filter_map(|(&i, (c, a))| {
            let wrong = a.first_wrong?;
            c.exact().then(|| TransformCell {
                quiz: i,
                position: start + wrong,
                right: quizzes[i].tokens()[start + wrong],
                ablated: a.predicted[wrong],
            })
        })
        .collect())
}

/// A feature and how it ranks at the transform cells.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RankedFeature {
    /// Feature index.
    pub feature: usize,
    /// How many transform cells have it among their top 3 by activation.
    pub top3_count: usize,
    /// Its mean activation at the transform cells.
    pub mean_activation: f64,
    /// Its trained multiplier (experiment 5's second ranking), if trained.
    pub multiplier: Option<f64>,
}

/// The SAE's features at the transform cells (at the position that
/// predicts each cell): `[cells, d_sae]` on the host.
pub fn transform_cell_features(
    model: &Gpt,
    quizzes: &[Quiz],
    cells: &[TransformCell],
    site: HookSite,
    sae: &Sae,
    batch_size: usize,
) -> Result<Vec<Vec<f32>>> {
    check_dictionary(model, site, sae)?;
    let d = model.config().d_model;
    let mut out = Vec::with_capacity(cells.len());
    for chunk in cells.chunks(batch_size.max(1)) {
        let seqs: Vec<Vec<u32>> = chunk.iter().map(|c| quizzes[c.quiz].tokens()).collect();
        let tokens = model.tokens(&seqs)?;
        let cache = model.collect(&tokens, &[site])?;
        let act: Tensor<3> = cache.tensor(site)?;
        let rows: Vec<Tensor<2>> = chunk
            .iter()
            .enumerate()
            .map(|(b, c)| {
                act.clone()
                    .slice([b..b + 1, c.position - 1..c.position, 0..d])
                    .reshape([1, d])
            })
            .collect();
        let features = sae.encode(Tensor::cat(rows, 0));
        let host = kibitzer_sae::ops::to_host(features);
        out.extend(host.chunks(sae.d_sae()).map(<[f32]>::to_vec));
    }
    Ok(out)
}

/// Ranks features by how often they are among the top 3 at the transform
/// cells (then by mean activation); the first `n`.
pub fn rank_by_activation(features: &[Vec<f32>], n: usize) -> Vec<RankedFeature> {
    let d = features.first().map_or(0, Vec::len);
    let mut count = vec![0usize; d];
    let mut sum = vec![0f64; d];
    for row in features {
        let mut order: Vec<usize> = (0..d).filter(|&i| row[i] > 0.0).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        for &i in order.iter().take(3) {
            count[i] += 1;
        }
        for (s, &v) in sum.iter_mut().zip(row) {
            *s += v as f64;
        }
    }
    let mut ranked: Vec<usize> = (0..d).collect();
    ranked.sort_by(|&a, &b| count[b].cmp(&count[a]).then(sum[b].total_cmp(&sum[a])));
    ranked
        .into_iter()
        .take(n)
        .map(|feature| RankedFeature {
            feature,
            top3_count: count[feature],
            mean_activation: sum[feature] / features.len().max(1) as f64,
            multiplier: None,
        })
        .collect()
}

/// Settings of the feature multiplier (reference 004: a vector over the
/// features, initialised at zero, very high weight decay).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MultiplierConfig {
    /// Optimiser steps (each over every transform cell, in batches).
    pub steps: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Decoupled weight decay (the reference's 2).
    pub weight_decay: f64,
    /// Quizzes per forward pass.
    pub batch_size: usize,
}

impl Default for MultiplierConfig {
    /// 60 steps at lr 0.02, weight decay 2, 16 quizzes a pass.
    fn default() -> Self {
        MultiplierConfig {
            steps: 60,
            lr: 0.02,
            weight_decay: 2.0,
            batch_size: 16,
        }
    }
}

/// Experiment 5's feature multiplier: a gain per feature `m` (from 0: the
/// site holds only the SAE's decoder bias), trained with AdamW (decoupled
/// weight decay) so that `site` = `decode(encode(x) * m)` at every
/// position makes the model predict the right token at each transform
/// cell (cross-entropy there). Returns `m` and the loss per step.
pub fn train_feature_multiplier(
    model: &Gpt,
    quizzes: &[Quiz],
    cells: &[TransformCell],
    site: HookSite,
    sae: Arc<Sae>,
    config: &MultiplierConfig,
) -> Result<(Vec<f32>, Vec<f64>)> {
    check_dictionary(model, site, &sae)?;
    if cells.is_empty() {
        return Err(QuizError::Input(
            "no transform cells to train the feature multiplier on".into(),
        ));
    }
    let d_sae = sae.d_sae();
    let device = model.device();
    let mut m = vec![0f32; d_sae];
    let (mut m1, mut m2) = (vec![0f64; d_sae], vec![0f64; d_sae]);
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let mut losses = Vec::with_capacity(config.steps);
    // The batches are the same at every step: their token tensors are built once.
    let batches = cells
        .chunks(config.batch_size.max(1))
        .map(|chunk| {
            let seqs: Vec<Vec<u32>> = chunk.iter().map(|c| quizzes[c.quiz].tokens()).collect();
            Ok((chunk, model.tokens(&seqs)?))
        })
        .collect::<Result<Vec<_>>>()?;
    for step in 0..config.steps {
        let mut grad = vec![0f64; d_sae];
        let mut loss_sum = 0.0;
        for (chunk, tokens) in &batches {
            let gains = Tensor::<2>::from_data(TensorData::new(m.clone(), [1, d_sae]), &device)
                .autodiff()
                .require_grad();
            let g = gains.clone();
            let dict = sae.clone();
            let mut hooks = Hooks::new().with(
                site,
                Hook::custom(move |_, act: Activation| {
                    Ok(gained_reconstruction(&act, dict.as_ref(), g.clone()))
                }),
            );
            let logits = model.run_with_hooks(tokens, &mut hooks)?;
            let [_, _, v] = logits.dims();
            let mut picked = Vec::with_capacity(chunk.len());
            for (b, c) in chunk.iter().enumerate() {
                let row = logits
                    .clone()
                    .slice([b..b + 1, c.position - 1..c.position, 0..v])
                    .reshape([1, v]);
                let logp = burn::tensor::activation::log_softmax(row, 1);
                picked.push(
                    logp.slice([0..1, c.right as usize..c.right as usize + 1])
                        .reshape([1]),
                );
            }
            let loss = Tensor::cat(picked, 0).sum().neg() / cells.len() as f32;
            loss_sum += kibitzer_sae::ops::scalar(loss.clone().inner());
            let grads = loss.backward();
            let g = gains
                .grad(&grads)
                .map(|t| kibitzer_sae::ops::to_host(t))
                .unwrap_or_else(|| vec![0.0; d_sae]);
            for (a, &b) in grad.iter_mut().zip(&g) {
                *a += b as f64;
            }
        }
        losses.push(loss_sum);
        let t = (step + 1) as i32;
        for i in 0..d_sae {
            m1[i] = b1 * m1[i] + (1.0 - b1) * grad[i];
            m2[i] = b2 * m2[i] + (1.0 - b2) * grad[i] * grad[i];
            let update = (m1[i] / (1.0 - b1.powi(t))) / ((m2[i] / (1.0 - b2.powi(t))).sqrt() + eps);
            let decayed = m[i] as f64 * (1.0 - config.lr * config.weight_decay);
            m[i] = (decayed - config.lr * update) as f32;
        }
    }
    Ok((m, losses))
}

/// One way of keeping features, and the accuracy it recovers.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recovery {
    /// What was kept, e.g. "top feature x15".
    pub name: String,
    /// The features kept.
    pub features: Vec<usize>,
    /// Their gain.
    pub gain: f32,
    /// Exact-grid accuracy on the transform-cell quizzes.
    pub accuracy: f64,
}

/// Experiment 5, second half: on the quizzes of `cells`, `site` replaced
/// by the SAE's reconstruction from `features` alone, each times `gain`
/// (the others zeroed): how many quizzes the model gets right again.
pub fn feature_recovery(
    model: &Gpt,
    layout: &Layout,
    quizzes: &[Quiz],
    cells: &[TransformCell],
    site: HookSite,
    sae: Arc<Sae>,
    keep: &[(String, Vec<usize>, f32)],
    batch_size: usize,
) -> Result<Vec<Recovery>> {
    let subset: Vec<Quiz> = cells.iter().map(|c| quizzes[c.quiz].clone()).collect();
    let mut out = Vec::new();
    for (name, features, gain) in keep {
        let mut gains = vec![0f32; sae.d_sae()];
        for &f in features {
            gains[f] = *gain;
        }
        let run = Run::Dictionary {
            site,
            dictionary: sae.clone(),
            gains: Some(gains),
        };
        let scores = score(model, layout, &subset, &run, batch_size)?;
        out.push(Recovery {
            name: name.clone(),
            features: features.clone(),
            gain: *gain,
            accuracy: scores.iter().filter(|s| s.exact()).count() as f64
                / subset.len().max(1) as f64,
        });
    }
    Ok(out)
}

/// Experiment 6: a feature's decoder direction added on other tasks.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SteeringRow {
    /// The features added (their decoder rows summed).
    pub features: Vec<usize>,
    /// The multiplier of the summed direction.
    pub scale: f32,
    /// Exact-grid accuracy on the quizzes steered.
    pub accuracy: f64,
    /// Accuracy without steering on the same quizzes.
    pub clean_accuracy: f64,
    /// Fraction of quizzes whose written grid differs from the clean one.
    pub changed: f64,
    /// Fraction of final-grid cells written differently.
    pub changed_cells: f64,
}

/// Experiment 6: the decoder directions of `features`, summed and scaled
/// by each of `scales`, added to `site` at every position, on `quizzes`
/// (the non-contact ones): does the output change, and how?
pub fn steering(
    model: &Gpt,
    layout: &Layout,
    quizzes: &[Quiz],
    site: HookSite,
    sae: &Sae,
    features: &[usize],
    scales: &[f32],
    batch_size: usize,
) -> Result<Vec<SteeringRow>> {
    check_dictionary(model, site, sae)?;
    let directions = kibitzer_sae::ops::to_host(sae.decoder_directions());
    let d = sae.d_out();
    let mut direction = vec![0f32; d];
    for &f in features {
        if f >= sae.d_sae() {
            return Err(QuizError::Input(format!(
                "feature {f} is outside the SAE's {} features",
                sae.d_sae()
            )));
        }
        for (v, &w) in direction.iter_mut().zip(&directions[f * d..(f + 1) * d]) {
            *v += w;
        }
    }
    let clean = score(model, layout, quizzes, &Run::Clean, batch_size)?;
    let n = quizzes.len().max(1) as f64;
    let clean_accuracy = clean.iter().filter(|s| s.exact()).count() as f64 / n;
    let mut rows = Vec::new();
    for &scale in scales {
        let run = Run::Add {
            site,
            direction: direction.clone(),
            scale,
        };
        let steered = score(model, layout, quizzes, &run, batch_size)?;
        // Greedy writing of the clean and the steered model: where their
        // teacher-forced predictions first differ is where the written grids
        // part, so a quiz whose predictions all agree writes the same grid.
        let changed = clean
            .iter()
            .zip(&steered)
            .filter(|(c, s)| c.predicted != s.predicted)
            .count() as f64;
        let (diff, cells) = clean.iter().zip(&steered).fold((0, 0), |(d, n), (c, s)| {
            (
                d + c
                    .predicted
                    .iter()
                    .zip(&s.predicted)
                    .filter(|(a, b)| a != b)
                    .count(),
                n + c.predicted.len(),
            )
        });
        rows.push(SteeringRow {
            features: features.to_vec(),
            scale,
            accuracy: steered.iter().filter(|s| s.exact()).count() as f64 / n,
            clean_accuracy,
            changed: changed / n,
            changed_cells: diff as f64 / cells.max(1) as f64,
        });
    }
    Ok(rows)
}

/// A fourth grid written by a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    /// The tokens written, one per cell (a marker token may stand where a
    /// cell belongs: reference 004's ablated model writes some).
    pub tokens: Vec<u32>,
    /// The tokens as a grid for pictures, markers shown as the empty colour.
    pub grid: Grid,
}

impl Written {
    /// Whether the written tokens are exactly `quiz`'s answer.
    pub fn is_right(&self, quiz: &Quiz) -> bool {
        let answer: Vec<u32> = quiz
            .answer()
            .cells()
            .iter()
            .map(|&c| u32::from(c))
            .collect();
        self.tokens == answer
    }

    /// Cells where a marker token was written.
    pub fn markers(&self) -> usize {
        self.tokens
            .iter()
            .filter(|&&t| t >= kibitzer_quizzes::N_COLOURS)
            .count()
    }
}

/// The fourth grids the model writes greedily on `quizzes` under `run`,
/// token by token (for pictures).
pub fn written_grids(
    model: &Gpt,
    layout: &Layout,
    quizzes: &[Quiz],
    run: &Run,
    batch_size: usize,
) -> Result<Vec<Written>> {
    check_model(model, layout)?;
    let seqs = sequences(quizzes, layout)?;
    let prompts: Vec<Vec<u32>> = seqs
        .iter()
        .map(|s| s[..layout.prompt_len()].to_vec())
        .collect();
    let written = write_greedy(model, &prompts, layout.cells(), batch_size, &mut |_| {
        run.hooks()
    })?;
    Ok(written
        .into_iter()
        .map(|tokens| {
            let mut grid = Grid::new(layout.grid_size);
            for (i, &t) in tokens.iter().enumerate() {
                let colour = if t < kibitzer_quizzes::N_COLOURS {
                    t as u8
                } else {
                    0
                };
                grid.set(i / layout.grid_size, i % layout.grid_size, colour);
            }
            Written { tokens, grid }
        })
        .collect())
}

/// An SVG heatmap of an attention pattern `[n, n]` (queries down, keys
/// across), white 0 to dark blue 1.
pub fn pattern_svg(pattern: &[f32], n: usize, title: &str) -> String {
    let cell = (600.0 / n.max(1) as f64).max(1.0);
    let size = cell * n as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\n<text x=\"4\" y=\"16\" font-family=\"sans-serif\" font-size=\"13\">{}</text>\n<g transform=\"translate(0,24)\">\n<rect width=\"{size}\" height=\"{size}\" fill=\"white\" stroke=\"#888\"/>\n",
        kibitzer_charts::escape_xml(title),
        w = size + 2.0,
        h = size + 26.0,
    );
    let max = pattern.iter().copied().fold(0f32, f32::max).max(1e-6);
    for q in 0..n {
        for k in 0..=q.min(n - 1) {
            let v = pattern[q * n + k] / max;
            if v < 0.02 {
                continue;
            }
            let shade = (255.0 * (1.0 - v)).round() as u8;
            svg += &format!(
                "<rect x=\"{:.2}\" y=\"{:.2}\" width=\"{cell:.2}\" height=\"{cell:.2}\" fill=\"rgb({shade},{shade},255)\"/>\n",
                k as f64 * cell,
                q as f64 * cell
            );
        }
    }
    svg += "</g>\n</svg>\n";
    svg
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use kibitzer_hooks::exact_dictionary;
    use kibitzer_quizzes::QuizGenerator;

    fn setup(n: u64) -> (Layout, Vec<Quiz>, Gpt) {
        let layout = Layout::new(8).unwrap();
        let quizzes = QuizGenerator::new(8, &[TaskKind::Frame, TaskKind::Contact], 4)
            .unwrap()
            .generate(0..n);
        let model = Gpt::new(
            culture_gpt_config(&layout, 2, 32, 2, 64, 1),
            &Device::flex(),
        )
        .unwrap();
        (layout, quizzes, model)
    }

    #[test]
    fn loss_targets_name_the_transformed_grids() {
        // 8x8 grids: BOS, A's marker at 1 (cells 2..66), f(A)'s at 66
        // (67..131), B's at 131 (132..196), f(B)'s at 196 (197..261).
        let layout = Layout::new(8).unwrap();
        assert_eq!(LossOn::Final.targets(&layout), vec![197..261]);
        assert_eq!(LossOn::Answers.targets(&layout), vec![67..131, 197..261]);
        assert_eq!(LossOn::All.targets(&layout), vec![1..261]);
        for l in [LossOn::Final, LossOn::Answers, LossOn::All] {
            assert_eq!(l.name().parse::<LossOn>(), Ok(l));
        }
        assert!(
            "fourth"
                .parse::<LossOn>()
                .unwrap_err()
                .contains("final, answers or all")
        );
    }

    fn row(accuracy: f64) -> AccuracyRow {
        AccuracyRow {
            quizzes: 10,
            exact: (accuracy * 10.0) as usize,
            accuracy,
            loss: 0.1,
            cell_accuracy: 0.9,
        }
    }

    fn table(contact: f64, frame: f64) -> AccuracyTable {
        AccuracyTable {
            overall: row((contact + frame) / 2.0),
            tasks: [
                ("contact".to_string(), row(contact)),
                ("frame".to_string(), row(frame)),
            ]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn the_culture_shape_and_the_grid_size_it_reads() {
        for s in 8..=12 {
            let layout = Layout::new(s).unwrap();
            let c = culture_gpt_config(&layout, 12, 512, 8, 2048, 0);
            assert_eq!(model_grid_size(&c), Some(s));
            assert_eq!(
                (c.final_ln, c.positional_embedding_type, c.act_fn),
                (false, Positional::Sinusoidal, ActFn::Relu)
            );
        }
        let (_, quizzes, model) = setup(2);
        let ten = Layout::new(10).unwrap();
        let err = check_model(&model, &ten).unwrap_err().to_string();
        assert!(err.contains("8x8") && err.contains("10x10"), "{err}");
        let big = QuizGenerator::new(10, &[TaskKind::Frame], 0)
            .unwrap()
            .generate(0..1);
        assert!(sequences(&big, &Layout::new(8).unwrap()).is_err());
        assert_eq!(
            sequences(&quizzes, &Layout::new(8).unwrap()).unwrap()[0].len(),
            261
        );
    }

    #[test]
    fn an_exact_dictionary_spliced_in_changes_nothing() {
        let (layout, quizzes, model) = setup(6);
        let site = HookSite::mlp_out(1);
        let exact = Arc::new(exact_dictionary(32, &model.device()));
        let clean = score(&model, &layout, &quizzes, &Run::Clean, 4).unwrap();
        for gains in [None, Some(vec![1.0; 64])] {
            let run = Run::Dictionary {
                site,
                dictionary: exact.clone(),
                gains,
            };
            let spliced = score(&model, &layout, &quizzes, &run, 4).unwrap();
            for (c, s) in clean.iter().zip(&spliced) {
                assert_eq!(c.predicted, s.predicted);
                assert!((c.loss - s.loss).abs() < 1e-4, "{} vs {}", c.loss, s.loss);
            }
        }
        let report = splice_report(&model, &layout, &quizzes, site, exact, 4).unwrap();
        assert!((report.loss_recovered - 1.0).abs() < 1e-3, "{report:?}");
        // Zero gains leave only the decoder bias (0 here): a zero ablation.
        let zero = score(&model, &layout, &quizzes, &Run::Zero(vec![site]), 4).unwrap();
        let run = Run::Dictionary {
            site,
            dictionary: Arc::new(exact_dictionary(32, &model.device())),
            gains: Some(vec![0.0; 64]),
        };
        let gained = score(&model, &layout, &quizzes, &run, 4).unwrap();
        for (z, g) in zero.iter().zip(&gained) {
            assert!((z.loss - g.loss).abs() < 1e-4);
        }
    }

    #[test]
    fn ablation_tables_cover_every_layer_and_head() {
        let (layout, quizzes, model) = setup(4);
        let rows = attention_ablation(&model, &layout, &quizzes, 4).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].layer, None);
        assert!((rows[0].loss_ratio - 1.0).abs() < 1e-12);
        assert!(
            rows[1..]
                .iter()
                .any(|r| (r.loss - rows[0].loss).abs() > 1e-6)
        );
        let (heads, picture, best) = layer0_attention(&model, &layout, &quizzes, 2, 40).unwrap();
        assert_eq!(heads.len(), 2);
        assert!(best < 2 && picture.len() == 1600);
        for h in &heads {
            let total = h.same_cell_previous_grid + h.previous_token + h.itself;
            assert!((0.0..=1.0 + 1e-6).contains(&total), "{h:?}");
        }
        // Attention rows are distributions: each row of the picture sums to 1.
        for q in 0..40 {
            let sum: f32 = picture[q * 40..(q + 1) * 40].iter().sum();
            assert!((sum - 1.0).abs() < 1e-4, "row {q} sums to {sum}");
        }
        match direct_path_run(3) {
            Run::Zero(sites) => {
                assert_eq!(sites.len(), 5);
                assert!(!sites.contains(&HookSite::attn_out(0)));
                assert!(sites.contains(&HookSite::mlp_out(0)));
            }
            _ => panic!("the direct path zero-ablates"),
        }
        let direct = direct_path(&model, &layout, &quizzes, 4).unwrap();
        assert!((0.0..=1.0).contains(&direct.previous_grid_cells));
        let mlp = mlp_ablation(&model, &layout, &quizzes, 4).unwrap();
        assert_eq!(mlp.ablated.len(), 2);
        assert!(mlp.contact_block.is_some());
    }

    #[test]
    fn the_contact_block_is_the_one_whose_ablation_hurts_contact_beyond_the_others() {
        let clean = table(0.9, 0.9);
        let ablated = [
            table(0.8, 0.9),
            table(0.2, 0.8),
            table(0.2, 0.3),
            table(0.9, 0.1),
            table(0.0, 0.0),
        ];
        // Block 4 breaks everything: the largest drop in contact, none of
        // it contact's own. Blocks 1 and 2 cost contact the same; 1 spares
        // frame.
        assert_eq!(contact_block(&clean, &ablated), Some(1));
        assert_eq!(largest_contact_drop(&clean, &ablated), Some(4));
        // Ties in contact's drop go to the block that spares the others.
        assert_eq!(largest_contact_drop(&clean, &ablated[..4]), Some(1));
        let no_contact = AccuracyTable {
            overall: row(0.5),
            tasks: [("frame".to_string(), row(0.5))].into_iter().collect(),
        };
        assert_eq!(contact_block(&no_contact, &ablated), None);
        assert_eq!(largest_contact_drop(&no_contact, &ablated), None);
    }

    #[test]
    fn the_feature_multiplier_learns_to_predict_the_transform_cells() {
        let (layout, quizzes, model) = setup(6);
        let site = HookSite::mlp_out(0);
        let start = layout.answer_range().start;
        let cells: Vec<TransformCell> = (0..quizzes.len())
            .map(|i| TransformCell {
                quiz: i,
                position: start + 9,
                right: quizzes[i].tokens()[start + 9],
                ablated: 0,
            })
            .collect();
        let sae = Arc::new(exact_dictionary(32, &model.device()));
        let config = MultiplierConfig {
            steps: 12,
            lr: 0.05,
            weight_decay: 0.0,
            batch_size: 4,
        };
        let (m, losses) =
            train_feature_multiplier(&model, &quizzes, &cells, site, sae.clone(), &config).unwrap();
        assert_eq!((m.len(), losses.len()), (64, 12));
        assert!(losses[11] < losses[0] - 1e-3, "{losses:?}");
        assert!(m.iter().any(|&g| g != 0.0));
        // Weight decay pulls unused gains back to zero.
        let decayed = MultiplierConfig {
            weight_decay: 2.0,
            ..config
        };
        let (md, _) =
            train_feature_multiplier(&model, &quizzes, &cells, site, sae, &decayed).unwrap();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>();
        assert!(norm(&md) < norm(&m), "{} vs {}", norm(&md), norm(&m));
    }

    #[test]
    fn steering_by_nothing_changes_nothing_and_a_large_push_changes_grids() {
        let (layout, quizzes, model) = setup(6);
        let site = HookSite::mlp_out(1);
        let sae = exact_dictionary(32, &model.device());
        let rows = steering(
            &model,
            &layout,
            &quizzes,
            site,
            &sae,
            &[3],
            &[0.0, 1000.0],
            3,
        )
        .unwrap();
        assert_eq!(rows[0].changed, 0.0);
        assert_eq!(rows[0].accuracy, rows[0].clean_accuracy);
        assert!(
            rows[1].changed > 0.0 && rows[1].changed_cells > 0.0,
            "{:?}",
            rows[1]
        );
        assert!(steering(&model, &layout, &quizzes, site, &sae, &[64], &[1.0], 3).is_err());
    }

    #[test]
    fn written_grids_are_what_the_scores_say() {
        let (layout, quizzes, model) = setup(3);
        let written = written_grids(&model, &layout, &quizzes, &Run::Clean, 3).unwrap();
        let scores = score(&model, &layout, &quizzes, &Run::Clean, 3).unwrap();
        for ((q, w), s) in quizzes.iter().zip(&written).zip(&scores) {
            // Teacher-forced argmax agrees with greedy writing up to the first wrong cell.
            let upto = s.first_wrong.unwrap_or(layout.cells());
            assert_eq!(w.tokens[..upto], s.predicted[..upto]);
            assert_eq!(w.is_right(q), s.exact());
            assert_eq!(w.tokens.len(), layout.cells());
        }
    }
}
