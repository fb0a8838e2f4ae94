//! Line charts.

use crate::{PALETTE, escape_xml, format_number, nice_ticks, svg_open};

/// The x axis of a [`LineChart`].
#[derive(Clone, Debug, PartialEq)]
pub enum XAxis {
    /// Linear, with nice ticks.
    Linear,
    /// Logarithmic (base 2), ticked at the data's x values: sizes such as
    /// 256, 512, ... features.
    Log2,
    /// Named categories: point x = i sits at category i, ticked with its name.
    Categories(Vec<String>),
}

/// One line of a [`LineChart`].
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// `(x, y)` points, drawn in order; non-finite ones are skipped (and
    /// non-positive x on a [`XAxis::Log2`] axis).
    pub points: Vec<(f64, f64)>,
    /// Its colour (`#rrggbb` or any SVG colour); `None` takes the next one
    /// of [`PALETTE`].
    pub colour: Option<String>,
}

impl Series {
    /// A series in the palette's next colour.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            label: label.into(),
            points,
            colour: None,
        }
    }

    /// The same series in `colour`.
    pub fn with_colour(mut self, colour: impl Into<String>) -> Self {
        self.colour = Some(colour.into());
        self
    }
}

/// A line chart: axes with ticks and grid lines, one coloured line with
/// markers per series (each marker's tooltip gives its values), a legend
/// on the right.
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// How x is drawn.
    pub x_axis: XAxis,
    /// The lines.
    pub series: Vec<Series>,
}

impl LineChart {
    /// The chart as a standalone SVG document.
    pub fn svg(&self) -> String {
        let (width, height) = (780.0, 420.0);
        let (left, right, top, bottom) = (78.0, 170.0, 44.0, 58.0);
        let (plot_w, plot_h) = (width - left - right, height - top - bottom);
        let log_x = self.x_axis == XAxis::Log2;
        let tx = |x: f64| if log_x { x.log2() } else { x };
        let points: Vec<Vec<(f64, f64)>> = self
            .series
            .iter()
            .map(|s| {
                s.points
                    .iter()
                    .copied()
                    .filter(|&(x, y)| x.is_finite() && y.is_finite() && (!log_x || x > 0.0))
                    .collect()
            })
            .collect();
        let all: Vec<(f64, f64)> = points.iter().flatten().copied().collect();
        let mut svg = svg_open(width, height, &self.title, left + plot_w / 2.0);
        if all.is_empty() {
            svg += &format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">no data</text>\n</svg>\n",
                left + plot_w / 2.0,
                top + plot_h / 2.0
            );
            return svg;
        }
        let (mut x_lo, mut x_hi) = match &self.x_axis {
            // Every category has its slot, with or without data.
            XAxis::Categories(names) => (0.0, names.len().saturating_sub(1) as f64),
            _ => all.iter().fold((f64::MAX, f64::MIN), |(a, b), p| {
                (a.min(tx(p.0)), b.max(tx(p.0)))
            }),
        };
        if x_hi - x_lo < 1e-12 {
            x_lo -= 0.5;
            x_hi += 0.5;
        }
        let pad = (x_hi - x_lo) * 0.04;
        let (x_lo, x_hi) = (x_lo - pad, x_hi + pad);
        let (y_min, y_max) = all
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let y_ticks = nice_ticks(y_min, y_max, 5);
        let (y_lo, y_hi) = (y_ticks[0], y_ticks[y_ticks.len() - 1]);
        let px = |x: f64| left + (tx(x) - x_lo) / (x_hi - x_lo) * plot_w;
        let py = |y: f64| top + plot_h - (y - y_lo) / (y_hi - y_lo) * plot_h;
        for &t in &y_ticks {
            svg += &format!(
                "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e5e5e5\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
                left + plot_w,
                left - 6.0,
                py(t) + 4.0,
                format_number(t),
                y = py(t)
            );
        }
        let x_ticks: Vec<(f64, String)> = match &self.x_axis {
            XAxis::Log2 => {
                let mut xs: Vec<f64> = all.iter().map(|p| p.0).collect();
                xs.sort_by(f64::total_cmp);
                xs.dedup();
                xs.into_iter().map(|x| (x, format_number(x))).collect()
            }
            XAxis::Linear => nice_ticks(x_lo, x_hi, 6)
                .into_iter()
                .filter(|&x| x >= x_lo && x <= x_hi)
                .map(|x| (x, format_number(x)))
                .collect(),
            XAxis::Categories(names) => names
                .iter()
                .enumerate()
                .map(|(i, name)| (i as f64, escape_xml(name)))
                .collect(),
        };
        let axis_y = top + plot_h;
        for (t, text) in &x_ticks {
            svg += &format!(
                "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{axis_y}\" stroke=\"#eeeeee\"/>\n\
                 <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{text}</text>\n",
                axis_y + 16.0,
                x = px(*t)
            );
        }
        svg += &format!(
            "<line x1=\"{left}\" y1=\"{axis_y}\" x2=\"{:.1}\" y2=\"{axis_y}\" stroke=\"black\"/>\n\
             <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{axis_y}\" stroke=\"black\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n\
             <text transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
            left + plot_w,
            left + plot_w / 2.0,
            height - 14.0,
            escape_xml(&self.x_label),
            top + plot_h / 2.0,
            escape_xml(&self.y_label)
        );
        let x_text = |x: f64| match &self.x_axis {
            XAxis::Categories(names) => names
                .get(x.round() as usize)
                .map(|n| escape_xml(n))
                .unwrap_or_else(|| format_number(x)),
            _ => format_number(x),
        };
        for (i, (s, pts)) in self.series.iter().zip(&points).enumerate() {
            let color = match &s.colour {
                Some(c) => escape_xml(c),
                None => PALETTE[i % PALETTE.len()].to_string(),
            };
            if pts.len() > 1 {
                let path: Vec<String> = pts
                    .iter()
                    .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                    .collect();
                svg += &format!(
                    "<polyline class=\"series\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n",
                    path.join(" ")
                );
            }
            for &(x, y) in pts {
                svg += &format!(
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{color}\"><title>{}: {} {}, {} {}</title></circle>\n",
                    px(x),
                    py(y),
                    escape_xml(&s.label),
                    escape_xml(&self.x_label),
                    x_text(x),
                    escape_xml(&self.y_label),
                    format_number(y)
                );
            }
            let ly = top + 8.0 + 18.0 * i as f64;
            let lx = left + plot_w + 14.0;
            svg += &format!(
                "<line x1=\"{lx:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"2\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
                lx + 22.0,
                lx + 28.0,
                ly + 4.0,
                escape_xml(&s.label)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(x_axis: XAxis, series: Vec<Series>) -> LineChart {
        LineChart {
            title: "t <1>".into(),
            x_label: "features".into(),
            y_label: "FVU".into(),
            x_axis,
            series,
        }
    }

    /// The x coordinates of a series' markers, in order.
    fn marker_xs(svg: &str) -> Vec<f64> {
        svg.match_indices("<circle cx=\"")
            .map(|(i, m)| {
                let rest = &svg[i + m.len()..];
                rest[..rest.find('"').unwrap()].parse().unwrap()
            })
            .collect()
    }

    #[test]
    fn log2_axis_spaces_doublings_evenly() {
        let svg = chart(
            XAxis::Log2,
            vec![Series::new(
                "a",
                vec![(256.0, 1.0), (512.0, 0.5), (1024.0, 0.25), (4096.0, 0.1)],
            )],
        )
        .svg();
        let xs = marker_xs(&svg);
        assert_eq!(xs.len(), 4);
        let step = xs[1] - xs[0];
        assert!((xs[2] - xs[1] - step).abs() < 0.2, "{xs:?}");
        assert!((xs[3] - xs[2] - 2.0 * step).abs() < 0.2, "{xs:?}");
        // Ticks at the data's x values.
        for x in ["256", "512", "1024", "4096"] {
            assert!(svg.contains(&format!(">{x}</text>")), "tick {x}");
        }
        assert!(svg.contains("t &lt;1&gt;"), "title escaped");
    }

    #[test]
    fn linear_axis_is_proportional_and_skips_non_finite_points() {
        let svg = chart(
            XAxis::Linear,
            vec![Series::new(
                "a",
                vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 2.0), (6.0, 3.0)],
            )],
        )
        .svg();
        let xs = marker_xs(&svg);
        assert_eq!(xs.len(), 3, "the NaN point is skipped");
        assert!(
            ((xs[2] - xs[1]) - 2.0 * (xs[1] - xs[0])).abs() < 0.2,
            "{xs:?}"
        );
    }

    #[test]
    fn categories_label_their_slots_and_series_keep_their_colours() {
        let names: Vec<String> = ["D→DM", "DM→S", "S→SL"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let svg = chart(
            XAxis::Categories(names),
            vec![
                Series::new("one", vec![(0.0, 0.9), (1.0, 0.8), (2.0, 0.7)]).with_colour("#123456"),
                Series::new("two", vec![(0.0, 0.5), (2.0, 0.6)]),
            ],
        )
        .svg();
        assert!(svg.contains(">D→DM</text>") && svg.contains(">S→SL</text>"));
        assert!(svg.contains("stroke=\"#123456\""));
        assert!(svg.contains(&format!("stroke=\"{}\"", PALETTE[1])));
        assert!(svg.contains("<title>one: features DM→S, FVU 0.8</title>"));
        // Category i sits at the same x in every series.
        let xs = marker_xs(&svg);
        assert_eq!(xs[0], xs[3]);
        assert_eq!(xs[2], xs[4]);
    }

    #[test]
    fn an_empty_chart_says_so() {
        let svg = chart(XAxis::Linear, vec![Series::new("a", vec![])]).svg();
        assert!(svg.contains(">no data</text>") && svg.ends_with("</svg>\n"));
    }
}
