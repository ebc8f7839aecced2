//! `myrmex trigger|pause|resume JOB`: requests to a running daemon over its control
//! socket (on a PostgreSQL store: to the database, see [`crate::cluster_status`]).

use std::path::Path;

use crate::config::Config;
use crate::control::{self, ControlError, Request};
use crate::exit_codes;

/// Sends `req` to the daemon running with the config at `config_path`, prints the
/// answer, and returns the exit code.
pub fn send(config_path: &Path, req: &Request) -> u8 {
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{}", e.render());
            return exit_codes::INVALID_INPUT;
        }
    };
    if let crate::config::StoreSpec::Postgres(url) = &config.scheduler.store {
        return crate::cluster_status::control(&config, url, req);
    }
    match control::request(&config.control_dir(), req) {
        Ok(r) if r.ok => {
            println!("{}", r.message.unwrap_or_default());
            exit_codes::OK
        }
        Ok(r) => {
            eprintln!(
                "error: {}",
                r.error.unwrap_or_else(|| "request refused".into())
            );
            exit_codes::REFUSED
        }
        Err(e) => {
            eprintln!("error: {}", crate::error_chain(&e));
            match e {
                ControlError::Unreachable { .. } => {
                    eprintln!("help: start it with `myrmex run {}`", config_path.display());
                    exit_codes::DAEMON_UNREACHABLE
                }
                _ => exit_codes::FAILURE,
            }
        }
    }
}
