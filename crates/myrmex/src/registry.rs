//! Handlers registered by name, so that persisted jobs can name their code.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::context::{Handler, JobError, RunContext};

/// A registered handler: the run's context and the job's JSON arguments.
pub type NamedHandler =
    Arc<dyn Fn(&RunContext, &serde_json::Value) -> Result<(), JobError> + Send + Sync + 'static>;

/// Handlers by name. A persisted job stores the name of its handler and its JSON
/// arguments; on start, each job is bound to the handler registered under that name
/// (see [`PersistentScheduler`](crate::PersistentScheduler)).
///
/// ```
/// use myrmex::Registry;
///
/// let mut registry = Registry::new();
/// registry.register("backup", |ctx, args| {
///     let path = args["path"].as_str().unwrap_or("/");
///     println!("backing up {path} for {}", ctx.scheduled_at());
///     Ok(())
/// });
/// assert!(registry.contains("backup"));
/// assert_eq!(registry.names().collect::<Vec<_>>(), ["backup"]);
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<String, NamedHandler>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.handlers.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` under `name`, replacing any handler of that name.
    pub fn register<F>(&mut self, name: impl Into<String>, handler: F) -> &mut Self
    where
        F: Fn(&RunContext, &serde_json::Value) -> Result<(), JobError> + Send + Sync + 'static,
    {
        self.handlers.insert(name.into(), Arc::new(handler));
        self
    }

    /// Whether a handler is registered under `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.handlers.contains_key(name)
    }

    /// The handler registered under `name`.
    pub fn get(&self, name: &str) -> Option<&NamedHandler> {
        self.handlers.get(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }

    /// The scheduler handler for a job: the named handler with the job's arguments bound.
    pub(crate) fn bind(&self, name: &str, args: serde_json::Value) -> Option<Handler> {
        let f = Arc::clone(self.handlers.get(name)?);
        Some(Arc::new(move |ctx: &RunContext| f(ctx, &args)))
    }
}
