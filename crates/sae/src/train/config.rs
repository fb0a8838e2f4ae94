//! Training settings: one [`TrainConfig`] for every architecture, with the
//! defaults of the paper each architecture comes from.

use crate::arch::{Architecture, L0Penalty};
use crate::error::ConfigError;

/// Adam's hyper-parameters (PyTorch's defaults).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamConfig {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// p-annealing (Karvonen et al. 2024, "Measuring progress in dictionary
/// learning for language model interpretability with board game models"):
/// the sparsity penalty is `sum_j (f_j ||W_dec_j||)^p` with `p` lowered from
/// `p_start` to `p_end` in `updates` equal steps spread evenly from
/// `start_fraction` of training to its end. At each change the coefficient is
/// multiplied by `Lp_old / Lp_new` measured on the current batch, so the
/// penalty's value is continuous across the change (as dictionary_learning's
/// `PAnnealTrainer` does with its queue of recent batches).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PAnneal {
    /// Exponent at the start (1: L1).
    pub p_start: f64,
    /// Exponent at the end of training.
    pub p_end: f64,
    /// Fraction of the steps after which annealing begins.
    pub start_fraction: f64,
    /// Number of changes of `p`.
    pub updates: usize,
}

impl Default for PAnneal {
    fn default() -> Self {
        // dictionary_learning's PAnnealTrainer defaults.
        Self {
            p_start: 1.0,
            p_end: 0.2,
            start_fraction: 0.2,
            updates: 10,
        }
    }
}

impl PAnneal {
    /// The exponent in force at `step` of `total` steps.
    pub fn p_at(&self, step: usize, total: usize) -> f64 {
        let start = (self.start_fraction * total as f64) as usize;
        if step < start || self.updates == 0 || total <= start {
            return self.p_start;
        }
        let span = (total - start) as f64;
        let done = (((step - start) as f64 / span) * self.updates as f64).floor() as usize + 1;
        let done = done.min(self.updates);
        self.p_start + (self.p_end - self.p_start) * done as f64 / self.updates as f64
    }
}

/// Everything the trainer needs besides the dictionary's shape. Build one with
/// [`TrainConfig::for_architecture`] to get the paper defaults, then override.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// Rows per batch.
    pub batch_size: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// Linear learning-rate warm-up from 0 over this many steps.
    pub lr_warmup_steps: usize,
    /// Step from which the learning rate decays linearly to 0 at the end
    /// (`None`: no decay).
    pub lr_decay_start: Option<usize>,
    /// Sparsity coefficient (L1/Lp coefficient; L0 coefficient for JumpReLU;
    /// unused by TopK and BatchTopK).
    pub sparsity_coefficient: f64,
    /// Linear warm-up of the sparsity coefficient from 0 over this many steps.
    pub sparsity_warmup_steps: usize,
    /// Adam settings.
    pub adam: AdamConfig,
    /// Clip the global gradient norm to this value (`None`: no clipping).
    pub grad_clip_norm: Option<f64>,
    /// Anneal the Lp exponent (standard and gated SAEs only).
    pub p_anneal: Option<PAnneal>,
    /// A feature that has not fired for this many rows counts as dead.
    pub dead_after_rows: u64,
    /// TopK/BatchTopK: weight of the AuxK loss.
    pub auxk_alpha: f64,
    /// TopK/BatchTopK: dead latents used by AuxK (`None`: `d_in / 2`).
    pub k_aux: Option<usize>,
    /// BatchTopK: decay of the exponential moving average of the smallest
    /// kept activation, the inference threshold.
    pub threshold_beta: f64,
    /// BatchTopK: step from which the threshold average is updated.
    pub threshold_start_step: usize,
    /// Standard SAE: resample dead features every this many steps
    /// (Anthropic's 2023 recipe; `None`: never).
    pub resample_every: Option<usize>,
    /// Scale activations to mean norm `sqrt(d_in)` during training (estimated
    /// from a sample, folded into the weights on save).
    pub normalize_activations: bool,
    /// Set `b_dec` to the geometric median of the first batch before the
    /// first step (Anthropic's recipe; dictionary_learning and SAELens do the
    /// same). Autoencoders only: a transcoder's `b_dec` lives in the output
    /// space.
    pub init_b_dec_geometric_median: bool,
    /// JumpReLU: train towards this L0. The sparsity term becomes
    /// `(L0 / target - 1)^2` (dictionary_learning's `JumpReluTrainer` with
    /// `target_l0`), which pulls the thresholds up when too many features
    /// fire and down when too few do, instead of the paper's plain `L0`
    /// that only pushes them up. `None`: the paper's `L0` penalty.
    pub jumprelu_target_l0: Option<f64>,
    /// JumpReLU: the L0 term's straight-through gradient also reaches the
    /// pre-activations (`d H(pre - theta) / d pre = K / bandwidth`), so the
    /// encoder is trained towards the sparsity the penalty asks for, not
    /// only the thresholds. The paper passes it to the thresholds only;
    /// Anthropic's January 2025 update passes it to every parameter.
    pub jumprelu_l0_to_encoder: bool,
    /// JumpReLU: before the first step, set each feature's threshold and
    /// encoder bias from the first batch so that it fires on
    /// `init_l0 / d_sae` of the rows: training starts at this L0 rather
    /// than at the near-dense L0 of the paper's threshold of 0.001.
    /// Thresholds move by about the learning rate per step, so without it a
    /// short run ends before they reach the scale of the pre-activations.
    /// The bias shift is the initialisation of Anthropic's January 2025
    /// update ("Dictionary learning optimization techniques": `b_enc` from
    /// that quantile of the pre-activations); kibitzer also puts the
    /// threshold at the standard deviation of each feature's
    /// pre-activation, so the jump is at the scale of its activations and
    /// the threshold can move both ways. `None`: the architecture's initial
    /// threshold and a zero bias.
    pub jumprelu_init_l0: Option<f64>,
    /// TopK/BatchTopK: train a Matryoshka dictionary (Bussmann, Nabeshima,
    /// Karvonen & Nanda 2025, "Learning multi-level features with
    /// Matryoshka sparse autoencoders"): besides the whole dictionary, each
    /// prefix of features `0..w` for `w` in this list reconstructs the
    /// target on its own, and the loss is the sum of every level's
    /// reconstruction loss (SAELens's `MatryoshkaBatchTopKTrainingSAE`, whose
    /// `matryoshka_widths` these are; dictionary_learning's trainer averages
    /// weighted levels instead, the same gradient up to a constant per level).
    /// Ascending widths of at least 1; `d_sae` itself may be given and is
    /// implied when absent. The selection (TopK per row, BatchTopK per
    /// batch) is over the whole dictionary, as in both libraries, so
    /// inference is unchanged: a Matryoshka BatchTopK is a BatchTopK SAE
    /// whose first features are trained to stand alone. `None`: one level.
    pub matryoshka_widths: Option<Vec<usize>>,
    /// Seed of everything random in training (initialisation, resampling).
    pub seed: u64,
}

/// Settings of a command line that win over a config file, for
/// [`TrainConfig::layered`]. `steps` and `seed` are always set; the rest
/// only when given.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TrainFlags {
    /// Optimiser steps.
    pub steps: usize,
    /// Seed of training.
    pub seed: u64,
    /// Rows per batch.
    pub batch_size: Option<usize>,
    /// Peak learning rate.
    pub lr: Option<f64>,
    /// Sparsity coefficient (`--l1`).
    pub sparsity_coefficient: Option<f64>,
    /// p-annealing (the `panneal` family).
    pub p_anneal: Option<PAnneal>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            lr: 5e-5,
            batch_size: 4096,
            steps: 10_000,
            lr_warmup_steps: 1000,
            lr_decay_start: Some(8000),
            sparsity_coefficient: 5.0,
            sparsity_warmup_steps: 500,
            adam: AdamConfig::default(),
            grad_clip_norm: Some(1.0),
            p_anneal: None,
            dead_after_rows: 10_000_000,
            auxk_alpha: 1.0 / 32.0,
            k_aux: None,
            threshold_beta: 0.999,
            threshold_start_step: 1000,
            resample_every: None,
            normalize_activations: true,
            init_b_dec_geometric_median: true,
            jumprelu_target_l0: None,
            jumprelu_l0_to_encoder: false,
            jumprelu_init_l0: None,
            matryoshka_widths: None,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// The defaults of each architecture's paper (as dictionary_learning
    /// encodes them), for `steps` optimiser steps:
    ///
    /// | architecture | lr | sparsity | other |
    /// |---|---|---|---|
    /// | standard (April 2024 update) | 5e-5 | L1 5.0, warm-up 5% | decay over the last 20%, clip 1.0 |
    /// | gated | 5e-5 | L1 on the gate 1.0 | unit-norm decoder |
    /// | TopK / BatchTopK | `2e-4 / sqrt(d_sae / 16384)` | none | AuxK 1/32, `k_aux = d_in/2`, dead after 10M rows |
    /// | JumpReLU | 7e-5 | L0 1.0, warm-up 5% | bandwidth 0.001, threshold 0.001 |
    ///
    /// Every architecture warms the learning rate up over the first 5% of
    /// steps (at most 1000) and decays it linearly to zero over the last 20%.
    pub fn for_architecture(arch: &Architecture, d_sae: usize, steps: usize) -> Self {
        let warmup = (steps / 20).min(1000);
        let base = Self {
            steps,
            lr_warmup_steps: warmup,
            lr_decay_start: Some(steps - steps / 5),
            sparsity_warmup_steps: steps / 20,
            threshold_start_step: warmup,
            ..Self::default()
        };
        match arch {
            Architecture::Standard => base,
            Architecture::Gated => Self {
                sparsity_coefficient: 1.0,
                ..base
            },
            Architecture::TopK { .. } | Architecture::BatchTopK { .. } => Self {
                lr: 2e-4 / (d_sae as f64 / 16384.0).sqrt(),
                sparsity_coefficient: 0.0,
                grad_clip_norm: None,
                ..base
            },
            Architecture::JumpRelu { .. } => Self {
                lr: 7e-5,
                sparsity_coefficient: 1.0,
                ..base
            },
        }
    }

    /// The training config of a command line, in the documented order: the
    /// architecture's defaults ([`TrainConfig::for_architecture`]) for
    /// `flags.steps`, then the fields `file` sets (a config file's table,
    /// e.g. parsed TOML; tables such as `[adam]` field by field), then the
    /// flags given. Every field neither sets keeps the architecture's
    /// default, `None`s included (TopK's `grad_clip_norm`). An unknown field
    /// of `file`, or one of the wrong type, is an error naming it.
    pub fn layered(
        arch: &Architecture,
        d_sae: usize,
        file: Option<&serde_json::Value>,
        flags: &TrainFlags,
    ) -> Result<Self, serde_json::Error> {
        let mut c = Self::for_architecture(arch, d_sae, flags.steps);
        if let Some(file) = file {
            c = c.overlaid(file)?;
        }
        c.steps = flags.steps;
        c.seed = flags.seed;
        if let Some(b) = flags.batch_size {
            c.batch_size = b;
        }
        if let Some(lr) = flags.lr {
            c.lr = lr;
        }
        if let Some(s) = flags.sparsity_coefficient {
            c.sparsity_coefficient = s;
        }
        if let Some(p) = flags.p_anneal {
            c.p_anneal = Some(p);
        }
        Ok(c)
    }

    /// This config with the fields `file` sets replaced (tables field by
    /// field) and every other field kept. JSON is the common ground because
    /// it keeps `None`s, which TOML cannot write (a dropped field would take
    /// the plain [`Default`] instead of the architecture's).
    pub fn overlaid(self, file: &serde_json::Value) -> Result<Self, serde_json::Error> {
        fn overlay(base: &mut serde_json::Value, file: &serde_json::Value) {
            match (base, file) {
                (serde_json::Value::Object(base), serde_json::Value::Object(file)) => {
                    for (k, v) in file {
                        match base.get_mut(k) {
                            Some(slot) => overlay(slot, v),
                            None => {
                                base.insert(k.clone(), v.clone());
                            }
                        }
                    }
                }
                (slot, v) => *slot = v.clone(),
            }
        }
        let mut merged = serde_json::to_value(&self)?;
        overlay(&mut merged, file);
        serde_json::from_value(merged)
    }

    /// The learning rate at `step` (0-based): linear warm-up, constant, then
    /// linear decay to 0 at `steps`.
    pub fn lr_at(&self, step: usize) -> f64 {
        let mut factor = 1.0;
        if self.lr_warmup_steps > 0 && step < self.lr_warmup_steps {
            factor = (step + 1) as f64 / self.lr_warmup_steps as f64;
        }
        if let Some(start) = self.lr_decay_start {
            if step >= start && self.steps > start {
                factor *= (self.steps - step) as f64 / (self.steps - start) as f64;
            }
        }
        self.lr * factor
    }

    /// The sparsity coefficient's warm-up factor at `step`.
    pub fn sparsity_warmup_at(&self, step: usize) -> f64 {
        if self.sparsity_warmup_steps == 0 {
            1.0
        } else {
            ((step + 1) as f64 / self.sparsity_warmup_steps as f64).min(1.0)
        }
    }

    /// JumpReLU's L0 penalty as these settings ask for it
    /// ([`Self::jumprelu_target_l0`], [`Self::jumprelu_l0_to_encoder`]).
    pub fn l0_penalty(&self) -> L0Penalty {
        L0Penalty {
            target: self.jumprelu_target_l0,
            to_encoder: self.jumprelu_l0_to_encoder,
        }
    }

    /// The nested levels a Matryoshka dictionary of `d_sae` features trains
    /// ([`Self::matryoshka_widths`] with `d_sae` last), or `None` for a plain
    /// one.
    pub fn matryoshka_levels(&self, d_sae: usize) -> Option<Vec<usize>> {
        self.matryoshka_widths.as_ref().map(|widths| {
            let mut levels: Vec<usize> = widths.iter().copied().filter(|&w| w < d_sae).collect();
            levels.push(d_sae);
            levels
        })
    }

    /// kibitzer's default nested widths for a Matryoshka dictionary of
    /// `d_sae` features when none are given: three inner levels, each a
    /// quarter of the next (`d_sae/64, d_sae/16, d_sae/4`; smaller
    /// dictionaries keep the levels of at least 4 features). SAELens asks
    /// for the widths and dictionary_learning for group fractions; this is
    /// our choice, a geometric progression like the paper's nested sizes.
    pub fn default_matryoshka_widths(d_sae: usize) -> Vec<usize> {
        let mut widths: Vec<usize> = [64, 16, 4]
            .iter()
            .map(|div| d_sae / div)
            .filter(|&w| w >= 4)
            .collect();
        widths.dedup();
        widths
    }

    /// Refuses the Matryoshka widths for a dictionary that is not TopK or
    /// BatchTopK, or widths beyond its `d_sae`, naming the field.
    pub fn check_matryoshka_fields(
        &self,
        architecture: &Architecture,
        d_sae: usize,
    ) -> Result<(), ConfigError> {
        let Some(widths) = &self.matryoshka_widths else {
            return Ok(());
        };
        if !matches!(
            architecture,
            Architecture::TopK { .. } | Architecture::BatchTopK { .. }
        ) {
            return Err(ConfigError::NotForArchitecture {
                field: "matryoshka_widths",
                applies_to: "TopK and BatchTopK dictionaries",
                architecture: architecture.name(),
            });
        }
        if let Some(&w) = widths.iter().find(|&&w| w > d_sae) {
            return Err(ConfigError::Training {
                field: "matryoshka_widths",
                reason: format!("width {w} is larger than the dictionary (d_sae = {d_sae})"),
            });
        }
        Ok(())
    }

    /// Refuses the JumpReLU settings for a dictionary of another
    /// architecture, naming the field.
    pub fn check_jumprelu_fields(&self, architecture: &Architecture) -> Result<(), ConfigError> {
        if matches!(architecture, Architecture::JumpRelu { .. }) {
            return Ok(());
        }
        for (field, set) in [
            ("jumprelu_target_l0", self.jumprelu_target_l0.is_some()),
            ("jumprelu_init_l0", self.jumprelu_init_l0.is_some()),
            ("jumprelu_l0_to_encoder", self.jumprelu_l0_to_encoder),
        ] {
            if set {
                return Err(ConfigError::NotForArchitecture {
                    field,
                    applies_to: "JumpReLU dictionaries",
                    architecture: architecture.name(),
                });
            }
        }
        Ok(())
    }

    /// Checks values a user could get wrong, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, reason: &str| {
            Err(ConfigError::Training {
                field,
                reason: reason.to_owned(),
            })
        };
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", &format!("must be a positive number, got {}", self.lr));
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1");
        }
        if self.steps == 0 {
            return bad("steps", "must be at least 1");
        }
        if !(self.sparsity_coefficient.is_finite() && self.sparsity_coefficient >= 0.0) {
            return bad("sparsity_coefficient", "must be a non-negative number");
        }
        if let Some(c) = self.grad_clip_norm
            && !(c.is_finite() && c > 0.0)
        {
            return bad("grad_clip_norm", "must be positive");
        }
        if let Some(pa) = &self.p_anneal {
            if !(pa.p_end > 0.0 && pa.p_end <= pa.p_start && pa.p_start <= 1.0) {
                return bad("p_anneal", "needs 0 < p_end <= p_start <= 1");
            }
            if !(0.0..1.0).contains(&pa.start_fraction) {
                return bad("p_anneal.start_fraction", "must be in [0, 1)");
            }
        }
        if !(0.0..1.0).contains(&self.threshold_beta) {
            return bad("threshold_beta", "must be in [0, 1)");
        }
        if let Some(widths) = &self.matryoshka_widths {
            if widths.is_empty() {
                return bad(
                    "matryoshka_widths",
                    "needs at least one nested width (leave it out for a plain dictionary)",
                );
            }
            if widths[0] == 0 || widths.windows(2).any(|w| w[0] >= w[1]) {
                return bad(
                    "matryoshka_widths",
                    &format!("must be strictly increasing widths of at least 1, got {widths:?}"),
                );
            }
        }
        for (field, value) in [
            ("jumprelu_target_l0", self.jumprelu_target_l0),
            ("jumprelu_init_l0", self.jumprelu_init_l0),
        ] {
            if let Some(v) = value
                && !(v.is_finite() && v > 0.0)
            {
                return bad(
                    field,
                    &format!("must be a positive number of features, got {v}"),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every architecture (p-annealing is the standard one with
    /// `p_anneal`), with its name.
    fn architectures() -> Vec<(&'static str, Architecture)> {
        vec![
            ("standard", Architecture::Standard),
            ("gated", Architecture::Gated),
            ("topk", Architecture::TopK { k: 8 }),
            ("batchtopk", Architecture::BatchTopK { k: 8 }),
            ("jumprelu", Architecture::JumpRelu { bandwidth: 0.001 }),
        ]
    }

    fn flags() -> TrainFlags {
        TrainFlags {
            steps: 200,
            seed: 7,
            ..TrainFlags::default()
        }
    }

    #[test]
    fn a_file_that_sets_only_lr_keeps_topk_without_gradient_clipping() {
        let file = serde_json::json!({ "lr": 0.001 });
        for arch in [
            Architecture::TopK { k: 8 },
            Architecture::BatchTopK { k: 8 },
        ] {
            let c = TrainConfig::layered(&arch, 64, Some(&file), &flags()).unwrap();
            assert_eq!(c.lr, 0.001);
            assert_eq!(c.grad_clip_norm, None, "{arch:?}");
        }
    }

    #[test]
    fn file_fields_replace_the_architecture_defaults_and_keep_the_rest() {
        // A partial `[adam]` table replaces only the field it names.
        let file = serde_json::json!({ "lr": 0.001, "adam": { "beta2": 0.99 } });
        for (name, arch) in architectures() {
            let defaults = TrainConfig {
                seed: 7,
                ..TrainConfig::for_architecture(&arch, 64, 200)
            };
            let c = TrainConfig::layered(&arch, 64, Some(&file), &flags()).unwrap();
            let expected = TrainConfig {
                lr: 0.001,
                adam: AdamConfig {
                    beta2: 0.99,
                    ..defaults.adam
                },
                ..defaults.clone()
            };
            assert_eq!(c, expected, "{name}");
            // Without a file: the architecture's defaults.
            let c = TrainConfig::layered(&arch, 64, None, &flags()).unwrap();
            assert_eq!(c, defaults, "{name}");
        }
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_the_defaults() {
        let file = serde_json::json!({
            "lr": 0.001,
            "batch_size": 64,
            "sparsity_coefficient": 2.0,
            "grad_clip_norm": 0.5,
            "steps": 5,
            "seed": 5,
            "p_anneal": { "p_start": 1.0, "p_end": 0.5, "start_fraction": 0.1, "updates": 3 },
        });
        let p_anneal = PAnneal {
            p_end: 0.3,
            ..PAnneal::default()
        };
        for (name, arch) in architectures() {
            let given = TrainFlags {
                batch_size: Some(128),
                lr: Some(0.002),
                sparsity_coefficient: Some(3.0),
                p_anneal: Some(p_anneal),
                ..flags()
            };
            let c = TrainConfig::layered(&arch, 64, Some(&file), &given).unwrap();
            let defaults = TrainConfig::for_architecture(&arch, 64, 200);
            assert_eq!(
                (c.steps, c.seed, c.batch_size, c.lr, c.sparsity_coefficient),
                (200, 7, 128, 0.002, 3.0),
                "{name}: flags win"
            );
            assert_eq!(c.p_anneal, Some(p_anneal), "{name}");
            assert_eq!(c.grad_clip_norm, Some(0.5), "{name}: file over defaults");
            assert_eq!(c.lr_warmup_steps, defaults.lr_warmup_steps, "{name}");
            assert_eq!(c.auxk_alpha, defaults.auxk_alpha, "{name}");
            // Flags not given leave the file's values.
            let c = TrainConfig::layered(&arch, 64, Some(&file), &flags()).unwrap();
            assert_eq!(
                (c.steps, c.seed, c.batch_size, c.lr, c.sparsity_coefficient),
                (200, 7, 64, 0.001, 2.0),
                "{name}: file values"
            );
            assert_eq!(c.p_anneal.map(|p| p.p_end), Some(0.5), "{name}");
        }
    }

    #[test]
    fn an_unknown_or_mistyped_file_field_is_an_error_naming_it() {
        let arch = Architecture::Standard;
        let e = TrainConfig::layered(
            &arch,
            64,
            Some(&serde_json::json!({ "lr_x": 1.0 })),
            &flags(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("lr_x"), "{e}");
        let e = TrainConfig::layered(
            &arch,
            64,
            Some(&serde_json::json!({ "lr": "fast" })),
            &flags(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("fast"), "{e}");
    }

    #[test]
    fn lr_schedule_warms_up_holds_and_decays_to_zero() {
        let c = TrainConfig {
            lr: 1.0,
            steps: 100,
            lr_warmup_steps: 10,
            lr_decay_start: Some(80),
            ..Default::default()
        };
        assert!((c.lr_at(0) - 0.1).abs() < 1e-12);
        assert!((c.lr_at(9) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(50) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(90) - 0.5).abs() < 1e-12);
        assert!(c.lr_at(99) > 0.0 && c.lr_at(99) <= 0.05 + 1e-12);
    }

    #[test]
    fn p_anneal_steps_down_to_p_end() {
        let pa = PAnneal {
            p_start: 1.0,
            p_end: 0.5,
            start_fraction: 0.5,
            updates: 5,
        };
        assert_eq!(pa.p_at(0, 100), 1.0);
        assert_eq!(pa.p_at(49, 100), 1.0);
        assert!((pa.p_at(50, 100) - 0.9).abs() < 1e-12);
        assert!((pa.p_at(99, 100) - 0.5).abs() < 1e-12);
        let mut last = 1.0;
        for s in 0..100 {
            let p = pa.p_at(s, 100);
            assert!(p <= last + 1e-12);
            last = p;
        }
    }

    #[test]
    fn validation_names_the_field() {
        let c = TrainConfig {
            lr: -1.0,
            ..Default::default()
        };
        let err = c.validate().unwrap_err();
        assert_eq!(err.field(), "lr");
        assert!(err.to_string().contains("`lr`"), "{err}");
        let c = TrainConfig {
            p_anneal: Some(PAnneal {
                p_end: 1.5,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().field(), "p_anneal");
        assert!(
            TrainConfig::for_architecture(&Architecture::TopK { k: 8 }, 4096, 1000)
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn jumprelu_l0_settings_are_refused_where_they_do_not_apply() {
        use crate::train::DictTrainer;
        use crate::{Sae, SaeConfig};
        let device = burn::tensor::Device::flex();
        let trainer = |arch: Architecture, target: Option<f64>, init: Option<f64>| {
            let sae = Sae::init(SaeConfig::new(arch.clone(), 4, 16), 0, &device);
            let config = TrainConfig {
                jumprelu_target_l0: target,
                jumprelu_init_l0: init,
                jumprelu_l0_to_encoder: target.is_some(),
                ..TrainConfig::for_architecture(&arch, 16, 10)
            };
            DictTrainer::new(sae, config).err().map(|e| e.to_string())
        };
        let jumprelu = Architecture::JumpRelu { bandwidth: 0.05 };
        assert_eq!(trainer(jumprelu.clone(), Some(4.0), Some(4.0)), None);
        let err = trainer(Architecture::TopK { k: 4 }, Some(4.0), None).unwrap();
        assert!(
            err.contains("jumprelu_target_l0") && err.contains("JumpReLU"),
            "{err}"
        );
        let err = trainer(Architecture::Standard, None, Some(4.0)).unwrap();
        assert!(err.contains("jumprelu_init_l0"), "{err}");
        let err = trainer(jumprelu.clone(), Some(-1.0), None).unwrap();
        assert!(
            err.contains("jumprelu_target_l0") && err.contains("-1"),
            "{err}"
        );
        let err = trainer(jumprelu, None, Some(16.0)).unwrap();
        assert!(
            err.contains("jumprelu_init_l0") && err.contains("d_sae (16)"),
            "{err}"
        );
    }

    #[test]
    fn trainer_refuses_bad_k_bandwidth_and_zero_d_sae_naming_the_field() {
        use crate::train::DictTrainer;
        use crate::{Sae, SaeConfig};
        let device = burn::tensor::Device::flex();
        let trainer = |arch: Architecture, d_sae: usize| {
            let sae = Sae::init(SaeConfig::new(arch.clone(), 4, d_sae.max(1)), 0, &device);
            let sae = Sae {
                config: SaeConfig::new(arch.clone(), 4, d_sae),
                params: sae.params,
            };
            DictTrainer::new(sae, TrainConfig::for_architecture(&arch, d_sae, 10))
        };
        for (arch, d_sae, field) in [
            (Architecture::TopK { k: 0 }, 8, "k"),
            (Architecture::TopK { k: 9 }, 8, "k"),
            (Architecture::BatchTopK { k: 0 }, 8, "k"),
            (Architecture::JumpRelu { bandwidth: -1.0 }, 8, "bandwidth"),
            (Architecture::JumpRelu { bandwidth: 0.0 }, 8, "bandwidth"),
            (
                Architecture::JumpRelu {
                    bandwidth: f64::NAN,
                },
                8,
                "bandwidth",
            ),
            (Architecture::TopK { k: 4 }, 0, "d_sae"),
        ] {
            let err = trainer(arch.clone(), d_sae)
                .err()
                .unwrap_or_else(|| panic!("{arch:?} accepted"));
            assert!(
                matches!(err, ConfigError::Sae { field: f, .. } if f == field),
                "{arch:?} d_sae {d_sae}: {err}"
            );
            assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
        }
        assert!(trainer(Architecture::TopK { k: 8 }, 8).is_ok());
        assert!(trainer(Architecture::JumpRelu { bandwidth: 0.001 }, 8).is_ok());
    }
}
