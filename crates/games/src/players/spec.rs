//! Players named by text, for the command line: `random`, `greedy`,
//! `alphabeta:4`, `mcts:200`, `solver`, `stockfish:skill=3,nodes=1000`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::uci::{SearchLimit, UciConfig, UciError, default_engine_path, find_engine};
use super::{Agent, AlphaBetaAgent, GreedyAgent, Heuristic, MctsAgent, RandomAgent};
use crate::mcts::{MctsConfig, MctsConfigError, RolloutEvaluator};

/// Every form [`PlayerSpec`] reads, for error messages and `--help`.
pub const PLAYER_SPEC_FORMS: &str = "random | greedy | alphabeta:<depth 1-12> | mcts:<simulations>[,c=<c_puct>][,rollouts=<n>][,batch=<n>] | solver (Othello) | stockfish[:skill=<0-20>][,elo=<n>][,nodes=<n>|movetime=<ms>|depth=<n>][,threads=<n>][,hash=<MiB>][,path=<binary>] (chess) | uci:<engine name or path>[:<same settings as stockfish>] (chess)";

/// A player described by text. Serde writes it as that text (`"mcts:200"`),
/// the form users type.
#[derive(Clone, Debug, PartialEq)]
pub enum PlayerSpec {
    /// `random`: a uniformly random legal move.
    Random,
    /// `greedy`: the best move by the game's greedy score.
    Greedy,
    /// `alphabeta:<depth>`.
    AlphaBeta {
        /// Plies searched.
        depth: u32,
    },
    /// `mcts:<simulations>[,c=..][,rollouts=..][,batch=..]`, with random
    /// rollouts as the evaluator.
    Mcts {
        /// Simulations per move.
        simulations: u32,
        /// PUCT constant.
        c_puct: f32,
        /// Random games per evaluated leaf.
        rollouts: u32,
        /// Leaves per evaluator call.
        batch: usize,
    },
    /// `solver`: Othello's exact endgame solver (alpha-beta at depth 4 until
    /// 12 squares are empty).
    Solver,
    /// `stockfish[:...]` or `uci:<engine>[:...]`: an external UCI engine
    /// (Stockfish unless the spec names another).
    Stockfish(StockfishSpec),
}

/// The engine settings of a `stockfish:` spec.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StockfishSpec {
    /// `skill=`: Stockfish's Skill Level, 0-20.
    pub skill: Option<u32>,
    /// `elo=`: UCI_LimitStrength with this UCI_Elo.
    pub elo: Option<u32>,
    /// `nodes=`, `movetime=` or `depth=` (default 10,000 nodes).
    pub limit: SearchLimit,
    /// `threads=` (default 1).
    pub threads: u32,
    /// `hash=` in MiB (default 16).
    pub hash_mb: u32,
    /// `path=`, or the engine of `uci:<engine>`: a path, or a name looked up
    /// by [`find_engine`] (default: Stockfish at [`default_engine_path`]).
    pub path: Option<PathBuf>,
}

impl Default for StockfishSpec {
    fn default() -> StockfishSpec {
        StockfishSpec {
            skill: None,
            elo: None,
            limit: SearchLimit::Nodes(10_000),
            threads: 1,
            hash_mb: 16,
            path: None,
        }
    }
}

impl StockfishSpec {
    /// The engine config, with the engine found where the spec gives no path.
    pub fn to_config(&self) -> UciConfig {
        UciConfig {
            // A name that is found nowhere stays as given, so the start-up
            // error names what the user asked for.
            path: match &self.path {
                Some(path) => find_engine(path).unwrap_or_else(|| path.clone()),
                None => default_engine_path().unwrap_or_else(|| PathBuf::from("stockfish")),
            },
            skill_level: self.skill,
            elo: self.elo,
            limit: self.limit,
            threads: self.threads,
            hash_mb: self.hash_mb,
            read_timeout: Duration::from_secs(10),
        }
    }
}

/// A player spec that cannot be read or built.
#[derive(Debug, thiserror::Error)]
pub enum PlayerSpecError {
    /// The name is none of the known players.
    #[error("unknown player {text:?}: expected one of: {PLAYER_SPEC_FORMS}")]
    UnknownName {
        /// The text given.
        text: String,
    },
    /// A parameter is missing, unknown or out of range.
    #[error("player {spec:?}: {problem}; expected {expected}")]
    BadParameter {
        /// The whole spec.
        spec: String,
        /// What is wrong.
        problem: String,
        /// The valid form.
        expected: &'static str,
    },
    /// The player does not play this game.
    #[error("player {spec} does not play {game}; players for {game}: {valid}")]
    Unsupported {
        /// The spec.
        spec: String,
        /// The game.
        game: &'static str,
        /// The players that do.
        valid: &'static str,
    },
    /// The MCTS settings are invalid.
    #[error(transparent)]
    Mcts(#[from] MctsConfigError),
    /// The engine could not be started.
    #[error("player {spec}: {source}")]
    Engine {
        /// The spec.
        spec: String,
        /// Why.
        #[source]
        source: UciError,
    },
}

fn bad(spec: &str, problem: impl Into<String>, expected: &'static str) -> PlayerSpecError {
    PlayerSpecError::BadParameter {
        spec: spec.to_owned(),
        problem: problem.into(),
        expected,
    }
}

fn parse_number<T: FromStr>(
    spec: &str,
    key: &str,
    value: &str,
    expected: &'static str,
) -> Result<T, PlayerSpecError> {
    value
        .parse()
        .map_err(|_| bad(spec, format!("{key} = {value:?} is not a number"), expected))
}

/// The form of engine specs, for messages.
const ENGINE_FORM: &str = "stockfish[:<params>] or uci:<engine name or path>[:<params>], params: skill=<0-20>, elo=<n>, one of nodes=<n>|movetime=<ms>|depth=<n>, threads=<n>, hash=<MiB>, path=<binary>";

/// The comma-separated `key=value` settings of an engine spec.
fn parse_engine_params(
    spec_text: &str,
    params: Option<&str>,
) -> Result<StockfishSpec, PlayerSpecError> {
    let mut spec = StockfishSpec::default();
    let mut limits = 0;
    for part in params
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (key, value) = part
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .ok_or_else(|| bad(spec_text, format!("{part:?} is not key=value"), ENGINE_FORM))?;
        match key {
            "skill" => {
                let skill: u32 = parse_number(spec_text, key, value, ENGINE_FORM)?;
                if skill > 20 {
                    return Err(bad(
                        spec_text,
                        format!("skill {skill} above 20"),
                        ENGINE_FORM,
                    ));
                }
                spec.skill = Some(skill);
            }
            "elo" => spec.elo = Some(parse_number(spec_text, key, value, ENGINE_FORM)?),
            "nodes" => {
                spec.limit = SearchLimit::Nodes(parse_number(spec_text, key, value, ENGINE_FORM)?);
                limits += 1;
            }
            "movetime" => {
                spec.limit =
                    SearchLimit::MoveTimeMs(parse_number(spec_text, key, value, ENGINE_FORM)?);
                limits += 1;
            }
            "depth" => {
                spec.limit = SearchLimit::Depth(parse_number(spec_text, key, value, ENGINE_FORM)?);
                limits += 1;
            }
            "threads" => spec.threads = parse_number(spec_text, key, value, ENGINE_FORM)?,
            "hash" => spec.hash_mb = parse_number(spec_text, key, value, ENGINE_FORM)?,
            "path" => spec.path = Some(PathBuf::from(value)),
            other => {
                return Err(bad(
                    spec_text,
                    format!("unknown parameter {other:?}"),
                    ENGINE_FORM,
                ));
            }
        }
    }
    if limits > 1 {
        return Err(bad(
            spec_text,
            "more than one of nodes, movetime, depth",
            ENGINE_FORM,
        ));
    }
    Ok(spec)
}

impl FromStr for PlayerSpec {
    type Err = PlayerSpecError;

    fn from_str(text: &str) -> Result<PlayerSpec, PlayerSpecError> {
        let trimmed = text.trim();
        let (name, params) = match trimmed.split_once(':') {
            Some((name, params)) => (name.trim().to_ascii_lowercase(), Some(params.trim())),
            None => (trimmed.to_ascii_lowercase(), None),
        };
        let no_params = |spec: PlayerSpec, form: &'static str| match params {
            None => Ok(spec),
            Some(params) => Err(bad(
                trimmed,
                format!("unexpected parameters {params:?}"),
                form,
            )),
        };
        match name.as_str() {
            "random" => no_params(PlayerSpec::Random, "random"),
            "greedy" => no_params(PlayerSpec::Greedy, "greedy"),
            "solver" => no_params(PlayerSpec::Solver, "solver"),
            "alphabeta" | "ab" => {
                const FORM: &str = "alphabeta:<depth 1-12>";
                let depth = params.ok_or_else(|| bad(trimmed, "missing depth", FORM))?;
                let depth: u32 = parse_number(trimmed, "depth", depth, FORM)?;
                if !(1..=12).contains(&depth) {
                    return Err(bad(trimmed, format!("depth {depth} out of range"), FORM));
                }
                Ok(PlayerSpec::AlphaBeta { depth })
            }
            "mcts" => {
                const FORM: &str = "mcts:<simulations>[,c=<c_puct>][,rollouts=<n>][,batch=<n>]";
                let params =
                    params.ok_or_else(|| bad(trimmed, "missing simulation count", FORM))?;
                let mut parts = params.split(',').map(str::trim);
                let simulations = parts.next().unwrap_or_default();
                let simulations: u32 = parse_number(trimmed, "simulations", simulations, FORM)?;
                if simulations == 0 {
                    return Err(bad(trimmed, "0 simulations", FORM));
                }
                let defaults = MctsConfig::default();
                let mut spec = PlayerSpec::Mcts {
                    simulations,
                    c_puct: defaults.c_puct,
                    rollouts: 1,
                    batch: 1,
                };
                let PlayerSpec::Mcts {
                    c_puct,
                    rollouts,
                    batch,
                    ..
                } = &mut spec
                else {
                    unreachable!("spec was built as Mcts just above")
                };
                for part in parts {
                    let (key, value) = part
                        .split_once('=')
                        .ok_or_else(|| bad(trimmed, format!("{part:?} is not key=value"), FORM))?;
                    match key.trim() {
                        "c" | "c_puct" => *c_puct = parse_number(trimmed, key, value.trim(), FORM)?,
                        "rollouts" => *rollouts = parse_number(trimmed, key, value.trim(), FORM)?,
                        "batch" => *batch = parse_number(trimmed, key, value.trim(), FORM)?,
                        other => {
                            return Err(bad(trimmed, format!("unknown parameter {other:?}"), FORM));
                        }
                    }
                }
                if *rollouts == 0 || *batch == 0 || !(c_puct.is_finite() && *c_puct >= 0.0) {
                    return Err(bad(
                        trimmed,
                        "rollouts and batch must be >= 1, c >= 0",
                        FORM,
                    ));
                }
                Ok(spec)
            }
            "stockfish" => Ok(PlayerSpec::Stockfish(parse_engine_params(trimmed, params)?)),
            "uci" => {
                // `uci:<engine>[:<params>]`: the engine is a name looked up
                // like Stockfish (`stockfish`) or a path.
                let params = params.ok_or_else(|| bad(trimmed, "missing engine", ENGINE_FORM))?;
                let (engine, rest) = match params.split_once(':') {
                    Some((engine, rest)) => (engine.trim(), Some(rest)),
                    None => (params.trim(), None),
                };
                if engine.is_empty() {
                    return Err(bad(trimmed, "missing engine", ENGINE_FORM));
                }
                let mut spec = parse_engine_params(trimmed, rest)?;
                if spec.path.is_some() {
                    return Err(bad(
                        trimmed,
                        "the engine is named twice (uci:<engine> and path=)",
                        ENGINE_FORM,
                    ));
                }
                if engine != "stockfish" {
                    spec.path = Some(PathBuf::from(engine));
                }
                Ok(PlayerSpec::Stockfish(spec))
            }
            _ => Err(PlayerSpecError::UnknownName {
                text: trimmed.to_owned(),
            }),
        }
    }
}

impl fmt::Display for PlayerSpec {
    /// The canonical text, which parses back to the same spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlayerSpec::Random => write!(f, "random"),
            PlayerSpec::Greedy => write!(f, "greedy"),
            PlayerSpec::Solver => write!(f, "solver"),
            PlayerSpec::AlphaBeta { depth } => write!(f, "alphabeta:{depth}"),
            PlayerSpec::Mcts {
                simulations,
                c_puct,
                rollouts,
                batch,
            } => {
                write!(f, "mcts:{simulations}")?;
                if *c_puct != MctsConfig::default().c_puct {
                    write!(f, ",c={c_puct}")?;
                }
                if *rollouts != 1 {
                    write!(f, ",rollouts={rollouts}")?;
                }
                if *batch != 1 {
                    write!(f, ",batch={batch}")?;
                }
                Ok(())
            }
            PlayerSpec::Stockfish(spec) => {
                let mut parts = Vec::new();
                if let Some(skill) = spec.skill {
                    parts.push(format!("skill={skill}"));
                }
                if let Some(elo) = spec.elo {
                    parts.push(format!("elo={elo}"));
                }
                parts.push(match spec.limit {
                    SearchLimit::Nodes(nodes) => format!("nodes={nodes}"),
                    SearchLimit::MoveTimeMs(ms) => format!("movetime={ms}"),
                    SearchLimit::Depth(depth) => format!("depth={depth}"),
                });
                if spec.threads != 1 {
                    parts.push(format!("threads={}", spec.threads));
                }
                if spec.hash_mb != 16 {
                    parts.push(format!("hash={}", spec.hash_mb));
                }
                match &spec.path {
                    Some(path) => write!(f, "uci:{}:{}", path.display(), parts.join(",")),
                    None => write!(f, "stockfish:{}", parts.join(",")),
                }
            }
        }
    }
}

impl serde::Serialize for PlayerSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PlayerSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PlayerSpec, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A game whose players [`PlayerSpec`] can build.
pub trait AgentGame: Heuristic {
    /// The game's name in messages.
    const NAME: &'static str;
    /// The specs that work for this game, for messages.
    const VALID_PLAYERS: &'static str;

    /// A fresh agent for `spec`, seeded with `seed`.
    fn build_agent(spec: &PlayerSpec, seed: u64) -> Result<Box<dyn Agent<Self>>, PlayerSpecError>;
}

/// The agents every [`Heuristic`] game has; `None` for the game-specific
/// ones (`solver`, `stockfish`).
fn common_agent<G: Heuristic>(
    spec: &PlayerSpec,
    seed: u64,
) -> Result<Option<Box<dyn Agent<G>>>, PlayerSpecError> {
    Ok(Some(match spec {
        PlayerSpec::Random => Box::new(RandomAgent::new(seed)),
        PlayerSpec::Greedy => Box::new(GreedyAgent::new(seed)),
        PlayerSpec::AlphaBeta { depth } => Box::new(AlphaBetaAgent::new(*depth, seed)),
        PlayerSpec::Mcts {
            simulations,
            c_puct,
            rollouts,
            batch,
        } => {
            let config = MctsConfig {
                simulations: *simulations,
                c_puct: *c_puct,
                leaf_batch_size: *batch,
                ..MctsConfig::default()
            };
            let evaluator = RolloutEvaluator::new(*rollouts, RolloutEvaluator::default().max_plies);
            Box::new(MctsAgent::new(config, evaluator, seed)?.with_name(spec.to_string()))
        }
        PlayerSpec::Solver | PlayerSpec::Stockfish(_) => return Ok(None),
    }))
}

fn unsupported<G: AgentGame>(spec: &PlayerSpec) -> PlayerSpecError {
    PlayerSpecError::Unsupported {
        spec: spec.to_string(),
        game: G::NAME,
        valid: G::VALID_PLAYERS,
    }
}

impl AgentGame for crate::othello::Othello {
    const NAME: &'static str = "Othello";
    const VALID_PLAYERS: &'static str =
        "random, greedy, alphabeta:<depth>, mcts:<simulations>, solver";

    fn build_agent(spec: &PlayerSpec, seed: u64) -> Result<Box<dyn Agent<Self>>, PlayerSpecError> {
        if let Some(agent) = common_agent(spec, seed)? {
            return Ok(agent);
        }
        match spec {
            PlayerSpec::Solver => Ok(Box::new(super::SolverAgent::new(seed))),
            _ => Err(unsupported::<Self>(spec)),
        }
    }
}

#[cfg(feature = "chess")]
impl AgentGame for crate::chess::Chess {
    const NAME: &'static str = "chess";
    const VALID_PLAYERS: &'static str = "random, greedy, alphabeta:<depth>, mcts:<simulations>, stockfish[:skill=..,elo=..,nodes=..|movetime=..|depth=..], uci:<engine>[:<settings>]";

    /// Engine players start their engine here; a missing engine gives
    /// [`PlayerSpecError::Engine`] whose message names the built-in players.
    fn build_agent(spec: &PlayerSpec, seed: u64) -> Result<Box<dyn Agent<Self>>, PlayerSpecError> {
        if let Some(agent) = common_agent(spec, seed)? {
            return Ok(agent);
        }
        match spec {
            PlayerSpec::Stockfish(settings) => super::UciAgent::new(settings.to_config())
                .map(|agent| Box::new(agent) as Box<dyn Agent<Self>>)
                .map_err(|source| PlayerSpecError::Engine {
                    spec: spec.to_string(),
                    source,
                }),
            _ => Err(unsupported::<Self>(spec)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::Game;
    use crate::othello::Othello;

    #[test]
    fn specs_parse_and_print_back() {
        let cases = [
            ("random", PlayerSpec::Random),
            (" Greedy ", PlayerSpec::Greedy),
            ("alphabeta:4", PlayerSpec::AlphaBeta { depth: 4 }),
            ("solver", PlayerSpec::Solver),
            (
                "mcts:200",
                PlayerSpec::Mcts {
                    simulations: 200,
                    c_puct: 1.5,
                    rollouts: 1,
                    batch: 1,
                },
            ),
            (
                "mcts:50,c=2,rollouts=3,batch=4",
                PlayerSpec::Mcts {
                    simulations: 50,
                    c_puct: 2.0,
                    rollouts: 3,
                    batch: 4,
                },
            ),
            (
                "stockfish:skill=3",
                PlayerSpec::Stockfish(StockfishSpec {
                    skill: Some(3),
                    ..StockfishSpec::default()
                }),
            ),
            (
                "stockfish:elo=1500,movetime=50,path=/opt/sf",
                PlayerSpec::Stockfish(StockfishSpec {
                    elo: Some(1500),
                    limit: SearchLimit::MoveTimeMs(50),
                    path: Some(PathBuf::from("/opt/sf")),
                    ..StockfishSpec::default()
                }),
            ),
            ("stockfish", PlayerSpec::Stockfish(StockfishSpec::default())),
            (
                "uci:stockfish",
                PlayerSpec::Stockfish(StockfishSpec::default()),
            ),
            (
                "uci:stockfish:skill=3",
                PlayerSpec::Stockfish(StockfishSpec {
                    skill: Some(3),
                    ..StockfishSpec::default()
                }),
            ),
            (
                "uci:/opt/engines/lc0:nodes=50,threads=2",
                PlayerSpec::Stockfish(StockfishSpec {
                    limit: SearchLimit::Nodes(50),
                    threads: 2,
                    path: Some(PathBuf::from("/opt/engines/lc0")),
                    ..StockfishSpec::default()
                }),
            ),
        ];
        for (text, expected) in cases {
            let spec: PlayerSpec = text.parse().expect("a valid spec");
            assert_eq!(spec, expected, "{text}");
            let again: PlayerSpec = spec.to_string().parse().expect("Display parses back");
            assert_eq!(again, spec);
            let json = serde_json::to_string(&spec).expect("serialises");
            assert_eq!(json, format!("{:?}", spec.to_string()));
            assert_eq!(
                serde_json::from_str::<PlayerSpec>(&json).expect("deserialises"),
                spec
            );
        }
    }

    #[test]
    fn bad_specs_say_what_is_valid() {
        let error = "minimax:3".parse::<PlayerSpec>().expect_err("unknown name");
        let message = error.to_string();
        for name in [
            "random",
            "greedy",
            "alphabeta",
            "mcts",
            "solver",
            "stockfish",
        ] {
            assert!(message.contains(name), "{message}");
        }
        for (text, fragment) in [
            ("alphabeta", "missing depth"),
            ("alphabeta:x", "not a number"),
            ("alphabeta:40", "out of range"),
            ("mcts:0", "0 simulations"),
            ("mcts:10,temp=1", "unknown parameter"),
            ("random:3", "unexpected parameters"),
            ("stockfish:skill=25", "above 20"),
            ("stockfish:nodes=10,depth=3", "more than one"),
            ("stockfish:speed", "not key=value"),
            ("uci", "missing engine"),
            ("uci::skill=3", "missing engine"),
            ("uci:sf:path=/x", "named twice"),
            ("uci:stockfish:skill=21", "above 20"),
        ] {
            let message = text.parse::<PlayerSpec>().expect_err(text).to_string();
            assert!(message.contains(fragment), "{text}: {message}");
            assert!(message.contains(text.trim()), "{text}: {message}");
        }
    }

    #[test]
    fn othello_builds_its_players_and_refuses_the_engine() {
        let position = Othello::new(6).expect("6x6 is supported");
        for text in ["random", "greedy", "alphabeta:2", "mcts:20", "solver"] {
            let spec: PlayerSpec = text.parse().expect("valid");
            let mut agent = Othello::build_agent(&spec, 3).expect("Othello has this player");
            assert_eq!(agent.name(), text);
            let mv = agent.choose(&position).expect("a move");
            assert!(position.legal_moves().contains(&mv));
        }
        let spec: PlayerSpec = "stockfish".parse().expect("valid");
        let message = Othello::build_agent(&spec, 0)
            .err()
            .expect("no engine for Othello")
            .to_string();
        assert!(
            message.contains("does not play Othello") && message.contains("solver"),
            "{message}"
        );
    }

    #[test]
    fn engine_names_are_looked_up_and_missing_ones_kept_for_the_error() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let engine = dir.path().join("fake-engine");
        std::fs::write(&engine, "").expect("written");
        let spec: PlayerSpec = format!("uci:{}:nodes=5", engine.display())
            .parse()
            .expect("valid");
        let PlayerSpec::Stockfish(settings) = &spec else {
            panic!("uci specs are engine specs: {spec:?}")
        };
        assert_eq!(settings.to_config().path, engine);
        assert_eq!(settings.to_config().limit, SearchLimit::Nodes(5));
        assert_eq!(
            spec.to_string(),
            format!("uci:{}:nodes=5", engine.display())
        );
        let missing: PlayerSpec = "uci:no-such-engine-kibitzer".parse().expect("valid");
        let PlayerSpec::Stockfish(settings) = &missing else {
            panic!("uci specs are engine specs: {missing:?}")
        };
        assert_eq!(
            settings.to_config().path,
            PathBuf::from("no-such-engine-kibitzer")
        );
        assert_eq!(
            find_engine(std::path::Path::new("no-such-engine-kibitzer")),
            None
        );
        assert_eq!(find_engine(&engine), Some(engine.clone()));
        assert_eq!(find_engine(&dir.path().join("absent")), None);
    }
}
