//! Fault injection for the tests of interrupted jobs.
//!
//! `KIBITZER_FAULT=<point>:<n>` in the environment makes the process exit
//! with status 137, as after `kill -9`, the `n`-th time (from 1) it reaches
//! the fault point named `<point>`. No destructor runs: buffered writers are
//! not flushed and temporary files are not removed, as after a real kill.
//! Without the variable (always, outside tests) a point costs one check of
//! a value read once.
//!
//! The points are listed in docs/RELIABILITY.md, with the tests that use
//! them.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the point and the hit to die at.
pub const FAULT_ENV: &str = "KIBITZER_FAULT";

/// The exit status of a process killed at a fault point (128 + SIGKILL).
pub const FAULT_EXIT_STATUS: i32 = 137;

static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

fn target() -> &'static Option<(String, u64)> {
    TARGET.get_or_init(|| {
        let text = std::env::var(FAULT_ENV).ok()?;
        let (name, n) = text.rsplit_once(':')?;
        Some((name.to_string(), n.trim().parse().ok()?))
    })
}

/// A fault point named `name`: exits the process here when `KIBITZER_FAULT`
/// names it and this is the hit it asks for.
pub fn point(name: &str) {
    let Some((target, n)) = target() else {
        return;
    };
    if target != name {
        return;
    }
    let hit = HITS.fetch_add(1, Ordering::SeqCst) + 1;
    if hit == *n {
        eprintln!("{FAULT_ENV}: killed at fault point {name} (hit {hit})");
        std::process::exit(FAULT_EXIT_STATUS);
    }
}
