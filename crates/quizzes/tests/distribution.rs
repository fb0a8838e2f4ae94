//! A summary of what generation produces (run with `--nocapture` to read it),
//! with bounds that catch a degenerate distribution.

use std::collections::BTreeMap;

use kibitzer_quizzes::{Params, QuizGenerator, Scene, TaskKind};

fn scenes(q: &kibitzer_quizzes::Quiz) -> [Scene; 2] {
    let t = q.task.task();
    [
        t.reconstruct(&q.params, &q.grids[0], &q.grids[1]).unwrap(),
        t.reconstruct(&q.params, &q.grids[2], &q.grids[3]).unwrap(),
    ]
}

#[test]
fn contact_quizzes_often_have_a_rectangle_that_does_not_touch() {
    for size in [8, 10, 16] {
        let g = QuizGenerator::new(size, &[TaskKind::Contact], 17).unwrap();
        let n = 2000;
        let (mut grids_free, mut quizzes_free, mut both_free, mut a_free) = (0, 0, 0, 0);
        let mut touching = [0usize; 3];
        for i in 0..n {
            let q = g.quiz(i);
            let free = scenes(&q).map(|s| {
                let k = s[1..].iter().filter(|x| x.rect.touches(&s[0].rect)).count();
                touching[k] += 1;
                k < 2
            });
            grids_free += free.iter().filter(|&&f| f).count();
            quizzes_free += usize::from(free[0] || free[1]);
            both_free += usize::from(free[0] && free[1]);
            a_free += usize::from(free[0]);
        }
        let f = |k: usize, d: u64| k as f64 / d as f64;
        println!(
            "contact {size}x{size}: grids with a rectangle not touching the first {:.3}; quizzes with one in A or B {:.3}, in both {:.3}, in A {:.3}; grids by rectangles touching the first (0/1/2): {touching:?}",
            f(grids_free, 2 * n),
            f(quizzes_free, n),
            f(both_free, n),
            f(a_free, n)
        );
        assert_eq!(touching[0], 0);
        assert!(
            f(grids_free, 2 * n) > 0.3,
            "too few contact grids with a separate rectangle"
        );
        assert!(
            f(touching[2], 2 * n) > 0.1,
            "too few contact grids where both touch"
        );
    }
}

#[test]
fn parameters_and_tasks_are_spread() {
    let n = 4000u64;
    let g = QuizGenerator::new(10, &TaskKind::ALL, 23).unwrap();
    let mut tasks: BTreeMap<&str, usize> = BTreeMap::new();
    let mut params: BTreeMap<String, usize> = BTreeMap::new();
    let (mut area, mut rects, mut tries, mut max_tries, mut fallbacks) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut areas = BTreeMap::new();
    for i in 0..n {
        let (q, stats) = g.quiz_with_stats(i);
        *tasks.entry(q.task.name()).or_default() += 1;
        let key = match q.params {
            Params::Translate { dr, dc, .. } => Some(format!("translate ({dr},{dc})")),
            Params::Grow { growth, .. } => Some(format!("grow {growth:?}")),
            Params::HalfFill { side, .. } => Some(format!("half_fill {side:?}")),
            Params::Corners { diagonal } => Some(format!("corners {diagonal:?}")),
            _ => None,
        };
        if let Some(k) = key {
            *params.entry(k).or_default() += 1;
        }
        for s in scenes(&q) {
            for shape in s {
                area += shape.rect.area();
                rects += 1;
                *areas.entry(shape.rect.area() / 10 * 10).or_insert(0usize) += 1;
            }
        }
        tries += stats.tries[0] + stats.tries[1];
        max_tries = max_tries.max(stats.tries[0].max(stats.tries[1]));
        fallbacks += stats.fallback.iter().filter(|&&f| f).count();
    }
    println!("tasks over {n} quizzes: {tasks:?}");
    println!("parameters: {params:?}");
    println!(
        "rectangles: mean area {:.1} cells; areas by tens {areas:?}; scene draws per grid: mean {:.1}, max {max_tries}; fallbacks {fallbacks}",
        area as f64 / rects as f64,
        tries as f64 / (2 * n) as f64
    );
    assert_eq!(tasks.len(), 8);
    for (t, &c) in &tasks {
        let p = c as f64 / n as f64;
        assert!((0.1..0.15).contains(&p), "{t}: {p}");
    }
    assert_eq!(
        params.keys().filter(|k| k.starts_with("translate")).count(),
        8
    );
    assert_eq!(
        params.keys().filter(|k| k.starts_with("half_fill")).count(),
        4
    );
    assert_eq!(
        params
            .keys()
            .filter(|k| k.starts_with("grow") || k.starts_with("corners"))
            .count(),
        4
    );
    assert_eq!(fallbacks, 0);
}

#[test]
fn no_fallback_at_the_smallest_size() {
    // The tightest case: 8x8, where three rectangles rarely fit.
    let g = QuizGenerator::new(8, &TaskKind::ALL, 29).unwrap();
    let mut worst = BTreeMap::new();
    for task in TaskKind::ALL {
        for i in 0..300 {
            let (q, stats) = g.quiz_of_with_stats(task, i);
            assert!(
                !stats.fallback[0] && !stats.fallback[1],
                "{task} quiz {i} fell back"
            );
            q.validate().unwrap();
            let w = worst.entry(task.name()).or_insert(0);
            *w = (*w).max(stats.tries[0].max(stats.tries[1]));
        }
    }
    println!(
        "8x8: most scene draws for one grid, by task: {worst:?} (limit {})",
        kibitzer_quizzes::MAX_SCENE_TRIES
    );
}
