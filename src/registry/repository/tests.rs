use super::*;

#[test]
fn docker_hub_normalisation() {
    let r = Repository::parse("busybox").unwrap();
    assert_eq!(
        (r.registry.as_str(), r.path.as_str()),
        (DOCKER_HUB_HOST, "library/busybox")
    );
    assert_eq!(r.given, "busybox");
    assert_eq!(r.api_host(), "registry-1.docker.io");
    let r = Repository::parse("docker.io/busybox").unwrap();
    assert_eq!(r.qualified(), "index.docker.io/library/busybox");
    let r = Repository::parse("concourse/test-image-static").unwrap();
    assert_eq!(r.qualified(), "index.docker.io/concourse/test-image-static");
    let r = Repository::parse("127.0.0.1:5000/a").unwrap();
    assert_eq!(
        (r.registry.as_str(), r.path.as_str()),
        ("127.0.0.1:5000", "a")
    );
    assert!(!r.is_docker_hub());
    let r = Repository::parse("localhost/x/y").unwrap();
    assert_eq!(r.registry, "localhost");
    assert!(Repository::parse("busybox:latest").is_err());
    assert!(Repository::parse("Upper/case").is_err());
    assert_eq!(Repository::parse(""), Err(RepositoryError::Empty));
}

/// The distribution grammar, per path component: nothing that would
/// send a request outside `/v2/` gets through.
#[test]
fn path_components_follow_the_distribution_grammar() {
    for good in [
        "a/b",
        "a.b/c_d",
        "a__b",
        "a-b",
        "a---b",
        "x/y.z-w_v",
        "0/9",
        "h:5000/a/b.c",
    ] {
        assert!(Repository::parse(good).is_ok(), "{good}");
    }
    for bad in [
        "h:5000/a/../b",
        "h:5000/..",
        "a/..",
        "a..b",
        "a/.b",
        "a/b.",
        "a/-b",
        "a/b-",
        "a___b",
        "a_-b",
        "a/_b",
        "h:5000/a/./b",
        "a.-b",
    ] {
        assert!(
            matches!(Repository::parse(bad), Err(RepositoryError::Invalid(_))),
            "{bad}"
        );
    }
}

/// What the module header says about oci-spec's `Reference`; if this
/// fails after an oci-spec upgrade, reconsider using it.
#[test]
fn oci_spec_reference_differs() {
    use oci_spec::distribution::Reference;
    let parse = |s: &str| s.parse::<Reference>();
    // Agrees with us.
    let r = parse("127.0.0.1:5000/a/b").unwrap();
    assert_eq!((r.registry(), r.repository()), ("127.0.0.1:5000", "a/b"));
    let r = parse("localhost/x").unwrap();
    assert_eq!((r.registry(), r.repository()), ("localhost", "x"));
    let r = parse("busybox").unwrap();
    assert_eq!(r.repository(), "library/busybox");
    // Differs: Docker Hub's name, tags and digests accepted, an absent
    // tag reported as `latest`, upper case taken for a Hub namespace.
    assert_eq!(r.registry(), "docker.io");
    assert_eq!(r.tag(), Some("latest"));
    assert!(parse("busybox:latest").is_ok());
    assert!(parse(&format!("busybox@sha256:{}", "0".repeat(64))).is_ok());
    let r = parse("UPPER/x").unwrap();
    assert_eq!((r.registry(), r.repository()), ("docker.io", "UPPER/x"));
    assert!(Repository::parse("UPPER/x").is_err());
}
