//! The [`HookedModel`] trait: a model whose forward pass can be read and
//! edited at named sites.

use crate::error::HookError;
use crate::hooks::{ActivationCache, Hooks};
use crate::site::{HookSite, describe_sites};

/// A model with named hook sites.
///
/// Implementors write one forward pass, [`HookedModel::forward_hooked`],
/// that hands every site's tensor to [`Hooks::visit`]; the provided methods
/// (cache, hooks, early stopping, site lookup) are built on it. Tensors live
/// on whatever device the model's weights live on (CPU, CUDA, wgpu; with
/// autodiff too, so hooks also serve attribution).
pub trait HookedModel {
    /// What one forward pass reads (token ids, boards...).
    type Input;
    /// What one forward pass returns (logits, policy and value...).
    type Output;

    /// Every hook site, in forward order.
    fn sites(&self) -> Vec<HookSite>;

    /// The forward pass, calling [`Hooks::visit`] at every site in
    /// [`HookedModel::sites`] order; returns `Ok(None)` as soon as `visit`
    /// does (the run stopped after the last site needed). Call it through
    /// the provided methods, which check the sites first.
    fn forward_hooked(
        &self,
        input: &Self::Input,
        hooks: &mut Hooks<'_>,
    ) -> Result<Option<Self::Output>, HookError>;

    /// A rough upper bound on the bytes one example of `input`-like data
    /// occupies at the peak of a forward pass, used to size batches under a
    /// memory ceiling.
    fn bytes_per_example(&self) -> usize;

    /// The site called `name`, if this model has it; otherwise an error
    /// listing the valid names (the model's own sites).
    fn site(&self, name: &str) -> Result<HookSite, HookError> {
        let sites = self.sites();
        let site: HookSite = name.parse().map_err(|_| HookError::UnknownSite {
            site: name.to_string(),
            available: describe_sites(&sites),
        })?;
        if sites.contains(&site) {
            Ok(site)
        } else {
            Err(HookError::UnknownSite {
                site: name.to_string(),
                available: describe_sites(&sites),
            })
        }
    }

    /// The plain forward pass.
    fn forward(&self, input: &Self::Input) -> Result<Self::Output, HookError> {
        let mut hooks = Hooks::new();
        self.run_with_hooks(input, &mut hooks)
    }

    /// Runs with `hooks` (which may also cache sites: take the cache with
    /// [`Hooks::take_cache`]). Errors if the hooks stop the run early.
    fn run_with_hooks(
        &self,
        input: &Self::Input,
        hooks: &mut Hooks<'_>,
    ) -> Result<Self::Output, HookError> {
        hooks.prepare(&self.sites())?;
        self.forward_hooked(input, hooks)?.ok_or_else(|| {
            HookError::Incomplete("the run stopped early (Hooks::stopping_early), so there is no output; use HookedModel::collect".into())
        })
    }

    /// Runs once, caching the activations at `sites`.
    fn run_with_cache(
        &self,
        input: &Self::Input,
        sites: &[HookSite],
    ) -> Result<(Self::Output, ActivationCache), HookError> {
        let mut hooks = Hooks::new().caching(sites.iter().copied());
        let output = self.run_with_hooks(input, &mut hooks)?;
        Ok((output, hooks.take_cache()))
    }

    /// Caches the activations at `sites` and stops right after the last of
    /// them: the cheap way to collect activations.
    fn collect(
        &self,
        input: &Self::Input,
        sites: &[HookSite],
    ) -> Result<ActivationCache, HookError> {
        let mut hooks = Hooks::new().caching(sites.iter().copied()).stopping_early();
        self.collect_with(input, &mut hooks)
    }

    /// Runs with `hooks` until the last site they need (or to the end) and
    /// returns what they cached.
    fn collect_with(
        &self,
        input: &Self::Input,
        hooks: &mut Hooks<'_>,
    ) -> Result<ActivationCache, HookError> {
        hooks.prepare(&self.sites())?;
        self.forward_hooked(input, hooks)?;
        Ok(hooks.take_cache())
    }
}
