//! `moby.filesync.v1.Auth`: registry credentials for the daemon's pulls and
//! pushes (base images, cache, image export), looked up by registry host.
//!
//! Only `Credentials` is answered. `GetTokenAuthority` returns UNIMPLEMENTED,
//! which makes the daemon run the token exchange itself with the username and
//! secret (client-side token signing is not needed). Credentials are never
//! logged: only the host and whether a match was found.

use tonic::{Request, Response, Status};

use crate::buildkit::RegistryAuth;
use crate::buildkit::proto::moby::filesync::v1::auth_server::Auth;
use crate::buildkit::proto::moby::filesync::v1::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};

/// Answers credential requests from the caller's list.
pub(crate) struct AuthService {
    pub(crate) credentials: Vec<RegistryAuth>,
}

/// The names Docker Hub goes by; the daemon dials `registry-1.docker.io`.
const DOCKER_HUB: &[&str] = &[
    "registry-1.docker.io",
    "docker.io",
    "index.docker.io",
    "https://index.docker.io/v1/",
];

/// Reduces a configured host (`https://host:port/v2/`, `host`) to `host[:port]`.
fn normalize(host: &str) -> String {
    let h = host.trim();
    let h = h
        .strip_prefix("https://")
        .or_else(|| h.strip_prefix("http://"))
        .unwrap_or(h);
    let h = h.split('/').next().unwrap_or(h);
    if DOCKER_HUB.contains(&h) || DOCKER_HUB.contains(&host.trim()) {
        "registry-1.docker.io".into()
    } else {
        h.to_ascii_lowercase()
    }
}

impl AuthService {
    pub(crate) fn lookup(&self, host: &str) -> Option<&RegistryAuth> {
        let wanted = normalize(host);
        self.credentials
            .iter()
            .find(|c| normalize(&c.host) == wanted)
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn credentials(
        &self,
        request: Request<CredentialsRequest>,
    ) -> Result<Response<CredentialsResponse>, Status> {
        let host = request.into_inner().host;
        let reply = match self.lookup(&host) {
            Some(c) => {
                tracing::debug!(%host, "registry credentials provided to buildkit");
                CredentialsResponse {
                    username: c.username.clone(),
                    secret: c.password.expose().to_owned(),
                }
            }
            None => {
                tracing::debug!(%host, "no registry credentials for host; anonymous");
                CredentialsResponse::default()
            }
        };
        Ok(Response::new(reply))
    }

    async fn fetch_token(
        &self,
        _request: Request<FetchTokenRequest>,
    ) -> Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented(
            "client-side token fetching is not supported",
        ))
    }

    async fn get_token_authority(
        &self,
        _request: Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        // The documented "no token authority" answer: the daemon then uses
        // Credentials and fetches tokens itself.
        Err(Status::unimplemented("no token authority"))
    }

    async fn verify_token_authority(
        &self,
        _request: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("no token authority"))
    }
}

#[cfg(test)]
mod tests;
