#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod error;
mod file;
mod generator;
mod grid;
mod layout;
mod quiz;
pub mod render;
mod rng;
pub mod scene;
mod task;
pub mod tasks;

pub use error::{QuizError, Violation};
pub use file::{QUIZ_FILE_FORMAT, QuizFileHeader, read_quiz_file, write_quiz_file};
pub use generator::{BuildStats, MAX_SCENE_TRIES, QuizGenerator};
pub use grid::{Grid, Rect};
pub use layout::Layout;
pub use quiz::{GRID_NAMES, Quiz, infer_params};
pub use scene::{Scene, Shape};
pub use task::{Diagonal, Growth, Params, Side, Task, TaskKind};

/// Grid side of reference 004.
pub const DEFAULT_GRID_SIZE: usize = 10;
/// Smallest supported grid side (small enough for a CPU-trained model).
pub const MIN_GRID_SIZE: usize = 8;
/// Largest supported grid side.
pub const MAX_GRID_SIZE: usize = 32;
/// Colours, tokens `0..=10`; 0 is empty (white).
pub const N_COLOURS: u32 = 11;
/// Marker token before grid A.
pub const MARKER_A: u32 = 11;
/// Marker token before grid f(A).
pub const MARKER_FA: u32 = 12;
/// Marker token before grid B.
pub const MARKER_B: u32 = 13;
/// Marker token before grid f(B).
pub const MARKER_FB: u32 = 14;
/// Token vocabulary: 11 colours and 4 markers.
pub const VOCAB: usize = 15;
/// The beginning-of-sequence token, prepended by hand as in reference 004
/// (the model's tokenizer adds none); it is also the empty colour.
pub const BOS: u32 = 0;
