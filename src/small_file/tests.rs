use super::*;

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let err = read(&fifo, 1 << 20).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{} is a FIFO, not a regular file", fifo.display())
    );
}

#[test]
fn directories_devices_and_large_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = read(dir.path(), 1 << 20).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotRegular {
                kind: "a directory",
                ..
            }
        ),
        "{err}"
    );
    let err = read(Path::new("/dev/zero"), 1 << 20).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotRegular {
                kind: "a device",
                ..
            }
        ),
        "{err}"
    );
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; (1 << 20) + 1]).unwrap();
    let err = read(&big, 1 << 20).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} is larger than 1 MiB; expected a small text file",
            big.display()
        )
    );
    let small = dir.path().join("small");
    std::fs::write(&small, "v1.2.3\n").unwrap();
    assert_eq!(read_text(&small, 1 << 20).unwrap(), "v1.2.3\n");
    std::fs::write(&small, vec![b'x'; 500 << 10]).unwrap();
    assert_eq!(read(&small, 500 << 10).unwrap().len(), 500 << 10);
}
