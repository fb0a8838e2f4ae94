use super::*;
use crate::arch::Architecture;
use crate::ops::to_host;
use crate::sae::SaeConfig;
use kibitzer_store::InMemorySource;

/// `data` cycled over, `rows` rows in (a saved position).
fn cycling(data: &[f32], d_in: usize, rows: u64) -> InMemorySource {
    InMemorySource::cycling(data.to_vec(), d_in)
        .unwrap()
        .resumed_at(rows)
}

fn data(d_in: usize, rows: usize, seed: u64) -> Vec<f32> {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // Sparse non-negative mixtures of a few fixed directions plus an offset,
    // so every architecture has something to learn.
    let dirs: Vec<f32> = (0..8 * d_in).map(|_| rng.random::<f32>() - 0.5).collect();
    let mut out = vec![0f32; rows * d_in];
    for r in 0..rows {
        for k in 0..8 {
            if rng.random::<f32>() < 0.3 {
                let a = rng.random::<f32>() * 2.0;
                for i in 0..d_in {
                    out[r * d_in + i] += a * dirs[k * d_in + i];
                }
            }
        }
        for i in 0..d_in {
            out[r * d_in + i] += 0.5;
        }
    }
    out
}

fn member(name: &str, arch: Architecture, steps: usize, seed: u64) -> SweepMember {
    let d_in = 12;
    let d_sae = 24;
    let dev = Device::flex();
    let mut config = TrainConfig::for_architecture(&arch, d_sae, steps);
    config.batch_size = 32;
    config.lr = 3e-3;
    config.sparsity_coefficient = match arch {
        Architecture::TopK { .. } | Architecture::BatchTopK { .. } => 0.0,
        _ => 0.05,
    };
    config.dead_after_rows = 64;
    config.threshold_start_step = 2;
    config.seed = seed;
    if matches!(arch, Architecture::Standard) {
        config.resample_every = Some(7);
        config.p_anneal = Some(PAnneal {
            p_start: 1.0,
            p_end: 0.5,
            start_fraction: 0.3,
            updates: 3,
        });
    }
    let sae = Sae::init(SaeConfig::new(arch, d_in, d_sae), seed, &dev);
    SweepMember {
        name: name.into(),
        trainer: DictTrainer::new(sae, config).unwrap(),
    }
}

fn all_members(steps: usize) -> Vec<SweepMember> {
    vec![
        member("standard", Architecture::Standard, steps, 1),
        member("gated", Architecture::Gated, steps, 2),
        member("topk", Architecture::TopK { k: 3 }, steps, 3),
        member("batchtopk", Architecture::BatchTopK { k: 3 }, steps, 4),
        member(
            "jumprelu",
            Architecture::JumpRelu { bandwidth: 0.05 },
            steps,
            5,
        ),
    ]
}

fn options(dir: &Path) -> RunOptions {
    RunOptions {
        checkpoint_every: 10,
        log_every: 5,
        progress: false,
        stop_after: None,
        out_dir: dir.to_path_buf(),
    }
}

fn weights(sweep: &Sweep) -> Vec<Vec<f32>> {
    sweep
        .members
        .iter()
        .flat_map(|m| {
            m.trainer
                .dict
                .params
                .named()
                .into_iter()
                .map(|(_, t)| to_host(t))
        })
        .collect()
}

/// A sweep directory written before the trainer was one
/// (`tests/fixtures/legacy_sweep_v1`: one decimal `input_scale`, scalar
/// state as decimals; made by kibitzer at 8dd9285 from `all_members(37)`,
/// killed at step 24 with its checkpoint at 20) resumes with today's
/// trainer and ends with the weights of a run that was never interrupted.
#[test]
fn a_sweep_directory_of_the_old_layout_resumes_to_the_same_weights() {
    let dev = Device::flex();
    let d = data(12, 200, 9);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy_sweep_v1");
    let dir = tempfile::tempdir().unwrap();
    let names = ["standard", "gated", "topk", "batchtopk", "jumprelu"];
    for f in ["sweep.json", "checkpoint.json"] {
        std::fs::copy(fixture.join(f), dir.path().join(f)).unwrap();
    }
    for name in names {
        std::fs::create_dir_all(dir.path().join(name)).unwrap();
        for f in ["checkpoint-00000020.safetensors", "log.jsonl"] {
            std::fs::copy(fixture.join(name).join(f), dir.path().join(name).join(f)).unwrap();
        }
    }
    let (mut resumed, pos) = Sweep::resume(dir.path(), &dev).unwrap();
    assert_eq!((resumed.step, resumed.rows_seen), (20, 640));
    let cursor: u64 = serde_json::from_value(pos).unwrap();
    resumed
        .run(&mut cycling(&d, 12, cursor), &options(dir.path()))
        .unwrap();

    let whole_dir = tempfile::tempdir().unwrap();
    let mut whole = Sweep::new(all_members(37), &dev).unwrap();
    whole
        .run(&mut cycling(&d, 12, 0), &options(whole_dir.path()))
        .unwrap();
    // Equal up to rounding: the fixture's first 20 steps ran the gated step
    // as it was then, which made W_mag's product separately; today's
    // shares one product between both paths (the same function, its sums
    // in another order). The other architectures' weights are bit-equal.
    let (got, want) = (weights(&resumed), weights(&whole));
    assert_eq!(got.len(), want.len());
    let worst = got
        .iter()
        .flatten()
        .zip(want.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "resumed weights differ by up to {worst}");
    let gated = names
        .iter()
        .position(|n| *n == "gated")
        .expect("a gated member");
    for (i, (a, b)) in resumed.members.iter().zip(&whole.members).enumerate() {
        if i != gated {
            assert_eq!(
                a.trainer.dict.params.named().len(),
                b.trainer.dict.params.named().len()
            );
            for ((_, x), (_, y)) in a
                .trainer
                .dict
                .params
                .named()
                .into_iter()
                .zip(b.trainer.dict.params.named())
            {
                assert_eq!(to_host(x), to_host(y), "member {}", names[i]);
            }
        }
    }
    assert_eq!(resumed.input_scale(), whole.input_scale());
    for (a, b) in resumed.members.iter().zip(&whole.members) {
        assert_eq!(
            (a.trainer.threshold_estimate(), a.trainer.p),
            (b.trainer.threshold_estimate(), b.trainer.p),
            "{}",
            a.name
        );
    }
}

#[test]
fn killed_run_resumes_to_the_same_weights() {
    let dev = Device::flex();
    let d = data(12, 200, 9);
    let steps = 37;

    let whole_dir = tempfile::tempdir().unwrap();
    let mut whole = Sweep::new(all_members(steps), &dev).unwrap();
    whole
        .run(&mut cycling(&d, 12, 0), &options(whole_dir.path()))
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut first = Sweep::new(all_members(steps), &dev).unwrap();
    let mut opts = options(dir.path());
    opts.stop_after = Some(24); // killed between the checkpoints at 20 and 30
    first.run(&mut cycling(&d, 12, 0), &opts).unwrap();
    drop(first);
    // Temporary files of atomic writes cut short by a kill (issue 20 #9):
    // removed when the run starts again; other files stay.
    let stale = [
        dir.path().join(".checkpoint.json.tmp-999999999"),
        dir.path()
            .join("topk/.checkpoint-00000030.safetensors.tmp-999999998"),
        dir.path().join("standard/.log.jsonl.tmp-999999997"),
    ];
    let kept = [
        dir.path().join("notes.txt"),
        dir.path().join(".notes.tmp-abc"),
    ];
    for f in stale.iter().chain(&kept) {
        std::fs::write(f, "partial").unwrap();
    }

    let (mut resumed, pos) = Sweep::resume(dir.path(), &dev).unwrap();
    assert_eq!(resumed.step, 20);
    let cursor: u64 = serde_json::from_value(pos).unwrap();
    resumed
        .run(&mut cycling(&d, 12, cursor), &options(dir.path()))
        .unwrap();

    assert_eq!(
        weights(&resumed),
        weights(&whole),
        "resumed weights differ from an uninterrupted run"
    );
    for f in &stale {
        assert!(!f.exists(), "stale {} was not removed", f.display());
    }
    for f in &kept {
        assert!(f.exists(), "{} was removed", f.display());
    }
    // The log has each logged step exactly once.
    let log = std::fs::read_to_string(dir.path().join("standard/log.jsonl")).unwrap();
    let steps_logged: Vec<usize> = log
        .lines()
        .map(|l| serde_json::from_str::<StepLog>(l).unwrap().step)
        .collect();
    let expected: Vec<usize> = (0..steps)
        .filter(|s| (s + 1) % 5 == 0 || s + 1 == steps)
        .collect();
    assert_eq!(steps_logged, expected);
    // Only the newest checkpoint file is kept.
    let ckpts = std::fs::read_dir(dir.path().join("topk"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("checkpoint-")
        })
        .count();
    assert_eq!(ckpts, 1);
}

/// Issue 20 #3: a checkpoint whose tensor file has a flipped byte is
/// refused on resume, naming the file.
#[test]
fn corrupt_checkpoint_is_refused_on_resume() {
    let dev = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let mut sweep = Sweep::new(
        vec![member("topk", Architecture::TopK { k: 3 }, 40, 3)],
        &dev,
    )
    .unwrap();
    let mut opts = options(dir.path());
    opts.stop_after = Some(14);
    sweep
        .run(&mut cycling(&data(12, 200, 1), 12, 0), &opts)
        .unwrap();
    assert!(Sweep::resume(dir.path(), &dev).is_ok());
    let ckpt = dir.path().join("topk/checkpoint-00000010.safetensors");
    let mut bytes = std::fs::read(&ckpt).unwrap();
    let last = bytes.len() - 5;
    bytes[last] ^= 0x40;
    std::fs::write(&ckpt, &bytes).unwrap();
    let err = Sweep::resume(dir.path(), &dev).unwrap_err().to_string();
    assert!(
        err.contains("checkpoint-00000010.safetensors") && err.contains("checksum mismatch"),
        "{err}"
    );
}

#[test]
fn training_lowers_the_loss_and_keeps_constraints() {
    let dev = Device::flex();
    let d = data(12, 400, 3);
    let dir = tempfile::tempdir().unwrap();
    let mut sweep = Sweep::new(all_members(120), &dev).unwrap();
    let mut opts = options(dir.path());
    opts.log_every = 1;
    sweep.run(&mut cycling(&d, 12, 0), &opts).unwrap();
    for m in &sweep.members {
        let log: Vec<StepLog> = std::fs::read_to_string(dir.path().join(&m.name).join("log.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let first = log[..5].iter().map(|l| l.fvu).sum::<f64>() / 5.0;
        let last = log[log.len() - 5..].iter().map(|l| l.fvu).sum::<f64>() / 5.0;
        assert!(
            last < 0.5 * first,
            "{}: FVU went from {first} to {last}",
            m.name
        );
        if m.trainer.dict.config.architecture.unit_norm_decoder() {
            for n in to_host(m.trainer.dict.decoder_norms()) {
                assert!((n - 1.0).abs() < 1e-4, "{}: decoder row norm {n}", m.name);
            }
        }
    }
    // p-annealing reached its final exponent.
    let std = &sweep.members[0].trainer;
    assert!((std.p - 0.5).abs() < 1e-9, "p = {}", std.p);
    // BatchTopK learnt a positive inference threshold and saves as a JumpReLU.
    let btk = &sweep.members[3].trainer;
    assert!(btk.threshold.is_some_and(|t| t > 0.0));
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("batchtopk/cfg.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["architecture"], "jumprelu");
    // Folded dictionaries work on raw activations: FVU on raw rows matches
    // the last logged FVU on scaled rows up to batch noise.
    let scale = sweep.input_scale().unwrap();
    assert!(scale > 0.0 && scale != 1.0);
}

#[test]
fn sweep_rejects_mismatched_members() {
    let dev = Device::flex();
    let mut a = member("a", Architecture::Standard, 5, 1);
    let b = member("a", Architecture::Gated, 5, 2);
    let err = Sweep::new(vec![a.clone(), b], &dev)
        .unwrap_err()
        .to_string();
    assert!(err.contains("two dictionaries are named"), "{err}");
    a.trainer.config.batch_size = 7;
    let err = Sweep::new(vec![a, member("b", Architecture::Gated, 5, 2)], &dev)
        .unwrap_err()
        .to_string();
    assert!(err.contains("batch_size"), "{err}");
    let err = Sweep::new(vec![member("../x", Architecture::Gated, 5, 2)], &dev)
        .unwrap_err()
        .to_string();
    assert!(err.contains("letters, digits"), "{err}");
}

#[test]
fn input_scale_gives_rows_norm_sqrt_d() {
    let rows = vec![3.0, 4.0, 0.0, 0.0, 6.0, 8.0];
    let c = estimate_input_scale(&rows, 3);
    // Mean norm (5 + 10) / 2 = 7.5; target sqrt(3).
    assert!((c - 3f32.sqrt() / 7.5).abs() < 1e-6);
}

/// A source that fails at batch `fail_at` (from 0).
struct FailingAt {
    inner: InMemorySource,
    batches: usize,
    fail_at: usize,
}

impl ActivationSource for FailingAt {
    type Error = std::io::Error;
    fn d_in(&self) -> usize {
        self.inner.d_in()
    }
    fn next_batch(&mut self, rows: usize, out: &mut Vec<f32>) -> Result<usize, std::io::Error> {
        if self.batches == self.fail_at {
            return Err(std::io::Error::other("shard 3 is corrupt"));
        }
        self.batches += 1;
        Ok(self.inner.next_batch(rows, out).unwrap())
    }
}

impl SourcePosition for FailingAt {
    fn position(&self) -> serde_json::Value {
        SourcePosition::position(&self.inner)
    }
}

/// Issue 20 #9: a run that fails leaves resumable state or nothing.
#[test]
fn failed_run_leaves_resumable_state_or_nothing() {
    let dev = Device::flex();
    let source = |fail_at| FailingAt {
        inner: cycling(&data(12, 200, 1), 12, 0),
        batches: 0,
        fail_at,
    };
    let members = || vec![member("topk", Architecture::TopK { k: 3 }, 30, 3)];
    let tmp = tempfile::tempdir().unwrap();

    // Fails before the first checkpoint (at step 10): nothing is left, not
    // even the directory the run created.
    let out = tmp.path().join("run");
    let mut sweep = Sweep::new(members(), &dev).unwrap();
    let err = sweep.run(&mut source(4), &options(&out)).unwrap_err();
    assert!(err.to_string().contains("shard 3 is corrupt"), "{err}");
    assert!(!out.exists(), "a failed start left {}", out.display());
    // In a directory that was there (with a file of the user's), only what
    // the run wrote goes.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let mut sweep = Sweep::new(members(), &dev).unwrap();
    sweep.run(&mut source(0), &options(&out)).unwrap_err();
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["notes.txt"]);

    // Fails after the checkpoint at step 20: resumable, and the resumed run
    // ends where an uninterrupted one does.
    let mut sweep = Sweep::new(members(), &dev).unwrap();
    sweep.run(&mut source(25), &options(&out)).unwrap_err();
    assert!(out.join("checkpoint.json").exists() && out.join("sweep.json").exists());
    let (mut resumed, pos) = Sweep::resume(&out, &dev).unwrap();
    assert_eq!(resumed.step, 20);
    let mut rest = source(usize::MAX);
    rest.inner = rest.inner.resumed_at(serde_json::from_value(pos).unwrap());
    resumed.run(&mut rest, &options(&out)).unwrap();
    let whole_dir = tmp.path().join("whole");
    let mut whole = Sweep::new(members(), &dev).unwrap();
    whole
        .run(&mut source(usize::MAX), &options(&whole_dir))
        .unwrap();
    assert_eq!(weights(&resumed), weights(&whole));
    assert_eq!(
        std::fs::read(out.join("topk/log.jsonl")).unwrap(),
        std::fs::read(whole_dir.join("topk/log.jsonl")).unwrap()
    );
}

/// Trains a JumpReLU of 24 features on [`data`] for `steps` steps of
/// `batch` rows; returns the L0 of each step.
fn jumprelu_l0s(
    target: Option<f64>,
    init: Option<f64>,
    to_encoder: bool,
    steps: usize,
) -> Vec<f64> {
    let (d_in, d_sae, batch) = (12, 24, 64);
    let arch = Architecture::JumpRelu { bandwidth: 0.05 };
    let config = TrainConfig {
        batch_size: batch,
        lr: 3e-3,
        sparsity_coefficient: 10.0,
        jumprelu_target_l0: target,
        jumprelu_init_l0: init,
        jumprelu_l0_to_encoder: to_encoder,
        normalize_activations: false,
        seed: 5,
        ..TrainConfig::for_architecture(&arch, d_sae, steps)
    };
    let dev = Device::flex();
    let sae = Sae::init(SaeConfig::new(arch, d_in, d_sae), 5, &dev);
    let mut trainer = DictTrainer::new(sae, config).unwrap();
    let rows = data(d_in, batch * steps, 9);
    rows.chunks(batch * d_in)
        .map(|chunk| {
            let x = crate::ops::from_host(chunk.to_vec(), batch, d_in, &dev);
            crate::ops::scalar(trainer.step(x).l0)
        })
        .collect()
}

#[test]
fn jumprelu_starts_at_its_initial_l0_and_holds_its_target() {
    // The paper's start: a threshold of 0.001 leaves most features on.
    let plain = jumprelu_l0s(None, None, false, 60);
    assert!(
        plain[0] > 8.0,
        "plain JumpReLU starts near-dense: {}",
        plain[0]
    );
    // Threshold and b_enc set from the first batch: ~3 per row at once.
    let started = jumprelu_l0s(Some(3.0), Some(3.0), false, 60);
    assert!((started[0] - 3.0).abs() < 0.5, "first L0 {}", started[0]);
    // The target term keeps it there: the last 20 steps within 2x of 3.
    let tail = &started[40..];
    let mean = tail.iter().sum::<f64>() / tail.len() as f64;
    assert!(
        (1.5..6.0).contains(&mean),
        "L0 at the end {mean}: {started:?}"
    );
    // A target above the start pulls the thresholds down: L0 rises, at
    // the pace the learning rate allows the thresholds.
    for to_encoder in [false, true] {
        let long = jumprelu_l0s(Some(3.0), Some(3.0), to_encoder, 400);
        let raised = jumprelu_l0s(Some(8.0), Some(3.0), to_encoder, 400);
        let mean = long[380..].iter().sum::<f64>() / 20.0;
        let end = raised[380..].iter().sum::<f64>() / 20.0;
        // Measured: 3.07 and 8.05 after 400 steps.
        assert!((2.4..3.6).contains(&mean), "target 3 ends at {mean}");
        assert!(
            (6.5..9.5).contains(&end),
            "target 8 ends at {end}: {raised:?}"
        );
    }
}

/// A sweep reads each batch once and steps every member on it; each member
/// ends with the weights and scalar state it gets when trained alone on the
/// same rows (resampling, p-annealing, AuxK and the BatchTopK threshold
/// included).
///
/// It runs in a pool of three threads, so that the members step side by
/// side (`Sweep::step_batch`) on any machine.
#[test]
fn every_member_of_a_sweep_ends_where_it_ends_alone() {
    rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap()
        .install(sweep_members_end_where_they_end_alone);
}

fn sweep_members_end_where_they_end_alone() {
    let dev = Device::flex();
    let d = data(12, 200, 3);
    let dir = tempfile::tempdir().unwrap();
    let mut together = Sweep::new(all_members(30), &dev).unwrap();
    assert!(together.steps_members_in_parallel());
    together
        .run(&mut cycling(&d, 12, 0), &options(&dir.path().join("all")))
        .unwrap();
    for (i, m) in all_members(30).into_iter().enumerate() {
        let name = m.name.clone();
        let mut alone = Sweep::new(vec![m], &dev).unwrap();
        alone
            .run(&mut cycling(&d, 12, 0), &options(&dir.path().join(&name)))
            .unwrap();
        let (a, b) = (&alone.members[0].trainer, &together.members[i].trainer);
        for ((tensor, x), (_, y)) in a.dict.params.named().into_iter().zip(b.dict.params.named()) {
            assert_eq!(to_host(x), to_host(y), "{name}: {tensor}");
        }
        assert_eq!(
            (a.threshold_estimate(), a.p, a.steps_done()),
            (b.threshold_estimate(), b.p, b.steps_done()),
            "{name}"
        );
    }
}

/// The memory check counts the batch temporaries of as many members as
/// step at once: one per thread of the pool.
#[test]
fn memory_needed_counts_the_members_that_step_at_once() {
    let shape = |d_sae| SaeConfig::new(Architecture::Standard, 16, d_sae);
    let shapes = [shape(64), shape(256), shape(128)];
    let in_pool = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| memory_needed(&shapes, 100, true))
    };
    // A member's temporaries: four [100, d_sae] and two [100, 16 + 16] f32 matrices.
    let temporaries = |d_sae: u128| 4 * (4 * 100 * d_sae + 2 * 100 * 32);
    assert_eq!(in_pool(2) - in_pool(1), temporaries(128));
    assert_eq!(in_pool(8) - in_pool(2), temporaries(64));
    // On a GPU the host holds no batch temporaries.
    assert_eq!(
        memory_needed(&shapes, 100, false),
        memory_needed(&shapes, 1, false)
    );
}
