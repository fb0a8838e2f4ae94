//! Prints sample stories, the type/token summary, generation speed, the
//! tokenizer's training time and token lengths.
//!
//! `cargo run --release -p kibitzer-stories --example stories_stats -- [N] [OUT_DIR]`

use std::time::Instant;

use kibitzer_stories::{DEFAULT_VOCAB_SIZE, StoryGenerator, StoryTokenizer, text_stats};

fn main() -> kibitzer_stories::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map(|a| a.parse().expect("N is a number"))
        .unwrap_or(20_000);
    let out = args.next();
    let generator = StoryGenerator::new(0);
    for i in 0..3 {
        println!("--- story {i}\n{}\n", generator.story(i));
    }
    let t = Instant::now();
    let stories = generator.stories(0..n);
    let secs = t.elapsed().as_secs_f64();
    println!(
        "generated {n} stories in {secs:.2} s ({:.0} stories/s)",
        n as f64 / secs
    );
    let stats = text_stats(&stories);
    println!(
        "{} words, {} distinct, type/token {:.4}, words per story mean {:.1} min {} max {}",
        stats.words,
        stats.distinct_words,
        stats.type_token_ratio(),
        stats.mean_words,
        stats.min_words,
        stats.max_words
    );
    let t = Instant::now();
    let tokenizer = StoryTokenizer::train(&stories, DEFAULT_VOCAB_SIZE)?;
    println!(
        "trained a {}-id tokenizer on {n} stories in {:.2} s",
        tokenizer.vocab_size(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let ids = tokenizer.encode_batch(&stories);
    let tokens: usize = ids.iter().map(Vec::len).sum();
    let longest = ids.iter().map(Vec::len).max().unwrap_or(0);
    println!(
        "{tokens} tokens ({:.1} per story, longest {longest}, {:.2} per word), encoded in {:.2} s",
        tokens as f64 / n as f64,
        tokens as f64 / stats.words as f64,
        t.elapsed().as_secs_f64()
    );
    let hate: Vec<String> = tokenizer
        .hate_ids()
        .iter()
        .map(|&i| tokenizer.id_to_token(i).unwrap_or_default())
        .collect();
    println!("hate ids {:?} = {hate:?}", tokenizer.hate_ids());
    if let Some(dir) = out {
        std::fs::create_dir_all(&dir).map_err(|source| kibitzer_stories::StoriesError::Io {
            path: dir.clone().into(),
            source,
        })?;
        let path = std::path::Path::new(&dir).join("tokenizer.json");
        tokenizer.save(&path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
