use super::*;

fn step(name: &str, error: &str) -> buildkit::Error {
    buildkit::Error::BuildFailed {
        step: name.into(),
        error: error.into(),
        logs: Vec::new(),
    }
}

#[test]
fn the_concurrent_upload_race_is_transient() {
    // As BuildKit v0.32.2 reported it against Debian's docker-registry
    // (image push and cache export committing one layer at once).
    let seen = step(
        "exporting to image",
        "failed to push 127.0.0.1:43435/fleet-19548-295: errors:\nunknown: provided digest did not \
             match uploaded content\nunknown: blob unknown to registry - sha256:b13fef60880973743af215be42ba3efb0657367304863ab41092692aae3d0eed\n",
    );
    assert_eq!(
        push_failure(&seen),
        Some("the registry refused an upload's digest")
    );
    let cache = buildkit::Error::Solve(
            "error writing layer blob: failed commit on ref \"layer-sha256:fa40\": unexpected status from PUT \
             request to http://127.0.0.1:5000/v2/x/blobs/uploads/abc: 503 Service Unavailable"
                .into(),
        );
    assert_eq!(push_failure(&cache), Some("the registry answered 503"));
}

#[test]
fn build_steps_and_lasting_refusals_are_not() {
    // A RUN step's own download failing is the build's failure.
    let run = step(
        "[2/3] RUN curl -f https://example.invalid/x",
        "process \"/bin/sh -c curl\" did not complete successfully: 503 Service Unavailable",
    );
    assert_eq!(push_failure(&run), None);
    // Credentials and permissions do not mend themselves.
    let denied = step(
        "exporting to image",
        "failed to push r/x: unexpected status from HEAD request: 401 Unauthorized",
    );
    assert_eq!(push_failure(&denied), None);
    let forbidden = step(
        "exporting to image",
        "failed to push r/x: denied: requested access to the resource is denied",
    );
    assert_eq!(push_failure(&forbidden), None);
    assert_eq!(
        push_failure(&buildkit::Error::Solve(
            "failed to solve: dockerfile parse error".into()
        )),
        None
    );
}
