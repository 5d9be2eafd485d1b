use super::*;

#[test]
fn parses_targets() {
    let t = SshTarget::parse("builder@build-1.example:2222").expect("engine");
    assert_eq!(t.user.as_deref(), Some("builder"));
    assert_eq!(t.host, "build-1.example");
    assert_eq!(t.port, Some(2222));
    assert!(t.is_engine());
    assert_eq!(t.remote_command(), "docker system dial-stdio");
    assert_eq!(t.to_string(), "ssh://builder@build-1.example:2222");

    let t = SshTarget::parse("u@[::1]:22/run/buildkit/buildkitd.sock").expect("buildkitd");
    assert_eq!(t.host, "::1");
    assert_eq!(t.port, Some(22));
    assert!(!t.is_engine());
    assert_eq!(
        t.remote_command(),
        "buildctl --addr 'unix:///run/buildkit/buildkitd.sock' dial-stdio"
    );
    assert_eq!(
        t.to_string(),
        "ssh://u@[::1]:22/run/buildkit/buildkitd.sock"
    );

    let t = SshTarget::parse("host/").expect("bare host");
    assert_eq!((t.user, t.port, t.socket), (None, None, None));

    for bad in [
        "",
        "@host",
        "u@",
        "u:pw@host",
        "-oProxyCommand=x",
        "u@host:port",
        "u@host:0",
        "[::1",
        "[::1]x",
        "host name",
    ] {
        assert!(SshTarget::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn ssh_errors_are_summarized() {
    let changed = "@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@@@@\n\
            IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n\
            The fingerprint for the ED25519 key sent by the remote host is\n\
            SHA256:ZvC7K6KIDAJ0/hRk+9NZxLomVx77IdueWCKCdISPODQ.\n\
            Add correct host key in /tmp/oci-build-ssh-x/known_hosts to get rid of this message.\n\
            Offending ED25519 key in /tmp/oci-build-ssh-x/known_hosts:1\n  remove with:\n\
            \x20 ssh-keygen -f \"/tmp/oci-build-ssh-x/known_hosts\" -R \"[h]:22\"\n\
            Host key for [h]:22 has changed and you have requested strict checking.\n\
            Host key verification failed.";
    assert_eq!(
        summarize(changed, "/tmp/oci-build-ssh-x"),
        "Host key for [h]:22 has changed and you have requested strict checking. \
             Host key verification failed. (the host sent the key \
             SHA256:ZvC7K6KIDAJ0/hRk+9NZxLomVx77IdueWCKCdISPODQ)"
    );
    assert_eq!(
        summarize("u@h: Permission denied (publickey).\n", "/d"),
        "u@h: Permission denied (publickey)."
    );
}

#[test]
fn socket_paths_are_quoted_for_the_remote_shell() {
    let t = SshTarget::parse("h/tmp/it's; rm -rf x.sock").expect("odd path");
    assert_eq!(
        t.remote_command(),
        r"buildctl --addr 'unix:///tmp/it'\''s; rm -rf x.sock' dial-stdio"
    );
}

#[test]
fn ssh_fails_closed_and_reads_no_config() {
    let t = SshTarget::parse("u@h:2200").expect("target");
    let args: Vec<String> = t
        .ssh_args(Path::new("/d"))
        .into_iter()
        .map(|a| a.into_string().expect("utf-8"))
        .collect();
    let joined = args.join(" ");
    for needed in [
        "-F /dev/null",
        "-o BatchMode=yes",
        "-o StrictHostKeyChecking=yes",
        "-o GlobalKnownHostsFile=/dev/null",
        "-o UserKnownHostsFile=/d/known_hosts",
        "-o IdentitiesOnly=yes",
        "-o IdentityAgent=none",
        "-o IdentityFile=/d/id",
        "-p 2200 -l u -- h docker system dial-stdio",
    ] {
        assert!(joined.contains(needed), "{needed} missing from {joined}");
    }
}

#[tokio::test]
async fn credentials_are_private_and_removed() {
    let t = SshTarget::parse("u@127.0.0.1:1").expect("target");
    let credentials = SshCredentials {
        private_key: Secret::new("KEY"),
        known_hosts: "[127.0.0.1]:1 ssh-ed25519 AAAA".into(),
    };
    let tunnel = SshTunnel::open(&t, &credentials).expect("open");
    let Address::Ssh(SshTarget {
        tunnel: Some(socket),
        ..
    }) = tunnel.address().clone()
    else {
        panic!("no tunnel socket");
    };
    let dir = socket.parent().expect("dir").to_path_buf();
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("id")), 0o600);
    assert_eq!(mode(&dir.join("known_hosts")), 0o600);
    assert_eq!(
        std::fs::read_to_string(dir.join("id")).expect("key"),
        "KEY\n"
    );
    drop(tunnel);
    assert!(!dir.exists(), "the key's dir is removed with the tunnel");
}

#[test]
fn empty_credentials_are_refused() {
    let t = SshTarget::parse("u@h").expect("target");
    let no_hosts = SshCredentials {
        private_key: Secret::new("KEY"),
        known_hosts: " \n".into(),
    };
    let err = SshTunnel::open(&t, &no_hosts)
        .err()
        .expect("no known_hosts");
    assert!(err.to_string().contains("known_hosts is empty"), "{err}");
    let no_key = SshCredentials {
        private_key: Secret::new(""),
        known_hosts: "h ssh-ed25519 AAAA".into(),
    };
    let err = SshTunnel::open(&t, &no_key).err().expect("no key");
    assert!(err.to_string().contains("private_key is empty"), "{err}");
}
