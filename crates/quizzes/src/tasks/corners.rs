//! corners: the input shows only L marks (three cells) at two opposite
//! corners of each rectangle; f fills the rectangles.

use crate::error::Violation;
use rand_chacha::ChaCha8Rng;

use crate::grid::{Grid, Rect};
use crate::rng::below;
use crate::scene::{Scene, paint_plain, plain_scene};
use crate::task::{Diagonal, Params, Task, TaskKind};

/// corners.
#[derive(Clone, Copy, Debug, Default)]
pub struct Corners;

fn params(p: &Params) -> Option<Diagonal> {
    match *p {
        Params::Corners { diagonal } => Some(diagonal),
        _ => None,
    }
}

/// The six marked cells of a rectangle (at least 2x2): an L of three cells
/// at each corner of the diagonal.
pub fn mark_cells(r: Rect, diagonal: Diagonal) -> [(usize, usize); 6] {
    let (t, l, b, rt) = (r.top, r.left, r.bottom - 1, r.right - 1);
    match diagonal {
        Diagonal::Main => [
            (t, l),
            (t + 1, l),
            (t, l + 1),
            (b, rt),
            (b - 1, rt),
            (b, rt - 1),
        ],
        Diagonal::Anti => [
            (t, rt),
            (t + 1, rt),
            (t, rt - 1),
            (b, l),
            (b - 1, l),
            (b, l + 1),
        ],
    }
}

/// Which diagonal the marks of colour `c` in `x` are on, if they are on one.
fn diagonal_of(x: &Grid, c: u8) -> Option<Diagonal> {
    let b = x.bbox(c)?;
    match (x.at(b.top, b.left) == c, x.at(b.top, b.right - 1) == c) {
        (true, false) => Some(Diagonal::Main),
        (false, true) => Some(Diagonal::Anti),
        _ => None,
    }
}

impl Task for Corners {
    fn kind(&self) -> TaskKind {
        TaskKind::Corners
    }

    fn n_colours(&self) -> usize {
        3
    }

    fn draw_params(&self, _palette: &[u8], rng: &mut ChaCha8Rng) -> Params {
        Params::Corners {
            diagonal: [Diagonal::Main, Diagonal::Anti][below(rng, 2)],
        }
    }

    fn scene_ok(&self, p: &Params, _scene: &Scene, _size: usize) -> Result<(), Violation> {
        params(p)
            .map(|_| ())
            .ok_or_else(|| "not corners parameters".into())
    }

    fn draw(&self, p: &Params, scene: &Scene, size: usize) -> (Grid, Grid) {
        let (mut x, mut fx) = (Grid::new(size), Grid::new(size));
        paint_plain(&mut fx, scene);
        if let Some(diagonal) = params(p) {
            for s in scene {
                if s.rect.height() >= 2 && s.rect.width() >= 2 {
                    for (i, j) in mark_cells(s.rect, diagonal) {
                        x.put(i, j, s.colour);
                    }
                }
            }
        }
        (x, fx)
    }

    fn rule(&self, _p: &Params, input: &Grid) -> Grid {
        let mut out = input.clone();
        for c in input.colours() {
            if let Some(b) = input.bbox(c) {
                out.fill(b, c);
            }
        }
        out
    }

    fn infer(&self, input: &Grid, _output: &Grid) -> Option<Params> {
        let mut diagonal = None;
        for c in input.colours() {
            let d = diagonal_of(input, c)?;
            if diagonal.is_some_and(|e| e != d) {
                return None;
            }
            diagonal = Some(d);
        }
        Some(Params::Corners {
            diagonal: diagonal?,
        })
    }

    fn reconstruct(&self, _p: &Params, input: &Grid, _output: &Grid) -> Option<Scene> {
        plain_scene(input, None)
    }
}
