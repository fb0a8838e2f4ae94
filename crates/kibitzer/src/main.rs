//! The `kibitzer` command line: a thin layer over the library crates.

mod cli;

use clap::Parser;

// glibc's allocator maps and faults in every large temporary afresh (tens of
// MiB per training step); mimalloc reuses them, which is worth ~0.2 s a step
// at d_sae 4096 on the CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
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
