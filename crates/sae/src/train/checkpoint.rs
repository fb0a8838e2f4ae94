//! Checkpoints of a [`Sweep`]: every member's weights, Adam moments and
//! scalar state in `<member>/checkpoint-<step>.safetensors`, then
//! `checkpoint.json` (step, rows read, row scales, source position,
//! checksums) written last, atomically. A checkpoint counts only once
//! `checkpoint.json` names it, so a run killed while writing resumes from
//! the previous one.
//!
//! Older checkpoints read back: an SAE sweep's `checkpoint.json` held one
//! `input_scale` (decimal) and its members' scalar state as decimals; a
//! transcoder or crosscoder run (`run.json`, read by kibitzer-xcoder) held
//! `row_scales_bits` and its scalar state as bits.

use super::optim::DictTrainer;
use super::trainable::Trainable;
use super::{MemberSpec, StepLog, Sweep, SweepMember, TrainConfig, TrainError};
use crate::io::{HostTensor, atomic_write, f32_safetensors, read_f32_safetensors};
use crate::ops::{from_host, to_host};
use crate::sae::Params;
use burn::tensor::Device;
use kibitzer_io::{FileError, FileResultExt};
use std::collections::HashMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

const SWEEP_FILE: &str = "sweep.json";
const CHECKPOINT_FILE: &str = "checkpoint.json";
const SWEEP_FORMAT: &str = "kibitzer-sweep";

/// `sweep.json`. Each member is `{name, <CONFIG_KEY>: config, training}`
/// (`sae` for SAEs, so SAE sweeps read as they always did).
#[derive(serde::Serialize, serde::Deserialize)]
struct SweepManifest {
    format: String,
    version: u32,
    members: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Scales fixed when the sweep was made (fine-tuning), for people...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fixed_scales: Option<Vec<f32>>,
    /// ... and as `f32` bit patterns, for resuming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fixed_scales_bits: Option<Vec<u32>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CheckpointManifest {
    step: usize,
    rows_seen: u64,
    /// An SAE sweep's single scale, in checkpoints written before row
    /// scales (read, no longer written).
    #[serde(default, skip_serializing)]
    input_scale: Option<f32>,
    /// The scale of each row block, for people...
    #[serde(default)]
    row_scales: Option<Vec<f32>>,
    /// ... and as `f32` bit patterns: what resuming reads, since JSON
    /// decimals need not parse back to the same float.
    #[serde(default)]
    row_scales_bits: Option<Vec<u32>>,
    source_position: serde_json::Value,
    /// XXH64 (hex) of each member's checkpoint file, by member name; absent
    /// in checkpoints written before checksums were added (not checked).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    checksums: std::collections::BTreeMap<String, String>,
}

impl CheckpointManifest {
    fn scales(&self) -> Option<Vec<f32>> {
        self.row_scales_bits
            .as_deref()
            .map(from_bits)
            .or_else(|| self.row_scales.clone())
            .or_else(|| self.input_scale.map(|c| vec![c]))
    }
}

fn to_bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn from_bits(v: &[u32]) -> Vec<f32> {
    v.iter().map(|&b| f32::from_bits(b)).collect()
}

fn xxh64_hex(bytes: &[u8]) -> String {
    format!("{:016x}", kibitzer_store::Xxh64::hash(bytes))
}

pub(super) fn write_sweep_manifest<D: Trainable>(
    sweep: &Sweep<D>,
    out: &Path,
) -> Result<(), TrainError> {
    let path = out.join(SWEEP_FILE);
    let members = sweep
        .members
        .iter()
        .map(|m| {
            let mut member = serde_json::Map::new();
            member.insert("name".into(), m.name.clone().into());
            member.insert(
                D::CONFIG_KEY.into(),
                serde_json::to_value(m.trainer.dict.config()).at_file(&path)?,
            );
            member.insert(
                "training".into(),
                serde_json::to_value(&m.trainer.config).at_file(&path)?,
            );
            Ok(member)
        })
        .collect::<Result<_, TrainError>>()?;
    let manifest = SweepManifest {
        format: SWEEP_FORMAT.into(),
        version: 1,
        members,
        fixed_scales: sweep.fixed_scales.clone(),
        fixed_scales_bits: sweep.fixed_scales.as_deref().map(to_bits),
    };
    let text = serde_json::to_string_pretty(&manifest).at_file(&path)?;
    atomic_write(&path, text.as_bytes()).map_err(|e| FileError::new(&path, e).into())
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

pub(super) fn save<D: Trainable>(
    sweep: &Sweep<D>,
    out: &Path,
    source_position: serde_json::Value,
) -> Result<(), TrainError> {
    let mut checksums = std::collections::BTreeMap::new();
    for m in &sweep.members {
        let t = &m.trainer;
        let (adam_m, adam_v) = t.adam_moments();
        let mut tensors = prefixed("param", t.dict.params());
        tensors.extend(prefixed("adam_m", adam_m));
        tensors.extend(prefixed("adam_v", adam_v));
        let meta: HashMap<String, String> = t
            .checkpoint_metadata()
            .into_iter()
            .chain(t.dict.dictionary_metadata())
            .collect();
        let path = out.join(&m.name).join(checkpoint_name(sweep.step));
        let bytes = f32_safetensors(&tensors, Some(meta)).at_file(&path)?;
        atomic_write(&path, &bytes).at_file(&path)?;
        checksums.insert(m.name.clone(), xxh64_hex(&bytes));
    }
    // A kill here leaves the members' new files beside the old checkpoint.json.
    kibitzer_store::fault::point("train.checkpoint");
    let manifest = CheckpointManifest {
        step: sweep.step,
        rows_seen: sweep.rows_seen,
        input_scale: None,
        row_scales: sweep.row_scales.clone(),
        row_scales_bits: sweep.row_scales.as_deref().map(to_bits),
        source_position,
        checksums,
    };
    let path = out.join(CHECKPOINT_FILE);
    let text = serde_json::to_string_pretty(&manifest).at_file(&path)?;
    atomic_write(&path, text.as_bytes()).at_file(&path)?;
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
        tensors
            .remove(&format!("{prefix}.{name}"))
            .map(|t| match t.shape[..] {
                [r, c] => Ok(from_host(t.data, r, c, device)),
                [r] => Ok(from_host(t.data, r, 1, device)),
                _ => Err(FileError::new(
                    path,
                    format!(
                        "tensor {prefix}.{name} has shape {:?}, expected 1-D or 2-D",
                        t.shape
                    ),
                )),
            })
            .transpose()
    };
    let mut need = |name: &str| {
        take(name)?.ok_or_else(|| {
            FileError::new(path, format!("checkpoint has no tensor {prefix}.{name}"))
        })
    };
    Ok(Params {
        w_enc: need("w_enc")?,
        b_enc: need("b_enc")?,
        w_dec: need("w_dec")?,
        b_dec: need("b_dec")?,
        threshold: take("threshold")?,
        b_mag: take("b_mag")?,
        r_mag: take("r_mag")?,
        w_skip: take("w_skip")?,
    })
}

fn read_json(out: &Path, name: &str) -> Result<serde_json::Value, TrainError> {
    let path = out.join(name);
    let text = fs::read_to_string(&path).map_err(|e| {
        FileError::new(
            &path,
            format!(
                "{e} (is this the output directory of a training run that wrote a checkpoint?)"
            ),
        )
    })?;
    serde_json::from_str(&text).map_err(|e| FileError::new(&path, e).into())
}

/// The members and fixed scales recorded in `out/sweep.json`.
fn read_sweep_manifest<D: Trainable>(
    out: &Path,
) -> Result<(Vec<MemberSpec<D>>, Option<Vec<f32>>), TrainError> {
    let path = out.join(SWEEP_FILE);
    let manifest: SweepManifest =
        serde_json::from_value(read_json(out, SWEEP_FILE)?).at_file(&path)?;
    if manifest.format != SWEEP_FORMAT || manifest.version != 1 {
        return Err(FileError::new(
            &path,
            format!(
                "format {:?} version {} is not a kibitzer sweep ({SWEEP_FORMAT:?} version 1)",
                manifest.format, manifest.version
            ),
        )
        .into());
    }
    let members = manifest
        .members
        .into_iter()
        .enumerate()
        .map(|(i, mut member)| {
            let mut field = |key: &str| {
                member.remove(key).ok_or_else(|| {
                    FileError::new(
                        &path,
                        format!(
                            "member {i} has no `{key}` (a sweep of {} dictionaries records `{}`)",
                            D::CONFIG_KEY,
                            D::CONFIG_KEY
                        ),
                    )
                })
            };
            let name: String = serde_json::from_value(field("name")?)
                .map_err(|e| FileError::new(&path, format!("member {i}, `name`: {e}")))?;
            let config: D::Config = serde_json::from_value(field(D::CONFIG_KEY)?).map_err(|e| {
                FileError::new(&path, format!("member {name}, `{}`: {e}", D::CONFIG_KEY))
            })?;
            let training: TrainConfig = serde_json::from_value(field("training")?)
                .map_err(|e| FileError::new(&path, format!("member {name}, `training`: {e}")))?;
            Ok(MemberSpec {
                name,
                config,
                training,
            })
        })
        .collect::<Result<_, TrainError>>()?;
    let fixed = manifest
        .fixed_scales_bits
        .as_deref()
        .map(from_bits)
        .or(manifest.fixed_scales);
    Ok((members, fixed))
}

/// Reloads the sweep whose last checkpoint is in `out`: its members from
/// `sweep.json`, or from `manifest` when the caller read another layout.
pub(super) fn load<D: Trainable>(
    out: &Path,
    device: &Device,
    manifest: Option<(Vec<MemberSpec<D>>, Option<Vec<f32>>)>,
) -> Result<(Sweep<D>, serde_json::Value), TrainError> {
    let (specs, fixed_scales) = match manifest {
        Some(m) => m,
        None => read_sweep_manifest(out)?,
    };
    let ckpt: CheckpointManifest = serde_json::from_value(read_json(out, CHECKPOINT_FILE)?)
        .at_file(&out.join(CHECKPOINT_FILE))?;
    let mut members = Vec::new();
    for spec in specs {
        let path = out.join(&spec.name).join(checkpoint_name(ckpt.step));
        let bytes = fs::read(&path).at_file(&path)?;
        if let Some(expected) = ckpt.checksums.get(&spec.name) {
            let found = xxh64_hex(&bytes);
            if &found != expected {
                return Err(FileError::new(
                    &path,
                    format!(
                        "checksum mismatch (XXH64 {found}, {} records {expected}): the checkpoint is corrupt and was not loaded; older checkpoints are removed once a newer one is complete, so restart the run without --resume (or from a backup of this directory)",
                        out.join(CHECKPOINT_FILE).display()
                    ),
                ).into());
            }
        }
        let (tensors, meta) = read_f32_safetensors(&bytes).at_file(&path)?;
        let mut tensors: HashMap<String, HostTensor> =
            tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        let params = params_from(&mut tensors, "param", &path, device)?;
        let m = params_from(&mut tensors, "adam_m", &path, device)?;
        let v = params_from(&mut tensors, "adam_v", &path, device)?;
        let get = |key: &str| meta.get(key).cloned();
        let dict = D::from_checkpoint(spec.config, params, &get).at_file(&path)?;
        let mut trainer =
            DictTrainer::new(dict, spec.training).map_err(|e| TrainError::Member {
                name: spec.name.clone(),
                source: Box::new(e),
            })?;
        trainer.restore(m, v, get).at_file(&path)?;
        members.push(SweepMember {
            name: spec.name,
            trainer,
        });
    }
    let mut sweep = Sweep::new(members, device)?;
    if let Some(fixed) = fixed_scales {
        sweep = sweep.with_row_scales(fixed)?;
    }
    sweep.step = ckpt.step;
    sweep.rows_seen = ckpt.rows_seen;
    sweep.row_scales = ckpt.scales();
    if let Some(s) = &sweep.row_scales
        && s.len() != sweep.row_widths().len()
    {
        return Err(FileError::new(
            &out.join(CHECKPOINT_FILE),
            format!(
                "{} row scales, but the dictionaries read {} row blocks",
                s.len(),
                sweep.row_widths().len()
            ),
        )
        .into());
    }
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
pub(super) fn remove_stale_temp_files<D: Trainable>(sweep: &Sweep<D>, out: &Path) {
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
pub(super) fn remove_failed_start<D: Trainable>(sweep: &Sweep<D>, out: &Path, out_existed: bool) {
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
    atomic_write(path, kept.as_bytes()).map_err(|e| FileError::new(path, e).into())
}

/// Opens every member's `log.jsonl` for appending; a run that starts at
/// step 0 starts them empty (lines of an earlier start that never reached a
/// checkpoint are not this run's).
pub(super) fn open_logs<D: Trainable>(
    sweep: &Sweep<D>,
    out: &Path,
) -> Result<Vec<BufWriter<fs::File>>, TrainError> {
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
                .map_err(|e| FileError::new(&path, e).into())
        })
        .collect()
}

pub(super) fn append_log(
    w: &mut BufWriter<fs::File>,
    log: &StepLog,
    dir: &Path,
) -> Result<(), TrainError> {
    let line = serde_json::to_string(log).at_file(dir)?;
    writeln!(w, "{line}").map_err(|e| FileError::new(&dir.join("log.jsonl"), e).into())
}

#[cfg(test)]
mod tests {
    use super::CheckpointManifest;

    fn scales(json: &str) -> Option<Vec<f32>> {
        serde_json::from_str::<CheckpointManifest>(json)
            .unwrap()
            .scales()
    }

    #[test]
    fn row_scales_come_from_bits_then_decimals_then_an_old_input_scale() {
        let head = r#""step":1,"rows_seen":8,"source_position":null"#;
        // An SAE sweep's checkpoint before row scales.
        assert_eq!(
            scales(&format!("{{{head},\"input_scale\":0.5}}")),
            Some(vec![0.5])
        );
        // A transcoder or crosscoder run's, and today's: the bits win.
        let c = 1.0f32 / 3.0;
        assert_eq!(
            scales(&format!(
                "{{{head},\"row_scales\":[9.0],\"row_scales_bits\":[{}]}}",
                c.to_bits()
            )),
            Some(vec![c])
        );
        assert_eq!(
            scales(&format!("{{{head},\"row_scales\":[2.0]}}")),
            Some(vec![2.0])
        );
        assert_eq!(scales(&format!("{{{head}}}")), None);
    }
}
