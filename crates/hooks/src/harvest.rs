//! Streaming a model's activations at a site into the activation store.
//!
//! [`ModelActivations`] is a kibitzer-store [`ActivationSource`]: it runs
//! the model over a dataset of examples batch by batch (stopping each pass
//! right after the site), keeps the rows of the positions the dataset marks
//! (no padding), and hands them out; at most one forward pass of rows is held
//! in memory, and the batch size is chosen so that a pass fits under a memory
//! ceiling. [`harvest`] drains one into a store, with each row's example and
//! position as extra columns so that later stages (board-state properties)
//! can label rows.

use crate::error::HookError;
use crate::model::HookedModel;
use crate::site::HookSite;
use burn::tensor::{Device, Int, Tensor, TensorData};
use kibitzer_store::{
    ActivationSource, ColumnDtype, ColumnSpec, ColumnValues, Manifest, StoreConfig, StoreWriter,
};

/// Some examples of a dataset as one model input.
#[derive(Clone, Debug)]
pub struct Examples<I> {
    /// The model input holding the examples.
    pub input: I,
    /// Index of the first example in the dataset (examples are numbered in order).
    pub first_example: u64,
    /// Number of examples in `input`.
    pub count: usize,
    /// Which activation rows to keep, one flag per (example, position) in
    /// example-major order (`count * positions` flags); `None` keeps every row.
    pub keep: Option<Vec<bool>>,
}

/// A dataset that hands out model inputs a few examples at a time.
pub trait ExampleSource<I> {
    /// Up to `max` examples (at least one), or `None` once the dataset is exhausted.
    fn next_examples(&mut self, max: usize) -> Result<Option<Examples<I>>, HookError>;
}

/// Token sequences of one length (padded or cut), for GPT-style models
/// whose input is `[batch, pos]` token ids.
#[derive(Clone, Debug)]
pub struct TokenSequences {
    tokens: Vec<i64>,
    seq_len: usize,
    pad: Option<u32>,
    skip_first: usize,
    only_token: Option<u32>,
    device: Device,
    cursor: usize,
}

impl TokenSequences {
    /// `sequences`, each cut or padded with `pad` to `seq_len` tokens.
    /// Rows at padding positions are not harvested. A sequence longer than
    /// `seq_len` is an error unless `truncate` is set; a short one without
    /// a `pad` token is an error.
    pub fn new(
        sequences: &[Vec<u32>],
        seq_len: usize,
        pad: Option<u32>,
        truncate: bool,
        device: &Device,
    ) -> Result<TokenSequences, HookError> {
        if seq_len == 0 {
            return Err(HookError::Input(
                "token sequences: seq_len must be at least 1".into(),
            ));
        }
        let mut tokens = Vec::with_capacity(sequences.len() * seq_len);
        for (i, seq) in sequences.iter().enumerate() {
            if seq.len() > seq_len && !truncate {
                return Err(HookError::Input(format!(
                    "sequence {i} has {} tokens, more than seq_len = {seq_len} (allow truncation to cut it)",
                    seq.len()
                )));
            }
            if seq.len() < seq_len && pad.is_none() {
                return Err(HookError::Input(format!(
                    "sequence {i} has {} tokens, fewer than seq_len = {seq_len}, and no padding token was given",
                    seq.len()
                )));
            }
            tokens.extend(seq.iter().take(seq_len).map(|&t| i64::from(t)));
            tokens.extend(std::iter::repeat_n(
                i64::from(pad.unwrap_or(0)),
                seq_len.saturating_sub(seq.len()),
            ));
        }
        Ok(TokenSequences {
            tokens,
            seq_len,
            pad,
            skip_first: 0,
            only_token: None,
            device: device.clone(),
            cursor: 0,
        })
    }

    /// Does not harvest the first `n` positions of each sequence (a BOS token).
    pub fn skipping_first(mut self, n: usize) -> TokenSequences {
        self.skip_first = n;
        self
    }

    /// Harvests only the positions holding `token` (ChessGPT's `.`, where
    /// reference 002 reads the board with White to move).
    pub fn keeping_only_token(mut self, token: u32) -> TokenSequences {
        self.only_token = Some(token);
        self
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.tokens.len() / self.seq_len
    }

    /// Whether there are no sequences.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The length of every sequence.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Rows that will be harvested (positions not padding and not skipped).
    pub fn harvested_rows(&self) -> usize {
        self.keep_flags(0, self.len())
            .iter()
            .filter(|k| **k)
            .count()
    }

    fn keep_flags(&self, first: usize, count: usize) -> Vec<bool> {
        let slice = &self.tokens[first * self.seq_len..(first + count) * self.seq_len];
        slice
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                i % self.seq_len >= self.skip_first
                    && self.pad.is_none_or(|p| t != i64::from(p))
                    && self.only_token.is_none_or(|o| t == i64::from(o))
            })
            .collect()
    }
}

impl ExampleSource<Tensor<2, Int>> for TokenSequences {
    fn next_examples(&mut self, max: usize) -> Result<Option<Examples<Tensor<2, Int>>>, HookError> {
        let left = self.len() - self.cursor;
        if left == 0 {
            return Ok(None);
        }
        let count = left.min(max.max(1));
        let first = self.cursor;
        let values = self.tokens[first * self.seq_len..(first + count) * self.seq_len].to_vec();
        let input = Tensor::<2, Int>::from_data(
            TensorData::new(values, [count, self.seq_len]),
            &self.device,
        );
        self.cursor += count;
        Ok(Some(Examples {
            input,
            first_example: first as u64,
            count,
            keep: Some(self.keep_flags(first, count)),
        }))
    }
}

/// A model's activations at one site over a dataset, as an [`ActivationSource`].
pub struct ModelActivations<'m, M: HookedModel, S> {
    model: &'m M,
    site: HookSite,
    source: S,
    memory_ceiling_bytes: usize,
    examples_per_pass: usize,
    width: usize,
    rows: Vec<f32>,
    ids: Vec<(i64, i64)>,
    cursor: usize,
    exhausted: bool,
}

impl<'m, M: HookedModel, S: ExampleSource<M::Input>> ModelActivations<'m, M, S> {
    /// Activations of `model` at `site` over `source`, with forward passes
    /// sized to fit `memory_ceiling_bytes` (the rows held between calls
    /// included). Runs the first pass at once, to learn the row width.
    pub fn new(
        model: &'m M,
        site: HookSite,
        source: S,
        memory_ceiling_bytes: usize,
    ) -> Result<Self, HookError> {
        let model_sites = model.sites();
        if !model_sites.contains(&site) {
            return Err(HookError::UnknownSite {
                site: site.to_string(),
                available: crate::site::describe_sites(&model_sites),
            });
        }
        let per_example = model.bytes_per_example().max(1);
        if memory_ceiling_bytes < per_example {
            return Err(HookError::Input(format!(
                "memory ceiling of {memory_ceiling_bytes} bytes is below the {per_example} bytes one example needs in a forward pass"
            )));
        }
        let mut this = ModelActivations {
            model,
            site,
            source,
            memory_ceiling_bytes,
            examples_per_pass: memory_ceiling_bytes / per_example,
            width: 0,
            rows: Vec::new(),
            ids: Vec::new(),
            cursor: 0,
            exhausted: false,
        };
        this.refill()?;
        Ok(this)
    }

    /// The site.
    pub fn site(&self) -> HookSite {
        self.site
    }

    /// Examples per forward pass (after the first pass sized it).
    pub fn examples_per_pass(&self) -> usize {
        self.examples_per_pass
    }

    /// Runs the next forward pass into the row buffer; false once the dataset is exhausted.
    fn refill(&mut self) -> Result<bool, HookError> {
        self.rows.clear();
        self.ids.clear();
        self.cursor = 0;
        if self.exhausted {
            return Ok(false);
        }
        let Some(examples) = self.source.next_examples(self.examples_per_pass)? else {
            self.exhausted = true;
            return Ok(false);
        };
        let cache = self.model.collect(&examples.input, &[self.site])?;
        let act = cache.get(self.site).ok_or_else(|| {
            HookError::Incomplete(format!(
                "the model's forward pass did not reach {}",
                self.site
            ))
        })?;
        let (rows, width) = act.position_rows_shape();
        if examples.count == 0 || rows % examples.count != 0 {
            return Err(HookError::Input(format!(
                "{}: {rows} activation rows do not split evenly over {} examples",
                self.site, examples.count
            )));
        }
        let per_example = rows / examples.count;
        if let Some(keep) = &examples.keep
            && keep.len() != rows
        {
            return Err(HookError::Input(format!(
                "{}: the dataset marked {} rows to keep or drop, but the pass produced {rows} ({} examples x {per_example} positions)",
                self.site,
                keep.len(),
                examples.count
            )));
        }
        if self.width == 0 {
            self.width = width;
            // Now that the row width is known, fit the rows held between
            // calls under the ceiling beside the forward pass itself.
            let per = self.model.bytes_per_example().max(1) + per_example * width * 4;
            self.examples_per_pass = (self.memory_ceiling_bytes / per).max(1);
        }
        let values = kibitzer_sae::ops::to_host(act.position_rows());
        for row in 0..rows {
            if examples.keep.as_ref().is_none_or(|k| k[row]) {
                self.rows
                    .extend_from_slice(&values[row * width..(row + 1) * width]);
                let example = examples.first_example as i64 + (row / per_example) as i64;
                self.ids.push((example, (row % per_example) as i64));
            }
        }
        Ok(true)
    }

    /// Like [`ActivationSource::next_batch`], also appending each row's
    /// (example index, position) to `ids` (cleared first).
    pub fn next_batch_with_ids(
        &mut self,
        rows: usize,
        out: &mut Vec<f32>,
        ids: &mut Vec<(i64, i64)>,
    ) -> Result<usize, HookError> {
        out.clear();
        ids.clear();
        let mut have = 0;
        while have < rows {
            if self.cursor == self.ids.len() && !self.refill()? {
                break;
            }
            let take = (rows - have).min(self.ids.len() - self.cursor);
            out.extend_from_slice(
                &self.rows[self.cursor * self.width..(self.cursor + take) * self.width],
            );
            ids.extend_from_slice(&self.ids[self.cursor..self.cursor + take]);
            self.cursor += take;
            have += take;
        }
        Ok(have)
    }
}

impl<M: HookedModel, S: ExampleSource<M::Input>> ActivationSource for ModelActivations<'_, M, S> {
    type Error = HookError;

    fn d_in(&self) -> usize {
        self.width
    }

    fn next_batch(&mut self, rows: usize, out: &mut Vec<f32>) -> Result<usize, HookError> {
        let mut ids = Vec::new();
        self.next_batch_with_ids(rows, out, &mut ids)
    }
}

/// Options of [`harvest`].
#[derive(Clone, Debug)]
pub struct HarvestConfig {
    /// The store's layout (its `d_in` is set from the site; extra columns
    /// `example` and `position` are added).
    pub store: StoreConfig,
    /// Stop after this many rows (`None`: the whole dataset).
    pub max_rows: Option<u64>,
    /// Bytes a forward pass and the rows held may take.
    pub memory_ceiling_bytes: usize,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Keep only these columns of each row (e.g. one head of a per-head
    /// site such as `attn.hook_z`, whose rows hold the heads side by side);
    /// `None` keeps the whole row.
    pub columns: Option<std::ops::Range<usize>>,
}

impl HarvestConfig {
    /// Defaults: f32 shards of 65,536 rows, every row, 1 GiB, no progress bar.
    pub fn new() -> HarvestConfig {
        HarvestConfig {
            store: StoreConfig::new(1),
            max_rows: None,
            memory_ceiling_bytes: 1 << 30,
            progress: false,
            columns: None,
        }
    }
}

impl Default for HarvestConfig {
    fn default() -> Self {
        HarvestConfig::new()
    }
}

/// Runs `model` over `source` and writes its activations at `site` into a
/// new store at `dir`, one row per kept (example, position), with `example`
/// and `position` columns (i64). The manifest's metadata records the site
/// (merged into any metadata given).
pub fn harvest<M: HookedModel, S: ExampleSource<M::Input>>(
    model: &M,
    site: HookSite,
    source: S,
    dir: impl AsRef<std::path::Path>,
    config: &HarvestConfig,
) -> Result<Manifest, HookError> {
    harvest_with_row_ids(model, site, source, dir, config, |example, position| {
        (example, position)
    })
}

/// [`harvest`], with the `example` and `position` columns of each row
/// written as `row_ids(example, position)` gives them: a dataset whose
/// examples are single positions of several games (an AlphaZero network
/// reads one board at a time) can record each row's (game, move) instead
/// of its example index, as a GPT's store records (game, token).
pub fn harvest_with_row_ids<M: HookedModel, S: ExampleSource<M::Input>>(
    model: &M,
    site: HookSite,
    source: S,
    dir: impl AsRef<std::path::Path>,
    config: &HarvestConfig,
    mut row_ids: impl FnMut(i64, i64) -> (i64, i64),
) -> Result<Manifest, HookError> {
    let mut activations = ModelActivations::new(model, site, source, config.memory_ceiling_bytes)?;
    let mut metadata = match &config.store.metadata {
        serde_json::Value::Object(map) => map.clone(),
        serde_json::Value::Null => serde_json::Map::new(),
        other => {
            let mut map = serde_json::Map::new();
            map.insert("user".into(), other.clone());
            map
        }
    };
    metadata.insert(
        "hook_site".into(),
        serde_json::Value::String(site.to_string()),
    );
    let width = activations.d_in();
    let columns = match &config.columns {
        Some(range) if range.is_empty() || range.end > width => {
            return Err(HookError::Input(format!(
                "{site}: columns {}..{} of rows {width} wide; expected a non-empty range inside the row",
                range.start, range.end
            )));
        }
        Some(range) => {
            metadata.insert(
                "columns".into(),
                serde_json::json!({"start": range.start, "end": range.end, "row_width": width}),
            );
            range.clone()
        }
        None => 0..width,
    };
    let mut store = config.store.clone();
    store.d_in = columns.len();
    store.metadata = serde_json::Value::Object(metadata);
    store
        .extra_columns
        .push(ColumnSpec::scalar("example", ColumnDtype::I64));
    store
        .extra_columns
        .push(ColumnSpec::scalar("position", ColumnDtype::I64));
    let rows_per_call = store.rows_per_shard.clamp(1, 8192);
    let mut writer = StoreWriter::create(dir, store)?;
    let bar = match config.max_rows {
        Some(max) => kibitzer_io::progress::bar(config.progress, max, 0, "rows"),
        None => kibitzer_io::progress::counter(config.progress, "rows"),
    };
    bar.set_message(format!("harvesting {site}"));
    let (mut values, mut ids) = (Vec::new(), Vec::new());
    loop {
        let want = match config.max_rows {
            Some(max) if writer.rows() >= max => break,
            Some(max) => ((max - writer.rows()) as usize).min(rows_per_call),
            None => rows_per_call,
        };
        let got = activations.next_batch_with_ids(want, &mut values, &mut ids)?;
        if got == 0 {
            break;
        }
        let (examples, positions): (Vec<i64>, Vec<i64>) =
            ids.iter().map(|&(e, p)| row_ids(e, p)).unzip();
        if columns.len() != width {
            values = values
                .chunks(width)
                .flat_map(|row| &row[columns.clone()])
                .copied()
                .collect();
        }
        writer.push_rows_with(
            &values,
            &[
                ("example", ColumnValues::I64(&examples)),
                ("position", ColumnValues::I64(&positions)),
            ],
        )?;
        bar.set_position(writer.rows());
    }
    bar.finish_and_clear();
    Ok(writer.finish()?)
}
