use super::*;
use crate::sweep::RunSpec;

fn run(family: Family, name: &str, l0: f64, reconstruction: f64, fvu: f64) -> RunResult {
    RunResult {
        spec: RunSpec {
            name: name.into(),
            family,
            d_sae: 64,
            sparsity_kind: family.sparsity_kind().into(),
            sparsity: 1.0,
            steps: 10,
        },
        step: 10,
        rows: 100,
        mse: fvu,
        l0,
        dead_fraction: 0.0,
        dense_fraction: 0.0,
        fvu,
        explained_variance: 1.0 - fvu,
        cosine_similarity: 0.9,
        alive_features: 64,
        coverage: BTreeMap::from([("board".to_string(), reconstruction / 2.0)]),
        reconstruction: BTreeMap::from([("board".to_string(), reconstruction)]),
        eval_seconds: 0.0,
    }
}

#[test]
fn the_nearest_rung_is_nearest_as_a_ratio() {
    let ladder = [
        run(Family::Standard, "a", 80.0, 0.5, 0.1),
        run(Family::Standard, "b", 33.0, 0.5, 0.1),
        run(Family::Standard, "c", 14.0, 0.5, 0.1),
        run(Family::Standard, "d", 6.0, 0.5, 0.1),
    ];
    let pick = |t: f64| nearest_by_l0(&ladder, t).unwrap().spec.name.clone();
    // 20: 14 is 1.43x away, 33 1.65x; 10: 14 is 1.4x away, 6 1.67x;
    // 40: 33 is 1.21x away, 80 2x.
    assert_eq!(pick(20.0), "c");
    assert_eq!(pick(10.0), "c");
    assert_eq!(pick(40.0), "b");
    // Where ratio and difference disagree: 7 is 1.43x from 10 and 14 is
    // 1.4x, but 14 is 4 away and 7 only 3.
    let pair = [
        run(Family::Standard, "seven", 7.0, 0.5, 0.1),
        run(Family::Standard, "fourteen", 14.0, 0.5, 0.1),
    ];
    assert_eq!(nearest_by_l0(&pair, 10.0).unwrap().spec.name, "fourteen");
    assert!(nearest_by_l0(&[], 10.0).is_none());
}

fn entry(target: usize, family: Family, reconstruction: f64, fvu: f64, lr: f64) -> Entry {
    Entry {
        target_l0: target,
        family,
        rank: 0,
        sweep: "main".into(),
        result: run(family, family.name(), target as f64, reconstruction, fvu),
        probe_relative: reconstruction,
        loss_recovered: LossRecovered {
            clean: 1.0,
            spliced: 1.0,
            zero_ablated: 2.0,
            fraction: lr,
        },
    }
}

#[test]
fn entries_rank_by_board_reconstruction_within_each_target() {
    let mut entries = vec![
        entry(20, Family::Topk, 0.30, 0.2, 0.9),
        entry(10, Family::Topk, 0.20, 0.3, 0.8),
        entry(10, Family::Gated, 0.25, 0.4, 0.7),
        entry(20, Family::Gated, 0.30, 0.1, 0.6),
        entry(10, Family::Jumprelu, 0.10, 0.1, 0.9),
        entry(20, Family::Jumprelu, 0.35, 0.3, 0.5),
    ];
    rank_entries(&mut entries);
    let order: Vec<(usize, Family, usize)> = entries
        .iter()
        .map(|e| (e.target_l0, e.family, e.rank))
        .collect();
    assert_eq!(
        order,
        vec![
            (10, Family::Gated, 1),
            (10, Family::Topk, 2),
            (10, Family::Jumprelu, 3),
            (20, Family::Jumprelu, 1),
            // A tie on reconstruction goes to the lower FVU.
            (20, Family::Gated, 2),
            (20, Family::Topk, 3),
        ]
    );
    let means = mean_ranks(&entries);
    let of = |f: Family| means.iter().find(|m| m.family == f).unwrap().clone();
    assert_eq!(of(Family::Gated).reconstruction, 1.5);
    assert_eq!(of(Family::Jumprelu).reconstruction, 2.0);
    assert_eq!(of(Family::Topk).reconstruction, 2.5);
    // FVU: target 10 JumpReLU 0.1 < TopK 0.3 < gated 0.4; target 20
    // gated 0.1 < TopK 0.2 < JumpReLU 0.3.
    assert_eq!(of(Family::Gated).fvu, 2.0);
    assert_eq!(of(Family::Topk).fvu, 2.0);
    // Loss recovered: TopK 0.8 and 0.9 are first at 20, second at 10.
    assert_eq!(of(Family::Topk).loss_recovered, 1.5);
    assert_eq!(means[0].family, Family::Gated, "best reconstruction first");
}

fn tiny() -> LeaderboardSettings {
    LeaderboardSettings {
        positions: 3000,
        label_games: 60,
        d_sae: 32,
        targets: vec![2, 6],
        ladder: vec![0.5, 4.0],
        batch_size: 256,
        steps: Some(12),
        splice_positions: 300,
        probe_epochs: 1,
        ..LeaderboardSettings::default()
    }
}

/// A leaderboard of `settings` in `dir/lb`, on the CPU, without progress bars.
fn config_in(dir: &Path, settings: LeaderboardSettings) -> LeaderboardConfig {
    LeaderboardConfig {
        settings,
        out: dir.join("lb"),
        device: Device::flex(),
        progress: false,
    }
}

/// A freshly initialised GPT of `config` (seed 4) saved in `dir/name`.
fn saved_gpt(dir: &Path, name: &str, mut config: kibitzer_models::gpt::GptConfig) -> PathBuf {
    config.seed = Some(4);
    let gpt = Gpt::new(config, &Device::flex()).unwrap();
    let model_dir = dir.join(name);
    gpt.save_transformer_lens(&model_dir).unwrap();
    model_dir
}

/// `--model`: an OthelloGPT (here a small random one) harvested on a
/// games file, judged as the AlphaZero network is, with the next-token
/// loss for loss recovered; the settings file of an AlphaZero run is
/// unchanged by the new fields (they are left out when unset).
#[test]
fn an_othello_gpt_leaderboard_ranks_every_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = saved_gpt(
        dir.path(),
        "gpt",
        kibitzer_models::gpt::othello::othello_gpt_config(6, 2, 32, 2),
    );
    let games_file = dir.path().join("games.bin");
    let games = kibitzer_games::dataset::generate_random_games(6, 200, 3).unwrap();
    kibitzer_games::dataset::write_dataset(&games_file, 6, &games).unwrap();
    let settings = LeaderboardSettings {
        model: Some(model_dir),
        games: Some(games_file.clone()),
        families: vec![Family::Standard, Family::Topk, Family::Jumprelu],
        ..tiny()
    };
    let lb = run_leaderboard(&config_in(dir.path(), settings)).unwrap();
    assert_eq!(lb.entries.len(), 2 * 3);
    assert_eq!(lb.d_in, 32);
    for e in &lb.entries {
        let l = e.loss_recovered;
        // Next-token losses of a 6x6 OthelloGPT: below ln(vocab).
        assert!(l.clean > 0.0 && l.clean < (33f64).ln() + 0.5, "{l:?}");
        assert!(l.zero_ablated != l.clean && l.fraction.is_finite(), "{l:?}");
    }
    assert!(board(&lb.probe_f1) > 0.0);
    let md = lb.markdown();
    assert!(md.contains("of the GPT"), "{md}");
    // The harvest's rows are the games' square moves, in order, its
    // labels the first games'.
    let store = Store::open(dir.path().join("lb/harvest/activations")).unwrap();
    let squares: usize = games
        .iter()
        .scan(0usize, |rows, g| {
            let before = *rows;
            *rows += g
                .iter()
                .filter(|m| matches!(m, kibitzer_games::othello::OthelloMove::Square(_)))
                .count();
            Some((before, *rows))
        })
        .find(|&(before, _)| before >= 3000)
        .map_or(0, |(before, _)| before);
    assert_eq!(store.rows() as usize, squares);
    // AlphaZero settings serialise without the GPT fields.
    let az = serde_json::to_value(tiny()).unwrap();
    assert!(az.get("model").is_none() && az.get("games").is_none());
}

/// `--model` with a ChessGPT (here a small random one) on PGN games:
/// rows at the transcripts' dots within its context, labelled with the
/// chess properties, ranked on the pieces (the `low_level` category).
#[cfg(feature = "chess")]
#[test]
fn a_chess_gpt_leaderboard_ranks_on_the_pieces() {
    use kibitzer_games::chess::pgn::{GameResult, pgn_string};
    use rand::SeedableRng;
    let dir = tempfile::tempdir().unwrap();
    let model_dir = saved_gpt(
        dir.path(),
        "chess-gpt",
        kibitzer_models::gpt::chess::chess_gpt_config(2, 32, 2, 128),
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let pgn: String = (0..150)
        .map(|_| {
            let game = kibitzer_games::chess::random_game(&mut rng, 30);
            pgn_string(&[], &game, GameResult::Unknown)
        })
        .collect();
    let games_file = dir.path().join("games.pgn");
    std::fs::write(&games_file, pgn).unwrap();
    let settings = LeaderboardSettings {
        model: Some(model_dir),
        games: Some(games_file),
        positions: 1200,
        label_games: 100,
        families: vec![Family::Standard, Family::Topk],
        ..tiny()
    };
    let lb = run_leaderboard(&config_in(dir.path(), settings)).unwrap();
    assert_eq!(lb.entries.len(), 2 * 2);
    assert!(lb.probe_f1.contains_key("low_level") && !lb.probe_f1.contains_key("board"));
    assert!(board(&lb.probe_f1) > 0.0, "{:?}", lb.probe_f1);
    for e in &lb.entries {
        // Judged on the pieces: a random model's features still cover
        // some of them after 12 steps.
        assert!(board(&e.result.coverage) > 0.0, "{e:?}");
        assert!(e.loss_recovered.fraction.is_finite());
    }
    for t in [2usize, 6] {
        let of_target: Vec<&Entry> = lb.entries.iter().filter(|e| e.target_l0 == t).collect();
        for w in of_target.windows(2) {
            assert!(board(&w[0].result.reconstruction) >= board(&w[1].result.reconstruction));
        }
    }
    let harvest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("lb/harvest/harvest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(harvest["game"], "chess");
    assert!(harvest["rows"].as_u64().unwrap() >= 1200);
}

#[test]
fn settings_are_checked_before_anything_runs() {
    let bad = |edit: fn(&mut LeaderboardSettings)| {
        let mut s = tiny();
        edit(&mut s);
        s.validate().unwrap_err().to_string()
    };
    assert!(bad(|s| s.targets = vec![6, 2]).contains("strictly increasing"));
    assert!(bad(|s| s.targets = vec![64]).contains("more than the 32 features"));
    assert!(bad(|s| s.ladder.clear()).contains("ladder"));
    assert!(bad(|s| s.site = "blocks.x".into()).contains("site"));
    assert!(bad(|s| s.model = Some("gpt".into())).contains("give games"));
    assert!(bad(|s| s.games = Some("g.bin".into())).contains("plays its own games"));
    assert!(
        bad(|s| {
            s.model = Some("gpt".into());
            s.games = Some("g.bin".into());
            s.net = "net.safetensors".into();
        })
        .contains("name two subjects")
    );
    assert!(bad(|s| s.batch_size = 0).contains("batch_size"));
    let mut k_only = tiny();
    k_only.families = vec![Family::Topk];
    k_only.ladder.clear();
    k_only.validate().unwrap();
}

#[cfg(unix)]
#[test]
fn a_path_that_is_not_utf8_is_an_error_naming_the_settings_file() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let mut s = tiny();
    s.model = Some(std::ffi::OsStr::from_bytes(b"gpt-\xff").into());
    let err = check_settings(dir.path(), &s).unwrap_err().to_string();
    assert!(
        err.contains(files::SETTINGS) && err.contains("UTF-8"),
        "{err}"
    );
}

#[test]
fn a_tiny_leaderboard_ranks_every_architecture_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path(), tiny());
    let lb = run_leaderboard(&config).unwrap();
    assert_eq!(lb.entries.len(), 2 * Family::ALL.len());
    for &t in &[2usize, 6] {
        let of_target: Vec<&Entry> = lb.entries.iter().filter(|e| e.target_l0 == t).collect();
        let ranks: Vec<usize> = of_target.iter().map(|e| e.rank).collect();
        assert_eq!(ranks, (1..=Family::ALL.len()).collect::<Vec<_>>());
        for w in of_target.windows(2) {
            assert!(board(&w[0].result.reconstruction) >= board(&w[1].result.reconstruction));
        }
        for e in &of_target {
            let r = &e.result;
            match e.family {
                // k = the target: TopK exactly (up to rows whose
                // pre-activations have fewer positive values).
                Family::Topk => {
                    assert!(r.l0 <= t as f64 + 1e-9 && r.l0 > 0.5 * t as f64, "{r:?}")
                }
                Family::Batchtopk | Family::Matryoshka => {
                    assert_eq!(r.spec.sparsity, t as f64)
                }
                Family::Jumprelu => assert_eq!(e.sweep, format!("jumprelu-l0-{t}")),
                _ => {
                    assert_eq!(e.sweep, "main");
                    // No other rung of the family is nearer the target.
                    let ladder: Vec<f64> = lb
                        .entries
                        .iter()
                        .filter(|o| o.family == e.family)
                        .map(|o| o.result.l0)
                        .collect();
                    assert!(ladder.iter().all(
                        |&l| log_distance(r.l0, t as f64) <= log_distance(l, t as f64) + 1e-12
                    ));
                }
            }
            let l = e.loss_recovered;
            assert!(l.zero_ablated > l.clean, "{l:?}");
            assert!(l.fraction.is_finite() && l.fraction < 1.0 + 1e-6, "{l:?}");
            assert!(e.probe_relative.is_finite() && e.probe_relative >= 0.0);
        }
    }
    assert!(board(&lb.probe_f1) > 0.0, "{:?}", lb.probe_f1);
    let md = std::fs::read_to_string(dir.path().join("lb").join(files::MARKDOWN)).unwrap();
    assert!(md.contains("## L0 2") && md.contains("## L0 6") && md.contains("matryoshka"));
    let html = std::fs::read_to_string(dir.path().join("lb").join(files::HTML)).unwrap();
    assert_eq!(html.matches("<table>").count(), 3);
    let json: Leaderboard = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("lb").join(files::JSON)).unwrap(),
    )
    .unwrap();
    assert_eq!(json, lb);

    // Again: nothing is trained or judged again, the same table comes out.
    let checkpoint = dir.path().join("lb/sweeps/main/checkpoint.json");
    let before = std::fs::metadata(&checkpoint).unwrap().modified().unwrap();
    let again = run_leaderboard(&config).unwrap();
    assert_eq!(again, lb);
    assert_eq!(
        std::fs::metadata(&checkpoint).unwrap().modified().unwrap(),
        before
    );
    // Other settings in the same directory are refused, by name.
    let mut other = config.clone();
    other.settings.d_sae = 48;
    let e = run_leaderboard(&other).unwrap_err().to_string();
    assert!(e.contains("d_sae (was 32, now 48)"), "{e}");
}
