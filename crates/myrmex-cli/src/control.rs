//! The daemon's local control channel: a Unix socket, line-delimited JSON.
//!
//! Only the daemon's own user can use it: the socket (mode 0600) lives in a folder of
//! mode 0700 owned by that user, beside the state store. A folder that is not owned
//! by the user or that others can enter is refused rather than repaired.
//!
//! Each connection carries requests, one JSON object per line, each answered by one
//! JSON object per line:
//!
//! ```text
//! > {"op":"trigger","job":"backup"}
//! < {"ok":true,"message":"triggered `backup`"}
//! > {"op":"pause","job":"nope"}
//! < {"ok":false,"error":"unknown job `nope`"}
//! ```

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The socket's file name inside the control folder.
pub const SOCKET_NAME: &str = "daemon.sock";

/// A request to the daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Is anybody there?
    Ping,
    /// Run a job now.
    Trigger {
        /// The job.
        job: String,
    },
    /// Stop turning a job's fires into runs.
    Pause {
        /// The job.
        job: String,
    },
    /// Undo [`Request::Pause`].
    Resume {
        /// The job.
        job: String,
    },
}

/// The daemon's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request was carried out.
    pub ok: bool,
    /// What was done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// A success.
    pub fn ok(message: impl Into<String>) -> Self {
        Response {
            ok: true,
            message: Some(message.into()),
            error: None,
        }
    }

    /// A refusal.
    pub fn refused(error: impl Into<String>) -> Self {
        Response {
            ok: false,
            message: None,
            error: Some(error.into()),
        }
    }
}

/// Why the control channel could not be set up or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The folder or socket could not be created or checked.
    #[error("cannot set up the control socket in {}", dir.display())]
    Setup {
        /// The control folder.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The folder exists but others could use it.
    #[error("control folder {} is not private (it must be a folder owned by you with mode 0700)", dir.display())]
    NotPrivate {
        /// The control folder.
        dir: PathBuf,
    },
    /// A daemon already answers on the socket.
    #[error("a daemon is already running on {}", socket.display())]
    AlreadyRunning {
        /// The socket.
        socket: PathBuf,
    },
    /// No daemon answers on the socket.
    #[error("no daemon is running on {}", socket.display())]
    Unreachable {
        /// The socket.
        socket: PathBuf,
        /// Why the connection failed.
        #[source]
        source: std::io::Error,
    },
    /// The conversation with the daemon failed half-way.
    #[error("the daemon on {} did not answer properly", socket.display())]
    Protocol {
        /// The socket.
        socket: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Sends one request to the daemon whose control folder is `dir`.
///
/// # Errors
/// [`ControlError::Unreachable`] when no daemon listens, [`ControlError::Protocol`]
/// when it does not answer with a response.
pub fn request(dir: &Path, req: &Request) -> Result<Response, ControlError> {
    let socket = dir.join(SOCKET_NAME);
    let stream = UnixStream::connect(&socket).map_err(|source| ControlError::Unreachable {
        socket: socket.clone(),
        source,
    })?;
    let protocol = |source| ControlError::Protocol {
        socket: socket.clone(),
        source,
    };
    let mut line = serde_json::to_string(req).map_err(|e| protocol(e.into()))?;
    line.push('\n');
    (&stream).write_all(line.as_bytes()).map_err(protocol)?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(protocol)?;
    if answer.is_empty() {
        return Err(protocol(std::io::ErrorKind::UnexpectedEof.into()));
    }
    serde_json::from_str(&answer).map_err(|e| protocol(e.into()))
}

/// The listening side, owned by the daemon. Dropping it does not stop the accept
/// thread; call [`ControlServer::stop`].
pub struct ControlServer {
    socket: PathBuf,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Creates the private folder `dir` if needed, binds the socket and answers each
    /// request with `handle` on a dedicated thread.
    ///
    /// # Errors
    /// [`ControlError::AlreadyRunning`] when another daemon answers on the socket,
    /// [`ControlError::NotPrivate`] or [`ControlError::Setup`] when the folder is
    /// unusable.
    pub fn start(
        dir: &Path,
        handle: impl Fn(Request) -> Response + Send + 'static,
    ) -> Result<ControlServer, ControlError> {
        let setup = |source| ControlError::Setup {
            dir: dir.to_path_buf(),
            source,
        };
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(setup(e)),
        }
        let meta = fs::symlink_metadata(dir).map_err(setup)?;
        let me = rustix::process::geteuid().as_raw();
        if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o077 != 0 {
            return Err(ControlError::NotPrivate {
                dir: dir.to_path_buf(),
            });
        }
        let socket = dir.join(SOCKET_NAME);
        if socket.exists() {
            if UnixStream::connect(&socket).is_ok() {
                return Err(ControlError::AlreadyRunning { socket });
            }
            // A socket left by a daemon that died: nobody listens on it.
            fs::remove_file(&socket).map_err(setup)?;
        }
        let listener = UnixListener::bind(&socket).map_err(setup)?;
        fs::set_permissions(&socket, fs::Permissions::from_mode(0o600)).map_err(setup)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let stopping = Arc::clone(&stopping);
            std::thread::Builder::new()
                .name("myrmex-control".into())
                .spawn(move || accept_loop(&listener, &stopping, &handle))
                .map_err(setup)?
        };
        Ok(ControlServer {
            socket,
            stopping,
            thread: Some(thread),
        })
    }

    /// The socket's path.
    #[cfg(test)]
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Stops accepting, joins the accept thread and removes the socket.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the blocking accept(); it sees the flag and returns.
        let _ = UnixStream::connect(&self.socket);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = fs::remove_file(&self.socket);
    }
}

fn accept_loop(
    listener: &UnixListener,
    stopping: &AtomicBool,
    handle: &dyn Fn(Request) -> Response,
) {
    for conn in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = conn else { continue };
        // A client that connects and says nothing must not hold up the others for
        // long; requests are one short line each.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
        serve(&stream, handle);
    }
}

fn serve(stream: &UnixStream, handle: &dyn Fn(Request) -> Response) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let response = match serde_json::from_str::<Request>(line.trim()) {
            Ok(req) => handle(req),
            Err(e) => Response::refused(format!("invalid request: {e}")),
        };
        let Ok(mut out) = serde_json::to_string(&response) else {
            return;
        };
        out.push('\n');
        if (&*stream).write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_answered_and_the_folder_is_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state.db.control");
        let server = ControlServer::start(&dir, |req| match req {
            Request::Trigger { job } if job == "a" => Response::ok("triggered `a`"),
            Request::Trigger { job } => Response::refused(format!("unknown job `{job}`")),
            _ => Response::ok("pong"),
        })
        .unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(server.socket()), 0o600);

        let r = request(&dir, &Request::Trigger { job: "a".into() }).unwrap();
        assert_eq!(r, Response::ok("triggered `a`"));
        let r = request(&dir, &Request::Trigger { job: "b".into() }).unwrap();
        assert_eq!(r, Response::refused("unknown job `b`"));

        // A second daemon on the same folder is refused while the first listens.
        let second = ControlServer::start(&dir, |_| Response::ok(""));
        assert!(matches!(second, Err(ControlError::AlreadyRunning { .. })));

        server.stop();
        let gone = request(&dir, &Request::Ping);
        assert!(
            matches!(gone, Err(ControlError::Unreachable { .. })),
            "{gone:?}"
        );
    }

    #[test]
    fn a_shared_folder_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("open");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let r = ControlServer::start(&dir, |_| Response::ok(""));
        assert!(matches!(r, Err(ControlError::NotPrivate { .. })));
    }

    #[test]
    fn requests_have_a_stable_wire_form() {
        let line = serde_json::to_string(&Request::Pause { job: "x".into() }).unwrap();
        assert_eq!(line, r#"{"op":"pause","job":"x"}"#);
        let r: Response = serde_json::from_str(r#"{"ok":false,"error":"no"}"#).unwrap();
        assert_eq!(r, Response::refused("no"));
    }
}
