//! Acting on the policy: raising the threat features at a low rating (with a
//! control of random features matched in activation), the transcoder spliced
//! in place of an MLP, and the calibration fine-tune that teaches the low
//! ratings to externalise the threats as the high ones do.

use std::cell::RefCell;
use std::rc::Rc;

use indicatif::ProgressBar;
use kibitzer_games::chess::Chess;
use kibitzer_hooks::{Activation, FeatureEdit, Hook, HookError, HookSite, Hooks, SharedDictionary};
use kibitzer_models::chess_policy::{ChessExample, ChessPolicy, ChessPolicyTrainer};
use kibitzer_models::params::AdamWConfig;
use kibitzer_sae::metrics::MetricsAccumulator;
use kibitzer_sae::ops::to_host;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::concepts::encode_sparse;
use super::{
    Conditioning, RatedPosition, Result, SkillError, best_move, handles_threat, has_threat,
    log_probs, move_match_by_bucket, predict_moves, site_rows, threat_response,
};

/// Settings of [`intervention_report`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InterventionConfig {
    /// The low rating whose predictions are edited.
    pub low_rating: u32,
    /// The high rating they are compared with.
    pub high_rating: u32,
    /// Factors the features are multiplied by.
    pub scales: Vec<f32>,
    /// Seed of the random control.
    pub seed: u64,
    /// Positions per forward pass.
    pub batch: usize,
}

/// The policy's moves under one edit, over the threat positions.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InterventionRow {
    /// `threat`, `random` (the control), or `none` (baselines).
    pub features: String,
    /// The rating the policy is told.
    pub rating: u32,
    /// The factor (1: unedited).
    pub scale: f32,
    /// Positions where the move handles a threat.
    pub handled: usize,
    /// `handled / positions`.
    pub handled_rate: f64,
    /// Share of positions where the move captures a threatened enemy piece.
    pub captures: f64,
    /// Share of positions where the move saves threatened material.
    pub saves: f64,
    /// Share of positions where the move is the high rating's (unedited).
    pub match_high: f64,
    /// Mean KL divergence from the high rating's move distribution to this
    /// one, in nats.
    pub kl_to_high: f64,
    /// Share of positions where the move differs from the low rating's
    /// unedited move.
    pub changed: f64,
}

/// Everything [`intervention_report`] measured.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InterventionReport {
    /// The hook site.
    pub site: String,
    /// The settings.
    pub config: InterventionConfig,
    /// Threat positions edited.
    pub positions: usize,
    /// The threat features raised, with their mean activation at the low
    /// rating.
    pub threat_features: Vec<(usize, f64)>,
    /// The control: as many random features, each drawn from the ten unused
    /// features whose mean activation is nearest a threat feature's.
    pub random_features: Vec<(usize, f64)>,
    /// Baselines (low and high, unedited) first, then one row per feature
    /// set and scale.
    pub rows: Vec<InterventionRow>,
}

/// Random features matched in mean activation to `chosen`: for each, one of
/// the ten nearest unused features, drawn with `seed`.
pub fn matched_random_features(means: &[f64], chosen: &[usize], seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut used: Vec<bool> = (0..means.len()).map(|f| chosen.contains(&f)).collect();
    let mut out = Vec::with_capacity(chosen.len());
    for &f in chosen {
        let mut candidates: Vec<usize> = (0..means.len()).filter(|&g| !used[g]).collect();
        candidates.sort_by(|&a, &b| {
            (means[a] - means[f])
                .abs()
                .total_cmp(&(means[b] - means[f]).abs())
                .then(a.cmp(&b))
        });
        candidates.truncate(10);
        if let Some(&pick) = candidates.get(rng.random_range(0..candidates.len().max(1))) {
            used[pick] = true;
            out.push(pick);
        }
    }
    out
}

/// Raises `features` of `dictionary` (read at `site`) by each scale while the
/// policy is told the low rating, on the positions of `positions` that hold a
/// threat, and compares the moves with the high rating's; the same for a
/// matched random control. The dictionary's error term is kept, so scale 1
/// is the unedited policy.
pub fn intervention_report(
    policy: &ChessPolicy,
    dictionary: SharedDictionary,
    site: HookSite,
    positions: &[Chess],
    features: &[usize],
    config: &InterventionConfig,
) -> Result<InterventionReport> {
    let threats: Vec<Chess> = positions
        .iter()
        .filter(|p| has_threat(p))
        .cloned()
        .collect();
    if threats.is_empty() {
        return Err(SkillError::Input(
            "no position holds a threat; expected held-out positions with a threatened piece"
                .into(),
        ));
    }
    if let Some(&bad) = features.iter().find(|&&f| f >= dictionary.d_sae()) {
        return Err(SkillError::Input(format!(
            "feature {bad} is out of range: the dictionary has {} features",
            dictionary.d_sae()
        )));
    }
    let at =
        |r: u32| -> Vec<(Chess, u32, u32)> { threats.iter().map(|p| (p.clone(), r, r)).collect() };
    let (low_inputs, high_inputs) = (at(config.low_rating), at(config.high_rating));
    // Mean activation of every feature at the low rating, for the control.
    let (rows, width) = site_rows(policy, &low_inputs, site, None, config.batch)?;
    let acts = encode_sparse(&*dictionary, &rows, width, &policy.device())?;
    let n_rows = (rows.len() / width.max(1)).max(1) as f64;
    let means: Vec<f64> = (0..acts.cols())
        .map(|f| acts.column(f).1.iter().map(|&v| f64::from(v)).sum::<f64>() / n_rows)
        .collect();
    let random = matched_random_features(&means, features, config.seed);
    let plain = || Hooks::new();
    let high = log_probs(policy, &high_inputs, config.batch, &mut || plain())?;
    let low = log_probs(policy, &low_inputs, config.batch, &mut || plain())?;
    let high_moves: Vec<_> = threats
        .iter()
        .zip(&high)
        .map(|(p, row)| best_move(p, row))
        .collect::<Result<_>>()?;
    let low_moves: Vec<_> = threats
        .iter()
        .zip(&low)
        .map(|(p, row)| best_move(p, row))
        .collect::<Result<_>>()?;
    let row_of =
        |name: &str, rating: u32, scale: f32, probs: &[Vec<f32>]| -> Result<InterventionRow> {
            let mut r = InterventionRow {
                features: name.into(),
                rating,
                scale,
                handled: 0,
                handled_rate: 0.0,
                captures: 0.0,
                saves: 0.0,
                match_high: 0.0,
                kl_to_high: 0.0,
                changed: 0.0,
            };
            for (i, (position, row)) in threats.iter().zip(probs).enumerate() {
                let mv = best_move(position, row)?;
                let response = threat_response(position, mv);
                r.handled += usize::from(response.handles());
                r.captures += f64::from(u8::from(response.captures));
                r.saves += f64::from(u8::from(response.saves));
                r.match_high += f64::from(u8::from(mv == high_moves[i]));
                r.changed += f64::from(u8::from(mv != low_moves[i]));
                r.kl_to_high += high[i]
                    .iter()
                    .zip(row)
                    .filter(|(h, _)| h.is_finite())
                    .map(|(&h, &e)| f64::from(h).exp() * (f64::from(h) - f64::from(e)))
                    .sum::<f64>();
            }
            let n = threats.len() as f64;
            r.handled_rate = r.handled as f64 / n;
            r.captures /= n;
            r.saves /= n;
            r.match_high /= n;
            r.kl_to_high /= n;
            r.changed /= n;
            Ok(r)
        };
    let mut rows_out = vec![
        row_of("none", config.low_rating, 1.0, &low)?,
        row_of("none", config.high_rating, 1.0, &high)?,
    ];
    for (name, set) in [("threat", features), ("random", &random[..])] {
        for &scale in &config.scales {
            let edits: Vec<FeatureEdit> = set
                .iter()
                .map(|&feature| FeatureEdit::Scale {
                    feature,
                    factor: scale,
                })
                .collect();
            let dict = dictionary.clone();
            let probs = log_probs(policy, &low_inputs, config.batch, &mut || {
                Hooks::new().with(site, Hook::edit_features(dict.clone(), edits.clone()))
            })?;
            rows_out.push(row_of(name, config.low_rating, scale, &probs)?);
        }
    }
    Ok(InterventionReport {
        site: site.to_string(),
        config: config.clone(),
        positions: threats.len(),
        threat_features: features.iter().map(|&f| (f, means[f])).collect(),
        random_features: random.iter().map(|&f| (f, means[f])).collect(),
        rows: rows_out,
    })
}

/// The report as a Markdown table.
pub fn intervention_markdown(report: &InterventionReport) -> String {
    let list = |v: &[(usize, f64)]| {
        v.iter()
            .map(|(f, m)| format!("{f} ({m:.3})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut md = format!(
        "# Feature-mediated intervention at {}\n\n{} held-out positions with a threat. The policy is told rating {} (both sides); the threat features are multiplied by each scale (error term kept), and the control multiplies as many random features of matched mean activation.\n\n- threat features (mean activation): {}\n- random control: {}\n\n",
        report.site,
        report.positions,
        report.config.low_rating,
        list(&report.threat_features),
        list(&report.random_features)
    );
    md.push_str("| features | rating | scale | handles a threat | captures | saves | = high rating's move | KL(high ‖ this) | changed |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &report.rows {
        md.push_str(&format!(
            "| {} | {} | {} | {:.3} ({}) | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
            r.features,
            r.rating,
            r.scale,
            r.handled_rate,
            r.handled,
            r.captures,
            r.saves,
            r.match_high,
            r.kl_to_high,
            r.changed
        ));
    }
    md
}

/// How well a transcoder stands in for one MLP.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TranscoderFidelity {
    /// The block.
    pub layer: usize,
    /// Square-token rows scored.
    pub rows: u64,
    /// Fraction of the MLP output's variance the transcoder leaves
    /// unexplained.
    pub fvu: f64,
    /// Mean active features per row.
    pub l0: f64,
    /// Features that never fired.
    pub dead_fraction: f64,
    /// Move-match of the policy (played ratings).
    pub move_match_clean: f64,
    /// Move-match with the transcoder's output in place of the MLP's.
    pub move_match_spliced: f64,
    /// Share of positions where both predict the same move.
    pub agreement: f64,
}

/// Scores `transcoder` (reading `blocks.{layer}.ln2.hook_normalized`,
/// writing `blocks.{layer}.hook_mlp_out`) on `positions`: FVU and L0 on their
/// square tokens, and move-match with it spliced in place of the MLP.
pub fn transcoder_fidelity(
    policy: &ChessPolicy,
    transcoder: SharedDictionary,
    layer: usize,
    positions: &[RatedPosition],
    batch: usize,
) -> Result<TranscoderFidelity> {
    let parse = |name: String| -> Result<HookSite> {
        name.parse()
            .map_err(|e: kibitzer_hooks::ParseSiteError| SkillError::Input(e.to_string()))
    };
    let input_site = parse(format!("blocks.{layer}.ln2.hook_normalized"))?;
    let output_site = parse(format!("blocks.{layer}.hook_mlp_out"))?;
    if layer >= policy.config().n_layers {
        return Err(SkillError::Input(format!(
            "--layer {layer}: the policy has {} blocks",
            policy.config().n_layers
        )));
    }
    let d = policy.config().d_model;
    if transcoder.d_in() != d || transcoder.d_out() != d {
        return Err(SkillError::Input(format!(
            "the transcoder maps {} -> {}; expected {d} -> {d} (this policy's d_model)",
            transcoder.d_in(),
            transcoder.d_out()
        )));
    }
    let mut metrics = MetricsAccumulator::new(d, transcoder.d_sae());
    let (mut clean, mut spliced, mut agree) = (0usize, 0usize, 0usize);
    let inputs = Conditioning::Played.inputs(positions);
    for (chunk, rated) in inputs
        .chunks(batch.max(1))
        .zip(positions.chunks(batch.max(1)))
    {
        let input = policy.encode(chunk)?;
        let cache =
            kibitzer_hooks::HookedModel::collect(policy, &input, &[input_site, output_site])?;
        let get = |site: HookSite| {
            cache.get(site).ok_or_else(|| {
                SkillError::Hook(HookError::Incomplete(format!(
                    "the pass did not reach {site}"
                )))
            })
        };
        let x = get(input_site)?.position_rows();
        let y = get(output_site)?.position_rows();
        let forward = transcoder.forward(x);
        metrics
            .add_batch(
                &to_host(y),
                &to_host(forward.reconstruction),
                &to_host(forward.features),
            )
            .map_err(|e| SkillError::Input(format!("transcoder metrics: {e}")))?;
        let clean_moves = policy.predict_moves(chunk)?;
        let saved: Rc<RefCell<Option<Activation>>> = Rc::new(RefCell::new(None));
        let (write, read) = (saved.clone(), saved.clone());
        let dict = transcoder.clone();
        let mut hooks = Hooks::new()
            .with(
                input_site,
                Hook::read(move |_, act| *write.borrow_mut() = Some(act.clone())),
            )
            .with(
                output_site,
                Hook::custom(move |site, act| {
                    let x = read.borrow_mut().take().ok_or_else(|| {
                        HookError::Incomplete(format!("{site}: the MLP input was not read first"))
                    })?;
                    Ok(act.with_position_rows(dict.forward(x.position_rows()).reconstruction))
                }),
            );
        let spliced_moves = policy.predict_moves_with_hooks(chunk, &mut hooks)?;
        for ((c, s), p) in clean_moves.iter().zip(&spliced_moves).zip(rated) {
            clean += usize::from(*c == p.played);
            spliced += usize::from(*s == p.played);
            agree += usize::from(c == s);
        }
    }
    let eval = metrics
        .finish()
        .map_err(|e| SkillError::Input(format!("transcoder metrics: {e}")))?;
    let n = positions.len().max(1) as f64;
    Ok(TranscoderFidelity {
        layer,
        rows: eval.metrics.rows,
        fvu: eval.metrics.fvu,
        l0: eval.metrics.l0,
        dead_fraction: eval.metrics.dead_fraction,
        move_match_clean: clean as f64 / n,
        move_match_spliced: spliced as f64 / n,
        agreement: agree as f64 / n,
    })
}

/// Settings of [`calibrate`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CalibrationConfig {
    /// The low rating taught to externalise threats.
    pub low_rating: u32,
    /// The rating whose moves it learns.
    pub high_rating: u32,
    /// Optimiser steps.
    pub steps: u64,
    /// Positions per step.
    pub batch_size: usize,
    /// Learning rate (constant).
    pub lr: f64,
    /// Share of each batch from the calibration targets (threat positions at
    /// the low rating, the high rating's move as the target); the rest are
    /// the original training positions, which keep the policy's fidelity.
    pub mix: f64,
    /// Seed of the batches.
    pub seed: u64,
    /// Positions per forward pass when predicting targets and scoring.
    pub batch: usize,
}

/// What calibration is judged by, on held-out positions.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CalibrationScores {
    /// Threat positions where the move at the low rating handles a threat.
    pub handled_low: f64,
    /// ... at the high rating.
    pub handled_high: f64,
    /// Threat positions where the low and high ratings' moves agree.
    pub agreement: f64,
    /// Move-match on held-out positions whose side to move is in the low
    /// rating's bucket (the played ratings).
    pub match_low_bucket: f64,
    /// ... in the high rating's bucket.
    pub match_high_bucket: f64,
    /// Positions of those two buckets.
    pub low_bucket_positions: usize,
    /// ...
    pub high_bucket_positions: usize,
}

/// Before and after.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CalibrationReport {
    /// The settings.
    pub config: CalibrationConfig,
    /// Training threat positions with a target.
    pub targets: usize,
    /// Held-out threat positions scored.
    pub threat_positions: usize,
    /// Before the fine-tune.
    pub before: CalibrationScores,
    /// After.
    pub after: CalibrationScores,
    /// Policy loss every tenth of the run.
    pub losses: Vec<(u64, f64)>,
}

/// Scores of [`CalibrationReport`].
pub fn calibration_scores(
    policy: &ChessPolicy,
    held_out: &[RatedPosition],
    config: &CalibrationConfig,
) -> Result<CalibrationScores> {
    let threats: Vec<Chess> = held_out
        .iter()
        .filter(|p| has_threat(&p.position))
        .map(|p| p.position.clone())
        .collect();
    let moves_at = |r: u32| {
        let inputs: Vec<_> = threats.iter().map(|p| (p.clone(), r, r)).collect();
        predict_moves(policy, &inputs, config.batch)
    };
    let (low, high) = (moves_at(config.low_rating)?, moves_at(config.high_rating)?);
    let n = threats.len().max(1) as f64;
    let rate = |moves: &[_]| {
        threats
            .iter()
            .zip(moves)
            .filter(|(p, m)| handles_threat(p, **m))
            .count() as f64
            / n
    };
    // Move-match of every bucket in one pass; the two buckets of the ratings.
    let buckets = move_match_by_bucket(policy, held_out, config.batch)?;
    let bucket_match = |rating: u32| {
        let b = policy.config().bucket(rating);
        buckets
            .iter()
            .find(|s| s.bucket == b)
            .map_or((0.0, 0), |s| (s.accuracy, s.positions))
    };
    let (match_low_bucket, low_bucket_positions) = bucket_match(config.low_rating);
    let (match_high_bucket, high_bucket_positions) = bucket_match(config.high_rating);
    Ok(CalibrationScores {
        handled_low: rate(&low),
        handled_high: rate(&high),
        agreement: low.iter().zip(&high).filter(|(a, b)| a == b).count() as f64 / n,
        match_low_bucket,
        match_high_bucket,
        low_bucket_positions,
        high_bucket_positions,
    })
}

/// Fine-tunes `policy` so that told the low rating it plays, on threat
/// positions, the move it plays at the high rating (the reference's
/// `maia2_ft`), mixed with the original training positions; scores before
/// and after on `held_out`.
pub fn calibrate(
    policy: &ChessPolicy,
    train: &[RatedPosition],
    held_out: &[RatedPosition],
    config: &CalibrationConfig,
    bar: &ProgressBar,
) -> Result<(ChessPolicy, CalibrationReport)> {
    if !(0.0..=1.0).contains(&config.mix) || config.batch_size == 0 || config.steps == 0 {
        return Err(SkillError::Input(format!(
            "calibration: --mix {} (expected 0..=1), --batch-size {}, --steps {} (expected at least 1)",
            config.mix, config.batch_size, config.steps
        )));
    }
    let before = calibration_scores(policy, held_out, config)?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut threat_positions: Vec<&RatedPosition> =
        train.iter().filter(|p| has_threat(&p.position)).collect();
    threat_positions.shuffle(&mut rng);
    threat_positions.truncate(20_000);
    if threat_positions.is_empty() {
        return Err(SkillError::Input(
            "no training position holds a threat: nothing to calibrate on".into(),
        ));
    }
    let inputs: Vec<_> = threat_positions
        .iter()
        .map(|p| (p.position.clone(), config.high_rating, config.high_rating))
        .collect();
    let moves = predict_moves(policy, &inputs, config.batch)?;
    let targets: Vec<ChessExample> = threat_positions
        .iter()
        .zip(moves)
        .map(|(p, mv)| ChessExample {
            position: p.position.clone(),
            own_rating: config.low_rating,
            opponent_rating: config.low_rating,
            played: mv,
            result: p.result,
        })
        .collect();
    let mut trainer = ChessPolicyTrainer::new(policy.clone(), config.lr, AdamWConfig::default())?;
    let from_targets = ((config.batch_size as f64) * config.mix).round() as usize;
    let mut losses = Vec::new();
    let every = (config.steps / 10).max(1);
    bar.set_length(config.steps);
    for step in 0..config.steps {
        let mut rng =
            ChaCha8Rng::seed_from_u64(config.seed ^ (step + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let batch: Vec<ChessExample> = (0..config.batch_size)
            .map(|i| {
                if i < from_targets || train.is_empty() {
                    targets[rng.random_range(0..targets.len())].clone()
                } else {
                    train[rng.random_range(0..train.len())].example()
                }
            })
            .collect();
        let loss = trainer.train_step(&batch)?;
        if (step + 1) % every == 0 {
            losses.push((step + 1, loss.policy));
        }
        bar.set_position(step + 1);
    }
    let tuned = trainer.policy;
    let after = calibration_scores(&tuned, held_out, config)?;
    let threat_count = held_out.iter().filter(|p| has_threat(&p.position)).count();
    Ok((
        tuned,
        CalibrationReport {
            config: config.clone(),
            targets: targets.len(),
            threat_positions: threat_count,
            before,
            after,
            losses,
        },
    ))
}

/// The calibration report as a Markdown table.
pub fn calibration_markdown(report: &CalibrationReport) -> String {
    let c = &report.config;
    let mut md = format!(
        "# Calibration (maia2_ft)\n\nFine-tuned {} steps of {} positions ({:.0}% calibration targets: {} training threat positions told rating {}, the move of rating {} as the target; the rest the original training moves), lr {}.\n\nScored on {} held-out threat positions and the held-out games.\n\n",
        c.steps,
        c.batch_size,
        c.mix * 100.0,
        report.targets,
        c.low_rating,
        c.high_rating,
        c.lr,
        report.threat_positions
    );
    md.push_str("| | handles a threat at rating low | at high | low = high move | move-match, low bucket | move-match, high bucket |\n|---|---:|---:|---:|---:|---:|\n");
    for (name, s) in [("before", &report.before), ("after", &report.after)] {
        md.push_str(&format!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} ({}) | {:.3} ({}) |\n",
            s.handled_low,
            s.handled_high,
            s.agreement,
            s.match_low_bucket,
            s.low_bucket_positions,
            s.match_high_bucket,
            s.high_bucket_positions
        ));
    }
    md
}
