//! [`ShuffledReader`]: seeded, resumable shuffled reading under a memory
//! ceiling, with the next window loading on a background thread.
//!
//! Each epoch the shards are put in a seeded order (seed, epoch) and cut, in
//! that order, into windows of consecutive shards that each fit in half the
//! memory ceiling: one window is being handed out while the next one loads
//! on a background thread, and the two together stay under the ceiling.
//! The rows of a window are handed out in a seeded order (seed, epoch,
//! window); batches are taken in order and may span windows (and epochs).
//!
//! The position `(epoch, window, offset)` is all a resumed reader needs: it
//! recomputes that epoch's windows, reloads one window, recomputes its order
//! and skips `offset` rows, so it hands out exactly what an uninterrupted
//! reader would have.
//!
//! Shuffling within windows is not a global shuffle: within an epoch, rows of
//! different windows never share a batch (except across a window boundary).
//! The larger the ceiling relative to the shards, the closer to a global
//! shuffle; a store written in data order (consecutive tokens of a game)
//! wants many small shards per window.

use crate::error::StoreError;
use crate::shuffle::{WindowPlan, plan_epoch, row_order};
use crate::source::ActivationSource;
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

/// How a reader hands out rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderConfig {
    /// Seed of the shard and row orders.
    pub seed: u64,
    /// Most bytes the reader's windows take at once. The reader holds two
    /// windows (the one being handed out and the next one loading), so each
    /// window gets half; a loaded row takes `4 * d_in` bytes, plus 4 for its
    /// place in the shuffle. Not counted: one 256 KiB read buffer, and the
    /// caller's batch. Every shard must fit in half the ceiling.
    pub memory_ceiling_bytes: usize,
    /// Shuffle shards and rows (otherwise rows come in store order).
    pub shuffle: bool,
    /// At the end of an epoch, go on with the next one (reshuffled) forever;
    /// otherwise hand out 0 rows from then on.
    pub cycle: bool,
}

impl ReaderConfig {
    /// Every row once, in store order, under a 1 GiB ceiling: how a store is
    /// read for evaluation, row `i` after row `i - 1`.
    pub fn in_order() -> Self {
        Self {
            seed: 0,
            memory_ceiling_bytes: 1 << 30,
            shuffle: false,
            cycle: false,
        }
    }
}

impl Default for ReaderConfig {
    /// Seed 0, a 2 GiB ceiling, shuffled, cycling.
    fn default() -> Self {
        Self {
            seed: 0,
            memory_ceiling_bytes: 2 << 30,
            shuffle: true,
            cycle: true,
        }
    }
}

/// What a position was taken with, so that resuming with another seed,
/// ceiling, shuffle setting or store is refused instead of silently handing
/// out other batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionCheck {
    /// [`ReaderConfig::seed`].
    pub seed: u64,
    /// [`ReaderConfig::memory_ceiling_bytes`] (it decides the windows).
    pub memory_ceiling_bytes: usize,
    /// [`ReaderConfig::shuffle`].
    pub shuffle: bool,
    /// Fingerprint of the store's shard list ([`Store::fingerprint`]).
    pub store: u64,
}

/// Where a reader is, between two batches: saved in checkpoints (it is
/// serde-serializable) and given to [`Store::reader_at`] to resume.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderPosition {
    /// Passes over the store begun before this one.
    pub epoch: u64,
    /// Window of that epoch; equal to the number of windows once a
    /// non-cycling reader has finished.
    pub window: usize,
    /// Rows of that window already handed out.
    pub offset: usize,
    /// What the position was taken with ([`ShuffledReader::position`] fills
    /// it in); `None` skips the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<PositionCheck>,
}

/// Bytes held by window buffers, now and at most.
#[derive(Debug, Default)]
struct MemoryGauge {
    live: AtomicU64,
    peak: AtomicU64,
}

/// The memory of one window, reused from window to window. Its capacity is
/// counted in the reader's gauge while it exists.
#[derive(Debug)]
struct WindowBuffers {
    /// Rows, row-major, in store order within the window.
    data: Vec<f32>,
    /// Order in which the rows are handed out (empty without shuffling).
    order: Vec<u32>,
    counted: u64,
    gauge: Arc<MemoryGauge>,
}

impl WindowBuffers {
    fn new(gauge: Arc<MemoryGauge>) -> Self {
        Self {
            data: Vec::new(),
            order: Vec::new(),
            counted: 0,
            gauge,
        }
    }

    /// Makes room for `values` floats and `order` positions, without growing
    /// past what the window needs.
    fn prepare(&mut self, values: usize, order: usize) {
        self.data.clear();
        self.order.clear();
        self.data.reserve_exact(values);
        self.order.reserve_exact(order);
        self.recount();
    }

    fn recount(&mut self) {
        let now = (self.data.capacity() * 4 + self.order.capacity() * 4) as u64;
        if now >= self.counted {
            let live = self
                .gauge
                .live
                .fetch_add(now - self.counted, Ordering::SeqCst)
                + (now - self.counted);
            self.gauge.peak.fetch_max(live, Ordering::SeqCst);
        } else {
            self.gauge
                .live
                .fetch_sub(self.counted - now, Ordering::SeqCst);
        }
        self.counted = now;
    }
}

impl Drop for WindowBuffers {
    fn drop(&mut self) {
        self.gauge.live.fetch_sub(self.counted, Ordering::SeqCst);
    }
}

/// A window to load, sent to the background thread.
struct Request {
    epoch: u64,
    window: usize,
    plan: WindowPlan,
    /// Buffers of a finished window, to load into without allocating.
    buffers: Option<WindowBuffers>,
}

/// A loaded window, sent back.
struct Loaded {
    epoch: u64,
    window: usize,
    rows: usize,
    buffers: WindowBuffers,
}

/// Body of the background thread: loads the windows it is asked for, one at
/// a time, until the reader is dropped.
fn loader(
    store: Store,
    config: ReaderConfig,
    gauge: Arc<MemoryGauge>,
    requests: Receiver<Request>,
    results: Sender<Result<Loaded, StoreError>>,
) {
    for request in requests {
        let result = load_window(&store, &config, &gauge, request);
        if results.send(result).is_err() {
            break;
        }
    }
}

fn load_window(
    store: &Store,
    config: &ReaderConfig,
    gauge: &Arc<MemoryGauge>,
    request: Request,
) -> Result<Loaded, StoreError> {
    let rows = request.plan.rows as usize;
    let mut buffers = request
        .buffers
        .unwrap_or_else(|| WindowBuffers::new(gauge.clone()));
    buffers.prepare(rows * store.d_in(), if config.shuffle { rows } else { 0 });
    for &shard in &request.plan.shards {
        store.load_shard_into(shard, &mut buffers.data)?;
    }
    debug_assert_eq!(
        buffers.data.len(),
        rows * store.d_in(),
        "the plan's row count is the sum of its shards' rows"
    );
    if config.shuffle {
        row_order(
            rows,
            config.seed,
            request.epoch,
            request.window as u64,
            &mut buffers.order,
        );
    }
    buffers.recount();
    Ok(Loaded {
        epoch: request.epoch,
        window: request.window,
        rows,
        buffers,
    })
}

/// Hands out a store's rows in seeded (optionally shuffled) batches: the
/// [`ActivationSource`] of a store. Created by [`Store::reader`] or
/// [`Store::reader_at`]. Rows are f32 whatever the store's dtype.
pub struct ShuffledReader {
    store: Store,
    config: ReaderConfig,
    window_budget: u64,
    epoch: u64,
    /// Windows of `epoch`.
    plan: Vec<WindowPlan>,
    /// Windows of `epoch + 1`, once computed to prefetch its first window.
    next_plan: Option<Vec<WindowPlan>>,
    window: usize,
    offset: usize,
    current: Option<Loaded>,
    /// Buffers of the last finished window, handed to the next load.
    spare: Option<WindowBuffers>,
    /// The window the background thread is loading (at most one).
    requested: Option<(u64, usize)>,
    requests: Sender<Request>,
    results: Receiver<Result<Loaded, StoreError>>,
    gauge: Arc<MemoryGauge>,
}

impl std::fmt::Debug for ShuffledReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShuffledReader")
            .field("store", &self.store.dir())
            .field("config", &self.config)
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

impl ShuffledReader {
    pub(crate) fn new(
        store: Store,
        config: ReaderConfig,
        position: ReaderPosition,
    ) -> Result<Self, StoreError> {
        let check = PositionCheck {
            seed: config.seed,
            memory_ceiling_bytes: config.memory_ceiling_bytes,
            shuffle: config.shuffle,
            store: store.fingerprint(),
        };
        if let Some(taken) = position.check
            && taken != check
        {
            return Err(StoreError::Position(format!(
                "it was taken with seed {}, memory_ceiling_bytes {}, shuffle {} on a store with fingerprint {:016x}, \
                 but this reader has seed {}, memory_ceiling_bytes {}, shuffle {} on {} (fingerprint {:016x}); \
                 the windows and orders would differ, so resume with the original settings and store",
                taken.seed,
                taken.memory_ceiling_bytes,
                taken.shuffle,
                taken.store,
                check.seed,
                check.memory_ceiling_bytes,
                check.shuffle,
                store.dir().display(),
                check.store
            )));
        }
        if config.cycle && store.rows() == 0 {
            return Err(StoreError::Config(format!(
                "{} holds no rows; a cycling reader would never hand one out",
                store.dir().display()
            )));
        }
        let window_budget = store.window_budget(&config)?;
        let plan = plan_epoch(
            store.manifest(),
            config.seed,
            config.shuffle,
            window_budget,
            position.epoch,
        );
        let window_rows = plan.get(position.window).map_or(0, |w| w.rows as usize);
        if position.window > plan.len() || position.offset > window_rows {
            return Err(StoreError::Position(format!(
                "(epoch {}, window {}, offset {}) is outside the store: epoch {} has {} windows{}",
                position.epoch,
                position.window,
                position.offset,
                position.epoch,
                plan.len(),
                plan.get(position.window).map_or(String::new(), |w| format!(
                    " and window {} has {} rows",
                    position.window, w.rows
                ))
            )));
        }
        let gauge = Arc::new(MemoryGauge::default());
        let (requests, loader_requests) = channel();
        let (loader_results, results) = channel();
        let (loader_store, loader_gauge) = (store.clone(), gauge.clone());
        std::thread::Builder::new()
            .name("kibitzer-store-loader".into())
            .spawn(move || {
                loader(
                    loader_store,
                    config,
                    loader_gauge,
                    loader_requests,
                    loader_results,
                )
            })
            .map_err(StoreError::Thread)?;
        let mut reader = Self {
            store,
            config,
            window_budget,
            epoch: position.epoch,
            plan,
            next_plan: None,
            window: position.window,
            offset: position.offset,
            current: None,
            spare: None,
            requested: None,
            requests,
            results,
            gauge,
        };
        if reader.window < reader.plan.len() && reader.offset == window_rows {
            reader.advance();
        } else if reader.window == reader.plan.len() && reader.config.cycle {
            reader.start_next_epoch();
        }
        // Start loading now, so the first window is (partly) ready by the first batch.
        if !reader.finished() {
            reader.request(reader.epoch, reader.window)?;
        }
        Ok(reader)
    }

    /// Where the reader is; [`Store::reader_at`] resumes from it.
    pub fn position(&self) -> ReaderPosition {
        ReaderPosition {
            epoch: self.epoch,
            window: self.window,
            offset: self.offset,
            check: Some(PositionCheck {
                seed: self.config.seed,
                memory_ceiling_bytes: self.config.memory_ceiling_bytes,
                shuffle: self.config.shuffle,
                store: self.store.fingerprint(),
            }),
        }
    }

    /// The store being read.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The reader's configuration.
    pub fn config(&self) -> &ReaderConfig {
        &self.config
    }

    /// The windows of the current epoch.
    pub fn windows(&self) -> &[WindowPlan] {
        &self.plan
    }

    /// Most bytes the window buffers have taken at once so far (the loaded
    /// window plus the one loading); at most `memory_ceiling_bytes`.
    pub fn peak_memory_bytes(&self) -> u64 {
        self.gauge.peak.load(Ordering::SeqCst)
    }

    /// Whether a non-cycling reader has handed out its epoch.
    pub fn finished(&self) -> bool {
        self.window >= self.plan.len()
    }

    /// Moves to epoch + 1, window 0.
    fn start_next_epoch(&mut self) {
        self.epoch += 1;
        self.plan = self
            .next_plan
            .take()
            .unwrap_or_else(|| self.plan_of(self.epoch));
        self.window = 0;
    }

    fn plan_of(&self, epoch: u64) -> Vec<WindowPlan> {
        plan_epoch(
            self.store.manifest(),
            self.config.seed,
            self.config.shuffle,
            self.window_budget,
            epoch,
        )
    }

    /// Called when the current window is used up: keeps its buffers for the
    /// next load and moves the position to the next window.
    fn advance(&mut self) {
        if let Some(done) = self.current.take() {
            self.spare = Some(done.buffers);
        }
        self.offset = 0;
        self.window += 1;
        if self.window == self.plan.len() && self.config.cycle {
            self.start_next_epoch();
        }
    }

    /// Asks the background thread for a window.
    fn request(&mut self, epoch: u64, window: usize) -> Result<(), StoreError> {
        let plan = if epoch == self.epoch {
            self.plan[window].clone()
        } else {
            debug_assert_eq!(
                (epoch, window),
                (self.epoch + 1, 0),
                "only the next epoch's first window is prefetched"
            );
            let next = match self.next_plan.take() {
                Some(next) => next,
                None => self.plan_of(epoch),
            };
            let plan = next[window].clone();
            self.next_plan = Some(next);
            plan
        };
        let request = Request {
            epoch,
            window,
            plan,
            buffers: self.spare.take(),
        };
        self.requests
            .send(request)
            .map_err(|_| StoreError::LoaderStopped)?;
        self.requested = Some((epoch, window));
        Ok(())
    }

    /// Waits for the window at the position, then asks for the one after it.
    fn receive_current(&mut self) -> Result<(), StoreError> {
        if self.requested != Some((self.epoch, self.window)) {
            // Only after a failed load: try again.
            self.request(self.epoch, self.window)?;
        }
        let received = self.results.recv().map_err(|_| StoreError::LoaderStopped);
        self.requested = None;
        let loaded = received??;
        assert_eq!(
            (loaded.epoch, loaded.window),
            (self.epoch, self.window),
            "windows are requested in reading order, one at a time, so the answer is the window at the position"
        );
        self.current = Some(loaded);
        if self.window + 1 < self.plan.len() {
            self.request(self.epoch, self.window + 1)?;
        } else if self.config.cycle {
            self.request(self.epoch + 1, 0)?;
        }
        Ok(())
    }
}

impl ActivationSource for ShuffledReader {
    type Error = StoreError;

    fn d_in(&self) -> usize {
        self.store.d_in()
    }

    /// Hands out up to `rows` rows; fewer (then 0) only at the end of a
    /// non-cycling reader's epoch. Waits only if the next window has not
    /// finished loading. On an error (a corrupt shard, an I/O error) the rows
    /// gathered by this call are dropped but the position has moved past
    /// them; to stay exact, resume from a position saved between batches.
    /// A later call retries the window that failed.
    fn next_batch(&mut self, rows: usize, out: &mut Vec<f32>) -> Result<usize, StoreError> {
        out.clear();
        let d = self.store.d_in();
        let mut got = 0;
        while got < rows && !self.finished() {
            if self.current.is_none() {
                self.receive_current()?;
            }
            let current = self
                .current
                .as_ref()
                .expect("receive_current loads the window at the position");
            let take = (current.rows - self.offset).min(rows - got);
            out.reserve(take * d);
            let data = &current.buffers.data;
            if self.config.shuffle {
                for &row in &current.buffers.order[self.offset..self.offset + take] {
                    let start = row as usize * d;
                    out.extend_from_slice(&data[start..start + d]);
                }
            } else {
                out.extend_from_slice(&data[self.offset * d..(self.offset + take) * d]);
            }
            self.offset += take;
            got += take;
            if self.offset == current.rows {
                self.advance();
            }
        }
        Ok(got)
    }
}
