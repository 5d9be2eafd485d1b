//! What a tar entry says about the file it makes, beyond its kind: owner,
//! mode and mtime, with the PAX records that override the header.

use std::io::{self, Read};

use filetime::FileTime;

/// The owner, mode and mtime an entry gives what it creates, read once
/// before its kind is looked at.
pub(super) struct EntryMeta {
    pub(super) pax: Pax,
    pub(super) mode: u32,
    pub(super) mtime: FileTime,
    pub(super) uid: u64,
    pub(super) gid: u64,
}

impl EntryMeta {
    pub(super) fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<EntryMeta> {
        let pax = Pax::read(entry)?;
        let header = entry.header();
        let mode = header.mode()? & 0o7777;
        // Lenient like Go's archive/tar: some writers leave these blank.
        // PAX records win over the header fields, as in every tar reader.
        let mtime = pax
            .mtime
            .unwrap_or_else(|| FileTime::from_unix_time(header.mtime().unwrap_or(0) as i64, 0));
        let uid = pax.uid.unwrap_or_else(|| header.uid().unwrap_or(0));
        let gid = pax.gid.unwrap_or_else(|| header.gid().unwrap_or(0));
        Ok(EntryMeta {
            pax,
            mode,
            mtime,
            uid,
            gid,
        })
    }
}

/// The PAX records of an entry that `tar` does not apply itself.
#[derive(Default)]
pub(super) struct Pax {
    pub(super) mtime: Option<FileTime>,
    pub(super) uid: Option<u64>,
    pub(super) gid: Option<u64>,
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Pax {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Pax> {
        let mut pax = Pax::default();
        let Some(exts) = entry.pax_extensions()? else {
            return Ok(pax);
        };
        for ext in exts {
            let ext = ext?;
            let value = std::str::from_utf8(ext.value_bytes()).ok();
            match ext.key_bytes() {
                b"mtime" => pax.mtime = value.and_then(parse_pax_time),
                b"uid" => pax.uid = value.and_then(|v| v.parse().ok()),
                b"gid" => pax.gid = value.and_then(|v| v.parse().ok()),
                key => {
                    if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                        pax.xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
        Ok(pax)
    }
}

/// `1234567890.123456789` (seconds with optional fraction) as a FileTime.
pub(super) fn parse_pax_time(text: &str) -> Option<FileTime> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let nanos = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse::<u32>().ok()?
    };
    Some(FileTime::from_unix_time(secs, nanos))
}
