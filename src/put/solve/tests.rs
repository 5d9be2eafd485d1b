use super::*;
use crate::config::put::{CacheSpec, LoadBase, SecretSpec};

pub(crate) fn params() -> BuildParams {
    BuildParams {
        context: "/src/ctx".into(),
        dockerfile: "/src/ctx/docker/hello.Dockerfile".into(),
        target: None,
        build_args: BTreeMap::new(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        secrets: BTreeMap::<String, SecretSpec>::new(),
        ssh: Vec::new(),
        platforms: Vec::new(),
        add_hosts: Vec::new(),
        image_args: BTreeMap::new(),
        load_bases: Vec::new(),
        no_cache: NoCache::Off,
        cache_from: Vec::new(),
        cache_to: Vec::new(),
        cache_tag: None,
        cache_mounts: None,
        source_date_epoch: None,
        network: Network::Default,
        provenance: Default::default(),
        sbom: None,
    }
}

fn dest() -> Destination {
    Destination {
        repository: "127.0.0.1:5000/app".into(),
        insecure: false,
        tags: vec!["1.0".into(), "latest".into()],
        engine_image: "oci-build-resource/put-1234:build".into(),
    }
}

#[test]
fn frontend_attrs_carry_every_build_setting() {
    let mut p = params();
    p.target = Some("final".into());
    p.build_args.insert("A".into(), "1".into());
    p.labels.insert("l".into(), "v".into());
    p.platforms = vec!["linux/arm64".into()];
    p.add_hosts = vec![
        ("test-host".into(), "1.2.3.4".into()),
        ("h2".into(), "::1".into()),
    ];
    p.no_cache = NoCache::Stages(vec!["a".into(), "b".into()]);
    p.network = Network::Host;
    p.source_date_epoch = Some(0);
    let pre = Preloaded {
        image_args: BTreeMap::from([("base".into(), "127.0.0.1:9/base".into())]),
        bases: BTreeMap::new(),
    };
    let plan = plan(&p, Backend::Buildkitd, &dest(), &pre).unwrap();
    let a = &plan.frontend_attrs;
    assert_eq!(a["filename"], "hello.Dockerfile");
    assert_eq!(a["target"], "final");
    assert_eq!(a["build-arg:A"], "1");
    assert_eq!(a["build-arg:base"], "127.0.0.1:9/base");
    assert_eq!(a["label:l"], "v");
    assert_eq!(a["platform"], "linux/arm64");
    assert_eq!(a["add-hosts"], "test-host=1.2.3.4,h2=::1");
    assert_eq!(a["no-cache"], "a,b");
    assert_eq!(a["force-network-mode"], "host");
    assert_eq!(a["build-arg:SOURCE_DATE_EPOCH"], "0");
    assert_eq!(plan.entitlements, vec!["network.host"]);
    assert_eq!(local_dirs(&p)["context"], PathBuf::from("/src/ctx"));
    assert_eq!(
        local_dirs(&p)["dockerfile"],
        PathBuf::from("/src/ctx/docker")
    );
    assert_eq!(plan.exporters[0].attrs["rewrite-timestamp"], "true");
}

#[test]
fn buildkitd_pushes_by_digest_and_engine_exports_to_its_store() {
    let mut d = dest();
    d.insecure = true;
    let p = plan(&params(), Backend::Buildkitd, &d, &Preloaded::default()).unwrap();
    assert_eq!(p.exporters[0].kind, "image");
    assert_eq!(p.exporters[0].attrs["name"], "127.0.0.1:5000/app");
    assert_eq!(p.exporters[0].attrs["push-by-digest"], "true");
    assert_eq!(p.exporters[0].attrs["registry.insecure"], "true");
    let p = plan(&params(), Backend::DockerEngine, &d, &Preloaded::default()).unwrap();
    assert_eq!(p.exporters[0].kind, "moby");
    assert_eq!(
        p.exporters[0].attrs,
        BTreeMap::from([(
            "name".to_string(),
            "oci-build-resource/put-1234:build".to_string()
        )])
    );
}

#[test]
fn cache_shorthand_per_backend() {
    let mut p = params();
    p.cache_tag = Some("buildcache".into());
    p.cache_from = vec![CacheSpec {
        kind: "registry".into(),
        attrs: BTreeMap::from([("ref".to_string(), "other:cache".to_string())]),
    }];
    let k = plan(&p, Backend::Buildkitd, &dest(), &Preloaded::default()).unwrap();
    assert_eq!(
        k.cache_imports[0].attrs["ref"],
        "127.0.0.1:5000/app:buildcache"
    );
    assert_eq!(k.cache_imports[1].attrs["ref"], "other:cache");
    assert_eq!(k.cache_exports.len(), 1);
    assert_eq!(k.cache_exports[0].kind, "registry");
    assert_eq!(k.cache_exports[0].attrs["mode"], "max");
    let imports: serde_json::Value =
        serde_json::from_str(&k.frontend_attrs["cache-imports"]).unwrap();
    assert_eq!(imports[0]["Type"], "registry");
    assert_eq!(imports[1]["Attrs"]["ref"], "other:cache");

    let e = plan(&p, Backend::DockerEngine, &dest(), &Preloaded::default()).unwrap();
    let refs: Vec<&str> = e
        .cache_imports
        .iter()
        .map(|c| c.attrs["ref"].as_str())
        .collect();
    assert_eq!(
        refs,
        vec![
            "127.0.0.1:5000/app:buildcache",
            "127.0.0.1:5000/app:1.0",
            "other:cache"
        ]
    );
    assert_eq!(
        e.cache_exports,
        vec![CacheEntry {
            kind: "inline".into(),
            attrs: BTreeMap::new()
        }]
    );
}

#[test]
fn annotations_need_oci_media_types() {
    let mut p = params();
    p.annotations
        .insert("org.opencontainers.image.title".into(), "t".into());
    p.platforms = vec!["linux/amd64".into(), "linux/arm64".into()];
    let k = plan(&p, Backend::Buildkitd, &dest(), &Preloaded::default()).unwrap();
    assert_eq!(k.exporters[0].attrs["oci-mediatypes"], "true");
    assert_eq!(
        k.exporters[0].attrs["annotation.org.opencontainers.image.title"],
        "t"
    );
    assert_eq!(
        k.exporters[0].attrs["annotation-index.org.opencontainers.image.title"],
        "t"
    );
}

#[test]
fn engine_limits_are_explained() {
    let mut p = params();
    p.platforms = vec!["linux/amd64".into(), "linux/arm64".into()];
    let err = plan(&p, Backend::DockerEngine, &dest(), &Preloaded::default()).unwrap_err();
    assert!(err.to_string().contains("multi-platform"), "{err}");
    let mut p = params();
    p.load_bases = vec![LoadBase {
        name: "base:1".into(),
        image: "/x".into(),
    }];
    assert!(matches!(
        plan(&p, Backend::DockerEngine, &dest(), &Preloaded::default()),
        Err(PlanError::LoadBaseOnEngine)
    ));
    let pre = Preloaded {
        image_args: BTreeMap::new(),
        bases: BTreeMap::from([("base:1".into(), "127.0.0.1:9/load-base-0:1".into())]),
    };
    let k = plan(&p, Backend::Buildkitd, &dest(), &pre).unwrap();
    assert_eq!(
        k.frontend_attrs["context:base:1"],
        "docker-image://127.0.0.1:9/load-base-0:1"
    );
}

#[test]
fn an_image_arg_may_not_shadow_a_build_arg() {
    let mut p = params();
    p.build_args.insert("base".into(), "x".into());
    let pre = Preloaded {
        image_args: BTreeMap::from([("base".into(), "127.0.0.1:9/base".into())]),
        bases: BTreeMap::new(),
    };
    assert!(matches!(
        plan(&p, Backend::Buildkitd, &dest(), &pre),
        Err(PlanError::ImageArgClash(_))
    ));
}

#[test]
fn named_context_keys_are_what_the_frontend_looks_up() {
    for (name, key) in [
        ("alpine:latest", "context:alpine"),
        ("alpine", "context:alpine"),
        ("alpine:3.18", "context:alpine:3.18"),
        ("docker.io/library/alpine:latest", "context:alpine"),
        ("index.docker.io/library/alpine:3", "context:alpine:3"),
        ("docker.io/user/app:1", "context:user/app:1"),
        ("library/alpine:edge", "context:alpine:edge"),
        ("localhost:5000/app:latest", "context:localhost:5000/app"),
        ("reg.example/a/b:v2", "context:reg.example/a/b:v2"),
        ("localhost/app:1", "context:localhost/app:1"),
        (
            "alpine:latest@sha256:0123",
            "context:alpine:latest@sha256:0123",
        ),
    ] {
        assert_eq!(named_context_key(name).unwrap(), key, "{name}");
    }
    for bad in ["", "Alpine:1", "a//b:1", "alpine:", "reg.example/:1"] {
        assert!(
            matches!(named_context_key(bad), Err(PlanError::LoadBaseName(_))),
            "{bad}"
        );
    }
    let pre = Preloaded {
        image_args: BTreeMap::new(),
        bases: BTreeMap::from([(
            "docker.io/library/busybox:latest".into(),
            "127.0.0.1:9/load-base-0:latest".into(),
        )]),
    };
    let k = plan(&params(), Backend::Buildkitd, &dest(), &pre).unwrap();
    assert_eq!(
        k.frontend_attrs["context:busybox"],
        "docker-image://127.0.0.1:9/load-base-0:latest"
    );
    assert!(
        !k.frontend_attrs
            .contains_key("context:docker.io/library/busybox:latest")
    );
}

#[test]
fn cache_true_and_a_registry_cache_to_clash_loudly() {
    let mut p = params();
    p.cache_tag = Some("buildcache".into());
    p.cache_to = vec![CacheSpec {
        kind: "registry".into(),
        attrs: BTreeMap::from([("ref".to_string(), "other:cache".to_string())]),
    }];
    let err = plan(&p, Backend::Buildkitd, &dest(), &Preloaded::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cache: true") && msg.contains("cache_to"),
        "{msg}"
    );
    assert!(msg.contains("127.0.0.1:5000/app:buildcache"), "{msg}");
    // Another type is kept alongside; an identical inline entry folds in.
    p.cache_to[0].kind = "local".into();
    let k = plan(&p, Backend::Buildkitd, &dest(), &Preloaded::default()).unwrap();
    let kinds: Vec<&str> = k.cache_exports.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, vec!["registry", "local"]);
    p.cache_to = vec![CacheSpec {
        kind: "inline".into(),
        attrs: BTreeMap::new(),
    }];
    let e = plan(&p, Backend::DockerEngine, &dest(), &Preloaded::default()).unwrap();
    assert_eq!(e.cache_exports.len(), 1);
}

#[test]
fn engine_inline_cache_import_is_insecure_like_the_cache_tag() {
    let mut p = params();
    p.cache_tag = Some("buildcache".into());
    let mut d = dest();
    d.insecure = true;
    let e = plan(&p, Backend::DockerEngine, &d, &Preloaded::default()).unwrap();
    assert_eq!(e.cache_imports.len(), 2);
    for c in &e.cache_imports {
        assert_eq!(c.attrs["registry.insecure"], "true", "{c:?}");
    }
    let e = plan(&p, Backend::DockerEngine, &dest(), &Preloaded::default()).unwrap();
    assert!(
        e.cache_imports
            .iter()
            .all(|c| !c.attrs.contains_key("registry.insecure"))
    );
}
