//! The daemon's side of fsutil's DiffCopy as the sender sees it
//! (src/buildkit/fsutil.rs, src/buildkit/patterns.rs): the packets the
//! daemon sends and the filters it asks for.
//!
//! Input: filter lines up to the first NUL (`+pattern` include, `-pattern`
//! exclude, `>path` follow path), then the daemon's packets, each as a
//! length-delimited protobuf `Packet` (prost's framing; decoding stops at
//! the first that does not decode). The sender lists a fixed tree that
//! holds a symlink to a file outside it.
//!
//! Asserted: the transfer ends (the daemon's stream ending is an error, not
//! a hang); it ends with FIN on success and ERR on failure; every STAT path
//! is relative and has no `..`; DATA goes only to ids the daemon requested,
//! and a file's data is its content; nothing from outside the tree is sent.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Buf;
use oci_build_resource::buildkit::fsutil::{WalkOptions, send};
use oci_build_resource::buildkit::proto::fsutil::types::{Packet, packet::PacketType};
use prost::Message;
use tokio::sync::mpsc;

use super::runtime;

const OUTSIDE_MARKER: &[u8] = b"OUTSIDE-MARKER";

struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// Regular files by path relative to the root.
    files: HashMap<String, Vec<u8>>,
}

/// The tree, made once per process: files big and small, nested dirs, a
/// symlink inside and one to a file outside the root.
fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| {
        let dir = super::fixture_dir("fsutil");
        let root = dir.path().join("ctx");
        let mut files = HashMap::new();
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        for (name, content) in [
            ("Dockerfile", b"FROM scratch\n".to_vec()),
            ("a.txt", b"a\n".to_vec()),
            ("dir/b.bin", big),
            ("dir/sub/c", b"c".to_vec()),
            ("dir/sub/.hidden", Vec::new()),
            ("empty", Vec::new()),
        ] {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(&path, &content).expect("writing a tree file");
            files.insert(name.to_owned(), content);
        }
        std::fs::create_dir_all(root.join("emptydir")).expect("mkdir");
        std::os::unix::fs::symlink("dir", root.join("ln")).expect("symlink");
        std::os::unix::fs::symlink("../outside", root.join("escape")).expect("symlink");
        std::os::unix::fs::symlink("/etc/passwd", root.join("abs")).expect("symlink");
        std::fs::write(dir.path().join("outside"), OUTSIDE_MARKER).expect("writing outside");
        Tree {
            _dir: dir,
            root,
            files,
        }
    })
}

fn options(text: &[u8]) -> WalkOptions {
    let mut options = WalkOptions::default();
    for line in String::from_utf8_lossy(text).lines() {
        let mut chars = line.chars();
        match chars.next() {
            Some('+') => options.include_patterns.push(chars.as_str().to_owned()),
            Some('-') => options.exclude_patterns.push(chars.as_str().to_owned()),
            Some('>') => options.follow_paths.push(chars.as_str().to_owned()),
            _ => {}
        }
    }
    options
}

fn packets(mut bytes: &[u8]) -> Vec<Packet> {
    let mut out = Vec::new();
    while bytes.has_remaining() && out.len() < 256 {
        match Packet::decode_length_delimited(&mut bytes) {
            Ok(p) => out.push(p),
            Err(_) => break,
        }
    }
    out
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let (filters, framed) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let options = options(filters);
    let incoming = packets(framed);
    let requested: Vec<u32> = incoming
        .iter()
        .filter(|p| p.r#type == PacketType::PacketReq as i32)
        .map(|p| p.id)
        .collect();
    let tree = tree();

    let (tx, mut rx) = mpsc::channel(16);
    let stream = futures::stream::iter(incoming.into_iter().map(Ok));
    let (result, sent) = runtime().block_on(async {
        let collect = tokio::spawn(async move {
            let mut sent = Vec::new();
            while let Some(p) = rx.recv().await {
                sent.push(p);
            }
            sent
        });
        let result = tokio::time::timeout(
            Duration::from_secs(20),
            send(tree.root.clone(), options, stream, tx),
        )
        .await
        .expect("the transfer did not end after the daemon's stream ended");
        (result, collect.await.expect("collector task"))
    });
    let sent: Vec<Packet> = sent
        .into_iter()
        .map(|p| p.expect("the sender sends no Status"))
        .collect();

    let last = sent.last().map(|p| p.r#type);
    match &result {
        Ok(()) => assert_eq!(
            last,
            Some(PacketType::PacketFin as i32),
            "success must end with FIN"
        ),
        Err(e) => assert_eq!(
            last,
            Some(PacketType::PacketErr as i32),
            "failure ({e}) must end with ERR"
        ),
    }

    // Listing: ids are positions among STAT packets with a stat.
    let mut listed: Vec<String> = Vec::new();
    let mut current: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut finished: Vec<(u32, Vec<u8>)> = Vec::new();
    for p in &sent {
        match PacketType::try_from(p.r#type) {
            Ok(PacketType::PacketStat) => {
                if let Some(stat) = &p.stat {
                    let path = String::from_utf8_lossy(&stat.path).into_owned();
                    assert!(
                        !path.starts_with('/')
                            && !path.split('/').any(|c| c == ".." || c.is_empty()),
                        "listed path {path:?} is not a clean relative path"
                    );
                    listed.push(path);
                }
            }
            Ok(PacketType::PacketData) => {
                assert!(
                    requested.contains(&p.id),
                    "DATA for id {} that the daemon never requested",
                    p.id
                );
                assert!(
                    !p.data
                        .windows(OUTSIDE_MARKER.len())
                        .any(|w| w == OUTSIDE_MARKER),
                    "the sender sent a file from outside its root"
                );
                // An empty DATA ends one file's transfer.
                if p.data.is_empty() {
                    finished.push((p.id, current.remove(&p.id).unwrap_or_default()));
                } else {
                    current.entry(p.id).or_default().extend_from_slice(&p.data);
                }
            }
            _ => {}
        }
    }
    for (id, got) in finished {
        let path = listed
            .get(id as usize)
            .unwrap_or_else(|| panic!("DATA for id {id}, beyond the listing"));
        let expected = tree
            .files
            .get(path)
            .unwrap_or_else(|| panic!("DATA for {path:?}, not a regular file of the tree"));
        assert!(
            &got == expected,
            "the data sent for {path:?} is not its content ({} bytes, expected {})",
            got.len(),
            expected.len()
        );
    }
}
