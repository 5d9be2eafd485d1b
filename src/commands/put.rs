//! `out`: placeholder until the put issue lands (owned by the `put` helper).

use crate::concourse::{OutRequest, OutResponse};

/// Builds and pushes from `src_dir`.
pub async fn run(req: OutRequest, src_dir: &std::path::Path) -> crate::Result<OutResponse> {
    let _ = (req, src_dir);
    Err(crate::Error::NotImplemented("out"))
}
