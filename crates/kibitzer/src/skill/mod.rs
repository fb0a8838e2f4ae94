//! Reference 000: how a skill-conditioned chess policy adapts to skill.
//!
//! The question of "Mechanisms of Skill Adaptation in Generative Models":
//! when a Maia-2-style policy is told to play like a weak player, does it
//! lose the concepts (here: square-wise threats) inside, or does it keep
//! them and not act on them? This module holds the experiment's pieces over
//! kibitzer-models' [`ChessPolicy`]:
//!
//! - [`data`]: rated games into training examples (every position before a
//!   move, with both players' ratings), the held-out split, training with
//!   resume, move-match per rating bucket and the skill sensitivity;
//! - this module: the threat concepts at the policy's square tokens, the
//!   conditioning of a batch (the ratings played, or one rating for both
//!   sides), activations at a hook site and their harvest into a store with
//!   the positions beside it, checked row for row;
//! - [`concepts`]: for each threat concept, the most salient dictionary
//!   features and a linear probe, per rating;
//! - [`intervene`]: raising the threat features at a low rating (with a
//!   matched random control), the transcoder spliced in place of an MLP, and
//!   the calibration fine-tune.
//!
//! Square tokens are seen from the side to move (kibitzer-games' chess
//! encoding flips the board for Black): token `t` is square `t` when White is
//! to move and square `t` flipped vertically when Black is.

pub mod concepts;
pub mod data;
pub mod intervene;

use kibitzer_io::{FileError, FileResultExt};
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use burn::tensor::Tensor;
use kibitzer_bsp::{BitMatrix, BspInfo, BspLabels, Catalog};
use kibitzer_games::Game;
use kibitzer_games::chess::shakmaty::{Bitboard, Color, Position, Square};
use kibitzer_games::chess::{Chess, ChessMove};
use kibitzer_hooks::{ExampleSource, Examples, HookError, HookSite, HookedModel};
use kibitzer_models::chess_policy::{ChessInput, ChessPolicy};

pub use data::{
    BucketScore, PolicyTraining, RatedPosition, Sensitivity, SkillTrainConfig, bucket_label,
    move_match_by_bucket, rated_positions, read_rated_games, skill_sensitivity, split_games,
    spread, train_policy,
};

/// What can go wrong in the experiment.
#[derive(Debug, thiserror::Error)]
pub enum SkillError {
    /// The model failed.
    #[error(transparent)]
    Model(#[from] kibitzer_models::ModelError),
    /// A hook failed.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// The board-state metrics failed.
    #[error(transparent)]
    Bsp(#[from] kibitzer_bsp::BspError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] kibitzer_store::StoreError),
    /// A game file failed.
    #[error(transparent)]
    Rated(#[from] kibitzer_games::chess::rated::RatedError),
    /// Judging moves failed.
    #[error(transparent)]
    Judge(#[from] kibitzer_games::chess::judge::JudgeError),
    /// A file could not be read or written, or holds what it should not:
    /// its path, then the cause.
    #[error(transparent)]
    File(#[from] kibitzer_io::FileError),
    /// Bad input: names what was given and what was expected.
    #[error("{0}")]
    Input(String),
}

/// The experiment's result type.
pub type Result<T> = std::result::Result<T, SkillError>;

/// The two square-wise threat concepts, in label-column order: a piece of the
/// side to move that is attacked by more enemy pieces than defend it
/// (defensive), and such a piece of the opponent (offensive). These are
/// kibitzer-bsp's `defensive_threat@sq` / `offensive_threat@sq` properties
/// read at the square of each token.
pub const THREAT_CONCEPTS: [&str; 2] = ["defensive_threat", "offensive_threat"];

/// The absolute square of the policy's square token `token` in `position`.
pub fn token_square(position: &Chess, token: usize) -> Square {
    let square = Square::new(token as u32);
    match position.as_shakmaty().turn() {
        Color::White => square,
        Color::Black => square.flip_vertical(),
    }
}

/// The threatened pieces of each side: (the side to move's, the opponent's).
fn threatened_sets(position: &Chess) -> (Bitboard, Bitboard) {
    let board = position.as_shakmaty().board();
    let us = position.as_shakmaty().turn();
    (
        kibitzer_bsp::chess::threatened(board, us),
        kibitzer_bsp::chess::threatened(board, !us),
    )
}

/// The threat concepts of every square token of `position`, in token order:
/// `[defensive, offensive]` per token.
pub fn square_threats(position: &Chess) -> [[bool; 2]; 64] {
    let (defensive, offensive) = threatened_sets(position);
    let mut out = [[false; 2]; 64];
    for (token, concepts) in out.iter_mut().enumerate() {
        let square = token_square(position, token);
        *concepts = [defensive.contains(square), offensive.contains(square)];
    }
    out
}

/// The catalog of the two threat concepts (one property each).
pub fn threat_catalog() -> Arc<Catalog> {
    let infos = THREAT_CONCEPTS
        .iter()
        .map(|name| BspInfo::new(*name, *name, "threat", None))
        .collect();
    Arc::new(Catalog::new(infos).expect("two distinct names make a valid catalog"))
}

/// Threat labels of every square token of `positions`: row `64 * p + t` is
/// token `t` of position `p`, as [`site_rows`] and the harvest lay rows out.
pub fn threat_labels(positions: &[Chess]) -> BspLabels {
    let mut bits = BitMatrix::zeros(positions.len() * 64, THREAT_CONCEPTS.len());
    for (p, position) in positions.iter().enumerate() {
        for (token, concepts) in square_threats(position).iter().enumerate() {
            for (c, &on) in concepts.iter().enumerate() {
                if on {
                    bits.set(p * 64 + token, c, true);
                }
            }
        }
    }
    BspLabels::from_bits(threat_catalog(), bits).expect("the bit matrix has one column per concept")
}

/// Total value of the pieces on `squares` (kibitzer-bsp's
/// [`piece_value`](kibitzer_bsp::chess::piece_value); the king counts 0: a
/// threatened king is a check, which the rules already force the mover to
/// answer).
fn material_on(position: &Chess, squares: Bitboard) -> i32 {
    let board = position.as_shakmaty().board();
    squares
        .into_iter()
        .filter_map(|s| board.role_at(s))
        .map(kibitzer_bsp::chess::piece_value)
        .sum()
}

/// Whether `position` holds a threat a move could handle: a threatened piece
/// (not the king) of either side.
pub fn has_threat(position: &Chess) -> bool {
    let (defensive, offensive) = threatened_sets(position);
    material_on(position, defensive) > 0 || material_on(position, offensive) > 0
}

/// What a move does about the threats of its position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ThreatResponse {
    /// It captures a threatened enemy piece (offensive).
    pub captures: bool,
    /// It leaves less of the mover's material threatened than before
    /// (defensive: the piece moves away, is defended, or the attacker is
    /// blocked or taken).
    pub saves: bool,
}

impl ThreatResponse {
    /// Either.
    pub fn handles(self) -> bool {
        self.captures || self.saves
    }
}

/// What `mv` does about the threats of `position`; an illegal move does
/// nothing.
pub fn threat_response(position: &Chess, mv: ChessMove) -> ThreatResponse {
    let (defensive, offensive) = threatened_sets(position);
    let captures =
        offensive.contains(mv.to) && material_on(position, Bitboard::from_square(mv.to)) > 0;
    let before = material_on(position, defensive);
    let mut after = position.clone();
    let saves = before > 0 && after.play(mv).is_ok() && {
        let mover = position.as_shakmaty().turn();
        let left = kibitzer_bsp::chess::threatened(after.as_shakmaty().board(), mover);
        material_on(&after, left) < before
    };
    ThreatResponse {
        captures: captures && position.legal_moves().contains(&mv),
        saves,
    }
}

/// Whether `mv` handles a threat of `position` ([`threat_response`]: it
/// captures a threatened enemy piece or saves threatened material).
pub fn handles_threat(position: &Chess, mv: ChessMove) -> bool {
    threat_response(position, mv).handles()
}

/// Which ratings the policy is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conditioning {
    /// The ratings of the game (side to move, opponent).
    Played,
    /// This rating for both sides.
    Rating(u32),
}

impl Conditioning {
    /// The (position, own rating, opponent rating) inputs of `positions`.
    pub fn inputs(&self, positions: &[RatedPosition]) -> Vec<(Chess, u32, u32)> {
        positions
            .iter()
            .map(|p| {
                let (own, opp) = match *self {
                    Conditioning::Played => (p.own_rating, p.opponent_rating),
                    Conditioning::Rating(r) => (r, r),
                };
                (p.position.clone(), own, opp)
            })
            .collect()
    }

    /// A label for tables: `played` or the rating.
    pub fn label(&self) -> String {
        match self {
            Conditioning::Played => "played".into(),
            Conditioning::Rating(r) => r.to_string(),
        }
    }
}

/// Positions with ratings as a [`ExampleSource`] of policy inputs: every
/// square token is a row.
pub struct PolicyInputs<'a> {
    policy: &'a ChessPolicy,
    inputs: Vec<(Chess, u32, u32)>,
    cursor: usize,
}

impl<'a> PolicyInputs<'a> {
    /// The inputs, in order.
    pub fn new(policy: &'a ChessPolicy, inputs: Vec<(Chess, u32, u32)>) -> PolicyInputs<'a> {
        PolicyInputs {
            policy,
            inputs,
            cursor: 0,
        }
    }
}

impl ExampleSource<ChessInput> for PolicyInputs<'_> {
    fn next_examples(
        &mut self,
        max: usize,
    ) -> std::result::Result<Option<Examples<ChessInput>>, HookError> {
        let left = self.inputs.len() - self.cursor;
        if left == 0 {
            return Ok(None);
        }
        let count = left.min(max.max(1));
        let first = self.cursor;
        let input = self
            .policy
            .encode(&self.inputs[first..first + count])
            .map_err(|e| HookError::Input(e.to_string()))?;
        self.cursor += count;
        Ok(Some(Examples {
            input,
            first_example: first as u64,
            count,
            keep: None,
        }))
    }
}

/// The columns of one head in the rows of a per-head site (`attn.hook_q`,
/// `hook_k`, `hook_v`, `hook_z`: `d_head` wide; `attn.hook_result`:
/// `d_model` wide), or `None` for the whole row when `head` is `None`.
pub fn head_columns(
    policy: &ChessPolicy,
    site: HookSite,
    head: Option<usize>,
) -> Result<Option<std::ops::Range<usize>>> {
    use kibitzer_hooks::BlockHook;
    let Some(head) = head else {
        return Ok(None);
    };
    let config = policy.config();
    if head >= config.n_heads {
        return Err(SkillError::Input(format!(
            "--head {head}: the policy has {} heads per block",
            config.n_heads
        )));
    }
    let width = match site {
        HookSite::Block {
            hook: BlockHook::AttnQ | BlockHook::AttnK | BlockHook::AttnV | BlockHook::AttnZ,
            ..
        } => config.d_head,
        HookSite::Block {
            hook: BlockHook::AttnResult,
            ..
        } => config.d_model,
        _ => {
            return Err(SkillError::Input(format!(
                "--head applies to a per-head site with one row per square token (blocks.L.attn.hook_z, hook_q, hook_k, hook_v, hook_result), not {site}"
            )));
        }
    };
    Ok(Some(head * width..(head + 1) * width))
}

/// The policy's activations at `site` over `inputs`, one row per square token
/// (`64 * position + token`; for per-head sites the heads side by side, or
/// only `head`'s columns), as a host matrix `[rows, width]`, `batch`
/// positions per forward pass.
pub fn site_rows(
    policy: &ChessPolicy,
    inputs: &[(Chess, u32, u32)],
    site: HookSite,
    head: Option<usize>,
    batch: usize,
) -> Result<(Vec<f32>, usize)> {
    let columns = head_columns(policy, site, head)?;
    let mut rows = Vec::new();
    let mut width = 0;
    for chunk in inputs.chunks(batch.max(1)) {
        let input = policy.encode(chunk)?;
        let cache = policy.collect(&input, &[site])?;
        let act = cache.get(site).ok_or_else(|| {
            HookError::Incomplete(format!("the policy's forward pass did not reach {site}"))
        })?;
        let (n, w) = act.position_rows_shape();
        if n != chunk.len() * 64 {
            return Err(SkillError::Input(format!(
                "{site}: {n} rows for {} positions; expected one row per square token (a per-square site: \
                 blocks.L.hook_resid_post, hook_mlp_out, attn.hook_z, ...), not a pooled one",
                chunk.len()
            )));
        }
        let values = kibitzer_sae::ops::to_host(act.position_rows());
        match &columns {
            Some(range) => {
                width = range.len();
                rows.extend(values.chunks(w).flat_map(|row| &row[range.clone()]));
            }
            None => {
                width = w;
                rows.extend(values);
            }
        }
    }
    Ok((rows, width))
}

/// One line of `positions.jsonl`, written beside a harvested store: the
/// position of example `i`, the ratings the policy was told, and where it
/// comes from. Row `r` of the store is token `position` (column) of example
/// `example` (column) of this file.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PositionLine {
    /// The position as FEN.
    pub fen: String,
    /// The rating of the side to move given to the policy.
    pub own_rating: u32,
    /// The opponent's rating given to the policy.
    pub opponent_rating: u32,
    /// The game's index in its file.
    pub game: usize,
    /// The ply of the position in its game (0: before the first move).
    pub ply: usize,
}

/// The positions file beside a harvested store.
pub const POSITIONS_FILE: &str = "positions.jsonl";

/// Harvests the policy's activations at `site` (only `head`'s columns when
/// given) over `positions` (told the ratings of `conditioning`) into a new
/// store at `dir`, one row per square token with `example` and `position`
/// (token) columns, and writes [`POSITIONS_FILE`] beside it (atomically).
pub fn harvest_site(
    policy: &ChessPolicy,
    positions: &[RatedPosition],
    conditioning: Conditioning,
    site: HookSite,
    head: Option<usize>,
    dir: &Path,
    progress: bool,
) -> Result<kibitzer_store::Manifest> {
    if positions.is_empty() {
        return Err(SkillError::Input(
            "no positions to harvest; expected at least one".into(),
        ));
    }
    let inputs = conditioning.inputs(positions);
    let mut config = kibitzer_hooks::HarvestConfig::new();
    config.progress = progress;
    config.columns = head_columns(policy, site, head)?;
    config.store.metadata = serde_json::json!({
        "head": head,
        "subject": "skill-conditioned chess policy",
        "policy": policy.config(),
        "conditioning": conditioning,
        "rows": "one per square token, seen from the side to move",
    });
    let manifest = kibitzer_hooks::harvest(
        policy,
        site,
        PolicyInputs::new(policy, inputs.clone()),
        dir,
        &config,
    )?;
    let lines: Vec<PositionLine> = positions
        .iter()
        .zip(&inputs)
        .map(|(p, (_, own, opp))| PositionLine {
            fen: p.position.position_string(),
            own_rating: *own,
            opponent_rating: *opp,
            game: p.game,
            ply: p.ply,
        })
        .collect();
    write_positions(&dir.join(POSITIONS_FILE), &lines)?;
    Ok(manifest)
}

/// Writes positions as JSON lines, atomically (temporary file, fsync, rename).
pub fn write_positions(path: &Path, lines: &[PositionLine]) -> Result<()> {
    let mut text = Vec::new();
    for line in lines {
        serde_json::to_writer(&mut text, line).at_file(path)?;
        text.push(b'\n');
    }
    kibitzer_store::atomic_write(path, &text).map_err(|e| FileError::new(path, e).into())
}

/// Reads a [`POSITIONS_FILE`]; every FEN must parse.
pub fn read_positions(path: &Path) -> Result<Vec<(PositionLine, Chess)>> {
    let file = std::fs::File::open(path).at_file(path)?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.at_file(path)?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: PositionLine = serde_json::from_str(&line)
            .map_err(|e| FileError::new(path, format!("line {}: {e}", i + 1)))?;
        let position = Chess::from_fen(&parsed.fen).map_err(|e| {
            FileError::new(path, format!("line {}: FEN {:?}: {e}", i + 1, parsed.fen))
        })?;
        out.push((parsed, position));
    }
    Ok(out)
}

/// Checks that store rows (their `example` and `position` columns) are the
/// square tokens of `positions` in order: row `r` must be example `r / 64`,
/// token `r % 64`. The first row that is not names its store ids and what was
/// expected, so a store from other positions, or a shuffled one, is refused.
pub fn check_row_ids(ids: &[(i64, i64)], positions: usize, what: &str) -> Result<()> {
    if ids.len() != positions * 64 {
        return Err(SkillError::Input(format!(
            "{what}: {} rows, but {positions} positions have {} square tokens",
            ids.len(),
            positions * 64
        )));
    }
    for (r, &(example, token)) in ids.iter().enumerate() {
        let expected = ((r / 64) as i64, (r % 64) as i64);
        if (example, token) != expected {
            return Err(SkillError::Input(format!(
                "{what}: row {r} is example {example}, token {token}; expected example {}, token {} \
                 (the store and the positions file do not come from the same harvest)",
                expected.0, expected.1
            )));
        }
    }
    Ok(())
}

/// The positions of a harvest directory ([`harvest_site`]), checked against
/// its store row for row with [`check_row_ids`]: a positions file from
/// another harvest, a store cut short or a shuffled one is refused.
pub fn load_harvest(dir: &Path) -> Result<Vec<(PositionLine, Chess)>> {
    let store = kibitzer_store::Store::open(dir)?;
    let positions = read_positions(&dir.join(POSITIONS_FILE))?;
    let column = |name: &str| -> Result<Vec<i64>> {
        match store.column(name)? {
            kibitzer_store::ColumnData::I64(v) => Ok(v),
            _ => Err(FileError::new(
                dir,
                format!(
                    "column {name:?} is not i64; expected a store written by kibitzer skill harvest"
                ),
            )
            .into()),
        }
    };
    let (examples, tokens) = (column("example")?, column("position")?);
    let ids: Vec<(i64, i64)> = examples.into_iter().zip(tokens).collect();
    check_row_ids(&ids, positions.len(), &dir.display().to_string())?;
    Ok(positions)
}

/// Writes `value` as pretty JSON, atomically, naming the file on failure.
pub(crate) fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_vec_pretty(value).at_file(path)?;
    kibitzer_store::atomic_write(path, &text).map_err(|e| FileError::new(path, e).into())
}

/// The policy's most likely legal move for each of `inputs`, `batch` inputs
/// per forward pass.
pub fn predict_moves(
    policy: &ChessPolicy,
    inputs: &[(Chess, u32, u32)],
    batch: usize,
) -> Result<Vec<ChessMove>> {
    let mut out = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(batch.max(1)) {
        out.extend(policy.predict_moves(chunk)?);
    }
    Ok(out)
}

/// Log-probabilities of the legal moves of `inputs` under `hooks` as host
/// rows (`[inputs, actions]`, illegal moves `-inf`), `batch` at a time.
pub fn log_probs(
    policy: &ChessPolicy,
    inputs: &[(Chess, u32, u32)],
    batch: usize,
    make_hooks: &mut dyn FnMut() -> kibitzer_hooks::Hooks<'static>,
) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(batch.max(1)) {
        let input = policy.encode(chunk)?;
        let mut hooks = make_hooks();
        let lp: Tensor<2> = policy.log_probs(&input, &mut hooks)?;
        let [n, a] = lp.dims();
        let host = kibitzer_sae::ops::to_host(lp);
        out.extend((0..n).map(|i| host[i * a..(i + 1) * a].to_vec()));
    }
    Ok(out)
}

/// The legal move with the highest log-probability in a row of
/// [`log_probs`].
pub fn best_move(position: &Chess, row: &[f32]) -> Result<ChessMove> {
    let action = kibitzer_models::gpt::answer::argmax(row);
    position.action_move(action).ok_or_else(|| {
        SkillError::Input(format!(
            "action {action} is no move in {}",
            position.position_string()
        ))
    })
}

#[cfg(test)]
mod tests;
