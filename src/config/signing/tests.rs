//! `source.sign` and `source.verify` through the whole `source` decoder:
//! each refusal names its field, and no key or password shows in an error
//! or in the decoded source's `Debug`.

use serde_json::json;

use crate::config::Source;
use crate::secret::Secret;
use crate::sign::PrivateKey;
use crate::sign::key::encrypt_for_tests;

fn encrypted(key: &PrivateKey, password: &str) -> Secret {
    encrypt_for_tests(key, password, "ENCRYPTED SIGSTORE PRIVATE KEY", 10)
}

fn source(extra: serde_json::Value) -> Result<Source, String> {
    let mut value = json!({"repository": "registry.example.com/team/app"});
    for (k, v) in extra.as_object().unwrap() {
        value[k] = v.clone();
    }
    Source::from_value(value).map_err(|e| crate::error::chain(&crate::Error::from(e)))
}

#[test]
fn a_sign_block_decrypts_its_key_and_keeps_no_text_of_it() {
    let key = PrivateKey::generate();
    let pem = encrypted(&key, "hunter2-long");
    let s = source(json!({"sign": {
        "private_key": pem.expose(), "password": "hunter2-long",
        "annotations": {"commit": "abc", "build": 12, "ok": true}}}))
    .unwrap();
    let sign = s.sign.as_ref().unwrap();
    assert_eq!(sign.signer.fingerprint(), key.public().fingerprint());
    let debug = format!("{s:?}");
    assert!(!debug.contains("hunter2-long"), "{debug}");
    for line in pem.expose().lines().filter(|l| !l.starts_with("-----")) {
        assert!(!debug.contains(line), "{debug}");
    }
    // Key case is Go's: any spelling of the block's keys is accepted.
    let s =
        source(json!({"Sign": {"Private_Key": pem.expose(), "PASSWORD": "hunter2-long"}})).unwrap();
    assert!(s.sign.is_some());
}

#[test]
fn a_wrong_password_fails_naming_the_field_and_nothing_else() {
    let key = PrivateKey::generate();
    let pem = encrypted(&key, "right-password");
    let err = source(json!({"sign": {"private_key": pem.expose(), "password": "wrong-password"}}))
        .unwrap_err();
    assert!(
        err.contains("source.sign.private_key: wrong password"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-password") && !err.contains("right-password"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_missing_or_misplaced_key_is_named() {
    let err = source(json!({"sign": {"password": "x"}})).unwrap_err();
    assert!(
        err.contains("source.sign.private_key: a PEM private key is required"),
        "{err}"
    );
    let key = PrivateKey::generate();
    let err = source(json!({"sign": {"private_key": key.public().to_pem()}})).unwrap_err();
    assert!(err.contains("source.sign.private_key"), "{err}");
    let err = source(
        json!({"verify": {"public_keys": [key.public().to_pem(), key.to_pkcs8_pem().expose()]}}),
    )
    .unwrap_err();
    assert!(err.contains("source.verify.public_keys[1]"), "{err}");
    assert!(
        !err.contains(key.to_pkcs8_pem().expose().lines().nth(1).unwrap()),
        "{err}"
    );
    let err = source(json!({"verify": {"public_keys": ["not a key"]}})).unwrap_err();
    assert!(
        err.contains("source.verify.public_keys[0]: not a PEM key"),
        "{err}"
    );
    let err = source(json!({"verify": {"public_keys": []}})).unwrap_err();
    assert!(
        err.contains("source.verify.public_keys: at least one"),
        "{err}"
    );
    let err = source(json!({"sign": {"private_key": 12}})).unwrap_err();
    assert!(err.contains("source.sign.private_key"), "{err}");
    let err = source(json!({"sign": {"private_key": "x", "annotations": {"a": [1]}}})).unwrap_err();
    assert!(err.contains("source.sign"), "{err}");
    let err = source(json!({"verify": {"public_key": "x"}})).unwrap_err();
    assert!(err.contains("public_keys"), "a did-you-mean: {err}");
}

#[test]
fn verify_takes_a_list_or_one_key() {
    let a = PrivateKey::generate();
    let b = PrivateKey::generate();
    let s = source(json!({"verify": {"public_keys": [a.public().to_pem(), b.public().to_pem()]}}))
        .unwrap();
    assert_eq!(
        s.verify.unwrap().fingerprints(),
        [a.public().fingerprint(), b.public().fingerprint()]
    );
    let s = source(json!({"verify": {"public_keys": a.public().to_pem()}})).unwrap();
    assert_eq!(s.verify.unwrap().fingerprints(), [a.public().fingerprint()]);
    let s = source(json!({"sign": null, "verify": null})).unwrap();
    assert!(s.sign.is_none() && s.verify.is_none());
}

#[test]
fn a_cosign_tag_is_not_a_source_tag() {
    let tag = format!("sha256-{}.sig", "a".repeat(64));
    let err = source(json!({"tag": tag})).unwrap_err();
    assert!(
        err.contains("source.tag") && err.contains("cosign"),
        "{err}"
    );
}
