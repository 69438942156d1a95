//! The format of one disk cache entry: a fixed header, then the compiled code (the payload).
//!
//! | bytes | field |
//! | --- | --- |
//! | 8 | magic, [`MAGIC`] (`KYKCACHE`) |
//! | 4 | format version, little-endian ([`VERSION`]) |
//! | 32 | the entry's key: the SHA-256 of the full cache key ([`KeyDigest`]) |
//! | 8 | payload length in bytes, little-endian |
//! | 32 | SHA-256 of the payload |
//! | n | the payload (a cubin, a code object) |
//!
//! [`decode`] checks every field before it hands out the payload: a file that is not an entry,
//! an entry of another format version or of another key (a file renamed onto this name, a hash
//! collision of the file names), a truncated or extended file and a payload whose bytes changed
//! are all refused with an [`EntryError`] that says which. The digests detect accidents and
//! foreign files; they are not a signature (whoever can write the directory can write a
//! consistent entry, which is why the directory's owner and mode are checked too:
//! `docs/CACHE_SECURITY.md`).
//!
//! The functions here are pure (no file system): the cache's reader and the fuzz target share
//! them.

use sha2::{Digest, Sha256};

/// The first bytes of every entry.
pub const MAGIC: [u8; 8] = *b"KYKCACHE";

/// The entry format's version; a reader refuses any other.
pub const VERSION: u32 = 1;

/// Bytes before the payload: magic, version, key digest, payload length, payload digest.
pub const HEADER_LEN: usize = 8 + 4 + 32 + 8 + 32;

/// The SHA-256 of a cache key's canonical encoding ([`CacheKey::digest`]): what an entry must
/// carry to be read for that key.
///
/// [`CacheKey::digest`]: crate::cache::CacheKey::digest
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyDigest(pub [u8; 32]);

impl std::fmt::Display for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

/// Why bytes are not a valid entry for a key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// Shorter than the header.
    #[error("{len} bytes, shorter than the {HEADER_LEN}-byte entry header (a truncated file)")]
    ShortHeader {
        /// The file's length.
        len: usize,
    },
    /// The first bytes are not [`MAGIC`].
    #[error("no kernelyard cache header (not a cache entry, or one of an older release)")]
    Magic,
    /// Another format version.
    #[error("entry format version {found}, this build reads version {VERSION}")]
    Version {
        /// The version in the header.
        found: u32,
    },
    /// The header names another key.
    #[error("the entry was written for another cache key ({found}, expected {expected})")]
    OtherKey {
        /// The key in the header.
        found: KeyDigest,
        /// The key the reader looked for.
        expected: KeyDigest,
    },
    /// The payload is not as long as the header says.
    #[error(
        "the header says {header} payload bytes, the file holds {actual} (truncated or extended)"
    )]
    Length {
        /// The length in the header.
        header: u64,
        /// The bytes after the header.
        actual: u64,
    },
    /// The payload's SHA-256 is not the header's.
    #[error("the payload's SHA-256 does not match the header (the code was altered or damaged)")]
    Digest,
}

/// The SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The header of the entry for `payload` under `key`.
pub fn header(key: &KeyDigest, payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    let fields: [&[u8]; 5] = [
        &MAGIC,
        &VERSION.to_le_bytes(),
        &key.0,
        &(payload.len() as u64).to_le_bytes(),
        &sha256(payload),
    ];
    let mut at = 0;
    for f in fields {
        out[at..at + f.len()].copy_from_slice(f);
        at += f.len();
    }
    out
}

/// The entry for `payload` under `key`: the header, then the payload.
pub fn encode(key: &KeyDigest, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&header(key, payload));
    out.extend_from_slice(payload);
    out
}

/// The payload of `bytes`, when they are a complete, unaltered entry for `key`: magic,
/// version, key, length and payload digest all checked, in that order.
pub fn decode<'a>(bytes: &'a [u8], key: &KeyDigest) -> Result<&'a [u8], EntryError> {
    if bytes.len() < HEADER_LEN {
        return Err(EntryError::ShortHeader { len: bytes.len() });
    }
    let (header, payload) = bytes.split_at(HEADER_LEN);
    let (magic, rest) = header.split_at(8);
    let (version, rest) = rest.split_at(4);
    let (found, rest) = rest.split_at(32);
    let (len, digest) = rest.split_at(8);
    if magic != MAGIC {
        return Err(EntryError::Magic);
    }
    let version = u32::from_le_bytes(to_array(version));
    if version != VERSION {
        return Err(EntryError::Version { found: version });
    }
    let found = KeyDigest(to_array(found));
    if found != *key {
        return Err(EntryError::OtherKey {
            found,
            expected: *key,
        });
    }
    let header_len = u64::from_le_bytes(to_array(len));
    let actual = payload.len() as u64;
    if header_len != actual {
        return Err(EntryError::Length {
            header: header_len,
            actual,
        });
    }
    if sha256(payload) != to_array::<32>(digest) {
        return Err(EntryError::Digest);
    }
    Ok(payload)
}

/// The first `N` bytes of `bytes` (which the caller split to exactly `N`).
fn to_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: KeyDigest = KeyDigest([7; 32]);

    #[test]
    fn an_entry_reads_back_its_payload() {
        let e = encode(&KEY, b"\x7fELF cubin");
        assert_eq!(e.len(), HEADER_LEN + 10);
        assert_eq!(&e[..8], b"KYKCACHE");
        assert_eq!(decode(&e, &KEY), Ok(&b"\x7fELF cubin"[..]));
        let empty = encode(&KEY, b"");
        assert_eq!(decode(&empty, &KEY), Ok(&b""[..]));
    }

    #[test]
    fn every_damaged_field_is_named() {
        let e = encode(&KEY, b"payload bytes");
        assert_eq!(
            decode(&e[..HEADER_LEN - 1], &KEY),
            Err(EntryError::ShortHeader {
                len: HEADER_LEN - 1
            })
        );
        assert_eq!(decode(b"", &KEY), Err(EntryError::ShortHeader { len: 0 }));

        let mut m = e.clone();
        m[0] ^= 1;
        assert_eq!(decode(&m, &KEY), Err(EntryError::Magic));

        let mut v = e.clone();
        v[8] = 2;
        assert_eq!(decode(&v, &KEY), Err(EntryError::Version { found: 2 }));

        let other = KeyDigest([8; 32]);
        assert_eq!(
            decode(&e, &other),
            Err(EntryError::OtherKey {
                found: KEY,
                expected: other
            })
        );

        assert_eq!(
            decode(&e[..e.len() - 1], &KEY),
            Err(EntryError::Length {
                header: 13,
                actual: 12
            })
        );
        let mut longer = e.clone();
        longer.push(0);
        assert_eq!(
            decode(&longer, &KEY),
            Err(EntryError::Length {
                header: 13,
                actual: 14
            })
        );

        // Every single flipped bit of the payload or of its digest is caught.
        for i in HEADER_LEN - 32..e.len() {
            for bit in 0..8 {
                let mut t = e.clone();
                t[i] ^= 1 << bit;
                assert_eq!(
                    decode(&t, &KEY),
                    Err(EntryError::Digest),
                    "byte {i} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn the_sha256_is_the_standard_one() {
        // FIPS 180-2's "abc" example.
        let d = sha256(b"abc");
        assert_eq!(d[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(d[28..], [0xf2, 0x00, 0x15, 0xad]);
    }
}
