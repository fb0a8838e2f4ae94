//! External chess engines over the UCI protocol (Stockfish and friends).
//!
//! The engine runs as a child process. Its output is read on a helper
//! thread into a channel, so every wait has a timeout: an engine that hangs
//! gives [`UciError::Timeout`], one that exits gives [`UciError::Died`], a
//! missing binary [`UciError::NotFound`] naming the built-in players to use
//! instead. The process is told to quit and then killed when dropped.
//!
//! Strength: `Skill Level` (Stockfish 0-20), or `UCI_LimitStrength` with
//! `UCI_Elo` (Stockfish 15: 1350-2850), and a node, time or depth limit per
//! move. Stockfish's weakened levels choose among moves with its own random
//! generator seeded from the clock, so such games are not reproducible from
//! a seed; full strength with a node limit and one thread is deterministic.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

/// The built-in players, named where an engine is missing.
pub const BUILT_IN_PLAYERS: &str = "random, greedy, alphabeta:<depth>, mcts:<simulations>";

/// How long an engine may think per move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SearchLimit {
    /// `go nodes N`.
    Nodes(u64),
    /// `go movetime MS` (milliseconds).
    MoveTimeMs(u64),
    /// `go depth D`.
    Depth(u32),
}

impl SearchLimit {
    fn go_command(self) -> String {
        match self {
            SearchLimit::Nodes(nodes) => format!("go nodes {nodes}"),
            SearchLimit::MoveTimeMs(ms) => format!("go movetime {ms}"),
            SearchLimit::Depth(depth) => format!("go depth {depth}"),
        }
    }

    /// Time the engine may take beyond the read timeout.
    fn allowance(self) -> Duration {
        match self {
            SearchLimit::MoveTimeMs(ms) => Duration::from_millis(ms),
            _ => Duration::ZERO,
        }
    }
}

/// An engine and the strength to set it to.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UciConfig {
    /// The engine binary.
    pub path: PathBuf,
    /// `Skill Level` (Stockfish: 0 weakest to 20 full strength).
    pub skill_level: Option<u32>,
    /// `UCI_LimitStrength` on with this `UCI_Elo` (checked against the
    /// engine's advertised range).
    pub elo: Option<u32>,
    /// The limit per move.
    pub limit: SearchLimit,
    /// `Threads` (1 keeps node-limited searches deterministic).
    pub threads: u32,
    /// `Hash` in MiB.
    pub hash_mb: u32,
    /// The longest wait for an expected line (start-up, `readyok`, and
    /// `bestmove` beyond a move time) before [`UciError::Timeout`].
    pub read_timeout: Duration,
}

impl UciConfig {
    /// Stockfish at [`default_engine_path`] (or `stockfish`), full strength,
    /// 10,000 nodes a move, one thread, 16 MiB hash, 10 s read timeout.
    pub fn stockfish() -> UciConfig {
        UciConfig {
            path: default_engine_path().unwrap_or_else(|| PathBuf::from("stockfish")),
            skill_level: None,
            elo: None,
            limit: SearchLimit::Nodes(10_000),
            threads: 1,
            hash_mb: 16,
            read_timeout: Duration::from_secs(10),
        }
    }

    /// A short description of the strength (for reports): `stockfish
    /// skill=3 nodes=1000`.
    pub fn describe(&self) -> String {
        let name = self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut text = name;
        if let Some(skill) = self.skill_level {
            text.push_str(&format!(" skill={skill}"));
        }
        if let Some(elo) = self.elo {
            text.push_str(&format!(" elo={elo}"));
        }
        text.push_str(&match self.limit {
            SearchLimit::Nodes(nodes) => format!(" nodes={nodes}"),
            SearchLimit::MoveTimeMs(ms) => format!(" movetime={ms}"),
            SearchLimit::Depth(depth) => format!(" depth={depth}"),
        });
        text
    }
}

/// Where Stockfish is: `$KIBITZER_STOCKFISH` if set, else
/// [`find_engine`]`("stockfish")`; `None` when none exists.
pub fn default_engine_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KIBITZER_STOCKFISH") {
        return Some(PathBuf::from(path));
    }
    find_engine(Path::new("stockfish"))
}

/// Where the engine `name` is: a name with a directory part (`./sf`,
/// `/opt/sf`) as given when that file exists; a bare name (`stockfish`) on
/// the `PATH`, else in `/usr/games` or `/usr/local/games` (where Debian
/// installs game engines, often not on a user's `PATH`). `None` when there
/// is no such file.
pub fn find_engine(name: &Path) -> Option<PathBuf> {
    if name.components().count() > 1 {
        return name.is_file().then(|| name.to_path_buf());
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        ["/usr/games", "/usr/local/games"]
            .iter()
            .map(|dir| Path::new(dir).join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// What went wrong with an engine.
#[derive(Debug, thiserror::Error)]
pub enum UciError {
    /// No file at the path.
    #[error(
        "no UCI engine at {path}: install Stockfish (Debian/Ubuntu: apt-get install stockfish, binary /usr/games/stockfish), set KIBITZER_STOCKFISH to its path, or use a built-in player: {BUILT_IN_PLAYERS}"
    )]
    NotFound {
        /// The path tried.
        path: PathBuf,
    },
    /// The process could not be started.
    #[error("cannot start UCI engine {path}: {source}")]
    Spawn {
        /// The engine.
        path: PathBuf,
        /// The system's reason.
        #[source]
        source: std::io::Error,
    },
    /// No expected answer within the timeout.
    #[error("UCI engine {path} did not answer {waiting_for} within {seconds:.1} s")]
    Timeout {
        /// The engine.
        path: PathBuf,
        /// The line awaited (`uciok`, `readyok`, `bestmove`).
        waiting_for: String,
        /// How long we waited.
        seconds: f64,
    },
    /// The process ended (crashed, or is not a UCI engine).
    #[error(
        "UCI engine {path} died or closed its output ({status}) while we waited for {waiting_for}"
    )]
    Died {
        /// The engine.
        path: PathBuf,
        /// The line awaited.
        waiting_for: String,
        /// Its exit status, as text.
        status: String,
    },
    /// The engine has no such option.
    #[error("UCI engine {path} has no option {option:?} (it offers: {offered})")]
    UnknownOption {
        /// The engine.
        path: PathBuf,
        /// The option asked for.
        option: String,
        /// The options it lists.
        offered: String,
    },
    /// A numeric option outside the engine's range.
    #[error("UCI option {option} = {value} is outside the engine's range {min}..={max}")]
    OptionOutOfRange {
        /// The option.
        option: String,
        /// The value asked for.
        value: i64,
        /// The engine's minimum.
        min: i64,
        /// The engine's maximum.
        max: i64,
    },
    /// The engine said something we cannot use.
    #[error("UCI engine {path}: expected {expected}, got {line:?}")]
    Protocol {
        /// The engine.
        path: PathBuf,
        /// What we expected.
        expected: String,
        /// What came.
        line: String,
    },
}

/// A score as a UCI engine reports it (`score cp X` or `score mate Y`),
/// from the point of view of the side to move in the searched position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum UciScore {
    /// `cp X`: centipawns, positive when the side to move is better.
    Centipawns(i32),
    /// `mate Y`: the side to move mates in `Y` moves (its own moves, not
    /// plies); negative when it is mated in `-Y` moves; 0 when it is mated
    /// already.
    Mate(i32),
}

/// Whether a reported score is exact or a bound (`lowerbound`,
/// `upperbound`: a search window failed, the true score lies beyond).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ScoreBound {
    /// No bound word.
    Exact,
    /// `lowerbound`: the score is at least this.
    Lower,
    /// `upperbound`: the score is at most this.
    Upper,
}

/// What [`UciEngine::evaluate`] found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineScore {
    /// The score of the last `info` line with one before `bestmove`, for
    /// the side to move.
    pub score: UciScore,
    /// Whether that score is exact or a bound.
    pub bound: ScoreBound,
    /// The `depth` of that line, when it gave one.
    pub depth: Option<u32>,
    /// The engine's move (`None`: `bestmove (none)`).
    pub best_move: Option<String>,
}

/// The score of a UCI `info` line: `Ok(None)` for a line that carries none
/// (not `info`, `info string ...`, or no `score` word); an error saying what
/// is wrong for a `score` that is not `cp <integer>` or `mate <integer>`.
/// A `lowerbound` / `upperbound` after the value (and any `wdl W D L`)
/// sets the bound.
///
/// ```
/// use kibitzer_games::players::uci::{ScoreBound, UciScore, parse_info_score};
/// let line = "info depth 12 seldepth 16 multipv 1 score cp -35 upperbound nodes 20000 pv e7e5";
/// assert_eq!(
///     parse_info_score(line),
///     Ok(Some((UciScore::Centipawns(-35), ScoreBound::Upper, Some(12))))
/// );
/// ```
pub fn parse_info_score(line: &str) -> Result<Option<(UciScore, ScoreBound, Option<u32>)>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.first() != Some(&"info") || words.get(1) == Some(&"string") {
        return Ok(None);
    }
    let Some(at) = words.iter().position(|&w| w == "score") else {
        return Ok(None);
    };
    let depth = words
        .iter()
        .position(|&w| w == "depth")
        .and_then(|i| words.get(i + 1))
        .and_then(|d| d.parse().ok());
    let value = || {
        words
            .get(at + 2)
            .and_then(|v| v.parse::<i32>().ok())
            .ok_or_else(|| {
                format!(
                    "`score {}` followed by an integer",
                    words.get(at + 1).unwrap_or(&"")
                )
            })
    };
    let score = match words.get(at + 1) {
        Some(&"cp") => UciScore::Centipawns(value()?),
        Some(&"mate") => UciScore::Mate(value()?),
        other => {
            return Err(format!(
                "`score cp <integer>` or `score mate <integer>`, not `score {}`",
                other.unwrap_or(&"")
            ));
        }
    };
    // The bound follows the value, or (Stockfish with UCI_ShowWDL) the
    // `wdl W D L` after it; the `pv` moves end the line.
    let bound = words
        .get(at + 3..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&w| w != "pv")
        .find_map(|&w| match w {
            "lowerbound" => Some(ScoreBound::Lower),
            "upperbound" => Some(ScoreBound::Upper),
            _ => None,
        })
        .unwrap_or(ScoreBound::Exact);
    Ok(Some((score, bound, depth)))
}

/// A numeric (`spin`) option the engine advertises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpinOption {
    /// Its name.
    pub name: String,
    /// Default value.
    pub default: i64,
    /// Smallest value.
    pub min: i64,
    /// Largest value.
    pub max: i64,
}

/// A running UCI engine.
pub struct UciEngine {
    path: PathBuf,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    read_timeout: Duration,
    name: String,
    options: Vec<String>,
    spins: Vec<SpinOption>,
}

impl UciEngine {
    /// Starts the engine at `path` and completes the `uci` handshake.
    pub fn start(path: impl AsRef<Path>, read_timeout: Duration) -> Result<UciEngine, UciError> {
        let path = path.as_ref().to_path_buf();
        // A bare name is looked up on the PATH by the system.
        if path.components().count() > 1 && !path.exists() {
            return Err(UciError::NotFound { path });
        }
        let mut child = Command::new(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    UciError::NotFound { path: path.clone() }
                } else {
                    UciError::Spawn {
                        path: path.clone(),
                        source,
                    }
                }
            })?;
        let stdin = child.stdin.take().expect("stdin was piped");
        let stdout = child.stdout.take().expect("stdout was piped");
        let (sender, lines) = channel();
        // The reader ends when the engine closes its output (exit or kill).
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut engine = UciEngine {
            path,
            child,
            stdin,
            lines,
            read_timeout,
            name: String::new(),
            options: Vec::new(),
            spins: Vec::new(),
        };
        engine.send("uci")?;
        loop {
            let line = engine.read_line("uciok", read_timeout)?;
            let line = line.trim();
            if line == "uciok" {
                break;
            }
            if let Some(name) = line.strip_prefix("id name ") {
                engine.name = name.to_owned();
            } else if let Some(option) = line.strip_prefix("option name ") {
                engine.parse_option(option);
            }
        }
        engine.wait_ready()?;
        Ok(engine)
    }

    fn parse_option(&mut self, text: &str) {
        let (name, rest) = match text.split_once(" type ") {
            Some((name, rest)) => (name.trim().to_owned(), rest),
            None => (text.trim().to_owned(), ""),
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        if words.first() == Some(&"spin") {
            let value = |key: &str| {
                words
                    .iter()
                    .position(|&w| w == key)
                    .and_then(|at| words.get(at + 1))
                    .and_then(|v| v.parse::<i64>().ok())
            };
            if let (Some(default), Some(min), Some(max)) =
                (value("default"), value("min"), value("max"))
            {
                self.spins.push(SpinOption {
                    name: name.clone(),
                    default,
                    min,
                    max,
                });
            }
        }
        self.options.push(name);
    }

    /// The engine's name (`id name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The binary.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The numeric option `name`, as the engine advertised it.
    pub fn spin_option(&self, name: &str) -> Option<&SpinOption> {
        self.spins
            .iter()
            .find(|spin| spin.name.eq_ignore_ascii_case(name))
    }

    /// Sets an option the engine advertised; numeric values are checked
    /// against its range.
    pub fn set_option(&mut self, name: &str, value: &str) -> Result<(), UciError> {
        if !self
            .options
            .iter()
            .any(|option| option.eq_ignore_ascii_case(name))
        {
            return Err(UciError::UnknownOption {
                path: self.path.clone(),
                option: name.to_owned(),
                offered: self.options.join(", "),
            });
        }
        if let (Some(spin), Ok(number)) = (self.spin_option(name), value.parse::<i64>())
            && !(spin.min..=spin.max).contains(&number)
        {
            return Err(UciError::OptionOutOfRange {
                option: spin.name.clone(),
                value: number,
                min: spin.min,
                max: spin.max,
            });
        }
        self.send(&format!("setoption name {name} value {value}"))
    }

    /// Sends `isready` and waits for `readyok`.
    pub fn wait_ready(&mut self) -> Result<(), UciError> {
        self.send("isready")?;
        loop {
            if self.read_line("readyok", self.read_timeout)?.trim() == "readyok" {
                return Ok(());
            }
        }
    }

    /// Tells the engine a new game starts (clears its hash).
    pub fn new_game(&mut self) -> Result<(), UciError> {
        self.send("ucinewgame")?;
        self.wait_ready()
    }

    /// The engine's move, in UCI notation, for the position reached from
    /// `start_fen` by `moves` (UCI), searched to `limit`. `None` when the
    /// engine reports no move (`bestmove (none)`: the game is over).
    pub fn best_move(
        &mut self,
        start_fen: &str,
        moves: &[String],
        limit: SearchLimit,
    ) -> Result<Option<String>, UciError> {
        self.search(start_fen, moves, limit, |_| {})
    }

    /// The engine's score of the position reached from `start_fen` by
    /// `moves` (UCI), searched to `limit`, for the side to move there: the
    /// last `info ... score` line before `bestmove` (the engine's latest
    /// estimate, the one its move goes with, even when it is a bound). A
    /// search that reports no score, or a `score` that does not parse, is
    /// [`UciError::Protocol`] naming the line. Give a position that is not
    /// over: engines report a finished game in their own ways.
    pub fn evaluate(
        &mut self,
        start_fen: &str,
        moves: &[String],
        limit: SearchLimit,
    ) -> Result<EngineScore, UciError> {
        let path = self.path.clone();
        let mut last = None;
        let mut bad = None;
        let best_move = self.search(start_fen, moves, limit, |line| {
            match parse_info_score(line) {
                Ok(Some(found)) => last = Some(found),
                Ok(None) => {}
                Err(expected) => {
                    // Read on to `bestmove` so the engine is idle again.
                    bad.get_or_insert(UciError::Protocol {
                        path: path.clone(),
                        expected,
                        line: line.to_owned(),
                    });
                }
            }
        });
        if let Some(error) = bad {
            return Err(error);
        }
        let best_move = best_move?;
        let Some((score, bound, depth)) = last else {
            return Err(UciError::Protocol {
                path,
                expected: "an `info ... score cp <n>` or `score mate <n>` line before bestmove"
                    .to_owned(),
                line: format!("bestmove {}", best_move.as_deref().unwrap_or("(none)")),
            });
        };
        Ok(EngineScore {
            score,
            bound,
            depth,
            best_move,
        })
    }

    /// Sends the position and `go`, hands every line before `bestmove` to
    /// `on_line`, and returns the move of `bestmove`.
    fn search(
        &mut self,
        start_fen: &str,
        moves: &[String],
        limit: SearchLimit,
        mut on_line: impl FnMut(&str),
    ) -> Result<Option<String>, UciError> {
        let mut command = format!("position fen {start_fen}");
        if !moves.is_empty() {
            command.push_str(" moves ");
            command.push_str(&moves.join(" "));
        }
        self.send(&command)?;
        self.send(&limit.go_command())?;
        let wait = self.read_timeout + limit.allowance();
        loop {
            let line = self.read_line("bestmove", wait)?;
            let mut words = line.split_whitespace();
            if words.next() != Some("bestmove") {
                on_line(&line);
                continue;
            }
            return match words.next() {
                Some("(none)") | Some("0000") => Ok(None),
                Some(mv) => Ok(Some(mv.to_owned())),
                None => Err(UciError::Protocol {
                    path: self.path.clone(),
                    expected: "a move after bestmove".to_owned(),
                    line: line.clone(),
                }),
            };
        }
    }

    fn send(&mut self, line: &str) -> Result<(), UciError> {
        let written = writeln!(self.stdin, "{line}").and_then(|()| self.stdin.flush());
        if written.is_err() {
            // A closed pipe means the engine has gone.
            return Err(self.died(line));
        }
        Ok(())
    }

    fn read_line(&mut self, waiting_for: &str, timeout: Duration) -> Result<String, UciError> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => Err(UciError::Timeout {
                path: self.path.clone(),
                waiting_for: waiting_for.to_owned(),
                seconds: timeout.as_secs_f64(),
            }),
            Err(RecvTimeoutError::Disconnected) => Err(self.died(waiting_for)),
        }
    }

    fn died(&mut self, waiting_for: &str) -> UciError {
        // The output closed: give the process a moment to be reaped.
        let mut status = None;
        for _ in 0..50 {
            if let Ok(Some(exit)) = self.child.try_wait() {
                status = Some(exit.to_string());
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        UciError::Died {
            path: self.path.clone(),
            waiting_for: waiting_for.to_owned(),
            status: status.unwrap_or_else(|| "process still running".to_owned()),
        }
    }
}

impl Drop for UciEngine {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit").and_then(|()| self.stdin.flush());
        for _ in 0..20 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the engine of `config` and sets its strength: `Threads`, `Hash`,
/// `Skill Level`, `UCI_LimitStrength`/`UCI_Elo`; then `ucinewgame`.
pub fn start_configured(config: &UciConfig) -> Result<UciEngine, UciError> {
    let mut engine = UciEngine::start(&config.path, config.read_timeout)?;
    engine.set_option("Threads", &config.threads.to_string())?;
    engine.set_option("Hash", &config.hash_mb.to_string())?;
    if let Some(skill) = config.skill_level {
        engine.set_option("Skill Level", &skill.to_string())?;
    }
    if let Some(elo) = config.elo {
        engine.set_option("UCI_LimitStrength", "true")?;
        engine.set_option("UCI_Elo", &elo.to_string())?;
    }
    engine.new_game()?;
    Ok(engine)
}

/// A chess player backed by a UCI engine (see the module docs on strength
/// and reproducibility). It sends the game's start position and moves, so
/// the engine sees repetitions.
pub struct UciAgent {
    engine: UciEngine,
    config: UciConfig,
}

impl UciAgent {
    /// Starts the engine of `config`.
    pub fn new(config: UciConfig) -> Result<UciAgent, UciError> {
        Ok(UciAgent {
            engine: start_configured(&config)?,
            config,
        })
    }

    /// The config.
    pub fn config(&self) -> &UciConfig {
        &self.config
    }

    /// The engine.
    pub fn engine_mut(&mut self) -> &mut UciEngine {
        &mut self.engine
    }
}

#[cfg(feature = "chess")]
impl super::Agent<crate::chess::Chess> for UciAgent {
    fn name(&self) -> String {
        self.config.describe()
    }

    fn choose(
        &mut self,
        position: &crate::chess::Chess,
    ) -> Result<crate::chess::ChessMove, super::PlayerError> {
        use crate::game::Game;
        let name = self.config.describe();
        if position.outcome().is_some() {
            return Err(super::PlayerError::GameOver {
                player: name,
                position: position.position_string(),
            });
        }
        let moves: Vec<String> = position.moves().iter().map(ToString::to_string).collect();
        let engine_error = |source| super::PlayerError::Engine {
            player: self.config.describe(),
            source,
        };
        let answer = self
            .engine
            .best_move(&position.start_fen(), &moves, self.config.limit)
            .map_err(engine_error)?;
        let illegal = |mv: String| super::PlayerError::IllegalMove {
            player: self.config.describe(),
            mv,
            position: position.position_string(),
        };
        let Some(text) = answer else {
            return Err(illegal("(none)".to_owned()));
        };
        let mv = position
            .parse_uci(&text)
            .map_err(|_| illegal(text.clone()))?;
        if !position.legal_moves().contains(&mv) {
            return Err(illegal(text));
        }
        Ok(mv)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// Writes a fake engine: a shell script that speaks enough UCI and
    /// answers `go` with `on_go` (shell commands).
    fn fake_engine(dir: &Path, name: &str, on_go: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let script = format!(
            r#"#!/bin/sh
while read -r line; do
  case "$line" in
    uci) echo "id name FakeFish 1"
         echo "option name Threads type spin default 1 min 1 max 8"
         echo "option name Hash type spin default 16 min 1 max 64"
         echo "option name Skill Level type spin default 20 min 0 max 20"
         echo "option name UCI_LimitStrength type check default false"
         echo "option name UCI_Elo type spin default 1350 min 1350 max 2850"
         echo uciok ;;
    isready) echo readyok ;;
    go*) {on_go} ;;
    quit) exit 0 ;;
  esac
done
"#
        );
        let path = dir.join(name);
        std::fs::write(&path, script).expect("the script is written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod works");
        path
    }

    fn config(path: PathBuf) -> UciConfig {
        UciConfig {
            path,
            read_timeout: Duration::from_millis(1500),
            ..UciConfig::stockfish()
        }
    }

    #[test]
    fn a_missing_engine_says_what_to_do() {
        let error = UciEngine::start("/nonexistent/dir/stockfish", Duration::from_secs(1))
            .err()
            .expect("no such file");
        assert!(matches!(error, UciError::NotFound { .. }));
        let message = error.to_string();
        assert!(message.contains("apt-get install stockfish"), "{message}");
        assert!(message.contains("random, greedy"), "{message}");
        let bare = UciEngine::start("no-such-engine-kibitzer", Duration::from_secs(1))
            .err()
            .expect("not on the PATH");
        assert!(matches!(bare, UciError::NotFound { .. }), "{bare}");
    }

    #[test]
    fn an_engine_that_never_answers_times_out() {
        let dir = tempfile::tempdir().expect("a temp dir");
        // Reads everything, says nothing.
        let silent = fake_engine(dir.path(), "silent", "true");
        std::fs::write(&silent, "#!/bin/sh\nexec sleep 30\n").expect("written");
        let clock = std::time::Instant::now();
        let error = UciEngine::start(&silent, Duration::from_millis(300))
            .err()
            .expect("no uciok");
        assert!(clock.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(&error, UciError::Timeout { waiting_for, .. } if waiting_for == "uciok"),
            "{error}"
        );
        let hangs = fake_engine(dir.path(), "hangs", "exec sleep 30");
        let mut engine = start_configured(&config(hangs)).expect("the handshake works");
        let error = engine
            .best_move("8/8/8/8/8/8/8/K6k w - - 0 1", &[], SearchLimit::Nodes(10))
            .expect_err("no bestmove");
        assert!(
            matches!(&error, UciError::Timeout { waiting_for, .. } if waiting_for == "bestmove"),
            "{error}"
        );
    }

    #[test]
    fn an_engine_that_dies_is_reported_with_its_status() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let dies = fake_engine(dir.path(), "dies", "exit 3");
        let mut engine = start_configured(&config(dies)).expect("the handshake works");
        let error = engine
            .best_move(
                "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1",
                &[],
                SearchLimit::Nodes(10),
            )
            .expect_err("the engine exits");
        let message = error.to_string();
        assert!(matches!(error, UciError::Died { .. }), "{message}");
        assert!(message.contains("exit status: 3"), "{message}");
    }

    #[test]
    fn options_are_checked_against_what_the_engine_offers() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = fake_engine(dir.path(), "fake", "echo 'bestmove e2e4 ponder e7e5'");
        let mut engine =
            UciEngine::start(&path, Duration::from_secs(2)).expect("the handshake works");
        assert_eq!(engine.name(), "FakeFish 1");
        assert_eq!(
            engine.spin_option("uci_elo"),
            Some(&SpinOption {
                name: "UCI_Elo".into(),
                default: 1350,
                min: 1350,
                max: 2850
            })
        );
        let error = engine
            .set_option("Contempt", "10")
            .expect_err("not offered");
        assert!(error.to_string().contains("Skill Level"), "{error}");
        let error = engine
            .set_option("UCI_Elo", "1000")
            .expect_err("below the range");
        assert!(
            matches!(error, UciError::OptionOutOfRange { min: 1350, .. }),
            "{error}"
        );
        engine.set_option("Skill Level", "3").expect("in range");
        let answer = engine
            .best_move(
                "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1",
                &["e2e4".to_owned()],
                SearchLimit::MoveTimeMs(10),
            )
            .expect("an answer");
        assert_eq!(answer.as_deref(), Some("e2e4"));
    }

    #[test]
    fn info_scores_parse_with_their_bounds() {
        let parse = |line: &str| parse_info_score(line).expect("a valid line");
        assert_eq!(
            parse("info depth 10 seldepth 14 multipv 1 score cp 37 nodes 20012 nps 1000 pv e2e4"),
            Some((UciScore::Centipawns(37), ScoreBound::Exact, Some(10)))
        );
        assert_eq!(
            parse("info depth 7 score mate 3 nodes 900 pv h5f7"),
            Some((UciScore::Mate(3), ScoreBound::Exact, Some(7)))
        );
        assert_eq!(
            parse("info depth 9 score mate -2 pv a1a2"),
            Some((UciScore::Mate(-2), ScoreBound::Exact, Some(9)))
        );
        assert_eq!(
            parse("info depth 12 score cp -120 lowerbound nodes 5 pv d2d4"),
            Some((UciScore::Centipawns(-120), ScoreBound::Lower, Some(12)))
        );
        assert_eq!(
            parse("info score cp 15 upperbound"),
            Some((UciScore::Centipawns(15), ScoreBound::Upper, None))
        );
        assert_eq!(
            parse("info depth 5 score cp 15 wdl 80 900 20 upperbound nodes 77 pv e2e4"),
            Some((UciScore::Centipawns(15), ScoreBound::Upper, Some(5)))
        );
        assert_eq!(
            parse("info depth 5 score cp 15 wdl 80 900 20 nodes 77 pv e2e4"),
            Some((UciScore::Centipawns(15), ScoreBound::Exact, Some(5)))
        );
        assert_eq!(
            parse("info depth 0 score mate 0"),
            Some((UciScore::Mate(0), ScoreBound::Exact, Some(0)))
        );
        for no_score in [
            "info string NNUE evaluation using nn-5af11540bbfe.nnue score cp 3",
            "info depth 3 currmove e2e4 currmovenumber 1",
            "bestmove e2e4",
            "readyok",
            "",
        ] {
            assert_eq!(parse(no_score), None, "{no_score:?}");
        }
        for bad in [
            "info depth 3 score cp",
            "info depth 3 score cp high",
            "info depth 3 score wdl 500 300 200",
            "info depth 3 score mate 2.5",
        ] {
            assert!(parse_info_score(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn evaluate_takes_the_last_score_before_bestmove() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = fake_engine(
            dir.path(),
            "scores",
            "echo 'info string thinking score cp 999'; echo 'info depth 1 score cp 20'; echo 'info depth 2 score cp 31 lowerbound'; echo 'info depth 2 currmove e2e4'; echo 'bestmove e2e4 ponder e7e5'",
        );
        let mut engine = start_configured(&config(path)).expect("the handshake works");
        let start = "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1";
        let found = engine
            .evaluate(start, &[], SearchLimit::Nodes(10))
            .expect("a score");
        assert_eq!(
            found,
            EngineScore {
                score: UciScore::Centipawns(31),
                bound: ScoreBound::Lower,
                depth: Some(2),
                best_move: Some("e2e4".to_owned()),
            }
        );
        // The engine is idle again: the next search works.
        assert_eq!(
            engine
                .best_move(start, &[], SearchLimit::Nodes(10))
                .expect("a move")
                .as_deref(),
            Some("e2e4")
        );

        let silent = fake_engine(dir.path(), "no-score", "echo 'bestmove e2e4'");
        let mut engine = start_configured(&config(silent)).expect("the handshake works");
        let error = engine
            .evaluate(start, &[], SearchLimit::Nodes(10))
            .expect_err("no score");
        assert!(
            matches!(&error, UciError::Protocol { line, .. } if line == "bestmove e2e4"),
            "{error}"
        );
        assert!(error.to_string().contains("score cp"), "{error}");

        let garbled = fake_engine(
            dir.path(),
            "garbled",
            "echo 'info depth 1 score cp lots'; echo 'bestmove e2e4'",
        );
        let mut engine = start_configured(&config(garbled)).expect("the handshake works");
        let error = engine
            .evaluate(start, &[], SearchLimit::Nodes(10))
            .expect_err("a bad score");
        assert!(
            matches!(&error, UciError::Protocol { line, .. } if line == "info depth 1 score cp lots"),
            "{error}"
        );
        // It read on to bestmove: the engine answers the next search.
        let found = engine.best_move(start, &[], SearchLimit::Nodes(10));
        assert_eq!(found.expect("a move").as_deref(), Some("e2e4"));
    }

    #[cfg(feature = "chess")]
    #[test]
    fn the_agent_checks_the_engine_move() {
        use crate::chess::Chess;
        use crate::players::{Agent, PlayerError};
        let dir = tempfile::tempdir().expect("a temp dir");
        let good = fake_engine(dir.path(), "good", "echo 'bestmove g1f3'");
        let mut agent = UciAgent::new(UciConfig {
            skill_level: Some(5),
            elo: Some(1500),
            ..config(good)
        })
        .expect("the engine starts");
        let start = Chess::new();
        let mv = agent.choose(&start).expect("a move");
        assert_eq!(mv.to_string(), "g1f3");
        assert_eq!(agent.name(), "good skill=5 elo=1500 nodes=10000");
        let bad = fake_engine(dir.path(), "bad", "echo 'bestmove e2e5'");
        let mut agent = UciAgent::new(config(bad)).expect("the engine starts");
        let error = agent.choose(&start).expect_err("e2e5 is illegal");
        assert!(
            matches!(&error, PlayerError::IllegalMove { mv, .. } if mv == "e2e5"),
            "{error}"
        );
        let none = fake_engine(dir.path(), "none", "echo 'bestmove (none)'");
        let mut agent = UciAgent::new(config(none)).expect("the engine starts");
        assert!(agent.choose(&start).is_err());
    }
}
