//! Builds a Dockerfile directory with the library's BuildKit client and
//! prints the exporter response; also the upload benchmark.
//!
//! ```text
//! cargo run --example buildkit_build -- ADDRESS CONTEXT_DIR [KEY=VALUE frontend attrs...]
//! cargo run --example buildkit_build -- ADDRESS --bench MB FILES [BASE_IMAGE]
//! ```
//! `ADDRESS` is `unix://…`, `tcp://…` or `docker://…`. On a Docker Engine the
//! image goes to the Engine's store (`moby` exporter) and RUN uses
//! `force-network-mode=none` (test daemons run with `--bridge=none`). With
//! `--bench`, a context of FILES files totalling MB megabytes is generated in
//! a temporary directory, `COPY`'d by a one-line Dockerfile, and the wall time
//! and this process's peak RSS are printed.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use oci_build_resource::buildkit::{Address, Client, Exporter, SessionOptions, SolveRequest};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let address = Address::parse(args.first().ok_or("usage: ADDRESS CONTEXT_DIR")?, None)?;
    let client = Client::connect(&address).await?;
    let info = client.info().await?;
    eprintln!("daemon: {} ({:?})", info.version, info.kind);

    let mut attrs = BTreeMap::new();
    let (context, _tmp) = if args.get(1).map(String::as_str) == Some("--bench") {
        let mb: u64 = args.get(2).ok_or("--bench MB FILES")?.parse()?;
        let files: u64 = args.get(3).ok_or("--bench MB FILES")?.parse()?;
        let base = args.get(4).cloned().unwrap_or_else(|| "bb:latest".into());
        let dir = tempfile::tempdir()?;
        generate(dir.path(), mb, files, &base)?;
        (dir.path().to_owned(), Some(dir))
    } else {
        for kv in &args[2..] {
            let (k, v) = kv.split_once('=').ok_or("attributes are KEY=VALUE")?;
            attrs.insert(k.to_owned(), v.to_owned());
        }
        (
            args.get(1).ok_or("usage: ADDRESS CONTEXT_DIR")?.into(),
            None,
        )
    };
    let exporter = match info.kind {
        oci_build_resource::buildkit::DaemonKind::DockerEngine => {
            attrs
                .entry("force-network-mode".into())
                .or_insert_with(|| "none".into());
            Exporter {
                kind: "moby".into(),
                attrs: BTreeMap::from([("name".into(), "bk-example:latest".into())]),
                output: None,
            }
        }
        oci_build_resource::buildkit::DaemonKind::Buildkitd => Exporter {
            kind: "oci".into(),
            attrs: BTreeMap::new(),
            output: Some(std::env::temp_dir().join("bk-example.tar")),
        },
    };
    let request = SolveRequest {
        frontend: "dockerfile.v0".into(),
        frontend_attrs: attrs,
        exporters: vec![exporter],
        ..SolveRequest::default()
    };
    let session = SessionOptions {
        local_dirs: BTreeMap::from([
            ("context".into(), context.clone()),
            ("dockerfile".into(), context),
        ]),
        secrets: BTreeMap::from([(
            "mysecret".into(),
            oci_build_resource::buildkit::SecretSource::Text(
                oci_build_resource::buildkit::Secret::new("s3cr3t"),
            ),
        )]),
        ..SessionOptions::default()
    };
    let start = Instant::now();
    let outcome = client.solve(request, session).await;
    let elapsed = start.elapsed();
    match outcome {
        Ok(o) => {
            println!("{:#?}", o);
            eprintln!(
                "solve took {:.1}s, peak rss {} MB",
                elapsed.as_secs_f64(),
                peak_rss_mb()
            );
            Ok(())
        }
        Err(e) => {
            let mut text = e.to_string();
            let mut s = std::error::Error::source(&e);
            while let Some(x) = s {
                text.push_str(&format!(": {x}"));
                s = x.source();
            }
            eprintln!("error: {text}");
            std::process::exit(1)
        }
    }
}

fn generate(dir: &std::path::Path, mb: u64, files: u64, base: &str) -> std::io::Result<()> {
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {base}\nCOPY . /ctx/\nRUN du -sh /ctx\n"),
    )?;
    let per_file = mb * 1024 * 1024 / files.max(1);
    let mut state: u64 = 0x9e3779b97f4a7c15;
    for i in 0..files {
        let sub = dir.join(format!("d{:02}/e{:02}", i % 50, (i / 50) % 10));
        std::fs::create_dir_all(&sub)?;
        let mut f = std::io::BufWriter::new(std::fs::File::create(sub.join(format!("f{i}.bin")))?);
        let mut left = per_file;
        let mut buf = [0u8; 8192];
        while left > 0 {
            for chunk in buf.chunks_mut(8) {
                // xorshift: incompressible, cheap content.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
            }
            let n = left.min(buf.len() as u64) as usize;
            f.write_all(&buf[..n])?;
            left -= n as u64;
        }
    }
    Ok(())
}

fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb / 1024)
}
