use super::*;

fn status(code: u16) -> crate::registry::Error {
    crate::registry::Error::Status {
        request: "GET http://r/v2/x/manifests/y".into(),
        status: reqwest::StatusCode::from_u16(code).unwrap(),
        codes: vec![],
        body: String::new(),
        retry_after: None,
    }
}

#[test]
fn transient_classification_sees_through_wrappers() {
    let wrapped = Error::from(status(429)).context("download failed");
    assert!(Transient::is_transient(&wrapped));
    let wrapped = Error::from(status(401)).context("download failed");
    assert!(!Transient::is_transient(&wrapped));
    let io = Error::Foreign {
        context: "unpacking layer".into(),
        source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
    };
    assert!(Transient::is_transient(&io));
    let bad = Error::Foreign {
        context: "unpacking layer".into(),
        source: Box::new(std::io::Error::from(std::io::ErrorKind::InvalidData)),
    };
    assert!(!Transient::is_transient(&bad));
    let unpack = |kind| {
        Error::from(crate::image::Error::Unpack {
            layer: "sha256:x".into(),
            entry: String::new(),
            source: std::io::Error::from(kind),
        })
        .context("download failed")
    };
    assert!(Transient::is_transient(&unpack(
        std::io::ErrorKind::ConnectionReset
    )));
    assert!(!Transient::is_transient(&unpack(
        std::io::ErrorKind::InvalidData
    )));
}

#[test]
fn chain_joins_sources_once() {
    let inner = crate::config::Error::Missing("repository");
    let e = Error::from(inner).context("checking origin x failed");
    assert_eq!(
        chain(&e),
        "checking origin x failed: invalid payload: source.repository is required"
    );
}

fn source(json: serde_json::Value) -> crate::config::Source {
    let req = serde_json::json!({ "source": json });
    crate::concourse::CheckRequest::from_json(req.to_string().as_bytes())
        .expect("a valid source")
        .source
}

/// The auth hint names the host that refused and the
/// credentials this resource holds for it.
#[test]
fn auth_hint_names_the_refusing_registry_and_its_credentials() {
    let app = source(serde_json::json!({
        "repository": "registry.example.com/team/app",
        "username": "u", "password": "p",
        "additional_registries": [{"host": "extra.example.com:5000", "username": "e", "password": "q"}],
    }));
    let hub = source(serde_json::json!({
        "repository": "busybox",
        "registry_mirror": {"host": "mirror.example.com"},
    }));
    let cases: &[(&crate::config::Source, &str, &[&str], &[&str])] = &[
        (
            &app,
            "checking origin registry.example.com/team/app failed: GET https://registry.example.com/v2/team/app/manifests/latest: UNAUTHORIZED: authentication required",
            &[
                "registry.example.com (the registry of source.repository",
                "check source.username",
                "team/app",
            ],
            &["additional_registries"],
        ),
        (
            &app,
            "building: failed to solve: failed to resolve source metadata for base.example.org/img:1: unexpected status from HEAD request to https://base.example.org/v2/img/manifests/1: 401 Unauthorized",
            &[
                "base.example.org refused",
                "no credentials for it",
                "{host: base.example.org, username, password} to source.additional_registries",
            ],
            &["source.username"],
        ),
        (
            &app,
            "building: failed to solve: failed to push registry.example.com/team/app:cache: failed to authorize: failed to fetch oauth token: unexpected status from GET request to https://extra.example.com:5000/token?scope=x: 401 Unauthorized",
            &[
                "extra.example.com:5000 refused",
                "check the username and password of its source.additional_registries entry",
            ],
            &["source.username"],
        ),
        (
            &app,
            "reaching registry.example.com/team/app before the build failed: authenticating to registry.example.com for push,pull: 403 Forbidden",
            &["registry.example.com (the registry of source.repository"],
            &[],
        ),
        (
            &hub,
            "GET https://mirror.example.com/v2/library/busybox/manifests/latest: UNAUTHORIZED: no",
            &[
                "mirror.example.com (source.registry_mirror)",
                "set source.registry_mirror.username",
            ],
            &["source.username"],
        ),
        (
            &hub,
            "failed to solve: failed to authorize: failed to fetch anonymous token: unexpected status from GET request to https://auth.docker.io/token?scope=repository%3Alibrary%2Fbusybox%3Apull&service=registry.docker.io: 401 Unauthorized",
            &[
                "auth.docker.io (the registry of source.repository busybox)",
                "set source.username",
            ],
            &[],
        ),
        (
            &app,
            "failed to solve: docker.io/library/private:1: pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed",
            &["docker.io refused", "additional_registries"],
            &["source.username"],
        ),
    ];
    for (source, message, want, not) in cases {
        let got = hint_with(message, Some(source)).expect("an auth hint");
        for w in *want {
            assert!(got.contains(w), "{message}\n-> {got}\nmissing {w:?}");
        }
        for n in *not {
            assert!(
                !got.contains(n),
                "{message}\n-> {got}\nshould not say {n:?}"
            );
        }
    }
    // Without a source (the request did not decode), the host is still named.
    let got =
        hint("GET http://127.0.0.1:5000/v2/x/tags/list: unexpected status code 401 Unauthorized")
            .unwrap();
    assert!(got.contains("127.0.0.1:5000 refused"), "{got}");
}

#[test]
fn hints() {
    assert!(
        hint("GET x: UNAUTHORIZED: authentication required")
            .unwrap()
            .contains("username")
    );
    assert!(hint("fine").is_none());
    let daemon = hint(
            "connecting to buildkit at tcp://127.0.0.1:1: transport error: invalid peer certificate: UnknownIssuer",
        )
        .unwrap();
    assert!(daemon.contains("buildkit_tls.ca_cert") && !daemon.contains("ca_certs"));
    let registry = hint("GET https://r/v2/: invalid peer certificate: UnknownIssuer").unwrap();
    assert!(registry.contains("source.ca_certs"));
    assert!(
        hint("asking buildkit for its version: the daemon closed the TLS connection; ...")
            .unwrap()
            .contains("buildkit_tls.cert")
    );
    for stalled in [
        "download: reading blob sha256:x: the registry sent nothing for 60s (source.registry_timeout)",
        "GET http://r/v2/x/manifests/y: error sending request: operation timed out",
    ] {
        assert!(
            hint(stalled).unwrap().contains("source.registry_timeout"),
            "{stalled}"
        );
    }
    assert!(hint("connecting to buildkit at tcp://h:1: operation timed out").is_none());
}
