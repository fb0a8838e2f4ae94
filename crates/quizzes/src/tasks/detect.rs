//! detect: every rectangle but the last gets a three-cell L mark of a fourth
//! colour at its top-left corner.

use crate::error::Violation;
use rand_chacha::ChaCha8Rng;

use crate::grid::{Grid, Rect, colours_of};
use crate::scene::{Scene, paint_plain, plain_scene};
use crate::task::{Params, Task, TaskKind};

/// detect.
#[derive(Clone, Copy, Debug, Default)]
pub struct Detect;

fn params(p: &Params) -> Option<(u8, u8)> {
    match *p {
        Params::Detect { unmarked, mark } => Some((unmarked, mark)),
        _ => None,
    }
}

/// The mark's cells: the top-left corner and its right and lower neighbours.
fn mark_cells(r: Rect) -> [(usize, usize); 3] {
    [(r.top, r.left), (r.top + 1, r.left), (r.top, r.left + 1)]
}

fn put_mark(grid: &mut Grid, r: Rect, mark: u8) {
    for (i, j) in mark_cells(r) {
        if i < grid.size() && j < grid.size() {
            grid.put(i, j, mark);
        }
    }
}

impl Task for Detect {
    fn kind(&self) -> TaskKind {
        TaskKind::Detect
    }

    fn n_colours(&self) -> usize {
        4
    }

    fn draw_params(&self, palette: &[u8], _rng: &mut ChaCha8Rng) -> Params {
        Params::Detect {
            unmarked: palette[2],
            mark: palette[3],
        }
    }

    fn scene_ok(&self, p: &Params, scene: &Scene, _size: usize) -> Result<(), Violation> {
        let (unmarked, mark) = params(p).ok_or("not detect parameters")?;
        if scene[2].colour != unmarked {
            return Err(Violation(format!(
                "the last rectangle has colour {}, the parameters say {unmarked}",
                scene[2].colour
            )));
        }
        if scene.iter().any(|s| s.colour == mark) {
            return Err(Violation(format!(
                "the mark colour {mark} is already in the grid"
            )));
        }
        Ok(())
    }

    fn draw(&self, p: &Params, scene: &Scene, size: usize) -> (Grid, Grid) {
        let (mut x, mut fx) = (Grid::new(size), Grid::new(size));
        paint_plain(&mut x, scene);
        paint_plain(&mut fx, scene);
        if let Some((_, mark)) = params(p) {
            for s in &scene[..2.min(scene.len())] {
                put_mark(&mut fx, s.rect, mark);
            }
        }
        (x, fx)
    }

    fn rule(&self, p: &Params, input: &Grid) -> Grid {
        let mut out = input.clone();
        let Some((unmarked, mark)) = params(p) else {
            return out;
        };
        for c in input.colours() {
            if c != unmarked
                && c != mark
                && let Some(b) = input.bbox(c)
            {
                put_mark(&mut out, b, mark);
            }
        }
        out
    }

    fn infer(&self, input: &Grid, output: &Grid) -> Option<Params> {
        let new = output.colour_set() & !input.colour_set();
        let [mark] = colours_of(new)[..] else {
            return None;
        };
        let unmarked: Vec<u8> = input
            .colours()
            .into_iter()
            .filter(|&c| {
                input
                    .bbox(c)
                    .is_some_and(|b| output.at(b.top, b.left) != mark)
            })
            .collect();
        let [unmarked] = unmarked[..] else {
            return None;
        };
        Some(Params::Detect { unmarked, mark })
    }

    fn reconstruct(&self, p: &Params, input: &Grid, _output: &Grid) -> Option<Scene> {
        plain_scene(input, Some((params(p)?.0, 2)))
    }
}
