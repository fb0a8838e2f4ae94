//! The library side of `kibitzer xcoder train` and `kibitzer xcoder diff`:
//! everything the command line does, as functions taking plain settings.
//!
//! Training rows come from activation stores read in lockstep
//! ([`AlignedStores`]):
//!
//! - a transcoder reads two stores, its input site then its output site
//!   (harvested from the same examples), or one store whose rows hold both
//!   side by side (`input_width` says where the input ends);
//! - a crosscoder reads one store per block (layer or model), or one store
//!   whose rows hold every block (`block_widths` splits them);
//! - a cross-layer transcoder reads `2n` stores: the input site of layers
//!   `0..n` (`blocks.l.hook_resid_mid`, ...), then their output sites
//!   (`blocks.l.hook_mlp_out`, ...).
//!
//! Blocks are named after the hook site each store's harvest recorded.

use crate::blocks::Block;
use crate::clt::CltConfig;
use crate::crosscoder::CrosscoderConfig;
use crate::diff::{self, RankBy, StageSources, StagewiseConfig, StagewiseDiff, StagewiseOutcome};
use crate::error::XcoderError;
use crate::format;
use crate::run::XRun;
use crate::source::{AlignedStores, RowSource};
use crate::train::XTrainer;
use crate::transcoder::TranscoderConfig;
use crate::xcoder::{Kind, Xcoder, XcoderConfig};
use burn::tensor::Device;
use kibitzer_io::FileError;
use kibitzer_sae::Architecture;
use kibitzer_sae::train::StepLog;
use kibitzer_sae::train::{RunOptions, TrainConfig};
use kibitzer_store::ReaderConfig;
use std::path::{Path, PathBuf};

/// The shape of the dictionary to train, before the stores are read.
#[derive(Clone, Debug, PartialEq)]
pub struct DictionarySpec {
    /// Transcoder or crosscoder.
    pub kind: Kind,
    /// Architecture (`Standard` is L1).
    pub architecture: Architecture,
    /// Number of features (a CLT: features per layer).
    pub d_sae: usize,
    /// Transcoders: add the affine skip path.
    pub skip: bool,
    /// Transcoder from one store: width of the input part of each row.
    pub input_width: Option<usize>,
    /// Crosscoder from one store: the widths of its blocks.
    pub block_widths: Option<Vec<usize>>,
}

/// Builds the dictionary config for the blocks the stores provide
/// ([`AlignedStores::blocks`]): one block per store, or the single store
/// split by `input_width` / `block_widths`.
pub fn dictionary_config(
    spec: &DictionarySpec,
    store_blocks: &[Block],
) -> Result<XcoderConfig, XcoderError> {
    let total: usize = store_blocks.iter().map(|b| b.width).sum();
    let split = |widths: &[usize]| -> Result<Vec<Block>, XcoderError> {
        if store_blocks.len() != 1 {
            return Err(XcoderError::config(
                "store layout",
                format!(
                    "splitting rows needs exactly one store, got {}",
                    store_blocks.len()
                ),
            ));
        }
        if widths.iter().sum::<usize>() != total || widths.contains(&0) {
            return Err(XcoderError::shape(
                "block widths",
                format!("non-zero widths adding up to the store's row width {total}"),
                format!("{widths:?}"),
            ));
        }
        Ok(widths
            .iter()
            .enumerate()
            .map(|(i, &w)| Block::new(format!("{}[{i}]", store_blocks[0].name), w))
            .collect())
    };
    let blocks = match (spec.kind, spec.input_width, &spec.block_widths) {
        (Kind::Transcoder, Some(w), None) => split(&[w, total.saturating_sub(w)])?,
        (Kind::Crosscoder, None, Some(ws)) => split(ws)?,
        (_, None, None) => store_blocks.to_vec(),
        (Kind::Transcoder, _, Some(_)) => {
            return Err(XcoderError::config(
                "block_widths",
                "applies to crosscoders; a transcoder from one store takes input_width",
            ));
        }
        (Kind::Crosscoder, Some(_), _) => {
            return Err(XcoderError::config(
                "input_width",
                "applies to transcoders; a crosscoder from one store takes block_widths",
            ));
        }
        (Kind::Clt, _, _) => {
            return Err(XcoderError::config(
                "input_width / block_widths",
                "a CLT reads one store per site (every layer's input, then every layer's output), named after their sites",
            ));
        }
    };
    let config = match spec.kind {
        Kind::Transcoder => {
            let [input, output] = blocks.as_slice() else {
                return Err(XcoderError::config(
                    "transcoder stores",
                    format!(
                        "a transcoder reads two blocks (input site, then output site), got {}: give two stores, or one store with input_width",
                        blocks.len()
                    ),
                ));
            };
            XcoderConfig::Transcoder(TranscoderConfig {
                architecture: spec.architecture.clone(),
                input_site: input.name.clone(),
                d_in: input.width,
                output_site: output.name.clone(),
                d_out: output.width,
                d_sae: spec.d_sae,
                skip: spec.skip,
            })
        }
        Kind::Clt => {
            if spec.skip {
                return Err(XcoderError::config("skip", "CLTs have no skip path"));
            }
            XcoderConfig::Clt(CltConfig::from_blocks(
                spec.architecture.clone(),
                &blocks,
                spec.d_sae,
            )?)
        }
        Kind::Crosscoder => {
            if spec.skip {
                return Err(XcoderError::config("skip", "crosscoders have no skip path"));
            }
            XcoderConfig::Crosscoder(CrosscoderConfig {
                architecture: spec.architecture.clone(),
                blocks,
                d_sae: spec.d_sae,
            })
        }
    };
    config.validate()?;
    Ok(config)
}

/// A readable default run name, e.g. `transcoder-topk-d16384-k256`.
pub fn default_name(config: &XcoderConfig) -> String {
    let (kind, arch, d_sae, skip) = match config {
        XcoderConfig::Transcoder(c) => ("transcoder", &c.architecture, c.d_sae, c.skip),
        XcoderConfig::Crosscoder(c) => ("crosscoder", &c.architecture, c.d_sae, false),
        XcoderConfig::Clt(c) => ("clt", &c.architecture, c.d_transcoder, false),
    };
    let mut name = format!(
        "{kind}-{}{}-d{d_sae}",
        if skip { "skip-" } else { "" },
        arch.name()
    );
    if let Architecture::TopK { k } | Architecture::BatchTopK { k } = arch {
        name.push_str(&format!("-k{k}"));
    }
    name
}

/// One dictionary of a training call: its shape, its training settings and
/// its name.
#[derive(Clone, Debug)]
pub struct DictionaryRequest {
    /// The dictionary's shape.
    pub spec: DictionarySpec,
    /// Training settings (start from [`TrainConfig::for_architecture`]).
    pub training: TrainConfig,
    /// Run name, its sub-directory of the output (default: [`default_name`]).
    pub name: Option<String>,
}

/// What `kibitzer xcoder train` asks for: one dictionary, or several
/// trained from one pass over the same stores (every batch steps each).
#[derive(Clone, Debug)]
pub struct TrainRequest {
    /// The dictionaries, at least one; their names must differ.
    pub dictionaries: Vec<DictionaryRequest>,
    /// Activation stores read in lockstep (see the [module documentation](self)).
    pub stores: Vec<PathBuf>,
    /// Seed of the data order and shuffling (initialisation uses each
    /// dictionary's `training.seed`).
    pub reader: ReaderConfig,
    /// Output directory, checkpoints, logging and progress.
    pub options: RunOptions,
    /// Fine-tune this saved dictionary instead of starting from scratch
    /// (a request of one dictionary only).
    pub init_from: Option<PathBuf>,
}

/// A dictionary a training call saved.
pub struct TrainedDictionary {
    /// Its name.
    pub name: String,
    /// Where it was saved (`OUT/<name>`).
    pub dir: PathBuf,
    /// Its last logged step.
    pub last: Option<StepLog>,
}

/// What a finished (or stopped) training call leaves.
pub struct TrainOutcome {
    /// The run (its trainers, scales, rows read).
    pub run: XRun,
    /// Every dictionary of the run, in order.
    pub dictionaries: Vec<TrainedDictionary>,
}

impl TrainOutcome {
    /// The first dictionary's directory (the only one of a one-dictionary call).
    pub fn dictionary_dir(&self) -> &Path {
        &self.dictionaries[0].dir
    }
}

/// Trains a new run. Refuses an output directory that already holds a run
/// (resume it with [`resume`], or choose another).
pub fn train(req: &TrainRequest, device: &Device) -> Result<TrainOutcome, XcoderError> {
    let out = &req.options.out_dir;
    if out.join("checkpoint.json").exists() {
        return Err(XcoderError::config(
            "output directory",
            format!(
                "{} already holds a training run; resume it or choose another directory",
                out.display()
            ),
        ));
    }
    if req.dictionaries.is_empty() {
        return Err(XcoderError::config("dictionaries", "give at least one"));
    }
    if req.init_from.is_some() && req.dictionaries.len() > 1 {
        return Err(XcoderError::config(
            "init_from",
            format!(
                "fine-tunes one dictionary; the request has {}",
                req.dictionaries.len()
            ),
        ));
    }
    let mut source = AlignedStores::open(&req.stores, req.reader)?;
    let blocks = source.blocks();
    let mut members = Vec::with_capacity(req.dictionaries.len());
    let mut fixed_scales = None;
    for d in &req.dictionaries {
        let config = dictionary_config(&d.spec, &blocks)?;
        if d.spec.kind == Kind::Clt && d.training.matryoshka_widths.is_some() {
            // Nested prefixes of layer-major features would be "the first
            // layers' features", not coarse-to-fine levels.
            return Err(XcoderError::config(
                "matryoshka_widths",
                "does not apply to CLTs; train a clt with batchtopk or jumprelu",
            ));
        }
        let xcoder = match &req.init_from {
            None => config.init(d.training.seed, device)?,
            Some(dir) => {
                let loaded = load_same_shape(dir, &config, device)?;
                fixed_scales = Some(loaded.row_scales());
                loaded
            }
        };
        let mut training = d.training.clone();
        if req.init_from.is_some() {
            // A trained b_dec is kept.
            training.init_b_dec_geometric_median = false;
        }
        let name = d.name.clone().unwrap_or_else(|| default_name(&config));
        if members.iter().any(|(n, _)| *n == name) {
            return Err(XcoderError::config(
                "dictionary names",
                format!("two dictionaries are named {name:?}; give each its own name"),
            ));
        }
        members.push((name, XTrainer::new(xcoder, training)?));
    }
    let mut run = XRun::grid(members, device)?;
    if let Some(scales) = fixed_scales {
        run = run.with_row_scales(scales)?;
    }
    finish(run, &mut source, &req.options)
}

/// The saved dictionary in `dir`, refused unless it has the shape `config`
/// asks for.
fn load_same_shape(
    dir: &Path,
    config: &XcoderConfig,
    device: &Device,
) -> Result<Xcoder, XcoderError> {
    let loaded = format::load(dir, device)?;
    let same_shape = match (&loaded, config) {
        (Xcoder::Transcoder(t), XcoderConfig::Transcoder(c)) => {
            (
                t.sae.config.d_in,
                t.sae.config.d_out,
                t.sae.config.d_sae,
                &t.sae.config.architecture,
            ) == (c.d_in, c.d_out, c.d_sae, &c.architecture)
        }
        (Xcoder::Crosscoder(x), XcoderConfig::Crosscoder(c)) => {
            (x.config.widths(), x.config.d_sae, &x.config.architecture)
                == (c.widths(), c.d_sae, &c.architecture)
        }
        (Xcoder::Clt(x), XcoderConfig::Clt(c)) => x.config() == c,
        _ => false,
    };
    if !same_shape {
        return Err(FileError::new(
            dir,
            format!(
                "the saved dictionary {:?} does not match the one asked for {config:?}",
                loaded.config()
            ),
        )
        .into());
    }
    Ok(loaded)
}

/// Resumes the run in `options.out_dir` from its last checkpoint, reading
/// the same stores with the same reader settings as the original call.
pub fn resume(
    stores: &[PathBuf],
    reader: ReaderConfig,
    options: &RunOptions,
    device: &Device,
) -> Result<TrainOutcome, XcoderError> {
    let (run, position) = XRun::resume(&options.out_dir, device)?;
    let mut source = AlignedStores::open_at(stores, reader, &position)?;
    finish(run, &mut source, options)
}

fn finish<S: RowSource>(
    mut run: XRun,
    source: &mut S,
    options: &RunOptions,
) -> Result<TrainOutcome, XcoderError> {
    if source.d_in() != run.trainer().dict.row_width() {
        return Err(XcoderError::shape(
            "store rows",
            format!(
                "width {} (blocks {:?})",
                run.trainer().dict.row_width(),
                run.trainer().dict.row_blocks()
            ),
            format!("width {}", source.d_in()),
        ));
    }
    let mut logs = run.run(source, options)?.into_iter();
    let dictionaries = run
        .members()
        .iter()
        .map(|m| TrainedDictionary {
            name: m.name.clone(),
            dir: options.out_dir.join(&m.name),
            last: logs.next(),
        })
        .collect();
    Ok(TrainOutcome { run, dictionaries })
}

/// What `kibitzer xcoder diff` asks for when it trains the stages.
#[derive(Clone, Debug)]
pub struct DiffRequest {
    /// The dictionary's shape (blocks come from the stage-S stores).
    pub spec: DictionarySpec,
    /// Stores of each stage, `[S, D, M, DM]` = (base model, base data),
    /// (base model, fine-tuning data), (fine-tuned model, base data),
    /// (fine-tuned model, fine-tuning data); each list read in lockstep.
    pub stores: [Vec<PathBuf>; 4],
    /// Training of stage S.
    pub train: TrainConfig,
    /// Fine-tuning of stages D, M and DM.
    pub fine_tune: TrainConfig,
    /// Which stage DM continues.
    pub dm_parent: diff::DmParent,
    /// Ranking.
    pub rank_by: RankBy,
    /// Reader settings (the same for all stages).
    pub reader: ReaderConfig,
    /// Output directory (`OUT/stage-*`, `OUT/diff.json`, `OUT/diff.md`),
    /// checkpoints, logging, progress.
    pub options: RunOptions,
}

/// Trains (or resumes) the four stages from stores and ranks the features.
pub fn diff(req: &DiffRequest, device: &Device) -> Result<StagewiseOutcome, XcoderError> {
    let open = |paths: &Vec<PathBuf>| AlignedStores::open(paths, req.reader);
    let [s, d, m, dm] = &req.stores;
    let (mut s, mut d, mut m, mut dm) = (open(s)?, open(d)?, open(m)?, open(dm)?);
    let dictionary = dictionary_config(&req.spec, &s.blocks())?;
    for (name, src) in [("D", &d), ("M", &m), ("DM", &dm)] {
        let widths: Vec<usize> = src.blocks().iter().map(|b| b.width).collect();
        let expected: Vec<usize> = s.blocks().iter().map(|b| b.width).collect();
        if widths != expected {
            return Err(XcoderError::shape(
                format!("stores of stage {name}"),
                format!("block widths {expected:?} (as stage S)"),
                format!("{widths:?}"),
            ));
        }
    }
    let config = StagewiseConfig {
        dictionary,
        train: req.train.clone(),
        fine_tune: req.fine_tune.clone(),
        dm_parent: req.dm_parent,
        rank_by: req.rank_by,
    };
    let sources = StageSources {
        base_model_base_data: &mut s,
        base_model_finetune_data: &mut d,
        finetuned_model_base_data: &mut m,
        finetuned_model_finetune_data: &mut dm,
    };
    let out = req.options.out_dir.clone();
    diff::run_stagewise(&config, sources, &out, &req.options, req.train.seed, device)
}

/// Compares four saved stages of one dictionary (`kibitzer xcoder diff
/// --stages S D M DM`), as [`diff::compare`] does.
pub fn diff_saved(
    dirs: [&Path; 4],
    rank_by: RankBy,
    device: &Device,
) -> Result<StagewiseDiff, XcoderError> {
    let loaded = dirs
        .iter()
        .map(|d| format::load(d, device))
        .collect::<Result<Vec<_>, _>>()?;
    diff::compare([&loaded[0], &loaded[1], &loaded[2], &loaded[3]], rank_by)
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::planted::{Planted, PlantedConfig};
    use kibitzer_sae::ops::to_host;
    use kibitzer_store::{StoreConfig, StoreWriter};

    fn dev() -> Device {
        Device::flex()
    }

    /// Writes the columns `cols` of `rows` planted rows into a store at `dir`
    /// whose harvest recorded `site`.
    fn store(dir: &Path, planted: &Planted, cols: std::ops::Range<usize>, site: &str, rows: usize) {
        let mut data = Vec::new();
        planted.generate_rows(0, rows, &mut data);
        let w = planted.row_width();
        let values: Vec<f32> = data
            .chunks(w)
            .flat_map(|r| r[cols.clone()].to_vec())
            .collect();
        let config = StoreConfig {
            rows_per_shard: 500,
            metadata: serde_json::json!({ "hook_site": site }),
            ..StoreConfig::new(cols.len())
        };
        let mut writer = StoreWriter::create(dir, config).unwrap();
        writer.push_rows(&values).unwrap();
        writer.finish().unwrap();
    }

    fn planted() -> Planted {
        Planted::new(PlantedConfig {
            n_features: 12,
            input_widths: vec![10],
            output_widths: vec![8],
            firing_probability: 0.1,
            block_presence: 1.0,
            noise_std: 0.01,
            dense_input_std: 0.0,
            skip_scale: 0.0,
            seed: 4,
        })
        .unwrap()
    }

    fn spec(kind: Kind, architecture: Architecture) -> DictionarySpec {
        DictionarySpec {
            kind,
            architecture,
            d_sae: 16,
            skip: false,
            input_width: None,
            block_widths: None,
        }
    }

    fn request(stores: Vec<PathBuf>, out: &Path, spec: DictionarySpec) -> TrainRequest {
        let mut training = TrainConfig::for_architecture(&spec.architecture, spec.d_sae, 60);
        training.batch_size = 64;
        training.lr = 1e-3;
        TrainRequest {
            dictionaries: vec![DictionaryRequest {
                spec,
                training,
                name: None,
            }],
            stores,
            reader: ReaderConfig {
                seed: 3,
                memory_ceiling_bytes: 1 << 20,
                shuffle: true,
                cycle: true,
            },
            options: RunOptions {
                checkpoint_every: 20,
                log_every: 10,
                progress: false,
                stop_after: None,
                out_dir: out.to_path_buf(),
            },
            init_from: None,
        }
    }

    #[test]
    fn transcoder_from_two_stores_trains_resumes_and_saves() {
        let tmp = tempfile::tempdir().unwrap();
        let p = planted();
        let (input, output) = (tmp.path().join("in"), tmp.path().join("out"));
        store(&input, &p, 0..10, "blocks.2.ln2.hook_normalized", 2000);
        store(&output, &p, 10..18, "blocks.2.hook_mlp_out", 2000);
        let stores = vec![input, output];
        let arch = Architecture::TopK { k: 3 };

        // Uninterrupted.
        let whole = train(
            &request(
                stores.clone(),
                &tmp.path().join("a"),
                spec(Kind::Transcoder, arch.clone()),
            ),
            &dev(),
        )
        .unwrap();
        assert_eq!(whole.run.name(), "transcoder-topk-d16-k3");
        let saved = format::load(&whole.dictionary_dir(), &dev()).unwrap();
        let Xcoder::Transcoder(t) = &saved else {
            panic!("a transcoder was saved")
        };
        assert_eq!(
            (t.input_site.as_str(), t.output_site.as_str()),
            ("blocks.2.ln2.hook_normalized", "blocks.2.hook_mlp_out")
        );
        // The output directory is not overwritten.
        let again = train(
            &request(
                stores.clone(),
                &tmp.path().join("a"),
                spec(Kind::Transcoder, arch.clone()),
            ),
            &dev(),
        );
        assert!(
            again
                .err()
                .unwrap()
                .to_string()
                .contains("already holds a training run")
        );

        // Killed after 30 steps, then resumed from the checkpoint at 20.
        let mut killed = request(
            stores.clone(),
            &tmp.path().join("b"),
            spec(Kind::Transcoder, arch.clone()),
        );
        killed.options.stop_after = Some(30);
        assert_eq!(train(&killed, &dev()).unwrap().run.step(), 30);
        killed.options.stop_after = None;
        let resumed = resume(&stores, killed.reader, &killed.options, &dev()).unwrap();
        assert_eq!(resumed.run.step(), 60);
        let resumed_saved = format::load(&resumed.dictionary_dir(), &dev()).unwrap();
        for ((name, a), (_, b)) in saved
            .params()
            .named()
            .into_iter()
            .zip(resumed_saved.params().named())
        {
            assert_eq!(to_host(a), to_host(b), "{name}: resumed run differs");
        }
    }

    #[test]
    fn crosscoder_from_one_wide_store_and_fine_tuning() {
        let tmp = tempfile::tempdir().unwrap();
        let p = planted();
        let wide = tmp.path().join("wide");
        store(&wide, &p, 0..18, "layers", 1000);
        let mut s = spec(Kind::Crosscoder, Architecture::BatchTopK { k: 2 });
        s.block_widths = Some(vec![10, 8]);
        let out = train(
            &request(vec![wide.clone()], &tmp.path().join("a"), s.clone()),
            &dev(),
        )
        .unwrap();
        let Xcoder::Crosscoder(c) = format::load(out.dictionary_dir(), &dev()).unwrap() else {
            panic!("a crosscoder was saved")
        };
        assert_eq!(c.config.widths(), vec![10, 8]);
        assert_eq!(c.config.blocks[1].name, "layers[1]");
        assert!(
            c.params.threshold.is_some(),
            "BatchTopK saves its threshold"
        );
        assert!(
            c.block_scales.iter().all(|&v| v != 1.0),
            "scales estimated: {:?}",
            c.block_scales
        );
        // Fine-tuning keeps the scales it was trained under and starts
        // from the saved weights.
        let mut ft = request(vec![wide], &tmp.path().join("b"), s);
        ft.init_from = Some(out.dictionary_dir().to_path_buf());
        ft.dictionaries[0].training.steps = 1;
        ft.dictionaries[0].training.lr = 1e-12;
        let tuned = train(&ft, &dev()).unwrap();
        assert_eq!(tuned.run.row_scales(), Some(c.block_scales.as_slice()));
        let Xcoder::Crosscoder(c2) = format::load(&tuned.dictionary_dir(), &dev()).unwrap() else {
            panic!()
        };
        let (a, b) = (
            to_host(c.params.w_dec.clone()),
            to_host(c2.params.w_dec.clone()),
        );
        assert!(
            a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5),
            "a near-zero step keeps the weights"
        );
    }

    #[test]
    fn store_layouts_that_do_not_fit_are_refused() {
        let one = [Block::new("s", 10)];
        let two = [Block::new("a", 4), Block::new("b", 6)];
        let three = [Block::new("a", 4), Block::new("b", 6), Block::new("c", 2)];
        let t = spec(Kind::Transcoder, Architecture::Standard);
        assert!(dictionary_config(&t, &two).is_ok());
        let err = dictionary_config(&t, &three).unwrap_err().to_string();
        assert!(err.contains("two blocks") && err.contains("got 3"), "{err}");
        let err = dictionary_config(&t, &one).unwrap_err().to_string();
        assert!(err.contains("input_width"), "{err}");
        let split = DictionarySpec {
            input_width: Some(11),
            ..t.clone()
        };
        let err = dictionary_config(&split, &one).unwrap_err().to_string();
        assert!(err.contains("row width 10"), "{err}");
        let c = DictionarySpec {
            block_widths: Some(vec![5, 5]),
            ..spec(Kind::Crosscoder, Architecture::TopK { k: 20 })
        };
        let err = dictionary_config(&c, &one).unwrap_err().to_string();
        assert!(err.contains("k") && err.contains("1..=16"), "{err}");
        let c = DictionarySpec {
            skip: true,
            ..spec(Kind::Crosscoder, Architecture::Standard)
        };
        assert!(
            dictionary_config(&c, &two)
                .unwrap_err()
                .to_string()
                .contains("skip")
        );
    }

    #[test]
    fn diff_from_stores_runs_four_stages_and_compares_saved_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let p = planted();
        let mut stage_stores: Vec<Vec<PathBuf>> = Vec::new();
        for name in ["s", "d", "m", "dm"] {
            let dir = tmp.path().join(name);
            store(&dir, &p, 0..18, "blocks.1.hook_resid_post", 600);
            stage_stores.push(vec![dir]);
        }
        let mut s = spec(Kind::Crosscoder, Architecture::Standard);
        s.block_widths = Some(vec![10, 8]);
        let base = request(vec![], &tmp.path().join("diff"), s.clone());
        let req = DiffRequest {
            spec: s,
            stores: [
                stage_stores[0].clone(),
                stage_stores[1].clone(),
                stage_stores[2].clone(),
                stage_stores[3].clone(),
            ],
            train: base.dictionaries[0].training.clone(),
            fine_tune: TrainConfig {
                steps: 20,
                ..base.dictionaries[0].training.clone()
            },
            dm_parent: diff::DmParent::M,
            rank_by: RankBy::ModelChange,
            reader: base.reader,
            options: base.options.clone(),
        };
        let outcome = diff(&req, &dev()).unwrap();
        assert_eq!(outcome.diff.features.len(), 16);
        assert_eq!(outcome.runs[3].step(), 20);
        let out = tmp.path().join("diff");
        let dirs: Vec<PathBuf> = ["S", "D", "M", "DM"]
            .iter()
            .map(|s| out.join(format!("stage-{s}/{s}")))
            .collect();
        let saved = diff_saved(
            [&dirs[0], &dirs[1], &dirs[2], &dirs[3]],
            RankBy::ModelChange,
            &dev(),
        )
        .unwrap();
        // The same stages, compared from disk (an L1 crosscoder is saved folded
        // to raw units, so scores differ but the shape and ranking inputs agree).
        assert_eq!(saved.features.len(), 16);
        assert!(out.join("diff.md").is_file() && out.join("diff.json").is_file());
        // Running again resumes every finished stage instead of retraining.
        let again = diff(&req, &dev()).unwrap();
        assert_eq!(again.diff, outcome.diff);
        // Stores of another width are refused.
        let narrow = tmp.path().join("narrow");
        store(&narrow, &p, 0..17, "x", 600);
        let mut bad = req.clone();
        bad.stores[2] = vec![narrow];
        assert!(diff(&bad, &dev()).is_err());
    }
}
