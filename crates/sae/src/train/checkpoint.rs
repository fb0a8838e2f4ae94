//! Checkpoints of a [`Sweep`]: every member's weights, Adam moments and
//! scalar state in `<member>/checkpoint-<step>.safetensors`, then
//! `checkpoint.json` (step, rows read, input scale, source position) written
//! last, atomically. A checkpoint counts only once `checkpoint.json` names
//! it, so a run killed while writing resumes from the previous one.

use super::optim::{DictTrainer, ScalarState};
use super::{StepLog, Sweep, SweepMember, TrainConfig, TrainError, file_err};
use crate::io::{HostTensor, atomic_write, f32_safetensors, read_f32_safetensors};
use crate::ops::{from_host, to_host};
use crate::sae::{Params, Sae, SaeConfig};
use burn::tensor::Device;
use std::collections::HashMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

const SWEEP_FILE: &str = "sweep.json";
const CHECKPOINT_FILE: &str = "checkpoint.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct SweepManifest {
    format: String,
    version: u32,
    members: Vec<MemberManifest>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct MemberManifest {
    name: String,
    sae: SaeConfig,
    training: TrainConfig,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CheckpointManifest {
    step: usize,
    rows_seen: u64,
    input_scale: Option<f32>,
    source_position: serde_json::Value,
    /// XXH64 (hex) of each member's checkpoint file, by member name; absent
    /// in checkpoints written before checksums were added (not checked).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    checksums: std::collections::BTreeMap<String, String>,
}

fn xxh64_hex(bytes: &[u8]) -> String {
    format!("{:016x}", kibitzer_store::Xxh64::hash(bytes))
}

pub(super) fn write_sweep_manifest(sweep: &Sweep, out: &Path) -> Result<(), TrainError> {
    let manifest = SweepManifest {
        format: "kibitzer-sweep".into(),
        version: 1,
        members: sweep
            .members
            .iter()
            .map(|m| MemberManifest {
                name: m.name.clone(),
                sae: m.trainer.sae.config.clone(),
                training: m.trainer.config.clone(),
            })
            .collect(),
    };
    let path = out.join(SWEEP_FILE);
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| file_err(&path, e))?;
    atomic_write(&path, text.as_bytes()).map_err(|e| file_err(&path, e))
}

fn checkpoint_name(step: usize) -> String {
    format!("checkpoint-{step:08}.safetensors")
}

fn prefixed(prefix: &str, params: &Params) -> Vec<HostTensor> {
    params
        .named()
        .into_iter()
        .map(|(name, t)| HostTensor {
            name: format!("{prefix}.{name}"),
            shape: t.dims().to_vec(),
            data: to_host(t),
        })
        .collect()
}

pub(super) fn save(
    sweep: &Sweep,
    out: &Path,
    source_position: serde_json::Value,
) -> Result<(), TrainError> {
    let mut checksums = std::collections::BTreeMap::new();
    for m in &sweep.members {
        let t = &m.trainer;
        let mut tensors = prefixed("param", &t.sae.params);
        tensors.extend(prefixed("adam_m", &t.m));
        tensors.extend(prefixed("adam_v", &t.v));
        let mut meta = HashMap::new();
        meta.insert(
            "state".to_string(),
            serde_json::to_string(&t.scalar_state()).expect("plain struct serialises"),
        );
        meta.insert(
            "rows_since_fired".to_string(),
            serde_json::to_string(&t.rows_since_fired).expect("a Vec<u64> serialises"),
        );
        let path = out.join(&m.name).join(checkpoint_name(sweep.step));
        let bytes = f32_safetensors(&tensors, Some(meta)).map_err(|e| file_err(&path, e))?;
        atomic_write(&path, &bytes).map_err(|e| file_err(&path, e))?;
        checksums.insert(m.name.clone(), xxh64_hex(&bytes));
    }
    // A kill here leaves the members' new files beside the old checkpoint.json.
    kibitzer_store::fault::point("train.checkpoint");
    let manifest = CheckpointManifest {
        step: sweep.step,
        rows_seen: sweep.rows_seen,
        input_scale: sweep.input_scale,
        source_position,
        checksums,
    };
    let path = out.join(CHECKPOINT_FILE);
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| file_err(&path, e))?;
    atomic_write(&path, text.as_bytes()).map_err(|e| file_err(&path, e))?;
    // Older checkpoints are superseded only now that the new one is complete.
    let keep = checkpoint_name(sweep.step);
    for m in &sweep.members {
        if let Ok(entries) = fs::read_dir(out.join(&m.name)) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with("checkpoint-") && name.ends_with(".safetensors") && name != keep
                {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
    Ok(())
}

fn params_from(
    tensors: &mut HashMap<String, HostTensor>,
    prefix: &str,
    path: &Path,
    device: &Device,
) -> Result<Params, TrainError> {
    let mut take = |name: &str| {
        tensors.remove(&format!("{prefix}.{name}")).map(|t| {
            let (r, c) = (t.shape[0], t.shape.get(1).copied().unwrap_or(1));
            from_host(t.data, r, c, device)
        })
    };
    let mut need = |name: &str| {
        take(name)
            .ok_or_else(|| file_err(path, format!("checkpoint has no tensor {prefix}.{name}")))
    };
    Ok(Params {
        w_enc: need("w_enc")?,
        b_enc: need("b_enc")?,
        w_dec: need("w_dec")?,
        b_dec: need("b_dec")?,
        threshold: take("threshold"),
        b_mag: take("b_mag"),
        r_mag: take("r_mag"),
        w_skip: take("w_skip"),
    })
}

pub(super) fn load(out: &Path, device: &Device) -> Result<(Sweep, serde_json::Value), TrainError> {
    let read_json = |name: &str| -> Result<serde_json::Value, TrainError> {
        let path = out.join(name);
        let text = fs::read_to_string(&path).map_err(|e| {
            file_err(
                &path,
                format!(
                    "{e} (is this the output directory of a training run that wrote a checkpoint?)"
                ),
            )
        })?;
        serde_json::from_str(&text).map_err(|e| file_err(&path, e))
    };
    let manifest: SweepManifest = serde_json::from_value(read_json(SWEEP_FILE)?)
        .map_err(|e| file_err(&out.join(SWEEP_FILE), e))?;
    let ckpt: CheckpointManifest = serde_json::from_value(read_json(CHECKPOINT_FILE)?)
        .map_err(|e| file_err(&out.join(CHECKPOINT_FILE), e))?;
    let mut members = Vec::new();
    for mm in manifest.members {
        let path = out.join(&mm.name).join(checkpoint_name(ckpt.step));
        let bytes = fs::read(&path).map_err(|e| file_err(&path, e))?;
        if let Some(expected) = ckpt.checksums.get(&mm.name) {
            let found = xxh64_hex(&bytes);
            if &found != expected {
                return Err(file_err(
                    &path,
                    format!(
                        "checksum mismatch (XXH64 {found}, {} records {expected}): the checkpoint is corrupt and was not loaded; older checkpoints are removed once a newer one is complete, so restart the run without --resume (or from a backup of this directory)",
                        out.join(CHECKPOINT_FILE).display()
                    ),
                ));
            }
        }
        let (tensors, meta) = read_f32_safetensors(&bytes).map_err(|e| file_err(&path, e))?;
        let mut tensors: HashMap<String, HostTensor> =
            tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        let params = params_from(&mut tensors, "param", &path, device)?;
        let m = params_from(&mut tensors, "adam_m", &path, device)?;
        let v = params_from(&mut tensors, "adam_v", &path, device)?;
        let state: ScalarState = meta
            .get("state")
            .ok_or_else(|| file_err(&path, "checkpoint metadata has no `state`"))
            .and_then(|s| serde_json::from_str(s).map_err(|e| file_err(&path, e)))?;
        let rows_since_fired: Vec<u64> = meta
            .get("rows_since_fired")
            .ok_or_else(|| file_err(&path, "checkpoint metadata has no `rows_since_fired`"))
            .and_then(|s| serde_json::from_str(s).map_err(|e| file_err(&path, e)))?;
        if rows_since_fired.len() != mm.sae.d_sae {
            return Err(file_err(
                &path,
                format!(
                    "rows_since_fired has {} entries, expected d_sae = {}",
                    rows_since_fired.len(),
                    mm.sae.d_sae
                ),
            ));
        }
        let sae = Sae {
            config: mm.sae,
            params,
        };
        let mut trainer =
            DictTrainer::new(sae, mm.training).map_err(|source| TrainError::Member {
                name: mm.name.clone(),
                source,
            })?;
        trainer.m = m;
        trainer.v = v;
        trainer.rows_since_fired = rows_since_fired;
        trainer.set_scalar_state(state);
        members.push(SweepMember {
            name: mm.name,
            trainer,
        });
    }
    let mut sweep = Sweep::new(members, device)?;
    sweep.step = ckpt.step;
    sweep.rows_seen = ckpt.rows_seen;
    sweep.input_scale = ckpt.input_scale;
    // Log lines written after the checkpoint will be written again.
    for m in &sweep.members {
        truncate_log(&out.join(&m.name).join("log.jsonl"), ckpt.step)?;
    }
    Ok((sweep, ckpt.source_position))
}

/// Removes the temporary files (`.checkpoint.json.tmp-<pid>`,
/// `.checkpoint-<step>.safetensors.tmp-<pid>`, ...) that a run killed while
/// writing leaves in the output directory and its members' directories.
/// Best effort: a file that cannot be removed stays.
pub(super) fn remove_stale_temp_files(sweep: &Sweep, out: &Path) {
    let dirs =
        std::iter::once(out.to_path_buf()).chain(sweep.members.iter().map(|m| out.join(&m.name)));
    for dir in dirs {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if kibitzer_io::atomic::is_stale_temp_file(&name)
                && e.file_type().is_ok_and(|t| t.is_file())
            {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// After a run that started at step 0 failed before its first checkpoint
/// was complete: removes what it wrote (`sweep.json`, the members' logs,
/// checkpoint files no `checkpoint.json` names, temporary files), then the
/// members' directories and `out` itself where they are left empty and
/// `out` did not exist before the run. Nothing else is touched: other
/// files in these directories stay, and so do the directories holding them.
/// Best effort: what cannot be removed stays.
pub(super) fn remove_failed_start(sweep: &Sweep, out: &Path, out_existed: bool) {
    if out.join(CHECKPOINT_FILE).exists() {
        return;
    }
    let _ = fs::remove_file(out.join(SWEEP_FILE));
    for m in &sweep.members {
        let dir = out.join(&m.name);
        let _ = fs::remove_file(dir.join("log.jsonl"));
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let ours = (name.starts_with("checkpoint-") && name.ends_with(".safetensors"))
                    || kibitzer_io::atomic::temp_file_owner(&name)
                        .is_some_and(|(_, pid)| pid == std::process::id());
                if ours && e.file_type().is_ok_and(|t| t.is_file()) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let _ = fs::remove_dir(&dir); // only if empty
    }
    if !out_existed {
        let _ = fs::remove_dir(out); // only if empty
    }
}

/// Drops the lines of a `log.jsonl` for steps at or after `step`: a run
/// resumed from the checkpoint of `step` writes them again. Any log whose
/// lines carry [`StepLog`]'s fields (flattened, as transcoders' logs do)
/// works; a missing file is no error.
pub fn truncate_log(path: &Path, step: usize) -> Result<(), TrainError> {
    let Ok(text) = fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| serde_json::from_str::<StepLog>(l).is_ok_and(|log| log.step < step))
        .map(|l| format!("{l}\n"))
        .collect();
    atomic_write(path, kept.as_bytes()).map_err(|e| file_err(path, e))
}

/// Opens every member's `log.jsonl` for appending; a run that starts at
/// step 0 starts them empty (lines of an earlier start that never reached a
/// checkpoint are not this run's).
pub(super) fn open_logs(sweep: &Sweep, out: &Path) -> Result<Vec<BufWriter<fs::File>>, TrainError> {
    let fresh = sweep.step == 0;
    sweep
        .members
        .iter()
        .map(|m| {
            let path = out.join(&m.name).join("log.jsonl");
            let mut options = fs::OpenOptions::new();
            if fresh {
                options.write(true).truncate(true);
            } else {
                options.append(true);
            }
            options
                .create(true)
                .open(&path)
                .map(BufWriter::new)
                .map_err(|e| file_err(&path, e))
        })
        .collect()
}

pub(super) fn append_log(
    w: &mut BufWriter<fs::File>,
    log: &StepLog,
    dir: &Path,
) -> Result<(), TrainError> {
    let line = serde_json::to_string(log).map_err(|e| file_err(dir, e))?;
    writeln!(w, "{line}").map_err(|e| file_err(&dir.join("log.jsonl"), e))
}
