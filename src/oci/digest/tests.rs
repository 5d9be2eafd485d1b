use super::*;

#[test]
fn parsing_refuses_paths_and_other_algorithms() {
    let good = format!("sha256:{}", "a".repeat(64));
    let d = Digest::parse(&good).unwrap();
    assert_eq!(d.hex(), "a".repeat(64));
    assert_eq!(d, good);
    for bad in [
        "sha256:../../etc/passwd".to_owned(),
        format!("sha256:{}", "A".repeat(64)),
        format!("sha512:{}", "a".repeat(64)),
        format!("sha256:{}/", "a".repeat(63)),
        "sha256:abc".to_owned(),
        String::new(),
    ] {
        assert_eq!(Digest::parse(&bad), Err(DigestError(bad.clone())));
    }
}

#[test]
fn serde_validates() {
    let d = sha256_digest(b"x");
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    assert!(serde_json::from_str::<Digest>("\"sha256:abc\"").is_err());
}
