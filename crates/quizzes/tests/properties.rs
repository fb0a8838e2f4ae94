//! Properties of generated quizzes, for every task and random seeds, indices and sizes.

mod common;

use common::show;
use kibitzer_quizzes::{
    BOS, Grid, Layout, MARKER_A, MARKER_B, MARKER_FA, MARKER_FB, Quiz, QuizGenerator, TaskKind,
    VOCAB,
};
use proptest::prelude::*;

fn task() -> impl Strategy<Value = TaskKind> {
    (0..8usize).prop_map(|i| TaskKind::ALL[i])
}

/// Everything a generated quiz must satisfy.
fn check_generated(q: &Quiz, size: usize, shift: u8) -> Result<(), TestCaseError> {
    prop_assert_eq!(q.grid_size(), size);
    if let Err(e) = q.validate() {
        return Err(TestCaseError::fail(format!("{e}\n{}", show(q))));
    }
    // The checker accepts the true answer, recomputed from B.
    prop_assert!(q.check(q.answer()), "true answer rejected\n{}", show(q));
    prop_assert_eq!(&q.expected_answer(), q.answer());
    // ... and rejects every single-cell change of it.
    let mut w = q.answer().clone();
    for r in 0..size {
        for c in 0..size {
            let v = w.get(r, c);
            w.set(r, c, (v + shift) % 11);
            prop_assert!(
                !q.check(&w),
                "change at ({}, {}) accepted\n{}",
                r,
                c,
                show(q)
            );
            w.set(r, c, v);
        }
    }
    prop_assert!(q.check(&w));
    // The transformation does something, in both pairs.
    prop_assert_ne!(&q.grids[0], &q.grids[1], "f(A) == A\n{}", show(q));
    prop_assert_ne!(&q.grids[2], &q.grids[3], "f(B) == B\n{}", show(q));
    // Tokens.
    let layout = Layout::new(size).unwrap();
    let t = q.tokens();
    prop_assert_eq!(t.len(), layout.seq_len());
    prop_assert_eq!(t.len(), 1 + 4 * (1 + size * size));
    prop_assert!(t.iter().all(|&x| (x as usize) < VOCAB));
    prop_assert_eq!(t[0], BOS);
    for (g, m) in [MARKER_A, MARKER_FA, MARKER_B, MARKER_FB]
        .into_iter()
        .enumerate()
    {
        prop_assert_eq!(t[layout.grid_start(g) - 1], m);
        prop_assert!(t[layout.grid_range(g)].iter().all(|&x| x < 11));
    }
    prop_assert_eq!(q.prompt_tokens().len(), layout.prompt_len());
    prop_assert_eq!(&q.prompt_tokens()[..], &t[..layout.prompt_len()]);
    let answer = Grid::from_tokens(size, &t[layout.answer_range()]).unwrap();
    prop_assert_eq!(&answer, q.answer());
    let back = Quiz::from_tokens(q.task, &t, &layout).unwrap();
    prop_assert_eq!(&back, q);
    // Serde round trip.
    let json = serde_json::to_string(q).unwrap();
    prop_assert_eq!(&serde_json::from_str::<Quiz>(&json).unwrap(), q);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn generated_quizzes_are_valid(task in task(), seed in any::<u64>(), index in any::<u64>(), size in 8usize..=16, shift in 1u8..=10) {
        let g = QuizGenerator::new(size, &[task], seed).unwrap();
        let q = g.quiz_of(task, index);
        prop_assert_eq!(q.task, task);
        check_generated(&q, size, shift)?;
        // quiz() with a one-task list is quiz_of().
        prop_assert_eq!(g.quiz(index), q);
    }

    #[test]
    fn default_size_mixed_tasks(seed in any::<u64>(), index in 0u64..1_000_000, shift in 1u8..=10) {
        let g = QuizGenerator::new(10, &TaskKind::ALL, seed).unwrap();
        let q = g.quiz(index);
        check_generated(&q, 10, shift)?;
        prop_assert_eq!(q.tokens().len(), 405);
    }

    #[test]
    fn large_grids(task in task(), seed in any::<u64>(), index in any::<u64>(), size in 17usize..=32) {
        let q = QuizGenerator::new(size, &TaskKind::ALL, seed).unwrap().quiz_of(task, index);
        check_generated(&q, size, 5)?;
    }

    #[test]
    fn generation_is_deterministic(seed in any::<u64>(), start in 0u64..1_000_000, size in 8usize..=16) {
        let tasks = [TaskKind::Contact, TaskKind::Frame, TaskKind::HalfFill];
        let a = QuizGenerator::new(size, &tasks, seed).unwrap().generate(start..start + 8);
        let b = QuizGenerator::new(size, &tasks, seed).unwrap().generate(start..start + 8);
        prop_assert_eq!(&a, &b);
        // Random access: quiz i alone is quiz i of the set.
        let g = QuizGenerator::new(size, &tasks, seed).unwrap();
        prop_assert_eq!(&g.quiz(start + 5), &a[5]);
        prop_assert!(a.iter().all(|q| tasks.contains(&q.task)));
        // Another seed, other quizzes.
        let c = QuizGenerator::new(size, &tasks, seed ^ 1).unwrap().generate(start..start + 8);
        prop_assert_ne!(&a, &c);
        // Other indices, other quizzes.
        let d = g.generate(start + 8..start + 16);
        prop_assert_ne!(&a, &d);
    }
}

#[test]
fn every_single_cell_change_with_every_colour_is_rejected() {
    for (i, task) in TaskKind::ALL.into_iter().enumerate() {
        let g = QuizGenerator::new(10, &[task], 42).unwrap();
        for index in 0..4 {
            let q = g.quiz(index);
            let mut w = q.answer().clone();
            for r in 0..10 {
                for c in 0..10 {
                    let v = w.get(r, c);
                    for k in 0..11u8 {
                        w.set(r, c, k);
                        assert_eq!(
                            q.check(&w),
                            k == v,
                            "task {i} quiz {index} cell ({r}, {c}) colour {k}"
                        );
                    }
                    w.set(r, c, v);
                }
            }
            // A grid of the wrong size is wrong.
            assert!(!q.check(&Grid::new(9)));
        }
    }
}

#[test]
fn fixed_seed_gives_fixed_quizzes() {
    // Pins the generator: a change to the streams or the drawing changes this.
    let g = QuizGenerator::new(10, &TaskKind::ALL, 0).unwrap();
    let q = g.generate(0..200);
    let tasks: Vec<&str> = q[..8].iter().map(|q| q.task.name()).collect();
    let sum: u64 = q.iter().flat_map(|q| q.tokens()).map(u64::from).sum();
    let again: u64 = QuizGenerator::new(10, &TaskKind::ALL, 0)
        .unwrap()
        .generate(0..200)
        .iter()
        .flat_map(|q| q.tokens())
        .map(u64::from)
        .sum();
    assert_eq!(sum, again);
    println!("seed 0 tasks {tasks:?} token sum {sum}");
}

#[test]
fn generator_refuses_bad_settings() {
    let e = QuizGenerator::new(10, &[], 0).unwrap_err().to_string();
    assert!(e.contains("empty") && e.contains("contact"), "{e}");
    for size in [0, 7, 33, 100] {
        let e = QuizGenerator::new(size, &TaskKind::ALL, 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("grid size {size}")) && e.contains("8..=32"),
            "{e}"
        );
        assert!(Layout::new(size).is_err());
    }
}
