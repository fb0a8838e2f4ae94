//! Elo differences from match results, with a 95% interval.
//!
//! # The formula
//!
//! With `w` wins, `d` draws and `l` losses in `n` games, the score is
//! `s = (w + d / 2) / n`. Its standard error is `se = sqrt(v / n)`, where
//! `v = (w (1 - s)^2 + d (1/2 - s)^2 + l s^2) / n` is the variance of one
//! game's score (so draws, which vary less than wins and losses, narrow the
//! interval). The interval on the score is `s ± 1.96 se` (normal
//! approximation), clipped to `[0, 1]`, and every score `p` is turned into
//! an Elo difference with the logistic curve `elo(p) = -400 log10(1/p - 1)`,
//! which is increasing, so the interval's ends map to the Elo interval's.
//!
//! # Edge cases
//!
//! * A score of exactly 1 (every game won) or 0 has an infinite Elo
//!   difference and a zero sample variance. The estimate is then one-sided:
//!   `elo` is `None` and only the lower (for 1) or upper (for 0) bound is
//!   given, from the exact one-sided 95% binomial bound `0.05^(1/n)` on the
//!   score (the score `p` for which winning all `n` games has probability
//!   5%). [`EloEstimate::bound`] says which.
//! * An interval end at 0 or 1 maps to an infinite Elo: that end is `None`.
//! * Every game drawn gives a zero sample variance too: the binomial
//!   variance `s (1 - s)` is used instead, a conservative stand-in.

/// The z value of a two-sided 95% normal interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Which ends of the interval are finite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EloBound {
    /// A two-sided interval (ends may still be infinite when the interval
    /// reaches a score of 0 or 1).
    TwoSided,
    /// Every game won: only a lower bound exists.
    LowerOnly,
    /// Every game lost: only an upper bound exists.
    UpperOnly,
}

/// The Elo difference of player A over player B.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EloEstimate {
    /// A's mean score in `[0, 1]`.
    pub score: f64,
    /// Standard error of the score.
    pub score_std_error: f64,
    /// Elo difference (`None`: infinite, the score is 0 or 1).
    pub elo: Option<f64>,
    /// Lower end of the 95% interval (`None`: minus infinity).
    pub lower: Option<f64>,
    /// Upper end of the 95% interval (`None`: plus infinity).
    pub upper: Option<f64>,
    /// Which kind of interval this is.
    pub bound: EloBound,
}

/// The Elo difference of a score in `(0, 1)`; `None` at 0 or 1 (infinite).
pub fn elo_from_score(score: f64) -> Option<f64> {
    (score > 0.0 && score < 1.0).then(|| -400.0 * (1.0 / score - 1.0).log10())
}

/// The expected score of a player `elo` points stronger.
pub fn score_from_elo(elo: f64) -> f64 {
    1.0 / (1.0 + 10f64.powf(-elo / 400.0))
}

/// The estimate for `wins`, `draws` and `losses` (A's view); `None` when no
/// game was played.
pub fn estimate(wins: usize, draws: usize, losses: usize) -> Option<EloEstimate> {
    let n = (wins + draws + losses) as f64;
    if n == 0.0 {
        return None;
    }
    let (w, d, l) = (wins as f64, draws as f64, losses as f64);
    let score = (w + d / 2.0) / n;
    let mut variance =
        (w * (1.0 - score).powi(2) + d * (0.5 - score).powi(2) + l * score.powi(2)) / n;
    if wins == 0 && losses == 0 {
        variance = score * (1.0 - score);
    }
    let score_std_error = (variance / n).sqrt();
    if losses == 0 && draws == 0 {
        return Some(EloEstimate {
            score,
            score_std_error,
            elo: None,
            lower: elo_from_score(0.05f64.powf(1.0 / n)),
            upper: None,
            bound: EloBound::LowerOnly,
        });
    }
    if wins == 0 && draws == 0 {
        return Some(EloEstimate {
            score,
            score_std_error,
            elo: None,
            lower: None,
            upper: elo_from_score(1.0 - 0.05f64.powf(1.0 / n)),
            bound: EloBound::UpperOnly,
        });
    }
    let low = (score - Z_95 * score_std_error).max(0.0);
    let high = (score + Z_95 * score_std_error).min(1.0);
    Some(EloEstimate {
        score,
        score_std_error,
        elo: elo_from_score(score),
        lower: elo_from_score(low),
        upper: elo_from_score(high),
        bound: EloBound::TwoSided,
    })
}

impl EloEstimate {
    /// `+35 [-12, +82]`, `>= +230 (one-sided)`, `<= -230 (one-sided)`.
    pub fn describe(&self) -> String {
        let show = |value: Option<f64>, infinite: &str| match value {
            Some(value) => format!("{value:+.0}"),
            None => infinite.to_owned(),
        };
        match self.bound {
            EloBound::TwoSided => format!(
                "{} [{}, {}]",
                show(self.elo, "?"),
                show(self.lower, "-inf"),
                show(self.upper, "+inf")
            ),
            EloBound::LowerOnly => format!(
                ">= {} (every game won; one-sided 95% bound)",
                show(self.lower, "-inf")
            ),
            EloBound::UpperOnly => format!(
                "<= {} (every game lost; one-sided 95% bound)",
                show(self.upper, "+inf")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elo_and_score_are_inverse_logistic() {
        assert_eq!(elo_from_score(0.5), Some(0.0));
        let elo = elo_from_score(0.75).expect("finite");
        assert!((elo - 190.85).abs() < 0.01, "{elo}");
        assert!((score_from_elo(elo) - 0.75).abs() < 1e-12);
        assert_eq!(elo_from_score(1.0), None);
        assert_eq!(elo_from_score(0.0), None);
    }

    #[test]
    fn interval_follows_the_documented_formula() {
        // 60 wins, 20 draws, 20 losses: s = 0.7.
        let estimate = estimate(60, 20, 20).expect("games were played");
        assert!((estimate.score - 0.7).abs() < 1e-12);
        let variance =
            (60.0 * 0.3f64.powi(2) + 20.0 * 0.2f64.powi(2) + 20.0 * 0.7f64.powi(2)) / 100.0;
        let se = (variance / 100.0f64).sqrt();
        assert!((estimate.score_std_error - se).abs() < 1e-12);
        let lower = elo_from_score(0.7 - Z_95 * se).expect("finite");
        let upper = elo_from_score(0.7 + Z_95 * se).expect("finite");
        assert_eq!(estimate.lower, Some(lower));
        assert_eq!(estimate.upper, Some(upper));
        assert!(lower < estimate.elo.expect("finite") && estimate.elo.expect("finite") < upper);
        assert_eq!(estimate.bound, EloBound::TwoSided);
        // More games, same proportions: a narrower interval.
        let more = super::estimate(600, 200, 200).expect("games were played");
        assert!(more.upper.expect("finite") - more.lower.expect("finite") < upper - lower);
    }

    #[test]
    fn perfect_and_null_scores_are_one_sided() {
        let all_won = estimate(10, 0, 0).expect("games were played");
        assert_eq!(all_won.bound, EloBound::LowerOnly);
        assert_eq!(all_won.elo, None);
        assert_eq!(all_won.upper, None);
        // 0.05^(1/10) = 0.741: about +182 Elo.
        let lower = all_won.lower.expect("finite lower bound");
        assert!((lower - elo_from_score(0.05f64.powf(0.1)).expect("finite")).abs() < 1e-9);
        assert!(lower > 150.0 && lower < 200.0, "{lower}");
        assert!(all_won.describe().contains("one-sided"));
        let all_lost = estimate(0, 0, 10).expect("games were played");
        assert_eq!(all_lost.bound, EloBound::UpperOnly);
        assert!((all_lost.upper.expect("finite") + lower).abs() < 1e-9);
        let all_drawn = estimate(0, 8, 0).expect("games were played");
        assert_eq!(all_drawn.elo, Some(0.0));
        assert!(
            all_drawn.lower.expect("finite") < -100.0,
            "binomial stand-in variance"
        );
        // 9 of 10 won: the interval reaches a score of 1, so no upper end.
        let nearly = estimate(9, 0, 1).expect("games were played");
        assert_eq!(nearly.upper, None);
        assert!(nearly.lower.is_some());
        assert_eq!(estimate(0, 0, 0), None);
    }
}
