//! [`QuizGenerator`]: seeded, random-access generation of quiz sets.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::grid::Rect;
use crate::quiz::Quiz;
use crate::rng::{below, palette};
use crate::scene::{Scene, check_scene, draw_rects};
use crate::task::{Params, Task, TaskKind};
use crate::{Layout, QuizError, QuizFileHeader};

/// Scene draws (three rectangles each) tried for one grid before the task's
/// fixed fallback scene is used.
pub const MAX_SCENE_TRIES: usize = 100_000;

/// Seeded generation: quiz `index` of a set depends only on (seed, index,
/// task list, grid size), so any slice of a set can be made alone, in any
/// order, on any machine.
///
/// Quiz `index` uses ChaCha8 seeded with `seed_from_u64(seed)` on stream
/// `index`; its first word picks the task from the list, the rest draw the
/// palette, the parameters and the two scenes.
#[derive(Clone, Debug)]
pub struct QuizGenerator {
    layout: Layout,
    tasks: Vec<TaskKind>,
    seed: u64,
}

/// How a quiz's scenes were found (for the distribution summaries).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildStats {
    /// Scene draws used for A and for B.
    pub tries: [usize; 2],
    /// Whether A or B fell back to the fixed scene.
    pub fallback: [bool; 2],
}

impl QuizGenerator {
    /// A generator of `grid_size` quizzes of the listed tasks (each quiz
    /// picks one uniformly; a task listed twice is picked twice as often).
    pub fn new(
        grid_size: usize,
        tasks: &[TaskKind],
        seed: u64,
    ) -> Result<QuizGenerator, QuizError> {
        let layout = Layout::new(grid_size)?;
        if tasks.is_empty() {
            return Err(QuizError::EmptyTaskList {
                valid: TaskKind::valid_names(),
            });
        }
        Ok(QuizGenerator {
            layout,
            tasks: tasks.to_vec(),
            seed,
        })
    }

    /// Side of the grids.
    pub fn grid_size(&self) -> usize {
        self.layout.grid_size
    }

    /// The sequence layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The task list.
    pub fn tasks(&self) -> &[TaskKind] {
        &self.tasks
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The random stream of quiz `index`.
    fn rng(&self, index: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(index);
        rng
    }

    /// Quiz `index` of the set; its task is drawn uniformly from the list.
    pub fn quiz(&self, index: u64) -> Quiz {
        self.quiz_with_stats(index).0
    }

    /// Quiz `index` with how its scenes were found.
    pub fn quiz_with_stats(&self, index: u64) -> (Quiz, BuildStats) {
        let mut rng = self.rng(index);
        let task = self.tasks[below(&mut rng, self.tasks.len())];
        build(task.task(), self.grid_size(), &mut rng)
    }

    /// Quiz `index` made as a quiz of `task` (whatever the list): the same
    /// quiz as [`QuizGenerator::quiz`] gives when the list is `[task]`.
    pub fn quiz_of(&self, task: TaskKind, index: u64) -> Quiz {
        self.quiz_of_with_stats(task, index).0
    }

    /// [`QuizGenerator::quiz_of`] with how its scenes were found.
    pub fn quiz_of_with_stats(&self, task: TaskKind, index: u64) -> (Quiz, BuildStats) {
        let mut rng = self.rng(index);
        let _ = below(&mut rng, 1); // the word that picks the task in `quiz`
        build(task.task(), self.grid_size(), &mut rng)
    }

    /// Quizzes `range` of the set, in order.
    pub fn generate(&self, range: std::ops::Range<u64>) -> Vec<Quiz> {
        range.map(|i| self.quiz(i)).collect()
    }

    /// The header of a file holding `count` quizzes of this generator.
    pub fn header(&self, count: u64) -> QuizFileHeader {
        QuizFileHeader::new(self.grid_size(), &self.tasks, self.seed, count)
    }
}

/// One scene meeting the task's constraints: rejection sampling, then the
/// task's fallback.
fn draw_scene(
    t: &dyn Task,
    params: &Params,
    colours: &[u8],
    size: usize,
    rng: &mut ChaCha8Rng,
) -> (Scene, usize, bool) {
    for tries in 1..=MAX_SCENE_TRIES {
        if let Some(rects) = draw_rects(rng, size, |i, r| t.rect_ok(params, i, r, size)) {
            let scene = t.shapes(colours, &rects);
            if check_scene(t, params, &scene, size).is_ok() {
                return (scene, tries, false);
            }
        }
    }
    (
        fallback_scene(t, params, colours, size),
        MAX_SCENE_TRIES,
        true,
    )
}

/// The task's fixed scene with the quiz's colours.
pub(crate) fn fallback_scene(t: &dyn Task, params: &Params, colours: &[u8], size: usize) -> Scene {
    let rects: [Rect; 3] = t.fallback_rects(params, size);
    t.shapes(colours, &rects)
}

/// A quiz of task `t`: palette, parameters, then A's and B's scenes.
pub(crate) fn build(t: &dyn Task, size: usize, rng: &mut ChaCha8Rng) -> (Quiz, BuildStats) {
    let colours = palette(rng, t.n_colours());
    let params = t.draw_params(&colours, rng);
    let (sa, ta, fa_) = draw_scene(t, &params, &colours, size, rng);
    let (sb, tb, fb_) = draw_scene(t, &params, &colours, size, rng);
    let (a, fa) = t.draw(&params, &sa, size);
    let (b, fb) = t.draw(&params, &sb, size);
    let quiz = Quiz {
        task: t.kind(),
        grids: [a, fa, b, fb],
        params,
    };
    (
        quiz,
        BuildStats {
            tries: [ta, tb],
            fallback: [fa_, fb_],
        },
    )
}
