//! Which tokens are labelled, with which position, and the JSONL label file.
//!
//! * **Othello**: every move token. The token of a move is labelled with the
//!   position *after* that move (the model has read the move), with forced
//!   passes before it already played ([`othello_at_move_tokens`]).
//! * **Chess**: every `.` of the ChessGPT character transcript by default —
//!   the position with White to move, before White's move, as reference 002
//!   measures — or any characters chosen by a predicate, each with the
//!   position kibitzer-games' transcript map gives it: the position before
//!   the move the character belongs to ([`chess_at_chars`]).
//!
//! Every labelled position carries a [`TokenRef`] (game, ply, token index)
//! so activations can be gathered for exactly these tokens, and the label
//! file ([`write_labels_jsonl`]) lets anyone check the labels with another
//! library.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use kibitzer_games::Game;
use kibitzer_games::othello::transcript::{Token, replay_tokens};
use kibitzer_games::othello::{Othello, OthelloMove};

use crate::bits::BitMatrix;
use crate::error::{BspError, Result};
use crate::property::{BspLabels, Catalog};
use crate::report::write_atomically;
use std::sync::Arc;

/// Where a labelled position comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenRef {
    /// Index of the game in the input.
    pub game: usize,
    /// Ply of the labelled position (moves played before it, passes included).
    pub ply: usize,
    /// Index of the token in the game's token sequence (Othello: the move
    /// token; chess: the character).
    pub token: usize,
}

/// Positions to label, with where each comes from.
#[derive(Clone, Debug)]
pub struct LabelledPositions<P> {
    /// The positions.
    pub positions: Vec<P>,
    /// Their origins, one per position.
    pub refs: Vec<TokenRef>,
}

impl<P: Clone> LabelledPositions<P> {
    /// Number of positions.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// The given rows, in that order.
    pub fn select(&self, rows: &[usize]) -> LabelledPositions<P> {
        LabelledPositions {
            positions: rows.iter().map(|&r| self.positions[r].clone()).collect(),
            refs: rows.iter().map(|&r| self.refs[r]).collect(),
        }
    }

    /// The first `n` labelled positions of every game (reference 002 keeps
    /// the first 20 dots of each 256-character chess string).
    pub fn first_per_game(&self, n: usize) -> LabelledPositions<P> {
        let mut taken: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
        let rows: Vec<usize> = (0..self.refs.len())
            .filter(|&r| {
                let count = taken.entry(self.refs[r].game).or_insert(0);
                *count += 1;
                *count <= n
            })
            .collect();
        self.select(&rows)
    }
}

fn concat<P>(per_game: Vec<Vec<(P, TokenRef)>>) -> LabelledPositions<P> {
    let total = per_game.iter().map(Vec::len).sum();
    let mut positions = Vec::with_capacity(total);
    let mut refs = Vec::with_capacity(total);
    for (p, r) in per_game.into_iter().flatten() {
        positions.push(p);
        refs.push(r);
    }
    LabelledPositions { positions, refs }
}

/// The position after every move token of OthelloGPT-style transcripts
/// (token 0 is padding and ends a game).
pub fn othello_at_move_tokens(
    size: usize,
    games: &[Vec<Token>],
) -> Result<LabelledPositions<Othello>> {
    let per_game = games
        .par_iter()
        .enumerate()
        .map(|(game, tokens)| {
            let positions = replay_tokens(size, tokens)
                .map_err(|source| BspError::OthelloTranscript { game, source })?;
            Ok(positions
                .into_iter()
                .enumerate()
                .map(|(token, position)| {
                    let ply = position.ply();
                    (position, TokenRef { game, ply, token })
                })
                .collect())
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(concat(per_game))
}

/// The position after every square move of move lists (passes have no
/// token and are not labelled).
pub fn othello_at_moves(
    size: usize,
    games: &[Vec<OthelloMove>],
) -> Result<LabelledPositions<Othello>> {
    let per_game = games
        .par_iter()
        .enumerate()
        .map(|(game, moves)| {
            let mut position = Othello::new(size).map_err(|e| BspError::Config {
                field: "othello board size",
                detail: e.to_string(),
            })?;
            let mut out = Vec::with_capacity(moves.len());
            for (i, &mv) in moves.iter().enumerate() {
                position.play(mv).map_err(|source| BspError::OthelloMove {
                    game,
                    move_number: i + 1,
                    source,
                })?;
                if matches!(mv, OthelloMove::Square(_)) {
                    let token = out.len();
                    out.push((
                        position,
                        TokenRef {
                            game,
                            ply: position.ply(),
                            token,
                        },
                    ));
                }
            }
            Ok(out)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(concat(per_game))
}

#[cfg(feature = "chess")]
pub use self::chess_labelling::*;

#[cfg(feature = "chess")]
mod chess_labelling {
    use super::*;
    use kibitzer_games::chess::Chess;
    use kibitzer_games::chess::shakmaty;
    use kibitzer_games::chess::transcript::Transcript;

    fn select_chars(
        game: usize,
        transcript: &Transcript,
        positions: &[shakmaty::Chess],
        max_chars: Option<usize>,
        select: &(dyn Fn(usize, char) -> bool + Sync),
    ) -> Vec<(shakmaty::Chess, TokenRef)> {
        let n = max_chars.map_or(transcript.text.len(), |m| m.min(transcript.text.len()));
        transcript.text[..n]
            .char_indices()
            .filter(|&(i, c)| select(i, c))
            .map(|(token, _)| {
                let ply = transcript.positions[token];
                (positions[ply].clone(), TokenRef { game, ply, token })
            })
            .collect()
    }

    /// The characters of the games' ChessGPT transcripts (the first
    /// `max_chars` of each, as a model with that context sees them) for
    /// which `select(index, char)` holds, each with the position it belongs
    /// to.
    pub fn chess_at_chars(
        games: &[Chess],
        max_chars: Option<usize>,
        select: impl Fn(usize, char) -> bool + Sync,
    ) -> Result<LabelledPositions<shakmaty::Chess>> {
        let per_game = games
            .par_iter()
            .enumerate()
            .map(|(game, chess)| {
                let transcript = Transcript::from_game(chess)
                    .map_err(|source| BspError::ChessTranscript { game, source })?;
                Ok(select_chars(
                    game,
                    &transcript,
                    &chess.positions(),
                    max_chars,
                    &select,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(concat(per_game))
    }

    /// Every `.` of the games' transcripts: White to move (reference 002,
    /// which also cuts each transcript to 256 characters and keeps its first
    /// 20 dots: `chess_at_dots(games, Some(256))?.first_per_game(20)`).
    pub fn chess_at_dots(
        games: &[Chess],
        max_chars: Option<usize>,
    ) -> Result<LabelledPositions<shakmaty::Chess>> {
        chess_at_chars(games, max_chars, |_, c| c == '.')
    }

    /// Like [`chess_at_chars`], from transcript texts (`;1.e4 e5 2.Nf3`).
    pub fn chess_transcripts_at_chars(
        texts: &[String],
        max_chars: Option<usize>,
        select: impl Fn(usize, char) -> bool + Sync,
    ) -> Result<LabelledPositions<shakmaty::Chess>> {
        let per_game = texts
            .par_iter()
            .enumerate()
            .map(|(game, text)| {
                let (transcript, chess) = Transcript::parse(text)
                    .map_err(|source| BspError::ChessTranscript { game, source })?;
                Ok(select_chars(
                    game,
                    &transcript,
                    &chess.positions(),
                    max_chars,
                    &select,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(concat(per_game))
    }
}

/// Splits rows into train and held-out rows by game: a seeded shuffle of
/// the games, the first `ceil(test_fraction x games)` held out, so no game
/// has positions on both sides.
pub fn split_by_game(
    refs: &[TokenRef],
    test_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..1.0).contains(&test_fraction) || test_fraction.is_nan() {
        return Err(BspError::Config {
            field: "test_fraction",
            detail: format!("{test_fraction}; expected a fraction in 0..1"),
        });
    }
    let mut games: Vec<usize> = refs.iter().map(|r| r.game).collect();
    games.sort_unstable();
    games.dedup();
    games.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n_test = (test_fraction * games.len() as f64).ceil() as usize;
    let held_out: std::collections::HashSet<usize> = games[..n_test].iter().copied().collect();
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (row, r) in refs.iter().enumerate() {
        if held_out.contains(&r.game) {
            test.push(row);
        } else {
            train.push(row);
        }
    }
    Ok((train, test))
}

/// A position as text in a label file.
pub trait DescribePosition {
    /// The JSON key of the text (`"fen"`, `"board"`).
    const KEY: &'static str;
    /// The text.
    fn describe(&self) -> String;
}

impl DescribePosition for Othello {
    const KEY: &'static str = "board";
    fn describe(&self) -> String {
        crate::othello::describe(self)
    }
}

#[cfg(feature = "chess")]
impl DescribePosition for kibitzer_games::chess::shakmaty::Chess {
    const KEY: &'static str = "fen";
    fn describe(&self) -> String {
        crate::chess::describe(self)
    }
}

struct LabelLine<'a, P> {
    at: TokenRef,
    position: &'a P,
    labels: &'a BspLabels,
    row: usize,
}

struct Values<'a> {
    labels: &'a BspLabels,
    row: usize,
}

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let bsps = self.labels.catalog().bsps();
        let mut map = serializer.serialize_map(Some(bsps.len()))?;
        for (i, info) in bsps.iter().enumerate() {
            map.serialize_entry(&info.name, &self.labels.get(self.row, i))?;
        }
        map.end()
    }
}

impl<P: DescribePosition> Serialize for LabelLine<'_, P> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("game", &self.at.game)?;
        map.serialize_entry("ply", &self.at.ply)?;
        map.serialize_entry("token", &self.at.token)?;
        map.serialize_entry(P::KEY, &self.position.describe())?;
        map.serialize_entry(
            "bsps",
            &Values {
                labels: self.labels,
                row: self.row,
            },
        )?;
        map.end()
    }
}

/// Writes one JSON object per labelled position: `game`, `ply`, `token`, the
/// FEN (`fen`) or Othello board string (`board`), and `bsps`, every
/// property's value by name, in catalog order.
pub fn write_labels_jsonl<P: DescribePosition, W: Write>(
    mut out: W,
    positions: &LabelledPositions<P>,
    labels: &BspLabels,
) -> Result<()> {
    if positions.positions.len() != labels.rows() || positions.refs.len() != labels.rows() {
        return Err(BspError::RowCount {
            what: "labelled positions".into(),
            expected: labels.rows(),
            found: positions.positions.len(),
        });
    }
    let io = |source| BspError::Io {
        path: PathBuf::from("<label output>"),
        source,
    };
    for (row, (position, &at)) in positions.positions.iter().zip(&positions.refs).enumerate() {
        let line = LabelLine {
            at,
            position,
            labels,
            row,
        };
        serde_json::to_writer(&mut out, &line).map_err(|source| BspError::Json {
            what: format!("label line {row}"),
            source,
        })?;
        out.write_all(b"\n").map_err(io)?;
    }
    out.flush().map_err(io)
}

/// [`write_labels_jsonl`] into a file, atomically.
pub fn save_labels_jsonl<P: DescribePosition>(
    path: &Path,
    positions: &LabelledPositions<P>,
    labels: &BspLabels,
) -> Result<()> {
    let mut bytes = Vec::new();
    write_labels_jsonl(&mut bytes, positions, labels)?;
    write_atomically(path, &bytes)
}

/// Reads a label file written by [`write_labels_jsonl`] (or by any tool
/// that writes the same lines) back into origins and a bit matrix in the
/// order of `catalog`: every line must have `game`, `ply`, `token` and a
/// `bsps` object with a boolean for every property of the catalog and no
/// other. Errors name the file, the line and the key.
pub fn read_labels_jsonl(path: &Path, catalog: Arc<Catalog>) -> Result<(Vec<TokenRef>, BspLabels)> {
    let file = std::fs::File::open(path).map_err(|source| BspError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |line: usize, detail: String| BspError::LabelFile {
        path: path.to_path_buf(),
        line,
        detail,
    };
    let mut refs = Vec::new();
    let mut rows: Vec<Vec<usize>> = Vec::new();
    for (i, text) in std::io::BufRead::lines(std::io::BufReader::new(file)).enumerate() {
        let line = i + 1;
        let text = text.map_err(|source| BspError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| bad(line, format!("not a JSON object: {e}")))?;
        let field = |key: &str| {
            value
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .map(|v| v as usize)
                .ok_or_else(|| {
                    bad(
                        line,
                        format!("`{key}` is missing or not a non-negative integer"),
                    )
                })
        };
        refs.push(TokenRef {
            game: field("game")?,
            ply: field("ply")?,
            token: field("token")?,
        });
        let bsps = value
            .get("bsps")
            .and_then(serde_json::Value::as_object)
            .ok_or_else(|| {
                bad(
                    line,
                    "`bsps` is missing or not an object of property -> bool".into(),
                )
            })?;
        if bsps.len() != catalog.len() {
            let unknown = bsps.keys().find(|k| catalog.index_of(k).is_none());
            return Err(bad(
                line,
                match unknown {
                    Some(k) => format!(
                        "unknown property {k:?} (the BSP set has {} properties)",
                        catalog.len()
                    ),
                    None => format!(
                        "{} properties, expected the BSP set's {}",
                        bsps.len(),
                        catalog.len()
                    ),
                },
            ));
        }
        let mut ones = Vec::new();
        for (name, v) in bsps {
            let index = catalog
                .index_of(name)
                .ok_or_else(|| bad(line, format!("unknown property {name:?}")))?;
            match v.as_bool() {
                Some(true) => ones.push(index),
                Some(false) => {}
                None => {
                    return Err(bad(
                        line,
                        format!("property {name:?} is {v}, expected true or false"),
                    ));
                }
            }
        }
        rows.push(ones);
    }
    let mut bits = BitMatrix::zeros(rows.len(), catalog.len());
    for (r, ones) in rows.iter().enumerate() {
        for &c in ones {
            bits.set(r, c, true);
        }
    }
    Ok((refs, BspLabels::from_bits(catalog, bits)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::othello::{OthelloBspOptions, othello_bsps};
    use kibitzer_games::othello::transcript::square_to_token;

    #[test]
    fn othello_tokens_and_moves_label_the_same_positions() {
        let moves: Vec<OthelloMove> = ["d3", "c5", "f6"]
            .iter()
            .map(|m| m.parse().expect("move"))
            .collect();
        let tokens: Vec<Token> = moves
            .iter()
            .map(|m| match m {
                OthelloMove::Square(s) => square_to_token(s.index(8), 8).expect("token"),
                OthelloMove::Pass => unreachable!("no pass here"),
            })
            .chain([0, 0])
            .collect();
        let a = othello_at_move_tokens(8, &[tokens.clone(), tokens]).expect("legal");
        let b = othello_at_moves(8, std::slice::from_ref(&moves)).expect("legal");
        assert_eq!(a.len(), 6);
        assert_eq!(b.len(), 3);
        assert_eq!(a.positions[..3], b.positions[..]);
        assert_eq!(
            a.refs[4],
            TokenRef {
                game: 1,
                ply: 2,
                token: 1
            }
        );
        let bad = othello_at_move_tokens(8, &[vec![1]]).expect_err("a1 first is illegal");
        assert!(bad.to_string().contains("game 0"), "{bad}");
    }

    #[test]
    fn split_by_game_keeps_games_whole_and_is_seeded() {
        let refs: Vec<TokenRef> = (0..100)
            .map(|i| TokenRef {
                game: i / 10,
                ply: i % 10,
                token: i % 10,
            })
            .collect();
        let (train, test) = split_by_game(&refs, 0.25, 7).expect("fraction");
        assert_eq!(train.len() + test.len(), 100);
        assert_eq!(test.len(), 30); // ceil(2.5) = 3 games of 10
        let test_games: std::collections::HashSet<usize> =
            test.iter().map(|&r| refs[r].game).collect();
        assert!(train.iter().all(|&r| !test_games.contains(&refs[r].game)));
        assert_eq!(split_by_game(&refs, 0.25, 7).expect("again"), (train, test));
        assert!(split_by_game(&refs, 1.5, 7).is_err());
    }

    #[test]
    fn jsonl_has_one_object_per_position_with_every_value() {
        let set = othello_bsps(
            6,
            OthelloBspOptions {
                include_empty: true,
                legal_moves: true,
                last_move: false,
                flipped: false,
            },
        )
        .expect("set");
        let moves: Vec<OthelloMove> = vec!["b3".parse().expect("move")];
        let positions = othello_at_moves(6, &[moves]).expect("legal on 6x6");
        let labels = set.label(&positions.positions).expect("labels");
        let mut out = Vec::new();
        write_labels_jsonl(&mut out, &positions, &labels).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1);
        let value: serde_json::Value = serde_json::from_str(lines[0]).expect("json");
        assert_eq!(value["game"], 0);
        assert_eq!(value["ply"], 1);
        assert_eq!(value["board"], positions.positions[0].describe());
        let bsps = value["bsps"].as_object().expect("map");
        assert_eq!(bsps.len(), set.len());
        for (i, info) in set.catalog().bsps().iter().enumerate() {
            assert_eq!(
                bsps[&info.name],
                serde_json::Value::Bool(labels.get(0, i)),
                "{}",
                info.name
            );
        }
    }

    #[test]
    fn labels_read_back_as_written_and_bad_lines_are_named() {
        let set = othello_bsps(6, OthelloBspOptions::default()).expect("set");
        let games: Vec<Vec<OthelloMove>> = vec![
            vec!["b3".parse().expect("move"), "b2".parse().expect("move")],
            vec!["c2".parse().expect("move")],
        ];
        let positions = othello_at_moves(6, &games).expect("legal on 6x6");
        let labels = set.label(&positions.positions).expect("labels");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("labels.jsonl");
        save_labels_jsonl(&path, &positions, &labels).expect("write");
        let (refs, read) = read_labels_jsonl(&path, set.catalog().clone()).expect("read");
        assert_eq!(refs, positions.refs);
        assert_eq!(read.bits(), labels.bits());
        // A line with a property the set does not have.
        let text = std::fs::read_to_string(&path).expect("text");
        let broken = text.replacen("\"bsps\":{", "\"bsps\":{\"nonsense@z9\":true,", 1);
        std::fs::write(&path, broken).expect("write");
        let err = read_labels_jsonl(&path, set.catalog().clone())
            .expect_err("unknown key")
            .to_string();
        assert!(
            err.contains("labels.jsonl, line 1") && err.contains("nonsense@z9"),
            "{err}"
        );
    }
}
