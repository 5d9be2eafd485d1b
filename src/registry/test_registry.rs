//! Our client for the shared test registries (`test_support::registry`),
//! for the unit tests here and in `store`. It lives in the library, not in
//! test-support, because test-support must not depend on the library (the
//! unit tests would then see a second copy of these types): it hands out the
//! registry's host, CA and credentials as plain data, and this builds our
//! types from them.

use test_support::registry::Registry;

use super::{Access, Client, Credentials, Repository, TlsOptions};
use crate::secret::Secret;

/// [`Client`] and its parts for a test registry.
pub(crate) trait TestRegistryExt {
    /// `<host>/<repo>` as our registry client's [`Repository`].
    fn repository(&self, repo: &str) -> Repository;

    /// This registry's credentials for our client (anonymous for the plain
    /// one).
    fn credentials(&self) -> Credentials;

    /// TLS options trusting this registry's CA.
    fn tls_options(&self) -> TlsOptions;

    /// Our registry client for `<host>/<repo>`, with this registry's
    /// credentials and CA.
    fn client(&self, repo: &str, access: Access) -> Client {
        Client::new(
            &self.repository(repo),
            self.credentials(),
            &self.tls_options(),
            access,
        )
        .expect("building a registry client for the test registry")
    }
}

impl TestRegistryExt for Registry {
    fn repository(&self, repo: &str) -> Repository {
        Repository::parse(&self.repo(repo)).expect("a valid test repository name")
    }

    fn credentials(&self) -> Credentials {
        match (&self.username, &self.password) {
            (Some(username), Some(password)) => Credentials::Basic {
                username: username.clone(),
                password: Secret::new(password.clone()),
            },
            _ => Credentials::Anonymous,
        }
    }

    fn tls_options(&self) -> TlsOptions {
        TlsOptions {
            ca_certs: self.ca_pem.iter().cloned().collect(),
            insecure: false,
            read_timeout: None,
        }
    }
}

/// Wraps unit tests that start the shared test registries: without
/// docker-registry, skopeo, umoci, openssl and htpasswd on PATH (build.rs
/// sets the `have_*` cfgs; under `CI=true` it fails instead) they are
/// ignored with one reason, instead of failing.
macro_rules! needs_test_registry {
    ($($(#[$meta:meta])* async fn $name:ident() $body:block)*) => {
        $(
            $(#[$meta])*
            #[cfg_attr(
                not(all(
                    have_docker_registry,
                    have_skopeo,
                    have_umoci,
                    have_openssl,
                    have_htpasswd
                )),
                ignore = "needs docker-registry, skopeo, umoci, openssl and htpasswd on PATH"
            )]
            async fn $name() $body
        )*
    };
}
pub(crate) use needs_test_registry;
