//! A game between a person at the terminal and an agent. Input and output
//! are any `BufRead` and `Write`, so scripted games test it.

use std::io::{BufRead, Write};

use super::{Agent, PlayerError};
use crate::game::{Game, Outcome, Player};

/// A game a person can follow and play as text.
pub trait TextGame: Game {
    /// The board as a person reads it (several lines).
    fn board_text(&self) -> String;

    /// The legal move written `text`, if any. The default accepts a legal
    /// move's `Display` form, ignoring case.
    fn parse_move_text(&self, text: &str) -> Option<Self::Move> {
        let text = text.trim();
        self.legal_moves()
            .into_iter()
            .find(|mv| mv.to_string().eq_ignore_ascii_case(text))
    }

    /// The name of `player` in this game ("Black (X)", "White").
    fn side_name(&self, player: Player) -> String;
}

impl TextGame for crate::othello::Othello {
    fn board_text(&self) -> String {
        self.to_string()
    }

    fn side_name(&self, player: Player) -> String {
        match player {
            Player::First => "Black (X)".to_owned(),
            Player::Second => "White (O)".to_owned(),
        }
    }
}

#[cfg(feature = "chess")]
impl TextGame for crate::chess::Chess {
    /// Ranks 8 to 1, White's pieces in capitals, then the FEN.
    fn board_text(&self) -> String {
        use shakmaty::{File, Position, Rank, Square};
        let board = self.as_shakmaty().board();
        let mut text = String::new();
        for rank in Rank::ALL.into_iter().rev() {
            text.push_str(&format!("{} ", rank.char()));
            for file in File::ALL {
                let piece = board.piece_at(Square::from_coords(file, rank));
                text.push(' ');
                text.push(piece.map_or('.', |piece| piece.char()));
            }
            text.push('\n');
        }
        text.push_str("   a b c d e f g h\n");
        text.push_str(&self.fen());
        text
    }

    /// UCI (`e2e4`) or SAN (`Nf3`, `O-O`).
    fn parse_move_text(&self, text: &str) -> Option<crate::chess::ChessMove> {
        let text = text.trim();
        self.parse_uci(text)
            .ok()
            .or_else(|| self.parse_san(text).ok())
    }

    fn side_name(&self, player: Player) -> String {
        match player {
            Player::First => "White".to_owned(),
            Player::Second => "Black".to_owned(),
        }
    }
}

/// How a game against a person ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HumanGameEnd {
    /// The game reached its end.
    Finished,
    /// The person typed `quit` (or `resign`).
    Resigned,
    /// The input ended before the game did.
    InputClosed,
}

/// The record of a game against a person.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HumanGameReport {
    /// The result (a resignation is a win for the agent); `None` when the
    /// input closed first.
    pub outcome: Option<Outcome>,
    /// How it ended.
    pub end: HumanGameEnd,
    /// The moves, as written by `Display`.
    pub moves: Vec<String>,
}

/// What stopped a game against a person.
#[derive(Debug, thiserror::Error)]
pub enum HumanGameError {
    /// Reading the input or writing the board failed.
    #[error("terminal input/output failed: {0}")]
    Io(#[from] std::io::Error),
    /// The agent failed.
    #[error(transparent)]
    Agent(#[from] PlayerError),
}

/// Plays `start` to the end with the person on `human_side` typing moves on
/// `input` (one per line; `moves` lists the legal ones, `quit` resigns) and
/// `opponent` playing the other side; boards, prompts and the result go to
/// `output`.
pub fn play_human<G: TextGame>(
    start: G,
    opponent: &mut dyn Agent<G>,
    human_side: Player,
    mut input: impl BufRead,
    mut output: impl Write,
) -> Result<HumanGameReport, HumanGameError> {
    let mut position = start;
    let mut moves = Vec::new();
    let human = position.side_name(human_side);
    writeln!(output, "You play {human} against {}.", opponent.name())?;
    while position.outcome().is_none() {
        if position.to_move() == human_side {
            writeln!(output, "{}", position.board_text())?;
            let legal: Vec<String> = position
                .legal_moves()
                .iter()
                .map(ToString::to_string)
                .collect();
            let mv = loop {
                write!(
                    output,
                    "Your move ({human}) [{}; quit resigns]: ",
                    legal.join(" ")
                )?;
                output.flush()?;
                let mut line = String::new();
                if input.read_line(&mut line)? == 0 {
                    writeln!(output, "\nInput closed; game abandoned.")?;
                    return Ok(HumanGameReport {
                        outcome: None,
                        end: HumanGameEnd::InputClosed,
                        moves,
                    });
                }
                let text = line.trim();
                match text.to_ascii_lowercase().as_str() {
                    "" => continue,
                    "quit" | "resign" | "exit" => {
                        writeln!(output, "You resign. {} wins.", opponent.name())?;
                        return Ok(HumanGameReport {
                            outcome: Some(Outcome::Win(human_side.opponent())),
                            end: HumanGameEnd::Resigned,
                            moves,
                        });
                    }
                    "moves" | "help" | "?" => {
                        writeln!(output, "Legal moves: {}", legal.join(" "))?;
                        continue;
                    }
                    _ => {}
                }
                match position.parse_move_text(text) {
                    Some(mv) => break mv,
                    None => writeln!(
                        output,
                        "{text:?} is not a legal move here. Legal moves: {}",
                        legal.join(" ")
                    )?,
                }
            };
            position
                .play(mv)
                .expect("parse_move_text returns legal moves");
            moves.push(mv.to_string());
        } else {
            let mv = opponent.choose(&position)?;
            if let Err(error) = position.play(mv) {
                return Err(PlayerError::IllegalMove {
                    player: opponent.name(),
                    mv: error.mv,
                    position: error.position,
                }
                .into());
            }
            writeln!(output, "{} plays {mv}", opponent.name())?;
            moves.push(mv.to_string());
        }
    }
    let outcome = position
        .outcome()
        .expect("the loop ends when the game is over");
    writeln!(output, "{}", position.board_text())?;
    let verdict = match outcome {
        Outcome::Win(winner) if winner == human_side => "You win!".to_owned(),
        Outcome::Win(_) => format!("{} wins.", opponent.name()),
        Outcome::Draw => "Draw.".to_owned(),
    };
    writeln!(output, "Game over: {verdict}")?;
    Ok(HumanGameReport {
        outcome: Some(outcome),
        end: HumanGameEnd::Finished,
        moves,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::othello::Othello;
    use crate::players::{GreedyAgent, RandomAgent};

    #[test]
    fn a_scripted_person_plays_4x4_othello_to_the_end() {
        // The person answers with the first legal move each time; replay
        // the game to script it: pick the agent's seed, simulate, then feed.
        let start = Othello::new(4).expect("4x4 is supported");
        let mut script = String::from("nonsense\nmoves\n");
        let mut position = start;
        let mut agent = GreedyAgent::new(5);
        let mut expected_moves = Vec::new();
        while position.outcome().is_none() {
            let mv = if position.to_move() == Player::First {
                let mv = position.legal_moves()[0];
                script.push_str(&format!("{}\n", mv.to_string().to_uppercase()));
                mv
            } else {
                agent.choose(&position).expect("a move")
            };
            position.play(mv).expect("legal");
            expected_moves.push(mv.to_string());
        }
        let mut output = Vec::new();
        let report = play_human(
            start,
            &mut GreedyAgent::new(5),
            Player::First,
            script.as_bytes(),
            &mut output,
        )
        .expect("the game runs");
        let text = String::from_utf8(output).expect("utf-8 output");
        assert_eq!(report.end, HumanGameEnd::Finished);
        assert_eq!(report.moves, expected_moves);
        assert_eq!(report.outcome, position.outcome());
        assert!(
            text.contains("\"nonsense\" is not a legal move here"),
            "{text}"
        );
        assert!(text.contains("Legal moves: "), "{text}");
        assert!(text.contains("greedy plays"), "{text}");
        assert!(text.contains("Game over: "), "{text}");
        assert!(text.contains("   a b c d"), "the board is drawn: {text}");
    }

    #[test]
    fn quitting_and_closed_input_end_the_game() {
        let start = Othello::new(6).expect("6x6 is supported");
        let report = play_human(
            start,
            &mut RandomAgent::new(1),
            Player::Second,
            "quit\n".as_bytes(),
            Vec::new(),
        )
        .expect("the game runs");
        assert_eq!(report.end, HumanGameEnd::Resigned);
        assert_eq!(report.outcome, Some(Outcome::Win(Player::First)));
        assert_eq!(report.moves.len(), 1, "the agent (Black) moved first");
        let report = play_human(
            start,
            &mut RandomAgent::new(1),
            Player::First,
            "".as_bytes(),
            Vec::new(),
        )
        .expect("the game runs");
        assert_eq!(report.end, HumanGameEnd::InputClosed);
        assert_eq!(report.outcome, None);
    }

    #[cfg(feature = "chess")]
    #[test]
    fn chess_accepts_uci_and_san() {
        use crate::chess::Chess;
        let start = Chess::new();
        assert_eq!(start.parse_move_text("e2e4"), start.parse_move_text("e4"));
        assert!(start.parse_move_text("Nf3").is_some());
        assert!(start.parse_move_text("e5").is_none());
        let board = start.board_text();
        assert!(board.starts_with("8  r n b q k b n r"), "{board}");
        assert!(board.contains("1  R N B Q K B N R"), "{board}");
    }
}
