//! Stockfish through UCI. Install it with `apt-get install stockfish`
//! (Debian: /usr/games/stockfish) or point `KIBITZER_STOCKFISH` at a
//! binary. Without one, every test prints a note and passes, unless
//! `KIBITZER_REQUIRE_TOOLS` is set (CI sets it), which makes it a failure.
#![cfg(feature = "chess")]

#[path = "../../../testing/tools.rs"]
mod tools;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kibitzer_games::arena::{ArenaConfig, run_arena_by_names};
use kibitzer_games::chess::Chess;
use kibitzer_games::chess::rated::RatedJsonlReader;
use kibitzer_games::game::{Game, Outcome};
use kibitzer_games::players::selfplay::{
    RatedPlayer, SelfPlayConfig, SelfPlayOptions, write_rated_self_play,
};
use kibitzer_games::players::uci::start_configured;
use kibitzer_games::players::{Agent, SearchLimit, UciAgent, UciConfig, UciError, find_engine};

/// Stockfish: `$KIBITZER_STOCKFISH` or `stockfish` as
/// [`default_engine_path`](kibitzer_games::players::default_engine_path)
/// looks for it, but only where that file exists.
fn engine() -> Option<PathBuf> {
    let (found, what) = match std::env::var_os("KIBITZER_STOCKFISH") {
        Some(path) => (
            find_engine(Path::new(&path)),
            format!("Stockfish at KIBITZER_STOCKFISH={}", path.to_string_lossy()),
        ),
        None => (
            find_engine(Path::new("stockfish")),
            "Stockfish (`stockfish` on PATH or in /usr/games)".to_owned(),
        ),
    };
    tools::require(
        found,
        &what,
        "apt-get install stockfish, or set KIBITZER_STOCKFISH to an engine binary",
    )
}

fn config(path: PathBuf) -> UciConfig {
    UciConfig {
        path,
        limit: SearchLimit::Nodes(2_000),
        ..UciConfig::stockfish()
    }
}

#[test]
fn stockfish_mates_in_one_at_every_strength() {
    let Some(path) = engine() else { return };
    let scholar =
        Chess::from_fen("r1bqkb1r/pppp1ppp/2n2n2/4p2Q/2B1P3/8/PPPP1PPP/RNB1K1NR w KQkq - 4 4")
            .expect("valid FEN");
    for (skill, elo) in [(None, None), (Some(10), None), (None, Some(2000))] {
        let mut agent = UciAgent::new(UciConfig {
            skill_level: skill,
            elo,
            ..config(path.clone())
        })
        .expect("Stockfish starts");
        let mv = agent.choose(&scholar).expect("a move");
        let mut after = scholar.clone();
        after.play(mv).expect("legal");
        assert_eq!(
            after.outcome(),
            Some(Outcome::Win(scholar.to_move())),
            "{} plays {mv}",
            agent.name()
        );
    }
}

#[test]
fn stockfish_options_are_checked_and_limits_hold() {
    let Some(path) = engine() else { return };
    let error = UciAgent::new(UciConfig {
        elo: Some(900),
        ..config(path.clone())
    })
    .err()
    .expect("900 is below Stockfish's UCI_Elo range");
    assert!(
        matches!(error, UciError::OptionOutOfRange { value: 900, .. }),
        "{error}"
    );
    let mut engine = start_configured(&config(path)).expect("Stockfish starts");
    assert!(engine.name().contains("Stockfish"), "{}", engine.name());
    let start = Chess::new().fen();
    let clock = Instant::now();
    let mv = engine
        .best_move(&start, &["e2e4".to_owned()], SearchLimit::MoveTimeMs(100))
        .expect("an answer")
        .expect("a move");
    let elapsed = clock.elapsed();
    assert!(
        elapsed >= Duration::from_millis(90) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    let mut after_e4 = Chess::new();
    after_e4.play_uci("e2e4").expect("legal");
    assert!(
        after_e4.parse_uci(&mv).is_ok(),
        "Black's reply {mv} is legal"
    );
    let deep = engine
        .best_move(&start, &[], SearchLimit::Depth(6))
        .expect("an answer");
    assert!(deep.is_some());
    // A finished game: checkmated side has no move.
    let mated = "rnb1kbnr/pppp1ppp/8/4p3/6Pq/5P2/PPPPP2P/RNBQKBNR w KQkq - 1 3";
    assert_eq!(
        engine
            .best_move(mated, &[], SearchLimit::Nodes(100))
            .expect("an answer"),
        None
    );
}

#[test]
fn stockfish_beats_random_in_the_arena() {
    if engine().is_none() {
        return;
    }
    let config = ArenaConfig {
        max_plies: Some(300),
        ..ArenaConfig::new(4, 5)
    };
    let report = run_arena_by_names(
        &Chess::new(),
        "stockfish:skill=5,nodes=1000",
        "random",
        &config,
    )
    .expect("the match runs");
    println!("{}", report.to_markdown());
    assert_eq!(report.player_a, "stockfish skill=5 nodes=1000");
    assert!(report.total.wins >= 3, "{:?}", report.total);
    assert_eq!(report.total.losses, 0);
}

#[test]
fn stockfish_levels_make_a_rated_dataset() {
    if engine().is_none() {
        return;
    }
    let players: Vec<RatedPlayer> = [
        "stockfish:elo=1400,nodes=500",
        "stockfish:skill=8,nodes=500",
    ]
    .iter()
    .map(|text| text.parse().expect("valid"))
    .collect();
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("rated.jsonl");
    let config = SelfPlayConfig {
        games: 4,
        seed: 1,
        random_opening_plies: 4,
        max_plies: 120,
    };
    let report = write_rated_self_play(&path, &players, &config, &SelfPlayOptions::default())
        .expect("self-play runs");
    assert_eq!(report.games, 4);
    let games: Vec<_> = RatedJsonlReader::open(&path)
        .expect("the file opens")
        .map(|game| game.expect("every game replays"))
        .collect();
    let skill8 = players[1].elo.expect("skill 8 has an Elo");
    let elos: Vec<_> = games.iter().map(|g| (g.white_elo, g.black_elo)).collect();
    assert_eq!(
        elos,
        [
            (Some(1400), Some(1400)),
            (Some(1400), Some(skill8)),
            (Some(skill8), Some(1400)),
            (Some(skill8), Some(skill8))
        ]
    );
    assert!(
        games
            .iter()
            .all(|g| g.moves.len() > config.random_opening_plies)
    );
}
