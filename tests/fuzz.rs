//! The fuzz smoke pass: every fuzz target (fuzz/targets/) over its corpus
//! (fuzz/corpus/<target>/), then over a bounded number of inputs mutated
//! from it, on stable, inside `cargo test`. Long coverage-guided campaigns
//! run the same targets under `cargo +nightly fuzz run` (CONTRIBUTING.md,
//! "Fuzzing"). The mutations come from a fixed seed; `FUZZ_SMOKE_SEED`
//! picks another;
//! `FUZZ_SMOKE_RUNS` changes how many mutated inputs each target gets.

#[path = "../fuzz/targets/mod.rs"]
mod targets;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The mutation seed of a run that sets no `FUZZ_SMOKE_SEED`.
const DEFAULT_SEED: u64 = 0x6f63_692d_6275_696c;

/// Mutated inputs per target, unless `FUZZ_SMOKE_RUNS` says otherwise.
const DEFAULT_RUNS: usize = 300;
/// Each target stops mutating after this long, whatever the count: the
/// smoke pass must stay a few seconds per target on a loaded machine.
const TIME_BOX: Duration = Duration::from_secs(6);

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| {
            let path = e.expect("listing the corpus").path();
            let bytes = std::fs::read(&path).expect("reading a corpus file");
            (path, bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "{} holds no inputs", dir.display());
    out
}

/// One libFuzzer-style mutation: flip, insert, delete, duplicate or splice
/// bytes, or overwrite with an "interesting" value.
fn mutate(rng: &mut StdRng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        let len = out.len();
        match rng.gen_range(0..7) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                out[i] ^= 1 << rng.gen_range(0..8);
            }
            1 => {
                let i = rng.gen_range(0..=len);
                out.insert(i, rng.r#gen());
            }
            2 if len > 0 => {
                let i = rng.gen_range(0..len);
                let n = rng.gen_range(1..=(len - i).min(64));
                out.drain(i..i + n);
            }
            3 if len > 0 => {
                let i = rng.gen_range(0..len);
                let n = rng.gen_range(1..=(len - i).min(64));
                let chunk = out[i..i + n].to_vec();
                let at = rng.gen_range(0..=len);
                out.splice(at..at, chunk);
            }
            4 if !other.is_empty() => {
                let i = rng.gen_range(0..other.len());
                let n = rng.gen_range(1..=(other.len() - i).min(256));
                let at = rng.gen_range(0..=len);
                out.splice(at..at, other[i..i + n].iter().copied());
            }
            5 if len > 0 => {
                let interesting: [&[u8]; 8] = [
                    b"\0",
                    b"\xff",
                    b"..",
                    b"/",
                    b"\"",
                    b"{",
                    b"\x7f\xff\xff\xff",
                    b"-1",
                ];
                let v = interesting[rng.gen_range(0..interesting.len())];
                let i = rng.gen_range(0..len);
                let end = (i + v.len()).min(len);
                out.splice(i..end, v.iter().copied());
            }
            _ => out.truncate(rng.gen_range(0..=len)),
        }
    }
    out
}

fn smoke(target: &str) {
    let run = targets::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, run)| *run)
        .expect("a known target");
    let inputs = corpus(target);
    for (path, bytes) in &inputs {
        eprintln!("{target}: corpus {}", path.display());
        run(bytes);
    }
    // A fixed seed by default: the suite's result must not depend on the day;
    // `FUZZ_SMOKE_SEED` explores other mutations.
    let seed: u64 = std::env::var("FUZZ_SMOKE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let runs: usize = std::env::var("FUZZ_SMOKE_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_RUNS);
    eprintln!("{target}: {runs} mutated inputs, FUZZ_SMOKE_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let start = Instant::now();
    for i in 0..runs {
        if start.elapsed() > TIME_BOX {
            eprintln!("{target}: time box reached after {i} mutated inputs");
            break;
        }
        let base = &inputs[rng.gen_range(0..inputs.len())].1;
        let other = &inputs[rng.gen_range(0..inputs.len())].1;
        let input = mutate(&mut rng, base, other);
        let outcome = std::panic::catch_unwind(|| run(&input));
        if let Err(panic) = outcome {
            let file = std::env::temp_dir().join(format!("fuzz-smoke-{target}-{seed}-{i}"));
            let _ = std::fs::write(&file, &input);
            eprintln!(
                "{target}: mutated input {i} (FUZZ_SMOKE_SEED={seed}) failed; saved to {}",
                file.display()
            );
            std::panic::resume_unwind(panic);
        }
    }
    targets::remove_fixture(target);
}

#[test]
fn smoke_request() {
    smoke("request");
}

#[test]
fn smoke_image() {
    smoke("image");
}

#[test]
fn smoke_rootfs() {
    smoke("rootfs");
}

#[test]
fn smoke_kv_files() {
    smoke("kv_files");
}

#[test]
fn smoke_fsutil() {
    smoke("fsutil");
}

/// Every target has a corpus directory and every corpus directory a target.
#[test]
fn every_target_has_a_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut dirs: Vec<String> = std::fs::read_dir(&dir)
        .expect("reading fuzz/corpus")
        .map(|e| {
            e.expect("listing")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    dirs.sort();
    let mut names: Vec<String> = targets::TARGETS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    names.sort();
    assert_eq!(dirs, names);
}
