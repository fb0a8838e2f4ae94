//! [`TaskKind`] (the eight tasks by name), [`Params`] (what a quiz fixes for
//! both of its pairs) and the [`Task`] trait every task implements.

use crate::error::Violation;
use rand_chacha::ChaCha8Rng;

use crate::grid::{Grid, Rect};
use crate::scene::Scene;
use crate::{QuizError, tasks};

/// The eight tasks of reference 004's interpretability world.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// The first rectangle's colour is replaced by a fourth colour.
    ReplaceColor,
    /// The last rectangle moves one cell in a fixed direction (one of the 8 neighbours).
    Translate,
    /// The last rectangle grows by one cell on every side, or shrinks by one (fixed per quiz).
    Grow,
    /// Each rectangle has a line of a second colour through its middle; the
    /// last one's half on a fixed side of the line is filled with the line's colour.
    HalfFill,
    /// The last rectangle is hollowed out to its one-cell border.
    Frame,
    /// Every rectangle but the last gets a three-cell L mark of a fourth colour at its top-left corner.
    Detect,
    /// The input shows only L marks at two opposite corners of each rectangle; f fills the rectangles.
    Corners,
    /// At least one rectangle touches the first along a side; in f the
    /// rectangles touching the first get their one-cell border recoloured with
    /// the first's colour, the others stay plain.
    Contact,
}

impl TaskKind {
    /// The eight, in reference 004's order.
    pub const ALL: [TaskKind; 8] = [
        TaskKind::ReplaceColor,
        TaskKind::Translate,
        TaskKind::Grow,
        TaskKind::HalfFill,
        TaskKind::Frame,
        TaskKind::Detect,
        TaskKind::Corners,
        TaskKind::Contact,
    ];

    /// The name used in files and on the command line (`replace_color`, ..., `contact`).
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::ReplaceColor => "replace_color",
            TaskKind::Translate => "translate",
            TaskKind::Grow => "grow",
            TaskKind::HalfFill => "half_fill",
            TaskKind::Frame => "frame",
            TaskKind::Detect => "detect",
            TaskKind::Corners => "corners",
            TaskKind::Contact => "contact",
        }
    }

    /// The task of a name; the error lists the valid names.
    pub fn from_name(s: &str) -> Result<TaskKind, QuizError> {
        TaskKind::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| QuizError::UnknownTask {
                name: s.to_string(),
                valid: TaskKind::valid_names(),
            })
    }

    /// The valid names, comma-separated.
    pub fn valid_names() -> String {
        TaskKind::ALL.map(TaskKind::name).join(", ")
    }

    /// The task's implementation.
    pub fn task(self) -> &'static dyn Task {
        match self {
            TaskKind::ReplaceColor => &tasks::ReplaceColor,
            TaskKind::Translate => &tasks::Translate,
            TaskKind::Grow => &tasks::Grow,
            TaskKind::HalfFill => &tasks::HalfFill,
            TaskKind::Frame => &tasks::Frame,
            TaskKind::Detect => &tasks::Detect,
            TaskKind::Corners => &tasks::Corners,
            TaskKind::Contact => &tasks::Contact,
        }
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TaskKind {
    type Err = QuizError;
    fn from_str(s: &str) -> Result<TaskKind, QuizError> {
        TaskKind::from_name(s)
    }
}

/// Which way grow goes (fixed per quiz).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Growth {
    /// The input shows the small rectangle, f the one a cell larger on every side.
    Grow,
    /// The input shows the large rectangle, f the one a cell smaller on every side.
    Shrink,
}

/// half_fill: the line's orientation and the side that is filled (fixed per quiz).
///
/// For a rectangle of height `h` from row `top`, a horizontal line is at row
/// `top + h/2` when the lower half is filled and `top + (h-1)/2` when the upper
/// half is (the same row when `h` is odd); likewise for vertical lines. The
/// filled half includes the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Horizontal line; the rows from the line down are filled.
    Down,
    /// Horizontal line; the rows from the top to the line are filled.
    Up,
    /// Vertical line; the columns from the line rightwards are filled.
    Right,
    /// Vertical line; the columns from the left to the line are filled.
    Left,
}

impl Side {
    /// The four, in the order generation draws them.
    pub const ALL: [Side; 4] = [Side::Down, Side::Up, Side::Right, Side::Left];

    /// Whether the line is a row.
    pub fn horizontal(self) -> bool {
        matches!(self, Side::Down | Side::Up)
    }

    /// The row (horizontal) or column (vertical) of `rect`'s line.
    pub fn line(self, rect: Rect) -> usize {
        match self {
            Side::Down => rect.top + rect.height() / 2,
            Side::Up => rect.top + (rect.height().saturating_sub(1)) / 2,
            Side::Right => rect.left + rect.width() / 2,
            Side::Left => rect.left + (rect.width().saturating_sub(1)) / 2,
        }
    }

    /// The part of `rect` filled in f: the line and the half on this side of it.
    pub fn half(self, rect: Rect) -> Rect {
        let l = self.line(rect);
        match self {
            Side::Down => Rect { top: l, ..rect },
            Side::Up => Rect {
                bottom: l + 1,
                ..rect
            },
            Side::Right => Rect { left: l, ..rect },
            Side::Left => Rect {
                right: l + 1,
                ..rect
            },
        }
    }

    /// The line's cells as a rectangle one cell thick.
    pub fn line_rect(self, rect: Rect) -> Rect {
        let l = self.line(rect);
        if self.horizontal() {
            Rect {
                top: l,
                bottom: l + 1,
                ..rect
            }
        } else {
            Rect {
                left: l,
                right: l + 1,
                ..rect
            }
        }
    }
}

/// corners: which pair of opposite corners carries the L marks (fixed per quiz).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Diagonal {
    /// Top-left and bottom-right.
    Main,
    /// Top-right and bottom-left.
    Anti,
}

/// What a quiz fixes for both of its pairs, beyond the grids: the colours
/// that play a role in the rule and the task's direction, side or polarity.
///
/// Everything here can be read back from A and f(A) ([`Task::infer`]); that
/// is how [`crate::Quiz::from_tokens`] and [`crate::read_quiz_file`] rebuild it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Params {
    /// replace_color: cells of colour `from` (the first rectangle) become `to`.
    ReplaceColor {
        /// The first rectangle's colour.
        from: u8,
        /// The fourth colour.
        to: u8,
    },
    /// translate: the rectangle of colour `colour` (the last) moves by (`dr`, `dc`).
    Translate {
        /// The last rectangle's colour.
        colour: u8,
        /// Rows moved, -1..=1.
        dr: i8,
        /// Columns moved, -1..=1.
        dc: i8,
    },
    /// grow: the rectangle of colour `colour` (the last) grows or shrinks.
    Grow {
        /// The last rectangle's colour.
        colour: u8,
        /// Which way.
        growth: Growth,
    },
    /// half_fill: the rectangle of colour `colour` (the last) has its half on `side` filled.
    HalfFill {
        /// The last rectangle's colour (its line has another).
        colour: u8,
        /// Line orientation and filled side.
        side: Side,
    },
    /// frame: the rectangle of colour `colour` (the last) is hollowed out.
    Frame {
        /// The last rectangle's colour.
        colour: u8,
    },
    /// detect: every rectangle but the one of colour `unmarked` gets an L of colour `mark`.
    Detect {
        /// The last rectangle's colour.
        unmarked: u8,
        /// The fourth colour.
        mark: u8,
    },
    /// corners: the marks are at the corners of `diagonal`.
    Corners {
        /// Which corners.
        diagonal: Diagonal,
    },
    /// contact: rectangles touching the one of colour `first` get a border of that colour.
    Contact {
        /// The first rectangle's colour.
        first: u8,
    },
}

impl Params {
    /// The task these parameters belong to.
    pub fn kind(&self) -> TaskKind {
        match self {
            Params::ReplaceColor { .. } => TaskKind::ReplaceColor,
            Params::Translate { .. } => TaskKind::Translate,
            Params::Grow { .. } => TaskKind::Grow,
            Params::HalfFill { .. } => TaskKind::HalfFill,
            Params::Frame { .. } => TaskKind::Frame,
            Params::Detect { .. } => TaskKind::Detect,
            Params::Corners { .. } => TaskKind::Corners,
            Params::Contact { .. } => TaskKind::Contact,
        }
    }

    /// Checks the values: colours in `1..=10`, two role colours distinct, a
    /// translation one of the 8 neighbours.
    pub fn check(&self) -> Result<(), Violation> {
        let colour = |c: u8, what: &str| {
            if (1..crate::N_COLOURS as u8).contains(&c) {
                Ok(())
            } else {
                Err(Violation(format!(
                    "{what} colour {c}: expected 1..={}",
                    crate::N_COLOURS - 1
                )))
            }
        };
        match *self {
            Params::ReplaceColor { from, to } => {
                colour(from, "`from`")?;
                colour(to, "`to`")?;
                if from == to {
                    return Err(Violation(format!("`from` and `to` are both colour {from}")));
                }
            }
            Params::Translate { colour: c, dr, dc } => {
                colour(c, "moved")?;
                if !(-1..=1).contains(&dr) || !(-1..=1).contains(&dc) || (dr, dc) == (0, 0) {
                    return Err(Violation(format!(
                        "translation ({dr}, {dc}): expected one of the 8 neighbours"
                    )));
                }
            }
            Params::Grow { colour: c, .. }
            | Params::HalfFill { colour: c, .. }
            | Params::Frame { colour: c } => colour(c, "last rectangle's")?,
            Params::Detect { unmarked, mark } => {
                colour(unmarked, "unmarked")?;
                colour(mark, "mark")?;
                if unmarked == mark {
                    return Err(Violation(format!(
                        "unmarked and mark are both colour {mark}"
                    )));
                }
            }
            Params::Corners { .. } => {}
            Params::Contact { first } => colour(first, "first rectangle's")?,
        }
        Ok(())
    }
}

/// One task of the world: how a quiz of it is drawn, what its transformation
/// f is, and how its parameters and scenes are read back from grids.
///
/// A quiz draws a palette of distinct colours and the [`Params`] once, then
/// two scenes (three rectangles each) independently: A and B. `draw` renders
/// a scene and its image under f; `rule` is f computed from an input grid
/// alone (with the parameters), which is what [`crate::Quiz::check`] uses.
pub trait Task: Send + Sync {
    /// Which task this is.
    fn kind(&self) -> TaskKind;

    /// How many distinct colours a quiz of this task draws (its palette).
    fn n_colours(&self) -> usize;

    /// The per-quiz parameters from the palette and, where the task has one,
    /// a random direction, side or polarity.
    fn draw_params(&self, palette: &[u8], rng: &mut ChaCha8Rng) -> Params;

    /// The shapes of one grid from its three rectangles: rectangle `n` gets
    /// palette colour `n` (half_fill: `2n`, and `2n+1` for its line).
    fn shapes(&self, palette: &[u8], rects: &[Rect]) -> Scene {
        crate::scene::plain_shapes(palette, rects)
    }

    /// The task's constraint on rectangle `index` alone (e.g. grow: the last
    /// is at least 4x4), applied while drawing it; a scene must still pass
    /// [`Task::scene_ok`].
    fn rect_ok(&self, _params: &Params, _index: usize, _rect: &Rect, _size: usize) -> bool {
        true
    }

    /// The task's own constraints on a scene, beyond the common ones (three
    /// rectangles, at least 3x3, at most half the grid, no overlap, distinct colours).
    fn scene_ok(&self, params: &Params, scene: &Scene, size: usize) -> Result<(), Violation>;

    /// The input grid of a scene and its image under f.
    fn draw(&self, params: &Params, scene: &Scene, size: usize) -> (Grid, Grid);

    /// f computed from an input grid and the parameters.
    fn rule(&self, params: &Params, input: &Grid) -> Grid;

    /// The parameters shown by an example pair (input, f(input)), if it is one.
    fn infer(&self, input: &Grid, output: &Grid) -> Option<Params>;

    /// The scene behind an example pair, with the rectangles that play a role
    /// at their index (first = 0, last = 2) and the others by colour.
    fn reconstruct(&self, params: &Params, input: &Grid, output: &Grid) -> Option<Scene>;

    /// A scene meeting every constraint for any supported size, used when
    /// rejection sampling runs out of tries (which the tests show it does not
    /// in practice): rectangles (0,0) 3x3, (0,3) 3x3 and (4,4) 3x3 (4x4 for grow).
    fn fallback_rects(&self, _params: &Params, _size: usize) -> [Rect; 3] {
        [
            Rect::new(0, 0, 3, 3),
            Rect::new(0, 3, 3, 3),
            Rect::new(4, 4, 3, 3),
        ]
    }
}
