//! The three resource steps, one module each: each takes the validated
//! request and returns the response value; [`crate::cli`] does the I/O.
//!
//! This file builds the registry access from `source` (the registry module
//! knows nothing of the request config) and adapts the registry client to
//! [`crate::image::fetch::BlobSource`] for check and get.

pub mod check;
pub mod get;
pub mod put;

use bytes::Bytes;

use crate::config::{RegistryCredentials, Source};
use crate::image::fetch::{BlobSource, FetchedManifest};
use crate::oci::Digest;
use crate::registry::{self, Access, Client, Credentials, Repository, TlsOptions};

/// Client for the origin repository of `source`.
pub(crate) fn origin_client(source: &Source, access: Access) -> registry::Result<Client> {
    client(
        &source.repository,
        source.username.as_deref(),
        source.password.as_ref(),
        source,
        access,
    )
}

/// Client for the mirror of a Docker Hub repository, with the mirror's own
/// credentials; `None` when no mirror applies.
pub(crate) fn mirror_client(source: &Source) -> registry::Result<Option<Client>> {
    let Some((repo, mirror)) = source.mirror_repository() else {
        return Ok(None);
    };
    let RegistryCredentials {
        username, password, ..
    } = mirror;
    client(
        &repo,
        username.as_deref(),
        password.as_ref(),
        source,
        Access::Pull,
    )
    .map(Some)
}

fn client(
    repo: &Repository,
    username: Option<&str>,
    password: Option<&crate::secret::Secret>,
    source: &Source,
    access: Access,
) -> registry::Result<Client> {
    Client::new(
        repo,
        Credentials::from_parts(username, password),
        &TlsOptions {
            ca_certs: source.ca_certs.clone(),
            insecure: source.insecure,
            read_timeout: source.registry_timeout,
        },
        access,
    )
}

/// The registry client as a [`BlobSource`]. Its blob readers verify digest
/// and size while streaming, as the trait requires.
impl BlobSource for Client {
    type Error = registry::Error;
    type Reader = registry::BlobReader;

    async fn fetch_manifest(&self, digest: &Digest) -> Result<FetchedManifest, registry::Error> {
        let m = Client::fetch_manifest(self, digest).await?;
        Ok(FetchedManifest {
            media_type: (!m.media_type.is_empty()).then_some(m.media_type),
            bytes: m.bytes,
            digest: m.digest,
        })
    }

    async fn fetch_blob(&self, digest: &Digest) -> Result<Bytes, registry::Error> {
        Client::fetch_blob(self, digest).await
    }

    async fn blob_reader(
        &self,
        digest: &Digest,
        size: u64,
    ) -> Result<Self::Reader, registry::Error> {
        Client::blob_reader(self, digest, size).await
    }
}

use tokio::sync::watch;

/// SIGTERM or SIGINT received while a step runs, as a future a step races
/// its work against.
///
/// Concourse sends SIGTERM when a build is aborted. A step that owns
/// something outside the process (`out`'s embedded buildkitd, its runc
/// containers and mounts; `in`'s partial destination) must release it before
/// exiting, so the signal cancels the work instead of ending the process:
/// the step drops its in-flight future, runs its cleanup, and returns
/// [`crate::Error::Interrupted`].
#[derive(Debug, Clone)]
pub struct Interrupt {
    rx: watch::Receiver<Option<&'static str>>,
}

impl Interrupt {
    /// Listens for SIGTERM and SIGINT from now on. Must run inside a tokio
    /// runtime. If the handlers cannot be installed the step runs without
    /// them (the signal then ends the process as before) and a warning says so.
    pub fn listen() -> Interrupt {
        use tokio::signal::unix::{SignalKind, signal};
        let (tx, rx) = watch::channel(None);
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::spawn(async move {
                    let name = tokio::select! {
                        _ = term.recv() => "SIGTERM",
                        _ = int.recv() => "SIGINT",
                    };
                    let _ = tx.send(Some(name));
                    // Keep the handlers installed (and the channel open)
                    // while the cleanup runs: a second signal must not kill
                    // the process half-way through it.
                    std::future::pending::<()>().await;
                });
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("cannot handle SIGTERM/SIGINT, cleanup on abort is skipped: {e}");
            }
        }
        Interrupt { rx }
    }

    /// Never fires: for callers (tests, library users) without signals.
    pub fn never() -> Interrupt {
        let (tx, rx) = watch::channel(None);
        // Leak the sender so the receiver never sees the channel close.
        std::mem::forget(tx);
        Interrupt { rx }
    }

    /// An interrupt fired by hand (tests).
    pub fn manual() -> (watch::Sender<Option<&'static str>>, Interrupt) {
        let (tx, rx) = watch::channel(None);
        (tx, Interrupt { rx })
    }

    /// Resolves with the signal's name once one arrived; pends forever
    /// otherwise.
    pub async fn wait(&self) -> &'static str {
        let mut rx = self.rx.clone();
        loop {
            if let Some(name) = *rx.borrow_and_update() {
                return name;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// The signal's name if one already arrived.
    pub fn fired(&self) -> Option<&'static str> {
        *self.rx.borrow()
    }
}
