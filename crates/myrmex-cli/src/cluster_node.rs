//! The `[scheduler]` settings of a cluster node that come from the config file
//! beyond the connection: retention of finished runs, forgetting gone nodes, and
//! how long a timed-out command may take to stop.

use std::time::Duration;

use myrmex_postgres::NodeConfig;

use crate::config::Config;

/// Applies the config's cluster settings to a node's configuration:
/// `archive_after` becomes [`NodeConfig::retention`] and `forget_nodes_after`
/// [`NodeConfig::forget_nodes_after`]. The node records a timed-out attempt
/// without waiting for its handler after [`NodeConfig::timeout_grace`]; the
/// command runner needs up to `kill_grace` after the timeout to stop a command
/// (SIGTERM, then SIGKILL), so the grace is `kill_grace` plus one second: the
/// attempt ends when its command has, and a retry never overlaps it.
pub fn configure(config: &Config, node: &mut NodeConfig) {
    node.retention = config.scheduler.archive_after.unsigned_abs();
    node.forget_nodes_after = config.scheduler.forget_nodes_after.unsigned_abs();
    node.timeout_grace = config.scheduler.kill_grace.unsigned_abs() + Duration::from_secs(1);
}

#[cfg(test)]
mod tests {
    use myrmex_postgres::ConnectOptions;

    use super::*;

    fn load(scheduler: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("myrmex.toml");
        std::fs::write(
            &path,
            format!(
                "[scheduler]\nstore = \"postgres://u@127.0.0.1/db\"\n{scheduler}\n\n\
                 [[job]]\nname = \"a\"\ncommand = \"true\"\nevery = \"1m\"\n"
            ),
        )
        .unwrap();
        Config::load(&path).unwrap_or_else(|e| panic!("{}", e.render()))
    }

    #[test]
    fn retention_and_node_forgetting_come_from_the_config() {
        let cases = [
            ("", 7 * 24 * 3600, 24 * 3600, 11),
            (
                "archive_after = \"2 days\"\nforget_nodes_after = \"6h\"\nkill_grace = \"2s\"",
                2 * 24 * 3600,
                6 * 3600,
                3,
            ),
            ("archive_after = \"0s\"", 0, 24 * 3600, 11),
        ];
        for (text, retention, forget, grace) in cases {
            let config = load(text);
            let mut node = NodeConfig::new(ConnectOptions::new("postgres://u@127.0.0.1/db"));
            configure(&config, &mut node);
            assert_eq!(node.retention, Duration::from_secs(retention), "{text}");
            assert_eq!(
                node.forget_nodes_after,
                Duration::from_secs(forget),
                "{text}"
            );
            assert_eq!(node.timeout_grace, Duration::from_secs(grace), "{text}");
        }
    }
}
