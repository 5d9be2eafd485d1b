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
        SecretSource::File(path) => tokio::fs::read(path).await.map_err(|e| {
            Status::failed_precondition(format!(
                "reading secret {id:?} from {}: {e}",
                path.display()
            ))
        }),
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
mod tests {
    use super::*;
    use crate::buildkit::Secret;

    #[tokio::test]
    async fn serves_each_source_and_not_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("s");
        std::fs::write(&file, b"from-file").expect("write");
        let service = SecretsService {
            secrets: BTreeMap::from([
                ("f".to_owned(), SecretSource::File(file)),
                ("t".to_owned(), SecretSource::Text(Secret::new("text"))),
                ("e".to_owned(), SecretSource::Env("PATH".into())),
                (
                    "missing-env".to_owned(),
                    SecretSource::Env("OCI_BUILD_NO_SUCH_VAR_X".into()),
                ),
            ]),
        };
        let get = |id: &str| GetSecretRequest {
            id: id.into(),
            ..Default::default()
        };
        let f = service
            .get_secret(Request::new(get("f")))
            .await
            .expect("f")
            .into_inner();
        assert_eq!(&f.data[..], b"from-file");
        let t = service
            .get_secret(Request::new(get("t")))
            .await
            .expect("t")
            .into_inner();
        assert_eq!(&t.data[..], b"text");
        let e = service
            .get_secret(Request::new(get("e")))
            .await
            .expect("e")
            .into_inner();
        assert_eq!(e.data, std::env::var("PATH").expect("PATH"));
        let nf = service
            .get_secret(Request::new(get("nope")))
            .await
            .expect_err("not found");
        assert_eq!(nf.code(), tonic::Code::NotFound);
        let ne = service
            .get_secret(Request::new(get("missing-env")))
            .await
            .expect_err("unset");
        assert_eq!(ne.code(), tonic::Code::NotFound);
    }
}
