//! The SVG charts of kibitzer's reports, drawn by hand: no plotting
//! dependency, every chart a standalone SVG document in a `String`.
//!
//! - [`LineChart`]: lines with markers over a linear, log2 or categorical
//!   x axis ([`XAxis`]), "nice" y ticks, a legend;
//! - [`BarChart`]: bars with their own colours and labelled slots;
//! - [`escape_xml`]: text for SVG and HTML content and attributes.
//!
//! ```
//! use kibitzer_charts::{LineChart, Series, XAxis};
//! let chart = LineChart {
//!     title: "loss".into(),
//!     x_label: "step".into(),
//!     y_label: "nats".into(),
//!     x_axis: XAxis::Linear,
//!     series: vec![Series::new("train", vec![(0.0, 2.7), (100.0, 0.4)])],
//! };
//! assert!(chart.svg().contains("<polyline"));
//! ```
#![warn(missing_docs)]

mod bar;
mod line;

pub use bar::{Bar, BarChart};
pub use line::{LineChart, Series, XAxis};

/// Line colours, in the order series take them (matplotlib's "tab10").
pub const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// `s` with `& < > " '` escaped for XML and HTML text and attribute values.
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "Nice" tick values (1, 2, 5 x 10^k steps) covering `lo..=hi`, about
/// `target` of them.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - pad, hi + pad)
    };
    let raw = (hi - lo) / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).floor() as i64;
    let last = (hi / step).ceil() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A tick or tooltip number: at most four decimals without trailing zeros,
/// scientific notation outside `1e-3..1e5`.
pub fn format_number(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.1e}");
    }
    let text = format!("{v:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

/// The opening of a chart: the `<svg>` element, a white background and the
/// title centred at `title_x`.
fn svg_open(width: f64, height: f64, title: &str, title_x: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{title_x:.1}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        escape_xml(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape_xml(r#"a<b & "c" 'd'>"#),
            "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;"
        );
        assert_eq!(escape_xml("D→DM"), "D→DM");
    }

    #[test]
    fn nice_ticks_are_round_and_cover_the_range() {
        let t = nice_ticks(0.0, 1.0, 5);
        let want = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
        assert_eq!(t.len(), want.len(), "{t:?}");
        assert!(
            t.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12),
            "{t:?}"
        );
        let t = nice_ticks(0.13, 0.87, 4);
        assert!(t[0] <= 0.13 && *t.last().unwrap() >= 0.87);
        assert!(t.len() >= 4 && t.len() <= 7, "{t:?}");
        // A single value still gets a range around it.
        let t = nice_ticks(3.0, 3.0, 5);
        assert!(t[0] < 3.0 && *t.last().unwrap() > 3.0);
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(format_number(0.0), "0");
        assert_eq!(format_number(0.25), "0.25");
        assert_eq!(format_number(2.0), "2");
        assert_eq!(format_number(123456.0), "1.2e5");
        assert_eq!(format_number(0.00012), "1.2e-4");
    }
}
