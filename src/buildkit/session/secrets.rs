//! `moby.buildkit.secrets.v1.Secrets`: values for `RUN --mount=type=secret`,
//! by id, read from a file, given as text, or taken from an environment
//! variable at the moment the daemon asks. Values are never logged.

use std::collections::BTreeMap;

use tonic::{Request, Response, Status};

use crate::buildkit::SecretSource;
use crate::buildkit::proto::moby::buildkit::secrets::v1::secrets_server::Secrets;
use crate::buildkit::proto::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};

/// Serves the caller's secrets by id.
pub(crate) struct SecretsService {
    pub(crate) secrets: BTreeMap<String, SecretSource>,
}

/// Reads a secret's value; the error names the id and the source, not the value.
pub(crate) async fn read_secret(id: &str, source: &SecretSource) -> Result<Vec<u8>, Status> {
    match source {
        SecretSource::File(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                crate::small_file::read(&path, crate::small_file::SECRET_LIMIT)
            })
            .await
            .map_err(|e| Status::internal(format!("reading secret {id:?}: {e}")))?
            .map_err(|e| {
                Status::failed_precondition(format!(
                    "reading secret {id:?}: {}",
                    crate::oci::error_chain(&e)
                ))
            })
        }
        SecretSource::Text(text) => Ok(text.expose().as_bytes().to_vec()),
        SecretSource::Env(var) => std::env::var_os(var)
            .map(std::os::unix::ffi::OsStringExt::into_vec)
            .ok_or_else(|| {
                Status::not_found(format!(
                    "secret {id:?}: environment variable {var} is not set"
                ))
            }),
    }
}

#[tonic::async_trait]
impl Secrets for SecretsService {
    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        let id = request.into_inner().id;
        let source = self
            .secrets
            .get(&id)
            .ok_or_else(|| Status::not_found(format!("secret {id:?} not found")))?;
        tracing::debug!(%id, "secret provided to buildkit");
        let data = read_secret(&id, source).await?;
        Ok(Response::new(GetSecretResponse { data: data.into() }))
    }
}

#[cfg(test)]
mod tests;
