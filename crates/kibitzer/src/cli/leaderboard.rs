//! `kibitzer leaderboard`: every architecture at matched L0 on the shipped
//! AlphaZero network's activations (or an OthelloGPT's or ChessGPT's,
//! `--model`), ranked on the board ([`kibitzer::leaderboard`]).

use super::CliResult;
use clap::Args;
use kibitzer::leaderboard::{LeaderboardConfig, LeaderboardSettings, files, run_leaderboard};
use kibitzer_sae::{DeviceChoice, Family};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct LeaderboardArgs {
    /// Output directory; run again with the same settings to resume.
    #[arg(long, default_value = "runs/leaderboard")]
    pub out: PathBuf,
    /// The subject network: "shipped" (the 6x6 AlphaZero network in the
    /// binary) or a weights file of `kibitzer alphazero train`.
    #[arg(long, default_value = "shipped")]
    pub net: String,
    /// An OthelloGPT or ChessGPT as the subject instead (`kibitzer gpt
    /// train --out`), harvested on --games; loss recovered is then its
    /// next-token loss, and a ChessGPT's dictionaries are ranked on the
    /// pieces.
    #[arg(long, requires = "games")]
    pub model: Option<PathBuf>,
    /// The games the GPT (--model) is harvested on (an Othello dataset, or
    /// chess games in .pgn or .jsonl): the first games until --positions
    /// rows.
    #[arg(long, requires = "model")]
    pub games: Option<PathBuf>,
    /// Activation rows to harvest.
    #[arg(long, default_value_t = LeaderboardSettings::default().positions)]
    pub positions: usize,
    /// Games whose positions are labelled; the dictionaries are judged on them.
    #[arg(long, default_value_t = LeaderboardSettings::default().label_games)]
    pub label_games: usize,
    /// Hook site the dictionaries read.
    #[arg(long, default_value_t = LeaderboardSettings::default().site)]
    pub site: String,
    /// Features of every dictionary.
    #[arg(long, default_value_t = LeaderboardSettings::default().d_sae)]
    pub d_sae: usize,
    /// The L0 targets, comma-separated, ascending.
    #[arg(long, value_delimiter = ',', default_values_t = LeaderboardSettings::default().targets)]
    pub targets: Vec<usize>,
    /// Coefficients the L1 families (standard, panneal, gated) train; the
    /// one nearest each target in L0 is ranked.
    #[arg(long, value_delimiter = ',', default_values_t = LeaderboardSettings::default().ladder)]
    pub ladder: Vec<f64>,
    /// Architectures to rank (default all), comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = super::family_parser(&Family::ALL))]
    pub archs: Vec<Family>,
    /// Rows per batch.
    #[arg(long, default_value_t = LeaderboardSettings::default().batch_size)]
    pub batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = LeaderboardSettings::default().lr)]
    pub lr: f64,
    /// Optimiser steps of every dictionary (the store is read again as
    /// often as needed).
    #[arg(long, default_value_t = LeaderboardSettings::default().steps.unwrap_or(1))]
    pub steps: usize,
    /// Positions the network runs on for loss recovered.
    #[arg(long, default_value_t = LeaderboardSettings::default().splice_positions)]
    pub splice_positions: usize,
    /// Passes of the linear probes over their train rows.
    #[arg(long, default_value_t = LeaderboardSettings::default().probe_epochs)]
    pub probe_epochs: usize,
    /// Seed of the games, the dictionaries and the split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Hide progress bars.
    #[arg(long)]
    pub quiet: bool,
}

impl LeaderboardArgs {
    fn settings(&self) -> LeaderboardSettings {
        LeaderboardSettings {
            net: self.net.clone(),
            model: self.model.clone(),
            games: self.games.clone(),
            positions: self.positions,
            label_games: self.label_games,
            site: self.site.clone(),
            d_sae: self.d_sae,
            targets: self.targets.clone(),
            ladder: self.ladder.clone(),
            families: if self.archs.is_empty() {
                Family::ALL.to_vec()
            } else {
                self.archs.clone()
            },
            batch_size: self.batch_size,
            lr: self.lr,
            steps: Some(self.steps),
            splice_positions: self.splice_positions,
            probe_epochs: self.probe_epochs,
            seed: self.seed,
            ..LeaderboardSettings::default()
        }
    }
}

pub fn run(a: LeaderboardArgs) -> CliResult {
    let started = Instant::now();
    let leaderboard = run_leaderboard(&LeaderboardConfig {
        settings: a.settings(),
        out: a.out.clone(),
        device: a.device.device()?,
        progress: !a.quiet,
    })?;
    println!("{}", leaderboard.markdown());
    println!(
        "{} dictionaries ranked in {:.0} s\ntable: {}\npage: {}\nnumbers: {}",
        leaderboard.entries.len(),
        started.elapsed().as_secs_f64(),
        a.out.join(files::MARKDOWN).display(),
        a.out.join(files::HTML).display(),
        a.out.join(files::JSON).display()
    );
    Ok(())
}
