use super::*;
use burn::tensor::Device;
use kibitzer_bsp::{BitMatrix, BspInfo, Catalog};
use kibitzer_bsp::{BspLabels, SparseActivations};
use std::collections::BTreeMap;
use std::sync::Arc;

fn labels(rows: &[&[usize]], n_bsps: usize) -> BspLabels {
    let infos = (0..n_bsps)
        .map(|i| BspInfo::new(format!("p{i}"), "g", "c", None))
        .collect();
    let catalog = Arc::new(Catalog::new(infos).expect("distinct names"));
    let mut bits = BitMatrix::zeros(rows.len(), n_bsps);
    for (r, ones) in rows.iter().enumerate() {
        for &b in *ones {
            bits.set(r, b, true);
        }
    }
    BspLabels::from_bits(catalog, bits).expect("shapes agree")
}

fn sparse(dense: &[[f32; 2]]) -> SparseActivations {
    let flat: Vec<f32> = dense.iter().flatten().copied().collect();
    let view = ndarray::ArrayView2::from_shape((dense.len(), 2), &flat).expect("shape");
    SparseActivations::from_dense(view, "test").expect("finite")
}

/// Feature 0 fires exactly where p0 holds (F1 1 at threshold 0); feature
/// 1 fires on rows 0..3 with p1 true on rows 2, 3, where it is largest:
/// above half its maximum it is exactly p1.
#[test]
fn summaries_by_hand() {
    let acts = sparse(&[[2.0, 1.0], [0.0, 1.0], [1.0, 4.0], [0.0, 3.0], [0.0, 0.0]]);
    let l = labels(&[&[0], &[], &[0, 1], &[1], &[]], 2);
    let config = SummaryConfig {
        top_examples: 2,
        top_bsps: 2,
        histogram_bins: 4,
        thresholds: vec![0.0, 0.5],
    };
    let s = feature_summaries(&acts, &l, &config).expect("aligned");
    assert_eq!(s.len(), 2);
    assert!((s[0].frequency - 0.4).abs() < 1e-12);
    assert_eq!(s[0].max_activation, 2.0);
    // 1.0 is half the maximum: bin 2 of 4; 2.0 is the last bin.
    assert_eq!(s[0].histogram, vec![0, 0, 1, 1]);
    assert_eq!(
        s[0].top,
        vec![
            TopActivation {
                row: 0,
                activation: 2.0,
                count: 1
            },
            TopActivation {
                row: 2,
                activation: 1.0,
                count: 1
            }
        ]
    );
    assert_eq!(s[0].bsps[0].bsp, "p0");
    assert!((s[0].bsps[0].f1 - 1.0).abs() < 1e-6);
    assert_eq!(s[0].bsps[0].threshold, 0.0);
    // Feature 1: above 0.5 x 4 = 2 on rows 2 and 3, where p1 holds.
    let f1 = &s[1];
    assert_eq!(f1.bsps[0].bsp, "p1");
    assert!((f1.bsps[0].f1 - 1.0).abs() < 1e-6, "{:?}", f1.bsps);
    assert_eq!(f1.bsps[0].threshold, 0.5);
    // p0 (rows 0, 2) is best matched at threshold 0: active on rows
    // 0..4, precision 1/2 and recall 1 (above 0.5 both would be 1/2).
    assert_eq!(f1.bsps[1].bsp, "p0");
    assert_eq!(f1.bsps[1].threshold, 0.0);
    assert!((f1.bsps[1].precision - 0.5).abs() < 1e-6);
    assert!((f1.bsps[1].recall - 1.0).abs() < 1e-6);
    assert!((f1.bsps[1].f1 - 2.0 / 3.0).abs() < 1e-6);
    // Ties in activation go to the lower row; the top is sorted.
    assert_eq!(f1.top[0].row, 2);
    assert_eq!(f1.top[1].row, 3);
    let wrong = labels(&[&[0]], 2);
    assert!(feature_summaries(&acts, &wrong, &config).is_err());
}

/// Rows 0, 2 and 3 are one labelled position (the same properties):
/// the top shows it once, with its count, and goes on to row 1.
#[test]
fn top_examples_show_each_position_once() {
    let acts = sparse(&[[3.0, 0.0], [1.0, 0.0], [2.0, 0.0], [2.5, 0.0]]);
    let l = labels(&[&[0], &[1], &[0], &[0]], 2);
    let config = SummaryConfig {
        top_examples: 2,
        top_bsps: 1,
        histogram_bins: 2,
        thresholds: vec![0.0],
    };
    let s = feature_summaries(&acts, &l, &config).expect("aligned");
    let top: Vec<(u32, f32, u32)> = s[0]
        .top
        .iter()
        .map(|t| (t.row, t.activation, t.count))
        .collect();
    assert_eq!(top, vec![(0, 3.0, 3), (1, 1.0, 1)]);
    assert!(s[1].top.is_empty() && s[1].bsps.is_empty() && s[1].frequency == 0.0);
}

#[test]
fn grids_name_and_count_their_members() {
    let reference = SweepGrid::preset(Preset::Reference);
    assert_eq!(reference.len(), 125);
    let standard = reference
        .families
        .iter()
        .find(|g| g.family == Family::Standard)
        .expect("the reference grid has standard SAEs");
    assert_eq!(standard.values, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(reference.features, vec![256, 512, 1024, 2048, 4096]);
    assert_eq!((reference.batch_size, reference.lr), (16384, 1e-4));
    assert_eq!(
        SweepGrid::run_name(Family::Standard, 512, 3.0),
        "standard-d512-l1_3"
    );
    assert_eq!(
        SweepGrid::run_name(Family::Topk, 256, 16.0),
        "topk-d256-k16"
    );
    assert_eq!(
        SweepGrid::run_name(Family::Jumprelu, 256, 0.5),
        "jumprelu-d256-l0_0.5"
    );

    let mut small = SweepGrid::preset(Preset::Small);
    small.restrict_to(&[Family::Topk, Family::Standard, Family::Batchtopk]);
    let order: Vec<Family> = small.families.iter().map(|g| g.family).collect();
    assert_eq!(
        order,
        vec![Family::Standard, Family::Topk, Family::Batchtopk]
    );
    small.features = vec![64, 128];
    let device = Device::flex();
    let members = small.members(8, 10, 7, &device).expect("valid grid");
    assert_eq!(members.len(), small.len());
    let specs: Vec<RunSpec> = members.iter().map(RunSpec::of).collect();
    assert_eq!(specs[0].name, "standard-d64-l1_1");
    assert_eq!(
        (specs[0].family, specs[0].d_sae, specs[0].sparsity),
        (Family::Standard, 64, 1.0)
    );
    let topk = specs
        .iter()
        .find(|s| s.name == "topk-d128-k16")
        .expect("topk member");
    assert_eq!(
        (topk.family, topk.sparsity, topk.sparsity_kind.as_str()),
        (Family::Topk, 16.0, "k")
    );
    assert_eq!(topk.sparsity_label(), "k 16");
    assert_eq!(members[1].trainer.config.seed, 8);

    assert!(
        specs.iter().any(|s| s.name == "batchtopk-d64-k64"),
        "BatchTopK gets TopK's reference values of k"
    );
    small.features = vec![8];
    assert!(
        small.members(8, 10, 7, &device).is_err(),
        "k = 16 cannot fit 8 features"
    );
    // Issue 20 #4: a grid that cannot fit in memory is refused before
    // any dictionary is allocated, naming --features and the bytes.
    small.features = vec![4_000_000_000];
    let err = small
        .members(64, 10, 7, &device)
        .expect_err("too large")
        .to_string();
    assert!(
        err.contains("--features 4000000000") && err.contains("needs about"),
        "{err}"
    );
    small.features = vec![16, 16];
    let err = small.validate().expect_err("repeated size").to_string();
    assert!(err.contains("repeat"), "{err}");
    assert!("nonsense".parse::<Family>().is_err());
    assert_eq!("TopK".parse::<Family>().expect("known"), Family::Topk);
}

#[test]
fn charts_have_one_line_per_sparsity_value_on_a_log_axis() {
    let run = |family, d_sae, sparsity: f64, l0| RunResult {
        spec: RunSpec {
            name: SweepGrid::run_name(family, d_sae, sparsity),
            family,
            d_sae,
            sparsity_kind: Family::sparsity_kind(family).into(),
            sparsity,
            steps: 1,
        },
        step: 1,
        rows: 10,
        mse: 0.1,
        l0,
        dead_fraction: 0.0,
        dense_fraction: 0.0,
        fvu: 0.2,
        explained_variance: 0.8,
        cosine_similarity: 0.9,
        alive_features: d_sae,
        coverage: BTreeMap::from([("board".to_string(), 0.5)]),
        reconstruction: BTreeMap::new(),
        eval_seconds: 0.0,
    };
    let runs = vec![
        run(Family::Standard, 256, 1.0, 30.0),
        run(Family::Standard, 1024, 1.0, 20.0),
        run(Family::Standard, 256, 2.0, 10.0),
        run(Family::Topk, 256, 8.0, 8.0),
    ];
    let charts = scaling_charts(&runs);
    assert_eq!(charts.len(), 2 * SCALING_METRICS.len());
    let (name, l0) = charts
        .iter()
        .find(|(n, _)| n == "standard-l0.svg")
        .expect("a standard L0 chart");
    assert_eq!(name, "standard-l0.svg");
    assert_eq!(l0.series.len(), 2);
    assert_eq!(l0.series[0].label, "L1 1");
    assert_eq!(l0.series[0].points, vec![(256.0, 30.0), (1024.0, 20.0)]);
    let svg = l0.svg();
    assert_eq!(
        svg.matches("class=\"series\"").count(),
        1,
        "one line has 2 points"
    );
    assert_eq!(svg.matches("<circle").count(), 3);
    // On a log axis 256 and 1024 are ticks, 512 is not.
    assert!(svg.contains(">256<") && svg.contains(">1024<") && !svg.contains(">512<"));
    // A metric nobody measured draws "no data", not a broken chart.
    let (_, rec) = charts
        .iter()
        .find(|(n, _)| n == "topk-reconstruction_board.svg")
        .expect("chart");
    assert!(rec.svg().contains("no data"));
    let md = scaling_markdown(
        &ScalingReport {
            format: "kibitzer-scaling".into(),
            version: 1,
            activations: "a".into(),
            labels: "l".into(),
            game: "othello".into(),
            board_size: 6,
            d_in: 4,
            store_rows: 10,
            settings: SweepSettings {
                format: "kibitzer-sweep-settings".into(),
                grid: SweepGrid::preset(Preset::Small),
                steps: 1,
                seed: 0,
                train_seconds: None,
            },
            eval: EvalConfig::default(),
            bsps: vec![],
            runs: runs.clone(),
        },
        &["standard-l0.svg"],
    );
    assert_eq!(md.matches("\n| standard-d").count(), 3, "{md}");
    assert!(md.contains("| 0.500 |") && md.contains("| — |"), "{md}");
    assert!(md.contains("![standard-l0.svg](charts/standard-l0.svg)"));
}

#[test]
fn a_grid_without_steps_trains_its_passes_over_the_store() {
    let mut small = SweepGrid::preset(Preset::Small);
    assert_eq!(
        (small.steps, small.passes, small.batch_size),
        (None, 3, 2048)
    );
    // The demo's store: 400,011 rows are 195 whole batches a pass.
    assert_eq!(small.steps_for(400_011), 585);
    assert_eq!(small.steps_for(100), 1, "at least one step");
    small.steps = Some(7);
    assert_eq!(small.steps_for(400_011), 7, "steps, when set, win");
    small.steps = None;
    small.passes = 0;
    assert!(small.validate().is_err());

    // Settings written before `passes` existed meant one pass.
    let mut old =
        serde_json::to_value(SweepGrid::preset(Preset::Small)).expect("a grid serialises");
    old.as_object_mut().expect("an object").remove("passes");
    let read: SweepGrid = serde_json::from_value(old).expect("old settings still load");
    assert_eq!(read.passes, 1);
    assert_eq!(read.steps_for(400_011), 195);
}
