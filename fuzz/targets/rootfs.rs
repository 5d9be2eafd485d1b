//! Layers into the rootfs unpacker (src/image/rootfs.rs).
//!
//! Input: up to four layer blobs (tar, gzip or zstd: the unpacker sniffs)
//! separated by [`LAYER_SEP`], applied in order to one root, then
//! `finish()`. Whatever the layers hold, nothing may appear or change
//! outside the root: the sandbox's `outside/` (reachable by `../outside`
//! from the root) stays exactly as it was, nothing is created next to the
//! root, and the host canary under /tmp is never written.

use oci_build_resource::image::rootfs::{UnpackOptions, Unpacker};

use super::{Sandbox, make_removable, split_parts};

/// Separates layers in the input.
pub const LAYER_SEP: &[u8] = b"--layer--";

/// Runs one input.
pub fn run(data: &[u8]) {
    let sandbox = Sandbox::new("root");
    let root = sandbox.work.clone();
    let mut unpacker =
        Unpacker::new(&root, UnpackOptions::for_current_user()).expect("creating the root");
    let mut ok = true;
    for (i, layer) in split_parts(data, LAYER_SEP, 4).into_iter().enumerate() {
        if unpacker.unpack_layer(&format!("layer{i}"), layer).is_err() {
            ok = false;
            break;
        }
    }
    if ok {
        // Its errors (a directory removed behind its back) are fine; what
        // it must not do is touch anything outside the root.
        let _ = unpacker.finish();
    } else {
        drop(unpacker);
    }
    sandbox.assert_contained();
    make_removable(&root);
}
