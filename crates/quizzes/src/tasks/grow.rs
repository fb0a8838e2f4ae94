//! grow: the last rectangle grows by one cell on every side, or shrinks by one.

use crate::error::Violation;
use rand_chacha::ChaCha8Rng;

use crate::grid::{Grid, Rect};
use crate::rng::below;
use crate::scene::{Scene, changes, paint_plain, scene_by_colour, single};
use crate::task::{Growth, Params, Task, TaskKind};

/// grow.
#[derive(Clone, Copy, Debug, Default)]
pub struct Grow;

/// Smallest side of the last rectangle at its large size (so the small one is at least 2x2).
pub const MIN_LARGE_SIDE: usize = 4;

fn params(p: &Params) -> Option<(u8, Growth)> {
    match *p {
        Params::Grow { colour, growth } => Some((colour, growth)),
        _ => None,
    }
}

impl Task for Grow {
    fn kind(&self) -> TaskKind {
        TaskKind::Grow
    }

    fn n_colours(&self) -> usize {
        3
    }

    fn draw_params(&self, palette: &[u8], rng: &mut ChaCha8Rng) -> Params {
        let growth = [Growth::Grow, Growth::Shrink][below(rng, 2)];
        Params::Grow {
            colour: palette[2],
            growth,
        }
    }

    fn rect_ok(&self, _p: &Params, index: usize, rect: &Rect, _size: usize) -> bool {
        index != 2 || (rect.height() >= MIN_LARGE_SIDE && rect.width() >= MIN_LARGE_SIDE)
    }

    fn scene_ok(&self, p: &Params, scene: &Scene, _size: usize) -> Result<(), Violation> {
        let (colour, _) = params(p).ok_or("not grow parameters")?;
        if scene[2].colour != colour {
            return Err(Violation(format!(
                "the last rectangle has colour {}, the parameters say {colour}",
                scene[2].colour
            )));
        }
        let r = scene[2].rect;
        if r.height() < MIN_LARGE_SIDE || r.width() < MIN_LARGE_SIDE {
            return Err(Violation(format!(
                "the last rectangle is {}x{}: expected at least {MIN_LARGE_SIDE}x{MIN_LARGE_SIDE} at its large size",
                r.height(),
                r.width()
            )));
        }
        Ok(())
    }

    fn draw(&self, p: &Params, scene: &Scene, size: usize) -> (Grid, Grid) {
        let (mut x, mut fx) = (Grid::new(size), Grid::new(size));
        let others = &scene[..2.min(scene.len())];
        paint_plain(&mut x, others);
        paint_plain(&mut fx, others);
        if let Some((_, growth)) = params(p)
            && let Some(last) = scene.get(2)
            && let Some(small) = last.rect.shrunk()
        {
            let (a, b) = match growth {
                Growth::Grow => (small, last.rect),
                Growth::Shrink => (last.rect, small),
            };
            x.fill(a, last.colour);
            fx.fill(b, last.colour);
        }
        (x, fx)
    }

    fn rule(&self, p: &Params, input: &Grid) -> Grid {
        let mut out = input.clone();
        let Some((colour, growth)) = params(p) else {
            return out;
        };
        let Some(b) = input.bbox(colour) else {
            return out;
        };
        out.recolour(colour, 0);
        let target = match growth {
            // Clipped at the edges, so that any input has an image.
            Growth::Grow => Some(Rect {
                top: b.top.saturating_sub(1),
                left: b.left.saturating_sub(1),
                bottom: (b.bottom + 1).min(input.size()),
                right: (b.right + 1).min(input.size()),
            }),
            Growth::Shrink => b.shrunk(),
        };
        if let Some(t) = target {
            out.fill(t, colour);
        }
        out
    }

    fn infer(&self, input: &Grid, output: &Grid) -> Option<Params> {
        let ch = changes(input, output);
        let colour = single(ch.iter().flat_map(|&(a, b)| [a, b]).filter(|&v| v != 0))?;
        let (a, b) = (input.bbox(colour)?, output.bbox(colour)?);
        let growth = if a.grown(input.size()) == Some(b) {
            Growth::Grow
        } else if a.shrunk() == Some(b) {
            Growth::Shrink
        } else {
            return None;
        };
        Some(Params::Grow { colour, growth })
    }

    fn reconstruct(&self, p: &Params, input: &Grid, output: &Grid) -> Option<Scene> {
        let (colour, growth) = params(p)?;
        scene_by_colour(&input.colours(), Some((colour, 2)), |c| {
            match (c == colour, growth) {
                (true, Growth::Grow) => output.bbox(c),
                _ => input.bbox(c),
            }
        })
    }

    fn fallback_rects(&self, _params: &Params, _size: usize) -> [Rect; 3] {
        [
            Rect::new(0, 0, 3, 3),
            Rect::new(0, 3, 3, 3),
            Rect::new(4, 4, 4, 4),
        ]
    }
}
