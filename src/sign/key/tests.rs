//! Key files in every form cosign reads, and the refusals: wrong password,
//! other kinds of key, a public key where a private one belongs. The
//! encrypted files made here are checked against the `sigstore` crate in
//! `crate::sign::tests`; here they check our own reader.

use super::*;

/// cosign's own cost is 2^15; a lower one keeps the tests quick (the
/// reader takes N from the file either way).
const TEST_LOG_N: u8 = 10;

fn encrypted(key: &PrivateKey, password: &str, label: &str) -> Secret {
    encrypt_for_tests(key, password, label, TEST_LOG_N)
}

#[test]
fn both_encrypted_labels_open_with_the_password() {
    let key = PrivateKey::generate();
    for label in ENCRYPTED_LABELS {
        let pem = encrypted(&key, "correct horse", label);
        let read = PrivateKey::from_pem(&pem, &Secret::new("correct horse")).unwrap();
        assert_eq!(read.public(), key.public(), "{label}");
    }
}

#[test]
fn an_empty_password_is_a_password() {
    let key = PrivateKey::generate();
    let pem = encrypted(&key, "", "ENCRYPTED SIGSTORE PRIVATE KEY");
    let read = PrivateKey::from_pem(&pem, &Secret::default()).unwrap();
    assert_eq!(read.public(), key.public());
    assert_eq!(
        PrivateKey::from_pem(&pem, &Secret::new("x")).unwrap_err(),
        KeyError::WrongPassword
    );
}

#[test]
fn a_wrong_password_is_named_and_nothing_of_the_key_shown() {
    let key = PrivateKey::generate();
    let pem = encrypted(&key, "right", "ENCRYPTED SIGSTORE PRIVATE KEY");
    let err = PrivateKey::from_pem(&pem, &Secret::new("wrong")).unwrap_err();
    assert_eq!(err, KeyError::WrongPassword);
    let text = err.to_string();
    assert!(text.contains("wrong password"), "{text}");
    for line in pem.expose().lines().filter(|l| !l.starts_with("-----")) {
        assert!(!text.contains(line), "{text}");
    }
}

#[test]
fn plain_pkcs8_and_sec1_keys_are_read() {
    let key = PrivateKey::generate();
    let pkcs8 = key.to_pkcs8_pem();
    let read = PrivateKey::from_pem(&pkcs8, &Secret::default()).unwrap();
    assert_eq!(read.public(), key.public());
    let sec1 = {
        let secret = p256::SecretKey::from(&key.key);
        Secret::new(
            secret
                .to_sec1_pem(p256::pkcs8::LineEnding::LF)
                .unwrap()
                .as_str(),
        )
    };
    assert!(sec1.expose().starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let read = PrivateKey::from_pem(&sec1, &Secret::default()).unwrap();
    assert_eq!(read.public(), key.public());
    // CRLF line ends, as a key pasted through some editors arrives.
    let crlf = Secret::new(pkcs8.expose().replace('\n', "\r\n"));
    assert!(PrivateKey::from_pem(&crlf, &Secret::default()).is_ok());
}

#[test]
fn a_public_key_or_another_block_is_not_a_private_key() {
    let key = PrivateKey::generate();
    let public = Secret::new(key.public().to_pem());
    let err = PrivateKey::from_pem(&public, &Secret::default()).unwrap_err();
    assert!(
        err.to_string().contains("source.verify.public_keys"),
        "{err}"
    );
    let cert = Secret::new("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    assert!(matches!(
        PrivateKey::from_pem(&cert, &Secret::default()),
        Err(KeyError::WrongBlock { .. })
    ));
    assert!(matches!(
        PrivateKey::from_pem(&Secret::new("not a key"), &Secret::default()),
        Err(KeyError::NotPem { .. })
    ));
}

/// An Ed25519 PKCS#8 key (RFC 8410's example) and a P-384 public key are
/// keys of another kind, named as such.
#[test]
fn keys_of_another_kind_are_named() {
    let ed25519 = Secret::new(
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n",
    );
    let err = PrivateKey::from_pem(&ed25519, &Secret::default()).unwrap_err();
    assert!(err.to_string().contains("Ed25519"), "{err}");
    assert!(err.to_string().contains("only ECDSA P-256"), "{err}");
    let p384 = "-----BEGIN PUBLIC KEY-----\nMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEwxcHQhFnBefTS/jR6rr38UJu2+HUR8z+\nBODorPGQJqeA1g3M4k18wVn8/2R5po583iqWdjOEnFT7Z2mTPei/dr4ji3/LFKhf\nz1/UWNgJIZ0EDfWtorMi5Ug2ekrGWOgv\n-----END PUBLIC KEY-----\n";
    let err = PublicKey::from_pem(p384).unwrap_err();
    assert!(matches!(err, KeyError::OtherKind(_)), "{err}");
    assert!(err.to_string().contains("ECDSA on curve P-384"), "{err}");
}

#[test]
fn a_private_key_is_not_a_public_key() {
    let key = PrivateKey::generate();
    let err = PublicKey::from_pem(key.to_pkcs8_pem().expose()).unwrap_err();
    assert!(
        err.to_string().contains("never put it in source.verify"),
        "{err}"
    );
    assert!(matches!(
        PublicKey::from_pem("hello"),
        Err(KeyError::NotPem { .. })
    ));
}

#[test]
fn signatures_verify_with_the_key_and_not_with_another() {
    let key = PrivateKey::generate();
    let other = PrivateKey::generate();
    let sig = key.sign_base64(b"payload");
    assert!(key.public().verifies(b"payload", &sig));
    assert!(!key.public().verifies(b"payload!", &sig));
    assert!(!other.public().verifies(b"payload", &sig));
    assert!(!key.public().verifies(b"payload", "not base64!"));
    assert!(!key.public().verifies(b"payload", "AAAA"));
}

#[test]
fn fingerprints_are_short_hex_of_the_pkix_der() {
    let key = PrivateKey::generate();
    let der = key.public().key.to_public_key_der().unwrap();
    let full = hex::encode(sha2::Sha256::digest(der.as_bytes()));
    assert_eq!(key.public().fingerprint(), &full[..16]);
    let read = PublicKey::from_pem(&key.public().to_pem()).unwrap();
    assert_eq!(read.fingerprint(), key.public().fingerprint());
}

#[test]
fn debug_shows_no_key_material() {
    let key = PrivateKey::generate();
    let pem = key.to_pkcs8_pem();
    let debug = format!("{key:?}");
    assert!(debug.contains("<redacted>"), "{debug}");
    assert!(debug.contains(key.public().fingerprint()), "{debug}");
    for line in pem.expose().lines().filter(|l| !l.starts_with("-----")) {
        assert!(!debug.contains(line), "{debug}");
    }
    let scalar = hex::encode(key.key.to_bytes());
    assert!(!debug.to_lowercase().contains(&scalar));
}

#[test]
fn hostile_envelopes_are_refused_without_work() {
    let envelope = |n: u64, kdf: &str, cipher: &str| {
        let json = serde_json::json!({
            "kdf": {"name": kdf, "params": {"N": n, "r": 8, "p": 1}, "salt": "AAAA"},
            "cipher": {"name": cipher, "nonce": base64::engine::general_purpose::STANDARD.encode([0u8; 24])},
            "ciphertext": "AAAA",
        });
        Secret::new(
            pem_rfc7468::encode_string(
                "ENCRYPTED SIGSTORE PRIVATE KEY",
                pem_rfc7468::LineEnding::LF,
                json.to_string().as_bytes(),
            )
            .unwrap(),
        )
    };
    let none = Secret::default();
    for (pem, expect) in [
        (envelope(1 << 40, "scrypt", "nacl/secretbox"), "scrypt N"),
        (envelope(1000, "scrypt", "nacl/secretbox"), "scrypt N"),
        (envelope(1024, "pbkdf2", "nacl/secretbox"), "pbkdf2"),
        (envelope(1024, "scrypt", "aes-gcm"), "aes-gcm"),
    ] {
        let err = PrivateKey::from_pem(&pem, &none).unwrap_err();
        assert!(err.to_string().contains(expect), "{err}");
    }
    assert_eq!(
        PrivateKey::from_pem(&envelope(1024, "scrypt", "nacl/secretbox"), &none).unwrap_err(),
        KeyError::WrongPassword
    );
}
