use super::*;
use crate::config::put::LoadBase;
use serde_json::json;

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

fn source(extra: serde_json::Value) -> Source {
    let mut v = json!({
        "repository": "127.0.0.1:5443/app",
        "additional_registries": [
            {"host": "reg.example:5000"},
            {"host": "docker.io", "username": "u", "password": "p"},
        ],
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    Source::from_value(v).unwrap()
}

fn hosts(cfg: &DaemonConfig) -> Vec<(&str, bool, bool, usize)> {
    cfg.registries
        .iter()
        .map(|r| (r.host.as_str(), r.http, r.insecure, r.ca_pems.len()))
        .collect()
}

#[test]
fn session_credentials_cover_source_additional_registries_and_mirror() {
    let src = source(json!({
        "username": "pusher",
        "password": "push-pw",
        "registry_mirror": {"host": "mirror.local:5000", "username": "m", "password": "mirror-pw"},
    }));
    let auth: Vec<(String, String, String)> = registry_auth(&src)
        .into_iter()
        .map(|a| (a.host, a.username, a.password.expose().to_owned()))
        .collect();
    let want = |h: &str, u: &str, p: &str| (h.to_owned(), u.to_owned(), p.to_owned());
    assert_eq!(
        auth,
        vec![
            want("127.0.0.1:5443", "pusher", "push-pw"),
            want("docker.io", "u", "p"),
            want("mirror.local:5000", "m", "mirror-pw"),
        ]
    );
}

#[test]
fn embedded_config_covers_additional_registries_and_never_skips_verification() {
    let none = DaemonParams {
        registry_mirrors: Vec::new(),
        extra_config: None,
    };
    // A CA (even with insecure): TLS verified against it, `http = false`
    // said explicitly for the loopback host.
    let s = source(json!({"insecure": true, "ca_certs": [PEM]}));
    assert_eq!(
        hosts(&daemon_config(&s, &none)),
        vec![
            ("127.0.0.1:5443", false, false, 1),
            ("reg.example:5000", false, false, 1),
            ("docker.io", false, false, 1),
        ]
    );
    assert!(!request_insecure(&s, true));
    assert!(!request_insecure(&s, false));
    // insecure alone: plain HTTP allowed, unverified TLS never.
    let s = source(json!({"insecure": true}));
    assert_eq!(
        hosts(&daemon_config(&s, &none)),
        vec![
            ("127.0.0.1:5443", true, false, 0),
            ("reg.example:5000", true, false, 0),
            ("docker.io", true, false, 0),
        ]
    );
    assert!(!request_insecure(&s, true));
    assert!(request_insecure(&s, false));
    // Neither: BuildKit's defaults.
    let s = source(json!({}));
    assert!(daemon_config(&s, &none).registries.is_empty());
    assert!(!request_insecure(&s, false));
    // The rendered TOML has the additional registry's CA file.
    let s = source(json!({"ca_certs": [PEM]}));
    let (text, files) =
        daemon::config::render_config(&daemon_config(&s, &none), Path::new("/c")).unwrap();
    let parsed: toml::Table = text.parse().unwrap();
    let reg = parsed["registry"]["reg.example:5000"].as_table().unwrap();
    assert_eq!(reg["http"].as_bool(), Some(false));
    assert!(!reg.contains_key("insecure"));
    assert_eq!(reg["ca"].as_array().unwrap().len(), 1);
    assert_eq!(files.len(), 3);
}

#[test]
fn params_without_effect_on_the_chosen_daemon_are_named() {
    let p = DaemonParams {
        registry_mirrors: vec!["mirror.local:5000".into()],
        extra_config: Some("debug = true".into()),
    };
    let s = source(json!({}));
    let w = ineffective_params(&s, &p, true);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].contains("params.registry_mirrors is ignored"), "{w:?}");
    assert!(
        w[1].contains("params.buildkit_extra_config is ignored"),
        "{w:?}"
    );
    assert!(ineffective_params(&s, &p, false).is_empty());

    let s = source(json!({"buildkit_tls": {"ca_cert": PEM}}));
    let w = ineffective_params(&s, &p, false);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("source.buildkit_tls is ignored"), "{w:?}");
    let s = source(json!({"buildkit_tls": {"ca_cert": PEM}, "buildkit_host": "tcp://b:1234"}));
    assert_eq!(ineffective_params(&s, &p, true).len(), 2);

    let s = source(json!({"buildkit_ssh": {"private_key": "k", "known_hosts": "h k"}}));
    let w = ineffective_params(&s, &p, false);
    assert!(w[0].contains("source.buildkit_ssh is ignored"), "{w:?}");
    let s = source(
        json!({"buildkit_ssh": {"private_key": "k", "known_hosts": "h k"},
            "buildkit_host": "ssh://b@build-1"}),
    );
    assert!(ineffective_params(&s, &p, false).is_empty());
}

#[tokio::test]
async fn ssh_hosts_need_their_credentials() {
    let s = source(json!({"buildkit_host": "ssh://b@build-1"}));
    let err = remote(Address::parse("ssh://b@build-1", None).unwrap(), &s)
        .err()
        .expect("no buildkit_ssh")
        .to_string();
    assert!(err.contains("needs source.buildkit_ssh"), "{err}");
}

#[test]
fn preloaded_images_need_a_daemon_on_this_host() {
    let tcp = Address::parse("tcp://buildkitd:1234", None).unwrap();
    let unix = Address::parse("unix:///run/buildkit/buildkitd.sock", None).unwrap();
    let docker = Address::parse("docker:///var/run/docker.sock", None).unwrap();
    let ssh = Address::parse("ssh://b@build-1", None).unwrap();
    let mut p = super::solve::tests::params();
    for a in [&tcp, &unix, &docker] {
        assert!(check_preload_reachable(a, &p).is_ok());
    }
    p.image_args.insert("BASE".into(), "/img".into());
    p.load_bases.push(LoadBase {
        name: "base:1".into(),
        image: "/b".into(),
    });
    let err = check_preload_reachable(&tcp, &p).unwrap_err().to_string();
    assert!(
        err.contains("IMAGE_ARG_* (image_args) and load_base/load_bases")
            && err.contains("tcp://buildkitd:1234"),
        "{err}"
    );
    let err = check_preload_reachable(&ssh, &p).unwrap_err().to_string();
    assert!(err.contains("ssh://b@build-1"), "{err}");
    assert!(check_preload_reachable(&unix, &p).is_ok());
    assert!(check_preload_reachable(&docker, &p).is_ok());
}
