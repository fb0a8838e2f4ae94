//! Helpers shared by the integration tests.
#![allow(dead_code)]

use kibitzer_quizzes::{Grid, Params, Quiz, Rect, Scene, Shape, TaskKind};

/// A scene of plain shapes: (rect, colour).
pub fn scene(shapes: &[(Rect, u8)]) -> Scene {
    shapes
        .iter()
        .map(|&(rect, colour)| Shape {
            rect,
            colour,
            line: 0,
        })
        .collect()
}

/// A quiz of `task` whose A and B are drawn from the two scenes.
pub fn quiz_from_scenes(params: Params, a: &Scene, b: &Scene, size: usize) -> Quiz {
    let t = params.kind().task();
    let (ga, gfa) = t.draw(&params, a, size);
    let (gb, gfb) = t.draw(&params, b, size);
    Quiz {
        task: params.kind(),
        grids: [ga, gfa, gb, gfb],
        params,
    }
}

/// Cells of colour `c`.
pub fn count(g: &Grid, c: u8) -> usize {
    g.cells().iter().filter(|&&v| v == c).count()
}

/// The grid as text, for assertion messages.
pub fn show(q: &Quiz) -> String {
    let mut s = format!("{} {:?}\n", q.task, q.params);
    for (name, g) in kibitzer_quizzes::GRID_NAMES.iter().zip(&q.grids) {
        s.push_str(&format!("{name}:\n{}", g.to_text()));
    }
    s
}

/// All tasks.
pub fn tasks() -> [TaskKind; 8] {
    TaskKind::ALL
}
