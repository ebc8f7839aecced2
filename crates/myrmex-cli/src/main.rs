//! The `myrmex` binary: argv, config file, signals, exit codes. Glue over the
//! libraries; no scheduling logic lives here.

mod check;
#[expect(dead_code, reason = "the daemon (`run`) uses the rest; it lands next")]
mod config;
mod cron_cmd;
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "the daemon (`run`) uses the rest; it lands next")
)]
mod diag;
#[expect(dead_code, reason = "the daemon (`run`) uses the rest; it lands next")]
mod exit_codes;
#[expect(dead_code, reason = "the daemon (`run`) uses it; it lands next")]
mod runner;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// myrmex: a job scheduler that is correct about time.
#[derive(Debug, Parser)]
#[command(name = "myrmex", version, about, long_about = None, after_help = exit_codes::HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with cron expressions: next/prev fire times, explain.
    #[command(subcommand)]
    Cron(cron_cmd::CronCommand),
    /// Validate a config file and print each job's schedule and next fire times.
    #[command(after_help = exit_codes::HELP)]
    Check {
        /// The config file.
        #[arg(default_value = config::DEFAULT_CONFIG)]
        config: PathBuf,
        /// How many next fire times to print per job.
        #[arg(long, default_value_t = 3)]
        count: usize,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Cron(cmd) => cron_cmd::run(cmd),
        Command::Check { config, count } => check::run(&config, count),
    };
    std::process::ExitCode::from(code)
}
