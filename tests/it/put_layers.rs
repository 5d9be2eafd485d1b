//! `out` with `params.layers`: static files appended to an nginx-like base
//! (the busybox fixture plus `/usr/share/nginx/html`), with no daemon.
//!
//! The result is compared with the OpsChain flow done by independent peers
//! (`skopeo copy` + `umoci insert` + `umoci config`), both unpacked with
//! `umoci unpack`: same file tree (modes, owners, contents, mtimes) and the
//! same config fields. Also: the same inputs give the same digest twice,
//! `check`/`in` round trip, a multi-platform base gives an index with each
//! platform appended (layers mounted, not copied), a base from a get
//! directory gives the same image as the base by reference, and bad input
//! fails with one message naming the field, before any registry traffic.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::put::{Src, metadata};
use crate::support::fixtures::{self, Layout, Pushed};
use crate::support::needs;
use crate::support::registry::Registry;
use crate::support::{self, cmd, process, run_tool};

/// mtime of the site files: 2023-11-14T22:13:20Z.
const MTIME: i64 = 1_700_000_000;

/// The nginx-like base: busybox plus a default page and config, `httpd` as
/// the command, port 80 exposed.
fn nginx_like_layout() -> &'static Layout {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let stage = process::scratch_dir("nginx-like").join("root");
        for (rel, text) in [
            ("usr/share/nginx/html/index.html", "default page\n"),
            ("usr/share/nginx/html/50x.html", "error page\n"),
            ("etc/nginx/nginx.conf", "events {}\n"),
        ] {
            let p = stage.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, text).expect("write");
        }
        let layout = fixtures::busybox_layout().tagged("nginx-like");
        layout.insert(&stage, "/");
        layout.config(&["--config.cmd=httpd", "--config.exposedports=80/tcp"]);
        layout
    })
}

fn nginx_like(reg: &Registry) -> Pushed {
    nginx_like_layout().push(reg, &support::unique("base/nginx-like"), "1")
}

/// The site: pages, a stylesheet in a subdirectory, an executable script
/// and a symlink; modes set here, mtimes and owners left to each flow.
fn site(src: &Src) -> PathBuf {
    let site = src.path().join("site");
    for (rel, text, mode) in [
        ("index.html", "<h1>hello</h1>\n", 0o644),
        ("css/site.css", "h1 { color: teal }\n", 0o640),
        ("bin/health.sh", "#!/bin/sh\necho ok\n", 0o755),
    ] {
        let p = site.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    symlink("index.html", site.join("home.html")).expect("symlink");
    for dir in [site.clone(), site.join("css"), site.join("bin")] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    site
}

/// Our `params.layers` for the site, and the same changes as `umoci config`
/// options.
fn layers_params(base: &str) -> (Value, Vec<String>) {
    let params = json!({"layers": {
        "base": base,
        "source_date_epoch": MTIME,
        "add": [{"src": "site", "dest": "/usr/share/nginx/html", "owner": "101:101"}],
        "config": {
            "env": {"NGINX_PORT": "8080"},
            "entrypoint": ["httpd", "-f"],
            "cmd": ["-p", "8080", "-h", "/usr/share/nginx/html"],
            "workdir": "/usr/share/nginx/html",
            "user": "101",
            "labels": {"org.opencontainers.image.title": "site"},
            "exposed_ports": [8080],
        },
    }});
    let umoci = [
        "--config.env=NGINX_PORT=8080",
        "--config.entrypoint=httpd",
        "--config.entrypoint=-f",
        "--config.cmd=-p",
        "--config.cmd=8080",
        "--config.cmd=-h",
        "--config.cmd=/usr/share/nginx/html",
        "--config.workingdir=/usr/share/nginx/html",
        "--config.user=101",
        "--config.label=org.opencontainers.image.title=site",
        "--config.exposedports=8080/tcp",
    ]
    .map(String::from)
    .to_vec();
    (params, umoci)
}

fn out(src: &Src, source: &Value, params: &Value) -> cmd::Output {
    cmd::run(
        "out",
        &[src.path()],
        &json!({"source": source, "params": params}),
        &[],
    )
}

fn digest_of(resp: &Value) -> String {
    resp["version"]["digest"]
        .as_str()
        .expect("digest")
        .to_string()
}

/// `skopeo copy docker://<reference> oci:<dir>:t`, returns the layout.
fn copy_to_layout(reg: &Registry, reference: &str, name: &str) -> Layout {
    let dir = process::scratch_dir(name).join("layout");
    run_tool(
        Command::new("skopeo")
            .arg("copy")
            .args(reg.skopeo_src_args())
            .arg(format!("docker://{reference}"))
            .arg(format!("oci:{}:t", dir.display())),
    );
    Layout {
        dir,
        tag: "t".into(),
    }
}

/// Asserts two rootfs trees are equal entry by entry (mtimes of files and
/// links included), listing every difference.
#[track_caller]
fn assert_same_tree(ours: &Path, peer: &Path) {
    let judge = support::rootfs::Judge {
        link_mtimes: true,
        sizes_and_links: false,
    };
    let entries = support::rootfs::assert_same_tree(ours, peer, "the peer", judge);
    assert!(entries > 100, "a busybox rootfs has its applets");
}

needs! { docker_registry, skopeo, umoci;
    #[test]
    fn equals_skopeo_and_umoci_insert_and_is_reproducible() {
        let reg = support::registry::tls_auth();
        let base = nginx_like(reg);
        let src = Src::new(&[]);
        let site = site(&src);
        let repo = support::unique("layers/site");
        let source = reg.source(&repo);
        let (params, umoci_config) = layers_params(&base.reference());

        let first = out(&src, &source, &params);
        first
            .expect_success()
            .expect_not_leaked(reg.password.as_deref().unwrap_or("-"));
        let resp = first.json();
        let digest = digest_of(&resp);
        assert_eq!(resp["version"]["tag"], "latest");
        assert_eq!(reg.digest_of(&format!("{repo}:latest")), digest);
        assert_eq!(
            metadata(&resp, "base_digest").as_deref(),
            Some(base.digest.as_str())
        );
        assert_eq!(metadata(&resp, "platforms").as_deref(), Some("linux/amd64"));
        // Same registry: the base's layers were mounted, not uploaded.
        assert!(first.stderr.contains("mounted from"), "{}", first.details());

        // The same inputs again, the files touched meanwhile: the same digest.
        let t = filetime::FileTime::from_unix_time(1, 0);
        filetime::set_file_times(site.join("index.html"), t, t).expect("touch");
        let mut again_params = params.clone();
        again_params["tag_as_latest"] = json!(false);
        let mut again_source = source.clone();
        again_source["tag"] = json!("again");
        let again = out(&src, &again_source, &again_params);
        again.expect_success();
        assert_eq!(digest_of(&again.json()), digest);

        // The peers' flow on a copy of the site with owner and mtimes set on disk.
        let peer_site = process::scratch_dir("layers-peer-site").join("site");
        run_tool(Command::new("cp").arg("-a").arg(&site).arg(&peer_site));
        run_tool(
            Command::new("chown")
                .args(["-hR", "101:101"])
                .arg(&peer_site),
        );
        for item in walkdir::WalkDir::new(&peer_site) {
            let item = item.expect("walk");
            let time = filetime::FileTime::from_unix_time(MTIME, 0);
            filetime::set_symlink_file_times(item.path(), time, time).expect("mtime");
        }
        let peer = copy_to_layout(reg, &base.reference(), "layers-peer");
        peer.insert(&peer_site, "/usr/share/nginx/html");
        run_tool(
            Command::new("umoci")
                .args(["config", "--image"])
                .arg(peer.image())
                .args(&umoci_config),
        );
        let ours = copy_to_layout(reg, &format!("{}@{digest}", reg.repo(&repo)), "layers-ours");
        assert_same_tree(&ours.unpack(), &peer.unpack());

        let (a, b) = (ours.config_json(), peer.config_json());
        for field in [
            "Env",
            "Entrypoint",
            "Cmd",
            "WorkingDir",
            "User",
            "Labels",
            "ExposedPorts",
        ] {
            assert_eq!(a["config"][field], b["config"][field], "config.{field}");
        }
        // The base's layers are shared; the new one differs in tar encoding
        // only (Go's archive/tar writes PAX records), which the trees cover.
        let (ids, peer_ids) = (
            a["rootfs"]["diff_ids"].as_array().expect("diff_ids"),
            b["rootfs"]["diff_ids"].as_array().expect("diff_ids"),
        );
        assert_eq!(ids.len(), peer_ids.len());
        assert_eq!(ids[..ids.len() - 1], peer_ids[..peer_ids.len() - 1]);
        assert_eq!(a["created"], "2023-11-14T22:13:20Z");
        assert_eq!(ours.manifest()["layers"].as_array().map(Vec::len), Some(3));
    }
}

needs! { docker_registry, skopeo, umoci;
    #[test]
    fn check_and_in_round_trip() {
        let reg = support::registry::plain();
        let base = nginx_like(reg);
        let src = Src::new(&[]);
        site(&src);
        let repo = support::unique("layers/round-trip");
        let mut source = reg.source(&repo);
        source["tag"] = json!("live");
        let (params, _) = layers_params(&base.reference());
        let resp = out(&src, &source, &params).expect_success().json();
        let version = resp["version"].clone();
        assert_eq!(version["tag"], "live");

        let versions = cmd::run("check", &[], &json!({"source": source}), &[])
            .expect_success()
            .json();
        assert_eq!(versions, json!([version]));
        let dest = process::scratch_dir("layers-get");
        cmd::run(
            "in",
            &[dest.as_path()],
            &json!({"source": source, "version": version, "params": {}}),
            &[],
        )
        .expect_success();
        let html = dest.join("rootfs/usr/share/nginx/html");
        assert_eq!(
            std::fs::read_to_string(html.join("index.html")).expect("our page"),
            "<h1>hello</h1>\n"
        );
        assert_eq!(
            std::fs::read_to_string(html.join("50x.html")).expect("the base's page"),
            "error page\n"
        );
        let meta: Value = serde_json::from_str(
            &std::fs::read_to_string(dest.join("metadata.json")).expect("metadata.json"),
        )
        .expect("JSON");
        assert_eq!(meta["user"], "101");
    }
}

needs! { docker_registry, skopeo, umoci;
    #[test]
    fn a_multi_platform_base_gets_the_layer_on_every_platform() {
        let reg = support::registry::plain();
        let multi = fixtures::multi_platform(reg);
        let src = Src::new(&[("site/index.html", "everywhere\n")]);
        let repo = support::unique("layers/multi");
        let params = json!({"layers": {
            "base": multi.pushed.reference(),
            "add": [{"src": "site", "dest": "/srv/www"}],
        }});
        let done = out(&src, &reg.source(&repo), &params);
        done.expect_success();
        let resp = done.json();
        // As every put reports them: from the configs, which umoci wrote
        // without variants.
        assert_eq!(
            metadata(&resp, "platforms").as_deref(),
            Some("linux/amd64,linux/arm64,linux/arm")
        );
        let index: Value =
            serde_json::from_slice(&reg.inspect_raw(&format!("{repo}:latest"))).expect("index");
        assert_eq!(
            index["mediaType"],
            "application/vnd.oci.image.index.v1+json"
        );
        let base_index: Value =
            serde_json::from_slice(&reg.inspect_raw(&multi.pushed.reference())).expect("base index");
        let (children, base_children) = (
            index["manifests"].as_array().expect("manifests"),
            base_index["manifests"].as_array().expect("manifests"),
        );
        assert_eq!(children.len(), 3);
        let mut added = Vec::new();
        for (child, base_child) in children.iter().zip(base_children) {
            assert_eq!(child["platform"], base_child["platform"]);
            let m: Value = serde_json::from_slice(&reg.inspect_raw(&format!(
                "{repo}@{}",
                child["digest"].as_str().expect("digest")
            )))
            .expect("manifest");
            let b: Value = serde_json::from_slice(&reg.inspect_raw(&format!(
                "{}@{}",
                multi.pushed.repo,
                base_child["digest"].as_str().expect("digest")
            )))
            .expect("base manifest");
            let (layers, base_layers) = (
                m["layers"].as_array().expect("layers"),
                b["layers"].as_array().expect("layers"),
            );
            assert_eq!(layers.len(), base_layers.len() + 1);
            assert_eq!(layers[..base_layers.len()], base_layers[..]);
            added.push(layers[base_layers.len()].clone());
        }
        assert!(
            added.windows(2).all(|w| w[0] == w[1]),
            "one layer for all: {added:?}"
        );
        assert!(done.stderr.contains("mounted from"), "{}", done.details());

        // One platform of it: a single manifest.
        let mut one = params.clone();
        one["layers"]["platform"] = json!("linux/arm64/v8");
        let single = out(&src, &reg.source(&repo), &one).expect_success().json();
        assert_eq!(
            metadata(&single, "platforms").as_deref(),
            Some("linux/arm64")
        );
        assert_eq!(
            single["version"]["digest"], children[1]["digest"],
            "the same image as the index's arm64 child"
        );
    }
}

needs! { docker_registry, skopeo, umoci;
    #[test]
    fn a_base_from_a_get_directory_gives_the_same_image() {
        let reg = support::registry::plain();
        let base = nginx_like(reg);
        let src = Src::new(&[]);
        site(&src);
        let (by_reference, _) = layers_params(&base.reference());
        let repo = support::unique("layers/from-get");
        let want = digest_of(
            &out(&src, &reg.source(&repo), &by_reference)
                .expect_success()
                .json(),
        );

        // A get of the base with `format: oci-layout` into the put's inputs.
        cmd::run(
            "in",
            &[src.path().join("base").as_path()],
            &json!({"source": reg.source(&base.repo), "version": base.version(), "params": {"format": "oci-layout"}}),
            &[],
        )
        .expect_success();
        let mut from_get = by_reference.clone();
        from_get["layers"]
            .as_object_mut()
            .expect("object")
            .remove("base");
        from_get["layers"]["base_image"] = json!("base");
        let other = support::unique("layers/from-get-other");
        let done = out(&src, &reg.source(&other), &from_get);
        done.expect_success();
        assert_eq!(digest_of(&done.json()), want);
        // From disk nothing can be mounted: every layer is uploaded, and the
        // progress lines count the base's layers with the new one.
        assert!(
            done.stderr.contains("pushing: layer 3/3") && !done.stderr.contains("mounted from"),
            "layers copied from disk: {}",
            done.details()
        );
    }
}

#[test]
fn bad_input_names_the_field_before_any_registry_traffic() {
    // A registry that is not there: every case must fail before reaching it.
    let source = json!({"repository": "127.0.0.1:9/never"});
    let src = Src::new(&[("site/index.html", "x")]);
    let layer = |fields: Value| {
        let mut entry = json!({"src": "site", "dest": "/srv"});
        for (k, v) in fields.as_object().expect("object") {
            entry[k] = v.clone();
        }
        json!({"layers": {"base": "127.0.0.1:9/base:1", "add": [entry]}})
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            layer(json!({"src": "missing"})),
            "param \"layers.add[0].src\": ",
        ),
        (
            layer(json!({"src": "../etc"})),
            "layers.add[0].src\": \"../etc\" leaves the put's working directory",
        ),
        (
            layer(json!({"dest": "/srv/../etc"})),
            "layers.add[0].dest\": \"/srv/../etc\" has a `..` component",
        ),
        (
            layer(json!({"mode": "0999"})),
            "layers.add[0].mode\": \"0999\" is not an octal mode",
        ),
        (
            layer(json!({"mode": 644})),
            "layers.add[0].mode\": give the mode as a quoted octal string",
        ),
        (
            layer(json!({"owner": "www-data"})),
            "layers.add[0].owner\": \"www-data\" is not `uid:gid`",
        ),
        (
            layer(json!({"mtme": 1})),
            "unknown param \"layers.add[0].mtme\" (did you mean \"layers.add[0].mtime\"?)",
        ),
        (
            json!({"layers": {"add": [{"src": "site", "dest": "/"}]}}),
            "no base image",
        ),
        (
            json!({"layers": {"base": "127.0.0.1:9/b", "add": []}}),
            "layers.add\": give at least one layer",
        ),
        (
            json!({"layers": {"base": "127.0.0.1:9/b", "add": [{"src": "site", "dest": "/"}]}, "context": "."}),
            "keep only one",
        ),
    ];
    for (params, expected) in cases {
        let result = out(&src, &source, &params);
        result.expect_failure().expect_stderr(expected);
        assert_eq!(
            result
                .stderr
                .lines()
                .filter(|l| l.starts_with("error"))
                .count(),
            1,
            "one error line: {}",
            result.details()
        );
    }
}
