//! An in-process ssh-agent for private key files, so `ssh` sources can be a
//! key instead of a running agent. It speaks the agent protocol
//! (draft-miller-ssh-agent: `REQUEST_IDENTITIES`, `SIGN_REQUEST`) over the
//! `ForwardAgent` stream and signs with rustls' `ring` provider, already in
//! the build: Ed25519, RSA (`rsa-sha2-256`/`-512`; SHA-1 `ssh-rsa`
//! signatures are refused) and ECDSA P-256/P-384.
//!
//! Keys must be unencrypted OpenSSH-format files (`ssh-keygen`'s default,
//! `-----BEGIN OPENSSH PRIVATE KEY-----`); anything else is a clear error
//! before the build. Key material never appears in errors or logs.

use std::sync::Arc;

use base64::Engine;
use rustls::SignatureScheme;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};
use rustls::sign::SigningKey;

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("ssh key {path}: {reason}")]
pub struct KeyError {
    /// The key file.
    pub path: String,
    /// What is wrong (never key material).
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ed25519,
    Rsa,
    Ecdsa256,
    Ecdsa384,
}

/// One loaded key: its public blob (as the agent lists it) and a signer.
#[derive(Clone)]
pub(crate) struct AgentKey {
    blob: Vec<u8>,
    comment: String,
    kind: Kind,
    signer: Arc<dyn SigningKey>,
}

impl std::fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentKey")
            .field("kind", &self.kind)
            .field("comment", &self.comment)
            .finish()
    }
}

/// A reader over SSH wire encoding (`uint32`, `string`).
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_at_checked(4)?;
        self.0 = rest;
        Some(u32::from_be_bytes(head.try_into().ok()?))
    }
    fn string(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head)
    }
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// An SSH `mpint` from an unsigned big-endian integer.
fn put_mpint(out: &mut Vec<u8>, n: &[u8]) {
    let n = strip_zeros(n);
    if n.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v = vec![0];
        v.extend_from_slice(n);
        put_string(out, &v);
    } else {
        put_string(out, n);
    }
}

fn strip_zeros(n: &[u8]) -> &[u8] {
    let start = n.iter().position(|b| *b != 0).unwrap_or(n.len());
    &n[start..]
}

// --- minimal DER encoding, for handing keys to rustls ---

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let significant = strip_zeros(&bytes);
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

fn der_uint(n: &[u8]) -> Vec<u8> {
    let n = strip_zeros(n);
    let mut content = Vec::with_capacity(n.len() + 1);
    if n.is_empty() || n[0] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(n);
    der(0x02, &content)
}

/// `a mod m` for unsigned big-endian integers (shift-and-subtract; keys are
/// a few thousand bits, so this is instant).
fn big_mod(a: &[u8], m: &[u8]) -> Vec<u8> {
    let m = strip_zeros(m);
    let mut r: Vec<u8> = vec![0; m.len() + 1];
    let mut mm = vec![0u8];
    mm.extend_from_slice(m);
    for byte in strip_zeros(a) {
        for bit in (0..8).rev() {
            // r = r * 2 + bit
            let mut carry = (byte >> bit) & 1;
            for x in r.iter_mut().rev() {
                let next = *x >> 7;
                *x = (*x << 1) | carry;
                carry = next;
            }
            if r.as_slice() >= mm.as_slice() {
                let mut borrow = 0i16;
                for (x, y) in r.iter_mut().rev().zip(mm.iter().rev()) {
                    let d = i16::from(*x) - i16::from(*y) - borrow;
                    borrow = i16::from(d < 0);
                    *x = (d + if d < 0 { 256 } else { 0 }) as u8;
                }
            }
        }
    }
    r
}

/// `n - 1` for an unsigned big-endian integer > 0.
fn minus_one(n: &[u8]) -> Vec<u8> {
    let mut v = n.to_vec();
    for x in v.iter_mut().rev() {
        if *x > 0 {
            *x -= 1;
            break;
        }
        *x = 0xff;
    }
    v
}

impl AgentKey {
    /// Loads an unencrypted OpenSSH private key file.
    pub(crate) fn load(path: &std::path::Path) -> Result<AgentKey, KeyError> {
        let fail = |reason: &str| KeyError {
            path: path.display().to_string(),
            reason: reason.to_owned(),
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(&format!("reading it: {e}")))?;
        Self::parse(&text).map_err(|reason| fail(&reason))
    }

    fn parse(text: &str) -> Result<AgentKey, String> {
        let raw = unarmor(text)?;
        let (blob, private) = private_section(&raw)?;
        let mut p = Wire(private);
        if p.u32() != p.u32() {
            return Err(malformed());
        }
        let key_type = p.string().ok_or_else(malformed)?;
        let (kind, signer) = match key_type {
            b"ssh-ed25519" => (Kind::Ed25519, ed25519_signer(&mut p)?),
            b"ssh-rsa" => (Kind::Rsa, rsa_signer(&mut p)?),
            b"ecdsa-sha2-nistp256" => (Kind::Ecdsa256, ecdsa_signer(&mut p, Kind::Ecdsa256)?),
            b"ecdsa-sha2-nistp384" => (Kind::Ecdsa384, ecdsa_signer(&mut p, Kind::Ecdsa384)?),
            other => {
                return Err(format!(
                    "key type {:?} is not supported (use ed25519, rsa or ecdsa)",
                    String::from_utf8_lossy(other)
                ));
            }
        };
        let comment = p
            .string()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .unwrap_or_default();
        Ok(AgentKey {
            blob,
            comment,
            kind,
            signer,
        })
    }

    /// An SSH signature blob for `data`, honouring the RSA hash flags.
    fn sign(&self, data: &[u8], flags: u32) -> Option<Vec<u8>> {
        const RSA_SHA2_256: u32 = 2;
        const RSA_SHA2_512: u32 = 4;
        let (name, scheme): (&str, SignatureScheme) = match self.kind {
            Kind::Ed25519 => ("ssh-ed25519", SignatureScheme::ED25519),
            Kind::Rsa if flags & RSA_SHA2_512 != 0 => {
                ("rsa-sha2-512", SignatureScheme::RSA_PKCS1_SHA512)
            }
            Kind::Rsa if flags & RSA_SHA2_256 != 0 => {
                ("rsa-sha2-256", SignatureScheme::RSA_PKCS1_SHA256)
            }
            // SHA-1 "ssh-rsa" signatures: ring cannot make them.
            Kind::Rsa => return None,
            Kind::Ecdsa256 => (
                "ecdsa-sha2-nistp256",
                SignatureScheme::ECDSA_NISTP256_SHA256,
            ),
            Kind::Ecdsa384 => (
                "ecdsa-sha2-nistp384",
                SignatureScheme::ECDSA_NISTP384_SHA384,
            ),
        };
        let raw = self.signer.choose_scheme(&[scheme])?.sign(data).ok()?;
        let sig = match self.kind {
            Kind::Ecdsa256 | Kind::Ecdsa384 => {
                // DER SEQUENCE { INTEGER r, INTEGER s } → mpint r, mpint s.
                let (r, s) = parse_der_signature(&raw)?;
                let mut v = Vec::new();
                put_mpint(&mut v, r);
                put_mpint(&mut v, s);
                v
            }
            _ => raw,
        };
        let mut out = Vec::new();
        put_string(&mut out, name.as_bytes());
        put_string(&mut out, &sig);
        Some(out)
    }
}

/// The one error for any structural problem in a key file: it never says
/// which field was wrong, so no part of a key reaches an error.
fn malformed() -> String {
    "malformed key file".to_owned()
}

fn provider_err(e: rustls::Error) -> String {
    format!("unusable key: {e}")
}

/// The decoded body of the `-----BEGIN OPENSSH PRIVATE KEY-----` armor.
fn unarmor(text: &str) -> Result<Vec<u8>, String> {
    const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
    const END: &str = "-----END OPENSSH PRIVATE KEY-----";
    let start = text
        .find(BEGIN)
        .ok_or("not an OpenSSH private key (convert it with ssh-keygen -p -f KEY)")?;
    let end = text[start..].find(END).ok_or("truncated key file")? + start;
    let b64: String = text[start + BEGIN.len()..end].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "invalid base64 in key file".to_owned())
}

/// The public key blob and the private section of an `openssh-key-v1`
/// container, refusing what the agent cannot use (an encrypted key, or
/// several keys) before any key material is looked at.
fn private_section(raw: &[u8]) -> Result<(Vec<u8>, &[u8]), String> {
    let rest = raw
        .strip_prefix(b"openssh-key-v1\0")
        .ok_or_else(malformed)?;
    let mut w = Wire(rest);
    let cipher = w.string().ok_or_else(malformed)?;
    if cipher != b"none" {
        return Err(
            "encrypted keys are not supported; use an ssh-agent socket or an unencrypted key"
                .into(),
        );
    }
    let _kdf = w.string().ok_or_else(malformed)?;
    let _kdf_options = w.string().ok_or_else(malformed)?;
    if w.u32().ok_or_else(malformed)? != 1 {
        return Err("files with several keys are not supported".into());
    }
    let blob = w.string().ok_or_else(malformed)?.to_vec();
    let private = w.string().ok_or_else(malformed)?;
    Ok((blob, private))
}

/// An Ed25519 signer from the private section's seed, wrapped in PKCS#8,
/// the only form rustls takes an Ed25519 key in.
fn ed25519_signer(p: &mut Wire<'_>) -> Result<Arc<dyn SigningKey>, String> {
    let _public = p.string().ok_or_else(malformed)?;
    let private = p.string().ok_or_else(malformed)?;
    let seed = private.get(..32).ok_or_else(malformed)?;
    // RFC 8410 PKCS#8 v1 wrapping of the 32-byte seed.
    let mut pkcs8 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    pkcs8.extend_from_slice(seed);
    rustls::crypto::ring::sign::any_eddsa_type(&PrivatePkcs8KeyDer::from(pkcs8))
        .map_err(provider_err)
}

/// An RSA signer: OpenSSH stores no CRT exponents, which PKCS#1 needs, so
/// they are computed from `d`, `p` and `q`.
fn rsa_signer(p: &mut Wire<'_>) -> Result<Arc<dyn SigningKey>, String> {
    let n = p.string().ok_or_else(malformed)?;
    let e = p.string().ok_or_else(malformed)?;
    let d = p.string().ok_or_else(malformed)?;
    let iqmp = p.string().ok_or_else(malformed)?;
    let pp = p.string().ok_or_else(malformed)?;
    let q = p.string().ok_or_else(malformed)?;
    let dp = big_mod(d, &minus_one(pp));
    let dq = big_mod(d, &minus_one(q));
    let mut seq = der_uint(&[0]);
    for part in [n, e, d, pp, q, &dp, &dq, iqmp] {
        seq.extend(der_uint(part));
    }
    let pkcs1 = der(0x30, &seq);
    rustls::crypto::ring::sign::any_supported_type(&PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(
        pkcs1,
    )))
    .map_err(provider_err)
}

/// An ECDSA signer for `kind` (P-256 or P-384), re-encoded as SEC1 for
/// rustls; the scalar is padded to the curve's size, as SEC1 requires and
/// OpenSSH's `mpint` does not.
fn ecdsa_signer(p: &mut Wire<'_>, kind: Kind) -> Result<Arc<dyn SigningKey>, String> {
    let (oid, size): (&[u8], usize) = if kind == Kind::Ecdsa256 {
        (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07], 32)
    } else {
        (&[0x2b, 0x81, 0x04, 0x00, 0x22], 48)
    };
    let _curve = p.string().ok_or_else(malformed)?;
    let q = p.string().ok_or_else(malformed)?;
    let d = strip_zeros(p.string().ok_or_else(malformed)?);
    if d.len() > size {
        return Err(malformed());
    }
    let mut scalar = vec![0u8; size - d.len()];
    scalar.extend_from_slice(d);
    let mut bits = vec![0u8];
    bits.extend_from_slice(q);
    let mut seq = der_uint(&[1]);
    seq.extend(der(0x04, &scalar));
    seq.extend(der(0xa0, &der(0x06, oid)));
    seq.extend(der(0xa1, &der(0x03, &bits)));
    let sec1 = der(0x30, &seq);
    rustls::crypto::ring::sign::any_ecdsa_type(&PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(sec1)))
        .map_err(provider_err)
}

fn parse_der_signature(der: &[u8]) -> Option<(&[u8], &[u8])> {
    fn tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        if *input.first()? != tag {
            return None;
        }
        let (len, header) = match *input.get(1)? {
            l if l < 0x80 => (usize::from(l), 2),
            0x81 => (usize::from(*input.get(2)?), 3),
            _ => return None,
        };
        let content = input.get(header..header + len)?;
        Some((content, &input[header + len..]))
    }
    let (seq, _) = tlv(der, 0x30)?;
    let (r, rest) = tlv(seq, 0x02)?;
    let (s, _) = tlv(rest, 0x02)?;
    Some((r, s))
}

const AGENT_FAILURE: u8 = 5;
const AGENTC_REQUEST_IDENTITIES: u8 = 11;
const AGENT_IDENTITIES_ANSWER: u8 = 12;
const AGENTC_SIGN_REQUEST: u8 = 13;
const AGENT_SIGN_RESPONSE: u8 = 14;

/// Answers one agent request (without its length prefix); returns the
/// response without its length prefix.
pub(crate) fn handle(key: &AgentKey, request: &[u8]) -> Vec<u8> {
    let failure = vec![AGENT_FAILURE];
    let Some((&kind, body)) = request.split_first() else {
        return failure;
    };
    match kind {
        AGENTC_REQUEST_IDENTITIES => {
            let mut out = vec![AGENT_IDENTITIES_ANSWER];
            out.extend_from_slice(&1u32.to_be_bytes());
            put_string(&mut out, &key.blob);
            put_string(&mut out, key.comment.as_bytes());
            out
        }
        AGENTC_SIGN_REQUEST => {
            let mut w = Wire(body);
            let (Some(blob), Some(data)) = (w.string(), w.string()) else {
                return failure;
            };
            let flags = w.u32().unwrap_or(0);
            if blob != key.blob.as_slice() {
                return failure;
            }
            match key.sign(data, flags) {
                Some(sig) => {
                    let mut out = vec![AGENT_SIGN_RESPONSE];
                    put_string(&mut out, &sig);
                    out
                }
                None => failure,
            }
        }
        _ => failure,
    }
}

/// Splits complete length-prefixed messages off the front of `buf`.
pub(crate) fn next_message(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let len = u32::from_be_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    if buf.len() < 4 + len {
        return None;
    }
    let msg = buf[4..4 + len].to_vec();
    buf.drain(..4 + len);
    Some(msg)
}

/// Prefixes a response with its length.
pub(crate) fn frame(msg: &[u8]) -> Vec<u8> {
    let mut out = (msg.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(msg);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;
    use std::process::Command;

    #[test]
    fn big_mod_matches_small_numbers() {
        assert_eq!(
            strip_zeros(&big_mod(&[0x01, 0x00], &[0x07])),
            &[256u32 % 7].map(|v| v as u8)[..]
        );
        assert_eq!(
            strip_zeros(&big_mod(&[0xff, 0xff, 0xff], &[0x01, 0x00])),
            &[0xff]
        );
        assert_eq!(minus_one(&[0x01, 0x00]), vec![0x00, 0xff]);
    }

    /// Keys made by ssh-keygen are listed and sign data that ssh-keygen
    /// verifies (`-Y sign`/`-Y verify` use the same signature blobs).
    #[test]
    #[cfg_attr(
        not(have_ssh_tools),
        ignore = "needs ssh-keygen (apt-get install openssh-client)"
    )]
    fn signatures_verify_with_ssh_keygen() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (kind, bits) in [
            ("ed25519", None),
            ("rsa", Some("2048")),
            ("ecdsa", Some("256")),
            ("ecdsa", Some("384")),
        ] {
            let key = dir
                .path()
                .join(format!("id_{kind}_{}", bits.unwrap_or("x")));
            let mut cmd = Command::new("ssh-keygen");
            cmd.args(["-q", "-t", kind, "-N", "", "-C", "test-key", "-f"])
                .arg(&key);
            if let Some(b) = bits {
                cmd.args(["-b", b]);
            }
            assert!(cmd.status().expect("ssh-keygen").success());
            let agent_key = AgentKey::load(&key).unwrap_or_else(|e| panic!("{kind}: {e}"));
            // Identities answer carries the public key blob from the .pub file.
            let listed = handle(&agent_key, &[AGENTC_REQUEST_IDENTITIES]);
            assert_eq!(listed[0], AGENT_IDENTITIES_ANSWER);
            let public =
                std::fs::read_to_string(format!("{}.pub", key.display())).expect("pub file");
            let pub_blob = base64::engine::general_purpose::STANDARD
                .decode(public.split_whitespace().nth(1).expect("blob"))
                .expect("base64");
            assert_eq!(agent_key.blob, pub_blob, "{kind}");
            // Sign an SSHSIG envelope and let ssh-keygen verify it.
            let message = b"message to sign";
            let hash = sha2::Sha512::digest(message);
            let mut signed_data = b"SSHSIG".to_vec();
            put_string(&mut signed_data, b"test@ns");
            put_string(&mut signed_data, b"");
            put_string(&mut signed_data, b"sha512");
            put_string(&mut signed_data, &hash);
            let mut req = vec![AGENTC_SIGN_REQUEST];
            put_string(&mut req, &agent_key.blob);
            put_string(&mut req, &signed_data);
            req.extend_from_slice(&4u32.to_be_bytes());
            let signed = handle(&agent_key, &req);
            assert_eq!(signed[0], AGENT_SIGN_RESPONSE, "{kind}");
            let sig_blob = Wire(&signed[1..]).string().expect("signature").to_vec();
            let mut envelope = b"SSHSIG".to_vec();
            envelope.extend_from_slice(&1u32.to_be_bytes());
            put_string(&mut envelope, &agent_key.blob);
            put_string(&mut envelope, b"test@ns");
            put_string(&mut envelope, b"");
            put_string(&mut envelope, b"sha512");
            put_string(&mut envelope, &sig_blob);
            let armored = format!(
                "-----BEGIN SSH SIGNATURE-----\n{}\n-----END SSH SIGNATURE-----\n",
                base64::engine::general_purpose::STANDARD.encode(&envelope)
            );
            let sig_file = dir
                .path()
                .join(format!("{kind}-{}.sig", bits.unwrap_or("x")));
            std::fs::write(&sig_file, armored).expect("write sig");
            let mut verify = Command::new("ssh-keygen")
                .args(["-Y", "check-novalidate", "-n", "test@ns", "-f"])
                .arg(format!("{}.pub", key.display()))
                .arg("-s")
                .arg(&sig_file)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("ssh-keygen -Y");
            std::io::Write::write_all(verify.stdin.as_mut().expect("stdin"), message)
                .expect("stdin");
            let out = verify.wait_with_output().expect("ssh-keygen -Y");
            assert!(
                out.status.success(),
                "{kind} {bits:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if kind == "rsa" {
                let mut sha1 = req.clone();
                let n = sha1.len();
                sha1[n - 4..].copy_from_slice(&0u32.to_be_bytes());
                assert_eq!(handle(&agent_key, &sha1), vec![AGENT_FAILURE]);
            }
        }
    }

    #[test]
    fn encrypted_and_foreign_keys_are_refused() {
        let err = AgentKey::parse(
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        )
        .expect_err("pem rsa");
        assert!(err.contains("not an OpenSSH private key"), "{err}");
    }
}
