//! `moby.filesync.v1.FileSend`: the daemon streams a file exporter's output
//! (`tar`, `oci`, `docker` tarballs) back to the client, which writes it to
//! the file the caller chose for that exporter. The exporter is identified by
//! the `buildkit-attachable-exporter-id` metadata (its index in the request;
//! absent on daemons older than v0.13, meaning the only exporter, 0). Chunks
//! are written as they arrive, so memory stays bounded.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::buildkit::proto::moby::filesync::v1::BytesMessage;
use crate::buildkit::proto::moby::filesync::v1::file_send_server::FileSend;

/// Output files by exporter index (`None`: that exporter has no file output).
pub(crate) struct FileSendService {
    pub(crate) outputs: Arc<Vec<Option<PathBuf>>>,
}

#[tonic::async_trait]
impl FileSend for FileSendService {
    type DiffCopyStream = ReceiverStream<Result<BytesMessage, Status>>;

    async fn diff_copy(
        &self,
        request: Request<Streaming<BytesMessage>>,
    ) -> Result<Response<Self::DiffCopyStream>, Status> {
        let index: usize = match request.metadata().get("buildkit-attachable-exporter-id") {
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    Status::invalid_argument("invalid buildkit-attachable-exporter-id")
                })?,
            None => 0,
        };
        let path = self
            .outputs
            .get(index)
            .cloned()
            .flatten()
            .ok_or_else(|| Status::not_found(format!("exporter {index} has no output file")))?;
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| Status::internal(format!("creating {}: {e}", path.display())))?;
        let mut incoming = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            let result: Result<(), Status> = async {
                while let Some(msg) = incoming.message().await? {
                    file.write_all(&msg.data).await.map_err(|e| {
                        Status::internal(format!("writing {}: {e}", path.display()))
                    })?;
                }
                file.flush()
                    .await
                    .map_err(|e| Status::internal(format!("writing {}: {e}", path.display())))?;
                file.sync_all()
                    .await
                    .map_err(|e| Status::internal(format!("writing {}: {e}", path.display())))
            }
            .await;
            if let Err(status) = result {
                tracing::warn!(path = %path.display(), error = %status.message(), "receiving exporter output failed");
                let _ = tx.send(Err(status)).await;
            }
            // Dropping tx ends our side with OK after the daemon's EOF.
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
