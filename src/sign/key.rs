//! Keys in the forms cosign reads and writes: the encrypted private key of
//! `cosign generate-key-pair` (PEM `ENCRYPTED SIGSTORE PRIVATE KEY`, or
//! `ENCRYPTED COSIGN PRIVATE KEY` from cosign 1), plain PKCS#8 `PRIVATE KEY`
//! and SEC1 `EC PRIVATE KEY` (`cosign import-key-pair`), and PKIX `PUBLIC
//! KEY`. ECDSA P-256 only, cosign's default and the only kind its key files
//! hold.
//!
//! The encrypted form is go-securesystemslib's `encrypted` envelope: JSON
//! naming the KDF (scrypt with its N, r, p and salt) and the cipher (NaCl
//! secretbox with its nonce) around the PKCS#8 DER. Nothing here is a
//! cryptographic primitive of ours: scrypt, XSalsa20-Poly1305 and ECDSA are
//! RustCrypto's. Decrypted bytes and derived keys are zeroed when dropped;
//! no error or `Debug` shows a key, a password or a part of either.

use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePublicKey as _};
use serde::Deserialize;
use sha2::Digest as _;
use zeroize::Zeroizing;

use crate::secret::Secret;

/// PEM labels of cosign's encrypted private keys (cosign 2+, cosign 1).
const ENCRYPTED_LABELS: [&str; 2] = [
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "ENCRYPTED COSIGN PRIVATE KEY",
];

/// The highest scrypt cost accepted from a key file: cosign writes
/// N = 2^15; 2^20 (1 GiB with r = 8) is already more than a step should
/// spend, and a hostile file must not make us allocate without bound.
const MAX_SCRYPT_LOG_N: u8 = 20;

/// Why a key could not be used. The text never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not PEM text at all.
    #[error("not a PEM key (expected a block such as -----BEGIN {expected}-----)")]
    NotPem {
        /// The label the field expects.
        expected: &'static str,
    },
    /// A PEM block of a kind this field does not take.
    #[error("a PEM block {label:?} is not {expected}")]
    WrongBlock {
        /// The block's label as given.
        label: String,
        /// What the field takes.
        expected: &'static str,
    },
    /// The encrypted envelope is malformed or uses another KDF or cipher.
    #[error("the encrypted key is malformed: {0}")]
    Envelope(String),
    /// The secretbox did not open: the password is wrong (or the file was
    /// altered).
    #[error("wrong password (the encrypted key does not open with it)")]
    WrongPassword,
    /// A well-formed key of another algorithm or curve.
    #[error("{0}: only ECDSA P-256 keys are supported (cosign's default)")]
    OtherKind(String),
}

/// An ECDSA P-256 private key. `Debug` shows only its fingerprint; the
/// key's scalar is zeroed on drop (p256's `SigningKey`).
#[derive(Clone)]
pub struct PrivateKey {
    key: p256::ecdsa::SigningKey,
    public: PublicKey,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PrivateKey(<redacted>, public {})",
            self.public.fingerprint
        )
    }
}

impl PrivateKey {
    /// Reads `pem` (any of the private key forms of this module), decrypting
    /// it with `password` when it is encrypted.
    pub fn from_pem(pem: &Secret, password: &Secret) -> Result<PrivateKey, KeyError> {
        const EXPECTED: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
        let (label, der) = decode_pem(pem.expose(), EXPECTED)?;
        let key = match label.as_str() {
            l if ENCRYPTED_LABELS.contains(&l) => {
                let pkcs8 = decrypt(&der, password)?;
                from_pkcs8(&pkcs8)?
            }
            "PRIVATE KEY" => from_pkcs8(&der)?,
            "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(&der)
                .map(p256::ecdsa::SigningKey::from)
                .map_err(|_| KeyError::OtherKind("the EC PRIVATE KEY is not a P-256 key".into()))?,
            "PUBLIC KEY" => {
                return Err(KeyError::WrongBlock {
                    label,
                    expected: "a private key (this is the public half: it goes in source.verify.public_keys)",
                });
            }
            _ => {
                return Err(KeyError::WrongBlock {
                    label,
                    expected: "a cosign private key (ENCRYPTED SIGSTORE PRIVATE KEY, ENCRYPTED COSIGN PRIVATE KEY, PRIVATE KEY or EC PRIVATE KEY)",
                });
            }
        };
        let public = PublicKey::from_verifying(*key.verifying_key());
        Ok(PrivateKey { key, public })
    }

    /// A new random key (tests, and nothing else needs one).
    #[cfg(test)]
    pub(crate) fn generate() -> PrivateKey {
        use rand::RngCore as _;
        let key = loop {
            let mut bytes = Zeroizing::new([0u8; 32]);
            rand::thread_rng().fill_bytes(bytes.as_mut());
            // Out of range for the curve's order: try again (p ≈ 2^-32).
            if let Ok(key) = p256::ecdsa::SigningKey::from_slice(bytes.as_ref()) {
                break key;
            }
        };
        let public = PublicKey::from_verifying(*key.verifying_key());
        PrivateKey { key, public }
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// ECDSA P-256 with SHA-256 over `message`, ASN.1 DER, base64: the
    /// value of cosign's signature annotation.
    pub fn sign_base64(&self, message: &[u8]) -> String {
        let signature: p256::ecdsa::Signature = self.key.sign(message);
        base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
    }

    /// The key as unencrypted PKCS#8 PEM, for tests that hand a key to
    /// another implementation.
    #[cfg(test)]
    pub(crate) fn to_pkcs8_pem(&self) -> Secret {
        use p256::pkcs8::EncodePrivateKey as _;
        let pem = self
            .key
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .expect("a P-256 key encodes as PKCS#8");
        Secret::new(pem.as_str())
    }
}

/// An ECDSA P-256 public key and its fingerprint.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: p256::ecdsa::VerifyingKey,
    fingerprint: String,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint)
    }
}

impl PublicKey {
    /// Reads a PKIX `PUBLIC KEY` PEM block (`cosign.pub`).
    pub fn from_pem(pem: &str) -> Result<PublicKey, KeyError> {
        let (label, der) = decode_pem(pem, "PUBLIC KEY")?;
        if label != "PUBLIC KEY" {
            let expected = if label.contains("PRIVATE") {
                "a public key (this is a private key: never put it in source.verify)"
            } else {
                "a public key (PUBLIC KEY, as in cosign.pub)"
            };
            return Err(KeyError::WrongBlock { label, expected });
        }
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(&der)
            .map_err(|_| KeyError::OtherKind(describe_spki(&der)))?;
        Ok(PublicKey::from_verifying(key))
    }

    fn from_verifying(key: p256::ecdsa::VerifyingKey) -> PublicKey {
        let der = key
            .to_public_key_der()
            .expect("a P-256 public key encodes as PKIX");
        let digest = sha2::Sha256::digest(der.as_bytes());
        PublicKey {
            key,
            fingerprint: hex::encode(&digest[..FINGERPRINT_BYTES]),
        }
    }

    /// The first 8 bytes of SHA-256 over the key's PKIX DER, in hex: short
    /// enough for a metadata field, long enough to tell keys apart.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether `signature_b64` (base64 of an ASN.1 DER ECDSA signature, as
    /// cosign's annotation holds it) signs `message` with this key.
    pub fn verifies(&self, message: &[u8], signature_b64: &str) -> bool {
        let Ok(der) = base64::engine::general_purpose::STANDARD.decode(signature_b64.trim()) else {
            return false;
        };
        let Ok(signature) = p256::ecdsa::Signature::from_der(&der) else {
            return false;
        };
        self.key.verify(message, &signature).is_ok()
    }

    /// The key as a PKIX `PUBLIC KEY` PEM block.
    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .expect("a P-256 public key encodes as PEM")
    }
}

/// Bytes of SHA-256 shown as a key's fingerprint.
const FINGERPRINT_BYTES: usize = 8;

/// The one PEM block of `text` (surrounding whitespace allowed), its label
/// and DER bytes (zeroed on drop: it may be a private key).
fn decode_pem(
    text: &str,
    expected: &'static str,
) -> Result<(String, Zeroizing<Vec<u8>>), KeyError> {
    let text = text.trim();
    if !text.starts_with("-----BEGIN ") {
        return Err(KeyError::NotPem { expected });
    }
    // Normalise line endings: a key pasted through a Windows editor or a
    // credential manager may carry CRLF, which the strict decoder refuses.
    let normalised = Zeroizing::new(format!("{}\n", text.replace("\r\n", "\n")));
    let (label, der) = pem_rfc7468::decode_vec(normalised.as_bytes())
        .map_err(|_| KeyError::NotPem { expected })?;
    Ok((label.to_owned(), Zeroizing::new(der)))
}

fn from_pkcs8(der: &[u8]) -> Result<p256::ecdsa::SigningKey, KeyError> {
    p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|_| {
        KeyError::OtherKind(match p256::pkcs8::PrivateKeyInfoRef::try_from(der) {
            Ok(info) => format!("the key's algorithm is {}", algorithm_name(&info.algorithm)),
            Err(_) => "the PKCS#8 key inside does not decode".into(),
        })
    })
}

/// What kind of key a PKIX public key holds, for the message that refuses it.
fn describe_spki(der: &[u8]) -> String {
    match p256::pkcs8::spki::SubjectPublicKeyInfoRef::try_from(der) {
        Ok(info) => format!(
            "the public key's algorithm is {}",
            algorithm_name(&info.algorithm)
        ),
        Err(_) => "the PUBLIC KEY block does not hold a PKIX public key".into(),
    }
}

fn algorithm_name(alg: &p256::pkcs8::spki::AlgorithmIdentifierRef<'_>) -> String {
    const EC: &str = "1.2.840.10045.2.1";
    let oid = alg.oid.to_string();
    let name = match oid.as_str() {
        EC => {
            let curve = alg
                .parameters
                .and_then(|p| p.decode_as::<p256::pkcs8::ObjectIdentifier>().ok())
                .map(|c| match c.to_string().as_str() {
                    "1.3.132.0.34" => "P-384".to_string(),
                    "1.3.132.0.35" => "P-521".to_string(),
                    "1.3.132.0.10" => "secp256k1".to_string(),
                    other => other.to_string(),
                })
                .unwrap_or_else(|| "unknown".into());
            return format!("ECDSA on curve {curve}");
        }
        "1.2.840.113549.1.1.1" => "RSA",
        "1.3.101.112" => "Ed25519",
        _ => return format!("OID {oid}"),
    };
    name.to_owned()
}

/// go-securesystemslib's `encrypted` envelope, as cosign writes it.
#[derive(Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct ScryptParams {
    N: u64,
    r: u32,
    p: u32,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// The PKCS#8 DER inside cosign's encrypted envelope `json`.
fn decrypt(json: &[u8], password: &Secret) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    use crypto_secretbox::aead::{Aead as _, KeyInit as _};
    let bad = |what: &str| KeyError::Envelope(what.to_owned());
    let envelope: Envelope =
        serde_json::from_slice(json).map_err(|e| KeyError::Envelope(format!("{e}")))?;
    if envelope.kdf.name != "scrypt" {
        return Err(KeyError::Envelope(format!(
            "key derivation {:?} (only scrypt is used by cosign)",
            envelope.kdf.name
        )));
    }
    if envelope.cipher.name != "nacl/secretbox" {
        return Err(KeyError::Envelope(format!(
            "cipher {:?} (only nacl/secretbox is used by cosign)",
            envelope.cipher.name
        )));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt = b64
        .decode(&envelope.kdf.salt)
        .map_err(|_| bad("the salt is not base64"))?;
    let nonce = b64
        .decode(&envelope.cipher.nonce)
        .map_err(|_| bad("the nonce is not base64"))?;
    let ciphertext = b64
        .decode(&envelope.ciphertext)
        .map_err(|_| bad("the ciphertext is not base64"))?;
    if nonce.len() != 24 {
        return Err(bad("the nonce is not 24 bytes"));
    }
    let ScryptParams { N: n, r, p } = envelope.kdf.params;
    if n < 2 || !n.is_power_of_two() || n.trailing_zeros() > u32::from(MAX_SCRYPT_LOG_N) {
        return Err(KeyError::Envelope(format!(
            "scrypt N = {n} (a power of two up to 2^{MAX_SCRYPT_LOG_N} is accepted)"
        )));
    }
    if r == 0 || p == 0 || u64::from(r) * u64::from(p) > 64 {
        return Err(bad("scrypt r and p are out of range"));
    }
    let params = scrypt::Params::new(n.trailing_zeros() as u8, r, p)
        .map_err(|_| bad("scrypt parameters are invalid"))?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password.expose().as_bytes(), &salt, &params, key.as_mut())
        .map_err(|_| bad("scrypt failed"))?;
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(key.as_ref().into());
    cipher
        .decrypt(nonce.as_slice().into(), ciphertext.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| KeyError::WrongPassword)
}

/// Writes `key` in cosign's encrypted form under `label`, with scrypt cost
/// `log_n` (cosign: 15). For tests: what `cosign generate-key-pair` writes.
#[cfg(test)]
pub(crate) fn encrypt_for_tests(
    key: &PrivateKey,
    password: &str,
    label: &str,
    log_n: u8,
) -> Secret {
    use crypto_secretbox::aead::{Aead as _, KeyInit as _};
    use p256::pkcs8::EncodePrivateKey as _;
    use rand::RngCore as _;
    let der = key
        .key
        .to_pkcs8_der()
        .expect("a P-256 key encodes as PKCS#8");
    let mut salt = [0u8; 32];
    let mut nonce = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut salt);
    rand::thread_rng().fill_bytes(&mut nonce);
    let params = scrypt::Params::new(log_n, 8, 1).expect("scrypt params");
    let mut derived = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password.as_bytes(), &salt, &params, derived.as_mut()).expect("scrypt");
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(derived.as_ref().into());
    let ciphertext = cipher
        .encrypt(nonce.as_slice().into(), der.as_bytes())
        .expect("secretbox");
    let b64 = base64::engine::general_purpose::STANDARD;
    let json = serde_json::json!({
        "kdf": {"name": "scrypt", "params": {"N": 1u64 << log_n, "r": 8, "p": 1}, "salt": b64.encode(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": b64.encode(nonce)},
        "ciphertext": b64.encode(ciphertext),
    });
    let pem = pem_rfc7468::encode_string(
        label,
        pem_rfc7468::LineEnding::LF,
        json.to_string().as_bytes(),
    )
    .expect("PEM");
    Secret::new(pem)
}

#[cfg(test)]
mod tests;
