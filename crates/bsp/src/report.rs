//! Reports of the metrics as serde types (JSON) and Markdown tables.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{BspError, Result};
use crate::metrics::MetricsConfig;

/// Coverage and board reconstruction of one set of features (a dictionary,
/// raw neurons, ...) against one BSP set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BspReport {
    /// What was measured ("p-anneal SAE, layer 5", "MLP neurons").
    pub name: String,
    /// Number of features.
    pub features: usize,
    /// Features that fired within the maximum-activation tokens.
    pub alive_features: usize,
    /// Tokens the maximum activations were taken over.
    pub max_activation_tokens: usize,
    /// Labelled train rows (coverage, high-precision features).
    pub train_rows: usize,
    /// Labelled test rows (board reconstruction); 0 without a test set.
    pub test_rows: usize,
    /// The configuration used.
    pub config: MetricsConfig,
    /// Coverage.
    pub coverage: CoverageReport,
    /// Board reconstruction, when a test set was given.
    pub reconstruction: Option<ReconstructionReport>,
}

/// Coverage per group, per aggregate and per property.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoverageReport {
    /// The thresholds (fractions of the maximum activation).
    pub thresholds: Vec<f32>,
    /// One entry per group.
    pub groups: Vec<GroupCoverage>,
    /// Per category, then "all".
    pub aggregates: Vec<AggregateCoverage>,
    /// One entry per property.
    pub bsps: Vec<BspCoverage>,
}

/// Coverage of one group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupCoverage {
    /// The group.
    pub group: String,
    /// Its category.
    pub category: String,
    /// Number of properties.
    pub bsps: usize,
    /// Properties that hold at least once in the train rows.
    pub bsps_with_positives: usize,
    /// Mean best-feature F1 over all properties, per threshold.
    pub per_threshold: Vec<f64>,
    /// The same over properties with positives.
    pub per_threshold_present: Vec<f64>,
    /// Index of the best threshold (first maximum of `per_threshold`).
    pub best_threshold: usize,
    /// Reference 002's coverage: the maximum of `per_threshold`.
    pub coverage: f64,
    /// The maximum of `per_threshold_present`.
    pub coverage_present: f64,
}

/// Coverage of a set of groups: the mean of their coverages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggregateCoverage {
    /// A category, or "all".
    pub name: String,
    /// Its groups.
    pub groups: Vec<String>,
    /// Mean of the groups' coverages.
    pub coverage: f64,
    /// Mean of the groups' coverages over present properties.
    pub coverage_present: f64,
}

/// The best feature for one property.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BspCoverage {
    /// The property.
    pub name: String,
    /// Its group.
    pub group: String,
    /// Train rows where it holds.
    pub positives: u64,
    /// Best F1 at the group's best threshold.
    pub f1: f32,
    /// The feature reaching it (`None` when no feature has F1 above 0).
    pub feature: Option<usize>,
    /// Best F1 at any threshold.
    pub best_f1: f32,
    /// The feature reaching it.
    pub best_feature: Option<usize>,
    /// The threshold index reaching it.
    pub best_threshold: usize,
}

/// Board reconstruction per group, per aggregate and per property.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReconstructionReport {
    /// The thresholds.
    pub thresholds: Vec<f32>,
    /// One entry per group.
    pub groups: Vec<GroupReconstruction>,
    /// Per category, then "all".
    pub aggregates: Vec<AggregateReconstruction>,
    /// One entry per property, at its group's best threshold.
    pub bsps: Vec<BspReconstruction>,
}

/// Counts and scores of one group at one threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdCounts {
    /// True positives (tokens x properties).
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// False negatives.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// (token, slot) pairs with exactly one true and one false positive.
    pub true_and_false_positive_slots: u64,
    /// Precision.
    pub precision: f32,
    /// Recall.
    pub recall: f32,
    /// F1 over properties (the reported score).
    pub f1: f32,
    /// The per-square F1 the best threshold is chosen by.
    pub f1_per_square: f32,
    /// High-precision (feature, property) pairs found on the train rows.
    pub high_precision_pairs: u64,
    /// Features high-precision for at least one property of the group.
    pub high_precision_features: u64,
}

/// Board reconstruction of one group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupReconstruction {
    /// The group.
    pub group: String,
    /// Its category.
    pub category: String,
    /// Counts per threshold.
    pub per_threshold: Vec<ThresholdCounts>,
    /// The chosen threshold.
    pub best_threshold: usize,
    /// The board reconstruction F1 at it.
    pub f1: f32,
    /// Precision at it.
    pub precision: f32,
    /// Recall at it.
    pub recall: f32,
    /// True positives at it.
    pub tp: u64,
    /// False positives at it.
    pub fp: u64,
    /// False negatives at it.
    #[serde(rename = "fn")]
    pub fn_: u64,
}

/// Board reconstruction of a set of groups (means of the counts).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggregateReconstruction {
    /// A category, or "all".
    pub name: String,
    /// Its groups.
    pub groups: Vec<String>,
    /// Mean true positives.
    pub tp_mean: f64,
    /// Mean false positives.
    pub fp_mean: f64,
    /// Mean false negatives.
    pub fn_mean: f64,
    /// Precision of the means.
    pub precision: f64,
    /// Recall of the means.
    pub recall: f64,
    /// F1 of the means.
    pub f1: f64,
}

/// Board reconstruction of one property at its group's best threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BspReconstruction {
    /// The property.
    pub name: String,
    /// Its group.
    pub group: String,
    /// Test rows where it holds.
    pub positives: u64,
    /// True positives.
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// False negatives.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// F1.
    pub f1: f32,
    /// Features high-precision for it at that threshold.
    pub high_precision_features: u64,
}

/// Scores of supervised linear probes, for the same table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// What was probed.
    pub name: String,
    /// Train rows.
    pub train_rows: usize,
    /// Held-out rows the scores are on.
    pub test_rows: usize,
    /// Per group.
    pub groups: Vec<ProbeGroupScore>,
    /// Per category, then "all" (pooled like board reconstruction).
    pub aggregates: Vec<ProbeGroupScore>,
    /// Mean training loss per epoch.
    pub epoch_losses: Vec<f32>,
}

/// Held-out scores of the probes of one group (or aggregate).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeGroupScore {
    /// Group, category or "all".
    pub name: String,
    /// Number of probe variables (slots and standalone properties).
    pub variables: usize,
    /// Fraction of (row, variable) pairs classified right.
    pub accuracy: f64,
    /// Precision over properties (a predicted class is a predicted property).
    pub precision: f64,
    /// Recall over properties.
    pub recall: f64,
    /// F1 over properties, comparable with board reconstruction.
    pub f1: f64,
}

impl BspReport {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|source| BspError::Json {
            what: "BSP report".into(),
            source,
        })
    }

    /// Writes the JSON atomically (temp file in the same directory, fsync,
    /// rename).
    pub fn save_json(&self, path: &Path) -> Result<()> {
        write_atomically(path, self.to_json()?.as_bytes())
    }

    /// One Markdown table: a row per group, then a row per aggregate.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "### {}\n\n{} features ({} alive), max over {} tokens; {} train / {} test rows\n",
            if self.name.is_empty() {
                "BSP metrics"
            } else {
                &self.name
            },
            self.features,
            self.alive_features,
            self.max_activation_tokens,
            self.train_rows,
            self.test_rows
        );
        let _ = writeln!(
            out,
            "| group | BSPs | coverage | coverage (present) | t | reconstruction F1 | precision | recall | t |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        let recon = self.reconstruction.as_ref();
        for (i, g) in self.coverage.groups.iter().enumerate() {
            let r = recon.map(|r| &r.groups[i]);
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} | {:.3} | {} | {} | {} | {} | {} |",
                g.group,
                g.bsps,
                g.coverage,
                g.coverage_present,
                fraction(self.coverage.thresholds[g.best_threshold]),
                r.map_or("–".into(), |r| format!("{:.3}", r.f1)),
                r.map_or("–".into(), |r| format!("{:.3}", r.precision)),
                r.map_or("–".into(), |r| format!("{:.3}", r.recall)),
                r.zip(recon).map_or("–".into(), |(r, rr)| fraction(
                    rr.thresholds[r.best_threshold]
                )),
            );
        }
        for (i, a) in self.coverage.aggregates.iter().enumerate() {
            let r = recon.map(|r| &r.aggregates[i]);
            let _ = writeln!(
                out,
                "| **{}** ({} groups) | | **{:.3}** | {:.3} | | {} | {} | {} | |",
                a.name,
                a.groups.len(),
                a.coverage,
                a.coverage_present,
                r.map_or("–".into(), |r| format!("**{:.3}**", r.f1)),
                r.map_or("–".into(), |r| format!("{:.3}", r.precision)),
                r.map_or("–".into(), |r| format!("{:.3}", r.recall)),
            );
        }
        out
    }
}

fn fraction(t: f32) -> String {
    format!("{t:.1}")
}

impl ProbeReport {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|source| BspError::Json {
            what: "probe report".into(),
            source,
        })
    }

    /// Writes the JSON atomically.
    pub fn save_json(&self, path: &Path) -> Result<()> {
        write_atomically(path, self.to_json()?.as_bytes())
    }

    /// One Markdown table of the held-out scores.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "### {}\n\nlinear probes, {} train / {} held-out rows\n",
            if self.name.is_empty() {
                "Linear probes"
            } else {
                &self.name
            },
            self.train_rows,
            self.test_rows
        );
        let _ = writeln!(
            out,
            "| group | variables | accuracy | F1 | precision | recall |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
        for (bold, s) in self
            .groups
            .iter()
            .map(|s| (false, s))
            .chain(self.aggregates.iter().map(|s| (true, s)))
        {
            let name = if bold {
                format!("**{}**", s.name)
            } else {
                s.name.clone()
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
                s.variables, s.accuracy, s.f1, s.precision, s.recall
            );
        }
        out
    }
}

/// A comparison table in the shape of reference 002's: one row per measured
/// thing (dictionary, raw neurons, random-init model, probes), one column
/// pair (coverage, board reconstruction) per aggregate name in `columns`
/// (e.g. `["board", "all"]`). Missing values print as "–".
pub fn comparison_markdown(
    reports: &[&BspReport],
    probes: &[&ProbeReport],
    columns: &[&str],
) -> String {
    let mut out = String::new();
    let mut header = String::from("| features |");
    let mut rule = String::from("|---|");
    for c in columns {
        let _ = write!(header, " {c} coverage | {c} reconstruction |");
        rule.push_str("---:|---:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for report in reports {
        let _ = write!(out, "| {} |", report.name);
        for c in columns {
            let coverage = report
                .coverage
                .aggregates
                .iter()
                .find(|a| a.name == *c)
                .map_or("–".into(), |a| format!("{:.3}", a.coverage));
            let recon = report
                .reconstruction
                .as_ref()
                .and_then(|r| r.aggregates.iter().find(|a| a.name == *c))
                .map_or("–".into(), |a| format!("{:.3}", a.f1));
            let _ = write!(out, " {coverage} | {recon} |");
        }
        out.push('\n');
    }
    for probe in probes {
        let _ = write!(out, "| {} (linear probe) |", probe.name);
        for c in columns {
            let f1 = probe
                .aggregates
                .iter()
                .find(|a| a.name == *c)
                .map_or("–".into(), |a| format!("{:.3}", a.f1));
            let _ = write!(out, " – | {f1} |");
        }
        out.push('\n');
    }
    out
}

/// Writes `bytes` to `path` atomically (kibitzer-io's: a
/// temporary file in the same directory, fsync, rename, fsync of the
/// directory). A `path` that exists and is not a regular file (a symlink, a
/// device such as `/dev/null`, a FIFO, a directory) is refused, naming it:
/// the rename would replace it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| BspError::Io {
        path: path.to_path_buf(),
        source,
    };
    kibitzer_io::atomic::write(path, bytes).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::BitMatrix;
    use crate::property::{BspInfo, BspLabels, Catalog};
    use crate::{Activations, MetricsConfig, evaluate};
    use std::sync::Arc;

    fn report() -> BspReport {
        let catalog = Arc::new(
            Catalog::new(vec![
                BspInfo::new("a", "g1", "low", None),
                BspInfo::new("b", "g2", "high", None),
            ])
            .expect("catalog"),
        );
        let mut bits = BitMatrix::zeros(40, 2);
        let mut acts = ndarray::Array2::<f32>::zeros((40, 2));
        for r in 0..40 {
            bits.set(r, 0, r % 2 == 0);
            bits.set(r, 1, r % 4 == 0);
            acts[[r, 0]] = if r % 2 == 0 { 1.0 } else { 0.0 };
            acts[[r, 1]] = (r % 5) as f32;
        }
        let labels = BspLabels::from_bits(catalog, bits).expect("labels");
        evaluate(
            "tiny",
            (&Activations::Dense(acts.view()), &labels),
            Some((&Activations::Dense(acts.view()), &labels)),
            None,
            &MetricsConfig::default(),
        )
        .expect("valid")
    }

    /// Equal JSON trees, numbers equal to 1e-12 (serde_json may read the
    /// last bit of an f64 back differently).
    fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().expect("finite"), y.as_f64().expect("finite"));
                (x - y).abs() <= 1e-12 * x.abs().max(1.0)
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    #[test]
    fn json_round_trips_and_saves_atomically() {
        let report = report();
        let json = report.to_json().expect("serializable");
        let back: BspReport = serde_json::from_str(&json).expect("parses");
        let value = |r: &BspReport| serde_json::to_value(r).expect("serializable");
        assert!(same(&value(&back), &value(&report)));
        assert_eq!(back.coverage.groups, report.coverage.groups);
        assert!(json.contains("\"fn\""), "false negatives are written as fn");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("report.json");
        report.save_json(&path).expect("writable");
        let read: BspReport =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("written")).expect("json");
        assert!(same(&value(&read), &value(&report)));
        let missing = dir.path().join("no/such/dir/report.json");
        let error = report.save_json(&missing).expect_err("no directory");
        assert!(error.to_string().contains("report.json"), "{error}");
    }

    #[cfg(unix)]
    #[test]
    fn atomic_writes_refuse_to_replace_symlinks_and_devices() {
        // Issue 20 #2, for Rust callers of kibitzer-bsp (the CLI checks too).
        let dir = tempfile::tempdir().expect("temp dir");
        let target = dir.path().join("target.json");
        std::fs::write(&target, "keep").expect("written");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link).expect("a symlink");
        for path in [link.as_path(), Path::new("/dev/null"), dir.path()] {
            let error = write_atomically(path, b"new").expect_err("not a regular file");
            assert!(
                error.to_string().contains(&path.display().to_string()),
                "{error}"
            );
        }
        assert!(
            std::fs::symlink_metadata(&link)
                .expect("still there")
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&target).expect("kept"), "keep");
        write_atomically(&target, b"new").expect("a regular file is replaced");
        assert_eq!(std::fs::read_to_string(&target).expect("written"), "new");
    }

    #[test]
    fn markdown_tables_show_every_group_and_aggregate() {
        let report = report();
        let table = report.markdown();
        assert!(
            table.contains("| g1 | 1 | 1.000 | 1.000 | 0.0 | 1.000 |"),
            "{table}"
        );
        assert!(table.contains("| g2 |"), "{table}");
        assert!(table.contains("**low** (1 groups)") && table.contains("**all** (2 groups)"));
        let comparison = comparison_markdown(&[&report], &[], &["low", "all", "missing"]);
        assert!(
            comparison.contains("| tiny | 1.000 | 1.000 |"),
            "{comparison}"
        );
        assert!(comparison.contains("– | – |"), "{comparison}");
    }
}
