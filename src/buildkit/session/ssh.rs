//! `moby.sshforward.v1.SSH`: forwards `RUN --mount=type=ssh` to an ssh-agent
//! socket. Each `ForwardAgent` call is one agent connection; bytes are piped
//! raw both ways, and our side half-closes when the agent closes.
//!
//! A key file is served by the in-process agent of [`super::agent`] instead
//! of a socket.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::agent::{self, AgentKey};
use crate::buildkit::proto::moby::sshforward::v1::ssh_server::Ssh;
use crate::buildkit::proto::moby::sshforward::v1::{
    BytesMessage, CheckAgentRequest, CheckAgentResponse,
};

/// What answers for one ssh id.
#[derive(Debug, Clone)]
pub(crate) enum AgentSource {
    /// An ssh-agent socket.
    Socket(PathBuf),
    /// A loaded key, served in-process.
    Key(AgentKey),
}

/// Agents by ssh id (`default` when the Dockerfile names none).
pub(crate) struct SshService {
    pub(crate) agents: BTreeMap<String, AgentSource>,
}

impl SshService {
    fn agent(&self, id: &str) -> Result<AgentSource, Status> {
        let id = if id.is_empty() { "default" } else { id };
        self.agents.get(id).cloned().ok_or_else(|| {
            Status::not_found(format!("no ssh agent with id {id:?} in this session"))
        })
    }
}

#[tonic::async_trait]
impl Ssh for SshService {
    async fn check_agent(
        &self,
        request: Request<CheckAgentRequest>,
    ) -> Result<Response<CheckAgentResponse>, Status> {
        self.agent(&request.into_inner().id)?;
        Ok(Response::new(CheckAgentResponse {}))
    }

    type ForwardAgentStream = ReceiverStream<Result<BytesMessage, Status>>;

    async fn forward_agent(
        &self,
        request: Request<Streaming<BytesMessage>>,
    ) -> Result<Response<Self::ForwardAgentStream>, Status> {
        let id = request
            .metadata()
            .get("buildkit.ssh.id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let socket = match self.agent(&id)? {
            AgentSource::Socket(socket) => socket,
            AgentSource::Key(key) => {
                return Ok(Response::new(serve_key(key, request.into_inner())));
            }
        };
        let conn = tokio::net::UnixStream::connect(&socket)
            .await
            .map_err(|e| {
                Status::unavailable(format!("connecting to ssh agent {}: {e}", socket.display()))
            })?;
        let (mut agent_rd, mut agent_wr) = conn.into_split();
        let mut incoming = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            while let Ok(Some(msg)) = incoming.message().await {
                if agent_wr.write_all(&msg.data).await.is_err() {
                    break;
                }
            }
            let _ = agent_wr.shutdown().await;
        });
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match agent_rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let msg = BytesMessage {
                            data: bytes::Bytes::copy_from_slice(&buf[..n]),
                        };
                        if tx.send(Ok(msg)).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Runs the in-process agent on one forwarded connection.
fn serve_key(
    key: AgentKey,
    mut incoming: Streaming<BytesMessage>,
) -> ReceiverStream<Result<BytesMessage, Status>> {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        let mut buf = Vec::new();
        while let Ok(Some(msg)) = incoming.message().await {
            buf.extend_from_slice(&msg.data);
            // A request larger than any real one: the peer is not an ssh client.
            if buf.len() > 1 << 20 {
                break;
            }
            while let Some(request) = agent::next_message(&mut buf) {
                let reply = agent::frame(&agent::handle(&key, &request));
                if tx
                    .send(Ok(BytesMessage { data: reply.into() }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    ReceiverStream::new(rx)
}
