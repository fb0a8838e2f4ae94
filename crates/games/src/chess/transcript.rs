//! Chess games as the character strings of ChessGPT (Adam Karvonen's
//! `chess_llm_interpretability` and its nanoGPT models), and the position
//! each character belongs to.
//!
//! # Format
//!
//! `;1.e4 e5 2.Nf3 Nc6 3.Bb5 a6`: a leading `;`, White's moves preceded by
//! the move number and `.` with no space after it, one space between moves,
//! SAN with `+` for check and `#` for mate, promotions as `e8=Q`, castling as
//! `O-O` / `O-O-O`, no result. Only games from the standard starting position
//! have transcripts.
//!
//! # Vocabulary
//!
//! The 32 characters of [`VOCAB`], indexed in sorted character order, as
//! nanoGPT's `prepare.py` builds `meta.pkl` (`stoi = {c: i for i, c in
//! enumerate(sorted(set(text)))}`):
//!
//! | index | chars |
//! |---|---|
//! | 0 | ` ` (space) |
//! | 1 | `#` |
//! | 2 | `+` |
//! | 3 | `-` |
//! | 4 | `.` |
//! | 5–14 | `0`–`9` |
//! | 15 | `;` |
//! | 16 | `=` |
//! | 17–22 | `B`, `K`, `N`, `O`, `Q`, `R` |
//! | 23–30 | `a`–`h` |
//! | 31 | `x` |
//!
//! # Which position a character belongs to
//!
//! [`Transcript::positions`]`[i]` is the ply of the position character `i`
//! belongs to: the position *before* the move the character is part of, the
//! board the writer sees while writing it. The space before a move and the
//! move number belong to that move. So in `;1.e4 e5 2.Nf3`:
//!
//! | chars | `;1.e4` | ` e5` | ` 2.Nf3` |
//! |---|---|---|---|
//! | position (ply) | 0 (start) | 1 (after e4) | 2 (after e5) |
//!
//! This is the labelling of `create_state_stack` in `chess_llm_interpretability`
//! (the state index goes up at every space), so a board-state probe at a `.`
//! sees the position with White to move, before White's move — the
//! positions ChessGPT's probes are trained on ([`Transcript::dot_plies`],
//! [`white_to_move_positions`]). The position after the last move has no
//! character. Transcripts are ASCII, so character and byte indices agree;
//! cutting `text` and `positions` at the same length gives the map of a
//! truncated transcript.

use shakmaty::Position;

use super::{Chess, DrawRules, NotationError};
use crate::game::Game;

/// The characters of ChessGPT transcripts, in token order (sorted).
pub const VOCAB: [char; 32] = [
    ' ', '#', '+', '-', '.', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ';', '=', 'B', 'K',
    'N', 'O', 'Q', 'R', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'x',
];

/// The token of a character, or `None` outside the vocabulary.
pub fn char_to_token(c: char) -> Option<u8> {
    // The vocabulary is sorted, as nanoGPT sorts it.
    VOCAB.binary_search(&c).ok().map(|i| i as u8)
}

/// The character of a token, or `None` for a token past the vocabulary.
pub fn token_to_char(token: u8) -> Option<char> {
    VOCAB.get(usize::from(token)).copied()
}

/// A transcript that does not describe a legal game, or a game without a
/// transcript.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TranscriptError {
    /// Transcripts start from the standard position.
    #[error("the game starts from {fen}, not the standard position: it has no transcript")]
    NotFromStart {
        /// The starting position.
        fen: String,
    },
    /// A character outside the 32-character vocabulary.
    #[error("character {index} ({found:?}) is not in the transcript vocabulary")]
    UnknownChar {
        /// Its index.
        index: usize,
        /// The character.
        found: char,
    },
    /// A token past the vocabulary.
    #[error("token {index} ({found}) is not in the 32-token vocabulary")]
    UnknownToken {
        /// Its index.
        index: usize,
        /// The token.
        found: u8,
    },
    /// The text does not follow the format.
    #[error("character {index}: expected {expected}, found {found:?}")]
    Syntax {
        /// Where.
        index: usize,
        /// What the format needs there.
        expected: String,
        /// What is there (empty at the end).
        found: String,
    },
    /// A move that is not SAN, or not legal where it is played.
    #[error("character {index}, move {move_number} {san:?}: {error}")]
    Move {
        /// Where the move starts.
        index: usize,
        /// The move number.
        move_number: u32,
        /// The move as written.
        san: String,
        /// Why it cannot be played.
        error: NotationError,
    },
}

/// A game as a ChessGPT transcript, with the ply of the position each
/// character belongs to (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript {
    /// The transcript.
    pub text: String,
    /// For every character, the ply of its position (`positions.len() ==
    /// text.len()`).
    pub positions: Vec<usize>,
}

/// A `.` of a transcript and the ply of its position (White to move).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DotPly {
    /// Index of the `.` in the text.
    pub char_index: usize,
    /// Ply of the position there (even: White to move).
    pub ply: usize,
}

/// A `.` of a transcript with its position.
#[derive(Clone, Debug)]
pub struct DotPosition {
    /// Index of the `.` in the text.
    pub char_index: usize,
    /// Ply of the position.
    pub ply: usize,
    /// The position (White to move).
    pub position: shakmaty::Chess,
}

impl Transcript {
    /// The transcript of a game from the standard starting position.
    pub fn from_game(game: &Chess) -> Result<Transcript, TranscriptError> {
        if !game.starts_from_standard() {
            return Err(TranscriptError::NotFromStart {
                fen: game.start_fen(),
            });
        }
        let mut text = String::from(";");
        let mut positions = vec![0];
        for (ply, san) in game.san_moves().iter().enumerate() {
            let before = text.len();
            if ply > 0 {
                text.push(' ');
            }
            if ply.is_multiple_of(2) {
                text.push_str(&format!("{}.", ply / 2 + 1));
            }
            text.push_str(san);
            positions.resize(positions.len() + text.len() - before, ply);
        }
        Ok(Transcript { text, positions })
    }

    /// Reads a transcript back: the transcript (with its position map) and
    /// the game, under [`DrawRules::OnClaim`]. The format is checked
    /// strictly (the leading `;`, move numbers in sequence, single spaces);
    /// a move may omit or misstate its `+`/`#` suffix. One trailing space is
    /// allowed (it belongs to the position after the last move).
    pub fn parse(text: &str) -> Result<(Transcript, Chess), TranscriptError> {
        if let Some((index, found)) = text
            .chars()
            .enumerate()
            .find(|&(_, c)| char_to_token(c).is_none())
        {
            return Err(TranscriptError::UnknownChar { index, found });
        }
        // Every character is in the ASCII vocabulary from here on.
        let bytes = text.as_bytes();
        let syntax = |index: usize, expected: &str| TranscriptError::Syntax {
            index,
            expected: expected.to_string(),
            found: text.get(index..index + 1).unwrap_or("").to_string(),
        };
        if bytes.first() != Some(&b';') {
            return Err(syntax(0, "`;` (a transcript starts with it)"));
        }
        let mut game = Chess::new().with_draw_rules(DrawRules::OnClaim);
        let mut positions = vec![0];
        let mut i = 1;
        while i < bytes.len() {
            let ply = game.ply();
            if ply > 0 {
                if bytes[i] != b' ' {
                    return Err(syntax(i, "a space between moves"));
                }
                positions.push(ply);
                i += 1;
                if i == bytes.len() {
                    break;
                }
            }
            let move_start = i;
            let move_number = game.as_shakmaty().fullmoves().get();
            if ply.is_multiple_of(2) {
                let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
                let expected = move_number.to_string();
                if text[i..i + digits] != expected {
                    return Err(syntax(i, &format!("move number {expected}")));
                }
                i += digits;
                if bytes.get(i) != Some(&b'.') {
                    return Err(syntax(i, "`.` after the move number"));
                }
                i += 1;
            }
            let san_end = text[i..].find(' ').map_or(bytes.len(), |n| i + n);
            let san = &text[i..san_end];
            if san.is_empty() {
                return Err(syntax(i, "a move in SAN"));
            }
            game.play_san(san).map_err(|error| TranscriptError::Move {
                index: i,
                move_number,
                san: san.to_string(),
                error,
            })?;
            positions.resize(positions.len() + san_end - move_start, ply);
            i = san_end;
        }
        let transcript = Transcript {
            text: text.to_string(),
            positions,
        };
        Ok((transcript, game))
    }

    /// The first `chars` characters and their positions (the whole
    /// transcript when it is shorter), as a model with a context of that
    /// length sees it.
    #[must_use]
    pub fn truncated(&self, chars: usize) -> Transcript {
        let n = chars.min(self.text.len());
        Transcript {
            text: self.text[..n].to_string(),
            positions: self.positions[..n].to_vec(),
        }
    }

    /// The tokens of the text.
    pub fn tokens(&self) -> Vec<u8> {
        encode(&self.text).expect(
            "from_game writes only SAN and move numbers, and parse refuses characters outside the vocabulary",
        )
    }

    /// Every `.` with the ply of its position; each is a position with
    /// White to move, before White's move.
    pub fn dot_plies(&self) -> Vec<DotPly> {
        self.text
            .bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'.')
            .map(|(char_index, _)| DotPly {
                char_index,
                ply: self.positions[char_index],
            })
            .collect()
    }
}

/// The tokens of a text in the transcript vocabulary.
pub fn encode(text: &str) -> Result<Vec<u8>, TranscriptError> {
    text.chars()
        .enumerate()
        .map(|(index, c)| char_to_token(c).ok_or(TranscriptError::UnknownChar { index, found: c }))
        .collect()
}

/// The text of tokens in the transcript vocabulary.
pub fn decode(tokens: &[u8]) -> Result<String, TranscriptError> {
    tokens
        .iter()
        .enumerate()
        .map(|(index, &t)| {
            token_to_char(t).ok_or(TranscriptError::UnknownToken { index, found: t })
        })
        .collect()
}

/// Every `.` of the game's transcript with its position (White to move),
/// the labels of a ChessGPT board-state probe.
pub fn white_to_move_positions(game: &Chess) -> Result<Vec<DotPosition>, TranscriptError> {
    let transcript = Transcript::from_game(game)?;
    let positions = game.positions();
    Ok(transcript
        .dot_plies()
        .into_iter()
        .map(|dot| DotPosition {
            char_index: dot.char_index,
            ply: dot.ply,
            position: positions[dot.ply].clone(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_is_32_sorted_chars() {
        assert_eq!(VOCAB.len(), 32);
        assert!(VOCAB.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(char_to_token(' '), Some(0));
        assert_eq!(char_to_token('.'), Some(4));
        assert_eq!(char_to_token('0'), Some(5));
        assert_eq!(char_to_token(';'), Some(15));
        assert_eq!(char_to_token('B'), Some(17));
        assert_eq!(char_to_token('a'), Some(23));
        assert_eq!(char_to_token('x'), Some(31));
        assert_eq!(char_to_token('P'), None);
        assert_eq!(token_to_char(32), None);
        let text = ";1.e4 e5 2.Nf3";
        assert_eq!(decode(&encode(text).unwrap()).unwrap(), text);
    }

    #[test]
    fn hand_checked_position_map() {
        let (transcript, game) = Transcript::parse(";1.e4 e5 2.Nf3").unwrap();
        // ";1.e4" -> 0, " e5" -> 1, " 2.Nf3" -> 2.
        assert_eq!(
            transcript.positions,
            vec![0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2]
        );
        assert_eq!(game.ply(), 3);
        assert_eq!(
            transcript.dot_plies(),
            vec![
                DotPly {
                    char_index: 2,
                    ply: 0
                },
                DotPly {
                    char_index: 10,
                    ply: 2
                }
            ]
        );
        assert_eq!(Transcript::from_game(&game).unwrap(), transcript);
        let dots = white_to_move_positions(&game).unwrap();
        assert_eq!(dots.len(), 2);
        assert_eq!(
            super::super::fen_of(&dots[1].position),
            "rnbqkbnr/pppp1ppp/8/4p3/4P3/8/PPPP1PPP/RNBQKBNR w KQkq - 0 2"
        );
    }

    #[test]
    fn checks_mates_and_promotions_are_written() {
        let mut game = Chess::new();
        for san in ["f3", "e5", "g4", "Qh4#"] {
            game.play_san(san).unwrap();
        }
        assert_eq!(
            Transcript::from_game(&game).unwrap().text,
            ";1.f3 e5 2.g4 Qh4#"
        );
    }

    #[test]
    fn parse_errors_name_the_character() {
        let cases = [
            ("1.e4", "`;`"),
            (";2.e4", "move number 1"),
            (";1e4", "`.` after"),
            (";1.e4  e5", "a move in SAN"),
            (";1.e4 e5 3.Nf3", "move number 2"),
        ];
        for (text, needle) in cases {
            let err = Transcript::parse(text).unwrap_err();
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
        let err = Transcript::parse(";1.e4 e5 2.Ke3").unwrap_err();
        assert!(
            matches!(
                err,
                TranscriptError::Move {
                    index: 11,
                    move_number: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(matches!(
            Transcript::parse(";1.e4 P"),
            Err(TranscriptError::UnknownChar { index: 6, .. })
        ));
    }

    #[test]
    fn trailing_space_belongs_to_the_next_position() {
        let (transcript, game) = Transcript::parse(";1.e4 ").unwrap();
        assert_eq!(transcript.positions, vec![0, 0, 0, 0, 0, 1]);
        assert_eq!(game.ply(), 1);
        assert_eq!(transcript.truncated(3).positions, vec![0, 0, 0]);
    }

    #[test]
    fn games_from_a_fen_have_no_transcript() {
        let game = Chess::from_fen("4k3/8/8/8/8/8/8/4K2R w K - 0 1").unwrap();
        assert!(matches!(
            Transcript::from_game(&game),
            Err(TranscriptError::NotFromStart { .. })
        ));
    }
}
