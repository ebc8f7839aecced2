//! The `myrmex` binary: argv, config file, signals, exit codes. Glue over the
//! libraries; no scheduling logic lives here.

mod cron_cmd;
mod exit_codes;

use clap::{Parser, Subcommand};

/// myrmex: a job scheduler that is correct about time.
#[derive(Debug, Parser)]
#[command(name = "myrmex", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with cron expressions: next/prev fire times, explain.
    #[command(subcommand)]
    Cron(cron_cmd::CronCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Cron(cmd) => cron_cmd::run(cmd),
    };
    std::process::ExitCode::from(code)
}
