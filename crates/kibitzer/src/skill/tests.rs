use super::*;
use crate::skill::intervene::{InterventionConfig, intervention_report, matched_random_features};
use burn::tensor::Device;
use kibitzer_games::chess::rated::RatedGame;
use kibitzer_games::players::selfplay::{RatedPlayer, SelfPlayConfig, generate_rated_games};
use kibitzer_models::chess_policy::ChessPolicyConfig;
use kibitzer_sae::{Architecture, Sae, SaeConfig};

fn pos(fen: &str) -> Chess {
    Chess::from_fen(fen).unwrap()
}

fn mv(position: &Chess, uci: &str) -> ChessMove {
    position
        .legal_moves()
        .into_iter()
        .find(|m| m.to_string() == uci)
        .unwrap_or_else(|| panic!("{uci} is not legal in {}", position.fen()))
}

/// The white knight on e5 is attacked by the d6 pawn and defended by
/// nothing; the black queen on g4 is attacked by both white knights and
/// defended by nothing.
const WHITE_TO_MOVE: &str = "4k3/8/3p4/4N3/6q1/8/5N2/K7 w - - 0 1";

#[test]
fn threats_are_read_at_the_square_of_each_token_from_the_side_to_move() {
    let p = pos(WHITE_TO_MOVE);
    let t = square_threats(&p);
    // White to move: token = square (a1 = 0): e5 = 36, g4 = 30.
    assert_eq!(t[36], [true, false]);
    assert_eq!(t[30], [false, true]);
    assert_eq!(
        t.iter().filter(|c| c[0] || c[1]).count(),
        2,
        "only the e5 knight and the g4 queen are threatened: {t:?}"
    );
    // The same position with Black to move: tokens are flipped vertically,
    // and "defensive" is now Black's queen.
    let b = pos("4k3/8/3p4/4N3/6q1/8/5N2/K7 b - - 0 1");
    let t = square_threats(&b);
    assert_eq!(t[30 ^ 56], [true, false], "g4 seen by Black is token g5");
    assert_eq!(t[36 ^ 56], [false, true], "e5 seen by Black is token e4");
}

#[test]
fn threat_handling_counts_captures_and_escapes_only() {
    let p = pos(WHITE_TO_MOVE);
    assert!(has_threat(&p));
    assert!(
        handles_threat(&p, mv(&p, "f2g4")),
        "taking the hanging queen"
    );
    assert!(handles_threat(&p, mv(&p, "e5c6")), "the knight escapes");
    assert!(
        !handles_threat(&p, mv(&p, "a1b1")),
        "a king move leaves the knight hanging and the queen untaken"
    );
    // Nf2xg4 takes the queen, and from g4 the knight defends e5.
    let take = threat_response(&p, mv(&p, "f2g4"));
    assert_eq!((take.captures, take.saves), (true, true));
    let escape = threat_response(&p, mv(&p, "e5c6"));
    assert_eq!((escape.captures, escape.saves), (false, true));
    // Taking the queen with the threatened knight does both too.
    let both = threat_response(&p, mv(&p, "e5g4"));
    assert_eq!((both.captures, both.saves), (true, true));
    let quiet = pos("4k3/8/8/8/8/8/8/4K3 w - - 0 1");
    assert!(!has_threat(&quiet));
}

#[test]
fn labels_lay_rows_out_position_major() {
    let ps = [pos(WHITE_TO_MOVE), pos("4k3/8/8/8/8/8/8/4K3 w - - 0 1")];
    let labels = threat_labels(&ps);
    assert_eq!(labels.rows(), 128);
    assert!(labels.bits().get(36, 0) && labels.bits().get(30, 1));
    assert_eq!(labels.positives(), vec![1, 1]);
}

#[test]
fn row_ids_must_be_the_tokens_in_order() {
    let ids: Vec<(i64, i64)> = (0..128)
        .map(|r| ((r / 64) as i64, (r % 64) as i64))
        .collect();
    check_row_ids(&ids, 2, "store").unwrap();
    let mut shuffled = ids.clone();
    shuffled.swap(3, 70);
    let err = check_row_ids(&shuffled, 2, "store")
        .unwrap_err()
        .to_string();
    assert!(err.contains("row 3 is example 1, token 6"), "{err}");
    let err = check_row_ids(&ids, 3, "store").unwrap_err().to_string();
    assert!(err.contains("128 rows, but 3 positions"), "{err}");
}

fn tiny_games(n: usize) -> Vec<RatedGame> {
    let players: Vec<RatedPlayer> = ["random@800", "greedy@2100"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    generate_rated_games(
        &players,
        &SelfPlayConfig {
            games: n,
            seed: 3,
            random_opening_plies: 2,
            max_plies: 30,
        },
    )
    .unwrap()
}

fn tiny_policy() -> ChessPolicy {
    let config = ChessPolicyConfig {
        seed: 5,
        ..ChessPolicyConfig::new(1, 16, 2, 32)
    };
    ChessPolicy::new(config, &Device::flex()).unwrap()
}

#[test]
fn harvest_writes_one_row_per_token_aligned_with_its_positions() {
    let games = tiny_games(2);
    let positions = rated_positions(&games, 0).unwrap();
    let policy = tiny_policy();
    let dir = tempfile::tempdir().unwrap();
    let site: HookSite = "blocks.0.hook_resid_post".parse().unwrap();
    harvest_site(
        &policy,
        &positions,
        Conditioning::Played,
        site,
        None,
        dir.path(),
        false,
    )
    .unwrap();
    let loaded = load_harvest(dir.path()).unwrap();
    assert_eq!(loaded.len(), positions.len());
    for ((line, chess), p) in loaded.iter().zip(&positions) {
        assert_eq!(chess.fen(), p.position.fen());
        assert_eq!(
            (line.own_rating, line.game, line.ply),
            (p.own_rating, p.game, p.ply)
        );
    }
    // The store's rows are the in-memory rows, token by token.
    let store = kibitzer_store::Store::open(dir.path()).unwrap();
    let (rows, width) = site_rows(
        &policy,
        &Conditioning::Played.inputs(&positions),
        site,
        None,
        7,
    )
    .unwrap();
    let stored: Vec<f32> = (0..store.manifest().shards.len())
        .flat_map(|i| store.read_shard(i).unwrap())
        .collect();
    assert_eq!(width, 16);
    assert_eq!(stored.len(), rows.len());
    let worst = stored
        .iter()
        .zip(&rows)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-5, "store and in-memory rows differ by {worst}");
    // A positions file from other games is refused row for row.
    let other = rated_positions(&tiny_games(3), 0).unwrap();
    let lines: Vec<PositionLine> = other
        .iter()
        .map(|p| PositionLine {
            fen: p.position.fen(),
            own_rating: p.own_rating,
            opponent_rating: p.opponent_rating,
            game: p.game,
            ply: p.ply,
        })
        .collect();
    write_positions(&dir.path().join(POSITIONS_FILE), &lines).unwrap();
    let err = load_harvest(dir.path()).unwrap_err().to_string();
    assert!(err.contains("positions have"), "{err}");
}

#[test]
fn matched_controls_are_near_in_activation_and_never_the_chosen() {
    let means: Vec<f64> = (0..40).map(|f| f as f64).collect();
    let chosen = [5, 20];
    let random = matched_random_features(&means, &chosen, 1);
    assert_eq!(random.len(), 2);
    for (c, r) in chosen.iter().zip(&random) {
        assert!(!chosen.contains(r));
        assert!((means[*c] - means[*r]).abs() <= 6.0, "{c} -> {r}");
    }
    assert_eq!(
        random,
        matched_random_features(&means, &chosen, 1),
        "seeded"
    );
}

#[test]
fn raising_features_changes_the_moves_of_a_tiny_policy() {
    let games = tiny_games(4);
    let positions: Vec<Chess> = rated_positions(&games, 0)
        .unwrap()
        .into_iter()
        .map(|p| p.position)
        .filter(has_threat)
        .take(24)
        .collect();
    assert!(positions.len() >= 4, "random games hang pieces");
    let policy = tiny_policy();
    let site: HookSite = "blocks.0.hook_resid_post".parse().unwrap();
    let config = SaeConfig::new(Architecture::Standard, 16, 32);
    let sae = Sae::init(config, 9, &Device::flex());
    let shared: kibitzer_hooks::SharedDictionary = Arc::new(sae);
    let features: Vec<usize> = (0..8).collect();
    let report = intervention_report(
        &policy,
        shared,
        site,
        &positions,
        &features,
        &InterventionConfig {
            low_rating: 800,
            high_rating: 2100,
            scales: vec![1.0, 50.0],
            seed: 0,
            batch: 8,
        },
    )
    .unwrap();
    let row = |name: &str, scale: f32| {
        report
            .rows
            .iter()
            .find(|r| r.features == name && r.scale == scale)
            .unwrap()
            .clone()
    };
    // Scale 1 with the error term kept is the unedited policy.
    assert_eq!(row("threat", 1.0).changed, 0.0);
    assert!(row("threat", 1.0).kl_to_high >= 0.0);
    assert!(
        row("threat", 50.0).changed > 0.0,
        "multiplying eight features by 50 must move some predictions: {report:?}"
    );
    assert_eq!(report.random_features.len(), 8);
}

#[test]
fn one_head_is_its_columns_of_the_per_head_rows() {
    let positions = rated_positions(&tiny_games(1), 0).unwrap();
    let inputs = Conditioning::Rating(1500).inputs(&positions[..5]);
    let policy = tiny_policy();
    let site: HookSite = "blocks.0.attn.hook_z".parse().unwrap();
    let (all, width) = site_rows(&policy, &inputs, site, None, 4).unwrap();
    let (head1, head_width) = site_rows(&policy, &inputs, site, Some(1), 4).unwrap();
    assert_eq!((width, head_width), (16, 8), "2 heads of 8 side by side");
    let expected: Vec<f32> = all.chunks(16).flat_map(|row| row[8..].to_vec()).collect();
    assert_eq!(head1, expected);
    let err = site_rows(&policy, &inputs, site, Some(2), 4)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--head 2: the policy has 2 heads"), "{err}");
    let resid: HookSite = "blocks.0.hook_resid_post".parse().unwrap();
    let err = site_rows(&policy, &inputs, resid, Some(0), 4)
        .unwrap_err()
        .to_string();
    assert!(err.contains("per-head site"), "{err}");
}
