//! replace_color: the first rectangle's colour is replaced by a fourth colour.

use crate::error::Violation;
use rand_chacha::ChaCha8Rng;

use crate::grid::Grid;
use crate::scene::{Scene, changes, paint_plain, plain_scene, single};
use crate::task::{Params, Task, TaskKind};

/// replace_color.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplaceColor;

fn params(p: &Params) -> Option<(u8, u8)> {
    match *p {
        Params::ReplaceColor { from, to } => Some((from, to)),
        _ => None,
    }
}

impl Task for ReplaceColor {
    fn kind(&self) -> TaskKind {
        TaskKind::ReplaceColor
    }

    fn n_colours(&self) -> usize {
        4
    }

    fn draw_params(&self, palette: &[u8], _rng: &mut ChaCha8Rng) -> Params {
        Params::ReplaceColor {
            from: palette[0],
            to: palette[3],
        }
    }

    fn scene_ok(&self, p: &Params, scene: &Scene, _size: usize) -> Result<(), Violation> {
        let (from, to) = params(p).ok_or("not replace_color parameters")?;
        if scene[0].colour != from {
            return Err(Violation(format!(
                "the first rectangle has colour {}, the parameters say {from}",
                scene[0].colour
            )));
        }
        if scene.iter().any(|s| s.colour == to) {
            return Err(Violation(format!(
                "the replacement colour {to} is already in the grid"
            )));
        }
        Ok(())
    }

    fn draw(&self, p: &Params, scene: &Scene, size: usize) -> (Grid, Grid) {
        let mut x = Grid::new(size);
        paint_plain(&mut x, scene);
        (x.clone(), self.rule(p, &x))
    }

    fn rule(&self, p: &Params, input: &Grid) -> Grid {
        let mut out = input.clone();
        if let Some((from, to)) = params(p) {
            out.recolour(from, to);
        }
        out
    }

    fn infer(&self, input: &Grid, output: &Grid) -> Option<Params> {
        let ch = changes(input, output);
        let from = single(ch.iter().map(|c| c.0))?;
        let to = single(ch.iter().map(|c| c.1))?;
        (from != 0 && to != 0).then_some(Params::ReplaceColor { from, to })
    }

    fn reconstruct(&self, p: &Params, input: &Grid, _output: &Grid) -> Option<Scene> {
        plain_scene(input, Some((params(p)?.0, 0)))
    }
}
