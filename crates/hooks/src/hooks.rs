//! Interventions at hook sites, and the [`Hooks`] a model consults as it runs.
//!
//! A [`Hook`] reads or replaces the activation at one site: zero or mean
//! ablation, patching from another run's cache, adding a vector, scaling,
//! splicing a [`Dictionary`] in (optionally keeping its error term and
//! editing its features), or any closure. Each built-in edit can be limited
//! to some examples, positions and heads with a [`Selection`] (per-head edits
//! on attention sites). [`Hooks`] holds the hooks of a run, the sites to
//! cache, and whether to stop once the last site needed has been computed.

use crate::activation::{Activation, Axis, axes_string};
use crate::error::HookError;
use crate::site::{HookSite, describe_sites};
use burn::tensor::Tensor;
use kibitzer_sae::Dictionary;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Which examples, positions and heads an edit touches (`None`: all).
///
/// Positions are the `pos` axis, or the query axis of attention patterns and
/// scores; heads need a site with a head axis (`attn.hook_q/k/v/z/result`,
/// `attn.hook_pattern`, `attn.hook_attn_scores`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Example (batch) indices.
    pub examples: Option<Vec<usize>>,
    /// Position indices.
    pub positions: Option<Vec<usize>>,
    /// Head indices.
    pub heads: Option<Vec<usize>>,
}

impl Selection {
    /// Everything.
    pub fn all() -> Selection {
        Selection::default()
    }

    /// Only these examples.
    pub fn examples(mut self, examples: impl IntoIterator<Item = usize>) -> Selection {
        self.examples = Some(examples.into_iter().collect());
        self
    }

    /// Only these positions.
    pub fn positions(mut self, positions: impl IntoIterator<Item = usize>) -> Selection {
        self.positions = Some(positions.into_iter().collect());
        self
    }

    /// Only these heads.
    pub fn heads(mut self, heads: impl IntoIterator<Item = usize>) -> Selection {
        self.heads = Some(heads.into_iter().collect());
        self
    }

    /// Whether nothing is restricted.
    pub fn is_all(&self) -> bool {
        self.examples.is_none() && self.positions.is_none() && self.heads.is_none()
    }
}

/// Where a mean ablation's mean comes from.
// Hooks are built once per run: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum MeanOf {
    /// The mean over the examples of this batch (per position, per head).
    Batch,
    /// The mean over the examples and positions of this batch.
    BatchAndPositions,
    /// A mean computed elsewhere (e.g. over a dataset): the activation's
    /// shape without its batch axis, or with a batch axis of size 1; it is
    /// broadcast over the batch.
    Given(Activation),
}

/// A change to one dictionary feature while it is spliced in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FeatureEdit {
    /// Multiply the feature's activation by `factor` (0 ablates it).
    Scale {
        /// Feature index.
        feature: usize,
        /// Factor.
        factor: f32,
    },
    /// Set the feature's activation to `value` everywhere (steering by clamping).
    Set {
        /// Feature index.
        feature: usize,
        /// Value.
        value: f32,
    },
}

/// A dictionary shared between hooks (and threads).
pub type SharedDictionary = Arc<dyn Dictionary + Send + Sync>;

/// A built-in edit of an activation.
#[derive(Clone)]
pub enum Intervention {
    /// Replace by zeros.
    Zero,
    /// Replace by a mean.
    Mean(MeanOf),
    /// Replace by the same site's activation from another run (same shape).
    Patch(Activation),
    /// Add `scale * vector` along the last axis (steering).
    Add {
        /// The vector, as long as the last axis.
        vector: Tensor<1>,
        /// Its multiplier.
        scale: f32,
    },
    /// Multiply by a constant.
    Scale(f32),
    /// Replace the activation by a dictionary's reconstruction of it
    /// (rows as [`Activation::position_rows`] lays them out), with its
    /// features edited first; with `error_term`, add back what the
    /// dictionary misses, so that without edits the output is unchanged.
    ///
    /// Feature edits add `decode(f') - decode(f)`: exact for dictionaries
    /// whose output is affine in their features (no per-row input
    /// normalisation).
    Splice {
        /// The dictionary.
        dictionary: SharedDictionary,
        /// Keep `x - reconstruction(x)`.
        error_term: bool,
        /// Feature edits applied before decoding.
        edits: Vec<FeatureEdit>,
    },
}

impl std::fmt::Debug for Intervention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Intervention::Zero => f.write_str("Zero"),
            Intervention::Mean(m) => f.debug_tuple("Mean").field(m).finish(),
            Intervention::Patch(a) => write!(f, "Patch({:?})", a.shape()),
            Intervention::Add { vector, scale } => write!(f, "Add({:?} x {scale})", vector.dims()),
            Intervention::Scale(s) => write!(f, "Scale({s})"),
            Intervention::Splice {
                dictionary,
                error_term,
                edits,
            } => write!(
                f,
                "Splice(d_in {}, d_sae {}, error_term {error_term}, edits {edits:?})",
                dictionary.d_in(),
                dictionary.d_sae()
            ),
        }
    }
}

/// A closure hook: reads the activation and returns the one to carry on with.
pub type HookFn<'a> = Box<dyn FnMut(HookSite, Activation) -> Result<Activation, HookError> + 'a>;

/// What happens at a site.
// Hooks are built once per run: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Hook<'a> {
    /// A built-in edit, restricted to a selection.
    Edit {
        /// The edit.
        intervention: Intervention,
        /// Where it applies.
        selection: Selection,
    },
    /// Any function of the activation.
    Custom(HookFn<'a>),
}

impl<'a> Hook<'a> {
    /// Zero ablation.
    pub fn zero() -> Hook<'a> {
        Hook::edit(Intervention::Zero)
    }

    /// Mean ablation.
    pub fn mean(of: MeanOf) -> Hook<'a> {
        Hook::edit(Intervention::Mean(of))
    }

    /// Patching from another run's activation at the same site.
    pub fn patch(source: Activation) -> Hook<'a> {
        Hook::edit(Intervention::Patch(source))
    }

    /// Adds `scale * vector` along the last axis.
    pub fn add(vector: Tensor<1>, scale: f32) -> Hook<'a> {
        Hook::edit(Intervention::Add { vector, scale })
    }

    /// Multiplies by `factor`.
    pub fn scale(factor: f32) -> Hook<'a> {
        Hook::edit(Intervention::Scale(factor))
    }

    /// Splices `dictionary` in: the activation is replaced by its reconstruction.
    pub fn splice(dictionary: SharedDictionary) -> Hook<'a> {
        Hook::edit(Intervention::Splice {
            dictionary,
            error_term: false,
            edits: Vec::new(),
        })
    }

    /// Splices `dictionary` in with its error term, with feature edits: the
    /// output is the activation plus the change the edits make to the
    /// reconstruction (feature steering that leaves the rest untouched).
    pub fn edit_features(dictionary: SharedDictionary, edits: Vec<FeatureEdit>) -> Hook<'a> {
        Hook::edit(Intervention::Splice {
            dictionary,
            error_term: true,
            edits,
        })
    }

    /// Scales one dictionary feature by `factor`, keeping the error term.
    pub fn scale_feature(dictionary: SharedDictionary, feature: usize, factor: f32) -> Hook<'a> {
        Hook::edit_features(dictionary, vec![FeatureEdit::Scale { feature, factor }])
    }

    /// A built-in edit on everything.
    pub fn edit(intervention: Intervention) -> Hook<'a> {
        Hook::Edit {
            intervention,
            selection: Selection::all(),
        }
    }

    /// Any function of the activation.
    pub fn custom(
        f: impl FnMut(HookSite, Activation) -> Result<Activation, HookError> + 'a,
    ) -> Hook<'a> {
        Hook::Custom(Box::new(f))
    }

    /// A hook that only reads (the activation carries on unchanged).
    pub fn read(mut f: impl FnMut(HookSite, &Activation) + 'a) -> Hook<'a> {
        Hook::Custom(Box::new(move |site, act| {
            f(site, &act);
            Ok(act)
        }))
    }

    /// Restricts a built-in edit to a selection (a custom hook is unchanged).
    pub fn only(self, selection: Selection) -> Hook<'a> {
        match self {
            Hook::Edit { intervention, .. } => Hook::Edit {
                intervention,
                selection,
            },
            custom => custom,
        }
    }

    /// Restricts a built-in edit to some positions.
    pub fn at_positions(self, positions: impl IntoIterator<Item = usize>) -> Hook<'a> {
        let selection = self.selection().positions(positions);
        self.only(selection)
    }

    /// Restricts a built-in edit to some heads.
    pub fn on_heads(self, heads: impl IntoIterator<Item = usize>) -> Hook<'a> {
        let selection = self.selection().heads(heads);
        self.only(selection)
    }

    fn selection(&self) -> Selection {
        match self {
            Hook::Edit { selection, .. } => selection.clone(),
            Hook::Custom(_) => Selection::all(),
        }
    }

    fn apply(&mut self, site: HookSite, act: Activation) -> Result<Activation, HookError> {
        match self {
            Hook::Custom(f) => f(site, act),
            Hook::Edit {
                intervention,
                selection,
            } => {
                let name = site.to_string();
                let edited = apply_intervention(&name, intervention, &act)?;
                match act.selection_mask(&name, selection)? {
                    None => Ok(edited),
                    Some(mask) => Ok(act.map(|old| old.mask_where(mask, edited.padded().clone()))),
                }
            }
        }
    }
}

fn shape_error(site: &str, what: &str, expected: String, found: &[usize]) -> HookError {
    HookError::Shape {
        site: site.into(),
        what: what.into(),
        expected,
        found: found.to_vec(),
    }
}

fn apply_intervention(
    site: &str,
    intervention: &Intervention,
    act: &Activation,
) -> Result<Activation, HookError> {
    let pad = 4 - act.rank();
    match intervention {
        Intervention::Zero => Ok(act.zeros_like()),
        Intervention::Scale(s) => Ok(act.map(|t| t.mul_scalar(*s))),
        Intervention::Mean(of) => {
            let batch = act.axis(Axis::Batch).ok_or_else(|| HookError::NoAxis {
                site: site.into(),
                what: "mean ablation".into(),
                axis: "batch".into(),
                axes: axes_string(act.axes()),
            })?;
            let padded_dims = act.padded().dims();
            let mean: Tensor<4> = match of {
                MeanOf::Batch => act.padded().clone().mean_dim(pad + batch),
                MeanOf::BatchAndPositions => {
                    let mut t = act.padded().clone().mean_dim(pad + batch);
                    if let Some(pos) = act.axis(Axis::Pos).or_else(|| act.axis(Axis::QueryPos)) {
                        t = t.mean_dim(pad + pos);
                    }
                    t
                }
                MeanOf::Given(given) => {
                    let mut expected = act.shape().to_vec();
                    expected[batch] = 1;
                    let mut without_batch = act.shape().to_vec();
                    without_batch.remove(batch);
                    let given_shape = given.shape();
                    if given_shape == expected.as_slice() {
                        given.padded().clone()
                    } else if given_shape == without_batch.as_slice() {
                        given.padded().clone().reshape({
                            let mut d = [1usize; 4];
                            d[4 - expected.len()..].copy_from_slice(&expected);
                            d
                        })
                    } else {
                        return Err(shape_error(
                            site,
                            "the given mean",
                            format!(
                                "{without_batch:?} or {expected:?} (the activation's shape without its batch axis)"
                            ),
                            given_shape,
                        ));
                    }
                }
            };
            Ok(act.map(|_| mean.expand(padded_dims)))
        }
        Intervention::Patch(source) => {
            if source.shape() != act.shape() {
                return Err(shape_error(
                    site,
                    "the patch source",
                    format!("{:?} (the activation's shape)", act.shape()),
                    source.shape(),
                ));
            }
            Ok(act.map(|_| source.padded().clone()))
        }
        Intervention::Add { vector, scale } => {
            let last = *act
                .shape()
                .last()
                .expect("Activation::new and from_host refuse rank 0, and map keeps the rank");
            if vector.dims() != [last] {
                return Err(shape_error(
                    site,
                    "the added vector",
                    format!("[{last}] (the last axis)"),
                    &vector.dims(),
                ));
            }
            let v: Tensor<4> = vector.clone().mul_scalar(*scale).reshape([1, 1, 1, last]);
            Ok(act.map(|t| t + v))
        }
        Intervention::Splice {
            dictionary,
            error_term,
            edits,
        } => {
            let (_, width) = act.position_rows_shape();
            if dictionary.d_in() != width || dictionary.d_out() != width {
                return Err(HookError::DictionaryWidth {
                    site: site.into(),
                    d_in: dictionary.d_in(),
                    width,
                });
            }
            let x = act.position_rows();
            let forward = dictionary.forward(x.clone());
            let mut out = forward.reconstruction.clone();
            if !edits.is_empty() {
                let features = forward.features;
                let [rows, d_sae] = features.dims();
                let mut edited = features.clone();
                for edit in edits {
                    let (FeatureEdit::Scale { feature, .. } | FeatureEdit::Set { feature, .. }) =
                        *edit;
                    if feature >= d_sae {
                        return Err(HookError::IndexOutOfRange {
                            site: site.into(),
                            what: "feature".into(),
                            index: feature,
                            len: d_sae,
                        });
                    }
                    let column = edited.clone().slice([0..rows, feature..feature + 1]);
                    let new_column = match *edit {
                        FeatureEdit::Scale { factor, .. } => column.mul_scalar(factor),
                        FeatureEdit::Set { value, .. } => column.zeros_like().add_scalar(value),
                    };
                    edited = edited.slice_assign([0..rows, feature..feature + 1], new_column);
                }
                out = out + dictionary.decode(edited) - dictionary.decode(features);
            }
            if *error_term {
                out = out + (x - forward.reconstruction);
            }
            Ok(act.with_position_rows(out))
        }
    }
}

/// A standard (ReLU) SAE that reconstructs every input exactly: features
/// `relu(x)` and `relu(-x)` (`d_sae = 2 d`), decoded by `[I; -I]`. Splicing
/// it in must leave a model's outputs unchanged: a check of the splicing
/// path (row layout, reshapes, devices) independent of any trained
/// dictionary's quality.
pub fn exact_dictionary(d: usize, device: &burn::tensor::Device) -> kibitzer_sae::Sae {
    use kibitzer_sae::ops::from_host;
    let mut enc = vec![0f32; d * 2 * d];
    let mut dec = vec![0f32; 2 * d * d];
    for i in 0..d {
        enc[i * 2 * d + i] = 1.0;
        enc[i * 2 * d + d + i] = -1.0;
        dec[i * d + i] = 1.0;
        dec[(d + i) * d + i] = -1.0;
    }
    kibitzer_sae::Sae {
        config: kibitzer_sae::SaeConfig {
            apply_b_dec_to_input: false,
            ..kibitzer_sae::SaeConfig::new(kibitzer_sae::Architecture::Standard, d, 2 * d)
        },
        params: kibitzer_sae::Params {
            w_enc: from_host(enc, d, 2 * d, device),
            b_enc: from_host(vec![0.0; 2 * d], 1, 2 * d, device),
            w_dec: from_host(dec, 2 * d, d, device),
            b_dec: from_host(vec![0.0; d], 1, d, device),
            threshold: None,
            b_mag: None,
            r_mag: None,
            w_skip: None,
        },
    }
}

/// Activations recorded during a run, by site.
#[derive(Clone, Debug, Default)]
pub struct ActivationCache {
    entries: BTreeMap<HookSite, Activation>,
}

impl ActivationCache {
    /// The activation at `site`, if it was cached.
    pub fn get(&self, site: HookSite) -> Option<&Activation> {
        self.entries.get(&site)
    }

    /// The activation at `site` as a tensor of rank `D`, or an error saying
    /// the site was not cached or has another rank.
    pub fn tensor<const D: usize>(&self, site: HookSite) -> Result<Tensor<D>, HookError> {
        let act = self.get(site).ok_or_else(|| {
            HookError::Incomplete(format!(
                "{site} is not in the cache (cached: {})",
                describe_sites(&self.sites())
            ))
        })?;
        act.tensor().map_err(|e| match e {
            HookError::Rank {
                expected,
                found,
                shape,
                ..
            } => HookError::Rank {
                site: site.to_string(),
                expected,
                found,
                shape,
            },
            other => other,
        })
    }

    /// The cached sites, in forward order.
    pub fn sites(&self) -> Vec<HookSite> {
        self.entries.keys().copied().collect()
    }

    /// Number of cached sites.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records (or replaces) an activation.
    pub fn insert(&mut self, site: HookSite, activation: Activation) {
        self.entries.insert(site, activation);
    }

    /// Takes the activation at `site` out of the cache.
    pub fn remove(&mut self, site: HookSite) -> Option<Activation> {
        self.entries.remove(&site)
    }

    /// The cached sites and activations, in forward order.
    pub fn iter(&self) -> impl Iterator<Item = (HookSite, &Activation)> {
        self.entries.iter().map(|(s, a)| (*s, a))
    }
}

/// The hooks, cache requests and stopping rule of a run.
///
/// Models call [`Hooks::visit`] at every site as they run; everything else
/// is for users. Caching records the activation after this site's hooks ran
/// (what flows on), as TransformerLens's cache does when added last.
#[derive(Default)]
pub struct Hooks<'a> {
    hooks: Vec<(HookSite, Hook<'a>)>,
    cache_sites: Vec<HookSite>,
    cache: ActivationCache,
    stop_early: bool,
    last_needed: Option<HookSite>,
    stopped: bool,
    active: Vec<HookSite>,
}

impl<'a> Hooks<'a> {
    /// No hooks, nothing cached.
    pub fn new() -> Hooks<'a> {
        Hooks::default()
    }

    /// Adds a hook at `site` (hooks at one site run in the order added).
    pub fn with(mut self, site: HookSite, hook: Hook<'a>) -> Hooks<'a> {
        self.add(site, hook);
        self
    }

    /// Adds a hook at `site`.
    pub fn add(&mut self, site: HookSite, hook: Hook<'a>) {
        self.hooks.push((site, hook));
        self.active.push(site);
    }

    /// Caches the activations at `sites`.
    pub fn caching(mut self, sites: impl IntoIterator<Item = HookSite>) -> Hooks<'a> {
        for site in sites {
            if !self.cache_sites.contains(&site) {
                self.cache_sites.push(site);
                self.active.push(site);
            }
        }
        self
    }

    /// Stops the forward pass right after the last hooked or cached site
    /// (the output is then `None`): collecting activations costs only the
    /// layers up to them.
    pub fn stopping_early(mut self) -> Hooks<'a> {
        self.stop_early = true;
        self
    }

    /// The sites this run hooks or caches.
    pub fn sites(&self) -> Vec<HookSite> {
        let mut sites = self.active.clone();
        sites.sort();
        sites.dedup();
        sites
    }

    /// Checks every hooked and cached site against the model's sites (in
    /// forward order), finds the last one needed, and clears the previous
    /// run's cache and stop flag. Called by [`crate::HookedModel`]'s run
    /// methods before each pass.
    pub fn prepare(&mut self, model_sites: &[HookSite]) -> Result<(), HookError> {
        let mut last: Option<(usize, HookSite)> = None;
        for &site in &self.active {
            let Some(index) = model_sites.iter().position(|s| *s == site) else {
                return Err(HookError::UnknownSite {
                    site: site.to_string(),
                    available: describe_sites(model_sites),
                });
            };
            if last.is_none_or(|(i, _)| index > i) {
                last = Some((index, site));
            }
        }
        self.last_needed = last.map(|(_, s)| s);
        self.stopped = false;
        self.cache = ActivationCache::default();
        Ok(())
    }

    /// Whether anything happens at `site` (models skip computing optional
    /// sites, such as per-head results, that nobody asked for).
    pub fn wants(&self, site: HookSite) -> bool {
        self.active.contains(&site)
    }

    /// Whether the run has passed the last site it needs and should stop.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Runs the hooks at `site` on `tensor` and caches the result if asked.
    /// Returns `None` once the run should stop (the model returns at once).
    pub fn visit<const D: usize>(
        &mut self,
        site: HookSite,
        tensor: Tensor<D>,
        axes: [Axis; D],
    ) -> Result<Option<Tensor<D>>, HookError> {
        if !self.wants(site) {
            return Ok(Some(tensor));
        }
        let mut act = Activation::new(tensor, axes);
        let shape = act.shape().to_vec();
        for (s, hook) in self.hooks.iter_mut() {
            if *s == site {
                act = hook.apply(site, act)?;
                if act.shape() != shape.as_slice() {
                    return Err(HookError::Custom {
                        site: site.to_string(),
                        message: format!(
                            "a hook changed the shape from {shape:?} to {:?}",
                            act.shape()
                        ),
                    });
                }
            }
        }
        if self.cache_sites.contains(&site) {
            self.cache.insert(site, act.clone());
        }
        if self.stop_early && self.last_needed == Some(site) {
            self.stopped = true;
            return Ok(None);
        }
        Ok(Some(
            act.into_tensor()
                .expect("the shape, hence the rank, was checked above"),
        ))
    }

    /// Takes the cache of the last run.
    pub fn take_cache(&mut self) -> ActivationCache {
        std::mem::take(&mut self.cache)
    }
}
