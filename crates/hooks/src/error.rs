//! [`HookError`]: everything that can go wrong hooking a model.

use crate::site::ParseSiteError;

/// An error while running, hooking or harvesting a model. Every variant
/// names the site and the shape, index or width at fault.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// A string that is not a hook-site name at all.
    #[error(transparent)]
    Parse(#[from] ParseSiteError),
    /// A valid site name that this model does not have.
    #[error("this model has no hook site {site}; its sites are: {available}")]
    UnknownSite {
        /// The site asked for.
        site: String,
        /// The model's sites, folded over layers.
        available: String,
    },
    /// An activation was read as a tensor of the wrong rank.
    #[error("{site}: the activation has rank {found} (shape {shape:?}), read as rank {expected}")]
    Rank {
        /// The site.
        site: String,
        /// The rank asked for.
        expected: usize,
        /// The activation's rank.
        found: usize,
        /// The activation's shape.
        shape: Vec<usize>,
    },
    /// A tensor given to a hook (patch source, mean, vector) has the wrong shape.
    #[error("{site}: {what} has shape {found:?}, expected {expected}")]
    Shape {
        /// The site.
        site: String,
        /// Which tensor.
        what: String,
        /// What it should be.
        expected: String,
        /// What it is.
        found: Vec<usize>,
    },
    /// A dictionary whose input width is not the site's width.
    #[error("{site}: the dictionary reads {d_in}-wide rows, but the site's rows are {width} wide")]
    DictionaryWidth {
        /// The site.
        site: String,
        /// The dictionary's `d_in`.
        d_in: usize,
        /// The width of one row of the site's activation.
        width: usize,
    },
    /// A selection or edit names an axis the activation does not have.
    #[error("{site}: {what} needs a {axis} axis, but the activation's axes are {axes}")]
    NoAxis {
        /// The site.
        site: String,
        /// What needed it.
        what: String,
        /// The axis.
        axis: String,
        /// The activation's axes.
        axes: String,
    },
    /// A position, head, example or feature index past the end.
    #[error("{site}: {what} {index} is out of range (the {what} axis has {len})")]
    IndexOutOfRange {
        /// The site.
        site: String,
        /// Which kind of index (position, head, example, feature).
        what: String,
        /// The index.
        index: usize,
        /// The number of entries.
        len: usize,
    },
    /// The run stopped early or skipped a site whose value was needed.
    #[error("{0}")]
    Incomplete(String),
    /// Bad input data (a token outside the vocabulary, a ragged batch...).
    #[error("input: {0}")]
    Input(String),
    /// The activation store failed.
    #[error(transparent)]
    Store(#[from] kibitzer_store::StoreError),
    /// A custom hook failed.
    #[error("{site}: hook failed: {message}")]
    Custom {
        /// The site.
        site: String,
        /// The hook's message.
        message: String,
    },
}
