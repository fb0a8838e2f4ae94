//! Quiz files: JSON lines, a header then one quiz per line.
//!
//! ```text
//! {"format":"kibitzer-quizzes-v1","grid_size":10,"vocab":15,"tasks":["contact"],"seed":7,"count":2}
//! {"task":"contact","params":{"contact":{"first":3}},"grids":[[100 ints],[...],[...],[...]]}
//! ...
//! ```
//!
//! `params` is optional on reading: the parameters are read back from A and
//! f(A) in any case, and a `params` that disagrees with them is an error.

use std::io::{BufRead, Write};
use std::path::Path;

use crate::grid::Grid;
use crate::quiz::{GRID_NAMES, Quiz, infer_params};
use crate::task::{Params, TaskKind};
use crate::{Layout, N_COLOURS, QuizError, VOCAB};

/// The `format` string of version 1 files.
pub const QUIZ_FILE_FORMAT: &str = "kibitzer-quizzes-v1";

/// Line 1 of a quiz file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuizFileHeader {
    /// Always [`QUIZ_FILE_FORMAT`].
    pub format: String,
    /// Side of every grid.
    pub grid_size: usize,
    /// Token vocabulary, always [`VOCAB`] (15).
    pub vocab: usize,
    /// The tasks the quizzes were drawn from; every quiz's task is one of them.
    pub tasks: Vec<TaskKind>,
    /// The generator's seed.
    pub seed: u64,
    /// Number of quizzes that follow.
    pub count: u64,
}

impl QuizFileHeader {
    /// The header of a version 1 file.
    pub fn new(grid_size: usize, tasks: &[TaskKind], seed: u64, count: u64) -> QuizFileHeader {
        QuizFileHeader {
            format: QUIZ_FILE_FORMAT.to_string(),
            grid_size,
            vocab: VOCAB,
            tasks: tasks.to_vec(),
            seed,
            count,
        }
    }
}

/// The header as read, before its values are checked.
#[derive(serde::Deserialize)]
struct RawHeader {
    format: String,
    grid_size: usize,
    vocab: usize,
    tasks: Vec<String>,
    seed: u64,
    count: u64,
}

/// A quiz line as written.
#[derive(serde::Serialize)]
struct LineOut<'a> {
    task: TaskKind,
    params: &'a Params,
    grids: [&'a [u8]; 4],
}

/// A quiz line as read, before its values are checked.
#[derive(serde::Deserialize)]
struct RawLine {
    task: String,
    grids: Vec<Vec<i64>>,
    #[serde(default)]
    params: Option<Params>,
}

/// Writes `quizzes` under `header` to `path` atomically: a temporary file in
/// the same directory, flushed and fsynced, renamed over `path`. Refuses a
/// header that contradicts the quizzes (format, vocab, grid size, count, a
/// quiz whose task is not listed).
pub fn write_quiz_file(
    path: &Path,
    header: &QuizFileHeader,
    quizzes: &[Quiz],
) -> Result<(), QuizError> {
    let bad = |message: String| QuizError::Write {
        path: path.to_path_buf(),
        message,
    };
    if header.format != QUIZ_FILE_FORMAT {
        return Err(bad(format!(
            "header format `{}`: expected `{QUIZ_FILE_FORMAT}`",
            header.format
        )));
    }
    if header.vocab != VOCAB {
        return Err(bad(format!(
            "header vocab {}: expected {VOCAB}",
            header.vocab
        )));
    }
    Layout::new(header.grid_size).map_err(|e| bad(format!("header: {e}")))?;
    if header.count != quizzes.len() as u64 {
        return Err(bad(format!(
            "header count {} but {} quizzes given",
            header.count,
            quizzes.len()
        )));
    }
    for (i, q) in quizzes.iter().enumerate() {
        if let Some(g) = q.grids.iter().position(|g| g.size() != header.grid_size) {
            return Err(bad(format!(
                "quiz {i}: grid {0} is {1}x{1}, the header says {2}x{2}",
                GRID_NAMES[g],
                q.grids[g].size(),
                header.grid_size
            )));
        }
        if !header.tasks.contains(&q.task) {
            return Err(bad(format!(
                "quiz {i} is a `{}` quiz, which the header's task list does not name",
                q.task
            )));
        }
        if q.params.kind() != q.task {
            return Err(bad(format!(
                "quiz {i}: `{}` parameters on a `{}` quiz",
                q.params.kind(),
                q.task
            )));
        }
    }
    kibitzer_io::atomic::write_with(path, |w| {
        serde_json::to_writer(&mut *w, header)?;
        w.write_all(b"\n")?;
        for q in quizzes {
            let line = LineOut {
                task: q.task,
                params: &q.params,
                grids: [
                    q.grids[0].cells(),
                    q.grids[1].cells(),
                    q.grids[2].cells(),
                    q.grids[3].cells(),
                ],
            };
            serde_json::to_writer(&mut *w, &line)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
    .map_err(|e| QuizError::io(path, e))?;
    Ok(())
}

/// Reads a quiz file: checks the header (format, vocab 15, a supported grid
/// size, known task names), every quiz line (a listed task, four grids of
/// `grid_size^2` colours `0..=10`, parameters readable from A and f(A) and
/// equal to `params` when given) and the count. Errors name the file and line.
pub fn read_quiz_file(path: &Path) -> Result<(QuizFileHeader, Vec<Quiz>), QuizError> {
    let file = std::fs::File::open(path).map_err(|e| QuizError::io(path, e))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let err = |line: usize, message: String| QuizError::file(path, line, message);

    let first = match lines.next() {
        Some(l) => l.map_err(|e| QuizError::io(path, e))?,
        None => return Err(err(1, "empty file: expected a header line".into())),
    };
    let raw: RawHeader =
        serde_json::from_str(&first).map_err(|e| err(1, format!("not a quiz file header: {e}")))?;
    if raw.format != QUIZ_FILE_FORMAT {
        return Err(err(
            1,
            format!("format `{}`: expected `{QUIZ_FILE_FORMAT}`", raw.format),
        ));
    }
    if raw.vocab != VOCAB {
        return Err(err(
            1,
            format!(
                "vocab {}: expected {VOCAB} (11 colours and 4 markers)",
                raw.vocab
            ),
        ));
    }
    let layout = Layout::new(raw.grid_size).map_err(|e| err(1, e.to_string()))?;
    let tasks = raw
        .tasks
        .iter()
        .map(|t| TaskKind::from_name(t).map_err(|e| err(1, format!("tasks: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if tasks.is_empty() {
        return Err(err(
            1,
            format!(
                "empty task list: expected some of {}",
                TaskKind::valid_names()
            ),
        ));
    }
    let header = QuizFileHeader {
        format: raw.format,
        grid_size: raw.grid_size,
        vocab: raw.vocab,
        tasks,
        seed: raw.seed,
        count: raw.count,
    };

    let s = layout.grid_size;
    let mut quizzes = Vec::new();
    let mut blank_from = None;
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        let line = line.map_err(|e| QuizError::io(path, e))?;
        if line.trim().is_empty() {
            blank_from.get_or_insert(n);
            continue;
        }
        if let Some(b) = blank_from {
            return Err(err(b, "blank line before the end of the file".into()));
        }
        let raw: RawLine =
            serde_json::from_str(&line).map_err(|e| err(n, format!("not a quiz line: {e}")))?;
        let task = TaskKind::from_name(&raw.task).map_err(|e| err(n, e.to_string()))?;
        if !header.tasks.contains(&task) {
            return Err(err(
                n,
                format!(
                    "a `{task}` quiz, but the header lists only {:?}",
                    header.tasks
                ),
            ));
        }
        if raw.grids.len() != 4 {
            return Err(err(
                n,
                format!("{} grids: expected 4 (A, f(A), B, f(B))", raw.grids.len()),
            ));
        }
        let mut grids = Vec::with_capacity(4);
        for (g, cells) in raw.grids.iter().enumerate() {
            if cells.len() != s * s {
                return Err(err(
                    n,
                    format!(
                        "grid {} has {} cells: expected {} for a {s}x{s} grid",
                        GRID_NAMES[g],
                        cells.len(),
                        s * s
                    ),
                ));
            }
            let mut out = Vec::with_capacity(s * s);
            for (k, &v) in cells.iter().enumerate() {
                if !(0..i64::from(N_COLOURS)).contains(&v) {
                    return Err(err(
                        n,
                        format!(
                            "grid {} cell {k} (row {}, column {}) is {v}: expected a colour 0..={}",
                            GRID_NAMES[g],
                            k / s,
                            k % s,
                            N_COLOURS - 1
                        ),
                    ));
                }
                out.push(v as u8);
            }
            grids.push(Grid::from_cells(s, out).map_err(|e| err(n, e.to_string()))?);
        }
        let [a, fa, b, fb]: [Grid; 4] = grids
            .try_into()
            .map_err(|_| err(n, "expected 4 grids".into()))?;
        let params = infer_params(task, &a, &fa).ok_or_else(|| {
            err(
                n,
                format!("not a `{task}` quiz: its parameters cannot be read from A and f(A)"),
            )
        })?;
        if let Some(p) = raw.params
            && p != params
        {
            return Err(err(
                n,
                format!("params {p:?} disagree with what A and f(A) show, {params:?}"),
            ));
        }
        quizzes.push(Quiz {
            task,
            grids: [a, fa, b, fb],
            params,
        });
    }
    if quizzes.len() as u64 != header.count {
        let line = blank_from.unwrap_or(quizzes.len() + 2);
        return Err(err(
            line,
            format!(
                "the header (line 1) says {} quizzes, the file has {}",
                header.count,
                quizzes.len()
            ),
        ));
    }
    Ok((header, quizzes))
}
