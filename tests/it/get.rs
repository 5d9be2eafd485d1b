//! Black-box tests of `in` (get): the binary runs as a process with the
//! request on stdin and a destination dir as argv[1], against real
//! registries. Results are compared with independent peers: `umoci unpack` of
//! the same image (rootfs), `skopeo inspect` (manifests, configs, docker-save
//! archives) and `docker load` into the test dockerd, following
//! registry-image's `in` (docs/get.md).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::cmd::{self, Output};
use crate::support::fixtures::{self, Pushed};
use crate::support::needs;
use crate::support::registry::{self, Registry};
use crate::support::{docker, process, rootfs, run_tool, sha256_digest, unique};

fn new_dest() -> PathBuf {
    process::scratch_dir("get-dest")
}

fn get(source: &Value, params: Value, version: &Value, dest: &Path) -> Output {
    cmd::run(
        "in",
        &[dest],
        &json!({"source": source, "params": params, "version": version}),
        &[],
    )
}

/// Runs a successful get of `pushed` and checks the common protocol parts:
/// version echoed verbatim, `tag`/`digest`/`repository` files.
#[track_caller]
fn get_ok(source: &Value, params: Value, pushed: &Pushed, dest: &Path) -> Value {
    let version = pushed.version();
    let out = get(source, params, &version, dest);
    out.expect_success();
    let response = out.json();
    assert_eq!(response["version"], version, "version is echoed verbatim");
    assert_eq!(read(dest, "tag"), pushed.tag, "tag file has no newline");
    assert_eq!(read(dest, "digest"), pushed.digest);
    assert_eq!(
        read(dest, "repository"),
        source["repository"].as_str().expect("repository")
    );
    response
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"))
}

fn metadata_names(response: &Value) -> Vec<(String, String)> {
    response["metadata"]
        .as_array()
        .expect("metadata is an array")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().expect("name").to_string(),
                m["value"].as_str().expect("value").to_string(),
            )
        })
        .collect()
}

fn source_for(reg: &Registry, pushed: &Pushed) -> Value {
    reg.source(&pushed.repo)
}

/// The Go-style GOARCH of this machine, the default platform of `in`.
fn own_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

// ---- rootfs comparison with umoci ----

/// Asserts two rootfs trees are equal entry by entry (file sizes, link
/// counts and mtimes included), listing every difference.
#[track_caller]
fn assert_same_tree(ours: &Path, umoci: &Path) {
    let judge = rootfs::Judge {
        link_mtimes: false,
        sizes_and_links: true,
    };
    let entries = rootfs::assert_same_tree(ours, umoci, "umoci", judge);
    assert!(entries > 0, "rootfs is not empty");
}

#[test]
fn rootfs_of_layered_image_equals_umoci_unpack() {
    let reg = registry::plain();
    let pushed = fixtures::layered(reg);
    let dest = new_dest();
    let response = get_ok(&source_for(reg, &pushed), json!({}), &pushed, &dest);
    let rootfs = dest.join("rootfs");
    assert_same_tree(&rootfs, &pushed.layout.unpack());
    // The cases spelled out, so a wrong umoci would not hide a bug.
    let top = rootfs.join("top");
    assert!(!top.join("gone.txt").exists(), "whiteout removes a file");
    assert!(
        !top.join("gonedir").exists(),
        "whiteout removes a directory"
    );
    let opaque: Vec<_> = std::fs::read_dir(top.join("opaque"))
        .expect("opaque dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(opaque, ["new"], "an opaque directory hides older contents");
    assert_eq!(
        read(&top, "a"),
        "symlinked\n",
        "replacing symlink b must not write through it"
    );
    assert_eq!(read(&top, "b"), "replaced\n");
    let odd = std::fs::symlink_metadata(top.join("odd")).expect("odd");
    assert_eq!(odd.mode() & 0o7777, 0o603);
    assert_eq!(
        odd.mtime(),
        fixtures::ODD_MTIME,
        "mtime 1991-06-03T05:30:30Z is kept"
    );
    assert_eq!(
        std::fs::symlink_metadata(top.join("setuid"))
            .expect("setuid")
            .mode()
            & 0o7777,
        0o4755
    );
    assert_eq!(
        std::fs::symlink_metadata(top.join("hard1"))
            .expect("hard1")
            .ino(),
        std::fs::symlink_metadata(top.join("hard2"))
            .expect("hard2")
            .ino(),
        "hard links stay hard links"
    );
    assert_eq!(
        std::fs::read_link(top.join("abs-link")).expect("link"),
        Path::new("/top/keep.txt")
    );
    assert_eq!(
        std::fs::read_link(top.join("dangling")).expect("link"),
        Path::new("does/not/exist")
    );
    assert_eq!(
        metadata_names(&response),
        [
            ("repository".into(), pushed.repository.clone()),
            ("tag".into(), pushed.tag.clone())
        ]
    );
    assert_eq!(read(&dest, "labels.json"), "{\"fixture\":\"layered\"}\n");
}

#[test]
fn rootfs_of_busybox_over_tls_equals_umoci_unpack() {
    let reg = registry::tls_auth();
    let pushed = fixtures::busybox(reg);
    let dest = new_dest();
    let out = get(
        &source_for(reg, &pushed),
        json!({"format": "rootfs"}),
        &pushed.version(),
        &dest,
    );
    out.expect_success()
        .expect_not_leaked(reg.password.as_deref().expect("password"));
    assert!(
        out.stderr.contains(&pushed.digest),
        "stderr says what is fetched\n{}",
        out.details()
    );
    let rootfs = dest.join("rootfs");
    assert_same_tree(&rootfs, &pushed.layout.unpack());
    assert_eq!(
        std::fs::read(rootfs.join("bin/busybox")).expect("busybox"),
        std::fs::read(crate::support::require_tool("busybox", "busybox-static"))
            .expect("host busybox")
    );
    assert_eq!(
        std::fs::read_link(rootfs.join("bin/sh")).expect("sh"),
        Path::new("/bin/busybox")
    );
    // No labels at all: an empty object; no entrypoint: null.
    assert_eq!(read(&dest, "labels.json"), "{}\n");
    let metadata: Value =
        serde_json::from_str(&read(&dest, "metadata.json")).expect("metadata.json");
    assert_eq!(metadata["entrypoint"], Value::Null);
    assert_eq!(metadata["cmd"], json!(["sh"]));
}

#[test]
fn metadata_and_labels_match_the_image_config() {
    let reg = registry::plain();
    let pushed = fixtures::metadata(reg);
    let dest = new_dest();
    let source = source_for(reg, &pushed);
    get_ok(&source, json!({}), &pushed, &dest);
    let config: Value = serde_json::from_slice(&run_tool(
        Command::new(registry::skopeo())
            .args(["inspect", "--config"])
            .args(reg.skopeo_plain_args())
            .arg(format!("docker://{}", pushed.reference())),
    ))
    .expect("config JSON");
    let text = read(&dest, "metadata.json");
    assert!(text.ends_with("}\n"), "metadata.json ends with a newline");
    let metadata: Value = serde_json::from_str(&text).expect("metadata.json is JSON");
    let c = &config["config"];
    assert_eq!(
        metadata,
        json!({"cmd": c["Cmd"], "entrypoint": c["Entrypoint"], "env": c["Env"], "user": c["User"]})
    );
    assert_eq!(metadata["user"], "someuser");
    assert_eq!(metadata["entrypoint"], json!(["/bin/sh", "-c"]));
    assert!(
        metadata["env"]
            .as_array()
            .expect("env")
            .contains(&json!("FOO=1"))
    );
    let labels: Value = serde_json::from_str(&read(&dest, "labels.json")).expect("labels.json");
    assert_eq!(labels, c["Labels"]);
    assert_eq!(labels["z-label"], "z");
}

#[test]
fn label_regex_adds_matching_labels_sorted_by_key() {
    let reg = registry::plain();
    let pushed = fixtures::metadata(reg);
    let mut source = source_for(reg, &pushed);
    let base = [
        ("repository".to_string(), pushed.repository.clone()),
        ("tag".to_string(), pushed.tag.clone()),
    ];
    source["label_regex"] = json!(".*");
    let response = get_ok(
        &source,
        json!({"skip_download": true}),
        &pushed,
        &new_dest(),
    );
    let mut all = base.to_vec();
    all.extend(
        [
            ("a-label", "a"),
            ("m-label", "m"),
            ("org.example.version", "1.2.3"),
            ("z-label", "z"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    assert_eq!(metadata_names(&response), all);
    source["label_regex"] = json!("^[az]-");
    let response = get_ok(&source, json!({}), &pushed, &new_dest());
    let mut some = base.to_vec();
    some.extend([("a-label", "a"), ("z-label", "z")].map(|(k, v)| (k.to_string(), v.to_string())));
    assert_eq!(metadata_names(&response), some);
}

#[test]
fn skip_download_writes_only_the_version_files() {
    let reg = registry::plain();
    let pushed = fixtures::layered(reg);
    let dest = new_dest();
    get_ok(
        &source_for(reg, &pushed),
        json!({"skip_download": true, "format": "oci"}),
        &pushed,
        &dest,
    );
    for absent in ["rootfs", "image.tar", "oci", "metadata.json"] {
        assert!(
            !dest.join(absent).exists(),
            "skip_download must not write {absent}"
        );
    }
}

/// `tag`, `digest` and `repository` are new files renamed into place: a
/// symlink already in the destination is replaced, and its target (here a
/// file outside) keeps its content.
#[test]
fn version_files_replace_a_symlink_instead_of_writing_through_it() {
    let reg = registry::plain();
    let pushed = fixtures::layered(reg);
    let dest = new_dest();
    let outside = process::scratch_dir("get-outside").join("victim");
    std::fs::write(&outside, "untouched").unwrap();
    for name in ["tag", "digest", "repository"] {
        std::os::unix::fs::symlink(&outside, dest.join(name)).unwrap();
    }
    get_ok(
        &source_for(reg, &pushed),
        json!({"skip_download": true}),
        &pushed,
        &dest,
    );
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "untouched");
    for name in ["tag", "digest", "repository"] {
        let meta = std::fs::symlink_metadata(dest.join(name)).unwrap();
        assert!(meta.file_type().is_file(), "{name} is a regular file now");
    }
}

/// Two `in` into one destination: while another run is writing there (its
/// partial tarball, named for its live pid), a run that fails leaves that
/// run's files and its reported `image.tar` alone, and removes only what it
/// made itself.
#[test]
fn a_failed_in_keeps_another_runs_files_in_a_shared_destination() {
    let reg = registry::plain();
    let pushed = fixtures::layered(reg);
    let dest = new_dest();
    // This test process plays the other run: alive, writing a partial.
    let other_partial = dest.join(format!(".image.tar.partial.{}", std::process::id()));
    std::fs::write(&other_partial, "the other run's partial").unwrap();
    std::fs::write(dest.join("image.tar"), "the other run's image").unwrap();
    let bogus = format!("sha256:{}", "2".repeat(64));
    get(
        &source_for(reg, &pushed),
        json!({"format": "oci"}),
        &json!({"tag": "v1", "digest": bogus}),
        &dest,
    )
    .expect_failure();
    assert_eq!(
        std::fs::read_to_string(dest.join("image.tar")).unwrap(),
        "the other run's image"
    );
    assert_eq!(
        std::fs::read_to_string(&other_partial).unwrap(),
        "the other run's partial"
    );
}

// ---- format: oci (docker-save tarball) ----

fn tar_entries(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let file = std::fs::File::open(path).expect("opening image.tar");
    let mut archive = tar::Archive::new(file);
    let mut entries = BTreeMap::new();
    for entry in archive.entries().expect("reading image.tar") {
        let mut entry = entry.expect("tar entry");
        let name = entry
            .path()
            .expect("entry path")
            .to_string_lossy()
            .into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).expect("reading entry");
        entries.insert(name, bytes);
    }
    entries
}

needs! { dockerd;
    #[test]
    fn oci_format_writes_a_docker_save_tarball_skopeo_and_docker_can_read() {
        let reg = registry::plain();
        let pushed = fixtures::layered(reg);
        let dest = new_dest();
        get_ok(
            &source_for(reg, &pushed),
            json!({"format": "oci"}),
            &pushed,
            &dest,
        );
        assert!(!dest.join("rootfs").exists() && !dest.join("metadata.json").exists());
        assert_eq!(read(&dest, "labels.json"), "{\"fixture\":\"layered\"}\n");
        let tarball = dest.join("image.tar");
        let entries = tar_entries(&tarball);
        let manifest: Value =
            serde_json::from_slice(entries.get("manifest.json").expect("manifest.json")).expect("JSON");
        let image = &manifest.as_array().expect("manifest.json is a list")[0];
        assert_eq!(manifest.as_array().map(Vec::len), Some(1));
        assert_eq!(image["RepoTags"], json!([pushed.reference()]));
        let original = pushed.layout.manifest();
        let config_name = image["Config"].as_str().expect("Config");
        let config = entries.get(config_name).expect("config entry");
        assert_eq!(
            sha256_digest(config),
            original["config"]["digest"].as_str().expect("digest")
        );
        let layers: Vec<String> = original["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| l["digest"].as_str().expect("digest").to_string())
            .collect();
        let stored: Vec<String> = image["Layers"]
            .as_array()
            .expect("Layers")
            .iter()
            .map(|l| sha256_digest(entries.get(l.as_str().expect("name")).expect("layer entry")))
            .collect();
        assert_eq!(stored, layers, "layers are stored as pulled, in order");
        // skopeo reads it as a docker-archive and sees the same config.
        let seen: Value = serde_json::from_slice(&run_tool(
            Command::new(registry::skopeo())
                .args(["inspect", "--config"])
                .arg(format!("docker-archive:{}", tarball.display())),
        ))
        .expect("config JSON");
        assert_eq!(seen, pushed.layout.config_json());
        // dockerd loads it under the origin name and unpacks the same files.
        let docker = docker::shared();
        let load = docker.run(&["load", "--input", tarball.to_str().expect("utf-8 path")]);
        assert!(
            load.status.success(),
            "docker load: {}",
            String::from_utf8_lossy(&load.stderr)
        );
        assert!(String::from_utf8_lossy(&load.stdout).contains(&pushed.reference()));
        let inspect = docker.run(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            &pushed.reference(),
        ]);
        assert_eq!(
            String::from_utf8_lossy(&inspect.stdout).trim(),
            original["config"]["digest"].as_str().expect("digest")
        );
        let name = unique("get-oci");
        let create = docker.run(&["create", "--name", &name, &pushed.reference(), "/nothing"]);
        assert!(
            create.status.success(),
            "docker create: {}",
            String::from_utf8_lossy(&create.stderr)
        );
        let cp = docker.run(&["cp", &format!("{name}:/top/b"), "-"]);
        let _ = docker.run(&["rm", &name]);
        let files = tar::Archive::new(&cp.stdout[..])
            .entries()
            .expect("docker cp tar")
            .count();
        assert_eq!(files, 1, "docker sees /top/b");
    }
}

// ---- format: oci-layout ----

/// Every blob under `blobs/sha256` hashes to its name.
#[track_caller]
fn assert_blobs_verified(layout: &Path) -> Vec<String> {
    let mut digests = Vec::new();
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).expect("blobs/sha256") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let digest = sha256_digest(&std::fs::read(entry.path()).expect("blob"));
        assert_eq!(
            digest,
            format!("sha256:{name}"),
            "blob content matches its name"
        );
        digests.push(digest);
    }
    digests
}

#[test]
fn oci_layout_of_a_single_image_wraps_it_in_an_index() {
    let reg = registry::plain();
    let pushed = fixtures::layered(reg);
    let dest = new_dest();
    get_ok(
        &source_for(reg, &pushed),
        json!({"format": "oci-layout"}),
        &pushed,
        &dest,
    );
    let oci = dest.join("oci");
    let layout_file: Value = serde_json::from_str(&read(&oci, "oci-layout")).expect("oci-layout");
    assert_eq!(layout_file, json!({"imageLayoutVersion": "1.0.0"}));
    assert_eq!(
        read(&oci, "single-image-digest"),
        pushed.digest,
        "no trailing newline"
    );
    let index: Value = serde_json::from_str(&read(&oci, "index.json")).expect("index.json");
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0]["digest"], pushed.digest.as_str());
    let blobs = assert_blobs_verified(&oci);
    let original = pushed.layout.manifest();
    for needed in
        std::iter::once(&original["config"]).chain(original["layers"].as_array().expect("layers"))
    {
        assert!(
            blobs
                .iter()
                .any(|b| b == needed["digest"].as_str().expect("digest")),
            "blob {needed} present"
        );
    }
    // skopeo reads the layout and finds the registry's exact manifest bytes.
    let raw = run_tool(
        Command::new(registry::skopeo())
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}", oci.display())),
    );
    assert_eq!(raw, reg.inspect_raw(&pushed.reference()));
    for absent in ["rootfs", "metadata.json", "labels.json", "image.tar"] {
        assert!(
            !dest.join(absent).exists(),
            "oci-layout does not write {absent}"
        );
    }
}

#[test]
fn oci_layout_of_an_index_keeps_the_exact_index_and_all_platforms() {
    let reg = registry::plain();
    let multi = fixtures::multi_platform(reg);
    let pushed = &multi.pushed;
    let dest = new_dest();
    get_ok(
        &reg.source(&pushed.repo),
        json!({"format": "oci-layout"}),
        pushed,
        &dest,
    );
    let oci = dest.join("oci");
    let index = std::fs::read(oci.join("index.json")).expect("index.json");
    assert_eq!(
        index,
        reg.inspect_raw(&pushed.reference()),
        "index.json is the fetched index, byte for byte"
    );
    assert_eq!(sha256_digest(&index), pushed.digest);
    assert!(!oci.join("single-image-digest").exists());
    let blobs = assert_blobs_verified(&oci);
    for child in &multi.children {
        assert!(
            blobs.contains(&child.digest),
            "child {} present",
            child.digest
        );
        let manifest: Value = serde_json::from_slice(
            &std::fs::read(oci.join("blobs/sha256").join(&child.digest[7..])).expect("child"),
        )
        .expect("child manifest");
        for layer in manifest["layers"].as_array().expect("layers") {
            assert!(
                blobs
                    .iter()
                    .any(|b| b == layer["digest"].as_str().expect("digest"))
            );
        }
        assert!(
            blobs
                .iter()
                .any(|b| b == manifest["config"]["digest"].as_str().expect("digest"))
        );
    }
}

// ---- platforms ----

fn platform_marker(source: &Value, params: Value, pushed: &Pushed) -> String {
    let dest = new_dest();
    get_ok(source, params, pushed, &dest);
    read(&dest.join("rootfs"), "platform")
}

#[test]
fn platform_selects_the_index_child() {
    let reg = registry::plain();
    let multi = fixtures::multi_platform(reg);
    let pushed = &multi.pushed;
    let source = reg.source(&pushed.repo);
    // Default: this binary's own platform.
    assert_eq!(
        platform_marker(&source, json!({}), pushed),
        format!(
            "linux/{}\n",
            match own_arch() {
                "arm64" => "arm64/v8",
                other => other,
            }
        )
    );
    // arm64 and arm64/v8 are the same platform.
    let arm64 = json!({"platform": {"architecture": "arm64"}});
    assert_eq!(platform_marker(&source, arm64, pushed), "linux/arm64/v8\n");
    let arm64_v8 = json!({"platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}});
    assert_eq!(
        platform_marker(&source, arm64_v8, pushed),
        "linux/arm64/v8\n"
    );
    let arm_v7 = json!({"platform": {"architecture": "arm", "variant": "v7"}});
    assert_eq!(platform_marker(&source, arm_v7, pushed), "linux/arm/v7\n");
    // source.platform applies unless params.platform replaces it.
    let mut arm_source = source.clone();
    arm_source["platform"] = json!({"architecture": "arm64"});
    assert_eq!(
        platform_marker(&arm_source, json!({}), pushed),
        "linux/arm64/v8\n"
    );
    let amd64 = json!({"platform": {"architecture": "amd64"}});
    assert_eq!(platform_marker(&arm_source, amd64, pushed), "linux/amd64\n");
}

#[test]
fn labels_and_oci_tarball_come_from_the_selected_child() {
    let reg = registry::plain();
    let multi = fixtures::multi_platform(reg);
    let pushed = &multi.pushed;
    let mut source = reg.source(&pushed.repo);
    source["label_regex"] = json!("^platform$");
    let dest = new_dest();
    let response = get_ok(
        &source,
        json!({"format": "oci", "platform": {"architecture": "arm64"}}),
        pushed,
        &dest,
    );
    assert_eq!(
        metadata_names(&response)[2],
        ("platform".to_string(), "arm64v8".to_string())
    );
    let entries = tar_entries(&dest.join("image.tar"));
    let manifest: Value = serde_json::from_slice(&entries["manifest.json"]).expect("manifest.json");
    let config: Value =
        serde_json::from_slice(&entries[manifest[0]["Config"].as_str().expect("Config")])
            .expect("config");
    assert_eq!(config["architecture"], "arm64");
}

#[test]
fn platform_missing_from_the_index_fails() {
    let reg = registry::plain();
    let multi = fixtures::multi_platform(reg);
    let out = get(
        &reg.source(&multi.pushed.repo),
        json!({"platform": {"architecture": "s390x"}}),
        &multi.pushed.version(),
        &new_dest(),
    );
    out.expect_failure()
        .expect_stderr("no child with platform")
        .expect_stderr("s390x")
        .expect_stderr(&multi.pushed.digest);
    let out = get(
        &reg.source(&multi.pushed.repo),
        json!({"platform": {"architecture": "arm", "variant": "v6"}}),
        &multi.pushed.version(),
        &new_dest(),
    );
    out.expect_failure().expect_stderr("v6");
}

// ---- errors ----

#[test]
fn missing_destination_argument_fails() {
    let reg = registry::plain();
    let pushed = fixtures::layered(reg);
    let request =
        json!({"source": source_for(reg, &pushed), "params": {}, "version": pushed.version()});
    cmd::run("in", &[], &request, &[])
        .expect_failure()
        .expect_stderr("destination path not specified");
}

#[test]
fn unknown_format_fails_naming_it() {
    let reg = registry::plain();
    let pushed = fixtures::layered(reg);
    let out = get(
        &source_for(reg, &pushed),
        json!({"format": "tarball"}),
        &pushed.version(),
        &new_dest(),
    );
    out.expect_failure()
        .expect_stderr("unknown format provided, must be one of 'rootfs', 'oci', 'oci-layout'")
        .expect_stderr("tarball");
}

#[test]
fn unknown_params_field_is_rejected() {
    let reg = registry::plain();
    let pushed = fixtures::layered(reg);
    let out = get(
        &source_for(reg, &pushed),
        json!({"formt": "oci"}),
        &pushed.version(),
        &new_dest(),
    );
    out.expect_failure()
        .expect_stderr("invalid payload")
        .expect_stderr("unknown field \"formt\"")
        .expect_stderr("did you mean \"format\"");
}

#[test]
fn digest_absent_from_the_registry_fails() {
    let reg = registry::plain();
    let pushed = fixtures::layered(reg);
    let bogus = format!("sha256:{}", "1".repeat(64));
    let dest = new_dest();
    let out = get(
        &source_for(reg, &pushed),
        json!({}),
        &json!({"tag": "v1", "digest": bogus}),
        &dest,
    );
    out.expect_failure()
        .expect_stderr("download failed")
        .expect_stderr(&bogus);
    assert!(
        !dest.join("rootfs").exists(),
        "nothing is written on failure"
    );
    // registry-image#327: an empty digest is an error, not a fetch of `manifests/`.
    let out = get(
        &source_for(reg, &pushed),
        json!({}),
        &json!({"tag": "v1", "digest": ""}),
        &dest,
    );
    out.expect_failure().expect_stderr("digest");
}

#[test]
fn wrong_password_fails_without_printing_it() {
    let reg = registry::tls_auth();
    let pushed = fixtures::busybox(reg);
    let wrong = format!("wrong-{}", unique("pw"));
    let mut source = reg.source(&pushed.repo);
    source["password"] = json!(wrong);
    let out = get(&source, json!({}), &pushed.version(), &new_dest());
    out.expect_failure().expect_not_leaked(&wrong);
    let lower = out.stderr.to_lowercase();
    assert!(
        lower.contains("401") || lower.contains("unauthorized"),
        "{}",
        out.details()
    );
}

#[test]
fn tls_without_ca_certs_fails() {
    let reg = registry::tls_auth();
    let pushed = fixtures::busybox(reg);
    let mut source = reg.source(&pushed.repo);
    source.as_object_mut().expect("object").remove("ca_certs");
    let out = get(&source, json!({}), &pushed.version(), &new_dest());
    out.expect_failure();
    assert!(
        out.stderr.to_lowercase().contains("certificate"),
        "{}",
        out.details()
    );
}

// ---- registry_mirror ----

#[test]
fn mirror_serves_docker_hub_images_under_their_origin_name() {
    // No internet here: the origin (Docker Hub) is unreachable, so success
    // means the image came from the mirror, under `library/<name>`.
    let reg = registry::plain();
    let name = unique("get-mirror-hub");
    let pushed = fixtures::tiny_layout().push(reg, &format!("library/{name}"), "latest");
    let source = json!({"repository": name, "registry_mirror": {"host": reg.host}});
    let dest = new_dest();
    let out = get(&source, json!({"format": "oci"}), &pushed.version(), &dest);
    out.expect_success();
    assert_eq!(
        read(&dest, "repository"),
        name,
        "the repository as given, not the mirror"
    );
    let entries = tar_entries(&dest.join("image.tar"));
    let manifest: Value = serde_json::from_slice(&entries["manifest.json"]).expect("manifest.json");
    assert_eq!(
        manifest[0]["RepoTags"],
        json!([format!("index.docker.io/library/{name}:latest")]),
        "the tarball names the origin, not the mirror"
    );
}

// ---- layer formats and hostile layers (hand-written, pushed with skopeo) ----

#[test]
fn layer_compression_is_sniffed_from_the_bytes() {
    // registry-image#390, #405, #412: zstd layers, also mislabelled as gzip.
    use fixtures::{LAYER_GZIP, LAYER_TAR, LAYER_ZSTD, RawImage, RawTar};
    let layer = |name: &str| {
        RawTar::new()
            .file(name, format!("{name}\n").as_bytes(), 0o640)
            .finish()
    };
    let image = RawImage::new()
        .layer(layer("gzip"), "gzip", LAYER_GZIP)
        .layer(layer("zstd"), "zstd", LAYER_ZSTD)
        .layer(layer("zstd-as-gzip"), "zstd", LAYER_GZIP)
        .layer(layer("plain"), "none", LAYER_TAR);
    let reg = registry::plain();
    let pushed = image.push(reg, "get-compression");
    let manifest: Value =
        serde_json::from_slice(&reg.inspect_raw(&pushed.reference())).expect("manifest");
    assert_eq!(
        manifest["layers"][2]["mediaType"], LAYER_GZIP,
        "skopeo kept the lie"
    );
    let dest = new_dest();
    get_ok(&reg.source(&pushed.repo), json!({}), &pushed, &dest);
    for name in ["gzip", "zstd", "zstd-as-gzip", "plain"] {
        let path = dest.join("rootfs").join(name);
        assert_eq!(read(&dest.join("rootfs"), name), format!("{name}\n"));
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        assert_eq!(meta.mode() & 0o7777, 0o640);
        assert_eq!(meta.mtime(), fixtures::ODD_MTIME);
    }
    // The docker-save tarball names layer files after their media type.
    let dest = new_dest();
    get_ok(
        &reg.source(&pushed.repo),
        json!({"format": "oci"}),
        &pushed,
        &dest,
    );
    let entries = tar_entries(&dest.join("image.tar"));
    let tar_manifest: Value =
        serde_json::from_slice(&entries["manifest.json"]).expect("manifest.json");
    let names: Vec<&str> = tar_manifest[0]["Layers"]
        .as_array()
        .expect("Layers")
        .iter()
        .map(|l| l.as_str().expect("name"))
        .collect();
    let hex = |i: usize| manifest["layers"][i]["digest"].as_str().expect("digest")[7..].to_string();
    assert_eq!(names[0], format!("{}.tar.gz", hex(0)));
    assert_eq!(names[1], format!("{}.tar.zst", hex(1)));
    // registry-image names it after the (wrong) media type; naming it after
    // the actual content is as good: `docker load` sniffs either way.
    assert!(
        names[2] == format!("{}.tar.gz", hex(2)) || names[2] == format!("{}.tar.zst", hex(2)),
        "{names:?}"
    );
    assert_eq!(names[3], format!("{}.tar", hex(3)));
}

#[test]
fn symlinks_in_layers_resolve_inside_the_rootfs() {
    use fixtures::{LAYER_GZIP, RawImage, RawTar};
    let marker = unique("oci-it-escape");
    let victim = std::env::temp_dir().join(unique("oci-it-victim"));
    std::fs::write(&victim, "must survive\n").expect("writing the victim file");
    let victim_name = victim
        .file_name()
        .expect("name")
        .to_str()
        .expect("utf-8")
        .to_string();
    let tmp = std::env::temp_dir();
    let tmp = tmp
        .to_str()
        .expect("utf-8 temp dir")
        .trim_start_matches('/');
    let image = RawImage::new()
        .layer(
            RawTar::new()
                .symlink("abs", "/")
                .symlink("rel", "../../../../../../../..")
                .symlink("tmp-link", &format!("/{tmp}"))
                .finish(),
            "gzip",
            LAYER_GZIP,
        )
        .layer(
            RawTar::new()
                .file(&format!("abs/{marker}-a"), b"a\n", 0o644)
                .file(&format!("rel/{marker}-r"), b"r\n", 0o644)
                .file(&format!("tmp-link/.wh.{victim_name}"), b"", 0o644)
                .finish(),
            "gzip",
            LAYER_GZIP,
        );
    let reg = registry::plain();
    let pushed = image.push(reg, "get-symlink-escape");
    let dest = new_dest();
    let out = get(
        &reg.source(&pushed.repo),
        json!({}),
        &pushed.version(),
        &dest,
    );
    let escaped_a = Path::new("/").join(format!("{marker}-a"));
    let escaped_r = Path::new("/").join(format!("{marker}-r"));
    let outside = [escaped_a.exists(), escaped_r.exists(), !victim.exists()];
    let _ = std::fs::remove_file(&escaped_a);
    let _ = std::fs::remove_file(&escaped_r);
    let _ = std::fs::remove_file(&victim);
    assert_eq!(
        outside,
        [false; 3],
        "a layer wrote or deleted outside the rootfs\n{}",
        out.details()
    );
    out.expect_success();
    let rootfs = dest.join("rootfs");
    assert_eq!(
        read(&rootfs, &format!("{marker}-a")),
        "a\n",
        "abs/ resolves to the rootfs' /"
    );
    assert_eq!(
        read(&rootfs, &format!("{marker}-r")),
        "r\n",
        "../ stops at the rootfs' /"
    );
}

#[test]
fn dot_dot_entries_are_rejected() {
    use fixtures::{LAYER_GZIP, RawImage, RawTar};
    let marker = unique("oci-it-dotdot");
    let image = RawImage::new().layer(
        RawTar::new()
            .dir("a", 0o755)
            .file(&format!("../{marker}"), b"x\n", 0o644)
            .file(&format!("a/../../../{marker}"), b"x\n", 0o644)
            .finish(),
        "gzip",
        LAYER_GZIP,
    );
    let reg = registry::plain();
    let pushed = image.push(reg, "get-dotdot");
    let dest = new_dest();
    let out = get(
        &reg.source(&pushed.repo),
        json!({}),
        &pushed.version(),
        &dest,
    );
    let candidates = [
        dest.join(&marker),
        dest.parent().expect("parent").join(&marker),
        dest.parent()
            .expect("parent")
            .parent()
            .expect("parent")
            .join(&marker),
    ];
    let escaped: Vec<_> = candidates.iter().filter(|p| p.exists()).collect();
    assert!(
        escaped.is_empty(),
        "a `..` entry escaped the rootfs: {escaped:?}\n{}",
        out.details()
    );
    out.expect_failure().expect_stderr("..");
}

#[test]
fn annotation_regex_adds_matching_manifest_annotations_after_labels() {
    let reg = registry::plain();
    let pushed = fixtures::metadata(reg);
    let manifest: Value =
        serde_json::from_slice(&reg.inspect_raw(&pushed.reference())).expect("manifest");
    assert_eq!(
        manifest["annotations"]["z.note"], "last",
        "umoci wrote the annotation"
    );
    let mut source = source_for(reg, &pushed);
    source["label_regex"] = json!("^a-");
    source["annotation_regex"] = json!("note|source");
    let response = get_ok(
        &source,
        json!({"skip_download": true}),
        &pushed,
        &new_dest(),
    );
    let expected: Vec<(String, String)> = [
        ("repository", pushed.repository.as_str()),
        ("tag", pushed.tag.as_str()),
        ("a-label", "a"),
        ("org.opencontainers.image.source", "https://example.com/src"),
        ("z.note", "last"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(metadata_names(&response), expected);
}

// ---- Docker schema 2 media types ----

#[test]
fn docker_schema2_image_and_manifest_list() {
    let reg = registry::plain();
    let repo = unique("get-docker-v2s2");
    let pushed = fixtures::layered_layout().push_docker(reg, &repo, "v1");
    let manifest: Value =
        serde_json::from_slice(&reg.inspect_raw(&pushed.reference())).expect("manifest");
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    // check reports the digest of the Docker manifest.
    let check = cmd::run(
        "check",
        &[],
        &json!({"source": {"repository": pushed.repository, "tag": "v1"}}),
        &[],
    );
    check.expect_success();
    assert_eq!(
        check.json(),
        json!([{"tag": "v1", "digest": pushed.digest}])
    );
    // get unpacks the same tree as umoci does from the OCI original.
    let dest = new_dest();
    get_ok(&reg.source(&repo), json!({}), &pushed, &dest);
    assert_same_tree(&dest.join("rootfs"), &pushed.layout.unpack());
    // A manifest list: arm64 picked by platform.
    let list_repo = unique("get-docker-list");
    let multi = fixtures::multi_platform(reg);
    let list = multi.pushed.layout.push_docker(reg, &list_repo, "multi");
    let raw: Value = serde_json::from_slice(&reg.inspect_raw(&list.reference())).expect("list");
    assert_eq!(
        raw["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    let dest = new_dest();
    get_ok(
        &reg.source(&list_repo),
        json!({"platform": {"architecture": "arm64"}}),
        &list,
        &dest,
    );
    assert_eq!(read(&dest.join("rootfs"), "platform"), "linux/arm64/v8\n");
}

// ---- request pattern and retries (through a recording proxy) ----

#[test]
fn get_fetches_by_digest_and_retries_429s() {
    // Upstream case 13: 429 on the ping twice, then on the manifest, then on
    // the config blob; `TEST=true` makes the back-off 5 ms.
    let reg = registry::plain();
    let pushed = fixtures::layered(reg);
    let proxy = crate::support::proxy::Proxy::start(&reg.host);
    proxy.fail(Some("GET"), "/v2/", 2, 429);
    let source = json!({"repository": format!("{}/{}", proxy.host, pushed.repo)});
    let dest = new_dest();
    let version = pushed.version();
    let out = get(&source, json!({}), &version, &dest);
    out.expect_success().expect_stderr("transient error");
    assert_eq!(read(&dest.join("rootfs/top"), "keep.txt"), "keep\n");
    let requests = proxy.requests();
    assert!(
        requests
            .iter()
            .all(|r| !r.contains(&format!("/manifests/{}", pushed.tag))),
        "the image is fetched by digest only, never by tag: {requests:?}"
    );
    assert!(
        requests.contains(&format!(
            "GET /v2/{}/manifests/{}",
            pushed.repo, pushed.digest
        )),
        "{requests:?}"
    );
    // 429s on the manifest and on a blob are retried too.
    proxy.fail(None, "/manifests/", 1, 429);
    proxy.fail(None, "/blobs/", 1, 429);
    let dest = new_dest();
    get(&source, json!({}), &version, &dest).expect_success();
    assert_eq!(read(&dest.join("rootfs/top"), "keep.txt"), "keep\n");
}

#[test]
fn get_does_not_retry_permanent_errors() {
    let reg = registry::plain();
    let pushed = fixtures::layered(reg);
    let proxy = crate::support::proxy::Proxy::start(&reg.host);
    proxy.fail(None, "/manifests/", 1, 404);
    let source = json!({"repository": format!("{}/{}", proxy.host, pushed.repo)});
    let out = get(&source, json!({}), &pushed.version(), &new_dest());
    out.expect_failure().expect_stderr("download failed");
    assert!(
        out.stderr.contains("404") || out.stderr.contains("MANIFEST_UNKNOWN"),
        "{}",
        out.details()
    );
    assert!(
        !out.stderr.contains("transient error"),
        "a 404 is not retried\n{}",
        out.details()
    );
}

#[test]
fn keys_match_case_insensitively_and_zero_values_mean_unset() {
    let reg = registry::plain();
    let pushed = fixtures::layered(reg);
    let dest = new_dest();
    let request = json!({
        "Source": {"REPOSITORY": pushed.repository, "insecure": false, "label_regex": ""},
        "Params": {"Format": "", "skip_download": false, "platform": null},
        "Version": pushed.version(),
    });
    let out = cmd::run("in", &[&dest], &request, &[]);
    out.expect_success();
    assert_eq!(out.json()["version"], pushed.version());
    assert!(
        dest.join("rootfs/top/keep.txt").is_file(),
        "empty format means rootfs"
    );
}

#[test]
fn layer_ending_without_final_padding_unpacks_like_go_tar() {
    // umoci 0.4.7 (Debian 12) `insert` writes layers that end right after the
    // last file's data: no padding to 512 bytes, no end-of-archive blocks.
    // Go's archive/tar (ggcr, so registry-image; dockerd; umoci) reads that as
    // the end of the archive, so such images work everywhere else.
    use fixtures::{LAYER_GZIP, RawImage, RawTar};
    let mut tar = RawTar::new()
        .dir("d", 0o755)
        .file("d/short", b"hello", 0o644)
        .finish();
    tar.truncate(2 * 512 + 5);
    let reg = registry::plain();
    let pushed = RawImage::new()
        .layer(tar, "gzip", LAYER_GZIP)
        .push(reg, "get-no-padding");
    let dest = new_dest();
    get_ok(&reg.source(&pushed.repo), json!({}), &pushed, &dest);
    assert_eq!(read(&dest.join("rootfs/d"), "short"), "hello");
    assert_same_tree(&dest.join("rootfs"), &pushed.layout.unpack());
}

#[test]
fn docker_schema1_manifest_is_rejected() {
    // registry-image#87, #38: schema 1 (quay's legacy format) is unsupported.
    let reg = registry::plain();
    let repo = unique("get-schema1");
    reg.push_as(
        &format!("oci:{}", fixtures::tiny_layout().image()),
        &repo,
        "v1",
        "v2s1",
    );
    let raw: Value =
        serde_json::from_slice(&reg.inspect_raw(&reg.reference(&repo, "v1"))).expect("manifest");
    assert_eq!(
        raw["schemaVersion"], 1,
        "the registry stored a schema 1 manifest"
    );
    let digest = reg.registry_digest(&reg.reference(&repo, "v1"));
    let dest = new_dest();
    let out = get(
        &reg.source(&repo),
        json!({}),
        &json!({"tag": "v1", "digest": digest}),
        &dest,
    );
    out.expect_failure().expect_stderr("schema 1");
    assert!(!dest.join("rootfs").exists());
}

#[test]
fn layer_entries_with_a_leading_slash_stay_in_the_rootfs() {
    // `umoci insert DIR /` writes an entry named `/` for the target itself,
    // and some tools write absolute names (`/etc/x`). Go's archive/tar users
    // (ggcr and so registry-image, dockerd, umoci) join every name under the
    // rootfs, as tar-rs' `unpack_in` drops the root component.
    use fixtures::{LAYER_GZIP, RawImage, RawTar};
    let tar = RawTar::new()
        .dir("/", 0o755)
        .dir("/etc", 0o755)
        .file("/etc/absolute", b"abs\n", 0o644)
        .file("./dot-relative", b"dot\n", 0o644)
        .finish();
    let reg = registry::plain();
    let pushed = RawImage::new()
        .layer(tar, "gzip", LAYER_GZIP)
        .push(reg, "get-leading-slash");
    let dest = new_dest();
    get_ok(&reg.source(&pushed.repo), json!({}), &pushed, &dest);
    let rootfs = dest.join("rootfs");
    assert_eq!(read(&rootfs.join("etc"), "absolute"), "abs\n");
    assert_eq!(read(&rootfs, "dot-relative"), "dot\n");
    assert_same_tree(&rootfs, &pushed.layout.unpack());
}

/// `COPY f` / `RUN rm f` / `COPY f` gives the layers [B, A, W, A]: one
/// layer listed twice. Each format must fetch it.
#[test]
fn image_listing_one_layer_twice_is_fetched_in_every_format() {
    use fixtures::{LAYER_GZIP, RawImage, RawTar};
    let base = RawTar::new().file("base", b"base\n", 0o644).finish();
    let add = RawTar::new().file("f", b"f\n", 0o644).finish();
    let remove = RawTar::new().file(".wh.f", b"", 0o644).finish();
    let image = RawImage::new()
        .layer(base, "gzip", LAYER_GZIP)
        .layer(add.clone(), "gzip", LAYER_GZIP)
        .layer(remove, "gzip", LAYER_GZIP)
        .layer(add, "gzip", LAYER_GZIP);
    let reg = registry::plain();
    let pushed = image.push(reg, "get-repeated-layer");
    let layers: Vec<String> = pushed.layout.manifest()["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_string())
        .collect();
    assert_eq!(layers[1], layers[3], "the fixture repeats a layer");
    let source = reg.source(&pushed.repo);

    let dest = new_dest();
    get_ok(&source, json!({}), &pushed, &dest);
    assert_eq!(
        read(&dest.join("rootfs"), "f"),
        "f\n",
        "re-added after the whiteout"
    );
    assert_same_tree(&dest.join("rootfs"), &pushed.layout.unpack());
    assert!(!dest.join(".layers.partial").exists());

    let dest = new_dest();
    get_ok(&source, json!({"format": "oci"}), &pushed, &dest);
    let tarball = dest.join("image.tar");
    let entries = tar_entries(&tarball);
    let manifest: Value = serde_json::from_slice(&entries["manifest.json"]).expect("JSON");
    let stored: Vec<String> = manifest[0]["Layers"]
        .as_array()
        .expect("Layers")
        .iter()
        .map(|l| sha256_digest(&entries[l.as_str().expect("name")]))
        .collect();
    assert_eq!(stored, layers, "every position lists its layer");
    let seen: Value = serde_json::from_slice(&run_tool(
        Command::new(registry::skopeo())
            .args(["inspect", "--config"])
            .arg(format!("docker-archive:{}", tarball.display())),
    ))
    .expect("config JSON");
    assert_eq!(seen, pushed.layout.config_json());

    let dest = new_dest();
    get_ok(&source, json!({"format": "oci-layout"}), &pushed, &dest);
    let raw = run_tool(
        Command::new(registry::skopeo())
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}", dest.join("oci").display())),
    );
    assert_eq!(raw, reg.inspect_raw(&pushed.reference()));
    assert_blobs_verified(&dest.join("oci"));
}
