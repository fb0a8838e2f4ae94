//! Othello games as token sequences for language models, in the OthelloGPT
//! vocabulary (Li et al. 2023).
//!
//! # Vocabulary
//!
//! Token 0 is padding. The squares that can be played — all but the four
//! centre squares, which start occupied — get tokens `1..=size*size - 4` in
//! square-index order (`row * size + col`), skipping the centre. On 8x8 that
//! is OthelloGPT's 61-token vocabulary: `a1` = 1, ..., `h4` = 27, `a5` = 28
//! (`d4`, `e4`, `d5`, `e5` have no token), ..., `h8` = 60.
//!
//! # Passes
//!
//! OthelloGPT has no pass token, and none is needed: a pass is forced (legal
//! only when the side to move has no square), so [`decode_game`] re-inserts a
//! pass wherever the side to move has no legal square before the next token.
//! [`encode_game`] drops passes. The one thing a transcript cannot carry is a
//! pass at the very end of an unfinished game (a prefix cut just after a
//! forced pass); finished games never end with a pass (the game is over when
//! neither side can play), so they round-trip exactly.

use super::{Othello, OthelloMove, bitboard::board_mask};
use crate::game::Game;

/// A token of the OthelloGPT vocabulary.
pub type Token = u8;

/// The padding token (also the end of a game shorter than the context).
pub const PAD_TOKEN: Token = 0;

/// A transcript that does not describe a legal game.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TranscriptError {
    /// Not a board size Othello is played on here.
    #[error(transparent)]
    BoardSize(#[from] super::BoardSizeError),
    /// A token outside the vocabulary of the board size.
    #[error(
        "token {token} at position {position} is outside the {size}x{size} vocabulary (0 = padding, 1..={max})"
    )]
    UnknownToken {
        /// Position in the token sequence (from 0).
        position: usize,
        /// The token.
        token: Token,
        /// The board size.
        size: usize,
        /// The largest square token.
        max: usize,
    },
    /// A square token after padding started.
    #[error(
        "token {token} at position {position} follows padding: padding must only end a transcript"
    )]
    TokenAfterPadding {
        /// Position in the token sequence (from 0).
        position: usize,
        /// The token.
        token: Token,
    },
    /// A move the game does not allow at that point.
    #[error("move {move_number} ({mv}) is illegal in position {board}")]
    IllegalMove {
        /// The move number in the game (from 1, passes included).
        move_number: usize,
        /// The move.
        mv: String,
        /// The position as a board string.
        board: String,
    },
    /// A move on a centre square (it has no token) or off the board.
    #[error("move {move_number} ({mv}) has no token on a {size}x{size} board")]
    Untokenizable {
        /// The move number in the game (from 1).
        move_number: usize,
        /// The move.
        mv: String,
        /// The board size.
        size: usize,
    },
}

/// The four centre squares of a `size`x`size` board (the start position).
fn centre(size: usize) -> u64 {
    let start = Othello::new(size).expect(
        "both callers return early unless size is in BOARD_SIZES, which Othello::new accepts",
    );
    start.black() | start.white()
}

/// The number of tokens, padding included: `size * size - 3` (61 on 8x8).
pub fn vocab_size(size: usize) -> usize {
    size * size - 3
}

/// The token of the square with index `index`; `None` for the centre
/// squares, squares off the board and unsupported sizes.
pub fn square_to_token(index: usize, size: usize) -> Option<Token> {
    if !super::BOARD_SIZES.contains(&size) || index >= size * size {
        return None;
    }
    let centre = centre(size);
    if centre >> index & 1 != 0 {
        return None;
    }
    let centre_before = (centre & ((1u64 << index) - 1)).count_ones() as usize;
    Some((index - centre_before + 1) as Token)
}

/// The square index of a square token; `None` for padding and tokens
/// outside the vocabulary.
pub fn token_to_square(token: Token, size: usize) -> Option<usize> {
    if !super::BOARD_SIZES.contains(&size)
        || token == PAD_TOKEN
        || usize::from(token) >= vocab_size(size)
    {
        return None;
    }
    let playable = board_mask(size) & !centre(size);
    // The (token - 1)-th playable square, counting from index 0.
    let mut rest = playable;
    for _ in 1..token {
        rest &= rest - 1;
    }
    Some(rest.trailing_zeros() as usize)
}

/// The tokens of a game (passes dropped), after checking that the moves are
/// legal from the start position.
pub fn encode_game(size: usize, moves: &[OthelloMove]) -> Result<Vec<Token>, TranscriptError> {
    let mut position = Othello::new(size)?;
    let mut tokens = Vec::with_capacity(moves.len());
    for (number, &mv) in moves.iter().enumerate() {
        position
            .play(mv)
            .map_err(|_| TranscriptError::IllegalMove {
                move_number: number + 1,
                mv: mv.to_string(),
                board: position.board_string(),
            })?;
        if let OthelloMove::Square(square) = mv {
            let token = square_to_token(square.index(size), size).ok_or_else(|| {
                TranscriptError::Untokenizable {
                    move_number: number + 1,
                    mv: mv.to_string(),
                    size,
                }
            })?;
            tokens.push(token);
        }
    }
    Ok(tokens)
}

/// The positions after each square token of a transcript (forced passes
/// before a token are played first; trailing padding is skipped).
pub fn replay_tokens(size: usize, tokens: &[Token]) -> Result<Vec<Othello>, TranscriptError> {
    let mut positions = Vec::with_capacity(tokens.len());
    let mut moves = Vec::with_capacity(tokens.len() + 4);
    decode_into(size, tokens, &mut moves, |position| {
        positions.push(*position)
    })?;
    Ok(positions)
}

/// The moves of a transcript, with the forced passes put back.
pub fn decode_game(size: usize, tokens: &[Token]) -> Result<Vec<OthelloMove>, TranscriptError> {
    let mut moves = Vec::with_capacity(tokens.len() + 4);
    decode_into(size, tokens, &mut moves, |_| {})?;
    Ok(moves)
}

fn decode_into(
    size: usize,
    tokens: &[Token],
    moves: &mut Vec<OthelloMove>,
    mut after_token: impl FnMut(&Othello),
) -> Result<(), TranscriptError> {
    let mut position = Othello::new(size)?;
    let mut padding_from = None;
    for (at, &token) in tokens.iter().enumerate() {
        if token == PAD_TOKEN {
            padding_from.get_or_insert(at);
            continue;
        }
        if padding_from.is_some() {
            return Err(TranscriptError::TokenAfterPadding {
                position: at,
                token,
            });
        }
        let index = token_to_square(token, size).ok_or(TranscriptError::UnknownToken {
            position: at,
            token,
            size,
            max: vocab_size(size) - 1,
        })?;
        if position.must_pass() {
            position
                .play(OthelloMove::Pass)
                .expect("must_pass means the pass is legal");
            moves.push(OthelloMove::Pass);
        }
        let mv = OthelloMove::from_index(index, size).expect("token squares are on the board");
        position
            .play(mv)
            .map_err(|_| TranscriptError::IllegalMove {
                move_number: moves.len() + 1,
                mv: mv.to_string(),
                board: position.board_string(),
            })?;
        moves.push(mv);
        after_token(&position);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_matches_othello_gpt_on_8x8() {
        assert_eq!(vocab_size(8), 61);
        assert_eq!(square_to_token(0, 8), Some(1));
        assert_eq!(square_to_token(26, 8), Some(27)); // c4
        assert_eq!(square_to_token(27, 8), None); // d4, centre
        assert_eq!(square_to_token(29, 8), Some(28)); // f4
        assert_eq!(square_to_token(37, 8), Some(34)); // f5
        assert_eq!(square_to_token(63, 8), Some(60));
        assert_eq!(token_to_square(PAD_TOKEN, 8), None);
        assert_eq!(token_to_square(61, 8), None);
        for size in [4, 6, 8] {
            let mut seen = 0;
            for index in 0..size * size {
                if let Some(token) = square_to_token(index, size) {
                    assert_eq!(token_to_square(token, size), Some(index));
                    seen += 1;
                }
            }
            assert_eq!(seen, vocab_size(size) - 1);
        }
    }

    #[test]
    fn decode_rejects_bad_transcripts_with_their_position() {
        // Token 1 is a1: not legal as the first move.
        let error = decode_game(8, &[1]).expect_err("a1 is not a legal first move");
        assert!(
            matches!(error, TranscriptError::IllegalMove { move_number: 1, .. }),
            "{error}"
        );
        let d3 = square_to_token(19, 8).expect("d3 has a token");
        let error = decode_game(8, &[d3, 0, d3]).expect_err("padding inside");
        assert_eq!(
            error,
            TranscriptError::TokenAfterPadding {
                position: 2,
                token: d3
            }
        );
        let error = decode_game(6, &[40]).expect_err("6x6 has 32 square tokens");
        assert!(
            matches!(
                error,
                TranscriptError::UnknownToken {
                    position: 0,
                    token: 40,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(decode_game(8, &[d3, 0, 0]).map(|m| m.len()), Ok(1));
    }
}
