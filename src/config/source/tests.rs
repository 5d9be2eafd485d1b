use super::*;
use serde_json::json;

fn source(v: Value) -> Result<Source, String> {
    Source::from_value(v).map_err(|e| e.to_string())
}

#[test]
fn keys_case_insensitive_and_nulls_unset() {
    let s = source(
        json!({"Repository": "busybox", "TAG": "1.36", "Insecure": null,
            "Registry_Mirror": {"Host": "mirror:5000"}, "platform": {"OS": "linux"}}),
    )
    .unwrap();
    assert_eq!(s.tag.as_deref(), Some("1.36"));
    assert!(!s.insecure);
    assert_eq!(s.registry_mirror.unwrap().host, "mirror:5000");
    assert_eq!(s.platform.unwrap().os.as_deref(), Some("linux"));
}

#[test]
fn tag_may_be_a_number() {
    let s = source(json!({"repository": "a", "tag": 42})).unwrap();
    assert_eq!(s.tag.as_deref(), Some("42"));
    let s = source(json!({"repository": "a", "tag": 42.1})).unwrap();
    assert_eq!(s.tag.as_deref(), Some("42.1"));
    let err = source(json!({"repository": "a", "tag": true})).unwrap_err();
    assert!(err.contains("source.tag"), "{err}");
    let s = source(json!({"repository": "a", "tag": ""})).unwrap();
    assert_eq!(s.tag, None);
}

#[test]
fn unknown_field_suggests() {
    let err = source(json!({"repository": "a", "insecure_registries": ["x"]})).unwrap_err();
    assert_eq!(
        err,
        r#"json: unknown field "insecure_registries" in source (did you mean "insecure"?)"#
    );
    let err = source(json!({"repository": "a", "semver_constriant": "1.x"})).unwrap_err();
    assert!(err.contains(r#"did you mean "semver_constraint""#), "{err}");
}

#[test]
fn credentials_need_both_parts() {
    let s = source(json!({"repository": "a", "username": "u"})).unwrap();
    assert_eq!((s.username, s.password), (None, None));
    let s = source(json!({"repository": "a", "username": "u", "password": "p"})).unwrap();
    assert_eq!(s.username.as_deref(), Some("u"));
    assert_eq!(format!("{:?}", s.password), "Some(<redacted>)");
}

/// A real self-signed CA certificate (openssl, P-256).
const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBeTCCAR+gAwIBAgIUcTsIzUaBGEcd7pLBi/Lc2GkgNZgwCgYIKoZIzj0EAwIw\nEjEQMA4GA1UEAwwHdGVzdC1jYTAeFw0yNjExMjMxODQzNDdaFw0zNjExMjAxODQz\nNDdaMBIxEDAOBgNVBAMMB3Rlc3QtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\nAAQU+4Q20Bpynies3Ict229ATytLpqJfk3NlDA3ovTRklHonM6JPD1RDuv6u45sg\nrV9YbkZeB8MlF42zmdI1n4a7o1MwUTAdBgNVHQ4EFgQU9T1kQV/0xNArABwONvPE\nIPbiSn4wHwYDVR0jBBgwFoAU9T1kQV/0xNArABwONvPEIPbiSn4wDwYDVR0TAQH/\nBAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiBPkBM0i9CatPKBpGtXmkND81WvQ3tR\nP5px2tXXze0lMgIhAOKoeJnwMj/jegc+8HpXkUWccQ3KKm0aSSQGQyZsmvLx\n-----END CERTIFICATE-----\n";

#[test]
fn ca_certs_both_forms() {
    let s =
        source(json!({"repository": "a", "ca_certs": [PEM, {"Domain": "r:5000", "cert": PEM}]}))
            .unwrap();
    assert_eq!(s.ca_certs, vec![PEM.to_owned(), PEM.to_owned()]);
    let err = source(json!({"repository": "a", "ca_certs": ["not a pem"]})).unwrap_err();
    assert!(
        err.contains("failed to append registry certificate"),
        "{err}"
    );
    let err =
        source(json!({"repository": "a", "ca_certs": [{"domain": "x", "crt": PEM}]})).unwrap_err();
    assert!(err.contains(r#"unknown field "crt""#), "{err}");
}

#[test]
fn cloud_auth_rejected() {
    let err = source(json!({"repository": "a", "azure_acr": true})).unwrap_err();
    assert!(err.contains("ACR"), "{err}");
    let err = source(json!({"repository": "a", "content_trust": {"server": "x"}})).unwrap_err();
    assert!(err.contains("content_trust"), "{err}");
    // zero values are unset, as in Go
    source(json!({"repository": "a", "aws_region": "", "azure_acr": false})).unwrap();
}

#[test]
fn ecr_fields_typed_and_checked() {
    let s = source(json!({"repository": "team/app", "aws_region": "eu-west-1",
            "aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "sk-987654321",
            "aws_session_token": "st-987654321", "aws_role_arns": ["arn:aws:iam::1:role/a", "arn:aws:iam::2:role/b"],
            "aws_account_id": "123456789012", "aws_ecr_registry_id": "x"}))
        .unwrap();
    let ecr = s.ecr.clone().unwrap();
    assert_eq!(ecr.region, "eu-west-1");
    assert_eq!(ecr.access_key_id.as_deref(), Some("AKIDEXAMPLE"));
    assert_eq!(
        ecr.secret_access_key.as_ref().unwrap().expose(),
        "sk-987654321"
    );
    assert_eq!(
        ecr.role_arns,
        ["arn:aws:iam::1:role/a", "arn:aws:iam::2:role/b"]
    );
    assert_eq!(ecr.account_id.as_deref(), Some("123456789012"));
    assert!(ecr.deprecated_registry_id);
    assert_eq!(ecr.repository_name.as_deref(), Some("team/app"));
    let shown = format!("{s:?}");
    assert!(!shown.contains("987654321"), "{shown}");

    let s = source(
        json!({"repository": "127.0.0.1:5000/app", "aws_region": "us-east-1",
            "aws_role_arn": "arn:aws:iam::1:role/a"}),
    )
    .unwrap();
    let ecr = s.ecr.unwrap();
    assert_eq!(
        ecr.repository_name, None,
        "a repository with a host keeps it"
    );
    assert_eq!(ecr.role_arns, ["arn:aws:iam::1:role/a"]);
    assert_eq!(ecr.access_key_id, None);

    for (extra, field) in [
        (
            json!({"aws_role_arn": "arn:aws:iam::1:role/a", "aws_role_arns": ["arn:aws:iam::1:role/b"]}),
            "source.aws_role_arn",
        ),
        (
            json!({"aws_access_key_id": "AKID"}),
            "source.aws_access_key_id",
        ),
        (json!({"aws_role_arns": ["role/a"]}), "source.aws_role_arns"),
        (json!({"aws_account_id": "12-34"}), "source.aws_account_id"),
        (json!({"aws_region": "EU WEST"}), "source.aws_region"),
    ] {
        let mut v = json!({"repository": "a", "aws_region": "eu-west-1"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        let err = source(v).unwrap_err();
        assert!(err.contains(field), "{field}: {err}");
    }
    // Without a region the other fields would be ignored: an error instead.
    let err = source(json!({"repository": "a", "aws_access_key_id": "AKID",
            "aws_secret_access_key": "sk-987654321"}))
    .unwrap_err();
    assert!(
        err.contains("source.aws_access_key_id") && err.contains("aws_region"),
        "{err}"
    );
    assert!(!err.contains("987654321"), "{err}");
}

#[test]
fn put_only_fields_accepted() {
    let s = source(json!({"repository": "a", "buildkit_host": "tcp://b:1234",
            "buildkit_tls": {"ca_cert": "c", "key": "k"},
            "additional_registries": [{"host": "r", "username": "u", "password": "p"}]}))
    .unwrap();
    assert_eq!(s.buildkit_host.as_deref(), Some("tcp://b:1234"));
    assert_eq!(
        format!("{:?}", s.buildkit_tls.unwrap().key),
        "Some(<redacted>)"
    );
    assert_eq!(s.additional_registries[0].host, "r");
    let s = source(json!({"repository": "a", "buildkit_host": "ssh://u@b",
            "buildkit_ssh": {"private_key": "PRIVATE", "known_hosts": "b ssh-ed25519 AAAA"}}))
    .unwrap();
    let ssh = s.buildkit_ssh.unwrap();
    assert_eq!(ssh.known_hosts, "b ssh-ed25519 AAAA");
    assert!(!format!("{ssh:?}").contains("PRIVATE"));
}

#[test]
fn mirror_only_for_docker_hub() {
    let s =
        source(json!({"repository": "fake-image", "registry_mirror": {"host": "m:5000"}})).unwrap();
    let (repo, _) = s.mirror_repository().unwrap();
    assert_eq!(
        (repo.registry.as_str(), repo.path.as_str()),
        ("m:5000", "library/fake-image")
    );
    let s = source(json!({"repository": "r:1/x", "registry_mirror": {"host": "m:5000"}})).unwrap();
    assert!(s.mirror_repository().is_none());
}

#[test]
fn bad_regex_and_constraint() {
    let err = source(json!({"repository": "a", "tag_regex": "("})).unwrap_err();
    assert!(err.starts_with("invalid regex pattern"), "{err}");
    let err = source(json!({"repository": "a", "semver_constraint": ">>1"})).unwrap_err();
    assert!(err.contains("semver_constraint"), "{err}");
}

/// Both timeouts as seconds or Go durations; unset when absent or zero;
/// nonsense named by its key.
#[test]
fn timeouts() {
    let t = |v: Value| {
        source(json!({"repository": "a", "registry_timeout": v.clone(), "buildkit_timeout": v}))
            .map(|s| (s.registry_timeout, s.buildkit_timeout))
    };
    let secs = |f: f64| Some(Duration::from_secs_f64(f));
    assert_eq!(t(json!(90)).unwrap(), (secs(90.0), secs(90.0)));
    assert_eq!(t(json!("1m30s")).unwrap(), (secs(90.0), secs(90.0)));
    assert_eq!(t(json!("250ms")).unwrap(), (secs(0.25), secs(0.25)));
    assert_eq!(t(json!("1h")).unwrap(), (secs(3600.0), secs(3600.0)));
    assert_eq!(t(json!("2.5")).unwrap(), (secs(2.5), secs(2.5)));
    assert_eq!(t(json!(0)).unwrap(), (None, None));
    assert_eq!(t(Value::Null).unwrap(), (None, None));
    let s = source(json!({"repository": "a"})).unwrap();
    assert_eq!((s.registry_timeout, s.buildkit_timeout), (None, None));
    for bad in [
        json!("soon"),
        json!("10x"),
        json!("m"),
        json!(-1),
        json!(true),
        json!("9999h"),
    ] {
        let err = t(bad.clone()).unwrap_err();
        assert!(err.contains("source.registry_timeout"), "{bad}: {err}");
    }
}
