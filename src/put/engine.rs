//! A build on a Docker Engine: the Engine's BuildKit has no registry
//! exporter, so the image is read back (`docker save`) and pushed by
//! [`crate::store::push`].

use std::path::Path;

use super::{Error, Result};
use crate::progress::human;
use crate::registry;
use crate::store::prebuilt;
use crate::store::push::{Pushed, push_store};

/// Reads back what a Docker Engine built and pushes it by digest.
pub async fn push_from_engine(
    client: &registry::Client,
    socket: &Path,
    name: &str,
    annotations: &std::collections::BTreeMap<String, String>,
) -> Result<Pushed> {
    let dir = tempfile::tempdir().map_err(|e| Error::Io {
        what: "creating a temp dir for the Engine's image".into(),
        source: e,
    })?;
    let tar = dir.path().join("image.tar");
    tracing::info!("reading the built image {name} back from the Docker Engine (docker save)");
    let started = std::time::Instant::now();
    let mut reader = crate::buildkit::docker_engine::export_image(socket, name)
        .await
        .map_err(Error::from)?;
    let mut file = tokio::fs::File::create(&tar).await.map_err(|e| Error::Io {
        what: format!("writing {}", tar.display()),
        source: e,
    })?;
    let bytes = tokio::io::copy(&mut reader, &mut file)
        .await
        .map_err(|e| Error::Io {
            what: format!("reading image {name} from the Engine"),
            source: e,
        })?;
    drop(file);
    tracing::info!(
        "read {} from the Engine in {:.1}s; pushing it to {}",
        human(bytes),
        started.elapsed().as_secs_f64(),
        client.repository()
    );
    let store = prebuilt::for_push(&tar, annotations).await?;
    Ok(push_store(client, store).await?)
}
