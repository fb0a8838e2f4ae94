//! Othello game datasets: generators (OthelloGPT's synthetic games of
//! uniformly random legal moves, and games between move choosers such as
//! alpha-beta players) and a compact binary file format with random access.
//!
//! # File format (`KBZOTH1`, version 1, little-endian)
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `KBZOTH1\0` |
//! | 2 | format version (`u16`, 1) |
//! | 1 | board size (4, 6 or 8) |
//! | 5 | reserved, zero |
//! | 8 | game count `n` (`u64`) |
//! | 8 | byte offset of the index (`u64`) |
//! | ... | `n` games: move count (`u16`), then one byte per move: the square index `row * size + col`, or 255 for a pass |
//! | `8n` | the index: the byte offset of every game (`u64` each); the file ends here |
//!
//! Passes are stored (unlike transcripts, see
//! [`crate::othello::transcript`]), so a game replays move by move.
//!
//! # Determinism
//!
//! Game `i` of a generated set draws its random numbers from
//! [`game_rng`]`(seed, i)` alone, so the same seed and count give the same
//! games whatever the number of threads, and the first `k` games of a larger
//! set are the `k` games of a smaller one.

use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::arena::play_game;
use crate::atomic::AtomicFile;
use crate::game::Game;
use crate::othello::{BoardSizeError, Othello, OthelloMove};
use crate::players::{AgentGame, PlayerError, PlayerSpec, PlayerSpecError};

/// The first eight bytes of a dataset file.
pub const MAGIC: [u8; 8] = *b"KBZOTH1\0";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// The move byte of a pass.
pub const PASS_BYTE: u8 = 255;
/// Bytes before the first game.
pub const HEADER_LEN: usize = 32;

/// Games generated per parallel batch when streaming to a file: large
/// enough to keep every thread busy, small enough to bound memory.
const BATCH_GAMES: usize = 1 << 14;

/// What can go wrong reading, writing or generating a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file system failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file does not start with `KBZOTH1\0`.
    #[error(
        "{path}: not an Othello dataset: the file starts with {found:?}, expected the magic bytes \"KBZOTH1\\0\""
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// Its first bytes.
        found: Vec<u8>,
    },
    /// A format version this code cannot read.
    #[error("{path}: format version {version}, this build reads version {FORMAT_VERSION}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the header.
        version: u16,
    },
    /// The header names a board size Othello is not played on here.
    #[error("{path}: header: {source}")]
    BoardSize {
        /// The file.
        path: PathBuf,
        /// The size error.
        source: BoardSizeError,
    },
    /// The file ends early.
    #[error("{path}: truncated: {what} needs bytes up to offset {needed}, the file has {len}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The part that is cut (`header`, `index`, `game 12`).
        what: String,
        /// The end offset it needs.
        needed: u64,
        /// The file length.
        len: u64,
    },
    /// The index or the game records do not line up.
    #[error("{path}: corrupt: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What does not line up, naming the game.
        detail: String,
    },
    /// A move byte that is neither a square of the board nor a pass.
    #[error("{path}: game {game}, move {move_number}: byte {byte} is not a square of the {size}x{size} board (0..{max}) or a pass (255)", max = size * size)]
    BadMoveByte {
        /// The file.
        path: PathBuf,
        /// The game (from 0).
        game: usize,
        /// The move (from 1).
        move_number: usize,
        /// The byte.
        byte: u8,
        /// The board size.
        size: usize,
    },
    /// A move that is not legal where it is played.
    #[error("{path}: game {game}, move {move_number} ({mv}) is illegal in position {board}")]
    IllegalMove {
        /// The file (or `<memory>` for games not read from a file).
        path: PathBuf,
        /// The game (from 0).
        game: usize,
        /// The move (from 1).
        move_number: usize,
        /// The move.
        mv: String,
        /// The position as a board string.
        board: String,
    },
    /// A game number past the end of the file.
    #[error("{path}: no game {game}: the file holds {len} games (0..{len})")]
    NoSuchGame {
        /// The file.
        path: PathBuf,
        /// The game asked for (from 0).
        game: usize,
        /// The number of games.
        len: usize,
    },
    /// A game longer than a record can hold.
    #[error("{path}: game {game} has {moves} moves, a record holds at most 65535")]
    GameTooLong {
        /// The file being written.
        path: PathBuf,
        /// The game (from 0).
        game: usize,
        /// Its move count.
        moves: usize,
    },
    /// Not a supported board size.
    #[error(transparent)]
    Size(#[from] BoardSizeError),
    /// A player of a generated set could not be built.
    #[error("player {player}: {source}")]
    Player {
        /// The player's spec.
        player: String,
        /// Why (boxed: keeps every `Result` of this module small).
        #[source]
        source: Box<PlayerSpecError>,
    },
    /// A player failed while a game was generated.
    #[error("generated game {game}, move {move_number}: {source}")]
    Play {
        /// The game (from 0).
        game: usize,
        /// The move (from 1).
        move_number: usize,
        /// Why (boxed, as above).
        #[source]
        source: Box<PlayerError>,
    },
}

/// The byte of a move on a `size`x`size` board.
pub fn move_to_byte(mv: OthelloMove, size: usize) -> u8 {
    match mv {
        // Indices are below 64.
        OthelloMove::Square(square) => square.index(size) as u8,
        OthelloMove::Pass => PASS_BYTE,
    }
}

/// The move of a byte on a `size`x`size` board; `None` for a byte that is
/// neither a square nor [`PASS_BYTE`].
pub fn byte_to_move(byte: u8, size: usize) -> Option<OthelloMove> {
    if byte == PASS_BYTE {
        Some(OthelloMove::Pass)
    } else {
        OthelloMove::from_index(usize::from(byte), size)
    }
}

/// The random number generator of game `index` of a set generated with
/// `seed`: the seed's ChaCha8 key on stream `index`.
pub fn game_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    rng
}

/// One game of uniformly random legal moves (passes where forced), played to
/// the end.
pub fn random_game(size: usize, rng: &mut ChaCha8Rng) -> Result<Vec<OthelloMove>, BoardSizeError> {
    let mut position = Othello::new(size)?;
    let mut moves = Vec::with_capacity(size * size);
    while let Some(mv) = position.random_move(rng) {
        position.play(mv).expect("random_move returns legal moves");
        moves.push(mv);
    }
    Ok(moves)
}

/// `count` games of uniformly random legal moves (the OthelloGPT synthetic
/// set), in parallel on rayon's pool; game `i` is `random_game` with
/// [`game_rng`]`(seed, i)`.
pub fn generate_random_games(
    size: usize,
    count: usize,
    seed: u64,
) -> Result<Vec<Vec<OthelloMove>>, BoardSizeError> {
    generate_random_range(size, 0..count, seed)
}

fn generate_random_range(
    size: usize,
    indices: std::ops::Range<usize>,
    seed: u64,
) -> Result<Vec<Vec<OthelloMove>>, BoardSizeError> {
    Othello::new(size)?;
    Ok(indices
        .into_par_iter()
        .map(|index| {
            random_game(size, &mut game_rng(seed, index as u64)).expect("size checked above")
        })
        .collect())
}

/// Chooses a move in a position that is not over (a pass when it is forced).
/// The random number generator is the game's own, so a chooser that breaks
/// ties at random stays reproducible.
pub type MoveChooser<'a> = &'a (dyn Fn(&Othello, &mut ChaCha8Rng) -> OthelloMove + Sync);

/// A game between two move choosers.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MatchGame {
    /// The index in the chooser list of the player with Black.
    pub black: usize,
    /// The index in the chooser list of the player with White.
    pub white: usize,
    /// The moves, passes included.
    pub moves: Vec<OthelloMove>,
}

impl AsRef<[OthelloMove]> for MatchGame {
    /// The moves, so match games go straight to [`write_dataset`].
    fn as_ref(&self) -> &[OthelloMove] {
        &self.moves
    }
}

/// How games between choosers are set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MatchConfig {
    /// Board size (4, 6 or 8).
    pub size: usize,
    /// Number of games.
    pub count: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Uniformly random plies played before the choosers take over, so
    /// games between deterministic players differ.
    pub random_opening_plies: usize,
}

/// Games between `players` (the "championship-like" set: pass alpha-beta
/// players at several depths). Game `i` pairs Black = `players[(i / k) % k]`
/// and White = `players[i % k]` for `k` players, so every ordered pairing
/// (a player against itself included) recurs evenly; it opens with
/// `random_opening_plies` uniformly random plies, then the choosers play to
/// the end. Runs in parallel; the same config gives the same games.
pub fn generate_match_games(
    config: &MatchConfig,
    players: &[MoveChooser<'_>],
) -> Result<Vec<MatchGame>, DatasetError> {
    Othello::new(config.size)?;
    if players.is_empty() {
        return Ok(Vec::new());
    }
    let k = players.len();
    (0..config.count)
        .into_par_iter()
        .map(|index| {
            let (black, white) = round_robin_pairing(index, k);
            let mut rng = game_rng(config.seed, index as u64);
            let mut position = Othello::new(config.size).expect("size checked above");
            let mut moves = Vec::with_capacity(config.size * config.size);
            while !position.is_over() {
                let mv = if moves.len() < config.random_opening_plies {
                    position
                        .random_move(&mut rng)
                        .expect("the game is not over")
                } else {
                    let chooser = if position.to_move() == crate::Player::First {
                        players[black]
                    } else {
                        players[white]
                    };
                    chooser(&position, &mut rng)
                };
                position.play(mv).map_err(|_| DatasetError::IllegalMove {
                    path: PathBuf::from("<generated>"),
                    game: index,
                    move_number: moves.len() + 1,
                    mv: mv.to_string(),
                    board: position.board_string(),
                })?;
                moves.push(mv);
            }
            Ok(MatchGame {
                black,
                white,
                moves,
            })
        })
        .collect()
}

/// The players of game `index` when `players` players meet in turn: the
/// first side `(index / players) % players`, the second `index % players`,
/// so every ordered pairing (a player against itself included) recurs
/// evenly. Used by every generator that plays a pool of players.
pub fn round_robin_pairing(index: usize, players: usize) -> (usize, usize) {
    assert!(players > 0, "a pairing needs at least one player");
    ((index / players) % players, index % players)
}

/// Games between players named by [`PlayerSpec`]s (the "championship-like"
/// set: `alphabeta:1` to `alphabeta:6`, `solver`, `mcts:400`), paired by
/// [`round_robin_pairing`]. Game `i` draws both agents' seeds and then its
/// `random_opening_plies` uniformly random plies from
/// [`game_rng`]`(seed, i)`, builds fresh agents and plays to the end, in
/// parallel; the same config and players give the same games on any number
/// of threads. Every player is built once first, so a bad spec fails before
/// any game is played.
pub fn generate_agent_games(
    config: &MatchConfig,
    players: &[PlayerSpec],
) -> Result<Vec<MatchGame>, DatasetError> {
    let start = Othello::new(config.size)?;
    let build = |spec: &PlayerSpec, seed: u64| {
        Othello::build_agent(spec, seed).map_err(|source| DatasetError::Player {
            player: spec.to_string(),
            source: Box::new(source),
        })
    };
    for spec in players {
        build(spec, 0)?;
    }
    if players.is_empty() {
        return Ok(Vec::new());
    }
    (0..config.count)
        .into_par_iter()
        .map(|index| {
            let (black, white) = round_robin_pairing(index, players.len());
            let mut rng = game_rng(config.seed, index as u64);
            let (black_seed, white_seed) = (rng.random(), rng.random());
            let mut black_agent = build(&players[black], black_seed)?;
            let mut white_agent = build(&players[white], white_seed)?;
            let played = play_game(
                &start,
                &mut *black_agent,
                &mut *white_agent,
                &mut rng,
                config.random_opening_plies,
                None,
            )
            .map_err(|failure| DatasetError::Play {
                game: index,
                move_number: failure.ply + 1,
                source: Box::new(failure.source),
            })?;
            Ok(MatchGame {
                black,
                white,
                moves: played.moves,
            })
        })
        .collect()
}

/// What a written or read dataset holds.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DatasetSummary {
    /// The file.
    pub path: PathBuf,
    /// Board size.
    pub board_size: usize,
    /// Number of games.
    pub games: u64,
    /// Number of moves, passes included.
    pub moves: u64,
    /// Number of passes.
    pub passes: u64,
    /// File size in bytes.
    pub bytes: u64,
}

/// Writes a dataset file atomically: games go to a temporary file in the
/// target's directory, and [`DatasetWriter::finish`] writes the index and
/// header, syncs and renames it into place. Dropped unfinished, it leaves
/// nothing behind.
pub struct DatasetWriter {
    path: PathBuf,
    size: usize,
    out: AtomicFile,
    offsets: Vec<u64>,
    position: u64,
    moves: u64,
    passes: u64,
}

impl DatasetWriter {
    /// Starts a dataset of `size`x`size` games to be written at `path`.
    pub fn create(path: impl AsRef<Path>, size: usize) -> Result<DatasetWriter, DatasetError> {
        Othello::new(size)?;
        let path = path.as_ref().to_path_buf();
        let io_error = |source| DatasetError::Io {
            path: path.clone(),
            source,
        };
        let mut out = AtomicFile::create(&path).map_err(io_error)?;
        // The header is rewritten with the real counts by `finish`.
        out.write_all(&[0; HEADER_LEN]).map_err(io_error)?;
        Ok(DatasetWriter {
            path,
            size,
            out,
            offsets: Vec::new(),
            position: HEADER_LEN as u64,
            moves: 0,
            passes: 0,
        })
    }

    /// Adds a game after checking that every move is legal from the start.
    pub fn push(&mut self, moves: &[OthelloMove]) -> Result<(), DatasetError> {
        replay_game(
            self.size,
            moves.iter().copied(),
            |move_number, mv, board| DatasetError::IllegalMove {
                path: self.path.clone(),
                game: self.offsets.len(),
                move_number,
                mv,
                board,
            },
        )?;
        self.push_trusted(moves)
    }

    /// Adds a game known to be legal (generated here).
    fn push_trusted(&mut self, moves: &[OthelloMove]) -> Result<(), DatasetError> {
        let count = u16::try_from(moves.len()).map_err(|_| DatasetError::GameTooLong {
            path: self.path.clone(),
            game: self.offsets.len(),
            moves: moves.len(),
        })?;
        let mut record = Vec::with_capacity(2 + moves.len());
        record.extend_from_slice(&count.to_le_bytes());
        record.extend(moves.iter().map(|&mv| move_to_byte(mv, self.size)));
        self.out
            .write_all(&record)
            .map_err(|source| DatasetError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.offsets.push(self.position);
        self.position += record.len() as u64;
        self.moves += moves.len() as u64;
        self.passes += moves.iter().filter(|&&mv| mv == OthelloMove::Pass).count() as u64;
        Ok(())
    }

    /// Games pushed so far.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether no game was pushed.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Writes the index and the header, syncs and moves the file into place.
    pub fn finish(mut self) -> Result<DatasetSummary, DatasetError> {
        let path = self.path.clone();
        let io_error = |source| DatasetError::Io {
            path: path.clone(),
            source,
        };
        let index_offset = self.position;
        let mut index = Vec::with_capacity(8 * self.offsets.len());
        for offset in &self.offsets {
            index.extend_from_slice(&offset.to_le_bytes());
        }
        self.out.write_all(&index).map_err(io_error)?;
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(&MAGIC);
        header[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        header[10] = self.size as u8;
        header[16..24].copy_from_slice(&(self.offsets.len() as u64).to_le_bytes());
        header[24..32].copy_from_slice(&index_offset.to_le_bytes());
        self.out
            .writer()
            .seek(SeekFrom::Start(0))
            .map_err(io_error)?;
        self.out.write_all(&header).map_err(io_error)?;
        self.out.commit().map_err(io_error)?;
        Ok(DatasetSummary {
            path: path.clone(),
            board_size: self.size,
            games: self.offsets.len() as u64,
            moves: self.moves,
            passes: self.passes,
            bytes: index_offset + index.len() as u64,
        })
    }
}

/// Replays `moves` from the start; the error of the first illegal move is
/// built by `illegal(move_number, move, board)`.
fn replay_game<E>(
    size: usize,
    moves: impl IntoIterator<Item = OthelloMove>,
    illegal: impl Fn(usize, String, String) -> E,
) -> Result<Othello, E> {
    let mut position = Othello::new(size).expect(
        "every caller's size already passed Othello::new (DatasetWriter::create, from_bytes, generate_agent_games)",
    );
    for (number, mv) in moves.into_iter().enumerate() {
        if position.play(mv).is_err() {
            return Err(illegal(number + 1, mv.to_string(), position.board_string()));
        }
    }
    Ok(position)
}

/// Writes `count` random games (see [`generate_random_games`]) to `path`,
/// generating in parallel batches so memory stays bounded.
pub fn write_random_dataset(
    path: impl AsRef<Path>,
    size: usize,
    count: usize,
    seed: u64,
) -> Result<DatasetSummary, DatasetError> {
    let mut writer = DatasetWriter::create(path, size)?;
    let mut start = 0;
    while start < count {
        let end = (start + BATCH_GAMES).min(count);
        for game in generate_random_range(size, start..end, seed)? {
            writer.push_trusted(&game)?;
        }
        start = end;
    }
    writer.finish()
}

/// Writes `games` to `path` (checking each is legal).
pub fn write_dataset<G: AsRef<[OthelloMove]>>(
    path: impl AsRef<Path>,
    size: usize,
    games: &[G],
) -> Result<DatasetSummary, DatasetError> {
    let mut writer = DatasetWriter::create(path, size)?;
    for game in games {
        writer.push(game.as_ref())?;
    }
    writer.finish()
}

/// Who played the games of a dataset made by [`write_agent_dataset`]: the
/// JSON written next to it (at [`players_sidecar_path`]), since the game
/// file itself holds only moves.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AgentDatasetInfo {
    /// The players, as their specs write them.
    pub players: Vec<String>,
    /// The settings the games were generated with.
    pub config: MatchConfig,
    /// For game `i`, the indices in `players` of Black and White.
    pub pairings: Vec<(usize, usize)>,
    /// Per player (same order), points scored: 1 a win, 0.5 a draw.
    pub points: Vec<f64>,
    /// Per player, games played (a game against itself counts twice).
    pub games_played: Vec<usize>,
}

/// The file next to `path` that [`write_agent_dataset`] writes the players
/// to: `path` with `.players.json` appended.
pub fn players_sidecar_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".players.json");
    PathBuf::from(name)
}

/// Generates [`generate_agent_games`] and writes them to `path` (the
/// binary format) and who played what to [`players_sidecar_path`]`(path)`,
/// both atomically.
pub fn write_agent_dataset(
    path: impl AsRef<Path>,
    config: &MatchConfig,
    players: &[PlayerSpec],
) -> Result<(DatasetSummary, AgentDatasetInfo), DatasetError> {
    let path = path.as_ref();
    let games = generate_agent_games(config, players)?;
    let mut info = AgentDatasetInfo {
        players: players.iter().map(ToString::to_string).collect(),
        config: *config,
        pairings: games.iter().map(|game| (game.black, game.white)).collect(),
        points: vec![0.0; players.len()],
        games_played: vec![0; players.len()],
    };
    for game in &games {
        let end = replay_game(config.size, game.moves.iter().copied(), |_, _, _| ())
            .expect("play_game records only moves that Game::play accepted");
        let outcome = end.outcome().unwrap_or(crate::Outcome::Draw);
        for (index, side) in [
            (game.black, crate::Player::First),
            (game.white, crate::Player::Second),
        ] {
            info.points[index] += outcome.score_for(side);
            info.games_played[index] += 1;
        }
    }
    let summary = write_dataset(path, config.size, &games)?;
    let sidecar = players_sidecar_path(path);
    let io_error = |source| DatasetError::Io {
        path: sidecar.clone(),
        source,
    };
    let mut out = AtomicFile::create(&sidecar).map_err(io_error)?;
    let json =
        serde_json::to_vec_pretty(&info).expect("the players info has only serialisable fields");
    out.write_all(&json).map_err(io_error)?;
    out.commit().map_err(io_error)?;
    Ok((summary, info))
}

/// A dataset file in memory, checked on opening: header, index and every
/// record line up and every move byte names a square or a pass.
/// [`OthelloDataset::validate`] also replays every game for legality.
#[derive(Clone, Debug)]
pub struct OthelloDataset {
    path: PathBuf,
    size: usize,
    bytes: Vec<u8>,
    offsets: Vec<u64>,
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("an 8-byte slice"))
}

impl OthelloDataset {
    /// Reads and checks a dataset file.
    pub fn open(path: impl AsRef<Path>) -> Result<OthelloDataset, DatasetError> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| DatasetError::Io {
            path: path.clone(),
            source,
        })?;
        OthelloDataset::from_bytes(path, bytes)
    }

    /// Checks a dataset held in memory; `path` names it in errors.
    pub fn from_bytes(path: PathBuf, bytes: Vec<u8>) -> Result<OthelloDataset, DatasetError> {
        let len = bytes.len() as u64;
        let truncated = |what: &str, needed: u64| DatasetError::Truncated {
            path: path.clone(),
            what: what.to_owned(),
            needed,
            len,
        };
        if bytes.len() < MAGIC.len() || bytes[..8] != MAGIC {
            return Err(DatasetError::BadMagic {
                path,
                found: bytes.iter().take(8).copied().collect(),
            });
        }
        if bytes.len() < HEADER_LEN {
            return Err(truncated("header", HEADER_LEN as u64));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != FORMAT_VERSION {
            return Err(DatasetError::UnsupportedVersion { path, version });
        }
        let size = usize::from(bytes[10]);
        if let Err(source) = Othello::new(size) {
            return Err(DatasetError::BoardSize { path, source });
        }
        let count = read_u64(&bytes, 16);
        let index_offset = read_u64(&bytes, 24);
        let corrupt = |detail: String| DatasetError::Corrupt {
            path: path.clone(),
            detail,
        };
        if index_offset < HEADER_LEN as u64 {
            return Err(corrupt(format!(
                "index offset {index_offset} lies inside the {HEADER_LEN}-byte header"
            )));
        }
        let index_end = count
            .checked_mul(8)
            .and_then(|n| n.checked_add(index_offset));
        let index_end =
            index_end.ok_or_else(|| corrupt(format!("game count {count} is too large")))?;
        if index_end > len {
            return Err(truncated("index", index_end));
        }
        if index_end < len {
            return Err(corrupt(format!(
                "{} bytes after the index (file length {len}, index ends at {index_end})",
                len - index_end
            )));
        }
        let index_offset = index_offset as usize;
        let offsets: Vec<u64> = (0..count as usize)
            .map(|game| read_u64(&bytes, index_offset + 8 * game))
            .collect();
        let mut expected = HEADER_LEN as u64;
        for (game, &offset) in offsets.iter().enumerate() {
            if offset != expected {
                return Err(corrupt(format!(
                    "index entry of game {game} is {offset}, the records put it at {expected}"
                )));
            }
            let start = offset as usize;
            if start + 2 > index_offset {
                return Err(truncated(&format!("game {game}"), offset + 2));
            }
            let moves = usize::from(u16::from_le_bytes([bytes[start], bytes[start + 1]]));
            let end = start + 2 + moves;
            if end > index_offset {
                return Err(truncated(&format!("game {game}"), end as u64));
            }
            for (number, &byte) in bytes[start + 2..end].iter().enumerate() {
                if byte_to_move(byte, size).is_none() {
                    return Err(DatasetError::BadMoveByte {
                        path,
                        game,
                        move_number: number + 1,
                        byte,
                        size,
                    });
                }
            }
            expected = end as u64;
        }
        if expected != index_offset as u64 {
            return Err(corrupt(format!(
                "{} bytes between the last game (ends at {expected}) and the index (at {index_offset})",
                index_offset as u64 - expected
            )));
        }
        Ok(OthelloDataset {
            path,
            size,
            bytes,
            offsets,
        })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Board size.
    pub fn board_size(&self) -> usize {
        self.size
    }

    /// Number of games.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether there are no games.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The move bytes of game `index` (square index or 255 for a pass).
    pub fn game_bytes(&self, index: usize) -> Option<&[u8]> {
        let start = *self.offsets.get(index)? as usize;
        let moves = usize::from(u16::from_le_bytes([
            self.bytes[start],
            self.bytes[start + 1],
        ]));
        Some(&self.bytes[start + 2..start + 2 + moves])
    }

    /// The moves of game `index`, `None` past the end.
    pub fn game(&self, index: usize) -> Option<Vec<OthelloMove>> {
        self.game_bytes(index).map(|bytes| {
            bytes
                .iter()
                .map(|&byte| {
                    byte_to_move(byte, self.size).expect("move bytes are checked on opening")
                })
                .collect()
        })
    }

    /// The games in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Vec<OthelloMove>> + '_ {
        (0..self.len()).map(|index| self.game(index).expect("index below len"))
    }

    /// The positions after each move of game `index` (checking legality).
    pub fn positions(&self, index: usize) -> Result<Vec<Othello>, DatasetError> {
        let moves = self.game(index).ok_or_else(|| DatasetError::NoSuchGame {
            path: self.path.clone(),
            game: index,
            len: self.len(),
        })?;
        let mut position = Othello::new(self.size).expect("size checked on opening");
        let mut positions = Vec::with_capacity(moves.len());
        for (number, mv) in moves.into_iter().enumerate() {
            position.play(mv).map_err(|_| {
                self.illegal(index, number + 1, mv.to_string(), position.board_string())
            })?;
            positions.push(position);
        }
        Ok(positions)
    }

    fn illegal(&self, game: usize, move_number: usize, mv: String, board: String) -> DatasetError {
        DatasetError::IllegalMove {
            path: self.path.clone(),
            game,
            move_number,
            mv,
            board,
        }
    }

    /// Replays every game (in parallel) and reports the first illegal move,
    /// by game number.
    pub fn validate(&self) -> Result<DatasetSummary, DatasetError> {
        let checked: Result<Vec<(u64, u64)>, DatasetError> = (0..self.len())
            .into_par_iter()
            .map(|game| {
                let moves = self.game(game).expect("index below len");
                let passes = moves.iter().filter(|&&mv| mv == OthelloMove::Pass).count() as u64;
                let count = moves.len() as u64;
                replay_game(self.size, moves, |number, mv, board| {
                    self.illegal(game, number, mv, board)
                })?;
                Ok((count, passes))
            })
            .collect();
        let checked = checked?;
        Ok(DatasetSummary {
            path: self.path.clone(),
            board_size: self.size,
            games: self.len() as u64,
            moves: checked.iter().map(|c| c.0).sum(),
            passes: checked.iter().map(|c| c.1).sum(),
            bytes: self.bytes.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Game;

    fn in_pool<T: Send>(threads: usize, work: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a rayon pool builds")
            .install(work)
    }

    #[test]
    fn random_games_are_complete_legal_and_seeded() {
        let games = generate_random_games(8, 50, 11).expect("8 is supported");
        for (index, game) in games.iter().enumerate() {
            let end = replay_game(8, game.iter().copied(), |n, mv, _| {
                format!("game {index} move {n} {mv}")
            })
            .expect("legal");
            assert!(end.is_over(), "game {index} is played to the end");
        }
        let mean = games.iter().map(Vec::len).sum::<usize>() as f64 / 50.0;
        assert!(
            (50.0..=62.0).contains(&mean),
            "mean random 8x8 game length {mean}"
        );
        let one_thread = in_pool(1, || generate_random_games(6, 40, 5));
        let two_threads = in_pool(2, || generate_random_games(6, 40, 5));
        assert_eq!(one_thread, two_threads);
        let prefix = generate_random_games(6, 10, 5).expect("6 is supported");
        assert_eq!(prefix[..], one_thread.expect("6 is supported")[..10]);
        assert_ne!(generate_random_games(6, 10, 6).expect("supported"), prefix);
        assert_eq!(generate_random_games(7, 1, 0), Err(BoardSizeError(7)));
    }

    #[test]
    fn files_round_trip_and_validate() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("random.kbzoth");
        let summary = write_random_dataset(&path, 4, 300, 9).expect("writes");
        let games = generate_random_games(4, 300, 9).expect("4 is supported");
        assert_eq!(summary.games, 300);
        assert_eq!(
            summary.moves,
            games.iter().map(|g| g.len() as u64).sum::<u64>()
        );
        assert!(summary.passes > 0, "300 random 4x4 games include passes");
        let dataset = OthelloDataset::open(&path).expect("reads");
        assert_eq!(dataset.len(), 300);
        assert_eq!(dataset.board_size(), 4);
        assert_eq!(dataset.game(17).as_ref(), Some(&games[17]));
        assert_eq!(dataset.game(300), None);
        assert_eq!(dataset.iter().collect::<Vec<_>>(), games);
        assert_eq!(dataset.validate().expect("valid"), summary);
        let positions = dataset.positions(3).expect("legal");
        assert!(positions.last().expect("games have moves").is_over());
        // Only the dataset is left in the directory: the temp file was renamed.
        assert_eq!(std::fs::read_dir(dir.path()).expect("lists").count(), 1);
        // An empty set is a valid file too.
        let empty: [Vec<OthelloMove>; 0] = [];
        write_dataset(dir.path().join("empty"), 6, &empty).expect("writes");
        assert!(
            OthelloDataset::open(dir.path().join("empty"))
                .expect("reads")
                .is_empty()
        );
    }

    #[test]
    fn writer_refuses_illegal_games_and_leaves_nothing_when_dropped() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("bad.kbzoth");
        let mut writer = DatasetWriter::create(&path, 8).expect("creates");
        let d3: OthelloMove = "d3".parse().expect("name");
        writer.push(&[d3]).expect("d3 is legal");
        let error = writer.push(&[d3, d3]).expect_err("d3 twice is illegal");
        let text = error.to_string();
        assert!(
            text.contains("bad.kbzoth") && text.contains("game 1, move 2 (d3)"),
            "{text}"
        );
        assert_eq!(writer.len(), 1);
        drop(writer);
        assert_eq!(std::fs::read_dir(dir.path()).expect("lists").count(), 0);
    }

    #[test]
    fn damaged_files_are_reported_with_file_game_and_move() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("good.kbzoth");
        write_random_dataset(&path, 6, 5, 3).expect("writes");
        let good = std::fs::read(&path).expect("reads");
        let open =
            |bytes: Vec<u8>| OthelloDataset::from_bytes(PathBuf::from("damaged.kbzoth"), bytes);
        let message = |bytes: Vec<u8>| open(bytes).expect_err("damaged").to_string();

        assert!(message(b"PK\x03\x04 a zip".to_vec()).contains("magic"));
        let mut version = good.clone();
        version[8] = 9;
        assert!(message(version).contains("format version 9"));
        let mut size = good.clone();
        size[10] = 5;
        assert!(message(size).contains("board size 5"));
        let cut = good[..good.len() - 3].to_vec();
        let text = message(cut);
        assert!(text.contains("damaged.kbzoth: truncated: index"), "{text}");
        let mut extra = good.clone();
        extra.push(0);
        assert!(message(extra).contains("1 bytes after the index"));

        // Game 0's first move byte (offset 32 + 2) made off-board, then illegal.
        let mut off_board = good.clone();
        off_board[HEADER_LEN + 2] = 40;
        let text = message(off_board);
        assert!(text.contains("game 0, move 1: byte 40"), "{text}");
        let mut illegal = good.clone();
        illegal[HEADER_LEN + 2] = 0; // a1 is never a legal first move
        let dataset = open(illegal).expect("structurally fine");
        let text = dataset
            .validate()
            .expect_err("a1 first is illegal")
            .to_string();
        assert!(
            text.contains("damaged.kbzoth: game 0, move 1 (a1) is illegal"),
            "{text}"
        );

        // A game record cut short: claim more moves than the records hold.
        let mut long = good.clone();
        long[HEADER_LEN] = 200;
        let text = message(long);
        assert!(text.contains("game 0"), "{text}");
        let mut index = good;
        let index_at = read_u64(&index, 24) as usize;
        index[index_at + 8] ^= 1;
        assert!(message(index).contains("index entry of game 1"));
    }

    /// Plays the move flipping the most discs (ties: the first), a stand-in
    /// for the alpha-beta players of `players/`.
    fn greedy(position: &Othello, _rng: &mut ChaCha8Rng) -> OthelloMove {
        let legal = position.legal_bitboard();
        if legal == 0 {
            return OthelloMove::Pass;
        }
        let best = (0..64)
            .filter(|i| legal >> i & 1 != 0)
            .max_by_key(|&i| (position.flips(i).count_ones(), std::cmp::Reverse(i)));
        OthelloMove::from_index(best.expect("legal is not empty"), position.size())
            .expect("on the board")
    }

    fn first_legal(position: &Othello, _rng: &mut ChaCha8Rng) -> OthelloMove {
        position.legal_moves()[0]
    }

    #[test]
    fn match_games_pair_choosers_and_are_reproducible() {
        let players: [MoveChooser<'_>; 2] = [&greedy, &first_legal];
        let config = MatchConfig {
            size: 6,
            count: 12,
            seed: 21,
            random_opening_plies: 4,
        };
        let games = generate_match_games(&config, &players).expect("legal choosers");
        let pairs: Vec<(usize, usize)> = games.iter().take(4).map(|g| (g.black, g.white)).collect();
        assert_eq!(pairs, [(0, 0), (0, 1), (1, 0), (1, 1)]);
        for game in &games {
            let end = replay_game(6, game.moves.iter().copied(), |n, mv, _| {
                format!("move {n} {mv}")
            })
            .expect("legal");
            assert!(end.is_over());
            // After the opening, Black's moves are the Black chooser's.
            let mut position = Othello::new(6).expect("supported");
            for (ply, &mv) in game.moves.iter().enumerate() {
                if ply >= 4 && position.to_move() == crate::Player::First {
                    let expected = players[game.black](&position, &mut game_rng(0, 0));
                    assert_eq!(mv, expected, "ply {ply}");
                }
                position.play(mv).expect("legal");
            }
        }
        assert_eq!(
            in_pool(1, || generate_match_games(&config, &players)).expect("legal"),
            games
        );
        // Random openings make games between the same deterministic players differ.
        let same_pairing: Vec<_> = games
            .iter()
            .filter(|g| (g.black, g.white) == (0, 0))
            .map(|g| &g.moves)
            .collect();
        assert!(same_pairing.windows(2).any(|w| w[0] != w[1]));

        let dir = tempfile::tempdir().expect("a temp dir");
        let summary =
            write_dataset(dir.path().join("match"), 6, &games).expect("legal games write");
        assert_eq!(summary.games, 12);
        let dataset = OthelloDataset::open(dir.path().join("match")).expect("reads");
        assert_eq!(dataset.game(5).as_ref(), Some(&games[5].moves));
        let error = dataset.positions(12).expect_err("12 games: 0..12");
        assert!(
            error
                .to_string()
                .contains("no game 12: the file holds 12 games"),
            "{error}"
        );

        let cheat = |_: &Othello, _: &mut ChaCha8Rng| OthelloMove::Pass;
        let error =
            generate_match_games(&config, &[&cheat]).expect_err("passing with moves is illegal");
        assert!(
            error.to_string().contains("move 5 (pass) is illegal"),
            "{error}"
        );
    }

    #[test]
    fn agent_games_are_paired_seeded_and_ranked() {
        let players: Vec<PlayerSpec> = ["random", "alphabeta:2", "greedy"]
            .iter()
            .map(|text| text.parse().expect("valid spec"))
            .collect();
        let config = MatchConfig {
            size: 6,
            count: 36,
            seed: 8,
            random_opening_plies: 2,
        };
        let games = in_pool(2, || generate_agent_games(&config, &players)).expect("the games run");
        assert_eq!(
            in_pool(1, || generate_agent_games(&config, &players)).expect("runs"),
            games
        );
        let pairs: Vec<(usize, usize)> = games.iter().take(4).map(|g| (g.black, g.white)).collect();
        assert_eq!(pairs, [(0, 0), (0, 1), (0, 2), (1, 0)]);
        for game in &games {
            let end = replay_game(6, game.moves.iter().copied(), |n, mv, _| {
                format!("move {n} {mv}")
            })
            .expect("legal");
            assert!(end.is_over());
        }
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("champ.kbzoth");
        let (summary, info) = write_agent_dataset(&path, &config, &players).expect("writes");
        assert_eq!(summary.games, 36);
        assert_eq!(info.games_played, [24, 24, 24]);
        // Alpha-beta at depth 2 outscores the random player by far.
        assert!(info.points[1] > info.points[0] + 6.0, "{:?}", info.points);
        let total: f64 = info.points.iter().sum();
        assert!(
            (total - 36.0).abs() < 1e-9,
            "every game hands out one point"
        );
        let sidecar: AgentDatasetInfo = serde_json::from_slice(
            &std::fs::read(players_sidecar_path(&path)).expect("the sidecar exists"),
        )
        .expect("valid JSON");
        assert_eq!(sidecar, info);
        assert_eq!(sidecar.players, ["random", "alphabeta:2", "greedy"]);
        let dataset = OthelloDataset::open(&path).expect("reads");
        assert_eq!(dataset.game(7).as_ref(), Some(&games[7].moves));

        let engine: PlayerSpec = "stockfish".parse().expect("valid spec");
        let error = generate_agent_games(&config, &[engine]).expect_err("no engine for Othello");
        assert!(error.to_string().contains("player stockfish"), "{error}");
        assert!(
            error.to_string().contains("does not play Othello"),
            "{error}"
        );
    }
}
