//! frame: the last rectangle is hollowed out to its one-cell border.

use crate::error::Violation;
use rand_chacha::ChaCha8Rng;

use crate::grid::Grid;
use crate::scene::{Scene, changes, paint_plain, plain_scene, single};
use crate::task::{Params, Task, TaskKind};

/// frame.
#[derive(Clone, Copy, Debug, Default)]
pub struct Frame;

fn params(p: &Params) -> Option<u8> {
    match *p {
        Params::Frame { colour } => Some(colour),
        _ => None,
    }
}

impl Task for Frame {
    fn kind(&self) -> TaskKind {
        TaskKind::Frame
    }

    fn n_colours(&self) -> usize {
        3
    }

    fn draw_params(&self, palette: &[u8], _rng: &mut ChaCha8Rng) -> Params {
        Params::Frame { colour: palette[2] }
    }

    fn scene_ok(&self, p: &Params, scene: &Scene, _size: usize) -> Result<(), Violation> {
        let colour = params(p).ok_or("not frame parameters")?;
        if scene[2].colour != colour {
            return Err(Violation(format!(
                "the last rectangle has colour {}, the parameters say {colour}",
                scene[2].colour
            )));
        }
        Ok(())
    }

    fn draw(&self, _p: &Params, scene: &Scene, size: usize) -> (Grid, Grid) {
        let (mut x, mut fx) = (Grid::new(size), Grid::new(size));
        paint_plain(&mut x, scene);
        paint_plain(&mut fx, &scene[..2.min(scene.len())]);
        if let Some(last) = scene.get(2) {
            fx.ring(last.rect, last.colour);
        }
        (x, fx)
    }

    fn rule(&self, p: &Params, input: &Grid) -> Grid {
        let mut out = input.clone();
        let Some(colour) = params(p) else { return out };
        let Some(b) = input.bbox(colour) else {
            return out;
        };
        if let Some(inner) = b.shrunk() {
            for r in inner.top..inner.bottom {
                for c in inner.left..inner.right {
                    if input.at(r, c) == colour {
                        out.put(r, c, 0);
                    }
                }
            }
        }
        out
    }

    fn infer(&self, input: &Grid, output: &Grid) -> Option<Params> {
        let ch = changes(input, output);
        let colour = single(ch.iter().map(|c| c.0))?;
        (colour != 0 && single(ch.iter().map(|c| c.1)) == Some(0))
            .then_some(Params::Frame { colour })
    }

    fn reconstruct(&self, p: &Params, input: &Grid, _output: &Grid) -> Option<Scene> {
        plain_scene(input, Some((params(p)?, 2)))
    }
}
