//! Tests of put param decoding, through `PutParams::from_value`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/Dockerfile"), "FROM scratch\n").unwrap();
        Fixture { dir }
    }
    fn file(&self, rel: &str, content: &str) -> &Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }
    fn decode(&self, params: Value) -> Result<PutParams> {
        let var = |name: &str| match name {
            "BUILD_ID" => Some("77".to_string()),
            "BUILD_PIPELINE_NAME" => Some("pipe".to_string()),
            "MY_TOKEN" => Some("t0ken".to_string()),
            _ => None,
        };
        PutParams::from_value(
            &params,
            &Env {
                src_dir: self.dir.path(),
                var: &var,
            },
        )
    }
    fn build(&self, params: Value) -> BuildParams {
        match self.decode(params).unwrap().action {
            Action::Build(b) => *b,
            other => panic!("expected a build, got {other:?}"),
        }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

#[test]
fn minimal_typed_build() {
    let f = Fixture::new();
    let b = f.build(json!({"context": "src"}));
    assert_eq!(b.context, f.path("src"));
    assert_eq!(b.dockerfile, f.path("src/Dockerfile"));
    assert!(b.build_args.is_empty() && b.platforms.is_empty());
}

#[test]
fn three_spellings_of_the_context_agree_and_conflict() {
    let f = Fixture::new();
    for key in ["context", "build", "CONTEXT"] {
        assert_eq!(f.build(json!({ key: "src" })).context, f.path("src"));
    }
    let err = f
        .decode(json!({"context": "src", "CONTEXT": "src"}))
        .unwrap_err();
    assert!(
        matches!(&err, ParamsError::Conflict { first, second, .. } if first == "context" && second == "CONTEXT"),
        "{err}"
    );
    let msg = f
        .decode(json!({"build": "src", "context": "src"}))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("\"context\"") && msg.contains("\"build\""),
        "{msg}"
    );
    // null and "" are unset, so they do not conflict.
    assert!(
        f.decode(json!({"context": "src", "CONTEXT": "", "build": null}))
            .is_ok()
    );
}

#[test]
fn missing_paths_name_the_param_and_the_path_tried() {
    let f = Fixture::new();
    let err = f.decode(json!({"context": "nope"})).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("\"context\"") && msg.contains(&f.path("nope").display().to_string()),
        "{msg}"
    );
    let msg = f
        .decode(json!({"context": "src", "BUILD_ARGS_FILE": "args.txt"}))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("BUILD_ARGS_FILE") && msg.contains("args.txt"),
        "{msg}"
    );
    f.file("ctx/x", "");
    let msg = f.decode(json!({"context": "ctx"})).unwrap_err().to_string();
    assert!(msg.contains("ctx/Dockerfile"), "{msg}");
}

#[test]
fn dockerfile_is_relative_to_the_source_dir() {
    let f = Fixture::new();
    f.file("src/hello.Dockerfile", "FROM scratch\n");
    let b = f.build(json!({"CONTEXT": "src", "DOCKERFILE": "src/hello.Dockerfile"}));
    assert_eq!(b.dockerfile, f.path("src/hello.Dockerfile"));
}

#[test]
fn build_args_from_all_spellings_merge_and_expand() {
    let f = Fixture::new();
    f.file("args.yml", "from_file: one\ninline_wins: file\n");
    let b = f.build(json!({
        "context": "src",
        "build_args": {"a": "id=$BUILD_ID", "inline_wins": "inline", "n": 3},
        "BUILD_ARG_Mixed_Case": "${BUILD_PIPELINE_NAME}/$BUILD_JOB_NAME",
        "build_args_file": "args.yml",
    }));
    assert_eq!(
        b.build_args,
        BTreeMap::from([
            ("a".into(), "id=77".into()),
            ("Mixed_Case".into(), "pipe/".into()),
            ("from_file".into(), "one".into()),
            ("inline_wins".into(), "inline".into()),
            ("n".into(), "3".into()),
        ])
    );
    let err = f
        .decode(json!({"context": "src", "build_args": {"x": "1"}, "BUILD_ARG_x": "2"}))
        .unwrap_err();
    assert!(
        err.to_string().contains("build_args.x") && err.to_string().contains("BUILD_ARG_x"),
        "{err}"
    );
    let err = f
        .decode(
            json!({"context": "src", "build_args_file": "args.yml", "BUILD_ARGS_FILE": "args.yml"}),
        )
        .unwrap_err();
    assert!(matches!(err, ParamsError::Conflict { .. }));
}

#[test]
fn docker_image_json_files_and_obt_line_files() {
    let f = Fixture::new();
    f.file("labels.json", r#"{"team": "$BUILD_TEAM_NAME-x"}"#);
    f.file("labels_file", "a=b\nc=d\n");
    let b = f.build(json!({"build": "src", "labels_file": "labels.json", "labels": {"l": "1"}}));
    assert_eq!(
        b.labels,
        BTreeMap::from([("team".into(), "-x".into()), ("l".into(), "1".into())])
    );
    let b = f.build(json!({"CONTEXT": "src", "LABELS_FILE": "labels_file", "LABEL_z": "y"}));
    assert_eq!(
        b.labels,
        BTreeMap::from([
            ("a".into(), "b".into()),
            ("c".into(), "d".into()),
            ("z".into(), "y".into())
        ])
    );
    f.file("bad", "a=b\nbroken\n");
    let msg = f
        .decode(json!({"context": "src", "build_args_file": "bad"}))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("bad:2") && msg.contains("NAME=VALUE"), "{msg}");
}

#[test]
fn target_and_target_file() {
    let f = Fixture::new();
    f.file("target_file", "working-target\n");
    assert_eq!(
        f.build(json!({"context": "src", "target_name": "t"}))
            .target
            .as_deref(),
        Some("t")
    );
    let p = f
        .decode(json!({"context": "src", "TARGET": "x", "TARGET_FILE": "target_file"}))
        .unwrap();
    let Action::Build(b) = p.action else { panic!() };
    assert_eq!(b.target.as_deref(), Some("working-target"));
    assert_eq!(p.notes.len(), 1);
    assert!(
        f.decode(json!({"context": "src", "target": "a", "TARGET": "b"}))
            .is_err()
    );
}

#[test]
fn secrets_from_three_spellings() {
    let f = Fixture::new();
    f.file("secret.txt", "s3cret");
    let b = f.build(json!({
        "context": "src",
        "secrets": {"a": {"file": "secret.txt"}, "b": {"source": "secret.txt"}, "c": {"env": "MY_TOKEN"}, "d": {"text": "lit"}},
        "BUILDKIT_SECRET_e": "secret.txt",
        "BUILDKIT_SECRETTEXT_f": "hello-world",
    }));
    assert_eq!(b.secrets["a"], SecretSpec::File(f.path("secret.txt")));
    assert_eq!(b.secrets["b"], SecretSpec::File(f.path("secret.txt")));
    assert_eq!(b.secrets["c"], SecretSpec::Env("MY_TOKEN".into()));
    assert_eq!(b.secrets["d"], SecretSpec::Text(Secret::new("lit")));
    assert_eq!(b.secrets["e"], SecretSpec::File(f.path("secret.txt")));
    assert_eq!(b.secrets["f"], SecretSpec::Text(Secret::new("hello-world")));
    // Text never shows in Debug output.
    assert!(!format!("{b:?}").contains("hello-world"));

    let err = f
        .decode(json!({"context": "src", "secrets": {"x": {"text": "1"}}, "BUILDKIT_SECRETTEXT_x": "2"}))
        .unwrap_err();
    assert!(
        err.to_string().contains("secrets.x") && err.to_string().contains("BUILDKIT_SECRETTEXT_x")
    );
    let err = f
        .decode(json!({"context": "src", "secrets": {"x": {"env": "UNSET_VAR"}}}))
        .unwrap_err();
    assert!(err.to_string().contains("UNSET_VAR"));
    let err = f
        .decode(json!({"context": "src", "secrets": {"x": {"text": "1", "env": "MY_TOKEN"}}}))
        .unwrap_err();
    assert!(err.to_string().contains("exactly one"));
}

#[test]
fn obt_names_that_mean_nothing_for_a_put_are_rejected_with_advice() {
    let f = Fixture::new();
    for (name, word) in [
        ("ADDITIONAL_TARGETS", "target"),
        ("OUTPUT_OCI", "oci-layout"),
        ("UNPACK_ROOTFS", "rootfs"),
    ] {
        let err = f
            .decode(json!({"context": "src", name: "true"}))
            .unwrap_err();
        assert!(
            matches!(&err, ParamsError::Rejected { param, .. } if param == name),
            "{err}"
        );
        assert!(err.to_string().contains(word), "{err}");
    }
    // Explicitly off is fine (copied YAML often says `UNPACK_ROOTFS: ""`).
    assert!(
        f.decode(json!({"context": "src", "UNPACK_ROOTFS": ""}))
            .is_ok()
    );
}

#[test]
fn unknown_names_get_suggestions() {
    let f = Fixture::new();
    let hint = |name: &str| match f.decode(json!({ name: "x" })).unwrap_err() {
        ParamsError::Unknown { hint, .. } => hint,
        other => panic!("{other}"),
    };
    assert_eq!(hint("contxt").as_deref(), Some("context"));
    assert_eq!(hint("Context").as_deref(), Some("context"));
    assert_eq!(hint("BUILD_ARGS_FOO").as_deref(), Some("BUILD_ARG_FOO"));
    assert_eq!(
        hint("BUILDKIT_SECRETTXT_x").as_deref(),
        Some("BUILDKIT_SECRETTEXT_x")
    );
    assert_eq!(hint("LABELS_x").as_deref(), Some("LABEL_x"));
    assert_eq!(hint("tag_as_lastest").as_deref(), Some("tag_as_latest"));
    assert_eq!(hint("zzzzqqq"), None);
    // Case-insensitive scores tie between spellings; the key's case decides.
    assert_eq!(hint("CONTXT").as_deref(), Some("CONTEXT"));
    assert_eq!(hint("Dockerfle").as_deref(), Some("dockerfile"));
    let msg = f.decode(json!({"dockerfle": "x"})).unwrap_err().to_string();
    assert_eq!(
        msg,
        "unknown param \"dockerfle\" (did you mean \"dockerfile\"?)"
    );
}

#[test]
fn platforms_hosts_ssh_image_args() {
    let f = Fixture::new();
    f.file("key", "k");
    f.file("base.tar", "");
    let b = f.build(json!({
        "context": "src",
        "IMAGE_PLATFORM": "linux/arm64,linux/amd64",
        "BUILDKIT_ADD_HOSTS": "test-host=1.2.3.4,other:::1",
        "BUILDKIT_SSH": "my_ssh_key=key",
        "IMAGE_ARG_base_image": "base.tar",
    }));
    assert_eq!(b.platforms, vec!["linux/arm64", "linux/amd64"]);
    assert_eq!(
        b.add_hosts,
        vec![
            ("test-host".into(), "1.2.3.4".into()),
            ("other".into(), "::1".into())
        ]
    );
    assert_eq!(
        b.ssh,
        vec![SshSpec {
            id: "my_ssh_key".into(),
            path: Some(f.path("key"))
        }]
    );
    assert_eq!(b.image_args["base_image"], f.path("base.tar"));

    let b = f.build(json!({"context": "src", "platforms": ["linux/arm/v7"], "add_hosts": {"h": "10.0.0.1"}, "ssh": "default"}));
    assert_eq!(b.platforms, vec!["linux/arm/v7"]);
    assert_eq!(b.add_hosts, vec![("h".into(), "10.0.0.1".into())]);
    assert_eq!(
        b.ssh,
        vec![SshSpec {
            id: "default".into(),
            path: None
        }]
    );
    assert!(
        f.decode(json!({"context": "src", "platforms": ["arm64"]}))
            .is_err()
    );
    assert!(
        f.decode(json!({"context": "src", "add_hosts": ["h=notanip"]}))
            .is_err()
    );
    assert!(
        f.decode(json!({"context": "src", "image_args": {"b": "x"}, "IMAGE_ARG_b": "base.tar"}))
            .is_err()
    );
}

#[test]
fn cache_params() {
    let f = Fixture::new();
    f.file("got/repository", "reg.example/app\n");
    f.file("got/digest", "sha256:abc\n");
    let b = f.build(json!({
        "context": "src",
        "cache": true,
        "cache_from": ["got", "reg.example/app:cache", "type=registry,ref=r:c"],
        "cache_to": ["type=inline"],
        "no_cache": ["stage1"],
    }));
    assert_eq!(b.cache_tag.as_deref(), Some("buildcache"));
    let refs: Vec<&str> = b
        .cache_from
        .iter()
        .map(|c| c.attrs["ref"].as_str())
        .collect();
    assert_eq!(
        refs,
        vec!["reg.example/app@sha256:abc", "reg.example/app:cache", "r:c"]
    );
    assert_eq!(
        b.cache_to,
        vec![CacheSpec {
            kind: "inline".into(),
            attrs: BTreeMap::new()
        }]
    );
    assert_eq!(b.no_cache, NoCache::Stages(vec!["stage1".into()]));
    assert_eq!(
        f.build(json!({"context": "src", "no_cache": true}))
            .no_cache,
        NoCache::All
    );
    assert!(
        f.decode(json!({"context": "src", "cache_to": ["type=local,dest=x"]}))
            .is_err()
    );
    assert!(
        f.decode(json!({"context": "src", "cache_tag": "c"}))
            .is_err()
    );
    assert_eq!(
        f.build(json!({"context": "src", "cache": "true", "cache_tag": "c"}))
            .cache_tag
            .as_deref(),
        Some("c")
    );
}

#[test]
fn attestation_params() {
    let f = Fixture::new();
    let b = |v: Value| f.build(json!({"context": "src", "provenance": v}));
    assert_eq!(
        f.build(json!({"context": "src"})).provenance,
        Provenance::Default
    );
    assert_eq!(b(json!(false)).provenance, Provenance::Off);
    assert_eq!(b(json!("false")).provenance, Provenance::Off);
    assert_eq!(b(json!(true)).provenance, Provenance::Min);
    assert_eq!(b(json!("min")).provenance, Provenance::Min);
    assert_eq!(b(json!("mode=max")).provenance, Provenance::Max);
    let err = f
        .decode(json!({"context": "src", "provenance": "full"}))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("provenance") && err.contains("min, max, false"),
        "{err}"
    );

    let sbom = |v: Value| f.build(json!({"context": "src", "sbom": v})).sbom;
    assert_eq!(sbom(json!(false)), None);
    assert_eq!(
        sbom(json!(true)).unwrap().generator(),
        DEFAULT_SBOM_GENERATOR
    );
    assert_eq!(
        sbom(json!("generator=127.0.0.1:5000/scan:1"))
            .unwrap()
            .generator(),
        "127.0.0.1:5000/scan:1"
    );
    assert_eq!(
        sbom(json!("reg.example/scan")).unwrap().generator(),
        "reg.example/scan:latest"
    );
    for bad in [json!("a,b"), json!("UPPER/case"), json!("generator=")] {
        let err = f
            .decode(json!({"context": "src", "sbom": bad}))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("param \"sbom\""), "{err}");
    }
    // Build-only: next to `image` they are an error.
    f.file("built/image.tar", "x");
    assert!(
        f.decode(json!({"image": "built/image.tar", "provenance": "max"}))
            .is_err()
    );
}

#[test]
fn tags_from_files_with_prefix() {
    let f = Fixture::new();
    f.file("tag", " 1.2.3\n");
    f.file("more", "a b\nc\n");
    let p = f
        .decode(json!({"context": "src", "tag_file": "tag", "tag_prefix": "v", "additional_tags": "more", "tag_as_latest": true}))
        .unwrap();
    assert_eq!(p.tags.tag_file.as_deref(), Some("v1.2.3"));
    assert_eq!(p.tags.additional_tags, vec!["va", "vb", "vc"]);
    assert!(p.tags.tag_as_latest);
    assert!(
        f.decode(json!({"context": "src", "tag_prefix": "v"}))
            .is_err()
    );
    assert!(
        f.decode(json!({"context": "src", "bump_aliases": true}))
            .is_err()
    );
    assert_eq!(
        f.decode(json!({"context": "src", "version": 1.2}))
            .unwrap()
            .tags
            .version
            .as_deref(),
        Some("1.2")
    );
    assert!(
        f.decode(json!({"context": "src", "tag": "tag", "tag_file": "tag"}))
            .is_err()
    );
}

#[test]
fn docker_image_tag_param_is_a_file_and_its_error_says_so() {
    let f = Fixture::new();
    let msg = f
        .decode(json!({"context": "src", "tag": "v1.2.3"}))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("does not exist") && msg.contains("path of a file that holds the tag"),
        "{msg}"
    );
    let msg = f
        .decode(json!({"context": "src", "tag_file": "v1.2.3"}))
        .unwrap_err()
        .to_string();
    assert!(!msg.contains("holds the tag"), "{msg}");
}

#[test]
fn push_mode() {
    let f = Fixture::new();
    f.file("built/image.tar", "x");
    let p = f
        .decode(json!({"image": "built/*.tar", "version": "1.0.0"}))
        .unwrap();
    assert_eq!(
        p.action,
        Action::Push {
            image: f.path("built/image.tar")
        }
    );
    let p = f.decode(json!({"load": "built"})).unwrap();
    assert_eq!(
        p.action,
        Action::Push {
            image: f.path("built/image.tar")
        }
    );
    f.file("built/other.tar", "x");
    let msg = f
        .decode(json!({"image": "built/*.tar"}))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("too many"), "{msg}");
    let msg = f
        .decode(json!({"image": "nothing/*.tar"}))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("does not exist"), "{msg}");
    let err = f
        .decode(json!({"image": "built/image.tar", "context": "src"}))
        .unwrap_err();
    assert!(matches!(err, ParamsError::Conflict { .. }), "{err}");
    let err = f
        .decode(json!({"image": "built/image.tar", "BUILD_ARG_x": "1"}))
        .unwrap_err();
    assert!(matches!(err, ParamsError::Conflict { .. }), "{err}");
}

#[test]
fn load_bases_name_their_from_image() {
    let f = Fixture::new();
    f.file("base/repository", "example.com/base\n");
    f.file("base/tag", "1.0\n");
    f.file("base/image", "");
    let b = f.build(json!({"context": "src", "load_bases": ["base"]}));
    assert_eq!(
        b.load_bases,
        vec![LoadBase {
            name: "example.com/base:1.0".into(),
            image: f.path("base/image")
        }]
    );
}

#[test]
fn daemon_settings_and_ignored_legacy_params() {
    let f = Fixture::new();
    let p = f
        .decode(json!({"context": "src", "REGISTRY_MIRRORS": "m1:5000, m2", "BUILDKIT_EXTRA_CONFIG": "debug = true", "docker_buildkit": 1}))
        .unwrap();
    assert_eq!(p.daemon.registry_mirrors, vec!["m1:5000", "m2"]);
    assert_eq!(p.daemon.extra_config.as_deref(), Some("debug = true"));
    assert!(p.notes.iter().any(|n| n.contains("docker_buildkit")));
}

#[test]
fn type_errors_name_the_param() {
    let f = Fixture::new();
    let msg = f
        .decode(json!({"context": "src", "build_args": ["a"]}))
        .unwrap_err()
        .to_string();
    assert_eq!(msg, "param \"build_args\" must be an object, not a list");
    let msg = f
        .decode(json!({"context": "src", "labels": {"a": {"b": 1}}}))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("labels.a"), "{msg}");
    assert!(matches!(
        f.decode(json!("x")),
        Err(ParamsError::NotAnObject(_))
    ));
}

#[test]
fn param_table_names_each_spelling_once() {
    let mut seen = std::collections::BTreeSet::new();
    for row in params::ALL {
        for name in row.fixed() {
            assert!(seen.insert(name), "{name} is in two rows");
        }
    }
    let known = known_names();
    for name in [
        "context",
        "build",
        "CONTEXT",
        "load_file",
        "tag",
        "BUILDKIT_SSH",
    ] {
        assert!(known.contains(name), "{name}");
    }
    // Rejected params are not offered as suggestions.
    assert!(!known.contains("OUTPUT_OCI") && !known.contains("pull_tag"));
}

/// Every path param is relative to the working directory; absolute paths,
/// `..` escapes and symlinks out of it are refused, and the error never
/// quotes the file.
#[test]
fn path_params_stay_inside_the_working_dir() {
    let f = Fixture::new();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("shadow");
    std::fs::write(&secret, "root:$6$s3cr3tHASHs3cr3tHASH:19000:0:99999:7:::\n").unwrap();
    std::fs::create_dir_all(f.path("up")).unwrap();
    std::os::unix::fs::symlink(&secret, f.path("src/tag-link")).unwrap();
    let abs = secret.to_str().unwrap().to_string();
    let cases: Vec<Value> = vec![
        json!({"context": "src", "tag_file": abs}),
        json!({"context": "src", "tag_file": "../shadow"}),
        json!({"context": "src", "tag_file": "src/../../shadow"}),
        json!({"context": "src", "tag_file": "src/tag-link"}),
        json!({"context": "src", "additional_tags": abs}),
        json!({"context": "/"}),
        json!({"context": "up/../.."}),
        json!({"context": "src", "dockerfile": abs}),
        json!({"context": "src", "build_args_file": abs}),
        json!({"context": "src", "labels_file": abs}),
        json!({"context": "src", "target_file": abs}),
        json!({"context": "src", "secrets": {"s": {"file": abs}}}),
        json!({"context": "src", "BUILDKIT_SECRET_s": "../x"}),
        json!({"context": "src", "ssh": format!("k={abs}")}),
        json!({"context": "src", "cache_from": ["../elsewhere"]}),
        json!({"image": abs}),
        json!({"image": "../*"}),
        json!({"load": "/"}),
        json!({"context": "src", "load_base": "/"}),
    ];
    for params in cases {
        let err = match f.decode(params.clone()) {
            Ok(p) => panic!("{params} accepted: {p:?}"),
            Err(e) => e.to_string(),
        };
        assert!(!err.contains("s3cr3t"), "{params}: {err}");
        assert!(
            err.contains("working directory"),
            "{params}: not refused as outside: {err}"
        );
    }
    // Staying inside is fine, `..` included.
    f.file("src/tag", "v1\n");
    let p = f
        .decode(json!({"context": "src", "tag_file": "src/../src/./tag"}))
        .unwrap();
    assert_eq!(p.tags.tag_file.as_deref(), Some("v1"));
}

/// A file that is not a tag is quoted by a short excerpt, never in full.
#[test]
fn file_contents_are_quoted_by_a_short_excerpt_only() {
    let f = Fixture::new();
    f.file(
        "src/notatag",
        "root:$6$s3cr3tHASHs3cr3tHASHlongtail:19000\n",
    );
    f.file("src/args", "bad\u{1b}[31mname x=1\n");
    for (params, field) in [
        (
            json!({"context": "src", "tag_file": "src/notatag"}),
            "tag_file",
        ),
        (
            json!({"context": "src", "additional_tags": "src/notatag"}),
            "additional_tags",
        ),
        (
            json!({"context": "src", "build_args_file": "src/args"}),
            "build_args_file",
        ),
    ] {
        let err = f.decode(params.clone()).unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
        assert!(!err.contains("longtail"), "{params}: quoted whole: {err}");
        assert!(!err.contains('\u{1b}'), "{params}: unescaped: {err}");
    }
}

#[test]
fn layers_mode_decodes_defaults_and_get_directories() {
    let f = Fixture::new();
    f.file("site/index.html", "x")
        .file("base/image.tar", "not read here");
    let decode = |params: Value| match f.decode(params).unwrap().action {
        Action::Layers(l) => *l,
        other => panic!("expected layers, got {other:?}"),
    };
    let l = decode(json!({"layers": {
        "base": "127.0.0.1:5000/web/nginx@sha256:".to_string() + &"a".repeat(64),
        "add": [{"src": "site", "dest": "/usr/share/nginx/html/", "owner": "101", "mode": "0o640"}],
        "config": {"env": ["A=1"], "exposed_ports": ["53/udp", 80]},
    }}));
    assert_eq!(
        l.base,
        LayersBase::Reference {
            repository: "127.0.0.1:5000/web/nginx".into(),
            reference: format!("sha256:{}", "a".repeat(64)),
        }
    );
    let add = &l.add[0];
    assert_eq!(add.src, f.path("site"));
    assert_eq!(add.dest, "usr/share/nginx/html");
    assert_eq!(
        (add.uid, add.gid, add.mode, add.dir_mode),
        (101, 101, Some(0o640), None)
    );
    assert_eq!((l.source_date_epoch, add.mtime), (0, 0));
    assert_eq!(l.config.env, [("A".to_string(), "1".to_string())]);
    assert_eq!(l.config.exposed_ports, ["53/udp", "80/tcp"]);

    let l = decode(
        json!({"layers": {"base_image": "base", "add": [{"src": "site/index.html", "dest": "/i.html", "mtime": "7"}]}}),
    );
    assert_eq!(l.base, LayersBase::Local(f.path("base/image.tar")));
    assert_eq!(l.add[0].mtime, 7);
    let l = decode(json!({"layers": {"base": "busybox", "add": [{"src": "site", "dest": "/"}]}}));
    assert!(matches!(&l.base, LayersBase::Reference { reference, .. } if reference == "latest"));

    let err = f
        .decode(json!({"layers": {"base": "b", "add": [{"src": "site/index.html", "dest": "/"}]}}))
        .unwrap_err();
    assert!(err.to_string().contains("layers.add[0].dest"), "{err}");
    let err = f
        .decode(json!({"image": "base/image.tar", "layers": {"base": "b"}}))
        .unwrap_err();
    assert!(err.to_string().contains("keep only one"), "{err}");
}

/// File params name small regular files: a FIFO (which would block `out`
/// forever), a device, a directory or a large file by mistake is refused at
/// once with one line naming the param; a secret file is held to BuildKit's
/// 500 KiB, and `image` may be a tarball or a layout directory only.
#[test]
fn file_params_refuse_what_is_not_a_small_regular_file() {
    let f = Fixture::new();
    let dir = f.dir.path();
    nix::unistd::mkfifo(&dir.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    // A character device like /dev/zero (1,5); making one needs root.
    let device = nix::sys::stat::mknod(
        &dir.join("zero"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::S_IRUSR,
        nix::sys::stat::makedev(1, 5),
    )
    .is_ok();
    std::fs::create_dir_all(dir.join("adir")).unwrap();
    let big = dir.join("build/app.tar");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    std::fs::write(&big, vec![b'x'; 2 << 20]).unwrap();
    std::fs::write(dir.join("secret"), vec![b's'; (500 << 10) + 1]).unwrap();
    let chain = |params: Value| crate::oci::error_chain(&f.decode(params).unwrap_err());
    let at = |rel: &str| dir.join(rel).display().to_string();
    for (param, rel, what) in [
        ("tag_file", "fifo", "is a FIFO, not a regular file"),
        ("build_args_file", "zero", "is a device, not a regular file"),
        ("labels_file", "adir", "is a directory, not a regular file"),
        (
            "target_file",
            "build/app.tar",
            "is larger than 1 MiB; expected a small text file",
        ),
        ("additional_tags", "fifo", "is a FIFO, not a regular file"),
    ] {
        if rel == "zero" && !device {
            continue;
        }
        let started = std::time::Instant::now();
        let got = chain(json!({"context": "src", param: rel}));
        assert_eq!(got, format!("param {param:?}: {} {what}", at(rel)));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{param} blocked"
        );
    }
    assert_eq!(
        chain(json!({"context": "src", "secrets": {"s": {"file": "secret"}}})),
        format!(
            "param \"secrets.s.file\": {} is larger than 500 KiB; expected a small text file",
            at("secret")
        )
    );
    assert_eq!(
        chain(json!({"context": "src", "ssh": "default=fifo"})),
        format!(
            "param \"ssh\": {} is a FIFO, not a regular file",
            at("fifo")
        )
    );
    assert_eq!(
        chain(json!({"image": "fifo"})),
        format!(
            "param \"image\": {} is a FIFO, not an image tarball or an OCI layout directory",
            at("fifo")
        )
    );
}
