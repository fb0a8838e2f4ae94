//! ChessGPT (Karvonen's `chess_llm_interpretability`, the chess model of
//! reference 002): games as character-level transcripts (`;1.e4 e5 2.Nf3`,
//! kibitzer-games' [`transcript`](kibitzer_games::chess::transcript)
//! format and 32-character vocabulary), and the legal-move rate of a
//! trained model.
//!
//! # Vocabulary and padding
//!
//! The model reads the 32 transcript characters (token `i` is
//! [`VOCAB`]`[i]`, nanoGPT's sorted order) plus one padding token,
//! [`PAD_TOKEN`] = 32, written after a game's last character so that games
//! of different lengths share a batch; it predicts the 32 characters only
//! (`d_vocab` 33, `d_vocab_out` 32). The model is causal, so padding after
//! a game never changes what the game's own positions see, and the loss
//! leaves the padded targets out.

use super::{Gpt, GptConfig, LegalMoveAccuracy};
use crate::error::ModelError;
use kibitzer_games::chess::Chess;
use kibitzer_games::chess::shakmaty::{self, Position, san::SanPlus};
use kibitzer_games::chess::transcript::{Transcript, VOCAB, token_to_char};
use kibitzer_hooks::{HookedModel, Hooks};

/// Characters a ChessGPT predicts: the transcript vocabulary.
pub const CHESS_VOCAB: usize = VOCAB.len();
/// The padding token after a game's last character (read, never predicted).
pub const PAD_TOKEN: u32 = CHESS_VOCAB as u32;
/// The token of `.`: where reference 002 reads the board (White to move).
pub const DOT_TOKEN: u32 = 4;
/// The longest a move's text can be, its closing space included
/// (`exd8=Q+ `, `Qh4xe1# `): how many characters a legal-move check decodes.
const MAX_MOVE_CHARS: usize = 8;

/// The model config of a ChessGPT reading `n_ctx` characters: 33 input
/// tokens (the transcript characters and padding), 32 predicted, the MLP
/// `4 * d_model` wide. Karvonen's models read 1023 characters; reference 002
/// reads the board in the first 256.
pub fn chess_gpt_config(
    n_layers: usize,
    d_model: usize,
    n_heads: usize,
    n_ctx: usize,
) -> GptConfig {
    let mut config = GptConfig::new(
        n_layers,
        d_model,
        n_heads,
        4 * d_model,
        CHESS_VOCAB + 1,
        n_ctx,
    );
    config.d_vocab_out = CHESS_VOCAB as i64;
    config
}

/// Each game's transcript as tokens (whole; cut them to the context
/// yourself). Trained with the next-token loss, position `i` learns to
/// predict character `i + 1`.
pub fn chess_sequences(games: &[Chess]) -> Result<Vec<Vec<u32>>, ModelError> {
    games
        .iter()
        .enumerate()
        .map(|(i, game)| {
            let transcript = Transcript::from_game(game)
                .map_err(|e| ModelError::Input(format!("game {i}: {e}")))?;
            Ok(transcript.tokens().into_iter().map(u32::from).collect())
        })
        .collect()
}

/// One move to decode: the transcript up to the move's first character,
/// and the position the move is played in.
struct MoveStart {
    prefix: Vec<u32>,
    position: shakmaty::Chess,
}

/// Where each move of `game` starts (after `.` for White, after the space
/// for Black) whose text, closing space included, fits in `n_ctx`
/// characters, with its position.
fn move_starts(game: &Chess, n_ctx: usize) -> Result<Vec<MoveStart>, ModelError> {
    let transcript = Transcript::from_game(game).map_err(|e| ModelError::Input(e.to_string()))?;
    let tokens: Vec<u32> = transcript.tokens().into_iter().map(u32::from).collect();
    let positions = game.positions();
    let bytes = transcript.text.as_bytes();
    let mut starts = Vec::new();
    for i in 1..bytes.len() {
        // A move's text starts with a piece letter, a file or `O`, never a
        // digit, so a space before a digit starts a move number instead.
        let starts_move = match bytes[i - 1] {
            b'.' => true,
            b' ' => !bytes[i].is_ascii_digit(),
            _ => false,
        };
        if starts_move && i + MAX_MOVE_CHARS <= n_ctx {
            starts.push(MoveStart {
                prefix: tokens[..i].to_vec(),
                position: positions[transcript.positions[i]].clone(),
            });
        }
    }
    Ok(starts)
}

/// Karvonen's legal-move rate: at the start of every move of `games` that
/// fits in the model's context, the model writes the move greedily (the
/// most likely character until a space, at most 8 characters), and the
/// move counts as legal when its text is SAN for a legal move of the
/// position (a `+`/`#` suffix is accepted as written, as python-chess's
/// `parse_san` does). Runs `batch_size` moves per forward pass.
pub fn legal_move_rate(
    model: &Gpt,
    games: &[Chess],
    batch_size: usize,
) -> Result<LegalMoveAccuracy, ModelError> {
    let config = model.config();
    if config.vocab_out() != CHESS_VOCAB {
        return Err(ModelError::Input(format!(
            "the model predicts {} tokens, not the {CHESS_VOCAB} transcript characters",
            config.vocab_out()
        )));
    }
    let n_ctx = config.n_ctx;
    let mut starts = Vec::new();
    for (i, game) in games.iter().enumerate() {
        starts.extend(
            move_starts(game, n_ctx).map_err(|e| ModelError::Input(format!("game {i}: {e}")))?,
        );
    }
    let mut result = LegalMoveAccuracy {
        positions: starts.len(),
        legal: 0,
    };
    for chunk in starts.chunks(batch_size.max(1)) {
        let mut texts: Vec<Vec<u32>> = chunk.iter().map(|s| s.prefix.clone()).collect();
        let mut written: Vec<String> = vec![String::new(); chunk.len()];
        let mut done = vec![false; chunk.len()];
        for _ in 0..MAX_MOVE_CHARS {
            let width = texts.iter().map(Vec::len).max().unwrap_or(1);
            let padded: Vec<Vec<u32>> = texts
                .iter()
                .map(|t| {
                    let mut t = t.clone();
                    t.resize(width, PAD_TOKEN);
                    t
                })
                .collect();
            let tokens = model.tokens(&padded)?;
            let logits = model.run_with_hooks(&tokens, &mut Hooks::new())?;
            let [b, p, _] = logits.dims();
            let best = kibitzer_sae::ops::to_host(logits.argmax(2).reshape([b, p]).float());
            for (j, text) in texts.iter_mut().enumerate() {
                if done[j] {
                    continue;
                }
                let next = best[j * p + text.len() - 1] as u32;
                match token_to_char(next as u8) {
                    Some(' ') | None => done[j] = true,
                    Some(c) => {
                        written[j].push(c);
                        text.push(next);
                    }
                }
            }
            if done.iter().all(|d| *d) {
                break;
            }
        }
        for (start, text) in chunk.iter().zip(&written) {
            let legal = SanPlus::from_ascii(text.as_bytes())
                .ok()
                .and_then(|san| san.san.to_move(&start.position).ok())
                .is_some_and(|m| start.position.is_legal(m));
            result.legal += usize::from(legal);
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kibitzer_games::chess::transcript::char_to_token;

    #[test]
    fn special_tokens_are_the_vocabularys() {
        assert_eq!(char_to_token('.').map(u32::from), Some(DOT_TOKEN));
        assert_eq!(PAD_TOKEN, 32);
        let c = chess_gpt_config(2, 32, 4, 64);
        assert_eq!(
            (c.d_vocab, c.vocab_out(), c.n_ctx, c.d_mlp),
            (33, 32, 64, 128)
        );
    }

    #[test]
    fn moves_start_after_dots_and_after_spaces_before_black_moves() {
        let (_, game) = Transcript::parse(";1.e4 e5 2.Nf3 Nc6 3.Bb5").unwrap();
        let starts = move_starts(&game, 64).unwrap();
        let prefixes: Vec<String> = starts
            .iter()
            .map(|s| {
                s.prefix
                    .iter()
                    .map(|&t| token_to_char(t as u8).unwrap())
                    .collect()
            })
            .collect();
        assert_eq!(
            prefixes,
            [
                ";1.",
                ";1.e4 ",
                ";1.e4 e5 2.",
                ";1.e4 e5 2.Nf3 ",
                ";1.e4 e5 2.Nf3 Nc6 3."
            ]
        );
        // The position a move is played in: after e4 e5 Nf3, Black to move.
        assert_eq!(starts[3].position.turn(), shakmaty::Color::Black);
        assert_eq!(starts[3].position.fullmoves().get(), 2);
        // Only moves whose text (and closing space) fits in the context.
        assert_eq!(move_starts(&game, 3 + MAX_MOVE_CHARS).unwrap().len(), 1);
    }
}
