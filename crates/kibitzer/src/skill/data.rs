//! Rated games into training positions, the policy's training with resume,
//! and Maia-2's evaluation: move-match per rating bucket and the skill
//! sensitivity.

use kibitzer_io::{FileError, FileResultExt};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use burn::tensor::Device;
use indicatif::ProgressBar;
use kibitzer_games::Game;
use kibitzer_games::chess::judge::MoveJudge;
use kibitzer_games::chess::pgn::PgnReader;
use kibitzer_games::chess::rated::{RatedGame, RatedJsonlReader};
use kibitzer_games::chess::{Chess, ChessMove};
use kibitzer_models::chess_policy::{
    ChessExample, ChessPolicy, ChessPolicyConfig, ChessPolicyTrainer,
};
use kibitzer_models::params::{AdamWConfig, LrSchedule};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Conditioning, Result, SkillError, predict_moves, write_json};

/// Reads rated games from `.jsonl` (kibitzer's rated JSON lines) or `.pgn`
/// (with `WhiteElo`/`BlackElo` tags, e.g. a Lichess export); the first bad
/// game is an error naming the file and game.
pub fn read_rated_games(path: &Path, max_games: Option<usize>) -> Result<Vec<RatedGame>> {
    let limit = max_games.unwrap_or(usize::MAX);
    let name = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let mut games = Vec::new();
    match name {
        "jsonl" | "ndjson" => {
            for game in RatedJsonlReader::open(path)? {
                if games.len() >= limit {
                    break;
                }
                games.push(game?);
            }
        }
        "pgn" => {
            let file = File::open(path).at_file(path)?;
            let reader = PgnReader::new(BufReader::new(file), path.display().to_string());
            for (i, game) in reader.enumerate() {
                if games.len() >= limit {
                    break;
                }
                let game = game.map_err(kibitzer_games::chess::rated::RatedError::from)?;
                games.push(
                    RatedGame::from_pgn(&game)
                        .map_err(|e| FileError::new(path, format!("game {}: {e}", i + 1)))?,
                );
            }
        }
        _ => {
            return Err(FileError::new(
                path,
                "unknown extension; expected rated games as .jsonl (kibitzer games generate chess) or .pgn with Elo tags",
            ).into());
        }
    }
    if games.is_empty() {
        return Err(FileError::new(path, "holds no game; expected rated chess games").into());
    }
    Ok(games)
}

/// Splits games into (train, held out): the last `held_out` games are held
/// out. Both parts must keep at least one game.
pub fn split_games(games: &[RatedGame], held_out: usize) -> Result<(&[RatedGame], &[RatedGame])> {
    if held_out == 0 || held_out >= games.len() {
        return Err(SkillError::Input(format!(
            "--test-games {held_out} of {} games; expected at least 1 and fewer than the games, so that both the training and the held-out set have games",
            games.len()
        )));
    }
    Ok(games.split_at(games.len() - held_out))
}

/// A position of a rated game before a move: the ratings of both sides, the
/// move played and where it comes from.
#[derive(Clone, Debug)]
pub struct RatedPosition {
    /// The position.
    pub position: Chess,
    /// Rating of the side to move.
    pub own_rating: u32,
    /// Rating of the opponent.
    pub opponent_rating: u32,
    /// The move played.
    pub played: ChessMove,
    /// Result for the side to move: 1 win, 0 draw or unfinished, -1 loss.
    pub result: f32,
    /// The game's index in its file.
    pub game: usize,
    /// The ply (0: before the first move).
    pub ply: usize,
}

impl RatedPosition {
    /// The training example of the position.
    pub fn example(&self) -> ChessExample {
        ChessExample {
            position: self.position.clone(),
            own_rating: self.own_rating,
            opponent_rating: self.opponent_rating,
            played: self.played,
            result: self.result,
        }
    }
}

/// Every position before a move of `games` (numbered from `first_game`);
/// a game without both ratings is an error naming it.
pub fn rated_positions(games: &[RatedGame], first_game: usize) -> Result<Vec<RatedPosition>> {
    let mut out = Vec::new();
    for (i, game) in games.iter().enumerate() {
        let index = first_game + i;
        for (ply, e) in ChessExample::from_rated_game(game, index)?
            .into_iter()
            .enumerate()
        {
            out.push(RatedPosition {
                position: e.position,
                own_rating: e.own_rating,
                opponent_rating: e.opponent_rating,
                played: e.played,
                result: e.result,
                game: index,
                ply,
            });
        }
    }
    Ok(out)
}

/// A fingerprint of positions and their moves (Zobrist hashes and actions),
/// so a checkpoint is resumed only on the data it was trained on.
fn fingerprint(positions: &[RatedPosition]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in positions {
        for word in [
            p.position.position_hash(),
            p.position.action_index(p.played) as u64,
            u64::from(p.own_rating) << 32 | u64::from(p.opponent_rating),
        ] {
            h = (h ^ word).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{:016x}/{}", h, positions.len())
}

/// How the policy is trained.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SkillTrainConfig {
    /// The policy's shape.
    pub policy: ChessPolicyConfig,
    /// Optimiser steps.
    pub steps: u64,
    /// Positions per step, drawn uniformly from the training positions
    /// (step `s` draws from a generator seeded by `seed` and `s`, so a
    /// resumed run draws the same batches).
    pub batch_size: usize,
    /// Peak learning rate (linear warm-up, cosine decay to a tenth).
    pub lr: f64,
    /// Warm-up steps.
    pub warmup_steps: u64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Seed of the batches.
    pub seed: u64,
    /// Steps between checkpoints (0: only at the end).
    pub checkpoint_every: u64,
    /// Steps averaged into one line of the loss history.
    pub log_every: u64,
}

impl SkillTrainConfig {
    /// Checks the numbers, naming the flag at fault.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(SkillError::Input(what.to_string()));
        if self.steps == 0 {
            return bad("--steps 0; expected at least one step");
        }
        if self.batch_size == 0 {
            return bad("--batch-size 0; expected at least one position per step");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("--lr must be a positive number");
        }
        if self.log_every == 0 {
            return bad("--log-every 0; expected at least 1");
        }
        self.policy.validate()?;
        Ok(())
    }

    fn schedule(&self) -> LrSchedule {
        LrSchedule {
            peak: self.lr,
            warmup_steps: self.warmup_steps.min(self.steps),
            total_steps: self.steps,
            final_fraction: 0.1,
        }
    }
}

/// One line of the loss history: means over `log_every` steps.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainLogLine {
    /// The last step of the span (from 1).
    pub step: u64,
    /// Learning rate at that step.
    pub lr: f64,
    /// Mean cross-entropy of the played move.
    pub policy_loss: f64,
    /// Mean squared error of the value.
    pub value_loss: f64,
}

/// What a training run saves beside the policy (`training.json`) and in its
/// checkpoint.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PolicyTraining {
    /// The settings.
    pub config: SkillTrainConfig,
    /// Training positions.
    pub positions: usize,
    /// Fingerprint of the training positions.
    pub data: String,
    /// The loss history.
    pub history: Vec<TrainLogLine>,
}

/// The checkpoint file of a training directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// The trained policy of a training directory.
pub const POLICY_FILE: &str = "policy.safetensors";

/// Trains a policy on `positions` into `dir` (`checkpoint.safetensors` every
/// `checkpoint_every` steps, then `policy.safetensors` and `training.json`).
/// With `resume`, carries on from the checkpoint in `dir` (without it, a
/// checkpoint there is an error rather than overwritten): the settings
/// (but `steps`) and the data must be the same, else an error names what
/// changed. A resumed run ends with the same weights as an uninterrupted one.
pub fn train_policy(
    positions: &[RatedPosition],
    config: &SkillTrainConfig,
    dir: &Path,
    resume: bool,
    device: &Device,
    bar: &ProgressBar,
) -> Result<(ChessPolicy, PolicyTraining)> {
    config.validate()?;
    if positions.is_empty() {
        return Err(SkillError::Input(
            "no training positions; expected games with moves".into(),
        ));
    }
    std::fs::create_dir_all(dir).at_file(dir)?;
    let checkpoint = dir.join(CHECKPOINT_FILE);
    let data = fingerprint(positions);
    if resume && !checkpoint.exists() {
        return Err(FileError::new(
            &checkpoint,
            "no checkpoint to resume; start without --resume",
        )
        .into());
    }
    if !resume && checkpoint.exists() {
        return Err(FileError::new(
            &checkpoint,
            "a training run is already here; pass --resume to carry it on, or train into another directory",
        ).into());
    }
    let (mut trainer, mut record) = if resume {
        let (trainer, extra) = ChessPolicyTrainer::resume(&checkpoint, device)?;
        let saved: PolicyTraining = serde_json::from_value(extra)
            .map_err(|e| FileError::new(&checkpoint, format!("run record: {e}")))?;
        let mut same = saved.config.clone();
        same.steps = config.steps;
        if &same != config {
            return Err(FileError::new(
                &checkpoint,
                format!(
                    "was trained with other settings ({}); resume with the same flags (only --steps may change), or train into a new directory",
                    serde_json::to_string(&saved.config).unwrap_or_default()
                ),
            ).into());
        }
        if saved.data != data {
            return Err(FileError::new(
                &checkpoint,
                format!(
                    "was trained on other positions (fingerprint {}, these are {data}); resume with the same games and --test-games",
                    saved.data
                ),
            ).into());
        }
        let record = PolicyTraining {
            config: config.clone(),
            ..saved
        };
        (trainer, record)
    } else {
        let policy = ChessPolicy::new(config.policy.clone(), device)?;
        let adamw = AdamWConfig {
            weight_decay: config.weight_decay,
            ..AdamWConfig::default()
        };
        let trainer = ChessPolicyTrainer::new(policy, config.lr, adamw)?;
        let record = PolicyTraining {
            config: config.clone(),
            positions: positions.len(),
            data,
            history: Vec::new(),
        };
        (trainer, record)
    };
    let schedule = config.schedule();
    bar.set_length(config.steps);
    bar.set_position(trainer.steps());
    let (mut sum_policy, mut sum_value, mut span) = (0.0, 0.0, 0u64);
    while trainer.steps() < config.steps {
        let step = trainer.steps();
        let mut rng =
            ChaCha8Rng::seed_from_u64(config.seed ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let batch: Vec<ChessExample> = (0..config.batch_size)
            .map(|_| positions[rng.random_range(0..positions.len())].example())
            .collect();
        trainer.lr = schedule.at(step);
        let loss = trainer.train_step(&batch)?;
        sum_policy += loss.policy;
        sum_value += loss.value;
        span += 1;
        let done = trainer.steps();
        if done.is_multiple_of(config.log_every) || done == config.steps {
            record.history.push(TrainLogLine {
                step: done,
                lr: trainer.lr,
                policy_loss: sum_policy / span as f64,
                value_loss: sum_value / span as f64,
            });
            bar.set_message(format!("policy loss {:.3}", sum_policy / span as f64));
            (sum_policy, sum_value, span) = (0.0, 0.0, 0);
        }
        bar.set_position(done);
        if done == config.steps
            || (config.checkpoint_every > 0 && done.is_multiple_of(config.checkpoint_every))
        {
            let extra = serde_json::to_value(&record)
                .map_err(|e| SkillError::Input(format!("run record: {e}")))?;
            trainer.save_checkpoint(&checkpoint, &extra)?;
        }
    }
    trainer.policy.save(dir.join(POLICY_FILE))?;
    write_json(&dir.join("training.json"), &record)?;
    Ok((trainer.policy, record))
}

/// The range of a rating bucket as text: `<1100`, `1100-1199`, `>=2000`.
pub fn bucket_label(config: &ChessPolicyConfig, bucket: usize) -> String {
    let edges = &config.rating_edges;
    match (bucket.checked_sub(1).map(|b| edges[b]), edges.get(bucket)) {
        (None, Some(hi)) => format!("<{hi}"),
        (Some(lo), Some(hi)) => format!("{lo}-{}", hi - 1),
        (Some(lo), None) => format!(">={lo}"),
        (None, None) => "all".into(),
    }
}

/// Top-1 move-match of one rating bucket (of the side to move).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BucketScore {
    /// The bucket.
    pub bucket: usize,
    /// Its ratings.
    pub range: String,
    /// Positions of the bucket.
    pub positions: usize,
    /// Positions where the policy's most likely move is the one played.
    pub matched: usize,
    /// `matched / positions`.
    pub accuracy: f64,
}

/// Maia-2's evaluation: the share of positions where the policy's most likely
/// legal move (told the game's ratings) is the move played, per rating
/// bucket of the side to move; buckets without positions are left out. The
/// last entry (bucket `usize::MAX`, range `all`) pools every position.
pub fn move_match_by_bucket(
    policy: &ChessPolicy,
    positions: &[RatedPosition],
    batch: usize,
) -> Result<Vec<BucketScore>> {
    let config = policy.config();
    let mut counts = vec![(0usize, 0usize); config.buckets()];
    let predicted = predict_moves(policy, &Conditioning::Played.inputs(positions), batch)?;
    for (mv, p) in predicted.iter().zip(positions) {
        let c = &mut counts[config.bucket(p.own_rating)];
        c.0 += 1;
        c.1 += usize::from(*mv == p.played);
    }
    let mut out: Vec<BucketScore> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| c.0 > 0)
        .map(|(bucket, &(n, m))| BucketScore {
            bucket,
            range: bucket_label(config, bucket),
            positions: n,
            matched: m,
            accuracy: m as f64 / n as f64,
        })
        .collect();
    let (n, m) = counts.iter().fold((0, 0), |(a, b), &(n, m)| (a + n, b + m));
    out.push(BucketScore {
        bucket: usize::MAX,
        range: "all".into(),
        positions: n,
        matched: m,
        accuracy: if n == 0 { 0.0 } else { m as f64 / n as f64 },
    });
    Ok(out)
}

/// Maia-2's skill sensitivity: the same positions, the policy's move under
/// each rating (told to both sides).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sensitivity {
    /// The ratings, increasing.
    pub ratings: Vec<u32>,
    /// Positions.
    pub positions: usize,
    /// Positions where the move under the lowest rating differs from the
    /// move under the highest.
    pub changed: usize,
    /// `changed / positions`.
    pub changed_fraction: f64,
    /// Mean number of distinct moves over the ratings.
    pub mean_distinct_moves: f64,
    /// Of the changed positions, how many were judged.
    pub judged: usize,
    /// Judged positions where the highest rating's move is the stronger.
    pub high_better: usize,
    /// Judged positions where the lowest rating's move is the stronger.
    pub low_better: usize,
    /// Judged positions where both are equal.
    pub equal: usize,
    /// `high_better / judged`.
    pub high_better_fraction: f64,
    /// Who judged (e.g. the engine and its search limit).
    pub judge: String,
}

/// The skill sensitivity of `policy` on `positions` over `ratings`
/// (sorted and deduplicated here; at least two); up to `max_judged` changed
/// positions are judged by `judge`.
pub fn skill_sensitivity(
    policy: &ChessPolicy,
    positions: &[Chess],
    ratings: &[u32],
    judge: &mut MoveJudge,
    max_judged: usize,
    batch: usize,
) -> Result<Sensitivity> {
    let mut ratings = ratings.to_vec();
    ratings.sort_unstable();
    ratings.dedup();
    if ratings.len() < 2 || positions.is_empty() {
        return Err(SkillError::Input(format!(
            "skill sensitivity needs at least two ratings and one position (got ratings {ratings:?}, {} positions)",
            positions.len()
        )));
    }
    let moves: Vec<Vec<ChessMove>> = ratings
        .iter()
        .map(|&r| {
            let inputs: Vec<_> = positions.iter().map(|p| (p.clone(), r, r)).collect();
            predict_moves(policy, &inputs, batch)
        })
        .collect::<Result<_>>()?;
    let (low, high) = (&moves[0], &moves[ratings.len() - 1]);
    let mut s = Sensitivity {
        ratings: ratings.clone(),
        positions: positions.len(),
        changed: 0,
        changed_fraction: 0.0,
        mean_distinct_moves: 0.0,
        judged: 0,
        high_better: 0,
        low_better: 0,
        equal: 0,
        high_better_fraction: 0.0,
        judge: judge.describe(),
    };
    let mut distinct_total = 0usize;
    for (i, position) in positions.iter().enumerate() {
        let mut seen: Vec<ChessMove> = moves.iter().map(|m| m[i]).collect();
        seen.sort_by_key(|m| position.action_index(*m));
        seen.dedup();
        distinct_total += seen.len();
        if low[i] != high[i] {
            s.changed += 1;
            if s.judged < max_judged {
                s.judged += 1;
                match judge.compare(position, high[i], low[i])? {
                    std::cmp::Ordering::Greater => s.high_better += 1,
                    std::cmp::Ordering::Less => s.low_better += 1,
                    std::cmp::Ordering::Equal => s.equal += 1,
                }
            }
        }
    }
    s.changed_fraction = s.changed as f64 / positions.len() as f64;
    s.mean_distinct_moves = distinct_total as f64 / positions.len() as f64;
    s.high_better_fraction = if s.judged == 0 {
        0.0
    } else {
        s.high_better as f64 / s.judged as f64
    };
    Ok(s)
}

/// `n` items of `items` spread evenly over it (all of them when `n` is at
/// least their number), in order.
pub fn spread<T: Clone>(items: &[T], n: usize) -> Vec<T> {
    if n >= items.len() {
        return items.to_vec();
    }
    (0..n).map(|i| items[i * items.len() / n].clone()).collect()
}
