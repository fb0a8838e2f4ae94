//! The `kibitzer` command line: a thin layer over the library crates.

mod cli;

use clap::Parser;

// glibc's allocator maps and faults in every large temporary afresh (tens of
// MiB per training step); mimalloc reuses them, which is worth ~0.2 s a step
// at d_sae 4096 on the CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_t`, the
/// same in mimalloc 2 and 3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // mimalloc hands freed memory back to the OS after 10 ms by default, so a
    // training step's large temporaries (a GPT's activations and attention
    // patterns, tens of MiB) were faulted in and zeroed by the kernel again
    // on every step: 0.77 -> 0.62 s a step for reference 004's quick GPT.
    // A command runs one job, so its peak memory stays mapped to the end.
    // SAFETY: sets a process-wide option before any thread starts.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let args = cli::Cli::parse();
    if let Err(err) = cli::run(args) {
        eprintln!("error: {err}");
        let mut source = std::error::Error::source(&*err);
        while let Some(s) = source {
            eprintln!("  caused by: {s}");
            source = s.source();
        }
        std::process::exit(1);
    }
}
