//! Each task's rule on hand-built scenes, and the validator on broken quizzes.

mod common;

use common::{count, quiz_from_scenes, scene, show};
use kibitzer_quizzes::scene::check_common;
use kibitzer_quizzes::{
    Diagonal, Grid, Growth, Params, Quiz, Rect, Shape, Side, TaskKind, infer_params,
};
use rand::SeedableRng;

const S: usize = 10;

/// Draws a scene, checks the rule against the drawing, the parameters read
/// back from the pair, and returns (input, output).
fn pair(params: Params, sc: &[Shape]) -> (Grid, Grid) {
    let t = params.kind().task();
    let sc = sc.to_vec();
    let (x, fx) = t.draw(&params, &sc, S);
    assert_eq!(
        t.rule(&params, &x),
        fx,
        "rule and drawing disagree\n{}{}",
        x.to_text(),
        fx.to_text()
    );
    assert_eq!(infer_params(params.kind(), &x, &fx), Some(params));
    (x, fx)
}

#[test]
fn frame_hollows_the_last_rectangle_to_its_border() {
    let sc = scene(&[
        (Rect::new(0, 0, 3, 3), 1),
        (Rect::new(0, 5, 3, 3), 2),
        (Rect::new(5, 2, 4, 5), 3),
    ]);
    let (x, fx) = pair(Params::Frame { colour: 3 }, &sc);
    assert_eq!(count(&x, 3), 20);
    assert_eq!(
        count(&fx, 3),
        14,
        "a 4x5 frame has 14 border cells\n{}",
        fx.to_text()
    );
    for (r, c) in [(6, 3), (6, 4), (6, 5), (7, 3), (7, 4), (7, 5)] {
        assert_eq!(fx.get(r, c), 0);
    }
    assert_eq!((count(&fx, 1), count(&fx, 2)), (9, 9), "the others stay");
}

#[test]
fn contact_borders_the_touching_pair_only() {
    // 0 at (0,0) 3x3; 1 touches it on the right; 2 far away.
    let sc = scene(&[
        (Rect::new(0, 0, 3, 3), 4),
        (Rect::new(0, 3, 3, 4), 7),
        (Rect::new(5, 5, 3, 3), 2),
    ]);
    let (x, fx) = pair(Params::Contact { first: 4 }, &sc);
    assert_eq!(
        x.diff(&fx).len(),
        10,
        "the ring of the 3x4 neighbour, 10 cells\n{}",
        fx.to_text()
    );
    assert_eq!(count(&fx, 7), 2, "the neighbour keeps its inside");
    assert_eq!(count(&fx, 4), 9 + 10);
    assert_eq!(count(&fx, 2), 9, "the separate rectangle stays plain");
    assert_eq!(fx.get(1, 4), 7);
    assert_eq!(fx.get(0, 3), 4);
}

#[test]
fn contact_ignores_corner_touches_and_other_pairs() {
    // 2 touches 1 along a side but 0 only at a corner (cells (2,2) and (3,3)).
    let sc = scene(&[
        (Rect::new(0, 0, 3, 3), 4),
        (Rect::new(0, 3, 3, 3), 7),
        (Rect::new(3, 3, 3, 3), 2),
    ]);
    assert!(Rect::new(3, 3, 3, 3).touches(&Rect::new(0, 3, 3, 3)));
    assert!(!Rect::new(3, 3, 3, 3).touches(&Rect::new(0, 0, 3, 3)));
    let (_, fx) = pair(Params::Contact { first: 4 }, &sc);
    assert_eq!(
        count(&fx, 2),
        9,
        "corner contact does not count\n{}",
        fx.to_text()
    );
    assert_eq!(count(&fx, 7), 1);
    // Below the first rectangle, touching it: bordered.
    let sc = scene(&[
        (Rect::new(2, 2, 3, 3), 4),
        (Rect::new(5, 0, 4, 4), 7),
        (Rect::new(0, 6, 3, 3), 2),
    ]);
    let (_, fx) = pair(Params::Contact { first: 4 }, &sc);
    assert_eq!(count(&fx, 7), 4);
    assert_eq!(count(&fx, 2), 9);
}

#[test]
fn encircling_every_rectangle_is_wrong_when_one_does_not_touch() {
    // The ablated model's behaviour in reference 004.
    let a = scene(&[
        (Rect::new(0, 0, 3, 3), 4),
        (Rect::new(0, 3, 3, 3), 7),
        (Rect::new(5, 5, 4, 4), 2),
    ]);
    let b = scene(&[
        (Rect::new(4, 4, 3, 3), 4),
        (Rect::new(7, 4, 3, 5), 7),
        (Rect::new(0, 0, 3, 3), 2),
    ]);
    let q = quiz_from_scenes(Params::Contact { first: 4 }, &a, &b, S);
    q.validate().unwrap();
    let mut all = q.grids[2].clone();
    for s in &b[1..] {
        for r in s.rect.top..s.rect.bottom {
            for c in s.rect.left..s.rect.right {
                if s.rect.on_border(r, c) {
                    all.set(r, c, 4);
                }
            }
        }
    }
    assert!(!q.check(&all));
    assert!(q.check(q.answer()));
}

#[test]
fn translate_moves_the_last_rectangle_by_the_direction() {
    for (dr, dc) in [
        (-1, -1),
        (-1, 0),
        (-1, 1),
        (0, -1),
        (0, 1),
        (1, -1),
        (1, 0),
        (1, 1),
    ] {
        let sc = scene(&[
            (Rect::new(0, 0, 3, 3), 1),
            (Rect::new(0, 6, 3, 4), 2),
            (Rect::new(5, 4, 3, 4), 3),
        ]);
        let (x, fx) = pair(Params::Translate { colour: 3, dr, dc }, &sc);
        assert_eq!(x.bbox(3), Some(Rect::new(5, 4, 3, 4)));
        let moved = Rect::new((5 + dr) as usize, (4 + dc) as usize, 3, 4);
        assert_eq!(fx.bbox(3), Some(moved));
        assert_eq!(count(&fx, 3), 12);
        assert_eq!((count(&fx, 1), count(&fx, 2)), (9, 12));
    }
}

#[test]
fn translate_scene_constraints() {
    let t = TaskKind::Translate.task();
    let p = Params::Translate {
        colour: 3,
        dr: 1,
        dc: 0,
    };
    // Moving down out of the grid.
    let out = scene(&[
        (Rect::new(0, 0, 3, 3), 1),
        (Rect::new(0, 6, 3, 4), 2),
        (Rect::new(7, 4, 3, 4), 3),
    ]);
    assert!(t.scene_ok(&p, &out, S).is_err());
    // Moving onto another rectangle.
    let onto = scene(&[
        (Rect::new(0, 0, 3, 3), 1),
        (Rect::new(6, 0, 3, 3), 2),
        (Rect::new(3, 1, 3, 4), 3),
    ]);
    assert!(
        t.scene_ok(&p, &onto, S)
            .unwrap_err()
            .to_string()
            .contains("overlaps")
    );
}

#[test]
fn grow_and_shrink() {
    let sc = scene(&[
        (Rect::new(0, 0, 3, 3), 1),
        (Rect::new(0, 6, 3, 4), 2),
        (Rect::new(4, 3, 5, 4), 3),
    ]);
    let (x, fx) = pair(
        Params::Grow {
            colour: 3,
            growth: Growth::Grow,
        },
        &sc,
    );
    assert_eq!(
        (x.bbox(3), fx.bbox(3)),
        (Some(Rect::new(5, 4, 3, 2)), Some(Rect::new(4, 3, 5, 4)))
    );
    let (x, fx) = pair(
        Params::Grow {
            colour: 3,
            growth: Growth::Shrink,
        },
        &sc,
    );
    assert_eq!(
        (x.bbox(3), fx.bbox(3)),
        (Some(Rect::new(4, 3, 5, 4)), Some(Rect::new(5, 4, 3, 2)))
    );
    assert_eq!(count(&fx, 3), 6);
    // The last rectangle must be at least 4x4 at its large size.
    let small = scene(&[
        (Rect::new(0, 0, 3, 3), 1),
        (Rect::new(0, 6, 3, 4), 2),
        (Rect::new(4, 3, 3, 5), 3),
    ]);
    assert!(
        TaskKind::Grow
            .task()
            .scene_ok(
                &Params::Grow {
                    colour: 3,
                    growth: Growth::Grow
                },
                &small,
                S
            )
            .is_err()
    );
}

#[test]
fn replace_color_recolours_the_first_rectangle() {
    let sc = scene(&[
        (Rect::new(0, 0, 3, 3), 5),
        (Rect::new(0, 6, 3, 4), 2),
        (Rect::new(4, 3, 5, 4), 3),
    ]);
    let (x, fx) = pair(Params::ReplaceColor { from: 5, to: 9 }, &sc);
    assert_eq!((count(&x, 5), count(&fx, 5), count(&fx, 9)), (9, 0, 9));
    assert_eq!(x.diff(&fx).len(), 9);
}

#[test]
fn half_fill_each_side() {
    // Rectangle 4 rows x 5 columns at (5,2); line colour 6.
    let shapes = vec![
        Shape {
            rect: Rect::new(0, 0, 3, 3),
            colour: 1,
            line: 2,
        },
        Shape {
            rect: Rect::new(0, 5, 3, 5),
            colour: 3,
            line: 4,
        },
        Shape {
            rect: Rect::new(5, 2, 4, 5),
            colour: 5,
            line: 6,
        },
    ];
    // (side, line row or column, filled cells of the last rectangle)
    for (side, line, filled) in [
        (Side::Down, 7, 10),
        (Side::Up, 6, 10),
        (Side::Right, 4, 12),
        (Side::Left, 4, 12),
    ] {
        let (x, fx) = pair(Params::HalfFill { colour: 5, side }, &shapes);
        let lb = x.bbox(6).unwrap();
        if side.horizontal() {
            assert_eq!((lb.top, lb.height(), lb.width()), (line, 1, 5), "{side:?}");
        } else {
            assert_eq!((lb.left, lb.width(), lb.height()), (line, 1, 4), "{side:?}");
        }
        assert_eq!(count(&fx, 6), filled, "{side:?}\n{}", fx.to_text());
        assert_eq!(count(&fx, 5), 20 - filled);
        // Other rectangles keep their lines.
        assert_eq!(count(&fx, 2), count(&x, 2));
        assert_eq!(x.diff(&fx).len(), filled - lb.area());
    }
    // Which half: Down fills from the line down.
    let (_, fx) = pair(
        Params::HalfFill {
            colour: 5,
            side: Side::Down,
        },
        &shapes,
    );
    assert_eq!((fx.get(8, 2), fx.get(5, 2)), (6, 5));
    let (_, fx) = pair(
        Params::HalfFill {
            colour: 5,
            side: Side::Left,
        },
        &shapes,
    );
    assert_eq!((fx.get(5, 2), fx.get(5, 6)), (6, 5));
}

#[test]
fn detect_marks_all_but_the_last() {
    let sc = scene(&[
        (Rect::new(0, 0, 3, 3), 1),
        (Rect::new(0, 5, 3, 4), 2),
        (Rect::new(5, 3, 4, 4), 3),
    ]);
    let (_, fx) = pair(
        Params::Detect {
            unmarked: 3,
            mark: 8,
        },
        &sc,
    );
    assert_eq!(count(&fx, 8), 6);
    for (r, c) in [(0, 0), (1, 0), (0, 1), (0, 5), (1, 5), (0, 6)] {
        assert_eq!(fx.get(r, c), 8);
    }
    assert_eq!(count(&fx, 3), 16);
}

#[test]
fn corners_fill_the_rectangles() {
    let sc = scene(&[
        (Rect::new(0, 0, 3, 3), 1),
        (Rect::new(0, 5, 3, 4), 2),
        (Rect::new(5, 3, 4, 4), 3),
    ]);
    for diagonal in [Diagonal::Main, Diagonal::Anti] {
        let (x, fx) = pair(Params::Corners { diagonal }, &sc);
        assert_eq!((count(&x, 1), count(&x, 2), count(&x, 3)), (6, 6, 6));
        assert_eq!((count(&fx, 1), count(&fx, 2), count(&fx, 3)), (9, 12, 16));
        assert_eq!(x.get(0, 0) == 1, diagonal == Diagonal::Main);
        assert_eq!(x.get(0, 2) == 1, diagonal == Diagonal::Anti);
        assert_eq!(x.get(1, 1), 0);
    }
}

#[test]
fn common_constraints() {
    let ok = scene(&[
        (Rect::new(0, 0, 3, 3), 1),
        (Rect::new(0, 3, 3, 3), 2),
        (Rect::new(5, 5, 3, 3), 3),
    ]);
    check_common(&ok, S).unwrap();
    let overlap = scene(&[
        (Rect::new(0, 0, 3, 3), 1),
        (Rect::new(2, 2, 3, 3), 2),
        (Rect::new(5, 5, 3, 3), 3),
    ]);
    assert!(
        check_common(&overlap, S)
            .unwrap_err()
            .to_string()
            .contains("overlap")
    );
    let thin = scene(&[
        (Rect::new(0, 0, 2, 3), 1),
        (Rect::new(4, 4, 3, 3), 2),
        (Rect::new(7, 0, 3, 3), 3),
    ]);
    assert!(
        check_common(&thin, S)
            .unwrap_err()
            .to_string()
            .contains("at least 3x3")
    );
    let big = scene(&[
        (Rect::new(0, 0, 6, 9), 1),
        (Rect::new(7, 0, 3, 3), 2),
        (Rect::new(7, 4, 3, 3), 3),
    ]);
    assert!(
        check_common(&big, S)
            .unwrap_err()
            .to_string()
            .contains("at most 50")
    );
    let same = scene(&[
        (Rect::new(0, 0, 3, 3), 1),
        (Rect::new(0, 3, 3, 3), 1),
        (Rect::new(5, 5, 3, 3), 3),
    ]);
    assert!(
        check_common(&same, S)
            .unwrap_err()
            .to_string()
            .contains("twice")
    );
    let two = scene(&[(Rect::new(0, 0, 3, 3), 1), (Rect::new(0, 3, 3, 3), 2)]);
    assert!(check_common(&two, S).is_err());
    let outside = scene(&[
        (Rect::new(0, 0, 3, 3), 1),
        (Rect::new(0, 3, 3, 3), 2),
        (Rect::new(8, 8, 3, 3), 3),
    ]);
    assert!(check_common(&outside, S).is_err());
}

#[test]
fn validator_rejects_broken_quizzes() {
    let g = kibitzer_quizzes::QuizGenerator::new(10, &TaskKind::ALL, 3).unwrap();
    for task in TaskKind::ALL {
        let q = g.quiz_of(task, 11);
        q.validate().unwrap();
        // A stray cell in A, in an empty place.
        let mut bad = q.clone();
        let i = bad.grids[0].cells().iter().position(|&v| v == 0).unwrap();
        bad.grids[0].set(i / 10, i % 10, bad.grids[0].colours()[0]);
        assert!(
            bad.validate().is_err(),
            "{task}: stray cell in A accepted\n{}",
            show(&bad)
        );
        // f(B) replaced by B.
        let mut bad = q.clone();
        bad.grids[3] = bad.grids[2].clone();
        assert!(bad.validate().is_err(), "{task}: f(B) = B accepted");
        // B from another quiz of the task (other colours, almost surely).
        let other = g.quiz_of(task, 12);
        if other.grids[2].colour_set() != q.grids[2].colour_set() {
            let mut bad = q.clone();
            bad.grids[2] = other.grids[2].clone();
            bad.grids[3] = q.task.task().rule(&q.params, &bad.grids[2]);
            assert!(
                bad.validate().is_err(),
                "{task}: B of other colours accepted"
            );
        }
        // Parameters of another task.
        let mut bad = q.clone();
        bad.params = g
            .quiz_of(
                if task == TaskKind::Frame {
                    TaskKind::Contact
                } else {
                    TaskKind::Frame
                },
                1,
            )
            .params;
        assert!(bad.validate().is_err());
        assert!(!bad.check(q.answer()));
    }
}

#[test]
fn from_tokens_errors() {
    let g = kibitzer_quizzes::QuizGenerator::new(10, &[TaskKind::Contact], 3).unwrap();
    let q = g.quiz(0);
    let layout = kibitzer_quizzes::Layout::new(10).unwrap();
    let t = q.tokens();
    let e = Quiz::from_tokens(q.task, &t[..404], &layout)
        .unwrap_err()
        .to_string();
    assert!(e.contains("404 tokens") && e.contains("405"), "{e}");
    let mut bad = t.clone();
    bad[0] = 3;
    assert!(
        Quiz::from_tokens(q.task, &bad, &layout)
            .unwrap_err()
            .to_string()
            .contains("BOS")
    );
    let mut bad = t.clone();
    bad[203] = 11;
    let e = Quiz::from_tokens(q.task, &bad, &layout)
        .unwrap_err()
        .to_string();
    assert!(e.contains("position 203") && e.contains("B marker"), "{e}");
    let mut bad = t.clone();
    bad[20] = 13;
    let e = Quiz::from_tokens(q.task, &bad, &layout)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("position 20 (grid A, row 1, column 8) is 13"),
        "{e}"
    );
    // A contact quiz read as a frame quiz.
    let e = Quiz::from_tokens(TaskKind::Frame, &t, &layout)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a `frame` quiz"), "{e}");
    // Grid::from_tokens refuses markers.
    assert!(
        Grid::from_tokens(2, &[0, 1, 2, 14])
            .unwrap_err()
            .to_string()
            .contains("token 3")
    );
    assert!(Grid::from_cells(2, vec![0, 11, 0, 0]).is_err());
    assert!(Grid::from_cells(2, vec![0, 1, 0]).is_err());
}

#[test]
fn task_names() {
    for t in TaskKind::ALL {
        assert_eq!(TaskKind::from_name(t.name()).unwrap(), t);
        assert_eq!(t.name().parse::<TaskKind>().unwrap(), t);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            format!("\"{}\"", t.name())
        );
        assert_eq!(t.task().kind(), t);
    }
    let e = TaskKind::from_name("contacts").unwrap_err().to_string();
    assert!(
        e.contains("contacts")
            && e.contains(
                "replace_color, translate, grow, half_fill, frame, detect, corners, contact"
            ),
        "{e}"
    );
}

#[test]
fn fallback_scenes_are_valid_for_every_task_size_and_parameter() {
    for task in TaskKind::ALL {
        let t = task.task();
        for size in 8..=32 {
            for seed in 0..16 {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let palette: Vec<u8> = (1..=t.n_colours() as u8)
                    .map(|c| (c + seed as u8) % 10 + 1)
                    .collect();
                let params = t.draw_params(&palette, &mut rng);
                let sc = t.shapes(&palette, &t.fallback_rects(&params, size));
                let q = quiz_from_scenes(params, &sc, &sc, size);
                q.validate()
                    .unwrap_or_else(|e| panic!("{task} size {size}: {e}\n{}", show(&q)));
            }
        }
    }
}

#[test]
fn deserialising_checks_the_quiz() {
    let q = kibitzer_quizzes::QuizGenerator::new(10, &[TaskKind::Frame], 3)
        .unwrap()
        .quiz(0);
    let mut v = serde_json::to_value(&q).unwrap();
    v["task"] = "contact".into();
    assert!(serde_json::from_value::<Quiz>(v).is_err());
    let mut v = serde_json::to_value(&q).unwrap();
    v["grids"][1]["cells"][0] = 11.into();
    assert!(serde_json::from_value::<Quiz>(v).is_err());
}
