//! Perft counts of the standard test positions (chessprogramming wiki,
//! "Perft Results"): the move generator through the crate's API.
#![cfg(feature = "chess")]

use kibitzer_games::chess::{Chess, perft, perft_report};

const KIWIPETE: &str = "r3k2r/p1ppqpb1/bn2pnp1/3PN3/1p2P3/2N2Q1p/PPPBBPPP/R3K2R w KQkq - 0 1";
const POSITION_3: &str = "8/2p5/3p4/KP5r/1R3p1k/8/4P1P1/8 w - - 0 1";
const POSITION_4: &str = "r3k2r/Pppp1ppp/1b3nbN/nP6/BBP1P3/q4N2/Pp1P2PP/R2Q1RK1 w kq - 0 1";
const POSITION_4_MIRRORED: &str =
    "r2q1rk1/pP1p2pp/Q4n2/bbp1p3/Np6/1B3NBn/pPPP1PPP/R3K2R b KQ - 0 1";
const POSITION_5: &str = "rnbq1k1r/pp1Pbppp/2p5/8/2B5/8/PPP1NnPP/RNBQK2R w KQ - 1 8";

fn check(fen: Option<&str>, counts: &[u64]) {
    let game = match fen {
        Some(fen) => Chess::from_fen(fen).expect("reference FENs parse"),
        None => Chess::new(),
    };
    for (depth, &expected) in (1..).zip(counts) {
        assert_eq!(perft(&game, depth), expected, "{fen:?} depth {depth}");
    }
}

#[test]
fn start_position() {
    check(None, &[20, 400, 8902, 197_281, 4_865_609]);
}

#[test]
fn kiwipete() {
    check(Some(KIWIPETE), &[48, 2039, 97_862, 4_085_603]);
}

#[test]
fn position_3() {
    check(Some(POSITION_3), &[14, 191, 2812, 43_238, 674_624]);
}

#[test]
fn position_4_and_its_mirror() {
    check(Some(POSITION_4), &[6, 264, 9467, 422_333]);
    check(Some(POSITION_4_MIRRORED), &[6, 264, 9467, 422_333]);
}

#[test]
fn position_5() {
    check(Some(POSITION_5), &[44, 1486, 62_379, 2_103_487]);
}

#[test]
fn report_from_a_fen() {
    let report = perft_report(Some(KIWIPETE), 2).expect("Kiwipete parses");
    assert_eq!(report.count, 2039);
    assert_eq!(report.fen, KIWIPETE);
}
