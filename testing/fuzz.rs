//! Fuzzing with proptest, for the readers of files a user hands kibitzer
//! (issue 20, "keep it so"): cargo-fuzz needs a nightly compiler and
//! sanitizers that CI does not have, so each target is an ordinary test
//! that feeds random bytes and mutated valid files to a reader and demands
//! `Ok` or a clean error: a panic fails the case, and a case that does not
//! return within [`DEADLINE`] is a hang, which aborts the test binary after
//! printing the input (a hung thread cannot be stopped, so shrinking it
//! would pile up spinning threads).
//!
//! Each target runs [`cases`] cases: its default, sized so that all targets
//! together take well under a minute in CI (about 15 s on 2 cores), or
//! `KIBITZER_FUZZ_CASES` for longer runs
//! (`KIBITZER_FUZZ_CASES=100000 cargo test -p kibitzer-games --test fuzz_pgn`);
//! see docs/RELIABILITY.md.
//!
//! One file, no crate, like `testing/tools.rs`: the tests of each crate
//! include it with `#[path = "../../../testing/fuzz.rs"] mod fuzz;`.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use std::sync::mpsc;
use std::time::Duration;

/// The environment variable that sets the cases of every target.
pub const CASES_ENV: &str = "KIBITZER_FUZZ_CASES";

/// The longest a case may take before it counts as a hang. Inputs are at
/// most a few KiB, which every reader here handles in milliseconds; the
/// margin is for a loaded CI machine running tests in parallel.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Cases to run: `KIBITZER_FUZZ_CASES` when set, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var(CASES_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A proptest config of [`cases`]`(default)` cases whose shrinking is
/// bounded in time.
pub fn config(default: u32) -> Config {
    Config {
        cases: cases(default),
        max_shrink_time: 30_000,
        ..Config::default()
    }
}

/// Runs `f` on its own thread: its value, a failed case when it panics, or
/// (after printing `input`) an abort when it has not returned within
/// [`DEADLINE`].
pub fn within_deadline<T: Send + 'static>(
    input: &[u8],
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, TestCaseError> {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .name("fuzz case".into())
        .spawn(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(out);
        })
        .expect("a thread for the case");
    match rx.recv_timeout(DEADLINE) {
        Ok(Ok(value)) => {
            let _ = worker.join();
            Ok(value)
        }
        Ok(Err(panic)) => {
            let _ = worker.join();
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            Err(TestCaseError::fail(format!(
                "panicked: {message}\ninput ({} bytes): {}",
                input.len(),
                escaped(input)
            )))
        }
        Err(_) => {
            // Straight to the standard error stream: the test harness's
            // capture of `eprintln!` would be lost with the process.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "HANG in {}: no answer within {DEADLINE:?} on this input ({} bytes): {}",
                std::thread::current().name().unwrap_or("a fuzz target"),
                input.len(),
                escaped(input)
            );
            std::process::abort();
        }
    }
}

/// `bytes` as an escaped byte string, for messages.
pub fn escaped(bytes: &[u8]) -> String {
    let text: String = bytes
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    format!("b\"{text}\"")
}

/// Byte strings that readers of text and JSON treat specially: whitespace
/// that is not ASCII (a no-break space in UTF-8 and Latin-1, U+2003, a
/// vertical tab), control and structural characters, numbers too large for
/// any integer or float type, and JSON's odd values.
pub const DICTIONARY: &[&[u8]] = &[
    b"\xc2\xa0",
    b"\xa0",
    "\u{2003}".as_bytes(),
    "\u{3000}".as_bytes(),
    b"\x0b",
    b"\x0c",
    b"\0",
    b"\r",
    b"\r\n",
    b"\n\n",
    b"\t",
    b" ",
    b"{",
    b"}",
    b"(",
    b")",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b";",
    b"$",
    b"%",
    b".",
    b"...",
    b":",
    b",",
    b"-",
    b"0",
    b"-1",
    b"99999999999999999999",
    b"18446744073709551615",
    b"4294967296",
    b"1e309",
    b"NaN",
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
];

/// One edit of a byte string.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// XOR the byte at (position mod length) with a non-zero mask.
    Flip(usize, u8),
    /// Insert bytes at a position.
    Insert(usize, Vec<u8>),
    /// Insert a [`DICTIONARY`] entry at a position.
    InsertWord(usize, usize),
    /// Replace the byte at a position with a [`DICTIONARY`] entry.
    ReplaceWithWord(usize, usize),
    /// Remove up to n bytes at a position.
    Remove(usize, usize),
    /// Repeat up to n bytes at a position.
    Repeat(usize, usize),
    /// Cut the input at a position.
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let word = 0..DICTIONARY.len();
    prop_oneof![
        3 => (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip(at, mask)),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        3 => (any::<usize>(), word.clone()).prop_map(|(at, w)| Mutation::InsertWord(at, w)),
        2 => (any::<usize>(), word).prop_map(|(at, w)| Mutation::ReplaceWithWord(at, w)),
        1 => (any::<usize>(), 1..64usize).prop_map(|(at, n)| Mutation::Remove(at, n)),
        1 => (any::<usize>(), 1..64usize).prop_map(|(at, n)| Mutation::Repeat(at, n)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// `bytes` after `edits`, at most `max_len` long.
pub fn apply(mut bytes: Vec<u8>, edits: &[Mutation], max_len: usize) -> Vec<u8> {
    for edit in edits {
        let len = bytes.len();
        let at = |p: usize| if len == 0 { 0 } else { p % (len + 1) };
        match edit {
            Mutation::Flip(p, mask) if len > 0 => bytes[p % len] ^= mask,
            Mutation::Flip(..) => {}
            Mutation::Insert(p, b) => {
                let i = at(*p);
                bytes.splice(i..i, b.iter().copied());
            }
            Mutation::InsertWord(p, w) => {
                let i = at(*p);
                bytes.splice(i..i, DICTIONARY[*w].iter().copied());
            }
            Mutation::ReplaceWithWord(p, w) if len > 0 => {
                let i = p % len;
                bytes.splice(i..i + 1, DICTIONARY[*w].iter().copied());
            }
            Mutation::ReplaceWithWord(..) => {}
            Mutation::Remove(p, n) => {
                let i = at(*p);
                let end = (i + n).min(len);
                bytes.drain(i..end);
            }
            Mutation::Repeat(p, n) => {
                let i = at(*p);
                let end = (i + n).min(len);
                let copy = bytes[i..end].to_vec();
                bytes.splice(end..end, copy);
            }
            Mutation::Truncate(p) => bytes.truncate(at(*p)),
        }
        bytes.truncate(max_len);
    }
    bytes
}

/// Inputs of at most `max_len` bytes: one in four random bytes, the rest
/// one of `seeds` (valid files) with one to eight [`Mutation`]s.
pub fn inputs(seeds: Vec<Vec<u8>>, max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    assert!(!seeds.is_empty(), "at least one valid input to mutate");
    let mutated = (0..seeds.len(), proptest::collection::vec(mutation(), 1..=8))
        .prop_map(move |(i, edits)| apply(seeds[i].clone(), &edits, max_len));
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..max_len),
        3 => mutated,
    ]
}
