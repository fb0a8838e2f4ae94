//! Bar charts.

use crate::{escape_xml, format_number, svg_open};

/// One bar of a [`BarChart`].
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    /// Its height (a count or any non-negative value).
    pub value: f64,
    /// Its colour.
    pub colour: String,
    /// Text centred under it, if any.
    pub label: Option<String>,
}

/// A bar chart: slots left to right, each a [`Bar`] or a gap, a y axis from
/// 0 to the largest value, labels under bars or at slot edges, and a note
/// at the top right.
#[derive(Clone, Debug, PartialEq)]
pub struct BarChart {
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// The slots: `None` leaves a gap.
    pub slots: Vec<Option<Bar>>,
    /// `(i, text)`: text under the left edge of slot `i` (bin edges of a
    /// histogram).
    pub edge_labels: Vec<(usize, String)>,
    /// A line of text at the top right (summary numbers).
    pub note: Option<String>,
}

impl BarChart {
    /// The chart as a standalone SVG document.
    pub fn svg(&self) -> String {
        let (width, height, left, right, top, bottom) = (720.0, 360.0, 60.0, 20.0, 40.0, 50.0);
        let plot_w = width - left - right;
        let plot_h = height - top - bottom;
        let slot = plot_w / self.slots.len().max(1) as f64;
        let max = self
            .slots
            .iter()
            .flatten()
            .map(|b| b.value)
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        // An all-zero chart still gets an axis from 0 to 1.
        let max = if max > 0.0 { max } else { 1.0 };
        let axis_y = top + plot_h;
        let mut svg = svg_open(width, height, &self.title, width / 2.0);
        for (i, bar) in self.slots.iter().enumerate() {
            let Some(bar) = bar else { continue };
            let value = if bar.value.is_finite() {
                bar.value.max(0.0)
            } else {
                0.0
            };
            let bh = plot_h * value / max;
            svg += &format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}</title></rect>\n",
                left + slot * i as f64 + 1.0,
                axis_y - bh,
                (slot - 2.0).max(1.0),
                bh,
                escape_xml(&bar.colour),
                format_number(bar.value)
            );
            if let Some(label) = &bar.label {
                svg += &format!(
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                    left + slot * (i as f64 + 0.5),
                    axis_y + 16.0,
                    escape_xml(label)
                );
            }
        }
        svg += &format!(
            "<line x1=\"{left}\" y1=\"{axis_y}\" x2=\"{:.1}\" y2=\"{axis_y}\" stroke=\"black\"/>\n\
             <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{axis_y}\" stroke=\"black\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n\
             <text x=\"{:.1}\" y=\"{top}\" text-anchor=\"end\">{}</text>\n\
             <text x=\"{:.1}\" y=\"{axis_y}\" text-anchor=\"end\">0</text>\n",
            width - right,
            left + plot_w / 2.0,
            height - 10.0,
            escape_xml(&self.x_label),
            left - 6.0,
            format_number(max),
            left - 6.0,
        );
        for (i, text) in &self.edge_labels {
            svg += &format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                left + slot * *i as f64,
                axis_y + 16.0,
                escape_xml(text)
            );
        }
        if let Some(note) = &self.note {
            svg += &format!(
                "<text x=\"{:.1}\" y=\"{top}\" text-anchor=\"end\">{}</text>\n",
                width - right,
                escape_xml(note)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(value: f64) -> Option<Bar> {
        Some(Bar {
            value,
            colour: "#2e86c1".into(),
            label: None,
        })
    }

    /// `(y, height)` of every bar, in order.
    fn bars(svg: &str) -> Vec<(f64, f64)> {
        let attr = |rest: &str, name: &str| -> f64 {
            let at = rest.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
            rest[at..at + rest[at..].find('"').unwrap()]
                .parse()
                .unwrap()
        };
        svg.match_indices("<rect x=")
            .map(|(i, _)| {
                let rest = &svg[i..i + svg[i..].find('>').unwrap()];
                (attr(rest, "y"), attr(rest, "height"))
            })
            .collect()
    }

    #[test]
    fn heights_are_proportional_and_gaps_draw_nothing() {
        let chart = BarChart {
            title: "h".into(),
            x_label: "x".into(),
            slots: vec![bar(4.0), None, bar(2.0), bar(1.0), bar(0.0)],
            edge_labels: vec![(2, "-3".into())],
            note: Some("L0 <2>".into()),
        };
        let svg = chart.svg();
        let b = bars(&svg);
        assert_eq!(b.len(), 4, "the gap draws no bar");
        assert!(
            (b[0].1 - 2.0 * b[1].1).abs() < 0.2 && (b[1].1 - 2.0 * b[2].1).abs() < 0.2,
            "{b:?}"
        );
        assert_eq!(b[3].1, 0.0);
        // Every bar stands on the same axis.
        assert!(b.iter().all(|(y, h)| (y + h - b[0].0 - b[0].1).abs() < 0.2));
        assert!(
            svg.contains(">4</text>"),
            "the axis goes up to the largest value"
        );
        assert!(svg.contains(">-3</text>") && svg.contains("L0 &lt;2&gt;"));
    }
}
