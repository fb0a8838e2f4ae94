//! translate: the last rectangle moves one cell in a fixed direction.

use crate::error::Violation;
use rand_chacha::ChaCha8Rng;

use crate::grid::Grid;
use crate::rng::below;
use crate::scene::{Scene, changes, paint_plain, plain_scene, single};
use crate::task::{Params, Task, TaskKind};

/// translate.
#[derive(Clone, Copy, Debug, Default)]
pub struct Translate;

/// The 8 neighbours, in the order generation draws them.
pub const DIRECTIONS: [(i8, i8); 8] = [
    (-1, -1),
    (-1, 0),
    (-1, 1),
    (0, -1),
    (0, 1),
    (1, -1),
    (1, 0),
    (1, 1),
];

fn params(p: &Params) -> Option<(u8, i8, i8)> {
    match *p {
        Params::Translate { colour, dr, dc } => Some((colour, dr, dc)),
        _ => None,
    }
}

impl Task for Translate {
    fn kind(&self) -> TaskKind {
        TaskKind::Translate
    }

    fn n_colours(&self) -> usize {
        3
    }

    fn draw_params(&self, palette: &[u8], rng: &mut ChaCha8Rng) -> Params {
        let (dr, dc) = DIRECTIONS[below(rng, DIRECTIONS.len())];
        Params::Translate {
            colour: palette[2],
            dr,
            dc,
        }
    }

    fn rect_ok(&self, p: &Params, index: usize, rect: &crate::Rect, size: usize) -> bool {
        index != 2 || params(p).is_some_and(|(_, dr, dc)| rect.shifted(dr, dc, size).is_some())
    }

    fn scene_ok(&self, p: &Params, scene: &Scene, size: usize) -> Result<(), Violation> {
        let (colour, dr, dc) = params(p).ok_or("not translate parameters")?;
        if scene[2].colour != colour {
            return Err(Violation(format!(
                "the last rectangle has colour {}, the parameters say {colour}",
                scene[2].colour
            )));
        }
        let moved = scene[2]
            .rect
            .shifted(dr, dc, size)
            .ok_or("the moved rectangle leaves the grid")?;
        if scene[..2].iter().any(|s| s.rect.overlaps(&moved)) {
            return Err(Violation("the moved rectangle overlaps another".into()));
        }
        Ok(())
    }

    fn draw(&self, p: &Params, scene: &Scene, size: usize) -> (Grid, Grid) {
        let mut x = Grid::new(size);
        paint_plain(&mut x, scene);
        let mut fx = Grid::new(size);
        paint_plain(&mut fx, &scene[..2.min(scene.len())]);
        if let Some((_, dr, dc)) = params(p)
            && let Some(last) = scene.get(2)
            && let Some(moved) = last.rect.shifted(dr, dc, size)
        {
            fx.fill(moved, last.colour);
        }
        (x, fx)
    }

    fn rule(&self, p: &Params, input: &Grid) -> Grid {
        let mut out = input.clone();
        let Some((colour, dr, dc)) = params(p) else {
            return out;
        };
        let n = input.size();
        out.recolour(colour, 0);
        for r in 0..n {
            for c in 0..n {
                if input.at(r, c) == colour {
                    let (rr, cc) = (r as isize + isize::from(dr), c as isize + isize::from(dc));
                    if (0..n as isize).contains(&rr) && (0..n as isize).contains(&cc) {
                        out.put(rr as usize, cc as usize, colour);
                    }
                }
            }
        }
        out
    }

    fn infer(&self, input: &Grid, output: &Grid) -> Option<Params> {
        let ch = changes(input, output);
        let colour = single(ch.iter().flat_map(|&(a, b)| [a, b]).filter(|&v| v != 0))?;
        let (a, b) = (input.bbox(colour)?, output.bbox(colour)?);
        if (a.height(), a.width()) != (b.height(), b.width()) {
            return None;
        }
        let dr = i8::try_from(b.top as isize - a.top as isize).ok()?;
        let dc = i8::try_from(b.left as isize - a.left as isize).ok()?;
        Some(Params::Translate { colour, dr, dc })
    }

    fn reconstruct(&self, p: &Params, input: &Grid, _output: &Grid) -> Option<Scene> {
        plain_scene(input, Some((params(p)?.0, 2)))
    }

    fn fallback_rects(&self, _params: &Params, _size: usize) -> [crate::Rect; 3] {
        use crate::Rect;
        // The last rectangle moved by any neighbour stays in an 8x8 grid and clear of the others.
        [
            Rect::new(0, 0, 3, 3),
            Rect::new(0, 3, 3, 3),
            Rect::new(4, 4, 3, 3),
        ]
    }
}
