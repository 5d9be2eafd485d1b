use super::*;

#[derive(Debug, thiserror::Error)]
enum Outer {
    #[error("outer")]
    Wrapped(#[source] std::io::Error),
    #[error(transparent)]
    Transparent(std::io::Error),
}

#[test]
fn chain_joins_sources_and_skips_repeats() {
    let io = || std::io::Error::other("disk on fire");
    assert_eq!(error_chain(&Outer::Wrapped(io())), "outer: disk on fire");
    assert_eq!(error_chain(&Outer::Transparent(io())), "disk on fire");
}
