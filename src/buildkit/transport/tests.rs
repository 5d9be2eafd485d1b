use super::*;

#[test]
fn parses_addresses() {
    assert_eq!(
        Address::parse("unix:///run/buildkit/buildkitd.sock", None).expect("unix"),
        Address::Unix("/run/buildkit/buildkitd.sock".into())
    );
    assert_eq!(
        Address::parse("docker:///var/run/docker.sock", None).expect("docker"),
        Address::DockerEngine("/var/run/docker.sock".into())
    );
    assert_eq!(
        Address::parse("docker://", None).expect("docker default"),
        Address::DockerEngine(DEFAULT_DOCKER_SOCKET.into())
    );
    let ssh =
        Address::parse("ssh://b@build-1:2222/run/buildkit/buildkitd.sock", None).expect("ssh");
    assert_eq!(
        ssh.to_string(),
        "ssh://b@build-1:2222/run/buildkit/buildkitd.sock"
    );
    assert!(ssh.is_remote_host() && ssh.docker_socket().is_none());
    assert_eq!(
        Address::parse("tcp://[::1]:1234", None).expect("v6"),
        Address::Tcp {
            host: "::1".into(),
            port: 1234,
            tls: None
        }
    );
    let tls = TlsConfig {
        server_name: Some("bk".into()),
        ..TlsConfig::default()
    };
    assert_eq!(
        Address::parse("tcp://buildkit:1234", Some(tls.clone())).expect("tcp"),
        Address::Tcp {
            host: "buildkit".into(),
            port: 1234,
            tls: Some(tls)
        }
    );
}

#[test]
fn rejects_bad_addresses() {
    for bad in [
        "",
        "/run/x.sock",
        "tcp://host",
        "tcp://:12",
        "tcp://h:99999",
        "ssh://",
        "ssh://u:pw@x",
        "unix://",
    ] {
        assert!(Address::parse(bad, None).is_err(), "{bad}");
    }
    let tls = TlsConfig::default();
    assert!(Address::parse("unix:///x", Some(tls)).is_err());
}

#[test]
fn tls_debug_hides_key() {
    let tls = TlsConfig {
        key: Some(Secret::new("PRIVATE KEY")),
        ..TlsConfig::default()
    };
    assert!(!format!("{tls:?}").contains("PRIVATE"));
}

/// A CA, a server certificate for `buildkitd.test` and a client
/// certificate, made by openssl; returns (ca, server cert, server key,
/// client cert, client key) as PEM.
fn certificates(dir: &Path) -> [String; 5] {
    use test_support::certs;
    let ca = certs::ca(dir, "ca");
    let server = certs::leaf(
        dir,
        "server",
        &ca,
        "subjectAltName=DNS:buildkitd.test\nextendedKeyUsage=serverAuth\n",
    );
    let client = certs::leaf(dir, "client", &ca, "extendedKeyUsage=clientAuth\n");
    [
        ca.cert_pem(),
        server.cert_pem(),
        server.key_pem(),
        client.cert_pem(),
        client.key_pem(),
    ]
}

/// TCP with mutual TLS against a real TLS gRPC server (tonic serving the
/// standard health service): the right CA, client identity and server
/// name connect; a missing client certificate or a wrong server name
/// do not.
#[tokio::test]
#[cfg_attr(not(have_openssl), ignore = "needs openssl (apt-get install openssl)")]
async fn tcp_with_mutual_tls() {
    use tonic::transport::{Server, ServerTlsConfig};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    crate::tls::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let [ca, server_crt, server_key, client_crt, client_key] = certificates(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let server = Server::builder()
        .tls_config(
            ServerTlsConfig::new()
                .identity(Identity::from_pem(&server_crt, &server_key))
                .client_ca_root(Certificate::from_pem(&ca)),
        )
        .expect("server tls")
        .add_service(health)
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    let server = tokio::spawn(server);

    let check = |tls: TlsConfig| async move {
        let address = Address::Tcp {
            host: "127.0.0.1".into(),
            port,
            tls: Some(tls),
        };
        let channel = connect(&address).await.map_err(|e| e.to_string())?;
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let good = TlsConfig {
        ca_cert: Some(ca.clone()),
        cert: Some(client_crt.clone()),
        key: Some(Secret::new(client_key.clone())),
        server_name: Some("buildkitd.test".into()),
    };
    check(good.clone())
        .await
        .expect("mutual tls with the right identity");
    let anonymous = TlsConfig {
        cert: None,
        key: None,
        ..good.clone()
    };
    assert!(
        check(anonymous).await.is_err(),
        "the server requires a client certificate"
    );
    let wrong_name = TlsConfig {
        server_name: Some("other.test".into()),
        ..good.clone()
    };
    assert!(
        check(wrong_name).await.is_err(),
        "the server name is verified"
    );
    let half = TlsConfig { key: None, ..good };
    let err = check(half).await.expect_err("cert without key");
    assert!(err.contains("both a client certificate and a key"), "{err}");
    server.abort();
}
