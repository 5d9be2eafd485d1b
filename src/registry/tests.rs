//! Client tests against real peers: `docker-registry` (plain HTTP, and TLS
//! with htpasswd), fixtures from `umoci` pushed by `skopeo`, and scripted
//! fake servers for token auth, lying registries and 429s.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use test_support::{FakeServer, Reply, SeenRequest, registry, response, umoci_layout, unique};
use tokio::io::AsyncReadExt;

use super::test_registry::TestRegistryExt;
use super::*;
use crate::oci::{Digest, sha256_digest};

fn dg(text: &str) -> Digest {
    Digest::parse(text).unwrap()
}
use crate::secret::Secret;

#[derive(serde::Deserialize)]
struct ManifestDoc {
    config: Desc,
    layers: Vec<Desc>,
}

#[derive(serde::Deserialize)]
struct Desc {
    digest: String,
    size: u64,
}

crate::registry::test_registry::needs_test_registry! {
    #[tokio::test]
    async fn plain_registry_resolve_fetch_and_stream() {
        let reg = registry::plain();
        let repo = format!("app/{}", unique("one"));
        let dir = tempfile::tempdir().unwrap();
        let layout = umoci_layout(dir.path(), "v1", "one");
        reg.push(
            &format!("oci:{}:v1", layout.display()),
            &repo,
            "latest",
            false,
        );
        let raw = reg.inspect_raw(&format!("{repo}:latest"));
        let client = reg.client(&repo, Access::Pull);

        // digest == sha256 of the exact bytes skopeo sees
        let digest = client.resolve_tag("latest").await.unwrap().unwrap();
        assert_eq!(digest, sha256_digest(&raw));
        assert_eq!(client.resolve_tag("missing").await.unwrap(), None);
        assert!(client.manifest_exists(&digest).await.unwrap());
        assert!(
            !client
                .manifest_exists(&sha256_digest(b"nope"))
                .await
                .unwrap()
        );

        let m = client.fetch_manifest(&digest).await.unwrap();
        assert_eq!(m.bytes, raw);
        assert_eq!(m.digest, digest);
        assert_eq!(m.media_type, "application/vnd.oci.image.manifest.v1+json");

        let doc: ManifestDoc = serde_json::from_slice(&m.bytes).unwrap();
        let config = client.fetch_blob(&dg(&doc.config.digest)).await.unwrap();
        assert_eq!(sha256_digest(&config), doc.config.digest);
        assert!(String::from_utf8_lossy(&config).contains("fixture"));

        let layer = &doc.layers[0];
        let mut reader = client
            .blob_reader(&dg(&layer.digest), layer.size)
            .await
            .unwrap();
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await.unwrap();
        assert_eq!(sha256_digest(&bytes), layer.digest);
        assert!(client.blob_exists(&dg(&layer.digest)).await.unwrap());

        // a wrong size is caught before reading, from the Content-Length, as
        // a permanent error
        let err = client
            .blob_reader(&dg(&layer.digest), layer.size + 1)
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(!err.is_transient(), "{err}");
        assert!(err.to_string().contains("descriptor says"), "{err}");

        // missing manifest by digest is an error naming the request
        let err = client
            .fetch_manifest(&sha256_digest(b"nope"))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(reqwest::StatusCode::NOT_FOUND));
        assert!(
            err.codes().contains(&"MANIFEST_UNKNOWN".to_string()),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains(&format!("/v2/{repo}/manifests/sha256:")),
            "{err}"
        );
    }
}

crate::registry::test_registry::needs_test_registry! {
    #[tokio::test]
    async fn tags_follow_link_pagination() {
        let reg = registry::plain();
        let repo = unique("paged");
        let dir = tempfile::tempdir().unwrap();
        let layout = umoci_layout(dir.path(), "v1", "one");
        let mut want: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for t in &want {
            reg.push(&format!("oci:{}:v1", layout.display()), &repo, t, false);
        }
        let client = reg.client(&repo, Access::Pull).with_tag_page(2);
        let mut tags = client.list_tags().await.unwrap();
        tags.sort();
        want.sort();
        assert_eq!(tags, want);
        // an unknown repository is an error (registry-image: "list repository tags")
        let err = reg
            .client(&unique("nothing-here"), Access::Pull)
            .list_tags()
            .await
            .unwrap_err();
        assert_eq!(err.codes(), ["NAME_UNKNOWN"]);
    }
}

crate::registry::test_registry::needs_test_registry! {
    #[tokio::test]
    async fn push_blobs_and_manifest_then_skopeo_reads_them() {
        let reg = registry::plain();
        let repo = unique("pushed");
        let client = reg.client(&repo, Access::Push);
        let layer: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let layer_digest = sha256_digest(&layer);
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let config_digest = sha256_digest(config);
        client
            .push_blob(
                &layer_digest,
                layer.len() as u64,
                std::io::Cursor::new(layer.clone()),
            )
            .await
            .unwrap();
        client
            .push_blob(
                &config_digest,
                config.len() as u64,
                std::io::Cursor::new(config.to_vec()),
            )
            .await
            .unwrap();
        assert!(client.blob_exists(&layer_digest).await.unwrap());
        // pushing again is skipped (the body would fail if it were read)
        client
            .push_blob(&layer_digest, layer.len() as u64, tokio::io::empty())
            .await
            .unwrap();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{config_digest}"}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","size":{},"digest":"{layer_digest}"}}]}}"#,
            config.len(),
            layer.len()
        );
        let bytes = Bytes::from(manifest.clone());
        let digest = client
            .push_manifest("v1", "application/vnd.oci.image.manifest.v1+json", bytes)
            .await
            .unwrap();
        assert_eq!(digest, sha256_digest(manifest.as_bytes()));
        assert_eq!(reg.inspect_raw(&format!("{repo}:v1")), manifest.as_bytes());
        assert_eq!(client.resolve_tag("v1").await.unwrap(), Some(digest));

        // a blob whose bytes do not match its digest is refused by the registry
        let err = client
            .push_blob(
                &sha256_digest(b"other"),
                3,
                std::io::Cursor::new(b"abc".to_vec()),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.status(),
            Some(reqwest::StatusCode::BAD_REQUEST),
            "{err}"
        );
    }
}

crate::registry::test_registry::needs_test_registry! {
    #[tokio::test]
    async fn tls_registry_is_verified_even_when_insecure_and_needs_credentials() {
        let reg = registry::tls_auth();
        let repo = unique("secure");
        let dir = tempfile::tempdir().unwrap();
        let layout = umoci_layout(dir.path(), "v1", "secure");
        reg.push(
            &format!("oci:{}:v1", layout.display()),
            &repo,
            "latest",
            false,
        );
        let raw = reg.inspect_raw(&format!("{repo}:latest"));

        let ok = reg.client(&repo, Access::Pull);
        assert_eq!(
            ok.resolve_tag("latest").await.unwrap(),
            Some(sha256_digest(&raw))
        );

        // Without the CA (a certificate error, no silent fallback to http) and
        // with a wrong password (401, never echoed): `tests/it/get.rs`
        // `tls_without_ca_certs_fails` and `wrong_password_fails_without_printing_it`.
        let insecure = TlsOptions {
            ca_certs: vec![],
            insecure: true,
            ..TlsOptions::default()
        };
        let no_ca = Client::new(
            &reg.repository(&repo),
            reg.credentials(),
            &insecure,
            Access::Pull,
        )
        .unwrap();
        assert!(
            no_ca.resolve_tag("latest").await.is_err(),
            "insecure must not skip verification"
        );

        // missing credentials are refused
        let anon = Client::new(
            &reg.repository(&repo),
            Credentials::Anonymous,
            &reg.tls_options(),
            Access::Pull,
        )
        .unwrap();
        assert!(anon.list_tags().await.is_err());
    }
}

fn bearer_registry(
    digest: String,
    token_hits: Arc<AtomicUsize>,
) -> impl Fn(&SeenRequest) -> Vec<u8> + Send + Sync {
    move |req| {
        let host = req.header("host").unwrap_or_default().to_owned();
        let challenge = format!(r#"Bearer realm="http://{host}/token",service="fake-registry""#);
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v2/") => {
                response("401 Unauthorized", &[("WWW-Authenticate", &challenge)], b"")
            }
            ("GET", p) if p.starts_with("/token?") => {
                token_hits.fetch_add(1, Ordering::SeqCst);
                // user:pass = "u:p"
                if req.header("authorization") == Some("Basic dTpw")
                    && p.contains("scope=repository%3Aorg%2Fapp%3Apull")
                    && p.contains("service=fake-registry")
                {
                    response(
                        "200 OK",
                        &[("Content-Type", "application/json")],
                        br#"{"token":"tok-123"}"#,
                    )
                } else {
                    response("401 Unauthorized", &[], b"bad credentials")
                }
            }
            (_, p) if p.starts_with("/v2/org/app/manifests/") => {
                if req.header("authorization") != Some("Bearer tok-123") {
                    return response("401 Unauthorized", &[("WWW-Authenticate", &challenge)],
                        br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#);
                }
                response(
                    "200 OK",
                    &[
                        ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                        ("Content-Length", "10"),
                        ("Docker-Content-Digest", &digest),
                    ],
                    b"",
                )
            }
            _ => response("404 Not Found", &[], b""),
        }
    }
}

#[tokio::test]
async fn token_auth_sends_basic_to_realm_and_bearer_to_registry() {
    let digest = sha256_digest(b"whatever");
    let hits = Arc::new(AtomicUsize::new(0));
    let server = FakeServer::start(bearer_registry(digest.to_string(), hits.clone())).await;
    let repo = super::Repository::parse(&format!("{}/org/app", server.host)).unwrap();
    let creds = Credentials::Basic {
        username: "u".into(),
        password: Secret::new("p"),
    };
    let client = Client::new(&repo, creds, &TlsOptions::default(), Access::Pull).unwrap();
    assert_eq!(
        client.resolve_tag("latest").await.unwrap(),
        Some(digest.clone())
    );
    assert_eq!(client.resolve_tag("other").await.unwrap(), Some(digest));
    assert_eq!(hits.load(Ordering::SeqCst), 1, "one token per client");
    let log = server.log();
    assert!(
        log.contains(&"HEAD /v2/org/app/manifests/latest".to_string()),
        "{log:?}"
    );

    let bad = Credentials::Basic {
        username: "u".into(),
        password: Secret::new("nope"),
    };
    let err = Client::new(&repo, bad, &TlsOptions::default(), Access::Pull)
        .unwrap()
        .resolve_tag("latest")
        .await
        .unwrap_err();
    let text = crate::error::chain(&err);
    assert!(
        text.starts_with(&format!(
            "authenticating to {} for repository:org/app:pull",
            server.host
        )),
        "{text}"
    );
    assert!(!text.contains("nope"), "{text}");
}

#[tokio::test]
async fn head_without_digest_falls_back_to_get() {
    // registry-image's first portable check case: HEAD lacks the digest
    // header, GET body `{"fake":"manifest"}` → sha256 of that body.
    let server = FakeServer::start(|req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/v2/") => response("200 OK", &[], b""),
        ("HEAD", "/v2/fake/manifests/latest") => {
            response("200 OK", &[("Content-Type", "application/json")], b"")
        }
        ("GET", "/v2/fake/manifests/latest") => response("200 OK", &[], br#"{"fake":"manifest"}"#),
        _ => response("404 Not Found", &[], b""),
    })
    .await;
    let repo = super::Repository::parse(&format!("{}/fake", server.host)).unwrap();
    let client = Client::new(
        &repo,
        Credentials::Anonymous,
        &TlsOptions::default(),
        Access::Pull,
    )
    .unwrap();
    assert_eq!(
        client.resolve_tag("latest").await.unwrap(),
        Some(sha256_digest(br#"{"fake":"manifest"}"#))
    );
    assert_eq!(client.resolve_tag("gone").await.unwrap(), None);
}

#[tokio::test]
async fn lying_blob_server_is_caught() {
    let good = b"the real layer".to_vec();
    let digest = sha256_digest(&good);
    let d2 = digest.clone();
    let server = FakeServer::start(move |req| match req.path.as_str() {
        "/v2/" => response("200 OK", &[], b""),
        p if p == format!("/v2/lies/blobs/{d2}") => response("200 OK", &[], b"a fake layer!!"),
        p if p.starts_with("/v2/short/blobs/") => {
            // promises 14 bytes, sends 5, closes
            response("200 OK", &[("Content-Length", "14")], b"the r")
        }
        _ => response("404 Not Found", &[], b""),
    })
    .await;
    let client = |name: &str| {
        let repo = super::Repository::parse(&format!("{}/{name}", server.host)).unwrap();
        Client::new(
            &repo,
            Credentials::Anonymous,
            &TlsOptions::default(),
            Access::Pull,
        )
        .unwrap()
    };
    let mut r = client("lies")
        .blob_reader(&digest, good.len() as u64)
        .await
        .unwrap();
    let err = r.read_to_end(&mut Vec::new()).await.unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    let err = client("lies").fetch_blob(&digest).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    let mut r = client("short")
        .blob_reader(&digest, good.len() as u64)
        .await
        .unwrap();
    assert!(r.read_to_end(&mut Vec::new()).await.is_err());
}

#[tokio::test]
async fn retries_429_then_succeeds() {
    retry::FAST_FOR_TESTS.store(true, Ordering::Relaxed);
    let digest = sha256_digest(b"m");
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let d2 = digest.clone();
    let server = FakeServer::start(move |req| match req.path.as_str() {
        "/v2/" => response("200 OK", &[], b""),
        _ if c2.fetch_add(1, Ordering::SeqCst) < 3 => {
            response("429 Too Many Requests", &[], b"slow down")
        }
        _ => response(
            "200 OK",
            &[
                ("Content-Type", "application/json"),
                ("Docker-Content-Digest", &d2),
            ],
            b"m",
        ),
    })
    .await;
    let repo = super::Repository::parse(&format!("{}/r", server.host)).unwrap();
    let got = retry_transient("fetching r", || async {
        // a fresh client per attempt, like registry-image's per-attempt ping
        let client = Client::new(
            &repo,
            Credentials::Anonymous,
            &TlsOptions::default(),
            Access::Pull,
        )?;
        client.fetch_manifest("latest").await.map(|m| m.digest)
    })
    .await;
    assert_eq!(got.unwrap(), digest);
    assert_eq!(calls.load(Ordering::SeqCst), 4, "three 429s, then success");

    // permanent errors are not retried
    let calls = Arc::new(AtomicUsize::new(0));
    let c3 = calls.clone();
    let server = FakeServer::start(move |req| match req.path.as_str() {
        "/v2/" => response("200 OK", &[], b""),
        _ => {
            c3.fetch_add(1, Ordering::SeqCst);
            response(
                "403 Forbidden",
                &[],
                br#"{"errors":[{"code":"DENIED","message":"no"}]}"#,
            )
        }
    })
    .await;
    let repo = super::Repository::parse(&format!("{}/r", server.host)).unwrap();
    let err = retry_transient("fetching r", || async {
        let client = Client::new(
            &repo,
            Credentials::Anonymous,
            &TlsOptions::default(),
            Access::Pull,
        )?;
        client.fetch_manifest("latest").await
    })
    .await
    .unwrap_err();
    assert_eq!(err.codes(), ["DENIED"]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn refused_token_is_refreshed_once() {
    // The registry only accepts the second token it hands out, as after an
    // expiry mid-run.
    let hits = Arc::new(AtomicUsize::new(0));
    let h2 = hits.clone();
    let digest = sha256_digest(b"m");
    let d2 = digest.clone();
    let server = FakeServer::start(move |req| {
        let host = req.header("host").unwrap_or_default().to_owned();
        let challenge = format!(r#"Bearer realm="http://{host}/token",service="s""#);
        match req.path.as_str() {
            "/v2/" => response("401 Unauthorized", &[("WWW-Authenticate", &challenge)], b""),
            p if p.starts_with("/token") => {
                let n = h2.fetch_add(1, Ordering::SeqCst) + 1;
                response(
                    "200 OK",
                    &[],
                    format!(r#"{{"token":"tok-{n}"}}"#).as_bytes(),
                )
            }
            _ if req.header("authorization") == Some("Bearer tok-2") => response(
                "200 OK",
                &[
                    ("Content-Type", "application/json"),
                    ("Docker-Content-Digest", &d2),
                ],
                b"m",
            ),
            _ => response("401 Unauthorized", &[("WWW-Authenticate", &challenge)], b""),
        }
    })
    .await;
    let repo = super::Repository::parse(&format!("{}/r", server.host)).unwrap();
    let client = Client::new(
        &repo,
        Credentials::Anonymous,
        &TlsOptions::default(),
        Access::Pull,
    )
    .unwrap();
    assert_eq!(
        client.fetch_manifest("latest").await.unwrap().digest,
        digest
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    // a token that keeps being refused is an error after one refresh, not a loop
    let hits = Arc::new(AtomicUsize::new(0));
    let h3 = hits.clone();
    let server = FakeServer::start(move |req| {
        let host = req.header("host").unwrap_or_default().to_owned();
        let challenge = format!(r#"Bearer realm="http://{host}/token",service="s""#);
        match req.path.as_str() {
            p if p.starts_with("/token") => {
                h3.fetch_add(1, Ordering::SeqCst);
                response("200 OK", &[], br#"{"token":"never-good"}"#)
            }
            _ => response(
                "401 Unauthorized",
                &[("WWW-Authenticate", &challenge)],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            ),
        }
    })
    .await;
    let repo = super::Repository::parse(&format!("{}/r", server.host)).unwrap();
    let client = Client::new(
        &repo,
        Credentials::Anonymous,
        &TlsOptions::default(),
        Access::Pull,
    )
    .unwrap();
    let err = client.fetch_manifest("latest").await.unwrap_err();
    assert_eq!(err.codes(), ["UNAUTHORIZED"]);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "initial token + one refresh"
    );
    assert!(crate::error::hint(&crate::error::chain(&err)).is_some());
}

#[tokio::test]
async fn schema1_manifests_are_unsupported_not_corrupt() {
    // A signed schema 1 manifest: its digest covers the payload without the
    // `signatures`, so the body never hashes to the digest it was asked by.
    let signed = br#"{"schemaVersion":1,"name":"s1","tag":"v1","fsLayers":[],"signatures":[{"protected":"x"}]}"#;
    let unsigned = br#"{"schemaVersion": 1, "name": "s1", "tag": "v1", "fsLayers": []}"#;
    let payload_digest = sha256_digest(b"the payload without signatures");
    let unsigned_digest = sha256_digest(unsigned);
    let server = FakeServer::start(move |req| match req.path.as_str() {
        "/v2/" => response("200 OK", &[], b""),
        p if p.starts_with("/v2/signed/manifests/") => response(
            "200 OK",
            &[(
                "Content-Type",
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
            )],
            signed,
        ),
        // Some registries send a generic type: the body says schema 1.
        p if p.starts_with("/v2/generic/manifests/") => {
            response("200 OK", &[("Content-Type", "application/json")], unsigned)
        }
        _ => response("404 Not Found", &[], b""),
    })
    .await;
    let client = |name: &str| {
        let repo = super::Repository::parse(&format!("{}/{name}", server.host)).unwrap();
        Client::new(
            &repo,
            Credentials::Anonymous,
            &TlsOptions::default(),
            Access::Pull,
        )
        .unwrap()
    };
    for (name, reference, shown) in [
        (
            "signed",
            payload_digest.to_string(),
            format!("signed@{payload_digest}"),
        ),
        ("signed", "v1".to_owned(), "signed:v1".to_owned()),
        (
            "generic",
            unsigned_digest.to_string(),
            format!("generic@{unsigned_digest}"),
        ),
    ] {
        let err = client(name).fetch_manifest(&reference).await.unwrap_err();
        assert!(
            matches!(err, Error::Schema1 { .. }),
            "{name} {reference}: {err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("docker schema 1 manifests are not supported") && text.contains(&shown),
            "{text}"
        );
    }
}

/// A hostile registry on 127.0.0.1 whose every answer but the ping has a
/// body far larger than any limit (256 MiB of `{`, no Content-Length);
/// repositories named `err` answer 404 with it. Returns the host.
async fn endless_body_server() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut chunk = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                    if head.first() == Some(&0x16) {
                        return;
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
                if path == "/v2/" {
                    let _ = sock
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
                let status = if path.starts_with("/v2/err/") {
                    "404 Not Found"
                } else {
                    "200 OK"
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                );
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let block = vec![b'{'; 1 << 20];
                for _ in 0..256 {
                    if sock.write_all(&block).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (host, task)
}

/// Manifests, configs, tag lists and error bodies are read into memory only
/// up to a limit; beyond it the read is refused (or, for an error body,
/// cut) at once.
#[tokio::test]
async fn endless_bodies_are_refused_at_their_limit() {
    let (host, server) = endless_body_server().await;
    let client = |name: &str| {
        let repo = super::Repository::parse(&format!("{host}/{name}")).unwrap();
        Client::new(
            &repo,
            Credentials::Anonymous,
            &TlsOptions::default(),
            Access::Pull,
        )
        .unwrap()
    };
    let within = |what: &'static str, secs| {
        move |r: std::result::Result<Error, tokio::time::error::Elapsed>| {
            r.unwrap_or_else(|_| panic!("{what}: not refused within {secs}s"))
        }
    };
    let digest = sha256_digest(b"x");
    let c = client("img");
    let err = within("manifest", 20)(
        tokio::time::timeout(Duration::from_secs(20), async {
            c.fetch_manifest("latest")
                .await
                .map(|_| ())
                .expect_err("accepted (the whole hostile body was read)")
        })
        .await,
    );
    assert!(
        err.to_string()
            .contains("manifest is larger than 4194304 bytes"),
        "{err}"
    );
    let err = within("config", 20)(
        tokio::time::timeout(Duration::from_secs(20), async {
            c.fetch_blob(&digest)
                .await
                .map(|_| ())
                .expect_err("accepted (the whole hostile body was read)")
        })
        .await,
    );
    assert!(
        err.to_string()
            .contains("blob is larger than 67108864 bytes"),
        "{err}"
    );
    let err = within("tag list", 20)(
        tokio::time::timeout(Duration::from_secs(20), async {
            c.list_tags()
                .await
                .map(|_| ())
                .expect_err("accepted (the whole hostile body was read)")
        })
        .await,
    );
    assert!(
        err.to_string().contains("tag list page is larger than"),
        "{err}"
    );
    let e = client("err");
    let err = within("error body", 20)(
        tokio::time::timeout(Duration::from_secs(20), async {
            e.fetch_manifest("latest")
                .await
                .map(|_| ())
                .expect_err("accepted (the whole hostile body was read)")
        })
        .await,
    );
    match &err {
        Error::Status { status, body, .. } => {
            assert_eq!(status.as_u16(), 404);
            assert!(body.len() <= 64 << 10, "{} bytes kept", body.len());
        }
        other => panic!("expected the 404, got {other}"),
    }
    server.abort();
}

/// A blob whose complete response is shorter (or longer) than its
/// descriptor fails at once, as a permanent error; a response cut short of
/// its own Content-Length stays transient.
#[tokio::test]
async fn complete_blob_of_the_wrong_size_is_a_permanent_error() {
    let good = b"the real layer".to_vec();
    let digest = sha256_digest(&good);
    let server = FakeServer::start(move |req| match req.path.as_str() {
        "/v2/" => response("200 OK", &[], b""),
        p if p.starts_with("/v2/short/blobs/") => response("200 OK", &[], b"the r"),
        p if p.starts_with("/v2/long/blobs/") => {
            response("200 OK", &[], b"the real layer, and more")
        }
        p if p.starts_with("/v2/cut/blobs/") => {
            response("200 OK", &[("Content-Length", "14")], b"the r")
        }
        _ => response("404 Not Found", &[], b""),
    })
    .await;
    let client = |name: &str| {
        let repo = super::Repository::parse(&format!("{}/{name}", server.host)).unwrap();
        Client::new(
            &repo,
            Credentials::Anonymous,
            &TlsOptions::default(),
            Access::Pull,
        )
        .unwrap()
    };
    for name in ["short", "long"] {
        let err = client(name)
            .blob_reader(&digest, good.len() as u64)
            .await
            .map(|_| ())
            .expect_err("a blob of the wrong size was accepted");
        assert!(!err.is_transient(), "{name}: {err}");
        assert!(err.to_string().contains("descriptor says 14"), "{err}");
    }
    let mut r = client("cut")
        .blob_reader(&digest, good.len() as u64)
        .await
        .unwrap();
    let err = r.read_to_end(&mut Vec::new()).await.unwrap_err();
    assert!(super::error::chain_is_transient(&err), "{err}");
}

/// A 429 or 503 with `Retry-After: 1` waits about that long before the next
/// attempt, even with the test's 5 ms back-off.
#[tokio::test]
async fn retry_after_is_honoured() {
    retry::FAST_FOR_TESTS.store(true, Ordering::Relaxed);
    let digest = sha256_digest(b"m");
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let d2 = digest.clone();
    let server = FakeServer::start(move |req| match req.path.as_str() {
        "/v2/" => response("200 OK", &[], b""),
        _ => match c2.fetch_add(1, Ordering::SeqCst) {
            0 => response("429 Too Many Requests", &[("Retry-After", "1")], b""),
            1 => response("503 Service Unavailable", &[("Retry-After", "1")], b""),
            _ => response(
                "200 OK",
                &[
                    ("Content-Type", "application/json"),
                    ("Docker-Content-Digest", &d2),
                ],
                b"m",
            ),
        },
    })
    .await;
    let repo = super::Repository::parse(&format!("{}/r", server.host)).unwrap();
    let client = Client::new(
        &repo,
        Credentials::Anonymous,
        &TlsOptions::default(),
        Access::Pull,
    )
    .unwrap();
    let start = std::time::Instant::now();
    let got = retry_transient("fetching r", || async {
        client.fetch_manifest("latest").await.map(|m| m.digest)
    })
    .await;
    assert_eq!(got.unwrap(), digest);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(
        start.elapsed() >= Duration::from_millis(1900),
        "Retry-After ignored: {:?}",
        start.elapsed()
    );
}

/// A client for `<server>/<name>` with a short idle-read timeout.
fn client_with_timeout(host: &str, name: &str, creds: Credentials, idle: Duration) -> Client {
    let repo = super::Repository::parse(&format!("{host}/{name}")).unwrap();
    let tls = TlsOptions {
        read_timeout: Some(idle),
        ..TlsOptions::default()
    };
    Client::new(&repo, creds, &tls, Access::Pull).unwrap()
}

/// Reads a whole blob through [`Client::blob_reader`], as `in` streams a
/// layer, with the step-level error type the retry loop judges.
async fn read_blob(client: &Client, digest: &Digest, size: u64) -> crate::Result<Vec<u8>> {
    let mut reader = client.blob_reader(digest, size).await?;
    let mut out = Vec::new();
    reader
        .read_to_end(&mut out)
        .await
        .map_err(|e| crate::Error::Foreign {
            context: format!("reading blob {digest}"),
            source: Box::new(e),
        })?;
    Ok(out)
}

/// A registry that stalls mid-blob (head and half the body sent, then
/// silence) fails the read after the idle timeout as a transient error; the
/// retry fetches the blob again and succeeds, in bounded time. Without the
/// timeout the first read would never end (the outer deadline below turns
/// that into a failure).
#[tokio::test]
async fn a_registry_stalling_mid_blob_is_retried_after_the_idle_timeout() {
    retry::FAST_FOR_TESTS.store(true, Ordering::Relaxed);
    let blob = vec![7u8; 64 * 1024];
    let digest = sha256_digest(&blob);
    let calls = Arc::new(AtomicUsize::new(0));
    let (c2, b2) = (calls.clone(), blob.clone());
    let server = FakeServer::start_with(move |req| match req.path.as_str() {
        "/v2/" => Reply::Close(response("200 OK", &[], b"")),
        p if p.contains("/blobs/") => {
            let whole = response("200 OK", &[], &b2);
            if c2.fetch_add(1, Ordering::SeqCst) == 0 {
                // Everything but the last half of the body.
                Reply::Stall(whole[..whole.len() - b2.len() / 2].to_vec())
            } else {
                Reply::Close(whole)
            }
        }
        _ => Reply::Close(response("404 Not Found", &[], b"")),
    })
    .await;
    let client = client_with_timeout(
        &server.host,
        "stall",
        Credentials::Anonymous,
        Duration::from_millis(300),
    );
    let start = std::time::Instant::now();
    let got = tokio::time::timeout(
        Duration::from_secs(30),
        retry_transient("download", || {
            read_blob(&client, &digest, blob.len() as u64)
        }),
    )
    .await
    .expect("the stalled read never ended: no idle timeout")
    .unwrap();
    assert_eq!(got, blob);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "{:?}", server.log());
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

/// A registry that never answers (no response head) or always stalls
/// mid-blob fails each attempt after the idle timeout, as a transient error
/// naming `source.registry_timeout` for the blob.
#[tokio::test]
async fn stalls_fail_as_transient_within_the_idle_timeout() {
    let blob = vec![1u8; 4096];
    let digest = sha256_digest(&blob);
    let b2 = blob.clone();
    let server = FakeServer::start_with(move |req| match req.path.as_str() {
        "/v2/" => Reply::Close(response("200 OK", &[], b"")),
        p if p.contains("/manifests/") => Reply::Stall(Vec::new()),
        p if p.contains("/blobs/") => {
            let whole = response("200 OK", &[], &b2);
            Reply::Stall(whole[..whole.len() - 100].to_vec())
        }
        _ => Reply::Close(response("404 Not Found", &[], b"")),
    })
    .await;
    let idle = Duration::from_millis(300);
    let client = client_with_timeout(&server.host, "stall", Credentials::Anonymous, idle);
    let start = std::time::Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(20), client.fetch_manifest("latest"))
        .await
        .expect("a silent registry hung the manifest request")
        .unwrap_err();
    assert!(err.is_transient(), "{}", crate::error::chain(&err));
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        read_blob(&client, &digest, blob.len() as u64),
    )
    .await
    .expect("a stalled blob hung the read")
    .unwrap_err();
    assert!(
        Transient::is_transient(&err),
        "{}",
        crate::error::chain(&err)
    );
    let text = crate::error::chain(&err);
    assert!(text.contains("source.registry_timeout"), "{text}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

/// A registry whose error body echoes the request's `Authorization: Basic`
/// header, with terminal controls: the raw error text holds
/// `base64(user:password)`, the text printed on stderr holds neither it nor
/// the controls.
#[tokio::test]
async fn an_error_body_echoing_the_authorization_header_is_scrubbed() {
    let server = FakeServer::start(|req| {
        let auth = req.header("authorization").unwrap_or_default().to_owned();
        match req.path.as_str() {
            "/v2/" if auth.is_empty() => response(
                "401 Unauthorized",
                &[("WWW-Authenticate", "Basic realm=\"fake\"")],
                b"",
            ),
            "/v2/" => response("200 OK", &[], b""),
            _ => {
                let body = serde_json::json!({"errors": [{
                    "code": "DENIED",
                    "message": format!("refused {auth}\u{1b}[2J\nerror: forged"),
                }]});
                response("403 Forbidden", &[], body.to_string().as_bytes())
            }
        }
    })
    .await;
    let (user, password) = ("echo-user", "echoed-Pa55word");
    let creds = Credentials::Basic {
        username: user.into(),
        password: Secret::new(password),
    };
    let client = client_with_timeout(&server.host, "echo", creds, Duration::from_secs(10));
    let err = client.fetch_manifest("latest").await.unwrap_err();
    let raw = crate::error::chain(&err);
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    assert!(
        raw.contains(&b64),
        "the fake did not echo the header: {raw}"
    );
    assert!(!raw.contains('\u{1b}') && !raw.contains('\n'), "{raw:?}");
    crate::secret::remember_basic(user, password);
    let shown = crate::secret::for_stderr(&raw);
    assert!(!shown.contains(&b64), "{shown}");
    assert!(!shown.contains(password), "{shown}");
    assert!(shown.contains("refused Basic <redacted>"), "{shown}");
}

/// The idle timeout bounds silence, not an upload's length: a blob whose
/// body trickles out for three times the timeout (a chunk every 150 ms) is
/// pushed, since every chunk counts as progress.
#[tokio::test]
#[cfg_attr(not(have_docker_registry), ignore = "needs docker-registry on PATH")]
async fn a_slow_upload_that_keeps_progressing_is_not_timed_out() {
    let reg = registry::plain();
    let chunks: Vec<Bytes> = (0..10u8).map(|i| Bytes::from(vec![i; 1024])).collect();
    let whole: Vec<u8> = chunks.iter().flat_map(|c| c.to_vec()).collect();
    let digest = sha256_digest(&whole);
    let slow = futures::stream::unfold(chunks.into_iter(), |mut rest| async move {
        let chunk = rest.next()?;
        tokio::time::sleep(Duration::from_millis(150)).await;
        Some((Ok::<_, std::io::Error>(chunk), rest))
    });
    let body = tokio_util::io::StreamReader::new(Box::pin(slow));
    let repo = reg.repository(&unique("slow/upload"));
    let tls = TlsOptions {
        read_timeout: Some(Duration::from_millis(500)),
        ..reg.tls_options()
    };
    let client = Client::new(&repo, reg.credentials(), &tls, Access::Push).unwrap();
    client
        .push_blob(&digest, whole.len() as u64, body)
        .await
        .unwrap();
    assert!(client.blob_exists(&digest).await.unwrap());
}

/// An upload the registry takes but never answers fails after the idle
/// timeout as a transient `Stalled` error, not a hang.
#[tokio::test]
async fn an_upload_the_registry_never_answers_fails_as_stalled() {
    let server = FakeServer::start_with(|req| match (req.method.as_str(), req.path.as_str()) {
        (_, "/v2/") => Reply::Close(response("200 OK", &[], b"")),
        ("HEAD", _) => Reply::Close(response("404 Not Found", &[], b"")),
        ("POST", _) => Reply::Close(response(
            "202 Accepted",
            &[("Location", "/v2/up/blobs/uploads/1")],
            b"",
        )),
        _ => Reply::Stall(Vec::new()),
    })
    .await;
    let blob = vec![3u8; 1024];
    let digest = sha256_digest(&blob);
    let repo = super::Repository::parse(&format!("{}/up", server.host)).unwrap();
    let tls = TlsOptions {
        read_timeout: Some(Duration::from_millis(300)),
        ..TlsOptions::default()
    };
    let client = Client::new(&repo, Credentials::Anonymous, &tls, Access::Push).unwrap();
    let start = std::time::Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        client.push_blob(
            &digest,
            blob.len() as u64,
            std::io::Cursor::new(blob.clone()),
        ),
    )
    .await
    .expect("an unanswered upload hung")
    .unwrap_err();
    assert!(matches!(err, Error::Stalled { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(err.to_string().contains("source.registry_timeout"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

fn anonymous_client(host: &str, name: &str) -> Client {
    let repo = super::Repository::parse(&format!("{host}/{name}")).unwrap();
    Client::new(
        &repo,
        Credentials::Anonymous,
        &TlsOptions::default(),
        Access::Pull,
    )
    .unwrap()
}

/// A `Link` back to a page already read ends the list: the tags are those
/// of the pages read, each page asked for once.
#[tokio::test]
async fn a_tag_list_linking_back_to_itself_ends() {
    let server = FakeServer::start(|req| match req.path.as_str() {
        "/v2/" => response("200 OK", &[], b""),
        p if p.starts_with("/v2/r/tags/list") => {
            let (body, link) = if p.contains("last=b") {
                (
                    &br#"{"name":"r","tags":["c"]}"#[..],
                    "</v2/r/tags/list?n=1000>; rel=\"next\"",
                )
            } else {
                (
                    &br#"{"name":"r","tags":["a","b"]}"#[..],
                    "</v2/r/tags/list?last=b&n=1000>; rel=\"next\"",
                )
            };
            response(
                "200 OK",
                &[("Content-Type", "application/json"), ("Link", link)],
                body,
            )
        }
        _ => response("404 Not Found", &[], b""),
    })
    .await;
    let client = anonymous_client(&server.host, "r");
    let tags = tokio::time::timeout(Duration::from_secs(20), client.list_tags())
        .await
        .expect("the listing ends")
        .unwrap();
    assert_eq!(tags, ["a", "b", "c"]);
    let pages: Vec<String> = server
        .log()
        .into_iter()
        .filter(|l| l.contains("tags/list"))
        .collect();
    assert_eq!(
        pages,
        [
            "GET /v2/r/tags/list?n=1000",
            "GET /v2/r/tags/list?last=b&n=1000"
        ]
    );
}

/// A registry that keeps linking to new pages of new tags is refused once
/// the list passes the bound, with one line that says why.
#[tokio::test]
async fn an_endless_tag_list_is_refused_at_its_bound() {
    let server = FakeServer::start(|req| match req.path.as_str() {
        "/v2/" => response("200 OK", &[], b""),
        p if p.starts_with("/v2/r/tags/list") => {
            let page: usize = p
                .split("last=")
                .nth(1)
                .and_then(|v| v.split('&').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let tags: Vec<String> = (0..30_000).map(|i| format!("t{page}-{i}")).collect();
            let body = serde_json::json!({"name": "r", "tags": tags}).to_string();
            let link = format!("</v2/r/tags/list?last={}&n=1000>; rel=\"next\"", page + 1);
            response(
                "200 OK",
                &[("Content-Type", "application/json"), ("Link", &link)],
                body.as_bytes(),
            )
        }
        _ => response("404 Not Found", &[], b""),
    })
    .await;
    let client = anonymous_client(&server.host, "r");
    let err = tokio::time::timeout(Duration::from_secs(60), client.list_tags())
        .await
        .expect("the listing ends")
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "GET http://{}/v2/r/tags/list?n=1000: the tag list is too long: 270000 tags in 9 pages",
            server.host
        )),
        "{text}"
    );
    assert!(
        text.ends_with("bytes this resource reads; refusing it"),
        "{text}"
    );
}
