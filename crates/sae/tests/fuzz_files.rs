//! Fuzzing the dictionary files a user hands kibitzer (issue 20): SAELens
//! directories (`cfg.json`, `sae_weights.safetensors`) and training
//! checkpoints (`sweep.json`, `checkpoint.json`, the members' checkpoint
//! files), random or mutated, load to `Ok` or a clean error, never a panic
//! or a hang; what loads also runs (a forward pass, a training step).
//! `KIBITZER_FUZZ_CASES` sets the cases; see testing/fuzz.rs.
#![cfg(feature = "flex")]

#[path = "../../../testing/fuzz.rs"]
mod fuzz;

use burn::tensor::{Device, Tensor};
use kibitzer_sae::saelens::{self, SaveDtype, SaveOptions};
use kibitzer_sae::train::{
    DictTrainer, RunOptions, SourcePosition, Sweep, SweepMember, TrainConfig,
};
use kibitzer_sae::{Architecture, Dictionary, Sae, SaeConfig};
use kibitzer_store::ActivationSource;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::OnceLock;

const D_IN: usize = 4;

fn device() -> Device {
    Device::flex()
}

/// Every file under `dir`, by path relative to it.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("a directory") {
            let path = e.expect("an entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path
                    .strip_prefix(dir)
                    .expect("below")
                    .to_string_lossy()
                    .into();
                out.insert(name, std::fs::read(&path).expect("readable"));
            }
        }
    }
    out
}

/// Writes `files` under a new directory, `replace` replacing one of them.
fn write_files(files: &BTreeMap<String, Vec<u8>>, replace: (&str, &[u8])) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    for (name, content) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("created");
        let content = if name == replace.0 {
            replace.1
        } else {
            content
        };
        std::fs::write(path, content).expect("written");
    }
    dir
}

/// Saved SAELens directories: a standard SAE in f32, TopK in f16, a JumpReLU
/// and a gated SAE, a BatchTopK (saved as a JumpReLU with its threshold).
fn saelens_dirs() -> &'static Vec<BTreeMap<String, Vec<u8>>> {
    static DIRS: OnceLock<Vec<BTreeMap<String, Vec<u8>>>> = OnceLock::new();
    DIRS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir");
        [
            (Architecture::Standard, SaveDtype::Float32),
            (Architecture::TopK { k: 2 }, SaveDtype::Float16),
            (
                Architecture::JumpRelu { bandwidth: 0.01 },
                SaveDtype::BFloat16,
            ),
            (Architecture::Gated, SaveDtype::Float32),
            (Architecture::BatchTopK { k: 2 }, SaveDtype::Float32),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (arch, dtype))| {
            let batch_topk = matches!(arch, Architecture::BatchTopK { .. });
            let mut sae = Sae::init(SaeConfig::new(arch, D_IN, 6), i as u64, &device());
            if batch_topk {
                sae.params.threshold = Some(Tensor::<2>::full([1, 6], 0.25, &device()));
            }
            let path = dir.path().join(i.to_string());
            let options = SaveOptions {
                dtype,
                metadata: serde_json::json!({ "hook_name": "blocks.0.hook_resid_post" }),
            };
            saelens::save(&sae, &path, &options).expect("saved");
            files(&path)
        })
        .collect()
    })
}

/// Loads the SAELens directory in `dir`; one that loads encodes and decodes
/// a batch of the width it says.
fn load_and_run(dir: &Path) {
    let Ok(sae) = saelens::load(dir, &device()) else {
        return;
    };
    let d_in = sae.d_in();
    if d_in > 4096 {
        return; // a valid file of another width: nothing to learn here
    }
    let x = kibitzer_sae::ops::from_host(vec![0.5; 2 * d_in], 2, d_in, &device());
    let out = sae.forward(x);
    assert_eq!(out.reconstruction.dims(), [2, sae.d_out()]);
}

/// Rows in memory, cycled, with a resumable position.
struct Rows {
    cursor: usize,
}

impl ActivationSource for Rows {
    type Error = Infallible;
    fn d_in(&self) -> usize {
        D_IN
    }
    fn next_batch(&mut self, rows: usize, out: &mut Vec<f32>) -> Result<usize, Infallible> {
        out.clear();
        for _ in 0..rows {
            out.extend((0..D_IN).map(|i| ((self.cursor * 7 + i * 3) % 5) as f32 * 0.3));
            self.cursor += 1;
        }
        Ok(rows)
    }
}

impl SourcePosition for Rows {
    fn position(&self) -> serde_json::Value {
        serde_json::json!(self.cursor)
    }
}

/// The files of a sweep (a TopK and a standard member) stopped after 7
/// steps, with its checkpoint at step 5.
fn checkpoint_files() -> &'static BTreeMap<String, Vec<u8>> {
    static FILES: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let member = |name: &str, arch: Architecture, seed| {
            let mut config = TrainConfig::for_architecture(&arch, 6, 20);
            config.batch_size = 8;
            config.seed = seed;
            let sae = Sae::init(SaeConfig::new(arch, D_IN, 6), seed, &device());
            SweepMember {
                name: name.into(),
                trainer: DictTrainer::new(sae, config).expect("a trainer"),
            }
        };
        let mut sweep = Sweep::new(
            vec![
                member("topk", Architecture::TopK { k: 2 }, 1),
                member("standard", Architecture::Standard, 2),
            ],
            &device(),
        )
        .expect("a sweep");
        sweep
            .run(&mut Rows { cursor: 0 }, &options(dir.path(), Some(7)))
            .expect("runs");
        files(dir.path())
            .into_iter()
            .filter(|(name, _)| !name.ends_with("log.jsonl"))
            .collect()
    })
}

fn options(dir: &Path, stop_after: Option<usize>) -> RunOptions {
    RunOptions {
        checkpoint_every: 5,
        log_every: 1,
        progress: false,
        stop_after,
        out_dir: dir.to_path_buf(),
    }
}

/// Resumes the run in `dir`; one that resumes trains two more steps.
fn resume_and_train(dir: &Path) {
    let Ok((mut sweep, position)) = Sweep::resume(dir, &device()) else {
        return;
    };
    let Ok(cursor) = serde_json::from_value::<usize>(position) else {
        return;
    };
    if sweep.d_in() != D_IN
        || sweep
            .members
            .iter()
            .any(|m| m.trainer.dict.config.d_sae > 4096)
    {
        return;
    }
    let _ = sweep.run(&mut Rows { cursor }, &options(dir, Some(2)));
}

fn seeds_of(name: &str) -> Vec<Vec<u8>> {
    saelens_dirs().iter().map(|d| d[name].clone()).collect()
}

proptest! {
    #![proptest_config(fuzz::config(3_000))]

    #[test]
    fn saelens_cfg_answers_every_input(
        which in 0..5usize,
        input in fuzz::inputs(seeds_of("cfg.json"), 4096),
    ) {
        let bytes = input.clone();
        fuzz::within_deadline(&input, move || {
            let dir = write_files(&saelens_dirs()[which], ("cfg.json", &bytes));
            load_and_run(dir.path());
        })?;
    }

    #[test]
    fn saelens_weights_answer_every_input(
        which in 0..5usize,
        input in fuzz::inputs(seeds_of("sae_weights.safetensors"), 4096),
    ) {
        let bytes = input.clone();
        fuzz::within_deadline(&input, move || {
            let dir = write_files(&saelens_dirs()[which], ("sae_weights.safetensors", &bytes));
            load_and_run(dir.path());
        })?;
    }

    #[test]
    fn checkpoints_answer_every_input(
        file in prop_oneof![
            Just("sweep.json"),
            Just("checkpoint.json"),
            Just("topk/checkpoint-00000005.safetensors"),
            Just("unchecked"),
        ],
        input in fuzz::inputs(
            ["sweep.json", "checkpoint.json", "topk/checkpoint-00000005.safetensors"]
                .iter()
                .map(|f| checkpoint_files()[*f].clone())
                .collect(),
            4096,
        ),
    ) {
        let bytes = input.clone();
        fuzz::within_deadline(&input, move || {
            let mut files = checkpoint_files().clone();
            let file = if file == "unchecked" {
                // A checkpoint file mutated under a checkpoint.json without
                // checksums (as written before they were added): parsed, not
                // refused by its checksum.
                let mut json: serde_json::Value =
                    serde_json::from_slice(&files["checkpoint.json"]).expect("JSON");
                json.as_object_mut().expect("an object").remove("checksums");
                files.insert("checkpoint.json".into(), serde_json::to_vec(&json).expect("JSON"));
                "topk/checkpoint-00000005.safetensors"
            } else {
                file
            };
            let dir = write_files(&files, (file, &bytes));
            resume_and_train(dir.path());
        })?;
    }
}

/// The valid inputs the targets mutate do load and run unchanged.
#[test]
fn unmutated_seeds_load_and_resume() {
    for files in saelens_dirs() {
        let dir = write_files(files, ("", b""));
        saelens::load(dir.path(), &device()).expect("a saved SAE loads");
    }
    let dir = write_files(checkpoint_files(), ("", b""));
    let (mut sweep, position) = Sweep::resume(dir.path(), &device()).expect("resumes");
    assert_eq!(sweep.step, 5);
    let cursor = serde_json::from_value(position).expect("a cursor");
    sweep
        .run(&mut Rows { cursor }, &options(dir.path(), Some(2)))
        .expect("trains on");
    assert_eq!(sweep.step, 7);
}
