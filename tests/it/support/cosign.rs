//! The independent side of the signing tests: the `sigstore` crate (the
//! sigstore project's own Rust client) makes the key files, signs images
//! as `cosign sign --key` does and verifies signatures as `cosign verify
//! --key` does, against the tests' registries (TLS with the per-run CA and
//! htpasswd, through its own oci-client).

use sigstore::cosign::constraint::{Constraint as _, PrivateKeySigner};
use sigstore::cosign::signature_layers::SignatureLayer;
use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{self, ClientBuilder, CosignCapabilities as _};
use sigstore::crypto::SigningScheme;
use sigstore::registry::{
    Auth, Certificate, CertificateEncoding, ClientConfig, ClientProtocol, OciReference,
};
use zeroize::Zeroizing;

use super::registry::Registry;

/// A key pair as `cosign generate-key-pair` writes it, made by `sigstore`.
pub struct KeyPair {
    /// `cosign.key`: `ENCRYPTED SIGSTORE PRIVATE KEY` (scrypt + secretbox).
    pub encrypted: String,
    /// Its password.
    pub password: String,
    /// The same key as plain PKCS#8 `PRIVATE KEY` (`cosign import-key-pair`).
    pub pkcs8: String,
    /// `cosign.pub`.
    pub public: String,
}

impl KeyPair {
    /// A new P-256 pair; the password is unique, so tests can look for it
    /// in output.
    pub fn generate() -> KeyPair {
        let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
            .create_signer()
            .expect("sigstore creates a P-256 signer");
        let pair = signer.to_sigstore_keypair().expect("key pair");
        let password = format!("pw-{}", super::unique("cosign"));
        KeyPair {
            encrypted: pair
                .private_key_to_encrypted_pem(password.as_bytes())
                .expect("encrypted PEM")
                .to_string(),
            pkcs8: pair.private_key_to_pem().expect("PKCS#8 PEM").to_string(),
            public: pair.public_key_to_pem().expect("public PEM"),
            password,
        }
    }

    /// The encrypted key under cosign 1's PEM label (the same envelope).
    pub fn encrypted_cosign1(&self) -> String {
        self.encrypted.replace(
            "ENCRYPTED SIGSTORE PRIVATE KEY",
            "ENCRYPTED COSIGN PRIVATE KEY",
        )
    }

    /// Lines of the private key files that must never show in any output.
    pub fn secret_lines(&self) -> Vec<String> {
        self.encrypted
            .lines()
            .chain(self.pkcs8.lines())
            .filter(|l| !l.starts_with("-----") && l.len() >= 16)
            .map(str::to_owned)
            .chain([self.password.clone()])
            .collect()
    }
}

/// `<host>/<reference>`, unless it already names the host.
fn qualify(reg: &Registry, reference: &str) -> String {
    if reference.starts_with(&reg.host) {
        reference.to_owned()
    } else {
        format!("{}/{reference}", reg.host)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn client(reg: &Registry) -> cosign::Client {
    let mut config = ClientConfig::default();
    match &reg.ca_pem {
        Some(ca) => {
            config.protocol = ClientProtocol::Https;
            config.extra_root_certificates = vec![Certificate {
                encoding: CertificateEncoding::Pem,
                data: ca.as_bytes().to_vec(),
            }];
        }
        None => config.protocol = ClientProtocol::Http,
    }
    ClientBuilder::default()
        .with_oci_client_config(config)
        .build()
        .expect("a sigstore cosign client")
}

fn auth(reg: &Registry) -> Auth {
    match (&reg.username, &reg.password) {
        (Some(u), Some(p)) => Auth::Basic(u.clone(), p.clone()),
        _ => Auth::Anonymous,
    }
}

/// `cosign verify --key public`: `Ok` when `reference` (`repo@digest` or
/// `repo:tag`) carries a signature by the key, else what sigstore said.
pub fn verify(reg: &Registry, reference: &str, public: &str) -> Result<(), String> {
    let image: OciReference = qualify(reg, reference)
        .parse()
        .map_err(|e| format!("{e}"))?;
    runtime().block_on(async {
        let mut client = client(reg);
        let layers = client
            .trusted_signature_layers(&auth(reg), &image)
            .await
            .map_err(|e| format!("sigstore found no signature layers: {e}"))?;
        let verifier =
            PublicKeyVerifier::new(public.as_bytes(), &SigningScheme::ECDSA_P256_SHA256_ASN1)
                .map_err(|e| format!("{e}"))?;
        let constraints: VerificationConstraintVec = vec![Box::new(verifier)];
        cosign::verify_constraints(&layers, constraints.iter())
            .map_err(|e| format!("{} layer(s), none verify: {e:?}", layers.len()))
    })
}

/// `cosign sign --key`: signs `reference` (a tag) with `key` (the
/// encrypted PEM and its password), replacing the signature manifest (the
/// crate pushes only the layers it is given).
pub fn sign(reg: &Registry, reference: &str, key: &KeyPair) {
    let image: OciReference = qualify(reg, reference).parse().expect("a reference");
    runtime().block_on(async {
        let mut client = client(reg);
        let auth = auth(reg);
        let (signature_image, digest) = client
            .triangulate(&image, &auth)
            .await
            .expect("sigstore resolves the image");
        let mut layer = SignatureLayer::new_unsigned(&image, &digest).expect("a payload");
        let signer = PrivateKeySigner::new_with_raw(
            Zeroizing::new(key.encrypted.as_bytes().to_vec()),
            Zeroizing::new(key.password.as_bytes().to_vec()),
            &SigningScheme::ECDSA_P256_SHA256_ASN1,
        )
        .expect("sigstore reads the encrypted key");
        assert!(signer.add_constraint(&mut layer).expect("signing"));
        client
            .push_signature(None, &auth, &signature_image, vec![layer])
            .await
            .expect("sigstore pushes the signature");
    });
}
