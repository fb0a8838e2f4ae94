//! OthelloGPT: games as token sequences (kibitzer-games' OthelloGPT
//! vocabulary, one token per move, 0 = padding) and the legal-move score of
//! a trained model.

use super::Gpt;
pub use super::LegalMoveAccuracy;
use crate::error::ModelError;
use kibitzer_games::Game;
use kibitzer_games::othello::transcript::{
    PAD_TOKEN, encode_game, replay_tokens, token_to_square, vocab_size,
};
use kibitzer_games::othello::{Othello, OthelloMove};
use kibitzer_hooks::{HookedModel, Hooks};

/// The model config of an OthelloGPT for a `size` x `size` board: the
/// vocabulary is `size * size - 3` tokens (padding included), the context
/// the longest game (`size * size - 4` moves; OthelloGPT's published 8x8
/// model reads 59 of the 60), the MLP `4 * d_model` wide.
pub fn othello_gpt_config(
    size: usize,
    n_layers: usize,
    d_model: usize,
    n_heads: usize,
) -> super::GptConfig {
    super::GptConfig::new(
        n_layers,
        d_model,
        n_heads,
        4 * d_model,
        vocab_size(size),
        size * size - 4,
    )
}

/// Each game as its token sequence (passes dropped, as OthelloGPT's
/// vocabulary has none). Trained with the next-token loss, position `i`
/// learns to predict move `i + 1`.
pub fn othello_sequences(
    games: &[Vec<OthelloMove>],
    size: usize,
) -> Result<Vec<Vec<u32>>, ModelError> {
    games
        .iter()
        .enumerate()
        .map(|(i, game)| {
            let tokens =
                encode_game(size, game).map_err(|e| ModelError::Input(format!("game {i}: {e}")))?;
            Ok(tokens.into_iter().map(u32::from).collect())
        })
        .collect()
}

/// The legal squares for the next token after `position` (the side to move
/// passes first when it must), or `None` when the game is over.
fn next_legal_squares(position: &Othello) -> Option<u64> {
    let mut next = *position;
    if next.is_over() {
        return None;
    }
    if next.must_pass() {
        next.play(OthelloMove::Pass)
            .expect("must_pass means the pass is legal");
    }
    Some(next.legal_bitboard())
}

/// Scores the top-1 next-token prediction of `model` after every move of
/// `games` (on a `size` board) that does not end the game: the prediction
/// counts as legal when the argmax token is a square the side to move may
/// play (after a forced pass, the other side's squares). Runs in batches
/// of `batch_size` games.
pub fn legal_move_accuracy(
    model: &Gpt,
    games: &[Vec<OthelloMove>],
    size: usize,
    batch_size: usize,
) -> Result<LegalMoveAccuracy, ModelError> {
    let n_ctx = model.config().n_ctx;
    let mut result = LegalMoveAccuracy {
        positions: 0,
        legal: 0,
    };
    for chunk in games.chunks(batch_size.max(1)) {
        let mut inputs = Vec::with_capacity(chunk.len());
        let mut legal_sets = Vec::with_capacity(chunk.len());
        for (i, game) in chunk.iter().enumerate() {
            let tokens =
                encode_game(size, game).map_err(|e| ModelError::Input(format!("game {i}: {e}")))?;
            let positions = replay_tokens(size, &tokens)
                .map_err(|e| ModelError::Input(format!("game {i}: {e}")))?;
            let mut input: Vec<u32> = tokens.iter().take(n_ctx).map(|&t| u32::from(t)).collect();
            let sets: Vec<Option<u64>> = positions
                .iter()
                .take(input.len())
                .map(next_legal_squares)
                .collect();
            input.resize(n_ctx, u32::from(PAD_TOKEN));
            inputs.push(input);
            legal_sets.push(sets);
        }
        let tokens = model.tokens(&inputs)?;
        let logits = model.run_with_hooks(&tokens, &mut Hooks::new())?;
        let [b, p, _] = logits.dims();
        let best = kibitzer_sae::ops::to_host(logits.argmax(2).reshape([b, p]).float());
        for (g, sets) in legal_sets.iter().enumerate() {
            for (pos, legal) in sets.iter().enumerate() {
                let Some(legal) = legal else { continue };
                result.positions += 1;
                let token = best[g * p + pos] as u8;
                if let Some(square) = token_to_square(token, size)
                    && legal >> square & 1 == 1
                {
                    result.legal += 1;
                }
            }
        }
    }
    Ok(result)
}
