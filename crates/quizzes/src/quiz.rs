//! [`Quiz`]: four grids A, f(A), B, f(B) of one task, as grids and as tokens.

use crate::grid::Grid;
use crate::scene::check_scene;
use crate::task::{Params, TaskKind};
use crate::{BOS, Layout, MARKER_A, N_COLOURS, QuizError};

/// The names of the four grids, in sequence order.
pub const GRID_NAMES: [&str; 4] = ["A", "f(A)", "B", "f(B)"];

/// One quiz: two example pairs of the same task with the same colours and
/// parameters. A model reads A, f(A) and B and writes f(B).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "QuizRepr")]
pub struct Quiz {
    /// The task.
    pub task: TaskKind,
    /// A, f(A), B, f(B).
    pub grids: [Grid; 4],
    /// What the quiz fixes for both pairs (colours with a role, direction...);
    /// what [`Quiz::check`] applies to B.
    pub params: Params,
}

/// The serialised form of a quiz, checked on the way in.
#[derive(serde::Deserialize)]
struct QuizRepr {
    task: TaskKind,
    grids: [Grid; 4],
    params: Params,
}

impl TryFrom<QuizRepr> for Quiz {
    type Error = QuizError;
    fn try_from(r: QuizRepr) -> Result<Quiz, QuizError> {
        let quiz = Quiz {
            task: r.task,
            grids: r.grids,
            params: r.params,
        };
        quiz.check_shape()?;
        Ok(quiz)
    }
}

/// The parameters an example pair shows for `task`, if it is an example of
/// it: read by the task, then confirmed by applying its rule to `input`.
pub fn infer_params(task: TaskKind, input: &Grid, output: &Grid) -> Option<Params> {
    if input.size() != output.size() {
        return None;
    }
    let t = task.task();
    let p = t.infer(input, output)?;
    (p.kind() == task && p.check().is_ok() && t.rule(&p, input) == *output).then_some(p)
}

impl Quiz {
    /// Side of the grids.
    pub fn grid_size(&self) -> usize {
        self.grids[0].size()
    }

    /// The quiz's layout.
    pub fn layout(&self) -> Result<Layout, QuizError> {
        Layout::new(self.grid_size())
    }

    /// The full sequence with BOS: `BOS, A, cells, f(A), cells, B, cells, f(B), cells`
    /// (length [`Layout::seq_len`]).
    pub fn tokens(&self) -> Vec<u32> {
        let n = self.grid_size() * self.grid_size();
        let mut t = Vec::with_capacity(1 + 4 * (1 + n));
        t.push(BOS);
        for (g, grid) in self.grids.iter().enumerate() {
            t.push(MARKER_A + g as u32);
            t.extend(grid.tokens());
        }
        t
    }

    /// The prompt: the first [`Layout::prompt_len`] tokens (everything up to
    /// and including the f(B) marker).
    pub fn prompt_tokens(&self) -> Vec<u32> {
        let mut t = self.tokens();
        t.truncate(t.len() - self.grid_size() * self.grid_size());
        t
    }

    /// A quiz from its token sequence (with BOS). Checks the length, BOS, the
    /// four markers and that every cell is a colour, then reads the task's
    /// parameters from A and f(A) (an error if they are not an example of `task`).
    pub fn from_tokens(task: TaskKind, tokens: &[u32], layout: &Layout) -> Result<Quiz, QuizError> {
        if tokens.len() != layout.seq_len() {
            return Err(QuizError::Tokens(format!(
                "{} tokens: expected {} for {}x{} grids",
                tokens.len(),
                layout.seq_len(),
                layout.grid_size,
                layout.grid_size
            )));
        }
        if tokens[0] != BOS {
            return Err(QuizError::Tokens(format!(
                "position 0 is {}: expected BOS ({BOS})",
                tokens[0]
            )));
        }
        let s = layout.grid_size;
        let mut grids = Vec::with_capacity(4);
        for (g, name) in GRID_NAMES.iter().enumerate() {
            let m = layout.marker_position(g);
            let want = MARKER_A + g as u32;
            if tokens[m] != want {
                return Err(QuizError::Tokens(format!(
                    "position {m} is {}: expected the {name} marker ({want})",
                    tokens[m]
                )));
            }
            let mut cells = Vec::with_capacity(layout.cells());
            for (i, &t) in tokens[layout.grid_range(g)].iter().enumerate() {
                if t >= N_COLOURS {
                    return Err(QuizError::Tokens(format!(
                        "position {} (grid {name}, row {}, column {}) is {t}: expected a colour 0..={}",
                        layout.grid_start(g) + i,
                        i / s,
                        i % s,
                        N_COLOURS - 1
                    )));
                }
                cells.push(t as u8);
            }
            grids.push(Grid::from_cells(s, cells)?);
        }
        let [a, fa, b, fb]: [Grid; 4] = grids
            .try_into()
            .map_err(|_| QuizError::Tokens("four grids expected".into()))?;
        let params = infer_params(task, &a, &fa).ok_or_else(|| QuizError::NotAnInstance {
            task: task.name(),
            reason: "its parameters cannot be read from A and f(A)".into(),
        })?;
        Ok(Quiz {
            task,
            grids: [a, fa, b, fb],
            params,
        })
    }

    /// The stored answer, f(B).
    pub fn answer(&self) -> &Grid {
        &self.grids[3]
    }

    /// f(B) computed from B by the task's rule with the quiz's parameters
    /// (B itself if the parameters are not the task's).
    pub fn expected_answer(&self) -> Grid {
        self.task.task().rule(&self.params, &self.grids[2])
    }

    /// The task's checker: whether `written` is the correct f(B), computed
    /// from B by the task's rule (not by comparing with the stored grid).
    pub fn check(&self, written: &Grid) -> bool {
        written.size() == self.grid_size()
            && self.params.kind() == self.task
            && self.params.check().is_ok()
            && self.expected_answer() == *written
    }

    /// Sizes and parameters agree with each other and with the task.
    fn check_shape(&self) -> Result<(), QuizError> {
        let bad = |reason: String| QuizError::NotAnInstance {
            task: self.task.name(),
            reason,
        };
        if self.params.kind() != self.task {
            return Err(bad(format!(
                "its parameters are those of `{}`",
                self.params.kind()
            )));
        }
        self.params
            .check()
            .map_err(|e| bad(format!("parameters: {e}")))?;
        let s = self.grid_size();
        Layout::new(s)?;
        if let Some(g) = self.grids.iter().position(|g| g.size() != s) {
            return Err(bad(format!(
                "grid {0} is {1}x{1}, grid A is {s}x{s}",
                GRID_NAMES[g],
                self.grids[g].size()
            )));
        }
        Ok(())
    }

    /// Every rule of the world, checked on the grids alone: three rectangles
    /// per grid, at least 3x3 and at most half the grid, none overlapping;
    /// A and B of the same colours; the parameters as A and f(A) show them;
    /// each input grid exactly the drawing of its rectangles, and each output
    /// the task's transformation of its input; the task's own constraints
    /// (contact: a rectangle touches the first; translate: the moved
    /// rectangle stays inside and clear of the others; ...).
    pub fn validate(&self) -> Result<(), QuizError> {
        self.check_shape()?;
        let bad = |reason: String| QuizError::NotAnInstance {
            task: self.task.name(),
            reason,
        };
        let t = self.task.task();
        let [a, fa, b, fb] = &self.grids;
        match infer_params(self.task, a, fa) {
            Some(p) if p == self.params => {}
            Some(p) => {
                return Err(bad(format!(
                    "A and f(A) show parameters {p:?}, the quiz says {:?}",
                    self.params
                )));
            }
            None => return Err(bad("its parameters cannot be read from A and f(A)".into())),
        }
        let mut palettes = Vec::new();
        for (name, x, fx) in [("A", a, fa), ("B", b, fb)] {
            let scene = t
                .reconstruct(&self.params, x, fx)
                .ok_or_else(|| bad(format!("the rectangles of {name} cannot be read")))?;
            check_scene(t, &self.params, &scene, self.grid_size())
                .map_err(|e| bad(format!("{name}: {e}")))?;
            let (dx, dfx) = t.draw(&self.params, &scene, self.grid_size());
            if dx != *x {
                return Err(bad(format!(
                    "{name} is not the drawing of its rectangles {scene:?}"
                )));
            }
            if dfx != *fx || t.rule(&self.params, x) != *fx {
                return Err(bad(format!(
                    "f({name}) is not the transformation of {name}"
                )));
            }
            let mut colours: Vec<(u8, u8)> = scene.iter().map(|s| (s.colour, s.line)).collect();
            colours.sort_unstable();
            palettes.push(colours);
        }
        if palettes[0] != palettes[1] {
            return Err(bad(format!(
                "A has colours {:?}, B {:?}",
                palettes[0], palettes[1]
            )));
        }
        Ok(())
    }
}
