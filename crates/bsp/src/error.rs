//! The errors of kibitzer-bsp.

use std::path::PathBuf;

/// Everything that can go wrong when building BSP sets, labelling positions,
/// computing metrics or training probes.
#[derive(Debug, thiserror::Error)]
pub enum BspError {
    /// A BSP set with no property.
    #[error("BSP set: no board-state property (add at least one family)")]
    EmptySet,
    /// Two properties with the same name.
    #[error("BSP set: duplicate property name {name:?} (names must be unique across the set)")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// Two properties of one slot in different groups.
    #[error(
        "BSP set: slot {slot:?} holds properties of groups {first:?} and {second:?}; a slot must stay in one group"
    )]
    SlotAcrossGroups {
        /// The slot.
        slot: String,
        /// The group of its first property.
        first: String,
        /// The other group.
        second: String,
    },
    /// A position that does not fit the BSP set (e.g. an Othello board of another size).
    #[error("{what}: {detail}")]
    Position {
        /// Which input.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// Inputs whose row counts do not match.
    #[error("{what}: {found} rows, expected {expected} (one row per labelled position)")]
    RowCount {
        /// Which input.
        what: String,
        /// The expected count.
        expected: usize,
        /// The count found.
        found: usize,
    },
    /// Inputs whose column counts do not match.
    #[error("{what}: {found} columns, expected {expected}")]
    ColumnCount {
        /// Which input.
        what: String,
        /// The expected count.
        expected: usize,
        /// The count found.
        found: usize,
    },
    /// A NaN or infinite activation.
    #[error("{what}: non-finite value {value} at row {row}, column {column}")]
    NonFinite {
        /// Which input.
        what: String,
        /// Row of the value.
        row: usize,
        /// Column of the value.
        column: usize,
        /// The value.
        value: f32,
    },
    /// Sparse activations that do not describe a matrix.
    #[error("sparse activations: {0}")]
    Sparse(String),
    /// Train and test labels (or labels and a report) from different BSP sets.
    #[error(
        "{what}: the BSP catalogs differ; train and test labels must come from the same BSP set"
    )]
    CatalogMismatch {
        /// Which input.
        what: String,
    },
    /// An unknown group or property name.
    #[error("{what}: no {kind} named {name:?}")]
    UnknownName {
        /// Which input.
        what: String,
        /// "group" or "property".
        kind: &'static str,
        /// The name asked for.
        name: String,
    },
    /// A configuration value out of range.
    #[error("config field {field}: {detail}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong and what is expected.
        detail: String,
    },
    /// An Othello transcript that is not a legal game.
    #[error("Othello game {game}: {source}")]
    OthelloTranscript {
        /// The game index.
        game: usize,
        /// The transcript error.
        source: kibitzer_games::othello::transcript::TranscriptError,
    },
    /// An illegal Othello move in a move list.
    #[error("Othello game {game}, move {move_number}: {source}")]
    OthelloMove {
        /// The game index.
        game: usize,
        /// The move number (from 1).
        move_number: usize,
        /// The illegal move.
        source: kibitzer_games::IllegalMove,
    },
    /// A chess game without a ChessGPT transcript, or a bad transcript.
    #[cfg(feature = "chess")]
    #[error("chess game {game}: {source}")]
    ChessTranscript {
        /// The game index.
        game: usize,
        /// The transcript error.
        source: kibitzer_games::chess::transcript::TranscriptError,
    },
    /// A label file line that does not fit the BSP set.
    #[error("{path}, line {line}: {detail}")]
    LabelFile {
        /// The label file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// What is wrong and what was expected.
        detail: String,
    },
    /// A file that could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// JSON output that could not be produced.
    #[error("{what}: {source}")]
    Json {
        /// What was being written.
        what: String,
        /// The serde error.
        source: serde_json::Error,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = BspError> = std::result::Result<T, E>;
