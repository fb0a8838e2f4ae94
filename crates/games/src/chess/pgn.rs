//! PGN in and out: [`PgnReader`] streams the games of a PGN file (a Lichess
//! or database download of any size: one line in memory at a time, one game
//! at a time), and [`write_pgn`] writes the standard export format.
//!
//! # What the reader keeps
//!
//! The tags in file order, the starting position (the `FEN` tag, else the
//! standard start), the main-line moves (replayed and checked for legality)
//! and the result. Comments (`{...}` over any number of lines, `;` to the end
//! of the line), variations (`(...)`, nested), NAGs (`$14`), suffix
//! annotations (`!?`), move numbers (`12.`, `12...`, also glued to the move:
//! `1.e4`) and `%` escape lines are read past. Castling is accepted as `O-O`
//! or `0-0`. Move numbers are not checked against the position.
//!
//! # What is an error
//!
//! A token that is not SAN, an illegal or ambiguous move, a malformed tag, a
//! `FEN` tag that does not parse, a variant other than standard chess, a
//! `)` or `}` without its opening, a comment or variation still open at the
//! end of the file, a `$` without a number, and a `Result` tag that
//! disagrees with the movetext's termination marker. Each error names the
//! file, the line, the game (from 1) and, for moves, the move number and
//! the offending SAN. The reader then reads on to the end of the bad game,
//! so the next call yields the next game; with
//! [`PgnReader::skip_invalid`] bad games are skipped and counted
//! ([`PgnReader::skipped`]) instead. A game without a termination marker
//! ends where the next tag section starts or the file ends; its result is
//! then the `Result` tag's.
//!
//! # Text encoding
//!
//! Lines are UTF-8; a line that is not valid UTF-8 is read as Latin-1
//! (ISO 8859-1, common in older databases), byte for byte. A byte-order mark
//! at the start of the file is skipped.
//!
//! Games are replayed under [`DrawRules::OnClaim`], as recorded games may
//! play on past a claimable draw.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::str::FromStr;

use shakmaty::san::{San, SanPlus};
use shakmaty::{Color, Position};

use super::{Chess, DrawRules, NotationError, parse_fen, player_of};
use crate::atomic::AtomicFile;
use crate::game::{Game, Outcome, Player};

/// How many skipped games' errors [`PgnReader::skipped_errors`] keeps.
const KEPT_SKIP_ERRORS: usize = 16;
/// Longest movetext line of [`write_pgn`] (the export format's 80 columns).
const LINE_WIDTH: usize = 80;
/// The Seven Tag Roster, in export order, with the values written when a tag
/// is missing.
const SEVEN_TAG_ROSTER: [(&str, &str); 7] = [
    ("Event", "?"),
    ("Site", "?"),
    ("Date", "????.??.??"),
    ("Round", "?"),
    ("White", "?"),
    ("Black", "?"),
    ("Result", "*"),
];

/// The result of a game as PGN writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GameResult {
    /// `1-0`.
    WhiteWins,
    /// `0-1`.
    BlackWins,
    /// `1/2-1/2`.
    Draw,
    /// `*`: unknown, unfinished or abandoned.
    Unknown,
}

impl GameResult {
    /// The PGN text: `1-0`, `0-1`, `1/2-1/2` or `*`.
    pub fn as_str(self) -> &'static str {
        match self {
            GameResult::WhiteWins => "1-0",
            GameResult::BlackWins => "0-1",
            GameResult::Draw => "1/2-1/2",
            GameResult::Unknown => "*",
        }
    }

    /// The result of a [`Game`] outcome (`None`: the game goes on).
    pub fn from_outcome(outcome: Option<Outcome>) -> GameResult {
        match outcome {
            Some(Outcome::Win(Player::First)) => GameResult::WhiteWins,
            Some(Outcome::Win(Player::Second)) => GameResult::BlackWins,
            Some(Outcome::Draw) => GameResult::Draw,
            None => GameResult::Unknown,
        }
    }

    /// The outcome, or `None` for `*`.
    pub fn outcome(self) -> Option<Outcome> {
        match self {
            GameResult::WhiteWins => Some(Outcome::Win(Player::First)),
            GameResult::BlackWins => Some(Outcome::Win(Player::Second)),
            GameResult::Draw => Some(Outcome::Draw),
            GameResult::Unknown => None,
        }
    }
}

impl fmt::Display for GameResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text that is not a PGN result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a game result (1-0, 0-1, 1/2-1/2 or *)")]
pub struct ParseResultError(pub String);

impl FromStr for GameResult {
    type Err = ParseResultError;

    fn from_str(text: &str) -> Result<GameResult, ParseResultError> {
        match text {
            "1-0" => Ok(GameResult::WhiteWins),
            "0-1" => Ok(GameResult::BlackWins),
            "1/2-1/2" | "½-½" => Ok(GameResult::Draw),
            "*" => Ok(GameResult::Unknown),
            _ => Err(ParseResultError(text.to_string())),
        }
    }
}

impl serde::Serialize for GameResult {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for GameResult {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<GameResult, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where in a PGN source something is: the file (or a name such as
/// `<memory>`), the line (from 1) and the game (from 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgnLocation {
    /// The file name, or what the caller called the source.
    pub source: String,
    /// The line, from 1.
    pub line: usize,
    /// The game, from 1.
    pub game: usize,
}

impl fmt::Display for PgnLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: game {}", self.source, self.line, self.game)
    }
}

/// `.` for a White move, `...` for a Black one, as PGN numbers them.
fn dots(side: Player) -> &'static str {
    match side {
        Player::First => ".",
        Player::Second => "...",
    }
}

/// What can go wrong reading or writing PGN.
#[derive(Debug, thiserror::Error)]
pub enum PgnError {
    /// The file system failed.
    #[error("{source_name}: {error}")]
    Io {
        /// The file.
        source_name: String,
        /// The error.
        #[source]
        error: io::Error,
    },
    /// A tag pair that does not parse, or whose value makes no sense.
    #[error("{at}: malformed tag {text:?}: {reason}")]
    Tag {
        /// Where.
        at: PgnLocation,
        /// The tag text.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// A `FEN` tag that is not a legal position.
    #[error("{at}: FEN tag: {error}")]
    Fen {
        /// Where (the line of the tag).
        at: PgnLocation,
        /// The FEN error.
        error: NotationError,
    },
    /// A `Variant` tag naming something other than standard chess.
    #[error("{at}: variant {variant:?} is not supported (only standard chess)")]
    Variant {
        /// Where.
        at: PgnLocation,
        /// The tag's value.
        variant: String,
    },
    /// A movetext token that is not SAN.
    #[error("{at}, move {move_number}{dots} {token:?}: {reason}", dots = dots(*side))]
    Token {
        /// Where.
        at: PgnLocation,
        /// The move number (as PGN counts: 1 for the first White and Black moves).
        move_number: u32,
        /// Whose move it was.
        side: Player,
        /// The token.
        token: String,
        /// What is wrong.
        reason: String,
    },
    /// A move that is illegal or ambiguous where it is played.
    #[error("{at}, move {move_number}{dots} {san}: {reason} in position {fen}", dots = dots(*side))]
    IllegalMove {
        /// Where.
        at: PgnLocation,
        /// The move number (as PGN counts).
        move_number: u32,
        /// Whose move it was.
        side: Player,
        /// The move as written.
        san: String,
        /// The position, as FEN.
        fen: String,
        /// `illegal`, `ambiguous`, or why the game is over.
        reason: String,
    },
    /// Unbalanced brackets, an unterminated comment, a bare `$`.
    #[error("{at}: {what}")]
    Syntax {
        /// Where.
        at: PgnLocation,
        /// What is wrong.
        what: String,
    },
    /// The `Result` tag and the termination marker disagree.
    #[error("{at}: the Result tag says {tag} but the movetext ends with {marker}")]
    ResultMismatch {
        /// Where (the line of the marker).
        at: PgnLocation,
        /// The tag's result.
        tag: GameResult,
        /// The marker's result.
        marker: GameResult,
    },
}

impl PgnError {
    /// The location, for every error but I/O.
    pub fn location(&self) -> Option<&PgnLocation> {
        match self {
            PgnError::Io { .. } => None,
            PgnError::Tag { at, .. }
            | PgnError::Fen { at, .. }
            | PgnError::Variant { at, .. }
            | PgnError::Token { at, .. }
            | PgnError::IllegalMove { at, .. }
            | PgnError::Syntax { at, .. }
            | PgnError::ResultMismatch { at, .. } => Some(at),
        }
    }
}

/// One game read from PGN.
#[derive(Clone, Debug)]
pub struct PgnGame {
    /// Where the game starts (its first line) and its number in the source.
    pub at: PgnLocation,
    /// The tag pairs in file order.
    pub tags: Vec<(String, String)>,
    /// The starting position and the main line (under
    /// [`DrawRules::OnClaim`]).
    pub game: Chess,
    /// The termination marker, else the `Result` tag, else `*`.
    pub result: GameResult,
}

impl PgnGame {
    /// The value of a tag (names are case-sensitive, as in PGN).
    pub fn tag(&self, name: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A player's Elo from `WhiteElo`/`BlackElo`: `None` when the tag is
    /// missing, empty, `?` or `-`; an error when it is not a whole number.
    pub fn elo(&self, player: Player) -> Result<Option<u32>, PgnError> {
        let name = match player {
            Player::First => "WhiteElo",
            Player::Second => "BlackElo",
        };
        match self.tag(name).map(str::trim) {
            None | Some("" | "?" | "-") => Ok(None),
            Some(value) => value.parse().map(Some).map_err(|_| PgnError::Tag {
                at: self.at.clone(),
                text: format!("[{name} \"{value}\"]"),
                reason: "expected a whole number, `?` or `-`".to_string(),
            }),
        }
    }

    /// The game in the PGN export format.
    pub fn to_pgn(&self) -> String {
        pgn_string(&self.tags, &self.game, self.result)
    }
}

/// Streams the games of a PGN source. See the module docs.
pub struct PgnReader<R> {
    input: R,
    source: String,
    line_number: usize,
    pushed_back: Option<(usize, String)>,
    games_begun: usize,
    skip_invalid: bool,
    skipped: usize,
    skipped_errors: Vec<PgnError>,
    done: bool,
    bytes: Vec<u8>,
}

impl PgnReader<BufReader<File>> {
    /// Opens a PGN file.
    pub fn open(path: impl AsRef<Path>) -> Result<PgnReader<BufReader<File>>, PgnError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|error| PgnError::Io {
            source_name: path.display().to_string(),
            error,
        })?;
        Ok(PgnReader::new(
            BufReader::with_capacity(1 << 16, file),
            path.display().to_string(),
        ))
    }
}

impl<R: BufRead> PgnReader<R> {
    /// Reads PGN from `input`; `source` names it in errors (a file name, or
    /// `<memory>`). A `&[u8]` is a `BufRead`.
    pub fn new(input: R, source: impl Into<String>) -> PgnReader<R> {
        PgnReader {
            input,
            source: source.into(),
            line_number: 0,
            pushed_back: None,
            games_begun: 0,
            skip_invalid: false,
            skipped: 0,
            skipped_errors: Vec::new(),
            done: false,
            bytes: Vec::new(),
        }
    }

    /// With `true`, games with an error are skipped and counted instead of
    /// yielded as errors (I/O errors still are).
    #[must_use]
    pub fn skip_invalid(mut self, skip: bool) -> PgnReader<R> {
        self.skip_invalid = skip;
        self
    }

    /// Games skipped so far.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The errors of the first 16 skipped games.
    pub fn skipped_errors(&self) -> &[PgnError] {
        &self.skipped_errors
    }

    /// Games begun so far (yielded, failed or skipped).
    pub fn games_read(&self) -> usize {
        self.games_begun
    }

    fn io_error(&self, error: io::Error) -> PgnError {
        PgnError::Io {
            source_name: self.source.clone(),
            error,
        }
    }

    /// The next line and its number, without the line ending.
    fn next_line(&mut self) -> Result<Option<(usize, String)>, PgnError> {
        if let Some(line) = self.pushed_back.take() {
            return Ok(Some(line));
        }
        self.bytes.clear();
        let read = self
            .input
            .read_until(b'\n', &mut self.bytes)
            .map_err(|e| self.io_error(e))?;
        if read == 0 {
            return Ok(None);
        }
        self.line_number += 1;
        let mut bytes: &[u8] = &self.bytes;
        if self.line_number == 1 {
            bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        }
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text.to_string(),
            Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
        };
        Ok(Some((self.line_number, text)))
    }

    /// Reads one game: `Ok(None)` at the end of the source.
    fn read_game(&mut self) -> Result<Option<Result<PgnGame, PgnError>>, PgnError> {
        let first = loop {
            match self.next_line()? {
                None => return Ok(None),
                Some((_, line)) if line.trim().is_empty() || line.starts_with('%') => {}
                Some(line) => break line,
            }
        };
        self.games_begun += 1;
        let mut parse = GameParse::new(self.source.clone(), self.games_begun, first.0);

        // The tag section.
        let mut line = Some(first);
        while let Some((number, text)) = line.take() {
            if text.trim_start().starts_with('[') {
                parse.tag_line(number, &text);
                line = self.next_line()?;
            } else {
                line = Some((number, text));
                break;
            }
        }
        parse.begin_movetext();

        // The movetext, up to the termination marker, the next tag section
        // or the end of the file.
        loop {
            let Some((number, text)) = line
                .take()
                .map_or_else(|| self.next_line(), |l| Ok(Some(l)))?
            else {
                parse.end_of_file();
                break;
            };
            match parse.movetext_line(number, &text) {
                LineEnd::Continue => {}
                LineEnd::GameOver { rest } => {
                    if !rest.trim().is_empty() {
                        self.pushed_back = Some((number, rest));
                    }
                    break;
                }
                LineEnd::NextGame => {
                    self.pushed_back = Some((number, text));
                    break;
                }
            }
        }
        Ok(Some(parse.finish()))
    }
}

impl<R: BufRead> Iterator for PgnReader<R> {
    type Item = Result<PgnGame, PgnError>;

    fn next(&mut self) -> Option<Result<PgnGame, PgnError>> {
        while !self.done {
            match self.read_game() {
                Ok(None) => self.done = true,
                Ok(Some(Ok(game))) => return Some(Ok(game)),
                Ok(Some(Err(error))) if self.skip_invalid => {
                    self.skipped += 1;
                    if self.skipped_errors.len() < KEPT_SKIP_ERRORS {
                        self.skipped_errors.push(error);
                    }
                }
                Ok(Some(Err(error))) => return Some(Err(error)),
                Err(io_error) => {
                    self.done = true;
                    return Some(Err(io_error));
                }
            }
        }
        None
    }
}

/// How a movetext line left the game.
enum LineEnd {
    /// The game goes on to the next line.
    Continue,
    /// A termination marker ended the game; `rest` is the text after it.
    GameOver { rest: String },
    /// The line starts the next game's tags.
    NextGame,
}

/// The state of one game being read.
struct GameParse {
    source: String,
    number: usize,
    first_line: usize,
    tags: Vec<(String, String)>,
    /// The line of each tag (for errors about its value).
    tag_lines: Vec<usize>,
    game: Option<Chess>,
    error: Option<PgnError>,
    /// The line a still open `{` comment began on.
    open_comment: Option<usize>,
    /// The lines of the still open `(` variations.
    open_variations: Vec<usize>,
    marker: Option<(usize, GameResult)>,
    last_line: usize,
}

impl GameParse {
    fn new(source: String, number: usize, first_line: usize) -> GameParse {
        GameParse {
            source,
            number,
            first_line,
            tags: Vec::new(),
            tag_lines: Vec::new(),
            game: None,
            error: None,
            open_comment: None,
            open_variations: Vec::new(),
            marker: None,
            last_line: first_line,
        }
    }

    fn at(&self, line: usize) -> PgnLocation {
        PgnLocation {
            source: self.source.clone(),
            line,
            game: self.number,
        }
    }

    /// Keeps the first error of the game; later ones are consequences.
    fn fail(&mut self, error: PgnError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }

    /// Reads the tag pairs of one line (usually one).
    fn tag_line(&mut self, line: usize, text: &str) {
        self.last_line = line;
        let mut rest = text.trim();
        while !rest.is_empty() {
            match parse_tag(rest) {
                Ok((name, value, after)) => {
                    self.tags.push((name, value));
                    self.tag_lines.push(line);
                    rest = after.trim_start();
                }
                Err(reason) => {
                    let error = PgnError::Tag {
                        at: self.at(line),
                        text: text.trim().to_string(),
                        reason: reason.to_string(),
                    };
                    self.fail(error);
                    return;
                }
            }
        }
    }

    fn tag_line_of(&self, name: &str) -> Option<(usize, &str)> {
        self.tags
            .iter()
            .zip(&self.tag_lines)
            .find(|((n, _), _)| n == name)
            .map(|((_, v), &line)| (line, v.as_str()))
    }

    /// Sets up the starting position from the tags.
    fn begin_movetext(&mut self) {
        if let Some((line, variant)) = self.tag_line_of("Variant") {
            let standard = ["standard", "chess", "from position", "normal", ""]
                .contains(&variant.trim().to_ascii_lowercase().as_str());
            if !standard {
                let error = PgnError::Variant {
                    at: self.at(line),
                    variant: variant.to_string(),
                };
                self.fail(error);
                return;
            }
        }
        let start = match self.tag_line_of("FEN") {
            None => Ok(shakmaty::Chess::default()),
            Some((line, fen)) => parse_fen(fen).map_err(|error| PgnError::Fen {
                at: self.at(line),
                error,
            }),
        };
        match start {
            Ok(position) => {
                self.game =
                    Some(Chess::from_position(position).with_draw_rules(DrawRules::OnClaim));
            }
            Err(error) => self.fail(error),
        }
    }

    /// Reads one movetext line.
    fn movetext_line(&mut self, line: usize, text: &str) -> LineEnd {
        self.last_line = line;
        if self.open_comment.is_none() {
            if self.open_variations.is_empty() && text.trim_start().starts_with('[') {
                return LineEnd::NextGame;
            }
            if text.starts_with('%') {
                return LineEnd::Continue;
            }
        }
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if self.open_comment.is_some() {
                match text[i..].find('}') {
                    Some(end) => {
                        self.open_comment = None;
                        i += end + 1;
                        continue;
                    }
                    None => break,
                }
            }
            match bytes[i] {
                b' ' | b'\t' | b'\r' | b'\x0c' => i += 1,
                b'{' => {
                    self.open_comment = Some(line);
                    i += 1;
                }
                b';' => break,
                b'(' => {
                    self.open_variations.push(line);
                    i += 1;
                }
                b')' => {
                    if self.open_variations.pop().is_none() {
                        let error = self.syntax(line, "`)` without an opening `(`");
                        self.fail(error);
                    }
                    i += 1;
                }
                b'}' => {
                    let error = self.syntax(line, "`}` without an opening `{`");
                    self.fail(error);
                    i += 1;
                }
                b'$' => {
                    let digits = bytes[i + 1..]
                        .iter()
                        .take_while(|b| b.is_ascii_digit())
                        .count();
                    if digits == 0 {
                        let error = self.syntax(line, "`$` without a NAG number");
                        self.fail(error);
                    }
                    i += 1 + digits;
                }
                _ => {
                    // Whitespace beyond the ASCII set above (a no-break
                    // space, U+2003, a vertical tab) separates words too;
                    // it must be stepped over here, or the word below would
                    // be empty and the loop would never advance.
                    if let Some(c) = text[i..].chars().next().filter(|c| c.is_whitespace()) {
                        i += c.len_utf8();
                        continue;
                    }
                    let end = text[i..]
                        .find(|c: char| c.is_whitespace() || "{}();$".contains(c))
                        .map_or(text.len(), |n| i + n);
                    let word = &text[i..end];
                    i = end;
                    if !self.open_variations.is_empty() {
                        continue;
                    }
                    if let Ok(result) = word.parse::<GameResult>() {
                        self.marker = Some((line, result));
                        return LineEnd::GameOver {
                            rest: text[i..].to_string(),
                        };
                    }
                    self.word(line, word);
                }
            }
        }
        LineEnd::Continue
    }

    fn syntax(&self, line: usize, what: &str) -> PgnError {
        PgnError::Syntax {
            at: self.at(line),
            what: what.to_string(),
        }
    }

    /// A main-line word that is not a result: a move number, an annotation
    /// or a move.
    fn word(&mut self, line: usize, word: &str) {
        let mut san = word;
        let digits = san.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            let after = &san[digits..];
            let periods = after.bytes().take_while(|&b| b == b'.').count();
            if periods > 0 || after.is_empty() {
                san = &after[periods..];
            }
        }
        let san = san.trim_end_matches(['!', '?']);
        if san.is_empty() || self.error.is_some() {
            return;
        }
        let Some(game) = self.game.as_mut() else {
            return;
        };
        let position = game.as_shakmaty();
        let (move_number, side) = (position.fullmoves().get(), player_of(position.turn()));
        let token_error = |reason: &str| PgnError::Token {
            at: PgnLocation {
                source: self.source.clone(),
                line,
                game: self.number,
            },
            move_number,
            side,
            token: san.to_string(),
            reason: reason.to_string(),
        };
        // Castling written with zeros, as some programs do.
        let normalized = if san.starts_with("0-0") {
            san.replace('0', "O")
        } else {
            san.to_string()
        };
        let parsed = match SanPlus::from_ascii(normalized.as_bytes()) {
            Ok(SanPlus { san: San::Null, .. }) => {
                Err(token_error("a null move cannot be replayed"))
            }
            Ok(SanPlus {
                san: San::Put { .. },
                ..
            }) => Err(token_error("a piece drop is not a move of standard chess")),
            Ok(parsed) => Ok(parsed.san),
            Err(_) => Err(token_error("not SAN, a move number, a NAG or a result")),
        };
        let result = parsed.and_then(|parsed| {
            let m = game
                .resolve_san(parsed, san)
                .map_err(|error| PgnError::IllegalMove {
                    at: PgnLocation {
                        source: self.source.clone(),
                        line,
                        game: self.number,
                    },
                    move_number,
                    side,
                    san: san.to_string(),
                    fen: game.fen(),
                    reason: match (error, game.termination()) {
                        (NotationError::Ambiguous { .. }, _) => "ambiguous".to_string(),
                        (_, Some(end)) => format!("the game is already over ({end})"),
                        (_, None) => "illegal".to_string(),
                    },
                })?;
            game.play_legal(m);
            Ok(())
        });
        if let Err(error) = result {
            self.fail(error);
        }
    }

    fn end_of_file(&mut self) {
        if let Some(line) = self.open_comment {
            let error = self.syntax(line, "comment `{` not closed before the end of the file");
            self.fail(error);
        } else if let Some(&line) = self.open_variations.first() {
            let error = self.syntax(line, "variation `(` not closed before the end of the file");
            self.fail(error);
        }
    }

    fn finish(mut self) -> Result<PgnGame, PgnError> {
        let tag_result = match self.tag_line_of("Result") {
            None => None,
            Some((line, value)) => match value.trim().parse::<GameResult>() {
                Ok(result) => Some(result),
                Err(error) => {
                    let error = PgnError::Tag {
                        at: self.at(line),
                        text: format!("[Result \"{value}\"]"),
                        reason: error.to_string(),
                    };
                    self.fail(error);
                    None
                }
            },
        };
        if let (Some(tag), Some((line, marker))) = (tag_result, self.marker)
            && tag != marker
        {
            let error = PgnError::ResultMismatch {
                at: self.at(line),
                tag,
                marker,
            };
            self.fail(error);
        }
        if let Some(error) = self.error {
            return Err(error);
        }
        let result = self
            .marker
            .map(|(_, result)| result)
            .or(tag_result)
            .unwrap_or(GameResult::Unknown);
        Ok(PgnGame {
            at: PgnLocation {
                source: self.source,
                line: self.first_line,
                game: self.number,
            },
            tags: self.tags,
            game: self
                .game
                .expect("without an error, begin_movetext set up the game"),
            result,
        })
    }
}

/// Parses `[Name "value"]` at the start of `text`: the name, the unescaped
/// value and the text after the `]`.
fn parse_tag(text: &str) -> Result<(String, String, &str), &'static str> {
    let rest = text.strip_prefix('[').ok_or("expected `[`")?.trim_start();
    let name_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    if name_len == 0 {
        return Err("expected a tag name (letters, digits, `_`)");
    }
    let name = rest[..name_len].to_string();
    let rest = rest[name_len..]
        .trim_start()
        .strip_prefix('"')
        .ok_or("expected a quoted value after the tag name")?;
    let mut value = String::new();
    let mut chars = rest.char_indices();
    let after_quote = loop {
        match chars.next() {
            None => return Err("the value's closing quote is missing"),
            Some((i, '"')) => break &rest[i + 1..],
            Some((_, '\\')) => match chars.next() {
                Some((_, c)) => value.push(c),
                None => return Err("the value's closing quote is missing"),
            },
            Some((_, c)) => value.push(c),
        }
    };
    let after = after_quote
        .trim_start()
        .strip_prefix(']')
        .ok_or("expected `]` after the value")?;
    Ok((name, value, after))
}

/// Whether `name` can be written as a tag name.
fn is_tag_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn escape_tag_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            // A tag pair is one line.
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Writes one game in the PGN export format: the Seven Tag Roster first (a
/// missing tag written as `?`, the date as `????.??.??`, `Result` from
/// `result`), then `SetUp` and `FEN` when the game does not start from the
/// standard position, then the other tags in order; a blank line; the
/// movetext (`1. e4 e5 2. Nf3`, SAN with check and mate suffixes, `12...`
/// before a first Black move) in lines of at most 80 characters, ending with
/// the result; a blank line.
pub fn write_pgn<W: Write>(
    out: &mut W,
    tags: &[(String, String)],
    game: &Chess,
    result: GameResult,
) -> io::Result<()> {
    for (name, _) in tags {
        if !is_tag_name(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("tag name {name:?} is not a PGN symbol (letters, digits, `_`)"),
            ));
        }
    }
    let value_of = |name: &str| {
        tags.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    for (name, default) in SEVEN_TAG_ROSTER {
        let value = if name == "Result" {
            result.as_str()
        } else {
            value_of(name).unwrap_or(default)
        };
        writeln!(out, "[{name} \"{}\"]", escape_tag_value(value))?;
    }
    if !game.starts_from_standard() {
        writeln!(out, "[SetUp \"1\"]")?;
        writeln!(out, "[FEN \"{}\"]", game.start_fen())?;
    }
    for (name, value) in tags {
        let written =
            SEVEN_TAG_ROSTER.iter().any(|(n, _)| n == name) || name == "SetUp" || name == "FEN";
        if !written {
            writeln!(out, "[{name} \"{}\"]", escape_tag_value(value))?;
        }
    }
    writeln!(out)?;

    let start = game.start_position();
    // Widened: a FEN may start at move u32::MAX, and counting on from it
    // must not overflow (found by tests/fuzz_pgn.rs).
    let mut number = u64::from(start.fullmoves().get());
    let mut turn = start.turn();
    let mut tokens = Vec::with_capacity(game.ply() * 3 / 2 + 1);
    for (ply, san) in game.san_moves().into_iter().enumerate() {
        match turn {
            Color::White => tokens.push(format!("{number}.")),
            Color::Black if ply == 0 => tokens.push(format!("{number}...")),
            Color::Black => {}
        }
        tokens.push(san);
        if turn == Color::Black {
            number += 1;
        }
        turn = !turn;
    }
    tokens.push(result.as_str().to_string());
    let mut line = String::new();
    for token in tokens {
        if !line.is_empty() && line.len() + 1 + token.len() > LINE_WIDTH {
            writeln!(out, "{line}")?;
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&token);
    }
    writeln!(out, "{line}")?;
    writeln!(out)
}

/// [`write_pgn`] into a string.
pub fn pgn_string(tags: &[(String, String)], game: &Chess, result: GameResult) -> String {
    let mut out = Vec::new();
    write_pgn(&mut out, tags, game, result)
        .unwrap_or_else(|e| panic!("writing PGN into memory failed: {e}"));
    String::from_utf8(out).expect("PGN is written from UTF-8 strings")
}

/// Writes games to a PGN file atomically (a temporary file renamed into
/// place); returns how many.
pub fn write_pgn_file<'a>(
    path: impl AsRef<Path>,
    games: impl IntoIterator<Item = &'a PgnGame>,
) -> Result<usize, PgnError> {
    let path = path.as_ref();
    let io_error = |error| PgnError::Io {
        source_name: path.display().to_string(),
        error,
    };
    let mut file = AtomicFile::create(path).map_err(io_error)?;
    let mut count = 0;
    for game in games {
        write_pgn(file.writer(), &game.tags, &game.game, game.result).map_err(io_error)?;
        count += 1;
    }
    file.commit().map_err(io_error)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str) -> Vec<Result<PgnGame, PgnError>> {
        PgnReader::new(text.as_bytes(), "<test>").collect()
    }

    #[test]
    fn parse_tag_handles_escapes_and_rejects_garbage() {
        let (name, value, rest) = parse_tag(r#"[Event "A \"big\" \\ day"] tail"#).unwrap();
        assert_eq!(name, "Event");
        assert_eq!(value, r#"A "big" \ day"#);
        assert_eq!(rest, " tail");
        assert!(parse_tag(r#"[Event "open"#).is_err());
        assert!(parse_tag(r#"[ "x"]"#).is_err());
        assert!(parse_tag(r#"[Event x]"#).is_err());
        assert!(parse_tag(r#"[Event "x""#).is_err());
    }

    #[test]
    fn results_parse_and_print() {
        for text in ["1-0", "0-1", "1/2-1/2", "*"] {
            assert_eq!(text.parse::<GameResult>().unwrap().as_str(), text);
        }
        assert!("2-0".parse::<GameResult>().is_err());
        assert_eq!(
            GameResult::from_outcome(Some(Outcome::Win(Player::Second))),
            GameResult::BlackWins
        );
    }

    #[test]
    fn a_game_from_the_last_move_number_writes_without_overflow() {
        // Found by tests/fuzz_pgn.rs: the move number overflowed (a panic
        // in debug builds, a wrap to 0 in release builds).
        let text = "[SetUp \"1\"]\n[FEN \"4k3/8/8/8/8/8/8/4K2R b K - 0 99999999999\"]\n\n1... Kd7 2. Rh7+ *\n";
        let games = read_all(text);
        let game = games[0].as_ref().expect("a legal game");
        let pgn = game.to_pgn();
        assert!(pgn.contains("4294967295... Kd7 4294967296. Rh7+"), "{pgn}");
    }

    #[test]
    fn any_whitespace_separates_moves_and_never_hangs() {
        // Each of these once sent the movetext loop round forever: a
        // non-ASCII whitespace character made an empty word.
        for sep in ["\u{a0}", "\u{2003}", "\x0b", " \u{a0} ", "\u{3000}"] {
            let text = format!("1. e4{sep}e5 2. Nf3{sep}*\n");
            let games = read_all(&text);
            assert_eq!(games.len(), 1, "{sep:?}");
            let game = games[0].as_ref().unwrap_or_else(|e| panic!("{sep:?}: {e}"));
            assert_eq!(game.game.ply(), 3, "{sep:?}");
        }
        // A Latin-1 no-break space byte (read as U+00A0).
        let bytes = b"1. e4\xa0e5 *\n";
        let games: Vec<_> = PgnReader::new(&bytes[..], "<latin1>").collect();
        assert_eq!(games.len(), 1);
        assert_eq!(games[0].as_ref().unwrap().game.ply(), 2);
    }

    #[test]
    fn glued_move_numbers_and_zero_castling() {
        let games = read_all("1.e4 e5 2.Nf3 Nc6 3.Bc4 Bc5 4.0-0 Nf6 *\n");
        let game = games[0].as_ref().unwrap();
        assert_eq!(game.game.ply(), 8);
        assert_eq!(game.game.moves()[6].to_string(), "e1g1");
        assert_eq!(game.result, GameResult::Unknown);
    }

    #[test]
    fn unknown_token_is_an_error_with_move_number() {
        let games = read_all("[Event \"x\"]\n\n1. e4 e5 2. Nf3 foo 3. Bc4 *\n");
        let err = games[0].as_ref().unwrap_err();
        match err {
            PgnError::Token {
                at,
                move_number,
                side,
                token,
                ..
            } => {
                assert_eq!((at.line, at.game), (3, 1));
                assert_eq!((*move_number, *side), (2, Player::Second));
                assert_eq!(token, "foo");
            }
            other => panic!("expected a token error, got {other}"),
        }
        assert!(err.to_string().contains("move 2... \"foo\""), "{err}");
    }

    #[test]
    fn syntax_errors() {
        let cases = [
            ("1. e4 ) e5 *\n", "`)` without"),
            ("1. e4 } e5 *\n", "`}` without"),
            ("1. e4 $ e5 *\n", "`$` without"),
            ("1. e4 { never closed\n", "comment `{` not closed"),
            ("1. e4 ( 1. d4\n", "variation `(` not closed"),
        ];
        for (text, needle) in cases {
            let games = read_all(text);
            assert_eq!(games.len(), 1, "{text}");
            let err = games[0].as_ref().unwrap_err();
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn result_tag_and_marker_must_agree() {
        let games = read_all("[Result \"1-0\"]\n\n1. e4 e5 0-1\n");
        assert!(matches!(
            games[0],
            Err(PgnError::ResultMismatch {
                tag: GameResult::WhiteWins,
                marker: GameResult::BlackWins,
                ..
            })
        ));
        let games = read_all("[Result \"2-0\"]\n\n1. e4 *\n");
        assert!(matches!(games[0], Err(PgnError::Tag { .. })));
    }

    #[test]
    fn missing_marker_ends_at_the_next_tags() {
        let text = "[Result \"1-0\"]\n\n1. e4 e5\n\n[Result \"0-1\"]\n\n1. d4 d5 0-1\n";
        let games: Vec<PgnGame> = read_all(text).into_iter().map(Result::unwrap).collect();
        assert_eq!(games.len(), 2);
        assert_eq!(games[0].result, GameResult::WhiteWins);
        assert_eq!(games[0].game.ply(), 2);
        assert_eq!(games[1].game.moves()[0].to_string(), "d2d4");
        assert_eq!(games[1].at.line, 5);
    }

    #[test]
    fn variant_and_latin1() {
        let games = read_all("[Variant \"Atomic\"]\n\n1. e4 *\n");
        assert!(matches!(games[0], Err(PgnError::Variant { .. })));
        let mut bytes = b"[White \"M\xfcller\"]\n\n1. e4 *\n".to_vec();
        bytes.splice(0..0, b"\xef\xbb\xbf".iter().copied());
        let games: Vec<_> = PgnReader::new(&bytes[..], "<latin1>").collect();
        let game = games[0].as_ref().unwrap();
        assert_eq!(game.tag("White"), Some("Müller"));
    }

    #[test]
    fn writer_wraps_lines_and_numbers_black_first() {
        let mut game =
            Chess::from_fen("rnbqkbnr/pppppppp/8/8/4P3/8/PPPP1PPP/RNBQKBNR b KQkq - 0 1")
                .unwrap()
                .with_draw_rules(DrawRules::OnClaim);
        for san in ["e5", "Nf3", "Nc6"] {
            game.play_san(san).unwrap();
        }
        let text = pgn_string(
            &[("White".into(), "A \"B\"".into())],
            &game,
            GameResult::Unknown,
        );
        assert!(text.starts_with("[Event \"?\"]\n[Site \"?\"]\n[Date \"????.??.??\"]"));
        assert!(text.contains("[White \"A \\\"B\\\"\"]"));
        assert!(text.contains(
            "[SetUp \"1\"]\n[FEN \"rnbqkbnr/pppppppp/8/8/4P3/8/PPPP1PPP/RNBQKBNR b KQkq - 0 1\"]"
        ));
        assert!(text.contains("\n\n1... e5 2. Nf3 Nc6 *\n\n"), "{text}");

        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        let long = super::super::random_game(&mut rng, 150);
        let text = pgn_string(&[], &long, GameResult::from_outcome(long.outcome()));
        assert!(text.lines().all(|l| l.len() <= LINE_WIDTH), "{text}");
        let bad = write_pgn(
            &mut Vec::new(),
            &[("Bad Name".into(), "x".into())],
            &long,
            GameResult::Unknown,
        );
        assert!(bad.is_err());
    }

    #[test]
    fn elo_tags() {
        let games =
            read_all("[WhiteElo \"1850\"]\n[BlackElo \"?\"]\n\n1. e4 *\n[WhiteElo \"abc\"]\n\n*\n");
        let first = games[0].as_ref().unwrap();
        assert_eq!(first.elo(Player::First).unwrap(), Some(1850));
        assert_eq!(first.elo(Player::Second).unwrap(), None);
        let second = games[1].as_ref().unwrap();
        assert_eq!(second.game.ply(), 0);
        let err = second.elo(Player::First).unwrap_err();
        assert!(err.to_string().contains("game 2"), "{err}");
    }
}
