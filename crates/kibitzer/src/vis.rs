//! `kibitzer vis`: a static HTML feature viewer of a sweep that opens from
//! the file system (no server).
//!
//! Browsers refuse `fetch()` on `file://`, so the data are JavaScript files
//! loaded with `<script>`: `data/index.js` (the runs, their metrics, the
//! property names; loaded with the page) and one `data/sae-NNN.js` per run,
//! loaded when that run is picked. A run's file holds, per feature, its
//! frequency, maximum, activation histogram, top-activating positions
//! (indices into the file's own table of boards) and best-matching
//! properties, with numbers rounded to four significant digits, so even a
//! 4096-feature run is a few megabytes and parses in well under a second.
//!
//! ```text
//! site/index.html, app.js, style.css     the viewer (embedded in the binary)
//! site/data/index.js                     window.KIBITZER: runs, metrics, BSP names
//! site/data/sae-000.js ...               window.KIBITZER_SAE[run]: features, boards
//! site/charts/*.svg                      the sweep's scaling charts
//! site/density/<run>.svg                 each run's feature-density histogram
//! ```
//!
//! Everything comes from the sweep directory (`scaling.json`,
//! `positions.json`, `<run>/features.json`); the activations and labels are
//! not needed again.

use crate::sweep::{
    FeatureStats, PositionRecord, PositionsFile, RunResult, ScalingReport, SweepError, files,
    read_json,
};
use kibitzer_io::{FileError, FileResultExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const INDEX_HTML: &str = include_str!("../assets/vis/index.html");
const APP_JS: &str = include_str!("../assets/vis/app.js");
const STYLE_CSS: &str = include_str!("../assets/vis/style.css");

/// What can go wrong while building the viewer.
#[derive(Debug, thiserror::Error)]
pub enum VisError {
    /// A file could not be read or written, or holds what it should not:
    /// its path, then the cause.
    #[error(transparent)]
    File(#[from] kibitzer_io::FileError),
    /// A sweep file is missing or unreadable.
    #[error(transparent)]
    Sweep(#[from] SweepError),
    /// The sweep's files disagree with each other.
    #[error("{path}: {detail}")]
    Inconsistent {
        /// The file found wrong.
        path: PathBuf,
        /// What disagrees.
        detail: String,
    },
}

fn write(path: &Path, bytes: &[u8]) -> Result<u64, VisError> {
    kibitzer_sae::io::atomic_write(path, bytes).at_file(path)?;
    Ok(bytes.len() as u64)
}

/// What to build.
#[derive(Clone, Debug)]
pub struct VisConfig {
    /// A sweep directory (`kibitzer sweep --out`).
    pub sweep: PathBuf,
    /// Where the site goes.
    pub out: PathBuf,
    /// Top-activating positions shown per feature (at most what the sweep
    /// kept).
    pub top: usize,
}

/// What was built.
#[derive(Clone, Debug, PartialEq)]
pub struct VisSummary {
    /// The page to open.
    pub index: PathBuf,
    /// Runs in the viewer.
    pub runs: usize,
    /// Features over all runs.
    pub features: usize,
    /// Positions shown per feature (the request, capped by the sweep's).
    pub top: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Size of the largest per-run data file.
    pub largest_run_bytes: u64,
}

/// Rounds to `digits` significant digits, so the data files stay compact.
pub fn round_sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return if x.is_finite() { 0.0 } else { f64::NAN };
    }
    let scale = 10f64.powi(digits - 1 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

fn num(x: f64) -> Value {
    let r = round_sig(x, 4);
    if r.is_finite() { json!(r) } else { Value::Null }
}

/// Square name (`c4`) to index on a `size` board (`a1` is 0, row-major
/// from the top), as kibitzer-games names squares.
fn square_index(name: &str, size: usize) -> Option<usize> {
    let mut chars = name.chars();
    let col = chars.next()?;
    let row: usize = chars.as_str().parse().ok()?;
    let col = (col as usize).checked_sub('a' as usize)?;
    (col < size && (1..=size).contains(&row)).then(|| (row - 1) * size + col)
}

/// A board as the viewer's script reads it: `[cells, side to move, last
/// move square or -1, [flipped squares], game, ply]`, cells one character
/// per square (`X`, `O`, `.`) from the top row.
fn position_json(p: &PositionRecord, size: usize, path: &Path) -> Result<Value, VisError> {
    let bad = |detail: String| VisError::Inconsistent {
        path: path.to_path_buf(),
        detail: format!("row {}: {detail}", p.row),
    };
    let (cells, side) = p
        .board
        .rsplit_once(' ')
        .ok_or_else(|| bad(format!("board {:?} has no side to move", p.board)))?;
    let cells: String = cells.chars().filter(|&c| c != '/').collect();
    if cells.len() != size * size || !cells.chars().all(|c| "XO.".contains(c)) {
        return Err(bad(format!(
            "board {:?} is not a {size}x{size} board",
            p.board
        )));
    }
    let square = |s: &String| square_index(s, size).ok_or_else(|| bad(format!("square {s:?}")));
    let last = p.last_move.as_ref().map(square).transpose()?;
    let flipped = p
        .flipped
        .iter()
        .map(square)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!([
        cells,
        side,
        last.map_or(-1, |s| s as i64),
        flipped,
        p.game,
        p.ply
    ]))
}

fn run_json(r: &RunResult, file: &str, density: Option<&str>) -> Value {
    json!({
        "name": r.spec.name,
        "file": file,
        "density": density,
        "family": r.spec.family.name(),
        "dSae": r.spec.d_sae,
        "sparsity": r.spec.sparsity_label(),
        "steps": r.spec.steps,
        "rows": r.rows,
        "mse": num(r.mse),
        "l0": num(r.l0),
        "dead": num(r.dead_fraction),
        "fvu": num(r.fvu),
        "coverage": r.coverage.get("board").copied().map(num),
        "coverageAll": r.coverage.get("all").copied().map(num),
        "reconstruction": r.reconstruction.get("board").copied().map(num),
        "reconstructionAll": r.reconstruction.get("all").copied().map(num),
    })
}

/// One run's data file: `window.KIBITZER_SAE[name] = {positions, features}`
/// with each feature as `[frequency, max, histogram, [[position,
/// activation, rows with that position]...], [[bsp index, f1, precision,
/// recall, threshold]...]]`.
fn run_data_js(
    stats: &FeatureStats,
    positions: &HashMap<usize, &PositionRecord>,
    bsp_index: &HashMap<&str, usize>,
    size: usize,
    top: usize,
    paths: (&Path, &Path),
) -> Result<String, VisError> {
    let (features_path, positions_path) = paths;
    let mut local: HashMap<u32, usize> = HashMap::new();
    let mut table = Vec::new();
    let mut features = Vec::with_capacity(stats.features.len());
    for (f, s) in stats.features.iter().enumerate() {
        let mut tops = Vec::with_capacity(top.min(s.top.len()));
        for t in s.top.iter().take(top) {
            let index = match local.get(&t.row) {
                Some(&i) => i,
                None => {
                    let record =
                        positions
                            .get(&(t.row as usize))
                            .ok_or_else(|| VisError::Inconsistent {
                                path: positions_path.to_path_buf(),
                                detail: format!(
                                    "no board for row {}, which feature {f} of {} shows",
                                    t.row, stats.run
                                ),
                            })?;
                    table.push(position_json(record, size, positions_path)?);
                    local.insert(t.row, table.len() - 1);
                    table.len() - 1
                }
            };
            tops.push(json!([index, num(f64::from(t.activation)), t.count]));
        }
        let bsps =
            s.bsps
                .iter()
                .map(|m| {
                    let b = bsp_index.get(m.bsp.as_str()).ok_or_else(|| VisError::Inconsistent {
                    path: features_path.to_path_buf(),
                    detail: format!(
                        "feature {f} matches property {:?}, which scaling.json does not list",
                        m.bsp
                    ),
                })?;
                    Ok(json!([
                        b,
                        num(f64::from(m.f1)),
                        num(f64::from(m.precision)),
                        num(f64::from(m.recall)),
                        num(f64::from(m.threshold))
                    ]))
                })
                .collect::<Result<Vec<_>, VisError>>()?;
        features.push(json!([
            num(s.frequency),
            num(f64::from(s.max_activation)),
            s.histogram,
            tops,
            bsps
        ]));
    }
    let data = json!({ "rows": stats.rows, "positions": table, "features": features });
    Ok(format!(
        "window.KIBITZER_SAE[{}] = {};\n",
        serde_json::to_string(&stats.run).expect("a string serialises"),
        serde_json::to_string(&data).expect("JSON values serialise")
    ))
}

/// Builds the viewer of the sweep in `config.sweep` into `config.out`.
pub fn build_site(config: &VisConfig) -> Result<VisSummary, VisError> {
    let sweep = &config.sweep;
    let scaling_path = sweep.join(files::SCALING_JSON);
    if !scaling_path.exists() {
        return Err(FileError::new(
            &scaling_path,
            "missing: not a finished sweep (run `kibitzer sweep` to the end first)",
        )
        .into());
    }
    let report: ScalingReport = read_json(&scaling_path)?;
    let positions_path = sweep.join(files::POSITIONS);
    let positions_file: PositionsFile = read_json(&positions_path)?;
    if positions_file.board_size != report.board_size {
        return Err(VisError::Inconsistent {
            path: positions_path,
            detail: format!(
                "board size {}, but scaling.json says {}",
                positions_file.board_size, report.board_size
            ),
        });
    }
    let positions: HashMap<usize, &PositionRecord> = positions_file
        .positions
        .iter()
        .map(|p| (p.row, p))
        .collect();
    let bsp_index: HashMap<&str, usize> = report
        .bsps
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let top = config.top.min(report.eval.top_examples);
    let out = &config.out;
    for dir in [
        out.clone(),
        out.join("data"),
        out.join("charts"),
        out.join("density"),
    ] {
        std::fs::create_dir_all(&dir).at_file(&dir)?;
    }
    let mut bytes = 0;
    bytes += write(&out.join("index.html"), INDEX_HTML.as_bytes())?;
    bytes += write(&out.join("app.js"), APP_JS.as_bytes())?;
    bytes += write(&out.join("style.css"), STYLE_CSS.as_bytes())?;

    let mut runs = Vec::with_capacity(report.runs.len());
    let (mut features, mut largest) = (0, 0);
    for (i, r) in report.runs.iter().enumerate() {
        let run_dir = sweep.join(&r.spec.name);
        let features_path = run_dir.join(files::FEATURES);
        let stats: FeatureStats = read_json(&features_path)?;
        if stats.features.len() != r.spec.d_sae || stats.run != r.spec.name {
            return Err(VisError::Inconsistent {
                path: features_path,
                detail: format!(
                    "{} features of run {:?}, but scaling.json has {} features for {:?}",
                    stats.features.len(),
                    stats.run,
                    r.spec.d_sae,
                    r.spec.name
                ),
            });
        }
        features += stats.features.len();
        let file = format!("data/sae-{i:03}.js");
        let js = run_data_js(
            &stats,
            &positions,
            &bsp_index,
            report.board_size,
            top,
            (&features_path, &positions_path),
        )?;
        let n = write(&out.join(&file), js.as_bytes())?;
        largest = largest.max(n);
        bytes += n;
        let density_src = run_dir.join(files::DENSITY_SVG);
        let density = if density_src.exists() {
            let name = format!("density/{}.svg", r.spec.name);
            let svg = std::fs::read(&density_src).at_file(&density_src)?;
            bytes += write(&out.join(&name), &svg)?;
            Some(name)
        } else {
            None
        };
        runs.push(run_json(r, &file, density.as_deref()));
    }

    let mut charts = Vec::new();
    let charts_dir = sweep.join(files::CHARTS);
    if charts_dir.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&charts_dir)
            .at_file(&charts_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "svg"))
            .collect();
        entries.sort();
        for src in entries {
            let name = src
                .file_name()
                .expect("read_dir entries have names")
                .to_string_lossy()
                .into_owned();
            let svg = std::fs::read(&src).at_file(&src)?;
            bytes += write(&out.join("charts").join(&name), &svg)?;
            charts.push(format!("charts/{name}"));
        }
    }
    let settings = &report.settings;
    let index = json!({
        "version": 1,
        "game": report.game,
        "boardSize": report.board_size,
        "dIn": report.d_in,
        "storeRows": report.store_rows,
        "evalRows": report.runs.first().map_or(0, |r| r.rows),
        "preset": settings.grid.preset,
        "steps": settings.steps,
        "batchSize": settings.grid.batch_size,
        "lr": settings.grid.lr,
        "seed": settings.seed,
        "top": top,
        "bsps": report.bsps,
        "runs": runs,
        "charts": charts,
    });
    let index_js = format!(
        "window.KIBITZER = {};\nwindow.KIBITZER_SAE = window.KIBITZER_SAE || {{}};\n",
        serde_json::to_string(&index).expect("JSON values serialise")
    );
    bytes += write(&out.join("data").join("index.js"), index_js.as_bytes())?;
    Ok(VisSummary {
        index: out.join("index.html"),
        runs: report.runs.len(),
        features,
        top,
        bytes,
        largest_run_bytes: largest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_keeps_four_significant_digits() {
        assert_eq!(round_sig(0.123456, 4), 0.1235);
        assert_eq!(round_sig(123456.0, 4), 123500.0);
        assert_eq!(round_sig(-0.0009876543, 4), -0.0009877);
        assert_eq!(round_sig(0.0, 4), 0.0);
        assert!(num(f64::NAN).is_null());
    }

    #[test]
    fn squares_and_boards_become_indices() {
        assert_eq!(square_index("a1", 6), Some(0));
        assert_eq!(square_index("f6", 6), Some(35));
        assert_eq!(square_index("c2", 6), Some(8));
        assert_eq!(square_index("g1", 6), None);
        assert_eq!(square_index("a7", 6), None);
        let record = PositionRecord {
            row: 4,
            game: 1,
            ply: 2,
            board: "....../..X.../..XX../..XO../....../...... O".into(),
            last_move: Some("c2".into()),
            flipped: vec!["c3".into()],
        };
        let v = position_json(&record, 6, Path::new("positions.json")).expect("a 6x6 board");
        assert_eq!(
            v,
            json!(["........X.....XX....XO..............", "O", 8, [14], 1, 2])
        );
        let err = position_json(&record, 8, Path::new("positions.json")).expect_err("8x8");
        assert!(err.to_string().contains("row 4"), "{err}");
    }

    #[test]
    fn run_data_shares_boards_and_names_what_is_missing() {
        use crate::sweep::{BspMatch, FeatureSummary, TopActivation};
        let board = |row| PositionRecord {
            row,
            game: 0,
            ply: row,
            board: "....../..X.../..XX../..XO../....../...... O".into(),
            last_move: None,
            flipped: vec![],
        };
        let (b7, b9) = (board(7), board(9));
        let positions: HashMap<usize, &PositionRecord> = [(7, &b7), (9, &b9)].into();
        let bsp_index: HashMap<&str, usize> = [("mine@a1", 0), ("empty@f6", 1)].into();
        let feature = |rows: &[u32]| FeatureSummary {
            frequency: 0.123456,
            max_activation: 2.0,
            histogram: vec![1, 0, 2],
            top: rows
                .iter()
                .map(|&row| TopActivation {
                    row,
                    activation: 1.5,
                    count: 2,
                })
                .collect(),
            bsps: vec![BspMatch {
                bsp: "empty@f6".into(),
                f1: 0.5,
                precision: 0.25,
                recall: 1.0,
                threshold: 0.1,
            }],
        };
        let stats = FeatureStats {
            run: "r".into(),
            rows: 10,
            features: vec![feature(&[9, 7, 9]), feature(&[7])],
        };
        let paths = (Path::new("features.json"), Path::new("positions.json"));
        let js = run_data_js(&stats, &positions, &bsp_index, 6, 2, paths).expect("consistent");
        let body = js
            .strip_prefix("window.KIBITZER_SAE[\"r\"] = ")
            .and_then(|b| b.strip_suffix(";\n"))
            .expect("one assignment");
        let v: Value = serde_json::from_str(body).expect("JSON");
        // Two boards for three references; `top` 2 drops the third.
        assert_eq!(v["positions"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            v["features"][0],
            json!([
                0.1235,
                2.0,
                [1, 0, 2],
                [[0, 1.5, 2], [1, 1.5, 2]],
                [[1, 0.5, 0.25, 1.0, 0.1]]
            ])
        );
        assert_eq!(v["features"][1][3], json!([[1, 1.5, 2]]));
        let lonely = FeatureStats {
            features: vec![feature(&[8])],
            ..stats.clone()
        };
        let err = run_data_js(&lonely, &positions, &bsp_index, 6, 2, paths).expect_err("row 8");
        assert!(err.to_string().contains("no board for row 8"), "{err}");
        let mut unknown = stats;
        unknown.features[0].bsps[0].bsp = "legal@z9".into();
        let err = run_data_js(&unknown, &positions, &bsp_index, 6, 2, paths).expect_err("bsp");
        assert!(err.to_string().contains("legal@z9"), "{err}");
    }
}
