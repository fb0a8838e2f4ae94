//! `kibitzer games ...`: perft, arena, datasets, play, over kibitzer-games.
//! Every command calls one function of [`games_support`](super::games_support)
//! (or of `kibitzer_games::files`) and prints its report.

use super::CliResult;
use super::games_support::{self as games_cli, GameSetup, with_threads};
use clap::{Args, Subcommand, ValueEnum};
use kibitzer_games::Player;
use kibitzer_games::arena::{ArenaConfig, ArenaReport};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum GamesCommand {
    /// Count move sequences of a given length (a pass counts as a move in
    /// Othello); prints the count and nodes per second.
    #[command(subcommand)]
    Perft(PerftCommand),
    /// Play a match between two players, colours alternating, on every
    /// core; prints wins, draws, losses, score and the Elo difference with
    /// its 95% interval.
    Arena(ArenaArgs),
    /// Write a dataset of games.
    #[command(subcommand)]
    Generate(GenerateCommand),
    /// Stream a PGN file (any size) into rated games (.jsonl or .pgn),
    /// keeping both players' Elo.
    #[cfg(feature = "chess")]
    ImportPgn(ImportPgnArgs),
    /// Replay every game of a file (Othello dataset, .pgn, .jsonl) and
    /// summarise it (JSON).
    Info(InfoArgs),
    /// Print one game of a file with its final board.
    Show(ShowArgs),
    /// Play a game in the terminal: you against a player (--human), or two
    /// players against each other.
    Play(PlayArgs),
    /// Say whether a UCI engine (Stockfish) is installed, and which.
    Engine,
}

/// The games.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum GameName {
    /// Othello (any even size from 4 to 8).
    Othello,
    /// Chess.
    Chess,
}

/// Which side the person plays.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Side {
    /// The side that moves first: Black in Othello, White in chess.
    First,
    /// The side that moves second: White in Othello, Black in chess.
    Second,
}

impl From<Side> for Player {
    fn from(side: Side) -> Player {
        match side {
            Side::First => Player::First,
            Side::Second => Player::Second,
        }
    }
}

/// The game to play; `--fen` is chess-only and refused for Othello rather
/// than silently ignored.
fn setup(game: GameName, size: usize, fen: Option<&str>) -> Result<GameSetup, String> {
    match game {
        GameName::Othello if fen.is_some() => Err(
            "--fen applies to chess only: Othello games always start from the standard position (drop --fen, or use --game chess)"
                .into(),
        ),
        GameName::Othello => Ok(GameSetup::Othello { size }),
        GameName::Chess => Ok(GameSetup::Chess {
            fen: fen.map(str::to_owned),
        }),
    }
}

const PLAYER_HELP: &str = "random | greedy | alphabeta:<depth> | mcts:<simulations>[,c=..,rollouts=..,batch=..] | solver (Othello) | alphazero[:<simulations>][,net=FILE] (Othello; default: the shipped 6x6 network) | stockfish[:skill=<0-20>,elo=<n>,nodes=<n>|movetime=<ms>|depth=<n>] | uci:<engine>[:<settings>] (chess)";

#[derive(Subcommand, Debug)]
pub enum PerftCommand {
    /// Othello from the start position.
    Othello(OthelloPerftArgs),
    /// Chess from the standard start or a FEN.
    #[cfg(feature = "chess")]
    Chess(ChessPerftArgs),
}

#[derive(Args, Debug)]
pub struct OthelloPerftArgs {
    /// Board side: 4, 6 or 8.
    #[arg(long, default_value_t = 8)]
    pub size: usize,
    /// Depth in plies.
    #[arg(long)]
    pub depth: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[cfg(feature = "chess")]
#[derive(Args, Debug)]
pub struct ChessPerftArgs {
    /// The position (the standard start when absent).
    #[arg(long)]
    pub fen: Option<String>,
    /// Depth in plies.
    #[arg(long)]
    pub depth: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ArenaArgs {
    /// The game.
    #[arg(long, value_enum)]
    pub game: GameName,
    /// Othello board side: 4, 6 or 8.
    #[arg(long, default_value_t = 8)]
    pub size: usize,
    /// Chess: the starting position (the standard start when absent).
    #[arg(long)]
    pub fen: Option<String>,
    /// Player A.
    #[arg(long, help = PLAYER_HELP)]
    pub a: String,
    /// Player B.
    #[arg(long, help = PLAYER_HELP)]
    pub b: String,
    /// Number of games (A has the first side in even games).
    #[arg(long, default_value_t = 100)]
    pub games: usize,
    /// Seed: the same seed gives the same games on any number of threads.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Uniformly random plies before the players take over (each opening
    /// is played once from each side).
    #[arg(long, default_value_t = 0)]
    pub openings: usize,
    /// Adjudicate a game still going after this many plies as a draw.
    #[arg(long)]
    pub max_plies: Option<usize>,
    /// Threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the whole report, every game included, as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum GenerateCommand {
    /// Othello games: random legal moves (the OthelloGPT synthetic set), or
    /// games between players (alpha-beta at several depths for a
    /// championship-like set).
    Othello(GenerateOthelloArgs),
    /// Chess games by self-play of players of known strength (Stockfish
    /// skill levels, or built-in players with an Elo you assign).
    #[cfg(feature = "chess")]
    Chess(GenerateChessArgs),
}

#[derive(Args, Debug)]
pub struct GenerateOthelloArgs {
    /// Output file (kibitzer's compact Othello game format).
    #[arg(long)]
    pub out: PathBuf,
    /// Board side: 4, 6 or 8.
    #[arg(long, default_value_t = 8)]
    pub size: usize,
    /// Number of games.
    #[arg(long, default_value_t = 100_000)]
    pub games: usize,
    /// Seed: the same seed gives the same games on any number of threads.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Who plays (repeat for several, e.g. --players alphabeta:1 --players
    /// alphabeta:4); every ordered pairing meets in turn. "random" alone is
    /// the fast synthetic set.
    #[arg(long, default_value = "random")]
    pub players: Vec<String>,
    /// Uniformly random plies before the players take over.
    #[arg(long, default_value_t = 0)]
    pub openings: usize,
    /// Threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[cfg(feature = "chess")]
#[derive(Args, Debug)]
pub struct GenerateChessArgs {
    /// Output file: .jsonl (moves in UCI, Elo per side) or .pgn.
    #[arg(long)]
    pub out: PathBuf,
    /// Who plays, each with an optional @<elo> to record (repeat), e.g.
    /// --players stockfish:skill=1,nodes=1000 --players stockfish:elo=1800
    /// or, without an engine, --players alphabeta:2@1000 --players random@400.
    #[arg(long, required = true)]
    pub players: Vec<String>,
    /// Number of games.
    #[arg(long, default_value_t = 100)]
    pub games: usize,
    /// Seed of our random choices (an engine's weakened levels add their own).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Uniformly random plies before the players take over.
    #[arg(long, default_value_t = 4)]
    pub openings: usize,
    /// A game still going after this many plies is recorded unfinished.
    #[arg(long, default_value_t = 400)]
    pub max_plies: usize,
    /// Threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Continue an interrupted run (.jsonl only): keep the complete games
    /// already in --out and play the rest. The settings must match the run
    /// file <out>.run.json, but --games may grow. Without --resume an
    /// existing --out is overwritten.
    #[arg(long)]
    pub resume: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[cfg(feature = "chess")]
#[derive(Args, Debug)]
pub struct ImportPgnArgs {
    /// The PGN file.
    pub pgn: PathBuf,
    /// Output file: .jsonl or .pgn.
    #[arg(long)]
    pub out: PathBuf,
    /// Skip games with errors and report how many (default: stop at the
    /// first, naming file, line, game and move).
    #[arg(long)]
    pub skip_invalid: bool,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// A game file: an Othello dataset, .pgn or .jsonl.
    pub file: PathBuf,
    /// PGN: skip games with errors and count them.
    #[arg(long)]
    pub skip_invalid: bool,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// A game file: an Othello dataset, .pgn or .jsonl.
    pub file: PathBuf,
    /// Game number (from 0).
    #[arg(long, default_value_t = 0)]
    pub game: usize,
}

#[derive(Args, Debug)]
pub struct PlayArgs {
    /// The game.
    #[arg(value_enum)]
    pub game: GameName,
    /// Othello board side: 4, 6 or 8.
    #[arg(long, default_value_t = 8)]
    pub size: usize,
    /// Chess: the starting position (the standard start when absent).
    #[arg(long)]
    pub fen: Option<String>,
    /// You play, typing moves on standard input (Othello: squares like c4;
    /// chess: e2e4 or Nf3; "moves" lists the legal ones, "quit" resigns).
    #[arg(long)]
    pub human: bool,
    /// Your opponent (with --human). "auto": the shipped AlphaZero network
    /// on 6x6 Othello, mcts:200 otherwise.
    #[arg(long, default_value = "auto", help = PLAYER_HELP)]
    pub opponent: String,
    /// Your side (with --human): first is Black in Othello, White in chess.
    #[arg(long, value_enum, default_value_t = Side::First)]
    pub side: Side,
    /// Without --human: the player of the first side. "auto": the shipped
    /// AlphaZero network on 6x6 Othello, mcts:200 otherwise.
    #[arg(long, default_value = "auto", help = PLAYER_HELP)]
    pub a: String,
    /// Without --human: the player of the second side. "auto": the shipped
    /// AlphaZero network on 6x6 Othello, random otherwise.
    #[arg(long, default_value = "auto", help = PLAYER_HELP)]
    pub b: String,
    /// Without --human: play this many games (colours alternating, random
    /// openings of --openings plies) and print the match report instead of
    /// one game's moves.
    #[arg(long)]
    pub games: Option<usize>,
    /// With --games: random plies opening each pair of games.
    #[arg(long, default_value_t = 4)]
    pub openings: usize,
    /// Seed of the players' random choices.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Without --human: stop after this many plies.
    #[arg(long)]
    pub max_plies: Option<usize>,
    /// Print the game record as JSON at the end.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `games` command. The crate's error messages already carry their
/// causes ("game 3, ply 12: player stockfish: no UCI engine at ..."), so
/// the error is passed on as one message rather than a chain that would
/// print each cause twice.
pub fn run(cmd: GamesCommand) -> CliResult {
    run_command(cmd).map_err(|error| error.to_string().into())
}

fn run_command(cmd: GamesCommand) -> CliResult {
    match cmd {
        GamesCommand::Perft(PerftCommand::Othello(a)) => {
            let r = games_cli::othello_perft(a.size, a.depth)?;
            if a.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "othello {0}x{0} perft({1}) = {2}  ({3:.0} nodes/s, {4:.3} s)",
                    r.size, r.depth, r.count, r.nodes_per_s, r.elapsed_s
                );
            }
        }
        #[cfg(feature = "chess")]
        GamesCommand::Perft(PerftCommand::Chess(a)) => {
            let r = games_cli::chess_perft(a.fen.as_deref(), a.depth)?;
            if a.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "chess perft({}) = {}  ({:.0} nodes/s, {:.3} s)\nposition: {}",
                    r.depth, r.count, r.nodes_per_s, r.elapsed_s, r.fen
                );
            }
        }
        GamesCommand::Arena(a) => {
            let config = ArenaConfig {
                random_opening_plies: a.openings,
                max_plies: a.max_plies,
                ..ArenaConfig::new(a.games, a.seed)
            };
            let game = setup(a.game, a.size, a.fen.as_deref())?;
            let report = with_threads(a.threads, || arena(&game, a.size, &a.a, &a.b, &config))??;
            print_arena(&report, a.json);
        }
        GamesCommand::Generate(GenerateCommand::Othello(a)) => {
            let r = with_threads(a.threads, || {
                games_cli::generate_othello(&a.out, a.size, a.games, a.seed, &a.players, a.openings)
            })??;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        #[cfg(feature = "chess")]
        GamesCommand::Generate(GenerateCommand::Chess(a)) => {
            let config = kibitzer_games::players::selfplay::SelfPlayConfig {
                games: a.games,
                seed: a.seed,
                random_opening_plies: a.openings,
                max_plies: a.max_plies,
            };
            let options = kibitzer_games::players::selfplay::SelfPlayOptions {
                resume: a.resume,
                progress: !a.quiet,
            };
            let r = with_threads(a.threads, || {
                games_cli::generate_chess_self_play(&a.out, &a.players, &config, &options)
            })??;
            if a.resume {
                eprintln!(
                    "{}: {} games resumed, {} played, {} in all",
                    a.out.display(),
                    r.report.resumed,
                    r.report.played,
                    r.report.games
                );
            }
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        #[cfg(feature = "chess")]
        GamesCommand::ImportPgn(a) => {
            let r = games_cli::import_pgn(&a.pgn, &a.out, a.skip_invalid)?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        GamesCommand::Info(a) => {
            let r = games_cli::file_info(&a.file, a.skip_invalid)?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        GamesCommand::Show(a) => {
            print!("{}", games_cli::show_game(&a.file, a.game)?);
        }
        GamesCommand::Play(a) => play(&a)?,
        GamesCommand::Engine => {
            let status = games_cli::engine_status();
            println!("{}", serde_json::to_string_pretty(&status)?);
        }
    }
    Ok(())
}

/// Resolves "auto" players: the shipped network where it plays (6x6
/// Othello), `otherwise` elsewhere.
fn resolve<'a>(spec: &'a str, game: &GameSetup, otherwise: &'a str) -> &'a str {
    match (spec, game) {
        ("auto", GameSetup::Othello { size: 6 }) => "alphazero",
        ("auto", _) => otherwise,
        (spec, _) => spec,
    }
}

/// Whether any of `specs` is a network player, which only Othello has.
fn net_players(game: &GameSetup, specs: &[&str]) -> Result<bool, Box<dyn std::error::Error>> {
    let any = specs.iter().any(|s| kibitzer::alphazero::is_net_player(s));
    if any && !matches!(game, GameSetup::Othello { .. }) {
        return Err("alphazero players play Othello only".into());
    }
    Ok(any)
}

/// A match between two players of `game`: through kibitzer-games, or with
/// the network players of [`kibitzer::alphazero`] when either is one. The
/// error is its message, which [`run`] prints as it is anyway (and which
/// crosses the arena's thread pool).
fn arena(
    game: &GameSetup,
    size: usize,
    first: &str,
    second: &str,
    config: &ArenaConfig,
) -> Result<ArenaReport, String> {
    if net_players(game, &[first, second]).map_err(|e| e.to_string())? {
        let device = kibitzer_sae::DeviceChoice::Cpu
            .device()
            .map_err(|e| e.to_string())?;
        kibitzer::alphazero::othello_arena(size, first, second, config, &device)
            .map_err(|e| e.to_string())
    } else {
        games_cli::arena(game, first, second, config).map_err(|e| e.to_string())
    }
}

fn print_arena(report: &ArenaReport, json: bool) {
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_markdown());
    }
}

fn play(a: &PlayArgs) -> CliResult {
    let game = setup(a.game, a.size, a.fen.as_deref())?;
    if a.human {
        let opponent = resolve(&a.opponent, &game, "mcts:200");
        let stdin = std::io::stdin();
        let r = if net_players(&game, &[opponent])? {
            let device = kibitzer_sae::DeviceChoice::Cpu.device()?;
            let mut agent = kibitzer::alphazero::othello_agent(opponent, a.size, a.seed, &device)?;
            let start = kibitzer_games::othello::Othello::new(a.size)?;
            kibitzer_games::players::play_human(
                start,
                &mut *agent,
                a.side.into(),
                stdin.lock(),
                std::io::stdout(),
            )?
        } else {
            games_cli::play_human_game(
                &game,
                opponent,
                a.side.into(),
                a.seed,
                stdin.lock(),
                std::io::stdout(),
            )?
        };
        if a.json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        return Ok(());
    }
    let (first, second) = (
        resolve(&a.a, &game, "mcts:200"),
        resolve(&a.b, &game, "random"),
    );
    if let Some(games) = a.games {
        let config = ArenaConfig {
            random_opening_plies: a.openings,
            max_plies: a.max_plies,
            ..ArenaConfig::new(games, a.seed)
        };
        print_arena(&arena(&game, a.size, first, second, &config)?, a.json);
        return Ok(());
    }
    let r = if net_players(&game, &[first, second])? {
        use rand::{RngExt, SeedableRng};
        let device = kibitzer_sae::DeviceChoice::Cpu.device()?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
        let mut one = kibitzer::alphazero::othello_agent(first, a.size, rng.random(), &device)?;
        let mut two = kibitzer::alphazero::othello_agent(second, a.size, rng.random(), &device)?;
        games_cli::watch_agents(
            kibitzer_games::othello::Othello::new(a.size)?,
            &mut *one,
            &mut *two,
            a.max_plies,
            std::io::stdout(),
        )?
    } else {
        games_cli::play_agents_game(&game, first, second, a.seed, a.max_plies, std::io::stdout())?
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    }
    Ok(())
}
