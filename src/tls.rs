//! Process-wide TLS setup shared by the registry client and the BuildKit
//! transport.

/// Installs rustls' `ring` provider as the process default.
///
/// reqwest is built with `rustls-no-provider` so that one crypto backend
/// (ring, also used by tonic) serves the whole program; rustls then needs a
/// default provider before the first TLS client is built. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
