//! The `myrmex` binary: argv, config file, signals, exit codes. Glue over the
//! libraries; no scheduling logic lives here.
//!
//! - [`config`] reads and validates the TOML file (every problem at once, located,
//!   printed by [`diag`]); [`plan`] turns it into `myrmex` job specs.
//! - [`daemon`] (`myrmex run`) owns a `myrmex::Scheduler` with a `myrmex::Dag`; each
//!   job's handler runs its command through [`runner`]; [`state`] records everything
//!   in the state store through the scheduler's journal hook and restores unchanged
//!   jobs at start-up; [`control`] is the daemon's private Unix socket.
//! - [`cluster`] is `myrmex run` on a `postgres://` store: the jobs are written to the
//!   database and a `myrmex_postgres::Node` runs them with the other nodes;
//!   [`cluster_status`] is `status` and `history` on such a store.
//! - [`check`], [`status`] and [`client`] are the other commands; [`cron_cmd`] is
//!   `myrmex cron`.

mod check;
mod client;
mod cluster;
mod cluster_node;
mod cluster_recurrence;
mod cluster_status;
mod config;
mod control;
mod cron_cmd;
mod daemon;
mod diag;
mod exit_codes;
mod logging;
mod plan;
mod runner;
mod state;
mod status;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// Run the daemon: fire the config's jobs until SIGTERM or SIGINT (SIGHUP reloads).
    #[command(after_help = exit_codes::HELP)]
    Run {
        /// The config file.
        #[arg(default_value = config::DEFAULT_CONFIG)]
        config: PathBuf,
        /// How log lines on stderr look (the level comes from MYRMEX_LOG, default info).
        #[arg(long, value_enum, default_value_t = logging::LogFormat::Human)]
        log_format: logging::LogFormat,
    },
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
    /// Show every job of the state store: schedule, last run and outcome, next fire.
    #[command(after_help = exit_codes::HELP)]
    Status {
        /// The daemon's config file (it names the state store).
        #[arg(short, long, default_value = config::DEFAULT_CONFIG)]
        config: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the recorded runs, of one job or of all, oldest first.
    #[command(after_help = exit_codes::HELP)]
    History {
        /// Only this job's runs.
        job: Option<String>,
        /// The daemon's config file (it names the state store).
        #[arg(short, long, default_value = config::DEFAULT_CONFIG)]
        config: PathBuf,
        /// How many of the most recent runs to show.
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run a job now on the running daemon.
    #[command(after_help = exit_codes::HELP)]
    Trigger(JobArgs),
    /// Pause a job on the running daemon (its fires are not run until resumed).
    #[command(after_help = exit_codes::HELP)]
    Pause(JobArgs),
    /// Resume a paused job on the running daemon.
    #[command(after_help = exit_codes::HELP)]
    Resume(JobArgs),
}

#[derive(Debug, Args)]
struct JobArgs {
    /// The job's name.
    job: String,
    /// The daemon's config file (it locates the control socket).
    #[arg(short, long, default_value = config::DEFAULT_CONFIG)]
    config: PathBuf,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Cron(cmd) => cron_cmd::run(cmd),
        Command::Run { config, log_format } => {
            logging::init(log_format);
            daemon::run(&config)
        }
        Command::Check { config, count } => check::run(&config, count),
        Command::Status { config, json } => status::status(&config, format(json)),
        Command::History {
            job,
            config,
            limit,
            json,
        } => status::history(&config, job.as_deref(), limit, format(json)),
        Command::Trigger(a) => client::send(&a.config, &control::Request::Trigger { job: a.job }),
        Command::Pause(a) => client::send(&a.config, &control::Request::Pause { job: a.job }),
        Command::Resume(a) => client::send(&a.config, &control::Request::Resume { job: a.job }),
    };
    std::process::ExitCode::from(code)
}

fn format(json: bool) -> status::Format {
    if json {
        status::Format::Json
    } else {
        status::Format::Table
    }
}

/// An error and its causes, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}
