//! The fused host step against the dense step (`topk::step`) for every
//! shape, by proptest and on fixed cases (dead latents and AuxK, Matryoshka
//! levels), its selections against the dense masks, and its kernels against
//! plain loops.

use super::*;
use crate::Architecture;
use crate::arch::topk;
use crate::ops::{batch_topk_mask, row_topk_mask, scalar};
use crate::sae::{RowNorm, Sae, SaeConfig};
use burn::tensor::Device;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const B: usize = 48;
const D: usize = 24;
const M: usize = 80;

fn random(rng: &mut ChaCha8Rng, rows: usize, cols: usize, scale: f32) -> Tensor<2> {
    let v = (0..rows * cols)
        .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale)
        .collect();
    from_host(v, rows, cols, &Device::flex())
}

fn random_sae(arch: Architecture, seed: u64, apply_b_dec: bool) -> Sae {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let config = SaeConfig {
        apply_b_dec_to_input: apply_b_dec,
        row_norm: RowNorm::None,
        ..SaeConfig::new(arch, D, M)
    };
    let params = Params {
        w_enc: random(&mut rng, D, M, 0.6),
        b_enc: random(&mut rng, 1, M, 0.2),
        w_dec: random(&mut rng, M, D, 0.6),
        b_dec: random(&mut rng, 1, D, 0.3),
        threshold: None,
        b_mag: None,
        r_mag: None,
        w_skip: None,
    };
    Sae { config, params }
}

/// Every third latent dead when `n_dead > 0`.
fn inputs(n_dead: usize, k_aux: usize) -> StepInputs {
    let dead: Vec<f32> = (0..M)
        .map(|j| {
            if j % 3 == 0 && j / 3 < n_dead {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    StepInputs {
        sparsity_coefficient: 0.0,
        p: 1.0,
        dead_mask: (n_dead > 0).then(|| row_from_host(dead, &Device::flex())),
        n_dead,
        k_aux,
        auxk_alpha: 1.0 / 32.0,
        l0: Default::default(),
        levels: None,
    }
}

fn assert_close(what: &str, fused: &[f32], dense: &[f32]) {
    assert_eq!(fused.len(), dense.len(), "{what}: lengths");
    let scale = dense.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in fused.iter().zip(dense).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * scale,
            "{what}[{i}]: fused {a} vs dense {b} (scale {scale})"
        );
    }
}

fn compare(
    sae: &Sae,
    x: &Tensor<2>,
    inp: &StepInputs,
    selection: Selection,
) -> (StepOutput, StepOutput) {
    compare_model(&sae.step_model(), x, x, inp, selection)
}

/// The fused step against the dense one: gradients, features (and
/// which are active), reconstruction, loss terms, BatchTopK's smallest
/// kept value.
fn compare_model(
    model: &StepModel<'_>,
    x: &Tensor<2>,
    y: &Tensor<2>,
    inp: &StepInputs,
    selection: Selection,
) -> (StepOutput, StepOutput) {
    let fused = step(model, x.clone(), y.clone(), inp, selection);
    let dense = topk::step(model, x.clone(), y.clone(), inp, selection);
    for ((name, f), (_, d)) in fused.grads.named().into_iter().zip(dense.grads.named()) {
        assert_close(name, &to_host(f), &to_host(d));
    }
    let (ff, df) = (
        to_host(fused.features.clone()),
        to_host(dense.features.clone()),
    );
    let support = |v: &[f32]| v.iter().map(|a| *a != 0.0).collect::<Vec<_>>();
    assert_eq!(support(&ff), support(&df), "the same features are active");
    assert_close("features", &ff, &df);
    assert_close(
        "reconstruction",
        &to_host(fused.reconstruction.clone()),
        &to_host(dense.reconstruction.clone()),
    );
    let fl = fused.loss.clone_read();
    let dl = dense.loss.clone_read();
    for (what, a, b) in [
        ("mse", fl.mse, dl.mse),
        ("sparsity", fl.sparsity, dl.sparsity),
        ("aux", fl.aux, dl.aux),
    ] {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1e-6),
            "{what}: fused {a} vs dense {b}"
        );
    }
    match (&fused.min_kept_activation, &dense.min_kept_activation) {
        (Some(a), Some(b)) => {
            let (a, b) = (scalar(a.clone()), scalar(b.clone()));
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1e-6),
                "min kept: fused {a} vs dense {b}"
            );
        }
        (None, None) => {}
        _ => panic!("min_kept_activation present in one step only"),
    }
    (fused, dense)
}

/// Transcoder and crosscoder weights: `M` features from `d_in` to
/// `d_out`, a skip path if asked, encoder values on a coarse grid
/// (ties) if `tied`.
fn shaped_params(seed: u64, d_in: usize, d_out: usize, skip: bool, tied: bool) -> Params {
    let dev = Device::flex();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (w_enc, b_enc) = if tied {
        (
            from_host(tied_values(seed, d_in, M), d_in, M, &dev),
            from_host(tied_values(seed + 1, 1, M), 1, M, &dev),
        )
    } else {
        (random(&mut rng, d_in, M, 0.6), random(&mut rng, 1, M, 0.2))
    };
    Params {
        w_enc,
        b_enc,
        w_dec: random(&mut rng, M, d_out, 0.6),
        b_dec: random(&mut rng, 1, d_out, 0.3),
        threshold: None,
        b_mag: None,
        r_mag: None,
        w_skip: skip.then(|| random(&mut rng, d_out, d_in, 0.4)),
    }
}

/// A transcoder (another target, with and without a skip path) and a
/// crosscoder (two output blocks, selection by decoder weight), with
/// ties, dead latents and k above d_sae.
#[test]
fn transcoder_and_crosscoder_shapes_match_the_dense_step() {
    let cases = [
        // (d_in, out blocks, skip, by norm, tied values)
        (12, vec![9], true, false, false),
        (12, vec![9], false, false, true),
        (10, vec![4, 6], false, true, false),
        (10, vec![4, 6], false, true, true),
    ];
    for (seed, (d_in, blocks, skip, by_norm, tied)) in cases.into_iter().enumerate() {
        let seed = seed as u64;
        let d_out: usize = blocks.iter().sum();
        let params = shaped_params(seed, d_in, d_out, skip, tied);
        let mut rng = ChaCha8Rng::seed_from_u64(seed + 100);
        let x = random(&mut rng, B, d_in, 1.5);
        // A crosscoder reads what it writes.
        let y = if by_norm {
            x.clone()
        } else {
            random(&mut rng, B, d_out, 1.0)
        };
        for (arch, selection) in [
            (Architecture::TopK { k: 5 }, Selection::PerRow(5)),
            (Architecture::BatchTopK { k: 4 }, Selection::Batch(4)),
            (Architecture::TopK { k: M + 3 }, Selection::PerRow(M + 3)),
        ] {
            let model = StepModel {
                params: &params,
                architecture: &arch,
                out_blocks: (&blocks[..]).into(),
                select_by_norm: by_norm,
                apply_b_dec_to_input: false,
                cross_layer: None,
            };
            for (n_dead, k_aux) in [(0, 4), (12, 5), (3, 9)] {
                compare_model(&model, &x, &y, &inputs(n_dead, k_aux), selection);
            }
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    /// For any shape, selection and set of dead latents, the fused step
    /// computes what the dense one does.
    #[test]
    fn fused_equals_dense_for_random_shapes(
        seed in 0u64..10_000,
        d_in in 1usize..9,
        widths in proptest::collection::vec(1usize..6, 1..4),
        k in 1usize..12,
        batch_wide in proptest::bool::ANY,
        skip in proptest::bool::ANY,
        n_dead in 0usize..17,
        nested in proptest::collection::btree_set(1usize..M, 0..4),
    ) {
        let d_out: usize = widths.iter().sum();
        let by_norm = widths.len() > 1;
        let params = shaped_params(seed, d_in, d_out, skip && !by_norm, seed % 3 == 0);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xfeed);
        let x = random(&mut rng, B, d_in, 1.5);
        let y = random(&mut rng, B, d_out, 1.0);
        let (arch, selection) = if batch_wide {
            (Architecture::BatchTopK { k }, Selection::Batch(k))
        } else {
            (Architecture::TopK { k }, Selection::PerRow(k))
        };
        let model = StepModel {
            params: &params,
            architecture: &arch,
            out_blocks: (&widths[..]).into(),
            select_by_norm: by_norm,
            apply_b_dec_to_input: false,
            cross_layer: None,
        };
        let mut inp = inputs(n_dead, 1 + (seed as usize % 5));
        // Matryoshka levels: random inner widths, then M.
        if !nested.is_empty() {
            inp.levels = Some(nested.into_iter().chain([M]).collect());
        }
        compare_model(&model, &x, &y, &inp, selection);
    }
}

/// A Matryoshka dictionary's nested levels: the fused step against the
/// dense one, for TopK and BatchTopK, with dead latents, a skip
/// transcoder and a crosscoder; and the inner levels' losses are there
/// (the auxiliary term grows by them).
#[test]
fn matryoshka_levels_match_the_dense_step() {
    let levels = vec![5, 20, 50, M];
    for (seed, (d_in, blocks, skip, by_norm)) in [
        (D, vec![D], false, false),
        (12, vec![9], true, false),
        (10, vec![4, 6], false, true),
    ]
    .into_iter()
    .enumerate()
    {
        let seed = seed as u64 + 40;
        let d_out: usize = blocks.iter().sum();
        let params = shaped_params(seed, d_in, d_out, skip, false);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = random(&mut rng, B, d_in, 1.5);
        let y = if d_in == d_out {
            x.clone()
        } else {
            random(&mut rng, B, d_out, 1.0)
        };
        for (arch, selection) in [
            (Architecture::TopK { k: 6 }, Selection::PerRow(6)),
            (Architecture::BatchTopK { k: 6 }, Selection::Batch(6)),
        ] {
            let model = StepModel {
                params: &params,
                architecture: &arch,
                out_blocks: (&blocks[..]).into(),
                select_by_norm: by_norm,
                apply_b_dec_to_input: d_in == d_out,
                cross_layer: None,
            };
            for n_dead in [0, 9] {
                let plain = inputs(n_dead, 4);
                let nested = StepInputs {
                    levels: Some(levels.clone()),
                    ..plain.clone()
                };
                let (fused, _) = compare_model(&model, &x, &y, &nested, selection);
                let (flat, _) = compare_model(&model, &x, &y, &plain, selection);
                let (n, f) = (fused.loss.clone_read(), flat.loss.clone_read());
                // The whole dictionary's reconstruction is the same; the
                // three inner levels add their losses, recomputed here
                // from the features: ŷ_w = b_dec (+ skip) + f[:, ..w] W_dec[..w].
                assert!((n.mse - f.mse).abs() <= 1e-6 * f.mse.max(1e-6));
                let feats = to_host(fused.features.clone());
                let (wd, bd) = (to_host(params.w_dec.clone()), to_host(params.b_dec.clone()));
                let skip_out = params
                    .w_skip
                    .as_ref()
                    .map(|w| to_host(x.clone().matmul(w.clone().transpose())));
                let ys = to_host(y.clone());
                let mut inner = 0f64;
                for &w in &levels[..levels.len() - 1] {
                    for b in 0..B {
                        for o in 0..d_out {
                            let mut v = bd[o] + skip_out.as_ref().map_or(0.0, |s| s[b * d_out + o]);
                            for j in 0..w {
                                v += feats[b * M + j] * wd[j * d_out + o];
                            }
                            inner += ((v - ys[b * d_out + o]) as f64).powi(2);
                        }
                    }
                }
                inner /= B as f64;
                assert!(
                    (n.aux - f.aux - inner).abs() <= 1e-4 * inner.max(1e-6),
                    "inner levels: {} vs {inner}",
                    n.aux - f.aux
                );
                // The decoder gradient differs: the inner levels pull.
                let differs = to_host(fused.grads.w_dec.clone())
                    .iter()
                    .zip(to_host(flat.grads.w_dec.clone()))
                    .any(|(a, b)| (a - b).abs() > 1e-4);
                assert!(differs, "the nested loss changed nothing");
            }
        }
    }
}

trait CloneRead {
    fn clone_read(&self) -> crate::arch::LossParts;
}
impl CloneRead for LossTensors {
    fn clone_read(&self) -> crate::arch::LossParts {
        LossTensors {
            mse: self.mse.clone(),
            sparsity: self.sparsity.clone(),
            aux: self.aux.clone(),
            coefficient: self.coefficient,
        }
        .read()
    }
}

#[test]
fn topk_matches_dense_step_with_and_without_dead_latents() {
    for seed in 0..4u64 {
        let apply_b_dec = seed % 2 == 0;
        let sae = random_sae(Architecture::TopK { k: 6 }, seed, apply_b_dec);
        let x = random(&mut ChaCha8Rng::seed_from_u64(seed + 100), B, D, 1.5);
        compare(&sae, &x, &inputs(0, 4), Selection::PerRow(6));
        let (fused, _) = compare(&sae, &x, &inputs(20, 4), Selection::PerRow(6));
        // The auxiliary term was exercised, not zero by accident.
        assert!(fused.loss.clone_read().aux > 0.0);
        // More latents asked for than exist, and k_aux above n_dead.
        compare(&sae, &x, &inputs(3, 7), Selection::PerRow(M + 5));
    }
}

#[test]
fn batchtopk_matches_dense_step_with_and_without_dead_latents() {
    for seed in 10..14u64 {
        let sae = random_sae(Architecture::BatchTopK { k: 5 }, seed, seed % 2 == 1);
        let x = random(&mut ChaCha8Rng::seed_from_u64(seed + 100), B, D, 1.5);
        let (fused, _) = compare(&sae, &x, &inputs(0, 4), Selection::Batch(5));
        assert!(fused.min_kept_activation.is_some());
        compare(&sae, &x, &inputs(12, 6), Selection::Batch(5));
        // A budget above the number of positive activations keeps them all.
        compare(&sae, &x, &inputs(0, 4), Selection::Batch(M));
    }
}

#[test]
fn arch_step_routes_host_topk_to_the_fused_step() {
    let sae = random_sae(Architecture::TopK { k: 4 }, 7, true);
    let x = random(&mut ChaCha8Rng::seed_from_u64(7), B, D, 1.0);
    let model = sae.step_model();
    let routed = crate::arch::step(&model, x.clone(), x.clone(), &inputs(0, 4));
    let fused = step(&model, x.clone(), x, &inputs(0, 4), Selection::PerRow(4));
    // Bit-identical: the same code ran.
    assert_eq!(to_host(routed.grads.w_enc), to_host(fused.grads.w_enc));
    assert_eq!(
        to_host(routed.reconstruction),
        to_host(fused.reconstruction)
    );
}

/// Values on a coarse grid, so that ties are common.
fn tied_values(seed: u64, rows: usize, cols: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..rows * cols)
        .map(|_| rng.random_range(-4i32..6) as f32 * 0.5)
        .collect()
}

fn dense_mask(sel: &SparseRows, rows: usize, cols: usize) -> Vec<f32> {
    let mut m = vec![0f32; rows * cols];
    for b in 0..rows {
        for &j in sel.row(b).0 {
            m[b * cols + j as usize] = 1.0;
        }
    }
    m
}

#[test]
fn selections_break_ties_like_the_dense_masks() {
    let dev = Device::flex();
    let (rows, cols) = (9, 31);
    for seed in 0..20 {
        let v = tied_values(seed, rows, cols);
        let t = from_host(v.clone(), rows, cols, &dev);
        for k in [1, 4, 9] {
            let sel = select_per_row(&v, cols, k);
            let positive = t.clone().greater_elem(0.0).float();
            let expected = to_host(row_topk_mask(t.clone(), k) * positive);
            assert_eq!(dense_mask(&sel, rows, cols), expected, "per row, k {k}");
            for (i, &j) in sel.idx.iter().enumerate() {
                assert!(sel.val[i] == v[sel.row_of(i) * cols + j as usize]);
            }
        }
        for total in [0, 1, 7, 40, 200, 400] {
            let (sel, min) = select_batch(&v, cols, total);
            let expected = to_host(batch_topk_mask(t.clone().clamp_min(0.0), total));
            assert_eq!(
                dense_mask(&sel, rows, cols),
                expected,
                "batch, total {total}"
            );
            let kept_min = sel.val.iter().copied().fold(f32::INFINITY, f32::min);
            assert_eq!(min, if kept_min.is_finite() { kept_min } else { 1e30 });
        }
    }
}

/// Rows wide enough for the block cut-off of [`top_positive_row`]
/// (19 blocks: k up to 9 takes the fast path), with many ties, negative
/// values, and rows where fewer than k entries are positive.
#[test]
fn wide_rows_select_like_the_dense_mask() {
    let dev = Device::flex();
    let (rows, cols) = (12, 300);
    for seed in 0..10 {
        let mut v = tied_values(seed, rows, cols);
        // Row 0: all negative but one; row 1: the maximum in the last,
        // short block; row 2: every entry equal.
        for j in 0..cols {
            v[j] = if j == 17 { 0.5 } else { -1.0 };
            v[2 * cols + j] = 1.5;
        }
        v[cols + cols - 1] = 100.0;
        let t = from_host(v.clone(), rows, cols, &dev);
        let positive = t.clone().greater_elem(0.0).float();
        for k in [1, 2, 5, 9, 10, 40] {
            let sel = select_per_row(&v, cols, k);
            let expected = to_host(row_topk_mask(t.clone(), k) * positive.clone());
            assert_eq!(dense_mask(&sel, rows, cols), expected, "seed {seed}, k {k}");
        }
    }
}

/// Values sharing the histogram bin of the threshold, so the exact
/// ranking inside the bin decides (1.0 to 1.0078 share their high 16 bits).
#[test]
fn batch_selection_ranks_inside_the_threshold_bin() {
    let dev = Device::flex();
    let (rows, cols) = (16, 40);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let v: Vec<f32> = (0..rows * cols)
        .map(|i| match i % 3 {
            0 => -rng.random::<f32>(),
            // Coarse steps inside the bin, so some of them tie too.
            1 => 1.0 + rng.random_range(0..50) as f32 * 1e-4,
            _ => 2.0 + rng.random::<f32>(),
        })
        .collect();
    let t = from_host(v.clone(), rows, cols, &dev);
    for total in [1, 100, 213, 214, 250, 300, 426, 500] {
        let (sel, min) = select_batch(&v, cols, total);
        let expected = to_host(batch_topk_mask(t.clone().clamp_min(0.0), total));
        assert_eq!(dense_mask(&sel, rows, cols), expected, "total {total}");
        let kept_min = sel.val.iter().copied().fold(f32::INFINITY, f32::min);
        assert_eq!(min, kept_min);
    }
}

impl SparseRows {
    fn row_of(&self, entry: usize) -> usize {
        self.offsets.partition_point(|&o| o <= entry) - 1
    }
}

#[test]
fn kernels_agree_with_plain_loops() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for n in [0, 1, 15, 16, 17, 100, 256] {
        let a: Vec<f32> = (0..n).map(|_| rng.random::<f32>() - 0.5).collect();
        let b: Vec<f32> = (0..n).map(|_| rng.random::<f32>() - 0.5).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((kernels::dot(&a, &b) - plain).abs() <= 1e-5 * (n as f32 + 1.0));
        let mut y = b.clone();
        kernels::axpy(&mut y, 0.75, &a);
        for i in 0..n {
            assert!((y[i] - (b[i] + 0.75 * a[i])).abs() <= 1e-6);
        }
        let mut block_max = vec![7; 3];
        kernels::block_max_keys(&a, &mut block_max);
        let plain: Vec<u32> = a
            .chunks(kernels::BLOCK)
            .map(|c| c.iter().map(|&v| ordered_bits(v)).max().unwrap())
            .collect();
        assert_eq!(block_max, plain, "block maxima, n {n}");
    }
    // The key orders like `f32::total_cmp`, signed zeros and infinities included.
    let mut values = vec![
        -f32::INFINITY,
        -2.5,
        -1e-30,
        -0.0,
        0.0,
        1e-30,
        3.0,
        f32::INFINITY,
    ];
    values.reverse();
    values.sort_by_key(|&v| ordered_bits(v));
    let mut by_total = values.clone();
    by_total.sort_by(f32::total_cmp);
    assert_eq!(
        values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        by_total.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(positive_key(-1.0), 0);
    assert_eq!(positive_key(0.0), 0);
    assert_eq!(positive_key(-0.0), 0);
    assert_eq!(positive_key(f32::NAN), 0);
    assert_eq!(positive_key(1.5), 1.5f32.to_bits());
    assert_eq!(positive_key(f32::INFINITY), f32::INFINITY.to_bits());
    let m: Vec<f32> = (0..6 * 35).map(|i| i as f32).collect();
    let t = transpose(&m, 6, 35);
    for r in 0..6 {
        for c in 0..35 {
            assert_eq!(t[c * 6 + r], m[r * 35 + c]);
        }
    }
}
