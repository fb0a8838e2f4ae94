//! Game files, whatever their format: tell a file's kind
//! ([`game_file_kind`]: kibitzer's Othello dataset by its magic bytes, PGN,
//! rated JSON lines), read its chess games replayed
//! ([`read_chess_games`]), summarise it ([`file_info`]) or print one game
//! ([`show_game`]). Every bad game is an error naming the file, the game and
//! the move.
//!
//! ```no_run
//! use kibitzer_games::files::{GameFileKind, game_file_kind};
//! match game_file_kind("games.pgn")? {
//!     GameFileKind::OthelloDataset => println!("Othello"),
//!     GameFileKind::Pgn | GameFileKind::RatedJsonLines => println!("chess"),
//! }
//! # Ok::<(), kibitzer_games::files::GameFileError>(())
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::dataset::{DatasetError, MAGIC};
use crate::othello::reports::{
    DatasetInfo as OthelloDatasetInfo, dataset_info as othello_dataset_info,
    show_game as othello_show_game,
};

#[cfg(feature = "chess")]
use crate::chess::{
    pgn::{GameResult, PgnError, PgnReader},
    rated::{RatedError, RatedGame, RatedJsonlReader},
};
#[cfg(feature = "chess")]
use crate::players::TextGame;

/// What can go wrong reading a game file.
#[derive(Debug, thiserror::Error)]
pub enum GameFileError {
    /// A file whose kind cannot be told, or of the wrong kind.
    #[error("{path}: {problem}; expected {expected}")]
    UnknownFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
        /// What would do.
        expected: &'static str,
    },
    /// A game number past the end of a file.
    #[error("{path}: no game {game}: the file holds {len} games (0..{len})")]
    NoSuchGame {
        /// The file.
        path: PathBuf,
        /// The game asked for (from 0).
        game: usize,
        /// How many it holds.
        len: usize,
    },
    /// Chess in a build without the `chess` feature.
    #[error("{what} needs the `chess` feature, which this build was compiled without")]
    NoChess {
        /// What was asked.
        what: String,
    },
    /// An Othello dataset could not be read.
    #[error(transparent)]
    Dataset(Box<DatasetError>),
    /// A rated-games file could not be read, or a game not replayed.
    #[cfg(feature = "chess")]
    #[error(transparent)]
    Rated(Box<RatedError>),
    /// A PGN file could not be read.
    #[cfg(feature = "chess")]
    #[error(transparent)]
    Pgn(Box<PgnError>),
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl From<DatasetError> for GameFileError {
    fn from(error: DatasetError) -> Self {
        GameFileError::Dataset(Box::new(error))
    }
}

#[cfg(feature = "chess")]
impl From<RatedError> for GameFileError {
    fn from(error: RatedError) -> Self {
        GameFileError::Rated(Box::new(error))
    }
}

#[cfg(feature = "chess")]
impl From<PgnError> for GameFileError {
    fn from(error: PgnError) -> Self {
        GameFileError::Pgn(Box::new(error))
    }
}

/// The error for chess in a build without the `chess` feature.
#[cfg(not(feature = "chess"))]
fn no_chess(what: &str) -> GameFileError {
    GameFileError::NoChess {
        what: what.to_owned(),
    }
}

/// The kinds of game files `info` and `show` read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GameFileKind {
    /// kibitzer's binary Othello dataset (`KBZOTH1`).
    OthelloDataset,
    /// PGN.
    Pgn,
    /// Rated chess games as JSON lines.
    RatedJsonLines,
}

/// The kind of `path`: by its magic bytes for Othello datasets, else by its
/// extension (`.pgn`, `.jsonl`, `.ndjson`).
pub fn game_file_kind(path: impl AsRef<Path>) -> Result<GameFileKind, GameFileError> {
    let path = path.as_ref();
    let io_error = |source| GameFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut head = Vec::with_capacity(MAGIC.len());
    std::fs::File::open(path)
        .map_err(io_error)?
        .take(MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(io_error)?;
    if head == MAGIC {
        return Ok(GameFileKind::OthelloDataset);
    }
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("pgn") => Ok(GameFileKind::Pgn),
        Some("jsonl" | "ndjson") => Ok(GameFileKind::RatedJsonLines),
        _ => Err(GameFileError::UnknownFile {
            path: path.to_path_buf(),
            problem: format!(
                "not an Othello dataset (it starts with {:?}, not the magic bytes \"KBZOTH1\\0\") and the extension is not .pgn or .jsonl",
                String::from_utf8_lossy(&head)
            ),
            expected: "an Othello dataset from `games generate othello`, a .pgn file or a .jsonl file of rated games",
        }),
    }
}

/// A summary of a file of chess games.
#[cfg(feature = "chess")]
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChessGamesInfo {
    /// The file.
    pub path: PathBuf,
    /// PGN or JSON lines.
    pub format: GameFileKind,
    /// Games read.
    pub games: usize,
    /// Games skipped as invalid (only when asked to skip).
    pub skipped: usize,
    /// Moves over all games.
    pub moves: usize,
    /// Results: White won.
    pub white_wins: usize,
    /// Results: Black won.
    pub black_wins: usize,
    /// Results: drawn.
    pub draws: usize,
    /// Results: unknown or unfinished (`*`).
    pub unfinished: usize,
    /// Games with both players' Elo.
    pub with_both_elo: usize,
    /// The lowest Elo of any player, when some are known.
    pub min_elo: Option<u32>,
    /// The highest Elo of any player.
    pub max_elo: Option<u32>,
    /// The mean Elo over every known rating.
    pub mean_elo: Option<f64>,
}

/// What `info` says of a game file.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileInfo {
    /// An Othello dataset: counts and results, every game replayed.
    Othello(OthelloDatasetInfo),
    /// A file of chess games, every game replayed.
    #[cfg(feature = "chess")]
    Chess(ChessGamesInfo),
}

/// Reads every game of `path` (an Othello dataset, PGN or rated JSON lines;
/// see [`game_file_kind`]), replaying each, and summarises them. The first
/// bad game is an error naming the file, game and move, unless
/// `skip_invalid` (PGN only), when bad games are counted instead.
pub fn file_info(path: impl AsRef<Path>, skip_invalid: bool) -> Result<FileInfo, GameFileError> {
    let path = path.as_ref();
    match game_file_kind(path)? {
        GameFileKind::OthelloDataset => Ok(FileInfo::Othello(othello_dataset_info(path)?)),
        #[cfg(feature = "chess")]
        kind => chess_games_info(path, kind, skip_invalid).map(FileInfo::Chess),
        #[cfg(not(feature = "chess"))]
        _ => {
            let _ = skip_invalid;
            Err(no_chess("reading chess games"))
        }
    }
}

/// Every game of a chess file as a rated game, in order; bad games are
/// errors, or with `skip_invalid` (PGN) counted in the second value.
#[cfg(feature = "chess")]
fn for_each_chess_game(
    path: &Path,
    kind: GameFileKind,
    skip_invalid: bool,
    mut visit: impl FnMut(usize, RatedGame, Option<&crate::chess::pgn::PgnGame>) -> bool,
) -> Result<usize, GameFileError> {
    match kind {
        GameFileKind::Pgn => {
            let mut reader = PgnReader::open(path)?.skip_invalid(skip_invalid);
            let mut index = 0;
            let mut bad_tags = 0;
            for game in reader.by_ref() {
                let game = game?;
                let rated = match RatedGame::from_pgn(&game) {
                    Ok(rated) => rated,
                    Err(_) if skip_invalid => {
                        bad_tags += 1;
                        continue;
                    }
                    Err(error) => return Err(error.into()),
                };
                if !visit(index, rated, Some(&game)) {
                    break;
                }
                index += 1;
            }
            Ok(reader.skipped() + bad_tags)
        }
        GameFileKind::RatedJsonLines => {
            for (index, game) in RatedJsonlReader::open(path)?.enumerate() {
                if !visit(index, game?, None) {
                    break;
                }
            }
            Ok(0)
        }
        GameFileKind::OthelloDataset => unreachable!("callers pass chess kinds only"),
    }
}

/// The first `max_games` games (all when `None`) of a chess file (PGN or
/// rated JSON lines; see [`game_file_kind`]), each replayed; the first bad
/// game is an error naming the file, game and move. An Othello dataset is
/// an error saying a chess file was expected.
#[cfg(feature = "chess")]
pub fn read_chess_games(
    path: impl AsRef<Path>,
    max_games: Option<usize>,
) -> Result<Vec<crate::chess::Chess>, GameFileError> {
    let path = path.as_ref();
    let kind = game_file_kind(path)?;
    if kind == GameFileKind::OthelloDataset {
        return Err(GameFileError::UnknownFile {
            path: path.to_path_buf(),
            problem: "this is an Othello dataset".into(),
            expected: "chess games: a .pgn file or a .jsonl file of rated games",
        });
    }
    let limit = max_games.unwrap_or(usize::MAX);
    let mut games = Vec::new();
    let mut failed = None;
    if limit > 0 {
        for_each_chess_game(path, kind, false, |index, rated, pgn| {
            // A PGN game was replayed as it was read; JSON lines hold moves only.
            let replayed = match pgn {
                Some(pgn) => Ok(pgn.game.clone()),
                None => rated.replay(),
            };
            match replayed {
                Ok(game) => games.push(game),
                Err(error) => {
                    failed = Some(RatedError::Replay {
                        source_name: path.display().to_string(),
                        game: index + 1,
                        error,
                    });
                    return false;
                }
            }
            games.len() < limit
        })?;
    }
    if failed.is_none() && limit > 0 && games.iter().all(|g| g.moves().is_empty()) {
        failed = Some(RatedError::NoGames {
            path: path.to_path_buf(),
            skipped: 0,
        });
    }
    match failed {
        Some(error) => Err(error.into()),
        None => Ok(games),
    }
}

#[cfg(feature = "chess")]
fn chess_games_info(
    path: &Path,
    kind: GameFileKind,
    skip_invalid: bool,
) -> Result<ChessGamesInfo, GameFileError> {
    let mut info = ChessGamesInfo {
        path: path.to_path_buf(),
        format: kind,
        games: 0,
        skipped: 0,
        moves: 0,
        white_wins: 0,
        black_wins: 0,
        draws: 0,
        unfinished: 0,
        with_both_elo: 0,
        min_elo: None,
        max_elo: None,
        mean_elo: None,
    };
    let (mut elo_sum, mut elo_count) = (0u64, 0u64);
    info.skipped = for_each_chess_game(path, kind, skip_invalid, |_, game, _| {
        info.games += 1;
        info.moves += game.moves.len();
        match game.result {
            GameResult::WhiteWins => info.white_wins += 1,
            GameResult::BlackWins => info.black_wins += 1,
            GameResult::Draw => info.draws += 1,
            GameResult::Unknown => info.unfinished += 1,
        }
        info.with_both_elo += usize::from(game.white_elo.is_some() && game.black_elo.is_some());
        for elo in [game.white_elo, game.black_elo].into_iter().flatten() {
            info.min_elo = Some(info.min_elo.map_or(elo, |low| low.min(elo)));
            info.max_elo = Some(info.max_elo.map_or(elo, |high| high.max(elo)));
            elo_sum += u64::from(elo);
            elo_count += 1;
        }
        true
    })?;
    if info.moves == 0 {
        return Err(RatedError::NoGames {
            path: path.to_path_buf(),
            skipped: info.skipped,
        }
        .into());
    }
    info.mean_elo = (elo_count > 0).then(|| elo_sum as f64 / elo_count as f64);
    Ok(info)
}

/// Game `index` (from 0) of `path` as text for a terminal: for Othello the
/// moves and the final board; for chess the game as PGN (tags kept) and the
/// final board.
pub fn show_game(path: impl AsRef<Path>, index: usize) -> Result<String, GameFileError> {
    let path = path.as_ref();
    match game_file_kind(path)? {
        GameFileKind::OthelloDataset => Ok(othello_show_game(path, index)?),
        #[cfg(feature = "chess")]
        kind => {
            let mut shown = None;
            let mut seen = 0;
            for_each_chess_game(path, kind, false, |at, game, pgn| {
                seen = at + 1;
                if at != index {
                    return true;
                }
                shown = Some(match pgn {
                    Some(pgn) => Ok((pgn.to_pgn(), pgn.game.clone())),
                    None => game.replay().map(|replayed| {
                        let text =
                            crate::chess::pgn::pgn_string(&game.tags(), &replayed, game.result);
                        (text, replayed)
                    }),
                });
                false
            })?;
            match shown {
                Some(Ok((text, end))) => Ok(format!("game {index}:\n{text}{}\n", end.board_text())),
                Some(Err(error)) => Err(RatedError::Replay {
                    source_name: path.display().to_string(),
                    game: index + 1,
                    error,
                }
                .into()),
                None => Err(GameFileError::NoSuchGame {
                    path: path.to_path_buf(),
                    game: index,
                    len: seen,
                }),
            }
        }
        #[cfg(not(feature = "chess"))]
        _ => Err(no_chess("showing chess games")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_files_are_named() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "hello").expect("written");
        let error = file_info(&path, false).expect_err("not a game file");
        let text = error.to_string();
        assert!(
            text.contains("notes.txt") && text.contains(".pgn"),
            "{text}"
        );
        let error = file_info(dir.path().join("missing.pgn"), false).expect_err("no file");
        assert!(error.to_string().contains("missing.pgn"), "{error}");
    }

    #[test]
    fn othello_datasets_are_known_by_their_magic_bytes_whatever_their_name() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("games.pgn");
        crate::dataset::write_random_dataset(&path, 6, 3, 0).expect("written");
        assert_eq!(
            game_file_kind(&path).expect("a dataset"),
            GameFileKind::OthelloDataset
        );
        let text = show_game(&path, 0).expect("game 0");
        assert!(text.starts_with("game 0: "), "{text}");
        let error = show_game(&path, 3).expect_err("three games: 0..3");
        assert!(error.to_string().contains('3'), "{error}");
        #[cfg(feature = "chess")]
        {
            let error = read_chess_games(&path, None).expect_err("not chess");
            assert!(error.to_string().contains("Othello dataset"), "{error}");
        }
    }
}
