//! `ssh://[user@]host[:port][/path/to/buildkitd.sock]`: a daemon on another
//! host, reached through the system OpenSSH client running the daemon's own
//! stdio dialer there.
//!
//! Which daemon: the URL form decides, no probe. Without a path it is the
//! remote Docker Engine, through `docker system dial-stdio` (what
//! `DOCKER_HOST=ssh://user@host` does; an Engine on another socket is chosen
//! by `DOCKER_HOST` in the remote account's environment). With a path it is
//! a buildkitd listening on that unix socket, through
//! `buildctl --addr unix://<path> dial-stdio`. A probe would need a round
//! trip (or a failed one) before every build and could pick differently on
//! a host that runs both; the URL says it once.
//!
//! Why the system `ssh` and not an SSH crate: OpenSSH's host key checking
//! (`StrictHostKeyChecking=yes` against a known_hosts file, with hashed
//! entries, `[host]:port` forms, `@revoked` and `@cert-authority` lines) is
//! the reference implementation users write their known_hosts for, and it
//! ships with security updates from the distribution. The Rust SSH clients
//! (russh, ssh2 over libssh2) would add a second crypto stack and a larger
//! binary, and leave host key checking and known_hosts parsing to us. The
//! cost is one `ssh` process per connection (a handshake each; a put
//! opens a handful) and the `openssh-client` package in the image.
//!
//! How: [`SshTunnel::open`] writes the key and known_hosts as 0600 files in
//! a fresh 0700 temp dir (removed when the tunnel drops) and listens on a
//! unix socket in that same dir. Every connection to it starts one `ssh`
//! with the dial command and relays bytes both ways. Everything that dials a
//! daemon (the gRPC channel, the Engine's `/grpc` and `/session` upgrades,
//! its API for the version and the image read-back) then dials that socket
//! exactly as it dials `unix://` and `docker://` ones
//! (see `src/buildkit/transport.rs`), so the session (context upload,
//! secrets, ssh forwarding, registry auth) and the push take the same code.
//!
//! ssh runs with `-F /dev/null` (no `~/.ssh/config` or system config),
//! `BatchMode=yes`, `StrictHostKeyChecking=yes` against our known_hosts
//! only, `IdentitiesOnly=yes` with our key only and no agent, and no
//! forwarding of any kind: a missing or changed host key, a refused key or
//! a dead host fails the build with ssh's own message
//! ([`Error::Ssh`](super::Error::Ssh)).

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

use super::{Address, Error, Secret};

/// Where an `ssh://` address points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Remote user (ssh's default, the local user name, when absent).
    pub user: Option<String>,
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    /// Port (22 when absent).
    pub port: Option<u16>,
    /// A buildkitd's unix socket on the remote host; absent means the
    /// remote Docker Engine.
    pub socket: Option<PathBuf>,
    /// The local socket of the open [`SshTunnel`], set by it; dialling an
    /// `ssh://` address without one fails.
    pub tunnel: Option<PathBuf>,
}

impl std::fmt::Display for SshTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ssh://")?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        if let Some(socket) = &self.socket {
            write!(f, "{}", socket.display())?;
        }
        Ok(())
    }
}

impl SshTarget {
    /// Parses what follows `ssh://`.
    pub(crate) fn parse(rest: &str) -> Result<SshTarget, &'static str> {
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((user, hostport)) => (Some(user), hostport),
            None => (None, authority),
        };
        if user.is_some_and(|u| u.is_empty() || u.starts_with('-')) {
            return Err("invalid user");
        }
        if user.is_some_and(|u| u.contains(':')) {
            return Err("passwords are not accepted in ssh:// addresses; use source.buildkit_ssh");
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            match v6.split_once(']') {
                Some((host, "")) => (host, None),
                Some((host, port)) => (
                    host,
                    Some(port.strip_prefix(':').ok_or("expected ssh://[ipv6]:port")?),
                ),
                None => return Err("expected ssh://[ipv6]:port"),
            }
        } else {
            match hostport.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err("missing host");
        }
        if host.starts_with('-') || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("invalid host");
        }
        let port = match port {
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or("invalid port")?,
            ),
            None => None,
        };
        let socket = match path {
            "" | "/" => None,
            p if p.chars().any(|c| c.is_control()) => return Err("invalid socket path"),
            p => Some(PathBuf::from(p)),
        };
        Ok(SshTarget {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
            socket,
            tunnel: None,
        })
    }

    /// Whether this is a Docker Engine (no socket path given).
    pub fn is_engine(&self) -> bool {
        self.socket.is_none()
    }

    /// The command run on the remote host, as one string for its shell.
    pub fn remote_command(&self) -> String {
        match &self.socket {
            None => "docker system dial-stdio".into(),
            Some(socket) => format!(
                "buildctl --addr {} dial-stdio",
                shell_quote(&format!("unix://{}", socket.display()))
            ),
        }
    }

    /// ssh's arguments, with the key and known_hosts in `dir`.
    fn ssh_args(&self, dir: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["-F".into(), "/dev/null".into()];
        let option = |args: &mut Vec<OsString>, o: String| {
            args.push("-o".into());
            args.push(o.into());
        };
        for o in [
            "BatchMode=yes",
            "StrictHostKeyChecking=yes",
            "UpdateHostKeys=no",
            "CheckHostIP=no",
            "GlobalKnownHostsFile=/dev/null",
            "IdentitiesOnly=yes",
            "IdentityAgent=none",
            "PasswordAuthentication=no",
            "KbdInteractiveAuthentication=no",
            "ForwardAgent=no",
            "ForwardX11=no",
            "ClearAllForwardings=yes",
            "ControlMaster=no",
            "ControlPath=none",
            "RequestTTY=no",
            "ConnectTimeout=15",
            // A dead peer (or network) ends the connection within ~90 s
            // instead of hanging the build.
            "ServerAliveInterval=30",
            "ServerAliveCountMax=3",
            "LogLevel=ERROR",
        ] {
            option(&mut args, o.to_owned());
        }
        option(
            &mut args,
            format!("UserKnownHostsFile={}", dir.join("known_hosts").display()),
        );
        option(
            &mut args,
            format!("IdentityFile={}", dir.join("id").display()),
        );
        if let Some(port) = self.port {
            args.push("-p".into());
            args.push(port.to_string().into());
        }
        if let Some(user) = &self.user {
            args.push("-l".into());
            args.push(user.into());
        }
        args.push("--".into());
        args.push(self.host.clone().into());
        args.push(self.remote_command().into());
        args
    }
}

/// Single-quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The key and host keys for an `ssh://` address.
#[derive(Debug, Clone)]
pub struct SshCredentials {
    /// Private key text (OpenSSH or PEM), unencrypted (ssh runs in batch
    /// mode and cannot ask for a passphrase).
    pub private_key: Secret,
    /// known_hosts text that must list the host's key.
    pub known_hosts: String,
}

/// What the relays saw go wrong, for the error of a build that failed.
struct State {
    failure: Mutex<Option<String>>,
    /// The temp dir, whose paths ssh's advice names (not the user's files).
    dir: String,
}

impl State {
    fn record(&self, message: String) {
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        // The first failure is the cause; later ones are its echoes.
        failure.get_or_insert(message);
    }
}

/// A local unix socket whose every connection is relayed through a new
/// `ssh` to the remote dial command. Dropping it stops the relays (their
/// `ssh` processes are killed) and removes the temp dir with the key.
pub struct SshTunnel {
    address: Address,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl SshTunnel {
    /// Writes the credentials and starts listening (no ssh runs until the
    /// first connection). Needs a tokio runtime.
    pub fn open(target: &SshTarget, credentials: &SshCredentials) -> Result<SshTunnel, Error> {
        let name = target.to_string();
        let setup = |what: &'static str| {
            let address = name.clone();
            move |source: std::io::Error| Error::SshSetup {
                address,
                what,
                source,
            }
        };
        if credentials.private_key.expose().is_empty() {
            return Err(Error::InvalidAddress {
                address: name,
                reason: "source.buildkit_ssh.private_key is empty: give the private key (PEM or \
                         OpenSSH text) of a user allowed on the host"
                    .into(),
            });
        }
        if credentials.known_hosts.trim().is_empty() {
            return Err(Error::InvalidAddress {
                address: name,
                reason: "source.buildkit_ssh.known_hosts is empty: give the host's key as a \
                         known_hosts line (ssh-keyscan output), e.g. `host ssh-ed25519 AAAA...`, or \
                         `[host]:port ...` for a port other than 22"
                    .into(),
            });
        }
        // The directory is made 0700 while still empty (tempfile leaves it
        // to the umask), and each file is created 0600 before it is written.
        let dir = tempfile::Builder::new()
            .prefix("oci-build-ssh-")
            .tempdir()
            .map_err(setup("creating a private temp dir"))?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(setup("making the temp dir private"))?;
        let mut key = credentials.private_key.expose().to_owned();
        if !key.ends_with('\n') {
            // OpenSSH refuses a key file without its final newline.
            key.push('\n');
        }
        write_private(&dir.path().join("id"), key.as_bytes())
            .map_err(setup("writing the private key"))?;
        let mut known_hosts = credentials.known_hosts.clone();
        known_hosts.push('\n');
        write_private(&dir.path().join("known_hosts"), known_hosts.as_bytes())
            .map_err(setup("writing known_hosts"))?;
        let socket = dir.path().join("dial.sock");
        let listener = UnixListener::bind(&socket).map_err(setup("listening on a local socket"))?;
        let args = Arc::new(target.ssh_args(dir.path()));
        let state = Arc::new(State {
            failure: Mutex::new(None),
            dir: dir.path().display().to_string(),
        });
        let accept = tokio::spawn(accept_loop(listener, args, state.clone()));
        let mut target = target.clone();
        target.tunnel = Some(socket);
        Ok(SshTunnel {
            address: Address::Ssh(target),
            state,
            accept,
            _dir: dir,
        })
    }

    /// The address to dial: the `ssh://` target with this tunnel's socket.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// What ssh (or the remote command) reported when a connection failed,
    /// if one did.
    pub fn failure(&self) -> Option<String> {
        self.state
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The error to report instead of a failed build's own, when ssh (or
    /// the remote command) failed under it: "connection closed" from the
    /// gRPC layer says less than ssh's "Host key verification failed".
    pub fn failure_error(&self) -> Option<Error> {
        self.failure().map(|message| Error::Ssh {
            address: self.address.to_string(),
            message,
        })
    }
}

impl Drop for SshTunnel {
    fn drop(&mut self) {
        // Drops the JoinSet of relays, whose ssh children are kill_on_drop.
        self.accept.abort();
    }
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(data)?;
    file.sync_all()
}

async fn accept_loop(listener: UnixListener, args: Arc<Vec<OsString>>, state: Arc<State>) {
    let mut relays = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((conn, _)) => {
                    relays.spawn(relay(conn, args.clone(), state.clone()));
                }
                Err(e) => {
                    state.record(format!("accepting on the local tunnel socket: {e}"));
                    return;
                }
            },
            Some(_) = relays.join_next(), if !relays.is_empty() => {}
        }
    }
}

/// Longest ssh stderr kept per connection.
const STDERR_LIMIT: usize = 16 * 1024;

/// Relays one local connection through one `ssh`.
async fn relay(conn: UnixStream, args: Arc<Vec<OsString>>, state: Arc<State>) {
    let mut child = match tokio::process::Command::new("ssh")
        .args(args.iter())
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            state.record(format!(
                "running the ssh client failed ({e}); install openssh-client"
            ));
            return;
        }
    };
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        state.record("the ssh client's stdio was not piped".into());
        return;
    };
    let (mut from_client, mut to_client) = conn.into_split();
    // Set once our side closed: what ssh does after that is no failure.
    let client_closed = AtomicBool::new(false);
    let up = async {
        let _ = tokio::io::copy(&mut from_client, &mut stdin).await;
        client_closed.store(true, Ordering::SeqCst);
        // EOF to the remote dialer, which then closes its side.
        drop(stdin);
        // Give it time to finish, then stop waiting.
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    // ssh's stdout and stderr until both close; the client's side stays
    // open until the failure is recorded below, so that the error the
    // client then sees can name it.
    let down = async {
        let copy = tokio::io::copy(&mut stdout, &mut to_client);
        let mut text = Vec::new();
        let mut limited = (&mut stderr).take(STDERR_LIMIT as u64);
        let read = limited.read_to_end(&mut text);
        let _ = tokio::join!(copy, read);
        text
    };
    let stderr_text = tokio::select! {
        text = down => Some(text),
        () = up => None,
    };
    if client_closed.load(Ordering::SeqCst) {
        // kill_on_drop ends an ssh that has not exited yet.
        return;
    }
    let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(Ok(status)) => Some(status),
        _ => None,
    };
    let stderr_text = stderr_text
        .map(|t| String::from_utf8_lossy(&t).trim().to_owned())
        .unwrap_or_default();
    if !stderr_text.is_empty() {
        tracing::debug!("ssh: {stderr_text}");
    }
    let stderr_text = summarize(&stderr_text, &state.dir);
    let message = match (status, stderr_text.is_empty()) {
        // The remote end closed cleanly (the daemon ended the connection).
        (Some(s), true) if s.success() => return,
        (Some(s), true) => format!("ssh (or the remote dial-stdio command) ended with {s}"),
        (Some(s), false) => format!("{stderr_text} (ssh {s})"),
        (None, true) => "ssh closed the connection".to_owned(),
        (None, false) => stderr_text,
    };
    state.record(message);
    let _ = to_client.shutdown().await;
}

/// ssh's error output as one line: its last two lines (the reason), plus
/// the fingerprint the host sent when ssh printed one. The rest is the
/// "REMOTE HOST IDENTIFICATION HAS CHANGED" banner and advice about files
/// in our temp dir, which is gone by the time anyone reads it.
fn summarize(stderr: &str, dir: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('@') && !l.contains(dir))
        .collect();
    let mut out = lines[lines.len().saturating_sub(2)..].join(" ");
    if let Some(fingerprint) = lines
        .iter()
        .find(|l| l.starts_with("SHA256:") && !out.contains(**l))
    {
        out.push_str(&format!(
            " (the host sent the key {})",
            fingerprint.trim_end_matches('.')
        ));
    }
    out
}

#[cfg(test)]
mod tests;
