//! SVG pictures of quizzes and a self-contained HTML page of many.
//!
//! Colours are those of culture's figures (`named_colors` in `grids.py`):
//! see [`PALETTE`].

use std::fmt::Write;

use crate::grid::Grid;
use crate::quiz::{GRID_NAMES, Quiz};

/// RGB of colours 0..=10: white, red, green, blue, yellow, cyan, violet,
/// light green, brown, light blue, gray (culture's `grids.py`).
pub const PALETTE: [(u8, u8, u8); 11] = [
    (255, 255, 255),
    (255, 0, 0),
    (0, 192, 0),
    (0, 0, 255),
    (255, 224, 0),
    (0, 255, 255),
    (224, 128, 255),
    (192, 255, 192),
    (165, 42, 42),
    (192, 192, 255),
    (128, 128, 128),
];

/// Names of colours 0..=10.
pub const COLOUR_NAMES: [&str; 11] = [
    "white",
    "red",
    "green",
    "blue",
    "yellow",
    "cyan",
    "violet",
    "lightgreen",
    "brown",
    "lightblue",
    "gray",
];

const CELL: usize = 14;
const GAP: usize = 18;
const MARGIN: usize = 10;
const TITLE_H: usize = 22;
const LABEL_H: usize = 18;
/// Grid lines: culture draws them in (64, 64, 64).
const LINE: &str = "#404040";

/// `#rrggbb` of colour `c` (black for anything outside the palette).
pub fn colour_hex(c: u8) -> String {
    let (r, g, b) = PALETTE.get(usize::from(c)).copied().unwrap_or((0, 0, 0));
    format!("#{r:02x}{g:02x}{b:02x}")
}

use kibitzer_charts::escape_xml as escape;

/// One grid at (`x`, `y`): a `<rect>` per cell and one frame `<rect>`, plus
/// an outline `<rect class="wrong">` on each cell listed in `wrong`.
fn grid_svg(out: &mut String, grid: &Grid, x: usize, y: usize, label: &str, wrong: &[usize]) {
    let s = grid.size();
    let side = s * CELL;
    let _ = write!(
        out,
        r#"<g class="grid" transform="translate({x},{y})"><text x="{}" y="-5" text-anchor="middle">{}</text>"#,
        side / 2,
        escape(label)
    );
    for r in 0..s {
        for c in 0..s {
            let _ = write!(
                out,
                r#"<rect x="{}" y="{}" width="{CELL}" height="{CELL}" fill="{}" stroke="{LINE}" stroke-width="0.5"/>"#,
                c * CELL,
                r * CELL,
                colour_hex(grid.get(r, c))
            );
        }
    }
    let _ = write!(
        out,
        r#"<rect class="frame" x="0" y="0" width="{side}" height="{side}" fill="none" stroke="{LINE}" stroke-width="1.5"/>"#
    );
    for &i in wrong {
        let _ = write!(
            out,
            r##"<rect class="wrong" x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#e00000" stroke-width="2.5"/>"##,
            (i % s) * CELL + 1,
            (i / s) * CELL + 1,
            CELL - 2,
            CELL - 2
        );
    }
    out.push_str("</g>");
}

/// The quiz as an SVG: A, f(A), B, f(B) side by side and labelled, the task
/// name as the title, and, if given, a fifth grid "written" (a model's
/// answer) with the cells that differ from the correct f(B) outlined in red.
///
/// Each grid is `s*s` cell `<rect>`s and one frame `<rect>`; each wrong cell
/// adds one `<rect class="wrong">`.
pub fn quiz_svg(quiz: &Quiz, written: Option<&Grid>) -> String {
    let mut grids: Vec<(&Grid, String, Vec<usize>)> = quiz
        .grids
        .iter()
        .zip(GRID_NAMES)
        .map(|(g, n)| (g, n.to_string(), Vec::new()))
        .collect();
    let verdict = written.map(|w| {
        let expected = quiz.expected_answer();
        let wrong = if w.size() == expected.size() {
            expected.diff(w)
        } else {
            Vec::new()
        };
        let label = if w.size() != expected.size() {
            format!("written ({0}x{0}: wrong size)", w.size())
        } else if wrong.is_empty() {
            "written (correct)".to_string()
        } else {
            format!("written ({} wrong)", wrong.len())
        };
        (w, label, wrong)
    });
    grids.extend(verdict);
    let max_side = grids.iter().map(|(g, _, _)| g.size()).max().unwrap_or(0) * CELL;
    let width = 2 * MARGIN
        + grids.iter().map(|(g, _, _)| g.size() * CELL).sum::<usize>()
        + GAP * (grids.len() - 1);
    let height = 2 * MARGIN + TITLE_H + LABEL_H + max_side;
    let mut out = String::with_capacity(grids.len() * quiz.grid_size().pow(2) * 110 + 512);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(out, r#"<title>{}</title>"#, escape(quiz.task.name()));
    let _ = write!(
        out,
        r#"<text x="{MARGIN}" y="{}" font-size="15" font-weight="bold">{}</text>"#,
        MARGIN + 14,
        escape(quiz.task.name())
    );
    let mut x = MARGIN;
    let y = MARGIN + TITLE_H + LABEL_H;
    for (g, label, wrong) in &grids {
        grid_svg(&mut out, g, x, y, label, wrong);
        x += g.size() * CELL + GAP;
    }
    out.push_str("</svg>");
    out
}

/// A self-contained HTML page (no scripts, no external files) with one
/// figure per quiz: its SVG and a caption (index, task, and the verdict on
/// the written answer if there is one).
pub fn quizzes_html(items: &[(Quiz, Option<Grid>)], title: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>{0}</title>\n<style>\
body{{font-family:sans-serif;margin:1.5em;background:#fafafa}}\
figure{{display:inline-block;margin:0.6em;padding:0.4em;background:#fff;border:1px solid #ddd}}\
figcaption{{font-size:0.85em;color:#333}}.ok{{color:#070}}.bad{{color:#b00}}\
</style>\n</head>\n<body>\n<h1>{0}</h1>\n<p>{1} quizzes. Colours as in culture's figures; in a written answer the wrong cells are outlined in red.</p>\n",
        escape(title),
        items.len()
    );
    for (i, (quiz, written)) in items.iter().enumerate() {
        let verdict = match written {
            None => String::new(),
            Some(w) if quiz.check(w) => r#" <span class="ok">correct</span>"#.to_string(),
            Some(_) => r#" <span class="bad">wrong</span>"#.to_string(),
        };
        let _ = writeln!(
            out,
            "<figure>{}<figcaption>#{i} {}{verdict}</figcaption></figure>",
            quiz_svg(quiz, written.as_ref()),
            escape(quiz.task.name())
        );
    }
    out.push_str("</body>\n</html>\n");
    out
}
