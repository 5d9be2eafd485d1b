//! Signing on `out` and verifying on `check`/`in`, checked against an
//! independent implementation: the `sigstore` crate (`support::cosign`)
//! makes the key files, verifies every signature `out` writes, and signs
//! the images `check` and `in` must accept. All on the TLS registry with
//! htpasswd.
//!
//! - `params.image` and `params.layers` pushes are signed (both encrypted
//!   PEM labels, plain PKCS#8, SEC1); another key does not verify; other keys'
//!   signatures are kept and a second put adds none;
//! - a multi-platform build on buildkitd: the index and each image verify,
//!   attestation manifests are not signed, an unchanged rebuild keeps its
//!   version without a second signature; a build on the Docker Engine is
//!   signed too;
//! - a wrong password fails before anything is built, and a signature that
//!   `source.verify` refuses moves no tag;
//! - `check` and `in` with `verify`: only what a listed key signed, in
//!   every mode; signature tags are never versions; nothing written on a
//!   refusal; no key material in any output.

use std::path::Path;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::put::{Src, metadata, registry_digest, skopeo};
use crate::support::cosign::{self, KeyPair};
use crate::support::needs;
use crate::support::registry::Registry;
use crate::support::{self, cmd};

/// A one-layer OCI layout (umoci) whose content is `text`, tagged `t`.
fn test_support_layout(dir: &Path, text: &str) -> std::path::PathBuf {
    test_support::umoci_layout(dir, "t", text)
}

/// The fingerprint our resource reports: the first 8 bytes of SHA-256 over
/// the public key's PKIX DER, in hex, computed here from the PEM text.
fn fingerprint(public_pem: &str) -> String {
    let body: String = public_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body is base64");
    hex::encode(&sha2::Sha256::digest(der)[..8])
}

fn signing(source: &mut Value, key_pem: &str, password: &str) {
    source["sign"] = json!({"private_key": key_pem, "password": password});
}

fn verifying(source: &mut Value, keys: &[&KeyPair]) {
    source["verify"] =
        json!({"public_keys": keys.iter().map(|k| k.public.clone()).collect::<Vec<_>>()});
}

#[track_caller]
fn assert_no_key_material(out: &cmd::Output, keys: &[&KeyPair]) {
    for key in keys {
        for line in key.secret_lines() {
            out.expect_not_leaked(&line);
        }
    }
}

/// The layers of `repo`'s signature manifest for `digest`, as skopeo reads it.
fn signature_layers(reg: &Registry, repo: &str, digest: &str) -> Vec<Value> {
    let tag = format!("{}.sig", digest.replacen(':', "-", 1));
    let raw = skopeo(reg, &["inspect", "--raw"], &format!("{repo}:{tag}"))
        .unwrap_or_else(|| panic!("no signature manifest {repo}:{tag}"));
    let doc: Value = serde_json::from_slice(&raw).expect("signature manifest JSON");
    doc["layers"].as_array().cloned().unwrap_or_default()
}

/// The PKCS#8 key `pem` as SEC1 `EC PRIVATE KEY`, by openssl.
fn sec1(pkcs8: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("key.pem");
    std::fs::write(&file, pkcs8).expect("write key");
    let out = support::run_tool(
        std::process::Command::new("openssl")
            .args(["ec", "-in"])
            .arg(&file),
    );
    let pem = String::from_utf8(out).expect("PEM text");
    assert!(
        pem.contains("BEGIN EC PRIVATE KEY"),
        "openssl wrote no SEC1 key"
    );
    pem
}

fn out(src: &Src, source: &Value, params: Value) -> cmd::Output {
    cmd::run(
        "out",
        &[src.path()],
        &json!({"source": source, "params": params}),
        &[],
    )
}

needs! { docker_registry, skopeo, umoci;
    #[test]
    fn a_prebuilt_image_is_signed_and_verifies_with_sigstore() {
        let reg = support::registry::tls_auth();
        let repo = support::unique("sign/prebuilt");
        let (a, b, c) = (KeyPair::generate(), KeyPair::generate(), KeyPair::generate());
        let src = Src::new(&[]);
        let layout = test_support_layout(src.path(), "signed prebuilt");
        // Another key signed this digest first (cosign through sigstore).
        reg.push(&format!("oci:{}:t", layout.display()), &repo, "pre", false);
        cosign::sign(reg, &format!("{repo}:pre"), &b);

        let mut source = reg.source(&repo);
        source["tag"] = json!("1.0");
        signing(&mut source, &a.encrypted, &a.password);
        let params = json!({"image": "layout"});
        let done = out(&src, &source, params.clone());
        done.expect_success();
        assert_no_key_material(&done, &[&a]);
        let resp = done.json();
        let digest = resp["version"]["digest"].as_str().expect("digest").to_owned();
        assert_eq!(metadata(&resp, "signing_key"), Some(fingerprint(&a.public)));
        let reference = format!("{repo}@{digest}");
        cosign::verify(reg, &reference, &a.public).expect("sigstore verifies out's signature");
        cosign::verify(reg, &reference, &b.public).expect("the earlier signature is kept");
        assert!(cosign::verify(reg, &reference, &c.public).is_err(), "a third key must not verify");
        assert_eq!(signature_layers(reg, &repo, &digest).len(), 2);

        // Again, now also verifying its own signature, with debug logging
        // (every registry request on stderr): nothing is added, nothing of
        // the key shows.
        verifying(&mut source, &[&a]);
        source["debug"] = json!(true);
        let again = out(&src, &source, params);
        again.expect_success().expect_stderr("already signed with key");
        assert_no_key_material(&again, &[&a]);
        assert_eq!(signature_layers(reg, &repo, &digest).len(), 2, "no duplicate signature");
        assert_eq!(registry_digest(reg, &format!("{repo}:1.0")).as_deref(), Some(digest.as_str()));
    }
}

needs! { docker_registry, skopeo, umoci;
    #[test]
    fn a_layer_append_is_signed_with_cosign1_pkcs8_and_sec1_keys() {
        let reg = support::registry::tls_auth();
        let repo = support::unique("sign/layers");
        let base_repo = support::unique("sign/base");
        let dir = tempfile::tempdir().expect("temp dir");
        let layout = test_support_layout(dir.path(), "base for layers");
        reg.push(&format!("oci:{}:t", layout.display()), &base_repo, "1", false);
        let src = Src::new(&[("site/index.html", "<h1>signed</h1>\n")]);
        let params = json!({"layers": {
            "base": reg.reference(&base_repo, "1"),
            "add": [{"src": "site", "dest": "/srv/www"}],
        }});
        let (k1, k2, k3) = (KeyPair::generate(), KeyPair::generate(), KeyPair::generate());
        let forms = [
            (&k1, k1.encrypted_cosign1(), k1.password.clone()),
            (&k2, k2.pkcs8.clone(), String::new()),
            (&k3, sec1(&k3.pkcs8), String::new()),
        ];
        for (i, (key, pem, password)) in forms.into_iter().enumerate()
        {
            let mut source = reg.source(&repo);
            source["tag"] = json!(format!("v{i}"));
            signing(&mut source, &pem, &password);
            let done = out(&src, &source, params.clone());
            done.expect_success();
            assert_no_key_material(&done, &[key]);
            for line in pem.lines().filter(|l| !l.starts_with("-----") && l.len() >= 16) {
                done.expect_not_leaked(line);
            }
            let resp = done.json();
            let digest = resp["version"]["digest"].as_str().expect("digest");
            assert_eq!(metadata(&resp, "signing_key"), Some(fingerprint(&key.public)));
            cosign::verify(reg, &format!("{repo}@{digest}"), &key.public)
                .expect("sigstore verifies the layer append's signature");
            assert!(cosign::verify(reg, &format!("{repo}@{digest}"), &KeyPair::generate().public).is_err());
        }
    }
}

needs! { docker_registry, skopeo, umoci;
    #[test]
    fn a_wrong_password_fails_before_the_build_and_a_refused_signature_moves_no_tag() {
        let reg = support::registry::tls_auth();
        let repo = support::unique("sign/refused");
        let a = KeyPair::generate();
        // A build that would take a while, if it ever started.
        let src = Src::new(&[("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
        let mut source = reg.source(&repo);
        signing(&mut source, &a.encrypted, "not-the-password");
        let failed = out(&src, &source, json!({"context": "."}));
        failed
            .expect_failure()
            .expect_error("invalid payload: source.sign.private_key: wrong password (the encrypted key does not open with it)");
        assert_no_key_material(&failed, &[&a]);
        assert!(!failed.stderr.contains("building"), "{}", failed.details());
        assert_eq!(registry_digest(reg, &format!("{repo}:latest")), None);

        // Signed with one key, checked with another: the image is there by
        // digest, with its signature, but no tag moved.
        let other = KeyPair::generate();
        test_support_layout(src.path(), "refused signature");
        let mut source = reg.source(&repo);
        signing(&mut source, &a.pkcs8, "");
        verifying(&mut source, &[&other]);
        let refused = out(&src, &source, json!({"image": "layout"}));
        refused.expect_failure().expect_stderr("no tag was moved");
        assert!(refused.stderr.contains(&fingerprint(&other.public)), "{}", refused.details());
        assert_no_key_material(&refused, &[&a]);
        assert_eq!(registry_digest(reg, &format!("{repo}:latest")), None);
    }
}

needs! { buildkitd;
    #[test]
    fn a_multi_platform_build_signs_the_index_and_each_image() {
        let reg = support::registry::tls_auth();
        let repo = support::unique("sign/multi");
        let key = KeyPair::generate();
        let base = support::fixtures::busybox_base(reg);
        let src = Src::new(&[(
            "src/Dockerfile",
            &format!(
                "FROM --platform=$BUILDPLATFORM {base} AS build\nARG TARGETARCH\n\
                 RUN echo $TARGETARCH > /arch\nFROM scratch\nCOPY --from=build /arch /arch\n"
            ),
        )]);
        let mut source = reg.source(&repo);
        signing(&mut source, &key.encrypted, &key.password);
        verifying(&mut source, &[&key]);
        let path = support::buildkitd::path_env();
        let done = cmd::run(
            "out",
            &[src.path()],
            &json!({"source": source, "params": {"context": "src", "platforms": ["linux/amd64", "linux/arm64"], "source_date_epoch": 1_700_000_000}}),
            &[("PATH", path.as_str())],
        );
        done.expect_success();
        assert_no_key_material(&done, &[&key]);
        let resp = done.json();
        let digest = resp["version"]["digest"].as_str().expect("digest").to_owned();
        cosign::verify(reg, &format!("{repo}@{digest}"), &key.public).expect("the index verifies");
        assert!(
            cosign::verify(reg, &format!("{repo}@{digest}"), &KeyPair::generate().public).is_err(),
            "another key must not verify the index"
        );
        let raw = skopeo(reg, &["inspect", "--raw"], &format!("{repo}@{digest}")).expect("index");
        let index: Value = serde_json::from_slice(&raw).expect("index JSON");
        let mut images = 0;
        for child in index["manifests"].as_array().expect("an index") {
            let child_digest = child["digest"].as_str().expect("child digest");
            let sig_tag = format!("{repo}:{}.sig", child_digest.replacen(':', "-", 1));
            if child["annotations"]["vnd.docker.reference.type"] == "attestation-manifest" {
                assert_eq!(registry_digest(reg, &sig_tag), None, "attestations are not signed");
                continue;
            }
            cosign::verify(reg, &format!("{repo}@{child_digest}"), &key.public)
                .unwrap_or_else(|e| panic!("platform image {child_digest} does not verify: {e}"));
            images += 1;
        }
        assert_eq!(images, 2, "{index}");
        assert_eq!(signature_layers(reg, &repo, &digest).len(), 1);

        // The same build again: the tags keep the index (an unchanged
        // rebuild), and its signature manifest does not grow.
        let again = cmd::run(
            "out",
            &[src.path()],
            &json!({"source": source, "params": {"context": "src", "platforms": ["linux/amd64", "linux/arm64"], "source_date_epoch": 1_700_000_000}}),
            &[("PATH", path.as_str())],
        );
        again.expect_success();
        assert_eq!(again.json()["version"]["digest"], json!(digest), "{}", again.details());
        assert_eq!(signature_layers(reg, &repo, &digest).len(), 1, "{}", again.details());

        // check and in with verify accept it, and in picks a platform.
        let mut check_source = reg.source(&repo);
        check_source["tag"] = json!("latest");
        verifying(&mut check_source, &[&key]);
        let versions = cmd::run("check", &[], &json!({"source": check_source}), &[]);
        assert_eq!(versions.expect_success().json(), json!([{"tag": "latest", "digest": digest}]));
        let dest = tempfile::tempdir().expect("dest");
        cmd::run(
            "in",
            &[dest.path()],
            &json!({"source": check_source, "version": {"tag": "latest", "digest": digest},
                    "params": {"platform": {"architecture": "arm64"}}}),
            &[],
        )
        .expect_success();
        assert_eq!(std::fs::read_to_string(dest.path().join("rootfs/arch")).expect("arch"), "arm64\n");
    }
}

needs! { dockerd;
    #[test]
    fn a_build_on_the_docker_engine_is_signed() {
        let reg = support::registry::tls_auth();
        let repo = support::unique("sign/engine");
        let key = KeyPair::generate();
        let src = Src::new(&[("Dockerfile", "FROM scratch\nCOPY hello /\n"), ("hello", "from the Engine\n")]);
        let mut source = reg.source(&repo);
        source["buildkit_host"] = json!(format!("docker://{}", support::docker::shared().socket.display()));
        signing(&mut source, &key.encrypted, &key.password);
        let done = out(&src, &source, json!({"context": "."}));
        done.expect_success();
        assert_no_key_material(&done, &[&key]);
        let resp = done.json();
        let digest = resp["version"]["digest"].as_str().expect("digest");
        assert_eq!(metadata(&resp, "signing_key"), Some(fingerprint(&key.public)));
        cosign::verify(reg, &format!("{repo}@{digest}"), &key.public)
            .expect("sigstore verifies what the Engine built");
        cosign::verify(reg, &format!("{repo}:latest"), &key.public).expect("through the tag too");
    }
}

/// Three images: 1.0.0 signed by `a` (sigstore), 1.1.0 unsigned, 1.2.0
/// signed by `c`; returns their digests.
fn three_versions(reg: &Registry, repo: &str, a: &KeyPair, c: &KeyPair) -> [String; 3] {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut digests = Vec::new();
    for (tag, key) in [("1.0.0", Some(a)), ("1.1.0", None), ("1.2.0", Some(c))] {
        let sub = dir.path().join(tag);
        std::fs::create_dir_all(&sub).expect("mkdir");
        let layout = test_support_layout(&sub, &format!("version {tag}"));
        reg.push(&format!("oci:{}:t", layout.display()), repo, tag, false);
        if let Some(key) = key {
            cosign::sign(reg, &format!("{repo}:{tag}"), key);
        }
        digests.push(registry_digest(reg, &format!("{repo}:{tag}")).expect("pushed"));
    }
    digests.try_into().expect("three")
}

fn check(source: &Value) -> cmd::Output {
    cmd::run("check", &[], &json!({"source": source}), &[])
}

fn get(source: &Value, tag: &str, digest: &str, dest: &Path) -> cmd::Output {
    cmd::run(
        "in",
        &[dest],
        &json!({"source": source, "version": {"tag": tag, "digest": digest}}),
        &[],
    )
}

needs! { docker_registry, skopeo, umoci;
    #[test]
    fn check_and_in_with_verify_accept_only_what_a_listed_key_signed() {
        let reg = support::registry::tls_auth();
        let repo = support::unique("sign/verify");
        let (a, b, c) = (KeyPair::generate(), KeyPair::generate(), KeyPair::generate());
        let [d0, d1, d2] = three_versions(reg, &repo, &a, &c);

        // Without verify: every version, and never a signature tag.
        let mut plain = reg.source(&repo);
        plain["tag_regex"] = json!(".*");
        let all = check(&plain).expect_success().json();
        let mut tags: Vec<&str> = all.as_array().unwrap().iter().map(|v| v["tag"].as_str().unwrap()).collect();
        tags.sort();
        assert_eq!(tags, ["1.0.0", "1.1.0", "1.2.0"], "{all}");

        // With verify, in each mode: only 1.0.0; the others named once.
        let mut semver = reg.source(&repo);
        verifying(&mut semver, &[&b, &a]);
        let mut regex = semver.clone();
        regex["tag_regex"] = json!(".*");
        for source in [&semver, &regex] {
            let run = check(source);
            assert_eq!(run.expect_success().json(), json!([{"tag": "1.0.0", "digest": d0}]));
            for skipped in [&d1, &d2] {
                assert_eq!(run.stderr.matches(skipped.as_str()).count(), 1, "{}", run.details());
            }
        }
        let mut tag_mode = semver.clone();
        tag_mode["tag"] = json!("1.1.0");
        assert_eq!(check(&tag_mode).expect_success().json(), json!([]));

        // in: the signed one, with the key named; the others refused with
        // nothing written.
        let dest = tempfile::tempdir().expect("dest");
        let got = get(&semver, "1.0.0", &d0, dest.path());
        got.expect_success();
        assert_eq!(metadata(&got.json(), "signing_key"), Some(fingerprint(&a.public)));
        assert!(dest.path().join("rootfs").is_dir());
        for (tag, digest) in [("1.1.0", &d1), ("1.2.0", &d2)] {
            let dest = tempfile::tempdir().expect("dest");
            let refused = get(&semver, tag, digest, dest.path());
            refused.expect_failure();
            let line = refused
                .stderr
                .lines()
                .find(|l| l.starts_with("error: "))
                .unwrap_or_else(|| panic!("{}", refused.details()));
            for needle in [digest.as_str(), &fingerprint(&a.public), &fingerprint(&b.public)] {
                assert!(line.contains(needle), "{needle} not in {line:?}");
            }
            let left: Vec<_> = std::fs::read_dir(dest.path()).unwrap().collect();
            assert!(left.is_empty(), "{tag}: the destination must stay empty: {left:?}");
        }
    }
}
