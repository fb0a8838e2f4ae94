//! Rated games: the moves of a game with each side's strength, the data of
//! skill-conditioned chess models (a policy that is told the Elo it should
//! play at). Imported from PGN (`WhiteElo`, `BlackElo`, `TimeControl`) or
//! made by self-play, written as JSON lines or PGN.
//!
//! # JSON lines
//!
//! One game per line, moves in UCI:
//!
//! ```text
//! {"moves":["e2e4","e7e5"],"white_elo":1850,"black_elo":null,"result":"1-0","time_control":"180+2"}
//! ```
//!
//! `time_control` and `start_fen` (the starting position when it is not the
//! standard one) are left out when absent; unknown fields are an error. Every
//! game is replayed when written and when read, so a file never holds an
//! illegal move.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::Chess;
use super::pgn::{GameResult, PgnError, PgnGame, PgnReader, write_pgn};
use super::{ChessMove, DrawRules, NotationError, parse_fen};
use crate::atomic::AtomicFile;
use crate::game::{Game, Player};

/// A game with both players' strength.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatedGame {
    /// The moves, in UCI.
    pub moves: Vec<ChessMove>,
    /// White's Elo, when known.
    pub white_elo: Option<u32>,
    /// Black's Elo, when known.
    pub black_elo: Option<u32>,
    /// The result.
    pub result: GameResult,
    /// The time control as PGN writes it (`180+2`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_control: Option<String>,
    /// The starting position as FEN, when it is not the standard one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_fen: Option<String>,
}

/// A move of a rated game that cannot be replayed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ply {ply}: {error}")]
pub struct ReplayError {
    /// The move's ply (from 1); 0 for a bad starting position.
    pub ply: usize,
    /// Why.
    pub error: NotationError,
}

/// What can go wrong reading or writing rated games.
#[derive(Debug, thiserror::Error)]
pub enum RatedError {
    /// The file system failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A JSON line that is not a rated game.
    #[error("{path}:{line}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// The error.
        source: serde_json::Error,
    },
    /// A game that does not replay.
    #[error("{source_name}: game {game}: {error}")]
    Replay {
        /// The file (or `<memory>`).
        source_name: String,
        /// The game (from 1; for JSON lines, its line).
        game: usize,
        /// The move.
        error: ReplayError,
    },
    /// A PGN error.
    #[error(transparent)]
    Pgn(#[from] PgnError),
    /// A games file with no game that has a move: empty, blank, tags only,
    /// or (with skipping) every game invalid.
    #[error(
        "{path}: holds no game with moves ({}); expected at least one chess game",
        if *skipped > 0 { format!("all {skipped} games were invalid and skipped") } else { "the file is empty, blank or has tags but no moves".to_string() }
    )]
    NoGames {
        /// The file.
        path: PathBuf,
        /// Games skipped as invalid.
        skipped: usize,
    },
}

impl RatedGame {
    /// The rated game of a game read from PGN: the Elo tags (`?`, `-` or
    /// missing: unknown; anything else but a whole number: an error), the
    /// `TimeControl` tag (`?`, `-` or missing: unknown), the moves, the
    /// result and a non-standard start.
    pub fn from_pgn(game: &PgnGame) -> Result<RatedGame, PgnError> {
        let time_control = game
            .tag("TimeControl")
            .map(str::trim)
            .filter(|tc| !["", "?", "-"].contains(tc))
            .map(str::to_string);
        Ok(RatedGame {
            moves: game.game.moves().to_vec(),
            white_elo: game.elo(Player::First)?,
            black_elo: game.elo(Player::Second)?,
            result: game.result,
            time_control,
            start_fen: start_fen_of(&game.game),
        })
    }

    /// The rated game of a game played here (self-play, an arena), with the
    /// players' strength and the result (which may differ from the
    /// position's, after a resignation or an adjudication).
    pub fn from_game(
        game: &Chess,
        white_elo: Option<u32>,
        black_elo: Option<u32>,
        result: GameResult,
    ) -> RatedGame {
        RatedGame {
            moves: game.moves().to_vec(),
            white_elo,
            black_elo,
            result,
            time_control: None,
            start_fen: start_fen_of(game),
        }
    }

    /// The game, replayed from its start under [`DrawRules::OnClaim`].
    pub fn replay(&self) -> Result<Chess, ReplayError> {
        let start = match &self.start_fen {
            None => shakmaty::Chess::default(),
            Some(fen) => parse_fen(fen).map_err(|error| ReplayError { ply: 0, error })?,
        };
        let mut game = Chess::from_position(start).with_draw_rules(DrawRules::OnClaim);
        for (i, &mv) in self.moves.iter().enumerate() {
            game.play(mv).map_err(|e| ReplayError {
                ply: i + 1,
                error: e.into(),
            })?;
        }
        Ok(game)
    }

    /// The PGN tags of the game: `Result`, and `WhiteElo`, `BlackElo`,
    /// `TimeControl` when known.
    pub fn tags(&self) -> Vec<(String, String)> {
        let mut tags = vec![("Result".to_string(), self.result.to_string())];
        let known = [
            ("WhiteElo", self.white_elo.map(|e| e.to_string())),
            ("BlackElo", self.black_elo.map(|e| e.to_string())),
            ("TimeControl", self.time_control.clone()),
        ];
        for (name, value) in known {
            if let Some(value) = value {
                tags.push((name.to_string(), value));
            }
        }
        tags
    }
}

fn start_fen_of(game: &Chess) -> Option<String> {
    (!game.starts_from_standard()).then(|| game.start_fen())
}

/// The format of a rated-game file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RatedFormat {
    /// One JSON object per line.
    JsonLines,
    /// PGN export format.
    Pgn,
}

impl RatedFormat {
    /// The format a file name asks for: `.pgn` is PGN, `.jsonl` and
    /// `.ndjson` are JSON lines, anything else `None`.
    pub fn from_path(path: &Path) -> Option<RatedFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "pgn" => Some(RatedFormat::Pgn),
            "jsonl" | "ndjson" => Some(RatedFormat::JsonLines),
            _ => None,
        }
    }
}

/// Writes rated games to a file atomically: [`RatedWriter::finish`] renames
/// it into place, and dropping the writer unfinished leaves nothing.
pub struct RatedWriter {
    path: PathBuf,
    format: RatedFormat,
    file: AtomicFile,
    games: usize,
}

impl RatedWriter {
    /// Starts a file of rated games.
    pub fn create(path: impl AsRef<Path>, format: RatedFormat) -> Result<RatedWriter, RatedError> {
        let path = path.as_ref().to_path_buf();
        let file = AtomicFile::create(&path).map_err(|source| RatedError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(RatedWriter {
            path,
            format,
            file,
            games: 0,
        })
    }

    /// Replays `game` (an error if it does not replay) and writes it.
    pub fn push(&mut self, game: &RatedGame) -> Result<(), RatedError> {
        let replayed = game.replay().map_err(|error| RatedError::Replay {
            source_name: self.path.display().to_string(),
            game: self.games + 1,
            error,
        })?;
        let io_error = |source| RatedError::Io {
            path: self.path.clone(),
            source,
        };
        let out = self.file.writer();
        match self.format {
            RatedFormat::JsonLines => {
                serde_json::to_writer(&mut *out, game).map_err(|e| io_error(e.into()))?;
                out.write_all(b"\n").map_err(io_error)?;
            }
            RatedFormat::Pgn => {
                write_pgn(out, &game.tags(), &replayed, game.result).map_err(io_error)?;
            }
        }
        self.games += 1;
        Ok(())
    }

    /// Games written so far.
    pub fn len(&self) -> usize {
        self.games
    }

    /// Whether no game was written.
    pub fn is_empty(&self) -> bool {
        self.games == 0
    }

    /// Syncs and moves the file into place; returns the number of games.
    pub fn finish(self) -> Result<usize, RatedError> {
        let path = self.path;
        self.file
            .commit()
            .map_err(|source| RatedError::Io { path, source })?;
        Ok(self.games)
    }
}

/// Writes rated games to `path` in `format`, atomically; returns how many.
pub fn write_rated_games<'a>(
    path: impl AsRef<Path>,
    format: RatedFormat,
    games: impl IntoIterator<Item = &'a RatedGame>,
) -> Result<usize, RatedError> {
    let mut writer = RatedWriter::create(path, format)?;
    for game in games {
        writer.push(game)?;
    }
    writer.finish()
}

/// Streams the games of a JSON-lines file, replaying each (blank lines are
/// skipped).
pub struct RatedJsonlReader<R> {
    input: R,
    path: PathBuf,
    line: usize,
    text: String,
}

impl RatedJsonlReader<BufReader<File>> {
    /// Opens a JSON-lines file of rated games.
    pub fn open(path: impl AsRef<Path>) -> Result<RatedJsonlReader<BufReader<File>>, RatedError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| RatedError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(RatedJsonlReader::new(BufReader::new(file), path))
    }
}

impl<R: BufRead> RatedJsonlReader<R> {
    /// Reads JSON lines from `input`; `path` names it in errors.
    pub fn new(input: R, path: impl Into<PathBuf>) -> RatedJsonlReader<R> {
        RatedJsonlReader {
            input,
            path: path.into(),
            line: 0,
            text: String::new(),
        }
    }
}

impl<R: BufRead> Iterator for RatedJsonlReader<R> {
    type Item = Result<RatedGame, RatedError>;

    fn next(&mut self) -> Option<Result<RatedGame, RatedError>> {
        loop {
            self.text.clear();
            match self.input.read_line(&mut self.text) {
                Ok(0) => return None,
                Ok(_) => self.line += 1,
                Err(source) => {
                    return Some(Err(RatedError::Io {
                        path: self.path.clone(),
                        source,
                    }));
                }
            }
            if self.text.trim().is_empty() {
                continue;
            }
            let game: RatedGame = match serde_json::from_str(&self.text) {
                Ok(game) => game,
                Err(source) => {
                    return Some(Err(RatedError::Json {
                        path: self.path.clone(),
                        line: self.line,
                        source,
                    }));
                }
            };
            return Some(match game.replay() {
                Ok(_) => Ok(game),
                Err(error) => Err(RatedError::Replay {
                    source_name: self.path.display().to_string(),
                    game: self.line,
                    error,
                }),
            });
        }
    }
}

/// What a PGN import did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImportReport {
    /// Games written.
    pub games: usize,
    /// Games skipped as invalid (only with `skip_invalid`).
    pub skipped: usize,
    /// Moves written.
    pub moves: usize,
    /// Written games with both Elo ratings.
    pub with_both_elo: usize,
}

/// Streams the games of a PGN file into a rated-game file (atomically).
/// Without `skip_invalid` the first bad game is an error and nothing is
/// written; with it, bad games are skipped and counted.
pub fn import_pgn(
    pgn_path: impl AsRef<Path>,
    out_path: impl AsRef<Path>,
    format: RatedFormat,
    skip_invalid: bool,
) -> Result<ImportReport, RatedError> {
    let pgn_path = pgn_path.as_ref();
    let mut reader = PgnReader::open(pgn_path)?.skip_invalid(skip_invalid);
    let mut writer = RatedWriter::create(out_path, format)?;
    let (mut moves, mut with_both_elo, mut bad_tags) = (0, 0, 0);
    for game in reader.by_ref() {
        let rated = match RatedGame::from_pgn(&game?) {
            Ok(rated) => rated,
            // A malformed Elo tag makes the game invalid like any other error.
            Err(_) if skip_invalid => {
                bad_tags += 1;
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        moves += rated.moves.len();
        with_both_elo += usize::from(rated.white_elo.is_some() && rated.black_elo.is_some());
        writer.push(&rated)?;
    }
    if moves == 0 {
        // Dropping the writer uncommitted leaves no output file behind.
        return Err(RatedError::NoGames {
            path: pgn_path.to_path_buf(),
            skipped: reader.skipped() + bad_tags,
        });
    }
    let games = writer.finish()?;
    Ok(ImportReport {
        games,
        skipped: reader.skipped() + bad_tags,
        moves,
        with_both_elo,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PGN: &str = r#"[Event "Rated Blitz game"]
[White "a"]
[Black "b"]
[Result "1-0"]
[WhiteElo "1850"]
[BlackElo "1720"]
[TimeControl "180+2"]

1. e4 e5 2. Qh5 Nc6 3. Bc4 Nf6 4. Qxf7# 1-0

[Event "Casual"]
[Result "*"]
[WhiteElo "?"]

1. d4 *
"#;

    fn games() -> Vec<PgnGame> {
        PgnReader::new(PGN.as_bytes(), "<test>")
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn from_pgn_keeps_elo_and_time_control() {
        let games = games();
        let rated = RatedGame::from_pgn(&games[0]).unwrap();
        assert_eq!(rated.white_elo, Some(1850));
        assert_eq!(rated.black_elo, Some(1720));
        assert_eq!(rated.time_control.as_deref(), Some("180+2"));
        assert_eq!(rated.result, GameResult::WhiteWins);
        assert_eq!(rated.moves.len(), 7);
        assert_eq!(rated.start_fen, None);
        let casual = RatedGame::from_pgn(&games[1]).unwrap();
        assert_eq!((casual.white_elo, casual.black_elo), (None, None));
    }

    #[test]
    fn jsonl_and_pgn_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let rated: Vec<RatedGame> = games()
            .iter()
            .map(|g| RatedGame::from_pgn(g).unwrap())
            .collect();
        let jsonl = dir.path().join("games.jsonl");
        assert_eq!(
            write_rated_games(&jsonl, RatedFormat::JsonLines, &rated).unwrap(),
            2
        );
        let text = std::fs::read_to_string(&jsonl).unwrap();
        assert!(
            text.starts_with(r#"{"moves":["e2e4","e7e5","d1h5""#),
            "{text}"
        );
        let back: Vec<RatedGame> = RatedJsonlReader::open(&jsonl)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(back, rated);

        let pgn = dir.path().join("games.pgn");
        write_rated_games(&pgn, RatedFormat::Pgn, &rated).unwrap();
        let reread: Vec<RatedGame> = PgnReader::open(&pgn)
            .unwrap()
            .map(|g| RatedGame::from_pgn(&g.unwrap()).unwrap())
            .collect();
        assert_eq!(reread, rated);
    }

    #[test]
    fn illegal_games_are_refused() {
        let bad = RatedGame {
            moves: vec!["e2e4".parse().unwrap(), "e2e4".parse().unwrap()],
            white_elo: None,
            black_elo: None,
            result: GameResult::Unknown,
            time_control: None,
            start_fen: None,
        };
        let err = bad.replay().unwrap_err();
        assert_eq!(err.ply, 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        let err = write_rated_games(&path, RatedFormat::JsonLines, [&bad]).unwrap_err();
        assert!(err.to_string().contains("game 1: ply 2"), "{err}");
        assert!(!path.exists());

        std::fs::write(&path, "{\"moves\":[\"e2e4\",\"e2e4\"],\"white_elo\":null,\"black_elo\":null,\"result\":\"*\"}\n\n{\"moves\":[],\"oops\":1}\n").unwrap();
        let results: Vec<_> = RatedJsonlReader::open(&path).unwrap().collect();
        assert!(matches!(
            results[0],
            Err(RatedError::Replay { game: 1, .. })
        ));
        assert!(matches!(results[1], Err(RatedError::Json { line: 3, .. })));
    }

    #[test]
    fn import_skips_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let pgn = dir.path().join("in.pgn");
        let text = format!("{PGN}\n[WhiteElo \"x\"]\n\n1. e4 *\n\n1. e4 e4 *\n");
        std::fs::write(&pgn, text).unwrap();
        let out = dir.path().join("out.jsonl");
        let err = import_pgn(&pgn, &out, RatedFormat::JsonLines, false).unwrap_err();
        assert!(err.to_string().contains("game 3"), "{err}");
        assert!(!out.exists());
        let report = import_pgn(&pgn, &out, RatedFormat::JsonLines, true).unwrap();
        assert_eq!(
            report,
            ImportReport {
                games: 2,
                skipped: 2,
                moves: 8,
                with_both_elo: 1
            }
        );
    }

    #[test]
    fn format_from_path() {
        assert_eq!(
            RatedFormat::from_path(Path::new("a.PGN")),
            Some(RatedFormat::Pgn)
        );
        assert_eq!(
            RatedFormat::from_path(Path::new("a.jsonl")),
            Some(RatedFormat::JsonLines)
        );
        assert_eq!(RatedFormat::from_path(Path::new("a.txt")), None);
    }

    #[test]
    fn empty_blank_and_tags_only_pgn_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        for (name, text) in [
            ("empty.pgn", ""),
            ("blank.pgn", "\n  \n\t\n"),
            ("tags.pgn", "[Event \"x\"]\n[White \"a\"]\n"),
            ("tags_result.pgn", "[Event \"x\"]\n\n*\n"),
        ] {
            let pgn = dir.path().join(name);
            std::fs::write(&pgn, text).unwrap();
            let err = import_pgn(&pgn, &out, RatedFormat::JsonLines, false)
                .expect_err(name)
                .to_string();
            assert!(err.contains(name) && err.contains("no game"), "{err}");
            assert!(!out.exists(), "{name}: an output file was left");
        }
    }
}
