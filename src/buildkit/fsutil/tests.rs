use super::*;
use std::os::unix::fs::PermissionsExt;

fn listing(root: &Path, options: &WalkOptions) -> Vec<(String, u32, bool)> {
    let mut out = Vec::new();
    list(root, options, &mut |stat, file| {
        let path = String::from_utf8(stat.path.to_vec()).expect("a UTF-8 name in these tests");
        out.push((path, stat.mode, file.is_some()));
        Ok(())
    })
    .expect("listing");
    out
}

fn paths(root: &Path, options: &WalkOptions) -> Vec<String> {
    listing(root, options)
        .into_iter()
        .map(|(p, _, _)| p)
        .collect()
}

fn tree(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for f in files {
        let p = dir.path().join(f);
        if let Some(stripped) = f.strip_suffix('/') {
            std::fs::create_dir_all(dir.path().join(stripped)).expect("mkdir");
        } else {
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, f.as_bytes()).expect("write");
        }
    }
    dir
}

#[test]
fn order_is_per_directory_bytewise_preorder() {
    let dir = tree(&["a/z", "a-b", "a.txt", "B", "empty/"]);
    assert_eq!(
        paths(dir.path(), &WalkOptions::default()),
        ["B", "a", "a/z", "a-b", "a.txt", "empty"]
    );
}

#[test]
fn modes_use_go_file_mode_bits() {
    let dir = tree(&["d/f"]);
    std::fs::set_permissions(
        dir.path().join("d/f"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .expect("chmod");
    std::os::unix::fs::symlink("d/f", dir.path().join("link")).expect("symlink");
    let l = listing(dir.path(), &WalkOptions::default());
    let by: HashMap<_, _> = l.iter().map(|(p, m, f)| (p.as_str(), (*m, *f))).collect();
    assert_eq!(by["d"].0 & MODE_DIR, MODE_DIR);
    assert_eq!(by["d/f"], (0o755 | MODE_SETUID, true));
    assert_eq!(by["link"], (0o777 | MODE_SYMLINK, false));
}

#[test]
fn dockerignore_style_excludes_with_exception() {
    let dir = tree(&[
        "ignored.txt",
        "keep.txt",
        "sub/a.log",
        "sub/keep.log",
        "x/y.log",
        "Dockerfile",
    ]);
    let options = WalkOptions {
        exclude_patterns: vec![
            "ignored.txt".into(),
            "**/*.log".into(),
            "!sub/keep.log".into(),
        ],
        ..WalkOptions::default()
    };
    assert_eq!(
        paths(dir.path(), &options),
        ["Dockerfile", "keep.txt", "sub", "sub/keep.log", "x"]
    );
}

#[test]
fn excluded_directory_is_sent_lazily_for_an_exception() {
    let dir = tree(&["sub/drop", "sub/keep.log", "top"]);
    let options = WalkOptions {
        exclude_patterns: vec!["sub".into(), "!sub/keep.log".into()],
        ..WalkOptions::default()
    };
    assert_eq!(paths(dir.path(), &options), ["sub", "sub/keep.log", "top"]);
}

#[test]
fn follow_paths_include_symlink_targets() {
    let dir = tree(&["real/Dockerfile.prod", "other"]);
    std::os::unix::fs::symlink("real/Dockerfile.prod", dir.path().join("Dockerfile"))
        .expect("symlink");
    let options = WalkOptions {
        follow_paths: vec!["Dockerfile".into(), "Dockerfile.dockerignore".into()],
        ..WalkOptions::default()
    };
    assert_eq!(
        paths(dir.path(), &options),
        ["Dockerfile", "real", "real/Dockerfile.prod"]
    );
}

#[test]
fn hard_links_point_at_the_first_path() {
    let dir = tree(&["a"]);
    std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).expect("link");
    let mut stats = Vec::new();
    list(dir.path(), &WalkOptions::default(), &mut |s, f| {
        stats.push((s, f.is_some()));
        Ok(())
    })
    .expect("list");
    assert_eq!(stats[1].0.linkname, "a".as_bytes());
    assert_eq!(stats[1].0.size, 0);
    assert!(stats[0].1 && !stats[1].1);
}

#[test]
fn unicode_and_long_paths() {
    let long: String = (0..30).map(|i| format!("dir{i:02}/")).collect();
    let dir = tree(&["été/naïve.txt", &format!("{long}deep.txt")]);
    let got = paths(dir.path(), &WalkOptions::default());
    assert!(got.contains(&"été/naïve.txt".to_owned()));
    assert!(got.contains(&format!("{long}deep.txt")));
    assert_eq!(got.len(), 2 + 30 + 1);
}

#[test]
fn end_of_listing_is_a_stat_packet_without_stat() {
    use prost::Message;
    let end = packet_of(PacketType::PacketStat);
    assert!(end.encode_to_vec().is_empty());
    let with_empty_stat = Packet {
        stat: Some(Stat::default()),
        ..end
    };
    assert_ne!(with_empty_stat.encode_to_vec(), Vec::<u8>::new());
}

#[tokio::test]
async fn serves_requests_and_detects_size_changes() {
    let dir = tree(&["big", "small"]);
    std::fs::write(dir.path().join("big"), vec![7u8; 200_000]).expect("write");
    let (in_tx, in_rx) = mpsc::channel(8);
    let (out_tx, mut out_rx) = mpsc::channel(4);
    let task = tokio::spawn(send(
        dir.path().to_owned(),
        WalkOptions::default(),
        tokio_stream::wrappers::ReceiverStream::new(in_rx),
        out_tx,
    ));
    // Listing: big (0), small (1), end.
    let mut stats = Vec::new();
    while let Some(Ok(p)) = out_rx.recv().await {
        match p.stat {
            Some(s) => stats.push(s.path),
            None => break,
        }
    }
    assert_eq!(stats, ["big", "small"]);
    let req = |id| {
        Ok(Packet {
            r#type: PacketType::PacketReq as i32,
            id,
            ..Packet::default()
        })
    };
    in_tx.send(req(0)).await.expect("send");
    let mut total = 0;
    loop {
        let p = out_rx.recv().await.expect("packet").expect("ok");
        assert_eq!((p.r#type, p.id), (PacketType::PacketData as i32, 0));
        if p.data.is_empty() {
            break;
        }
        assert!(p.data.len() <= CHUNK_SIZE);
        total += p.data.len();
    }
    assert_eq!(total, 200_000);
    // Grow "small" after listing: the request must fail clearly.
    std::fs::write(dir.path().join("small"), b"now much longer than before").expect("write");
    in_tx.send(req(1)).await.expect("send");
    let err = task.await.expect("join").expect_err("size change");
    assert!(
        err.to_string().contains("changed size during upload"),
        "{err}"
    );
    let last = std::iter::from_fn(|| out_rx.try_recv().ok())
        .last()
        .expect("err packet");
    let last = last.expect("ok");
    assert_eq!(last.r#type, PacketType::PacketErr as i32);
}

#[tokio::test]
async fn fin_is_answered() {
    let dir = tree(&["f"]);
    let (in_tx, in_rx) = mpsc::channel(8);
    let (out_tx, mut out_rx) = mpsc::channel(16);
    let task = tokio::spawn(send(
        dir.path().to_owned(),
        WalkOptions::default(),
        tokio_stream::wrappers::ReceiverStream::new(in_rx),
        out_tx,
    ));
    in_tx
        .send(Ok(packet_of(PacketType::PacketFin)))
        .await
        .expect("send");
    task.await.expect("join").expect("ok");
    let kinds: Vec<i32> = std::iter::from_fn(|| out_rx.try_recv().ok())
        .map(|p| p.expect("ok").r#type)
        .collect();
    assert_eq!(kinds.last(), Some(&(PacketType::PacketFin as i32)));
}

/// A failure while the listing still runs: the listing stops, and ERR
/// is the last packet (before, STATs could follow it). Found by the
/// fsutil fuzz target (fuzz/corpus/fsutil/unknown-id).
#[tokio::test]
async fn err_is_the_last_packet_even_mid_listing() {
    let names: Vec<String> = (0..400).map(|i| format!("d{}/f{i}", i % 7)).collect();
    let dir = tree(&names.iter().map(String::as_str).collect::<Vec<_>>());
    // Room for one packet, drained by a task of its own: the listing
    // can only advance as the receiver reads, so it is still running
    // when the bad request fails the transfer.
    let (out_tx, mut out_rx) = mpsc::channel::<Result<Packet, Status>>(1);
    let drain = tokio::spawn(async move {
        let mut kinds = Vec::new();
        while let Some(p) = out_rx.recv().await {
            kinds.push(p.expect("ok").r#type);
        }
        kinds
    });
    let request = Packet {
        r#type: PacketType::PacketReq as i32,
        id: 4_000_000_000,
        ..Packet::default()
    };
    let err = send(
        dir.path().to_owned(),
        WalkOptions::default(),
        futures::stream::iter([Ok(request)]),
        out_tx,
    )
    .await
    .expect_err("unknown id");
    assert!(matches!(err, Error::UnknownId(4_000_000_000)), "{err}");
    // Ends when the listing's sender is gone too.
    let kinds = drain.await.expect("drain task");
    assert_eq!(kinds.last(), Some(&(PacketType::PacketErr as i32)));
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == PacketType::PacketErr as i32)
            .count(),
        1
    );
}

/// A context 1,800 directories deep is listed on a thread with the blocking
/// pool's 2 MiB stack (a recursive walk overflowed it).
#[test]
fn a_deeply_nested_context_is_listed_without_recursion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let deep: PathBuf = std::iter::repeat_n("d", 1800).collect();
    std::fs::create_dir_all(dir.path().join(&deep)).expect("mkdir");
    std::fs::write(dir.path().join(&deep).join("f"), b"x").expect("write");
    let root = dir.path().to_path_buf();
    let count = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || paths(&root, &WalkOptions::default()).len())
        .expect("thread")
        .join()
        .expect("the walk did not overflow");
    assert_eq!(count, 1801);
}

/// Deeper than PATH_MAX: one clean error naming the path.
#[test]
fn a_context_deeper_than_path_max_fails_cleanly() {
    use std::os::fd::{AsRawFd, OwnedFd};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut fd: OwnedFd = std::fs::File::open(dir.path()).expect("open").into();
    // mkdirat/openat relative to the last directory: no path gets long.
    for _ in 0..1100 {
        nix::sys::stat::mkdirat(Some(fd.as_raw_fd()), "dddd", nix::sys::stat::Mode::S_IRWXU)
            .expect("mkdirat");
        let next = nix::fcntl::openat(
            Some(fd.as_raw_fd()),
            "dddd",
            nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY,
            nix::sys::stat::Mode::empty(),
        )
        .expect("openat");
        // SAFETY: openat returned a new descriptor that nothing else owns.
        fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(next) };
    }
    let err = list(dir.path(), &WalkOptions::default(), &mut |_, _| Ok(())).unwrap_err();
    assert!(matches!(err, Error::PathTooLong(_)), "{err}");
    assert!(
        err.to_string()
            .ends_with("the build context is nested too deeply"),
        "{err}"
    );
    // Remove it the same way: remove_dir_all cannot reach that deep by path.
    drop(fd);
    let _ = std::process::Command::new("rm")
        .arg("-rf")
        .arg(dir.path())
        .status();
}

/// A name that is not UTF-8 is sent as its own bytes (as Go's fsutil
/// sends it), a symlink's target too; the filters see it with the bad byte
/// replaced, so an excluded one is skipped.
#[test]
fn a_non_utf8_name_is_sent_as_its_bytes() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tree(&["Dockerfile"]);
    let bad = std::ffi::OsStr::from_bytes(b"bad\xff");
    std::fs::write(dir.path().join(bad), b"x").expect("write");
    std::fs::create_dir_all(dir.path().join(bad).with_extension("d")).expect("mkdir");
    std::fs::write(dir.path().join(bad).with_extension("d").join(bad), b"y").expect("write");
    std::os::unix::fs::symlink(bad, dir.path().join("link")).expect("symlink");
    let excluded = WalkOptions {
        exclude_patterns: vec!["bad*".into()],
        ..WalkOptions::default()
    };
    assert_eq!(paths(dir.path(), &excluded), ["Dockerfile", "link"]);
    let mut sent = Vec::new();
    list(dir.path(), &WalkOptions::default(), &mut |stat, _| {
        sent.push((stat.path.to_vec(), stat.linkname.to_vec()));
        Ok(())
    })
    .expect("listing");
    let names: Vec<&[u8]> = sent.iter().map(|(p, _)| p.as_slice()).collect();
    assert_eq!(
        names,
        [
            &b"Dockerfile"[..],
            b"bad\xff",
            b"bad\xff.d",
            b"bad\xff.d/bad\xff",
            b"link"
        ]
    );
    assert_eq!(sent[4].1, b"bad\xff");
}
