//! Quiz files: round trip, and each bad input named by file and line.

use std::path::Path;

use kibitzer_quizzes::{
    QuizError, QuizFileHeader, QuizGenerator, TaskKind, read_quiz_file, write_quiz_file,
};

fn sample(dir: &Path) -> (std::path::PathBuf, Vec<String>) {
    let g = QuizGenerator::new(10, &TaskKind::ALL, 5).unwrap();
    let quizzes = g.generate(0..3);
    let path = dir.join("q.jsonl");
    write_quiz_file(&path, &g.header(3), &quizzes).unwrap();
    let lines = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    (path, lines)
}

/// Writes `lines` and reads them back, expecting an error at `line`
/// mentioning every one of `words`.
fn expect_error(dir: &Path, lines: &[String], line: usize, words: &[&str]) {
    let path = dir.join("bad.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let e = read_quiz_file(&path).unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, QuizError::File { line: l, .. } if l == line),
        "expected line {line}: {text}"
    );
    assert!(
        text.starts_with(&format!("{}:{line}: ", path.display())),
        "{text}"
    );
    for w in words {
        assert!(text.contains(w), "`{w}` not in: {text}");
    }
}

fn edit(lines: &[String], i: usize, f: impl FnOnce(&mut serde_json::Value)) -> Vec<String> {
    let mut out = lines.to_vec();
    let mut v: serde_json::Value = serde_json::from_str(&out[i]).unwrap();
    f(&mut v);
    out[i] = v.to_string();
    out
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for size in [8, 10, 13] {
        let g = QuizGenerator::new(size, &TaskKind::ALL, 9).unwrap();
        let quizzes = g.generate(0..50);
        let path = dir.path().join(format!("q{size}.jsonl"));
        write_quiz_file(&path, &g.header(50), &quizzes).unwrap();
        let (h, back) = read_quiz_file(&path).unwrap();
        assert_eq!(h, QuizFileHeader::new(size, &TaskKind::ALL, 9, 50));
        assert_eq!(back, quizzes);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(&format!(
            r#"{{"format":"kibitzer-quizzes-v1","grid_size":{size},"vocab":15,"tasks":["replace_color","#
        )));
        assert_eq!(text.lines().count(), 51);
    }
    // Only the file itself is left in the directory (no temporary file).
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    // Overwriting works; an empty set too.
    let g = QuizGenerator::new(10, &[TaskKind::Contact], 1).unwrap();
    let path = dir.path().join("q10.jsonl");
    write_quiz_file(&path, &g.header(0), &[]).unwrap();
    assert_eq!(read_quiz_file(&path).unwrap().1.len(), 0);
}

#[test]
fn params_are_optional_when_reading() {
    let dir = tempfile::tempdir().unwrap();
    let (path, lines) = sample(dir.path());
    let (_, quizzes) = read_quiz_file(&path).unwrap();
    let stripped = edit(&lines, 1, |v| {
        v.as_object_mut().unwrap().remove("params");
    });
    let p = dir.path().join("stripped.jsonl");
    std::fs::write(&p, stripped.join("\n") + "\n").unwrap();
    assert_eq!(read_quiz_file(&p).unwrap().1, quizzes);
}

#[test]
fn bad_header() {
    let dir = tempfile::tempdir().unwrap();
    let (_, lines) = sample(dir.path());
    let l = edit(&lines, 0, |v| v["format"] = "kibitzer-quizzes-v2".into());
    expect_error(
        dir.path(),
        &l,
        1,
        &[
            "format `kibitzer-quizzes-v2`",
            "expected `kibitzer-quizzes-v1`",
        ],
    );
    let l = edit(&lines, 0, |v| v["vocab"] = 16.into());
    expect_error(dir.path(), &l, 1, &["vocab 16", "expected 15"]);
    let l = edit(&lines, 0, |v| v["grid_size"] = 40.into());
    expect_error(dir.path(), &l, 1, &["grid size 40", "8..=32"]);
    let l = edit(&lines, 0, |v| v["tasks"][0] = "recolour".into());
    expect_error(
        dir.path(),
        &l,
        1,
        &["unknown task `recolour`", "replace_color, translate"],
    );
    let l = edit(&lines, 0, |v| {
        v.as_object_mut().unwrap().remove("seed");
    });
    expect_error(dir.path(), &l, 1, &["seed"]);
    let mut l = lines.clone();
    l[0] = "not json".into();
    expect_error(dir.path(), &l, 1, &["not a quiz file header"]);
    let path = dir.path().join("empty.jsonl");
    std::fs::write(&path, "").unwrap();
    assert!(
        read_quiz_file(&path)
            .unwrap_err()
            .to_string()
            .contains(":1: empty file")
    );
}

#[test]
fn bad_quiz_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (_, lines) = sample(dir.path());
    // A grid of the wrong size on line 3.
    let l = edit(&lines, 2, |v| {
        v["grids"][2].as_array_mut().unwrap().pop();
    });
    expect_error(dir.path(), &l, 3, &["grid B has 99 cells", "expected 100"]);
    // Colour 11 on line 2.
    let l = edit(&lines, 1, |v| v["grids"][1][17] = 11.into());
    expect_error(
        dir.path(),
        &l,
        2,
        &[
            "grid f(A) cell 17 (row 1, column 7) is 11",
            "expected a colour 0..=10",
        ],
    );
    let l = edit(&lines, 1, |v| v["grids"][0][0] = (-1).into());
    expect_error(dir.path(), &l, 2, &["is -1"]);
    // Three grids.
    let l = edit(&lines, 3, |v| {
        v["grids"].as_array_mut().unwrap().pop();
    });
    expect_error(dir.path(), &l, 4, &["3 grids", "expected 4"]);
    // Unknown task name.
    let l = edit(&lines, 2, |v| v["task"] = "contacts".into());
    expect_error(dir.path(), &l, 3, &["unknown task `contacts`", "contact"]);
    // Grids that are not a quiz of the task.
    let l = edit(&lines, 1, |v| v["grids"][1] = v["grids"][0].clone());
    expect_error(
        dir.path(),
        &l,
        2,
        &["parameters cannot be read from A and f(A)"],
    );
    // Params that disagree.
    let l = edit(&lines, 1, |v| {
        let task = v["task"].as_str().unwrap().to_string();
        v["params"] = if task == "frame" {
            serde_json::json!({"contact": {"first": 1}})
        } else {
            serde_json::json!({"frame": {"colour": 1}})
        };
    });
    expect_error(dir.path(), &l, 2, &["disagree"]);
    // A task the header does not list.
    let l = edit(&lines, 0, |v| {
        v["tasks"] = serde_json::json!(["replace_color"])
    });
    let first_other = lines[1..]
        .iter()
        .position(|s| !s.contains(r#""task":"replace_color""#))
        .unwrap()
        + 2;
    expect_error(dir.path(), &l, first_other, &["header lists only"]);
    // Not JSON.
    let mut l = lines.clone();
    l[3] = "{".into();
    expect_error(dir.path(), &l, 4, &["not a quiz line"]);
}

#[test]
fn count_and_blank_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (_, lines) = sample(dir.path());
    let l = edit(&lines, 0, |v| v["count"] = 4.into());
    expect_error(dir.path(), &l, 5, &["says 4 quizzes", "has 3"]);
    let l = lines[..3].to_vec();
    expect_error(dir.path(), &l, 4, &["says 3 quizzes", "has 2"]);
    let mut l = lines.clone();
    l.insert(2, String::new());
    expect_error(dir.path(), &l, 3, &["blank line"]);
    // Trailing blank lines are fine.
    let path = dir.path().join("trailing.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n\n\n").unwrap();
    assert_eq!(read_quiz_file(&path).unwrap().1.len(), 3);
}

#[test]
fn write_refuses_inconsistent_headers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.jsonl");
    let g = QuizGenerator::new(10, &[TaskKind::Frame, TaskKind::Grow], 5).unwrap();
    let quizzes = g.generate(0..4);
    let e = write_quiz_file(&path, &g.header(5), &quizzes)
        .unwrap_err()
        .to_string();
    assert!(e.contains("count 5 but 4 quizzes"), "{e}");
    let e = write_quiz_file(
        &path,
        &QuizFileHeader::new(12, &[TaskKind::Frame, TaskKind::Grow], 5, 4),
        &quizzes,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("10x10, the header says 12x12"), "{e}");
    let e = write_quiz_file(
        &path,
        &QuizFileHeader::new(10, &[TaskKind::Contact], 5, 4),
        &quizzes,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("does not name"), "{e}");
    let mut h = g.header(4);
    h.vocab = 14;
    assert!(
        write_quiz_file(&path, &h, &quizzes)
            .unwrap_err()
            .to_string()
            .contains("vocab 14")
    );
    let mut h = g.header(4);
    h.format = "v0".into();
    assert!(write_quiz_file(&path, &h, &quizzes).is_err());
    assert!(!path.exists());
    // A directory that does not exist: an I/O error naming the file, nothing left behind.
    let missing = dir.path().join("no/such/dir/q.jsonl");
    let e = write_quiz_file(&missing, &g.header(4), &quizzes).unwrap_err();
    assert!(
        matches!(e, QuizError::Io { .. }) && e.to_string().contains("q.jsonl"),
        "{e}"
    );
    assert!(
        read_quiz_file(&missing)
            .unwrap_err()
            .to_string()
            .contains("q.jsonl")
    );
}
