//! Hook sites, named as TransformerLens names them.
//!
//! A [`HookSite`] is a place in a model's forward pass where an activation can
//! be read or replaced: `hook_embed`, `blocks.3.hook_resid_post`,
//! `blocks.0.attn.hook_pattern`, `ln_final.hook_normalized`, ... Sites parse
//! from and print as exactly those strings, so a name copied from a
//! TransformerLens notebook works here unchanged.

use std::fmt;
use std::str::FromStr;

/// A hook inside a LayerNorm (`ln1`, `ln2`, `ln_final`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LnHook {
    /// `hook_scale`: the per-position scale `sqrt(var + eps)`, `[batch, pos, 1]`.
    Scale,
    /// `hook_normalized`: the centred values divided by the scale, before
    /// the weight and bias (as TransformerLens hooks them), `[batch, pos, d_model]`.
    Normalized,
}

/// A hook inside transformer (or residual) block `l`, in forward order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockHook {
    /// `hook_resid_pre`: the residual stream entering the block.
    ResidPre,
    /// `ln1.hook_scale` / `ln1.hook_normalized`.
    Ln1(LnHook),
    /// `attn.hook_q`: queries `[batch, pos, head, d_head]`.
    AttnQ,
    /// `attn.hook_k`: keys `[batch, pos, head, d_head]`.
    AttnK,
    /// `attn.hook_v`: values `[batch, pos, head, d_head]`.
    AttnV,
    /// `attn.hook_attn_scores`: scaled, masked scores `[batch, head, query_pos, key_pos]`.
    AttnScores,
    /// `attn.hook_pattern`: attention probabilities `[batch, head, query_pos, key_pos]`.
    AttnPattern,
    /// `attn.hook_z`: the pattern-weighted values `[batch, pos, head, d_head]`.
    AttnZ,
    /// `attn.hook_result`: each head's write to the residual stream
    /// `[batch, pos, head, d_model]` (computed only when hooked).
    AttnResult,
    /// `hook_attn_out`: the attention layer's output `[batch, pos, d_model]`.
    AttnOut,
    /// `hook_resid_mid`: the residual stream between attention and MLP.
    ResidMid,
    /// `ln2.hook_scale` / `ln2.hook_normalized`.
    Ln2(LnHook),
    /// `mlp.hook_pre`: MLP pre-activations `[batch, pos, d_mlp]`.
    MlpPre,
    /// `mlp.hook_post`: MLP activations after the nonlinearity.
    MlpPost,
    /// `hook_mlp_out`: the MLP's (or feed-forward branch's) output.
    MlpOut,
    /// `hook_resid_post`: the residual stream leaving the block.
    ResidPost,
}

/// A named place in a forward pass where activations can be read or replaced.
///
/// The derived order is the forward order of a transformer (embeddings,
/// then block 0's sites, block 1's, ..., the final LayerNorm, the unembedding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookSite {
    /// `hook_embed`: token (or input) embeddings.
    Embed,
    /// `hook_pos_embed`: positional embeddings.
    PosEmbed,
    /// `hook_rating_embed`: the skill (rating) embeddings of a
    /// skill-conditioned model, added to the input of the first block.
    RatingEmbed,
    /// `blocks.{layer}.{hook}`.
    Block {
        /// Block index, from 0.
        layer: usize,
        /// Which hook in the block.
        hook: BlockHook,
    },
    /// `ln_final.hook_scale` / `ln_final.hook_normalized`.
    LnFinal(LnHook),
    /// `unembed.hook_in`: the input of the unembedding (or policy head).
    UnembedIn,
    /// `unembed.hook_out`: the logits.
    UnembedOut,
}

/// Every hook-site name pattern, in forward order (`{l}` is a block index).
pub const SITE_PATTERNS: &[&str] = &[
    "hook_embed",
    "hook_pos_embed",
    "hook_rating_embed",
    "blocks.{l}.hook_resid_pre",
    "blocks.{l}.ln1.hook_scale",
    "blocks.{l}.ln1.hook_normalized",
    "blocks.{l}.attn.hook_q",
    "blocks.{l}.attn.hook_k",
    "blocks.{l}.attn.hook_v",
    "blocks.{l}.attn.hook_attn_scores",
    "blocks.{l}.attn.hook_pattern",
    "blocks.{l}.attn.hook_z",
    "blocks.{l}.attn.hook_result",
    "blocks.{l}.hook_attn_out",
    "blocks.{l}.hook_resid_mid",
    "blocks.{l}.ln2.hook_scale",
    "blocks.{l}.ln2.hook_normalized",
    "blocks.{l}.mlp.hook_pre",
    "blocks.{l}.mlp.hook_post",
    "blocks.{l}.hook_mlp_out",
    "blocks.{l}.hook_resid_post",
    "ln_final.hook_scale",
    "ln_final.hook_normalized",
    "unembed.hook_in",
    "unembed.hook_out",
];

/// A string that is not a hook-site name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown hook site {name:?}: valid names are {}", SITE_PATTERNS.join(", "))]
pub struct ParseSiteError {
    /// The string that was given.
    pub name: String,
}

impl BlockHook {
    /// Every block hook, in forward order.
    pub const ALL: [BlockHook; 18] = [
        BlockHook::ResidPre,
        BlockHook::Ln1(LnHook::Scale),
        BlockHook::Ln1(LnHook::Normalized),
        BlockHook::AttnQ,
        BlockHook::AttnK,
        BlockHook::AttnV,
        BlockHook::AttnScores,
        BlockHook::AttnPattern,
        BlockHook::AttnZ,
        BlockHook::AttnResult,
        BlockHook::AttnOut,
        BlockHook::ResidMid,
        BlockHook::Ln2(LnHook::Scale),
        BlockHook::Ln2(LnHook::Normalized),
        BlockHook::MlpPre,
        BlockHook::MlpPost,
        BlockHook::MlpOut,
        BlockHook::ResidPost,
    ];

    /// The part of the name after `blocks.{l}.`.
    pub fn suffix(self) -> &'static str {
        match self {
            BlockHook::ResidPre => "hook_resid_pre",
            BlockHook::Ln1(LnHook::Scale) => "ln1.hook_scale",
            BlockHook::Ln1(LnHook::Normalized) => "ln1.hook_normalized",
            BlockHook::AttnQ => "attn.hook_q",
            BlockHook::AttnK => "attn.hook_k",
            BlockHook::AttnV => "attn.hook_v",
            BlockHook::AttnScores => "attn.hook_attn_scores",
            BlockHook::AttnPattern => "attn.hook_pattern",
            BlockHook::AttnZ => "attn.hook_z",
            BlockHook::AttnResult => "attn.hook_result",
            BlockHook::AttnOut => "hook_attn_out",
            BlockHook::ResidMid => "hook_resid_mid",
            BlockHook::Ln2(LnHook::Scale) => "ln2.hook_scale",
            BlockHook::Ln2(LnHook::Normalized) => "ln2.hook_normalized",
            BlockHook::MlpPre => "mlp.hook_pre",
            BlockHook::MlpPost => "mlp.hook_post",
            BlockHook::MlpOut => "hook_mlp_out",
            BlockHook::ResidPost => "hook_resid_post",
        }
    }

    fn from_suffix(suffix: &str) -> Option<BlockHook> {
        BlockHook::ALL.into_iter().find(|h| h.suffix() == suffix)
    }

    /// Whether the hook's activation has a head axis (per-head edits apply).
    pub fn has_heads(self) -> bool {
        matches!(
            self,
            BlockHook::AttnQ
                | BlockHook::AttnK
                | BlockHook::AttnV
                | BlockHook::AttnScores
                | BlockHook::AttnPattern
                | BlockHook::AttnZ
                | BlockHook::AttnResult
        )
    }
}

impl HookSite {
    /// `blocks.{layer}.{hook}`.
    pub fn block(layer: usize, hook: BlockHook) -> HookSite {
        HookSite::Block { layer, hook }
    }

    /// `blocks.{layer}.hook_resid_pre`.
    pub fn resid_pre(layer: usize) -> HookSite {
        HookSite::block(layer, BlockHook::ResidPre)
    }

    /// `blocks.{layer}.hook_resid_mid`.
    pub fn resid_mid(layer: usize) -> HookSite {
        HookSite::block(layer, BlockHook::ResidMid)
    }

    /// `blocks.{layer}.hook_resid_post`.
    pub fn resid_post(layer: usize) -> HookSite {
        HookSite::block(layer, BlockHook::ResidPost)
    }

    /// `blocks.{layer}.hook_mlp_out`.
    pub fn mlp_out(layer: usize) -> HookSite {
        HookSite::block(layer, BlockHook::MlpOut)
    }

    /// `blocks.{layer}.hook_attn_out`.
    pub fn attn_out(layer: usize) -> HookSite {
        HookSite::block(layer, BlockHook::AttnOut)
    }

    /// `blocks.{layer}.attn.hook_z`.
    pub fn attn_z(layer: usize) -> HookSite {
        HookSite::block(layer, BlockHook::AttnZ)
    }

    /// `blocks.{layer}.attn.hook_pattern`.
    pub fn attn_pattern(layer: usize) -> HookSite {
        HookSite::block(layer, BlockHook::AttnPattern)
    }

    /// The block index, for sites inside a block.
    pub fn layer(self) -> Option<usize> {
        match self {
            HookSite::Block { layer, .. } => Some(layer),
            _ => None,
        }
    }

    /// Whether the site's activation has a head axis.
    pub fn has_heads(self) -> bool {
        matches!(self, HookSite::Block { hook, .. } if hook.has_heads())
    }

    /// Every site of a transformer with `n_layers` blocks that has all of
    /// TransformerLens's standard hooks, in forward order (optional ones such
    /// as `attn.hook_result` included).
    pub fn transformer_sites(n_layers: usize, positional: bool, final_ln: bool) -> Vec<HookSite> {
        let mut sites = vec![HookSite::Embed];
        if positional {
            sites.push(HookSite::PosEmbed);
        }
        for layer in 0..n_layers {
            for hook in BlockHook::ALL {
                sites.push(HookSite::block(layer, hook));
            }
        }
        if final_ln {
            sites.push(HookSite::LnFinal(LnHook::Scale));
            sites.push(HookSite::LnFinal(LnHook::Normalized));
        }
        sites.push(HookSite::UnembedIn);
        sites.push(HookSite::UnembedOut);
        sites
    }
}

impl fmt::Display for HookSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookSite::Embed => f.write_str("hook_embed"),
            HookSite::PosEmbed => f.write_str("hook_pos_embed"),
            HookSite::RatingEmbed => f.write_str("hook_rating_embed"),
            HookSite::Block { layer, hook } => write!(f, "blocks.{layer}.{}", hook.suffix()),
            HookSite::LnFinal(LnHook::Scale) => f.write_str("ln_final.hook_scale"),
            HookSite::LnFinal(LnHook::Normalized) => f.write_str("ln_final.hook_normalized"),
            HookSite::UnembedIn => f.write_str("unembed.hook_in"),
            HookSite::UnembedOut => f.write_str("unembed.hook_out"),
        }
    }
}

impl FromStr for HookSite {
    type Err = ParseSiteError;

    fn from_str(s: &str) -> Result<HookSite, ParseSiteError> {
        let name = s.trim();
        let err = || ParseSiteError {
            name: s.to_string(),
        };
        match name {
            "hook_embed" => return Ok(HookSite::Embed),
            "hook_pos_embed" => return Ok(HookSite::PosEmbed),
            "hook_rating_embed" => return Ok(HookSite::RatingEmbed),
            "ln_final.hook_scale" => return Ok(HookSite::LnFinal(LnHook::Scale)),
            "ln_final.hook_normalized" => return Ok(HookSite::LnFinal(LnHook::Normalized)),
            "unembed.hook_in" => return Ok(HookSite::UnembedIn),
            "unembed.hook_out" => return Ok(HookSite::UnembedOut),
            _ => {}
        }
        let rest = name.strip_prefix("blocks.").ok_or_else(err)?;
        let (layer, suffix) = rest.split_once('.').ok_or_else(err)?;
        // Reject "+3" and "03": the printed form must be the only spelling.
        if layer.is_empty()
            || !layer.bytes().all(|b| b.is_ascii_digit())
            || (layer.len() > 1 && layer.starts_with('0'))
        {
            return Err(err());
        }
        let layer = layer.parse::<usize>().map_err(|_| err())?;
        let hook = BlockHook::from_suffix(suffix).ok_or_else(err)?;
        Ok(HookSite::block(layer, hook))
    }
}

impl serde::Serialize for HookSite {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for HookSite {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<HookSite, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A short description of a list of sites for error messages: every name,
/// with runs of blocks folded (`blocks.{0..3}.hook_resid_post`).
pub fn describe_sites(sites: &[HookSite]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut seen_block_hooks: Vec<BlockHook> = Vec::new();
    for site in sites {
        match site {
            HookSite::Block { hook, .. } => {
                if seen_block_hooks.contains(hook) {
                    continue;
                }
                seen_block_hooks.push(*hook);
                let layers: Vec<usize> = sites
                    .iter()
                    .filter_map(|s| match s {
                        HookSite::Block { layer, hook: h } if h == hook => Some(*layer),
                        _ => None,
                    })
                    .collect();
                let (lo, hi) = (
                    layers.iter().min().copied().unwrap_or(0),
                    layers.iter().max().copied().unwrap_or(0),
                );
                if layers.len() == 1 {
                    out.push(format!("blocks.{lo}.{}", hook.suffix()));
                } else if layers.len() == hi - lo + 1 {
                    out.push(format!("blocks.{{{lo}..={hi}}}.{}", hook.suffix()));
                } else {
                    let list: Vec<String> = layers.iter().map(usize::to_string).collect();
                    out.push(format!("blocks.{{{}}}.{}", list.join(","), hook.suffix()));
                }
            }
            other => out.push(other.to_string()),
        }
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_transformer_lens_names() {
        assert_eq!("hook_embed".parse::<HookSite>().unwrap(), HookSite::Embed);
        assert_eq!(
            "blocks.12.attn.hook_pattern".parse::<HookSite>().unwrap(),
            HookSite::block(12, BlockHook::AttnPattern)
        );
        assert_eq!(
            "blocks.0.ln2.hook_normalized".parse::<HookSite>().unwrap(),
            HookSite::block(0, BlockHook::Ln2(LnHook::Normalized))
        );
        assert_eq!(
            "ln_final.hook_normalized".parse::<HookSite>().unwrap(),
            HookSite::LnFinal(LnHook::Normalized)
        );
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        for bad in [
            "blocks.1.hook_resid",
            "blocks.x.hook_resid_post",
            "blocks.01.hook_resid_post",
            "resid_post",
            "blocks..hook_z",
            "",
        ] {
            let err = bad.parse::<HookSite>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(
                err.contains("blocks.{l}.hook_resid_post")
                    && err.contains("ln_final.hook_normalized"),
                "{err}"
            );
        }
    }

    #[test]
    fn every_pattern_parses_and_the_order_is_the_forward_order() {
        let sites = HookSite::transformer_sites(2, true, true);
        assert_eq!(sites.len(), 2 + 2 * 18 + 4);
        let mut sorted = sites.clone();
        sorted.sort();
        assert_eq!(sorted, sites, "derived Ord must be the forward order");
        for pattern in SITE_PATTERNS {
            let name = pattern.replace("{l}", "3");
            let site: HookSite = name.parse().unwrap();
            assert_eq!(site.to_string(), name);
        }
    }

    #[test]
    fn describes_site_lists_compactly() {
        let sites = vec![
            HookSite::Embed,
            HookSite::resid_post(0),
            HookSite::resid_post(1),
            HookSite::resid_post(2),
        ];
        assert_eq!(
            describe_sites(&sites),
            "hook_embed, blocks.{0..=2}.hook_resid_post"
        );
    }

    #[test]
    fn serde_uses_the_names() {
        let json = serde_json::to_string(&HookSite::attn_z(4)).unwrap();
        assert_eq!(json, "\"blocks.4.attn.hook_z\"");
        let back: HookSite = serde_json::from_str(&json).unwrap();
        assert_eq!(back, HookSite::attn_z(4));
        assert!(serde_json::from_str::<HookSite>("\"blocks.4.nope\"").is_err());
    }

    proptest! {
        #[test]
        fn display_and_parse_round_trip(layer in 0usize..1000, which in 0usize..18) {
            let site = HookSite::block(layer, BlockHook::ALL[which]);
            prop_assert_eq!(site.to_string().parse::<HookSite>().unwrap(), site);
        }
    }
}
