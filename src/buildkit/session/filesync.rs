//! `moby.filesync.v1.FileSync`: the daemon pulls the named local directories
//! (`context`, `dockerfile`, named `local:` contexts) from the client.
//! Request metadata selects the directory and its filters; the transfer
//! itself is [`crate::buildkit::fsutil::send`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::buildkit::fsutil::{self, WalkOptions};
use crate::buildkit::proto::fsutil::types::Packet;
use crate::buildkit::proto::moby::filesync::v1::file_sync_server::FileSync;

/// Serves the caller's local directories by name.
pub(crate) struct FileSyncService {
    pub(crate) dirs: Arc<BTreeMap<String, PathBuf>>,
}

#[tonic::async_trait]
impl FileSync for FileSyncService {
    type DiffCopyStream = ReceiverStream<Result<Packet, Status>>;

    async fn diff_copy(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::DiffCopyStream>, Status> {
        let md = request.metadata();
        let name = metadata_values(md, "dir-name")
            .into_iter()
            .next()
            .unwrap_or_default();
        let root = self.dirs.get(&name).cloned().ok_or_else(|| {
            Status::not_found(format!("no local directory named {name:?} in this session"))
        })?;
        let options = WalkOptions {
            include_patterns: metadata_values(md, "include-patterns"),
            exclude_patterns: metadata_values(md, "exclude-patterns"),
            follow_paths: metadata_values(md, "followpaths"),
        };
        tracing::debug!(dir = %name, excludes = options.exclude_patterns.len(), "daemon pulls local directory");
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let incoming = request.into_inner();
        tokio::spawn(async move {
            if let Err(e) = fsutil::send(root.clone(), options, incoming, tx).await {
                tracing::warn!(dir = %name, path = %root.display(), error = %crate::buildkit::error_chain(&e), "uploading local directory failed");
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// All values of a metadata key. Since BuildKit v0.12, when any value is not
/// ASCII, all values of the key are URL-query-escaped and `<key>-encoded: 1`
/// is added; older daemons may send raw UTF-8 bytes.
pub(crate) fn metadata_values(md: &MetadataMap, key: &str) -> Vec<String> {
    let encoded = md
        .get(format!("{key}-encoded").as_str())
        .is_some_and(|v| v.as_encoded_bytes() == b"1");
    md.get_all(key)
        .iter()
        .map(|v| {
            let raw = String::from_utf8_lossy(v.as_encoded_bytes()).into_owned();
            if encoded { query_unescape(&raw) } else { raw }
        })
        .collect()
}

/// Go's `url.QueryUnescape` (`+` is a space); invalid escapes stay as is.
fn query_unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
