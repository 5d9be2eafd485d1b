use super::*;

fn status(code: u16) -> super::super::Error {
    super::super::Error::Status {
        request: "GET http://r/v2/x/manifests/y".into(),
        status: reqwest::StatusCode::from_u16(code).unwrap(),
        codes: vec![],
        body: String::new(),
        retry_after: None,
    }
}

#[test]
fn transient_classification_sees_through_wrappers() {
    assert!(Transient::is_transient(&status(429)));
    assert!(Transient::is_transient(&status(503)));
    assert!(!Transient::is_transient(&status(404)));
}

/// Both forms of `Retry-After`: delay-seconds and an HTTP date.
#[test]
fn retry_after_forms() {
    assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
        Some(Duration::ZERO)
    );
    let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
    let d = parse_retry_after(&later).unwrap();
    assert!(
        d > Duration::from_secs(25) && d <= Duration::from_secs(30),
        "{d:?}"
    );
    assert_eq!(parse_retry_after("soon"), None);
}

/// Runs only in the child process spawned by `test_env_shortens_backoff`.
#[test]
#[ignore = "spawned by test_env_shortens_backoff with TEST=true"]
fn env_probe() {
    assert_eq!(initial_interval(), Duration::from_millis(5));
}

/// `TEST=true` (what registry-image's suite sets) shortens the first
/// interval; checked in a child process so that no test thread mutates
/// the environment.
#[test]
fn test_env_shortens_backoff() {
    let exe = std::env::current_exe().unwrap();
    let run = |test_env: Option<&str>| {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["--ignored", "--exact", "registry::retry::tests::env_probe"]);
        cmd.env_remove("TEST");
        if let Some(v) = test_env {
            cmd.env("TEST", v);
        }
        cmd.output().unwrap().status.success()
    };
    assert!(run(Some("true")));
    assert!(!run(None), "without TEST=true the interval is 5 s");
}
