//! The client side of a BuildKit session: a gRPC *server* the daemon calls
//! back into during a build (health, local directories, exporter output,
//! registry credentials, secrets, ssh agents).
//!
//! The server always runs on one end of an in-memory duplex pipe; a pump
//! moves the other end's bytes to the daemon through one of two tunnels
//! ([`SessionTunnel`]):
//! - the `Control.Session` bidi call ("grpchijack"): each `BytesMessage` the
//!   daemon sends is the next chunk of its HTTP/2 client stream, each chunk
//!   our HTTP/2 server writes goes back as one message. Works on buildkitd
//!   and, via the Engine's `/grpc` endpoint, on Docker Engine 20.10. The
//!   session id and served methods are lower-case request metadata.
//! - a Docker Engine's `POST /session`, upgraded to a raw stream on which the
//!   Engine is the HTTP/2 client; the same values are HTTP headers.
//!
//! The daemon refuses FileSync/FileSend calls whose methods were not
//! announced; Auth, Secrets and SSH answer UNIMPLEMENTED/NOT_FOUND when the
//! caller has nothing for them.

pub(crate) mod agent;
mod auth;
pub(crate) mod filesend;
pub(crate) mod filesync;
mod secrets;
mod ssh;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::io::ReaderStream;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use super::proto::moby::buildkit::secrets::v1::secrets_server::SecretsServer;
use super::proto::moby::buildkit::v1::BytesMessage;
use super::proto::moby::buildkit::v1::control_client::ControlClient;
use super::proto::moby::filesync::v1::auth_server::AuthServer;
use super::proto::moby::filesync::v1::file_send_server::FileSendServer;
use super::proto::moby::filesync::v1::file_sync_server::FileSyncServer;
use super::proto::moby::sshforward::v1::ssh_server::SshServer;
use super::{Error, MAX_MESSAGE_SIZE, SessionOptions, SshKind};

/// Every method the session server answers, as announced to the daemon.
pub(crate) const METHODS: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/moby.filesync.v1.FileSync/DiffCopy",
    "/moby.filesync.v1.FileSend/DiffCopy",
    "/moby.filesync.v1.Auth/Credentials",
    "/moby.filesync.v1.Auth/FetchToken",
    "/moby.filesync.v1.Auth/GetTokenAuthority",
    "/moby.filesync.v1.Auth/VerifyTokenAuthority",
    "/moby.buildkit.secrets.v1.Secrets/GetSecret",
    "/moby.sshforward.v1.SSH/CheckAgent",
    "/moby.sshforward.v1.SSH/ForwardAgent",
];

/// Size of the in-memory pipe between the session server and the tunnel,
/// and of the chunks sent through the tunnel. Small on purpose: health
/// checks must never queue behind megabytes of upload data.
const PIPE_SIZE: usize = 64 * 1024;

/// A session attached to the daemon; dropped or [`Session::close`]d after
/// the solve.
pub(crate) struct Session {
    /// The session id (`SolveRequest.Session`).
    pub(crate) id: String,
    server: JoinHandle<()>,
    pump: JoinHandle<()>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    half_close: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Session {
    /// A session dropped without [`Session::close`] (the solve future was
    /// cancelled) must not leave its tasks serving the daemon.
    fn drop(&mut self) {
        self.server.abort();
        self.pump.abort();
    }
}

/// Builds the session's gRPC router from the caller's options.
fn router(
    options: &SessionOptions,
    outputs: Vec<Option<PathBuf>>,
    keys: &std::collections::BTreeMap<String, agent::AgentKey>,
) -> tonic::transport::server::Router {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let agents = options
        .ssh
        .iter()
        .map(|s| {
            let source = match &s.kind {
                SshKind::Agent(socket) => ssh::AgentSource::Socket(socket.clone()),
                SshKind::Key(_) => ssh::AgentSource::Key(
                    keys.get(&s.id)
                        .cloned()
                        .expect("every key source was loaded by attach"),
                ),
            };
            (s.id.clone(), source)
        })
        .collect();
    tonic::transport::Server::builder()
        .add_service(health)
        .add_service(
            FileSyncServer::new(filesync::FileSyncService {
                dirs: Arc::new(options.local_dirs.clone()),
            })
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE),
        )
        .add_service(
            FileSendServer::new(filesend::FileSendService {
                outputs: Arc::new(outputs),
            })
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE),
        )
        .add_service(AuthServer::new(auth::AuthService {
            credentials: options.registry_auth.clone(),
        }))
        .add_service(SecretsServer::new(secrets::SecretsService {
            secrets: options.secrets.clone(),
        }))
        .add_service(SshServer::new(ssh::SshService { agents }))
}

/// How the session's byte stream reaches the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionTunnel {
    /// The `Control.Session` bidi call (buildkitd; Docker through `/grpc`).
    #[default]
    ControlSession,
    /// A Docker Engine's `POST /session` endpoint (what buildx's docker
    /// driver uses); only for `docker://` addresses.
    DockerSessionEndpoint,
}

impl Session {
    /// Starts the session server and attaches it through `tunnel`.
    pub(crate) async fn attach(
        control: &ControlClient<Channel>,
        tunnel: SessionTunnel,
        docker_socket: Option<&std::path::Path>,
        options: &SessionOptions,
        outputs: Vec<Option<PathBuf>>,
    ) -> Result<Session, Error> {
        let id = super::random_id();
        let (server_io, pump_io) = tokio::io::duplex(PIPE_SIZE);
        let keys = load_keys(options)?;
        let router = router(options, outputs, &keys);
        let (server, shutdown) = spawn_server(router, server_io);

        let (half_close, closing) = tokio::sync::oneshot::channel::<()>();
        let pump = match tunnel {
            SessionTunnel::DockerSessionEndpoint => {
                let socket = docker_socket.ok_or_else(|| Error::InvalidOption {
                    option: "session tunnel".into(),
                    reason: "the docker /session endpoint needs a docker:// address".into(),
                })?;
                docker_session_pump(socket, &id, &options.shared_key, pump_io, closing).await?
            }
            SessionTunnel::ControlSession => {
                control_session_pump(control, &id, &options.shared_key, pump_io, closing)?
            }
        };
        Ok(Session {
            id,
            server,
            pump,
            shutdown: Some(shutdown),
            half_close: Some(half_close),
        })
    }

    /// Ends the session: half-closes our side of the tunnel, stops serving,
    /// and waits briefly for the daemon to close its side.
    pub(crate) async fn close(mut self) {
        if let Some(tx) = self.half_close.take() {
            let _ = tx.send(());
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // If the daemon does not close its side in time, Drop cancels the call.
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.pump).await;
    }
}

/// Reads and checks every key file before the build starts, so that a bad
/// key fails the put at once rather than the `RUN` step that mounts it.
fn load_keys(options: &SessionOptions) -> Result<BTreeMap<String, agent::AgentKey>, Error> {
    let mut keys = BTreeMap::new();
    for s in &options.ssh {
        if let SshKind::Key(path) = &s.kind {
            keys.insert(
                s.id.clone(),
                agent::AgentKey::load(path).map_err(Error::SshKey)?,
            );
        }
    }
    Ok(keys)
}

/// Serves `router` on the one connection `io` until the returned sender
/// fires or is dropped, so that a session that fails to attach stops its
/// server too.
fn spawn_server(
    router: tonic::transport::server::Router,
    io: DuplexStream,
) -> (JoinHandle<()>, oneshot::Sender<()>) {
    let (shutdown, stop) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        // The stream must not end: tonic shuts its connections down as
        // soon as the incoming stream is exhausted.
        let incoming =
            futures::stream::iter([Ok::<_, std::io::Error>(io)]).chain(futures::stream::pending());
        let stop = async {
            let _ = stop.await;
        };
        if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
            tracing::debug!(error = %e, "session server ended");
        }
    });
    (server, shutdown)
}

/// Attaches through a Docker Engine's `POST /session`: the session's id,
/// key and methods go as HTTP headers, and the upgraded connection is the
/// tunnel, whose closing ends the session on the Engine.
async fn docker_session_pump(
    socket: &std::path::Path,
    id: &str,
    shared_key: &str,
    mut pump_io: DuplexStream,
    closing: oneshot::Receiver<()>,
) -> Result<JoinHandle<()>, Error> {
    let mut headers = vec![
        ("X-Docker-Expose-Session-Uuid", id.to_owned()),
        (
            "X-Docker-Expose-Session-Name",
            "oci-build-resource".to_owned(),
        ),
        ("X-Docker-Expose-Session-Sharedkey", shared_key.to_owned()),
    ];
    headers.extend(
        METHODS
            .iter()
            .map(|m| ("X-Docker-Expose-Session-Grpc-Method", (*m).to_owned())),
    );
    let upgraded = crate::buildkit::transport::upgrade_docker(socket, "/session", &headers)
        .await
        .map_err(|e| Error::Connect {
            address: format!("docker://{}", socket.display()),
            source: Box::new(e),
        })?;
    let mut engine = hyper_util::rt::TokioIo::new(upgraded);
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut pump_io, &mut engine) => {}
            // Closing the connection ends the session on the Engine.
            _ = closing => {}
        }
    }))
}

/// Attaches through the `Control.Session` bidi call: what our server
/// writes goes out as `BytesMessage`s, what the daemon sends is written
/// back into the pipe, and `closing` half-closes the call.
fn control_session_pump(
    control: &ControlClient<Channel>,
    id: &str,
    shared_key: &str,
    pump_io: DuplexStream,
    closing: oneshot::Receiver<()>,
) -> Result<JoinHandle<()>, Error> {
    let (pump_rd, mut pump_wr) = tokio::io::split(pump_io);
    let outbound = ReaderStream::with_capacity(pump_rd, PIPE_SIZE)
        // Ending this stream half-closes the call: the daemon then ends
        // the session and closes its side.
        .take_until(closing)
        .take_while(|r| futures::future::ready(r.is_ok()))
        .filter_map(|r| futures::future::ready(r.ok().map(|data: Bytes| BytesMessage { data })));
    let request = session_request(outbound, id, shared_key)?;

    let mut control = control.clone();
    Ok(tokio::spawn(async move {
        let mut inbound = match control.session(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                tracing::warn!(error = %status, "opening the buildkit session failed");
                return;
            }
        };
        loop {
            match inbound.message().await {
                Ok(Some(msg)) => {
                    if pump_wr.write_all(&msg.data).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(error = %status, "buildkit session stream ended");
                    break;
                }
            }
        }
        let _ = pump_wr.shutdown().await;
    }))
}

/// The `Control.Session` request: the session's id, key and methods go as
/// lower-case gRPC metadata; a value metadata cannot carry fails the attach
/// before any call is made.
fn session_request<S>(outbound: S, id: &str, shared_key: &str) -> Result<tonic::Request<S>, Error> {
    let mut request = tonic::Request::new(outbound);
    let md = request.metadata_mut();
    let value = |s: &str| {
        MetadataValue::try_from(s).map_err(|_| Error::InvalidOption {
            option: "session".into(),
            reason: format!("{s:?} cannot be sent as gRPC metadata"),
        })
    };
    md.insert("x-docker-expose-session-uuid", value(id)?);
    md.insert("x-docker-expose-session-name", value("oci-build-resource")?);
    md.insert("x-docker-expose-session-sharedkey", value(shared_key)?);
    for method in METHODS {
        md.append("x-docker-expose-session-grpc-method", value(method)?);
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    //! The session server in-process: tonic client and server over one
    //! `tokio::io::duplex` pair (tonic's mock example), no daemon.

    use super::*;
    use crate::buildkit::proto::fsutil::types::Packet;
    use crate::buildkit::proto::fsutil::types::packet::PacketType;
    use crate::buildkit::proto::moby::filesync::v1::file_sync_client::FileSyncClient;
    use hyper_util::rt::TokioIo;
    use std::collections::BTreeMap;

    async fn serve(options: &SessionOptions) -> Channel {
        let (client_io, server_io) = tokio::io::duplex(PIPE_SIZE);
        let router = router(options, Vec::new(), &BTreeMap::new());
        tokio::spawn(async move {
            let incoming = futures::stream::iter([Ok::<_, std::io::Error>(server_io)])
                .chain(futures::stream::pending());
            let _ = router.serve_with_incoming(incoming).await;
        });
        let mut client_io = Some(client_io);
        tonic::transport::Endpoint::from_static("http://session")
            .connect_with_connector(tower::service_fn(move |_| {
                let io = client_io.take();
                async move {
                    io.map(TokioIo::new)
                        .ok_or_else(|| std::io::Error::other("the duplex is handed out once"))
                }
            }))
            .await
            .expect("connect to the in-process session")
    }

    #[tokio::test]
    async fn health_and_filesync_over_one_stream() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("keep.txt"), b"data").expect("write");
        std::fs::write(dir.path().join("été.log"), b"dropped").expect("write");
        let options = SessionOptions {
            local_dirs: BTreeMap::from([("context".into(), dir.path().to_owned())]),
            ..SessionOptions::default()
        };
        let channel = serve(&options).await;

        let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health check")
            .into_inner();
        assert_eq!(
            health.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );

        // Unknown directory names are NOT_FOUND.
        let mut client = FileSyncClient::new(channel);
        let mut req = tonic::Request::new(futures::stream::pending::<Packet>());
        req.metadata_mut()
            .insert("dir-name", "nope".parse().expect("ascii"));
        let err = client.diff_copy(req).await.expect_err("unknown dir");
        assert_eq!(err.code(), tonic::Code::NotFound);

        // A transfer with an URL-encoded (non-ASCII) exclude pattern.
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        let md = req.metadata_mut();
        md.insert("dir-name", "context".parse().expect("ascii"));
        md.insert(
            "exclude-patterns",
            "%C3%A9t%C3%A9.log".parse().expect("ascii"),
        );
        md.insert("exclude-patterns-encoded", "1".parse().expect("ascii"));
        let mut packets = client.diff_copy(req).await.expect("diffcopy").into_inner();
        let mut listed = Vec::new();
        while let Some(p) = packets.message().await.expect("packet") {
            match p.stat {
                Some(stat) => listed.push(String::from_utf8_lossy(&stat.path).into_owned()),
                None => break,
            }
        }
        assert_eq!(listed, ["keep.txt"]);
        let packet = |kind: PacketType, id| Packet {
            r#type: kind as i32,
            id,
            ..Packet::default()
        };
        tx.send(packet(PacketType::PacketReq, 0))
            .await
            .expect("req");
        let data = packets.message().await.expect("data").expect("data packet");
        assert_eq!(&data.data[..], b"data");
        let eof = packets.message().await.expect("eof").expect("eof packet");
        assert!(eof.data.is_empty() && eof.r#type == PacketType::PacketData as i32);
        tx.send(packet(PacketType::PacketFin, 0))
            .await
            .expect("fin");
        let fin = packets.message().await.expect("fin").expect("fin packet");
        assert_eq!(fin.r#type, PacketType::PacketFin as i32);
        drop(tx);
        assert!(packets.message().await.expect("end").is_none());
    }
}
