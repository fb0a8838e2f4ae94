//! half_fill: each rectangle has a line of a second colour through its
//! middle; in f the last rectangle's half on a fixed side is filled with the
//! line's colour.

use crate::error::Violation;
use rand_chacha::ChaCha8Rng;

use crate::grid::{Grid, Rect};
use crate::rng::below;
use crate::scene::{Scene, Shape, changes, single};
use crate::task::{Params, Side, Task, TaskKind};

/// half_fill.
#[derive(Clone, Copy, Debug, Default)]
pub struct HalfFill;

fn params(p: &Params) -> Option<(u8, Side)> {
    match *p {
        Params::HalfFill { colour, side } => Some((colour, side)),
        _ => None,
    }
}

/// Paints a rectangle with its line.
fn paint(grid: &mut Grid, s: &Shape, side: Side) {
    grid.fill(s.rect, s.colour);
    grid.fill(side.line_rect(s.rect), s.line);
}

impl Task for HalfFill {
    fn kind(&self) -> TaskKind {
        TaskKind::HalfFill
    }

    fn n_colours(&self) -> usize {
        6
    }

    fn draw_params(&self, palette: &[u8], rng: &mut ChaCha8Rng) -> Params {
        Params::HalfFill {
            colour: palette[4],
            side: Side::ALL[below(rng, Side::ALL.len())],
        }
    }

    fn shapes(&self, palette: &[u8], rects: &[Rect]) -> Scene {
        rects
            .iter()
            .enumerate()
            .map(|(n, &rect)| Shape {
                rect,
                colour: palette[2 * n],
                line: palette[2 * n + 1],
            })
            .collect()
    }

    fn scene_ok(&self, p: &Params, scene: &Scene, _size: usize) -> Result<(), Violation> {
        let (colour, _) = params(p).ok_or("not half_fill parameters")?;
        if scene[2].colour != colour {
            return Err(Violation(format!(
                "the last rectangle has colour {}, the parameters say {colour}",
                scene[2].colour
            )));
        }
        if let Some(i) = scene.iter().position(|s| s.line == 0) {
            return Err(Violation(format!("rectangle {i} has no line colour")));
        }
        Ok(())
    }

    fn draw(&self, p: &Params, scene: &Scene, size: usize) -> (Grid, Grid) {
        let (mut x, mut fx) = (Grid::new(size), Grid::new(size));
        let Some((_, side)) = params(p) else {
            return (x, fx);
        };
        for s in scene {
            paint(&mut x, s, side);
            paint(&mut fx, s, side);
        }
        if let Some(last) = scene.get(2) {
            fx.fill(side.half(last.rect), last.line);
        }
        (x, fx)
    }

    fn rule(&self, p: &Params, input: &Grid) -> Grid {
        let mut out = input.clone();
        let Some((colour, side)) = params(p) else {
            return out;
        };
        let Some(b) = input.bbox(colour) else {
            return out;
        };
        let l = side.line(b);
        let line_colour = if side.horizontal() {
            input.at(l, b.left)
        } else {
            input.at(b.top, l)
        };
        out.fill(side.half(b), line_colour);
        out
    }

    fn infer(&self, input: &Grid, output: &Grid) -> Option<Params> {
        let ch = changes(input, output);
        let colour = single(ch.iter().map(|c| c.0))?;
        let line = single(ch.iter().map(|c| c.1))?;
        if colour == 0 || line == 0 {
            return None;
        }
        let b = input.bbox(colour)?;
        let lb = input.bbox(line)?;
        let changed = output.bbox(line)?; // line and filled half together
        let side = if lb.height() == 1 && lb.width() > 1 {
            if changed.bottom > lb.bottom {
                Side::Down
            } else {
                Side::Up
            }
        } else if lb.width() == 1 && lb.height() > 1 {
            if changed.right > lb.right {
                Side::Right
            } else {
                Side::Left
            }
        } else {
            return None;
        };
        (side.line_rect(b) == lb).then_some(Params::HalfFill { colour, side })
    }

    fn reconstruct(&self, p: &Params, input: &Grid, _output: &Grid) -> Option<Scene> {
        let (role, _) = params(p)?;
        let boxes: Vec<(u8, Rect)> = input
            .colours()
            .into_iter()
            .map(|c| Some((c, input.bbox(c)?)))
            .collect::<Option<_>>()?;
        let thin = |r: &Rect| r.height() == 1 || r.width() == 1;
        let lines: Vec<(u8, Rect)> = boxes.iter().copied().filter(|(_, r)| thin(r)).collect();
        let mut used = vec![false; lines.len()];
        let mut shapes = Vec::new();
        for &(c, r) in boxes.iter().filter(|(_, r)| !thin(r)) {
            let inside: Vec<usize> = (0..lines.len())
                .filter(|&i| {
                    let l = lines[i].1;
                    l.top >= r.top && l.bottom <= r.bottom && l.left >= r.left && l.right <= r.right
                })
                .collect();
            let [i] = inside[..] else { return None };
            if used[i] {
                return None;
            }
            used[i] = true;
            shapes.push(Shape {
                rect: r,
                colour: c,
                line: lines[i].0,
            });
        }
        if used.iter().any(|u| !u) {
            return None;
        }
        let at = shapes.iter().position(|s| s.colour == role)?;
        let last = shapes.remove(at);
        if shapes.len() < 2 {
            return None;
        }
        shapes.insert(2, last);
        Some(shapes)
    }
}
