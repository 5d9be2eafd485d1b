//! Throwaway X.509 certificates made by `openssl`: a CA, and leaf
//! certificates it signs (servers, clients). EC P-256 keys, valid two days.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{require_tool, run_tool};

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key (unencrypted).
    pub key: PathBuf,
}

impl CertFiles {
    /// The certificate as PEM text.
    pub fn cert_pem(&self) -> String {
        std::fs::read_to_string(&self.cert).expect("reading a test certificate")
    }

    /// The private key as PEM text.
    pub fn key_pem(&self) -> String {
        std::fs::read_to_string(&self.key).expect("reading a test key")
    }
}

const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// A self-signed CA: `<dir>/<name>.crt` and `<dir>/<name>.key`.
pub fn ca(dir: &Path, name: &str) -> CertFiles {
    let files = files(dir, name);
    run_tool(
        Command::new(require_tool("openssl", "openssl"))
            .args(["req", "-x509"])
            .args(EC_KEY)
            .arg("-keyout")
            .arg(&files.key)
            .arg("-out")
            .arg(&files.cert)
            .args(["-days", "2", "-subj"])
            .arg(format!("/CN=oci-build-resource test {name}")),
    );
    files
}

/// A leaf certificate `<dir>/<name>.crt` (key `<name>.key`) signed by
/// `ca`. `ext` holds extension lines such as
/// `extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n`; it is not
/// a CA and may sign (`basicConstraints`, `keyUsage`).
pub fn leaf(dir: &Path, name: &str, ca: &CertFiles, ext: &str) -> CertFiles {
    let openssl = require_tool("openssl", "openssl");
    let files = files(dir, name);
    let csr = dir.join(format!("{name}.csr"));
    let ext_file = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext_file,
        format!("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n{ext}"),
    )
    .expect("writing openssl extensions");
    run_tool(
        Command::new(&openssl)
            .arg("req")
            .args(EC_KEY)
            .arg("-keyout")
            .arg(&files.key)
            .arg("-out")
            .arg(&csr)
            .arg("-subj")
            .arg(format!("/CN=oci-build-resource test {name}")),
    );
    run_tool(
        Command::new(&openssl)
            .args(["x509", "-req", "-days", "2", "-set_serial"])
            .arg(rand::random::<u32>().to_string())
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&ca.cert)
            .arg("-CAkey")
            .arg(&ca.key)
            .arg("-extfile")
            .arg(&ext_file)
            .arg("-out")
            .arg(&files.cert),
    );
    files
}

fn files(dir: &Path, name: &str) -> CertFiles {
    std::fs::create_dir_all(dir).expect("creating a certificate dir");
    CertFiles {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    }
}
