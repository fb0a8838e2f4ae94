//! `kibitzer skill ...`: reference 000 over kibitzer::skill. Rated games
//! (made by `kibitzer games generate chess` or imported from PGN) train a
//! skill-conditioned policy; its move-match per rating bucket and skill
//! sensitivity, harvests of its square tokens, threat concepts per rating,
//! feature interventions, a transcoder's fidelity and the calibration
//! fine-tune each write JSON + Markdown (+ SVG) into `--out`.

use super::{CliResult, steps_bar, write_report};
use clap::{Args, Subcommand};
use kibitzer::skill::concepts::{ConceptConfig, ConceptReport, concept_markdown, concept_report};
use kibitzer::skill::intervene::{
    CalibrationConfig, InterventionConfig, calibrate, calibration_markdown, intervention_markdown,
    intervention_report, transcoder_fidelity,
};
use kibitzer::skill::{
    self, Conditioning, RatedPosition, SkillTrainConfig, move_match_by_bucket, rated_positions,
    read_rated_games, skill_sensitivity, split_games, spread,
};
use kibitzer_charts::{LineChart, Series, XAxis};
use kibitzer_games::chess::judge::MoveJudge;
use kibitzer_games::players::uci::SearchLimit;
use kibitzer_hooks::{HookSite, SharedDictionary};
use kibitzer_models::ActFn;
use kibitzer_models::chess_policy::{ChessPolicy, ChessPolicyConfig};
use kibitzer_sae::DeviceChoice;
use std::path::{Path, PathBuf};
use std::sync::Arc;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Subcommand, Debug)]
pub enum SkillCommand {
    /// Train the skill-conditioned policy (board + both players' rating
    /// buckets -> move and value) on rated games; resumable.
    Train(TrainArgs),
    /// Maia-2's evaluation on the held-out games: move-match per rating
    /// bucket and the skill sensitivity (moves under each rating, judged by
    /// Stockfish or alpha-beta).
    Eval(EvalArgs),
    /// Harvest one hook site's square-token activations into a store, with
    /// the positions (positions.jsonl) beside it for the threat labels.
    Harvest(HarvestArgs),
    /// For each threat concept, the most salient SAE features and a linear
    /// probe, per rating; and how often the policy's move handles a threat.
    Concepts(ConceptsArgs),
    /// Raise the threat features at a low rating (and, as a control, random
    /// features of matched activation) and compare with the high rating.
    Intervene(InterveneArgs),
    /// A transcoder's fidelity to one MLP: FVU, L0, and move-match with it
    /// spliced in place of the MLP.
    Transcoder(TranscoderArgs),
    /// Fine-tune the policy so that low ratings externalise threats as high
    /// ratings do (maia2_ft); scores before and after.
    Calibrate(CalibrateArgs),
}

pub fn run(cmd: SkillCommand) -> CliResult {
    match cmd {
        SkillCommand::Train(a) => train(&a),
        SkillCommand::Eval(a) => eval(&a),
        SkillCommand::Harvest(a) => harvest(&a),
        SkillCommand::Concepts(a) => concepts(&a),
        SkillCommand::Intervene(a) => intervene(&a),
        SkillCommand::Transcoder(a) => transcoder(&a),
        SkillCommand::Calibrate(a) => calibrate_cmd(&a),
    }
}

/// The rated games and their split, shared by every command.
#[derive(Args, Debug, Clone)]
pub struct GamesArgs {
    /// Rated games: .jsonl (kibitzer games generate chess) or .pgn with
    /// WhiteElo/BlackElo tags (e.g. a Lichess export).
    #[arg(long)]
    pub games: PathBuf,
    /// The last N games are held out (never trained on).
    #[arg(long, default_value_t = 100)]
    pub test_games: usize,
    /// Read only the first N games of the file.
    #[arg(long)]
    pub max_games: Option<usize>,
}

impl GamesArgs {
    /// (training positions, held-out positions).
    fn positions(&self) -> Res<(Vec<RatedPosition>, Vec<RatedPosition>)> {
        let games = read_rated_games(&self.games, self.max_games)?;
        let (train, test) = split_games(&games, self.test_games)?;
        Ok((
            rated_positions(train, 0)?,
            rated_positions(test, train.len())?,
        ))
    }
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: GamesArgs,
    /// Output directory: checkpoint.safetensors, policy.safetensors,
    /// training.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Transformer blocks.
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    /// Width of a square token.
    #[arg(long, default_value_t = 64)]
    pub d_model: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    /// MLP width.
    #[arg(long, default_value_t = 256)]
    pub d_mlp: usize,
    /// Optimiser steps.
    #[arg(long, default_value_t = 2000)]
    pub steps: u64,
    /// Positions per step.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Warm-up steps.
    #[arg(long, default_value_t = 100)]
    pub warmup: u64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Seed of the weights and the batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 200)]
    pub checkpoint_every: u64,
    /// Steps per line of the loss history.
    #[arg(long, default_value_t = 50)]
    pub log_every: u64,
    /// Carry on from the checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

/// `kibitzer skill train`.
pub fn train(a: &TrainArgs) -> CliResult {
    let device = a.device.device()?;
    let (train, test) = a.data.positions()?;
    let mut policy = ChessPolicyConfig::new(a.layers, a.d_model, a.heads, a.d_mlp);
    policy.seed = a.seed;
    policy.act_fn = ActFn::Gelu;
    let config = SkillTrainConfig {
        policy,
        steps: a.steps,
        batch_size: a.batch_size,
        lr: a.lr,
        warmup_steps: a.warmup,
        weight_decay: a.weight_decay,
        seed: a.seed,
        checkpoint_every: a.checkpoint_every,
        log_every: a.log_every,
    };
    let bar = steps_bar(a.steps, "training the policy");
    let (policy, record) = skill::train_policy(&train, &config, &a.out, a.resume, &device, &bar)?;
    bar.finish_and_clear();
    let scores = move_match_by_bucket(&policy, &test, 256)?;
    let last = record.history.last();
    println!(
        "trained {} steps on {} positions; final policy loss {:.3}; held-out move-match {:.3} over {} positions -> {}",
        a.steps,
        train.len(),
        last.map_or(f64::NAN, |l| l.policy_loss),
        scores.last().map_or(0.0, |s| s.accuracy),
        test.len(),
        a.out.join(skill::data::POLICY_FILE).display()
    );
    Ok(())
}

/// The games, a trained policy and the device, shared by every command
/// after `train`.
#[derive(Args, Debug, Clone)]
pub struct PolicyArgs {
    #[command(flatten)]
    pub data: GamesArgs,
    /// The policy (policy.safetensors of kibitzer skill train).
    #[arg(long)]
    pub policy: PathBuf,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

impl PolicyArgs {
    /// The device and the policy on it.
    fn load(&self) -> Res<(burn::tensor::Device, ChessPolicy)> {
        let device = self.device.device()?;
        let policy = ChessPolicy::load(&self.policy, &device)
            .map_err(|e| format!("--policy {}: {e}", self.policy.display()))?;
        Ok((device, policy))
    }
}

fn write_chart(out: &Path, name: &str, chart: &LineChart) -> CliResult {
    kibitzer_sae::io::atomic_write(&out.join(format!("{name}.svg")), chart.svg().as_bytes())?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub subject: PolicyArgs,
    /// Output directory: eval.json, eval.md, accuracy_by_bucket.svg.
    #[arg(long)]
    pub out: PathBuf,
    /// Ratings of the skill sensitivity (one per bucket you want; at least
    /// two).
    #[arg(long, value_delimiter = ',', default_value = "800,1150,1450,1750,2050")]
    pub ratings: Vec<u32>,
    /// Held-out positions of the skill sensitivity (spread over the games).
    #[arg(long, default_value_t = 1000)]
    pub sensitivity_positions: usize,
    /// Judge of "which move is stronger": stockfish (UCI engine) or search
    /// (the built-in alpha-beta).
    #[arg(long, default_value = "stockfish")]
    pub judge: String,
    /// Stockfish: nodes per judged move. Search: depth.
    #[arg(long, default_value_t = 20_000)]
    pub judge_nodes: u64,
    /// Changed positions judged at most.
    #[arg(long, default_value_t = 300)]
    pub max_judged: usize,
}

fn judge(name: &str, strength: u64) -> Res<MoveJudge> {
    match name {
        "stockfish" => Ok(MoveJudge::stockfish(SearchLimit::Nodes(strength))?),
        "search" => Ok(MoveJudge::search(strength.clamp(1, 6) as u32)?),
        other => Err(format!("--judge {other:?}: expected stockfish or search").into()),
    }
}

/// `kibitzer skill eval`.
pub fn eval(a: &EvalArgs) -> CliResult {
    let (_, policy) = a.subject.load()?;
    let (_, test) = a.subject.data.positions()?;
    let buckets = move_match_by_bucket(&policy, &test, 256)?;
    let sample: Vec<_> = spread(&test, a.sensitivity_positions)
        .into_iter()
        .map(|p| p.position)
        .collect();
    let mut judge = judge(&a.judge, a.judge_nodes)?;
    let sensitivity =
        skill_sensitivity(&policy, &sample, &a.ratings, &mut judge, a.max_judged, 256)?;
    let mut md = format!(
        "# Skill-conditioned policy: held-out evaluation\n\n{} held-out positions from the last {} games of {}.\n\n## Move-match per rating bucket (side to move)\n\n| bucket | ratings | positions | move-match |\n|---:|---|---:|---:|\n",
        test.len(),
        a.subject.data.test_games,
        a.subject.data.games.display()
    );
    for b in &buckets {
        md.push_str(&format!(
            "| {} | {} | {} | {:.3} |\n",
            if b.bucket == usize::MAX {
                "all".to_string()
            } else {
                b.bucket.to_string()
            },
            b.range,
            b.positions,
            b.accuracy
        ));
    }
    md.push_str(&format!(
        "\n## Skill sensitivity\n\n{} positions, each predicted under ratings {:?} (both sides).\n\n- the move at {} differs from the move at {}: {:.3} ({} positions)\n- distinct moves over the ratings, mean: {:.2}\n- judged by {}: of {} changed positions, the high rating's move is stronger in {} ({:.3}), weaker in {}, equal in {}\n",
        sensitivity.positions,
        sensitivity.ratings,
        sensitivity.ratings[0],
        sensitivity.ratings[sensitivity.ratings.len() - 1],
        sensitivity.changed_fraction,
        sensitivity.changed,
        sensitivity.mean_distinct_moves,
        sensitivity.judge,
        sensitivity.judged,
        sensitivity.high_better,
        sensitivity.high_better_fraction,
        sensitivity.low_better,
        sensitivity.equal
    ));
    let config = policy.config();
    let chart = LineChart {
        title: "Held-out move-match by rating bucket".into(),
        x_label: "rating bucket (lower edge)".into(),
        y_label: "top-1 move-match".into(),
        x_axis: XAxis::Linear,
        series: vec![Series {
            colour: None,
            label: "policy (told the game's ratings)".into(),
            points: buckets
                .iter()
                .filter(|b| b.bucket != usize::MAX)
                .map(|b| {
                    let lo = b
                        .bucket
                        .checked_sub(1)
                        .map_or(config.rating_edges[0].saturating_sub(100), |i| {
                            config.rating_edges[i]
                        });
                    (f64::from(lo), b.accuracy)
                })
                .collect(),
        }],
    };
    let json = serde_json::json!({
        "policy": a.subject.policy,
        "games": a.subject.data.games,
        "test_games": a.subject.data.test_games,
        "buckets": buckets,
        "sensitivity": sensitivity,
    });
    write_report(&a.out, "eval", &json, &md)?;
    write_chart(&a.out, "accuracy_by_bucket", &chart)?;
    print!("{md}");
    Ok(())
}

#[derive(Args, Debug)]
pub struct HarvestArgs {
    #[command(flatten)]
    pub subject: PolicyArgs,
    /// Hook site, e.g. blocks.2.hook_resid_post, blocks.2.hook_mlp_out,
    /// blocks.2.ln2.hook_normalized (the MLP's input), blocks.2.attn.hook_z
    /// (every head side by side).
    #[arg(long)]
    pub site: HookSite,
    /// The new store's directory (positions.jsonl is written beside it).
    #[arg(long)]
    pub out: PathBuf,
    /// Which games: the training games (for training dictionaries) or the
    /// held-out ones.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Positions at most (spread over the games).
    #[arg(long)]
    pub max_positions: Option<usize>,
    /// Tell the policy this rating for both sides instead of the game's.
    #[arg(long)]
    pub rating: Option<u32>,
    /// Per-head sites: keep only this head's columns (the reference's
    /// per-head SAEs).
    #[arg(long)]
    pub head: Option<usize>,
}

/// `kibitzer skill harvest`.
pub fn harvest(a: &HarvestArgs) -> CliResult {
    let (_, policy) = a.subject.load()?;
    let (train, test) = a.subject.data.positions()?;
    let positions = match a.split.as_str() {
        "train" => train,
        "test" => test,
        other => return Err(format!("--split {other:?}: expected train or test").into()),
    };
    let positions = spread(&positions, a.max_positions.unwrap_or(usize::MAX));
    let conditioning = a.rating.map_or(Conditioning::Played, Conditioning::Rating);
    let manifest = skill::harvest_site(
        &policy,
        &positions,
        conditioning,
        a.site,
        a.head,
        &a.out,
        true,
    )?;
    println!(
        "{} rows ({} positions x 64 square tokens) of {} -> {}",
        manifest.rows,
        positions.len(),
        a.site,
        a.out.display()
    );
    Ok(())
}

/// Positions to score: held-out ones, or those of a harvest (checked row
/// for row against its store).
fn scored_positions(
    data: &GamesArgs,
    harvest: Option<&Path>,
    max: usize,
) -> Res<Vec<RatedPosition>> {
    match harvest {
        Some(dir) => {
            let loaded = skill::load_harvest(dir)?;
            let (train, test) = data.positions()?;
            let mut by_key = std::collections::HashMap::new();
            for p in train.iter().chain(&test) {
                by_key.insert((p.game, p.ply), p);
            }
            let out = loaded
                .iter()
                .map(|(line, _)| {
                    by_key.get(&(line.game, line.ply)).map(|p| (*p).clone()).ok_or_else(|| {
                        format!(
                            "{}: position of game {} ply {} is not in {}; expected the games the harvest was made from",
                            dir.display(),
                            line.game,
                            line.ply,
                            data.games.display()
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(spread(&out, max))
        }
        None => Ok(spread(&data.positions()?.1, max)),
    }
}

fn load_sae(path: &Path, device: &burn::tensor::Device) -> Res<SharedDictionary> {
    let sae = kibitzer_sae::saelens::load(path, device)
        .map_err(|e| format!("--sae {}: {e}", path.display()))?;
    Ok(Arc::new(sae))
}

/// An SAE and the hook site it reads.
#[derive(Args, Debug, Clone)]
pub struct SaeAtSite {
    /// An SAE trained on --site (a kibitzer sae train output directory).
    #[arg(long)]
    pub sae: PathBuf,
    /// The hook site the SAE reads.
    #[arg(long)]
    pub site: HookSite,
}

#[derive(Args, Debug)]
pub struct ConceptsArgs {
    #[command(flatten)]
    pub subject: PolicyArgs,
    #[command(flatten)]
    pub dictionary: SaeAtSite,
    /// Ratings compared (the game's ratings come first and select the
    /// salient features).
    #[arg(long, value_delimiter = ',', default_value = "800,1150,1450,1750,2050")]
    pub ratings: Vec<u32>,
    /// Held-out positions scored (spread over the games).
    #[arg(long, default_value_t = 1000)]
    pub max_positions: usize,
    /// Score the positions of this harvest directory instead (checked row
    /// for row against its store).
    #[arg(long)]
    pub harvest: Option<PathBuf>,
    /// Salient features kept per concept.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Per-head sites: the head the SAE reads.
    #[arg(long)]
    pub head: Option<usize>,
    /// Output directory: concepts.json, concepts.md, concept_f1_by_rating.svg.
    #[arg(long)]
    pub out: PathBuf,
}

/// `kibitzer skill concepts`.
pub fn concepts(a: &ConceptsArgs) -> CliResult {
    let (device, policy) = a.subject.load()?;
    let sae = load_sae(&a.dictionary.sae, &device)?;
    let positions = scored_positions(&a.subject.data, a.harvest.as_deref(), a.max_positions)?;
    let mut conditionings = vec![Conditioning::Played];
    conditionings.extend(a.ratings.iter().map(|&r| Conditioning::Rating(r)));
    let config = ConceptConfig {
        conditionings,
        top_features: a.top,
        head: a.head,
        ..ConceptConfig::default()
    };
    let report = concept_report(&policy, &*sae, a.dictionary.site, &positions, &config)?;
    let md = concept_markdown(&report);
    write_report(&a.out, "concepts", &report, &md)?;
    write_chart(&a.out, "concept_f1_by_rating", &concept_chart(&report))?;
    print!("{md}");
    Ok(())
}

/// A concept's name short enough for a chart legend.
fn short(concept: &str) -> &str {
    concept.strip_suffix("_threat").unwrap_or(concept)
}

fn concept_chart(report: &ConceptReport) -> LineChart {
    let mut series = Vec::new();
    for (c, name) in skill::THREAT_CONCEPTS.iter().enumerate() {
        let points = |f: &dyn Fn(&skill::concepts::ConceptScore) -> f64| {
            report
                .rows
                .iter()
                .filter_map(|row| match row.conditioning {
                    Conditioning::Rating(r) => Some((f64::from(r), f(&row.concepts[c]))),
                    Conditioning::Played => None,
                })
                .collect()
        };
        series.push(Series {
            colour: None,
            label: format!("{} SAE", short(name)),
            points: points(&|s| s.best_f1),
        });
        series.push(Series {
            colour: None,
            label: format!("{} probe", short(name)),
            points: points(&|s| s.probe_f1),
        });
    }
    series.push(Series {
        colour: None,
        label: "threat handled".into(),
        points: report
            .rows
            .iter()
            .filter_map(|row| match row.conditioning {
                Conditioning::Rating(r) => Some((f64::from(r), row.handled_rate)),
                Conditioning::Played => None,
            })
            .collect(),
    });
    LineChart {
        title: format!("Threat concepts at {} by the rating told", report.site),
        x_label: "rating told to the policy".into(),
        y_label: "best SAE feature F1, probe F1, share handled".into(),
        x_axis: XAxis::Linear,
        series,
    }
}

#[derive(Args, Debug)]
pub struct InterveneArgs {
    #[command(flatten)]
    pub subject: PolicyArgs,
    #[command(flatten)]
    pub dictionary: SaeAtSite,
    /// concepts.json of kibitzer skill concepts: its salient features of
    /// both concepts are raised.
    #[arg(long)]
    pub concepts: PathBuf,
    /// The low rating.
    #[arg(long, default_value_t = 800)]
    pub low: u32,
    /// The high rating.
    #[arg(long, default_value_t = 2050)]
    pub high: u32,
    /// Factors the features are multiplied by.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    pub scales: Vec<f32>,
    /// Held-out positions (those with a threat are edited).
    #[arg(long, default_value_t = 2000)]
    pub max_positions: usize,
    /// Seed of the random control.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory: intervention.json, .md, .svg.
    #[arg(long)]
    pub out: PathBuf,
}

/// `kibitzer skill intervene`.
pub fn intervene(a: &InterveneArgs) -> CliResult {
    let (device, policy) = a.subject.load()?;
    let sae = load_sae(&a.dictionary.sae, &device)?;
    let text = std::fs::read_to_string(&a.concepts)
        .map_err(|e| format!("--concepts {}: {e}", a.concepts.display()))?;
    let concepts: ConceptReport = serde_json::from_str(&text).map_err(|e| {
        format!(
            "--concepts {}: not a concepts.json: {e}",
            a.concepts.display()
        )
    })?;
    if concepts.site != a.dictionary.site.to_string() {
        return Err(format!(
            "--concepts {} was measured at {}, not at --site {}",
            a.concepts.display(),
            concepts.site,
            a.dictionary.site
        )
        .into());
    }
    if let Some(head) = concepts.head {
        return Err(format!(
            "--concepts {} reads head {head} of {}: interventions edit a whole site; use an SAE of a site without --head",
            a.concepts.display(),
            concepts.site
        )
        .into());
    }
    let mut features: Vec<usize> = concepts
        .salient
        .iter()
        .flat_map(|s| s.features.iter().filter(|f| f.f1 > 0.0).map(|f| f.feature))
        .collect();
    features.sort_unstable();
    features.dedup();
    if features.is_empty() {
        return Err(format!(
            "--concepts {}: no salient feature signals a threat (every F1 is 0); train the SAE longer or score more positions",
            a.concepts.display()
        )
        .into());
    }
    let positions: Vec<_> = spread(&a.subject.data.positions()?.1, a.max_positions)
        .into_iter()
        .map(|p| p.position)
        .collect();
    let config = InterventionConfig {
        low_rating: a.low,
        high_rating: a.high,
        scales: a.scales.clone(),
        seed: a.seed,
        batch: 128,
    };
    let report = intervention_report(
        &policy,
        sae,
        a.dictionary.site,
        &positions,
        &features,
        &config,
    )?;
    let md = intervention_markdown(&report);
    write_report(&a.out, "intervention", &report, &md)?;
    let series = ["threat", "random"]
        .iter()
        .map(|name| Series {
            colour: None,
            label: format!("{name}: handled"),
            points: report
                .rows
                .iter()
                .filter(|r| r.features == *name)
                .map(|r| (f64::from(r.scale), r.handled_rate))
                .collect(),
        })
        .chain(["threat", "random"].iter().map(|name| {
            Series {
                colour: None,
                label: format!("{name}: = high"),
                points: report
                    .rows
                    .iter()
                    .filter(|r| r.features == *name)
                    .map(|r| (f64::from(r.scale), r.match_high))
                    .collect(),
            }
        }))
        .collect();
    let chart = LineChart {
        title: format!("Raising threat features at rating {}", a.low),
        x_label: "scale".into(),
        y_label: "share of threat positions".into(),
        x_axis: XAxis::Log2,
        series,
    };
    write_chart(&a.out, "intervention", &chart)?;
    print!("{md}");
    Ok(())
}

#[derive(Args, Debug)]
pub struct TranscoderArgs {
    #[command(flatten)]
    pub subject: PolicyArgs,
    /// The transcoder (kibitzer xcoder train output: blocks.L.ln2.hook_normalized
    /// -> blocks.L.hook_mlp_out).
    #[arg(long)]
    pub transcoder: PathBuf,
    /// The block whose MLP it replaces.
    #[arg(long)]
    pub layer: usize,
    /// Held-out positions scored.
    #[arg(long, default_value_t = 2000)]
    pub max_positions: usize,
    /// Output directory: transcoder.json, transcoder.md.
    #[arg(long)]
    pub out: PathBuf,
}

/// `kibitzer skill transcoder`.
pub fn transcoder(a: &TranscoderArgs) -> CliResult {
    let (device, policy) = a.subject.load()?;
    let xcoder = kibitzer_xcoder::format::load(&a.transcoder, &device)
        .map_err(|e| format!("--transcoder {}: {e}", a.transcoder.display()))?;
    let positions = spread(&a.subject.data.positions()?.1, a.max_positions);
    let fidelity = transcoder_fidelity(&policy, Arc::new(xcoder), a.layer, &positions, 128)?;
    let md = format!(
        "# Transcoder fidelity, block {}\n\n{} held-out positions ({} square-token rows).\n\n| FVU | L0 | dead | move-match (policy) | move-match (transcoder spliced) | same move |\n|---:|---:|---:|---:|---:|---:|\n| {:.3} | {:.1} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
        fidelity.layer,
        positions.len(),
        fidelity.rows,
        fidelity.fvu,
        fidelity.l0,
        fidelity.dead_fraction,
        fidelity.move_match_clean,
        fidelity.move_match_spliced,
        fidelity.agreement
    );
    write_report(&a.out, "transcoder", &fidelity, &md)?;
    print!("{md}");
    Ok(())
}

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    #[command(flatten)]
    pub subject: PolicyArgs,
    /// The low rating taught to externalise threats.
    #[arg(long, default_value_t = 800)]
    pub low: u32,
    /// The rating whose moves it learns.
    #[arg(long, default_value_t = 2050)]
    pub high: u32,
    /// Fine-tuning steps.
    #[arg(long, default_value_t = 300)]
    pub steps: u64,
    /// Positions per step.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 3e-4)]
    pub lr: f64,
    /// Share of each batch from the calibration targets.
    #[arg(long, default_value_t = 0.5)]
    pub mix: f64,
    /// Held-out positions scored.
    #[arg(long, default_value_t = 3000)]
    pub max_positions: usize,
    /// Seed of the batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory: policy_ft.safetensors, calibration.json, .md.
    #[arg(long)]
    pub out: PathBuf,
}

/// `kibitzer skill calibrate`.
pub fn calibrate_cmd(a: &CalibrateArgs) -> CliResult {
    let (_, policy) = a.subject.load()?;
    let (train, test) = a.subject.data.positions()?;
    let test = spread(&test, a.max_positions);
    let config = CalibrationConfig {
        low_rating: a.low,
        high_rating: a.high,
        steps: a.steps,
        batch_size: a.batch_size,
        lr: a.lr,
        mix: a.mix,
        seed: a.seed,
        batch: 256,
    };
    let bar = steps_bar(a.steps, "calibrating");
    let (tuned, report) = calibrate(&policy, &train, &test, &config, &bar)?;
    bar.finish_and_clear();
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    tuned.save(a.out.join("policy_ft.safetensors"))?;
    let md = calibration_markdown(&report);
    write_report(&a.out, "calibration", &report, &md)?;
    print!("{md}");
    Ok(())
}
