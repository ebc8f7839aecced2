//! `myrmex cron ...` (skeleton; filled by the cron CLI owner).

use clap::Subcommand;

/// `myrmex cron` subcommands.
#[derive(Debug, Subcommand)]
pub enum CronCommand {
    /// Print the next fire times of an expression.
    Next {
        /// The cron expression.
        expr: String,
    },
}

/// Runs a `myrmex cron` subcommand and returns the exit code.
pub fn run(cmd: CronCommand) -> u8 {
    match cmd {
        CronCommand::Next { expr } => {
            eprintln!("myrmex cron next: not implemented yet ({expr})");
            crate::exit_codes::INVALID_INPUT
        }
    }
}
