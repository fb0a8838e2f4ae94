//! contact: at least one rectangle touches the first along a side; in f each
//! rectangle touching the first gets its one-cell border recoloured with the
//! first's colour, the others stay plain.
//!
//! The border is the touching rectangle's own outer ring of cells, as in
//! reference 004's generator (`task_contact` in culture's `grids.py`): a
//! ring drawn outside a touching rectangle would run over the first
//! rectangle, which is its neighbour. The first rectangle's own border is in
//! its own colour, so it looks unchanged.

use crate::error::Violation;
use rand_chacha::ChaCha8Rng;

use crate::grid::Grid;
use crate::scene::{Scene, changes, paint_plain, plain_scene, single};
use crate::task::{Params, Task, TaskKind};

/// contact.
#[derive(Clone, Copy, Debug, Default)]
pub struct Contact;

fn params(p: &Params) -> Option<u8> {
    match *p {
        Params::Contact { first } => Some(first),
        _ => None,
    }
}

impl Task for Contact {
    fn kind(&self) -> TaskKind {
        TaskKind::Contact
    }

    fn n_colours(&self) -> usize {
        3
    }

    fn draw_params(&self, palette: &[u8], _rng: &mut ChaCha8Rng) -> Params {
        Params::Contact { first: palette[0] }
    }

    fn scene_ok(&self, p: &Params, scene: &Scene, _size: usize) -> Result<(), Violation> {
        let first = params(p).ok_or("not contact parameters")?;
        if scene[0].colour != first {
            return Err(Violation(format!(
                "the first rectangle has colour {}, the parameters say {first}",
                scene[0].colour
            )));
        }
        if !scene[1..].iter().any(|s| s.rect.touches(&scene[0].rect)) {
            return Err(Violation(
                "no rectangle touches the first along a side".into(),
            ));
        }
        Ok(())
    }

    fn draw(&self, p: &Params, scene: &Scene, size: usize) -> (Grid, Grid) {
        let (mut x, mut fx) = (Grid::new(size), Grid::new(size));
        paint_plain(&mut x, scene);
        paint_plain(&mut fx, scene);
        if let (Some(first), Some(s0)) = (params(p), scene.first()) {
            for s in &scene[1..] {
                if s.rect.touches(&s0.rect) {
                    fx.ring(s.rect, first);
                }
            }
        }
        (x, fx)
    }

    fn rule(&self, p: &Params, input: &Grid) -> Grid {
        let mut out = input.clone();
        let Some(first) = params(p) else { return out };
        let Some(b0) = input.bbox(first) else {
            return out;
        };
        for c in input.colours() {
            if c != first
                && let Some(b) = input.bbox(c)
                && b.touches(&b0)
            {
                out.ring(b, first);
            }
        }
        out
    }

    fn infer(&self, input: &Grid, output: &Grid) -> Option<Params> {
        let ch = changes(input, output);
        let first = single(ch.iter().map(|c| c.1))?;
        (first != 0 && ch.iter().all(|c| c.0 != 0)).then_some(Params::Contact { first })
    }

    fn reconstruct(&self, p: &Params, input: &Grid, _output: &Grid) -> Option<Scene> {
        plain_scene(input, Some((params(p)?, 0)))
    }
}
