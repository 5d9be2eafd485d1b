//! `in`: placeholder until the get issue lands (owned by the `image` helper).

use crate::concourse::{InRequest, InResponse};

/// Fetches the version into `dest`.
pub async fn run(req: InRequest, dest: &std::path::Path) -> crate::Result<InResponse> {
    let _ = (req, dest);
    Err(crate::Error::NotImplemented("in"))
}
