//! What a test does when a program it drives (Stockfish, Chromium) is not
//! installed: by default it prints that it skipped and passes; with
//! `KIBITZER_REQUIRE_TOOLS` set (to anything but `0` or nothing) it fails,
//! naming what is missing and how to install it. CI sets the variable
//! (`.ci/run`), so there a test cannot pass without having run.
//!
//! One file, no crate: the tests of every crate include it with
//! `#[path = "../../../testing/tools.rs"] mod tools;`. A function in a
//! library crate would put a test policy into that crate's public API, and a
//! crate of its own would be one more workspace member and dev-dependency
//! for twenty lines.
#![allow(dead_code)]

/// The environment variable that turns a missing program into a failure.
pub const REQUIRE_TOOLS: &str = "KIBITZER_REQUIRE_TOOLS";

/// Whether a missing program fails the test: `KIBITZER_REQUIRE_TOOLS` is
/// set, and neither empty nor `0`.
pub fn tools_required() -> bool {
    std::env::var_os(REQUIRE_TOOLS).is_some_and(|value| !value.is_empty() && value != "0")
}

/// `found` when it is `Some`. When it is `None`: a panic naming `what` is
/// missing and `install` (how to install it) if [`tools_required`], else a
/// note on stderr that the calling test skips what needs it, and `None`.
#[track_caller]
pub fn require<T>(found: Option<T>, what: &str, install: &str) -> Option<T> {
    if found.is_some() {
        return found;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("this test");
    if tools_required() {
        panic!(
            "{test}: {what} is missing ({install}); {REQUIRE_TOOLS} is set, so this is a failure"
        );
    }
    eprintln!(
        "{test}: {what} is missing ({install}): skipping what needs it \
         (set {REQUIRE_TOOLS}=1 to make this a failure)"
    );
    None
}
