//! Scenes: the three coloured rectangles behind a grid, how they are drawn
//! at random, and the constraints every task shares.

use crate::error::Violation;
use rand_chacha::ChaCha8Rng;

use crate::grid::{Grid, Rect};
use crate::rng::below;
use crate::task::Task;
use crate::{N_COLOURS, Params};

/// Rectangles per grid (reference 004: 3).
pub const N_RECTS: usize = 3;
/// Smallest rectangle side.
pub const MIN_SIDE: usize = 3;

/// One rectangle of a scene with its colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Shape {
    /// Where it is.
    pub rect: Rect,
    /// Its colour, `1..=10`.
    pub colour: u8,
    /// half_fill only: the colour of the line through its middle; 0 otherwise.
    pub line: u8,
}

/// The rectangles of one grid, in drawing order: index 0 is "the first
/// rectangle", index 2 "the last" of the task descriptions.
pub type Scene = Vec<Shape>;

/// Rectangle `n` gets palette colour `n`.
pub(crate) fn plain_shapes(palette: &[u8], rects: &[Rect]) -> Scene {
    rects
        .iter()
        .zip(palette)
        .map(|(&rect, &colour)| Shape {
            rect,
            colour,
            line: 0,
        })
        .collect()
}

/// Largest area of one rectangle: half the grid.
pub fn max_area(size: usize) -> usize {
    size * size / 2
}

/// The constraints every task shares: three rectangles inside the grid, each
/// at least 3x3 and at most half the grid, none overlapping another, colours
/// (lines included) distinct and in `1..=10`.
pub fn check_common(scene: &Scene, size: usize) -> Result<(), Violation> {
    if scene.len() != N_RECTS {
        return Err(Violation(format!(
            "{} rectangles: expected {N_RECTS}",
            scene.len()
        )));
    }
    let mut seen = 0u16;
    for (i, s) in scene.iter().enumerate() {
        let r = s.rect;
        if !r.fits(size) {
            return Err(Violation(format!(
                "rectangle {i} {r:?} is not inside the {size}x{size} grid"
            )));
        }
        if r.height() < MIN_SIDE || r.width() < MIN_SIDE {
            return Err(Violation(format!(
                "rectangle {i} is {}x{}: expected at least {MIN_SIDE}x{MIN_SIDE}",
                r.height(),
                r.width()
            )));
        }
        if r.area() > max_area(size) {
            return Err(Violation(format!(
                "rectangle {i} covers {} cells: expected at most {}",
                r.area(),
                max_area(size)
            )));
        }
        for c in std::iter::once(s.colour).chain((s.line != 0).then_some(s.line)) {
            if !(1..N_COLOURS as u8).contains(&c) {
                return Err(Violation(format!(
                    "rectangle {i} has colour {c}: expected 1..={}",
                    N_COLOURS - 1
                )));
            }
            if seen & (1 << c) != 0 {
                return Err(Violation(format!("colour {c} is used twice")));
            }
            seen |= 1 << c;
        }
        for (j, t) in scene.iter().enumerate().take(i) {
            if r.overlaps(&t.rect) {
                return Err(Violation(format!("rectangles {j} and {i} overlap")));
            }
        }
    }
    Ok(())
}

/// The common constraints and the task's own.
pub fn check_scene(
    task: &dyn Task,
    params: &Params,
    scene: &Scene,
    size: usize,
) -> Result<(), Violation> {
    check_common(scene, size)?;
    task.scene_ok(params, scene, size)
}

/// Tries for one rectangle before the whole draw is given up.
const RECT_TRIES: usize = 64;

/// One rectangle as reference 004 draws them: two rows uniform in `0..s`,
/// sorted, the lower one included; the same for columns; kept if at least
/// 3x3 and at most half the grid.
pub(crate) fn draw_rect(
    rng: &mut ChaCha8Rng,
    size: usize,
    ok: impl Fn(&Rect) -> bool,
) -> Option<Rect> {
    for _ in 0..RECT_TRIES {
        let (a, b) = (below(rng, size), below(rng, size));
        let (c, d) = (below(rng, size), below(rng, size));
        let r = Rect {
            top: a.min(b),
            bottom: a.max(b) + 1,
            left: c.min(d),
            right: c.max(d) + 1,
        };
        if r.height() >= MIN_SIDE && r.width() >= MIN_SIDE && r.area() <= max_area(size) && ok(&r) {
            return Some(r);
        }
    }
    None
}

/// Three rectangles drawn independently (rectangle `i` conditioned on
/// `ok(i, rect)`, the task's constraint on that rectangle alone), kept only if
/// none overlaps another: the distribution of reference 004's joint
/// rejection sampling, with fewer rejections.
pub(crate) fn draw_rects(
    rng: &mut ChaCha8Rng,
    size: usize,
    ok: impl Fn(usize, &Rect) -> bool,
) -> Option<[Rect; N_RECTS]> {
    let rects = [
        draw_rect(rng, size, |r| ok(0, r))?,
        draw_rect(rng, size, |r| ok(1, r))?,
        draw_rect(rng, size, |r| ok(2, r))?,
    ];
    let disjoint = (0..N_RECTS).all(|i| (0..i).all(|j| !rects[i].overlaps(&rects[j])));
    disjoint.then_some(rects)
}

/// The scene of a grid whose colours are each one plain rectangle (its
/// bounding box), with colour `role` at index `at` and the others by colour.
/// `bbox` gives the rectangle of a colour.
pub(crate) fn scene_by_colour(
    colours: &[u8],
    role: Option<(u8, usize)>,
    mut bbox: impl FnMut(u8) -> Option<Rect>,
) -> Option<Scene> {
    let mut shapes: Scene = Vec::with_capacity(colours.len());
    for &c in colours {
        if role.is_some_and(|(r, _)| r == c) {
            continue;
        }
        shapes.push(Shape {
            rect: bbox(c)?,
            colour: c,
            line: 0,
        });
    }
    if let Some((r, at)) = role {
        if !colours.contains(&r) || at > shapes.len() {
            return None;
        }
        shapes.insert(
            at,
            Shape {
                rect: bbox(r)?,
                colour: r,
                line: 0,
            },
        );
    }
    Some(shapes)
}

/// The plain-rectangle reading of a grid: each colour is its bounding box.
pub(crate) fn plain_scene(x: &Grid, role: Option<(u8, usize)>) -> Option<Scene> {
    scene_by_colour(&x.colours(), role, |c| x.bbox(c))
}

/// Paints every shape of a scene as a plain rectangle.
pub(crate) fn paint_plain(grid: &mut Grid, scene: &[Shape]) {
    for s in scene {
        grid.fill(s.rect, s.colour);
    }
}

/// The pairs of values at the cells where `a` and `b` differ (same size assumed).
pub(crate) fn changes(a: &Grid, b: &Grid) -> Vec<(u8, u8)> {
    a.cells()
        .iter()
        .zip(b.cells())
        .filter(|(x, y)| x != y)
        .map(|(&x, &y)| (x, y))
        .collect()
}

/// The single value all of `values` share, if there are any and they agree.
pub(crate) fn single(values: impl IntoIterator<Item = u8>) -> Option<u8> {
    let mut it = values.into_iter();
    let first = it.next()?;
    it.all(|v| v == first).then_some(first)
}
