//! Bytes -> the kernel cache's entry reader (`kernelyard_kernels::cache`).
//!
//! Two inputs from one: the raw bytes as a file, and (when the first byte is odd) a valid entry
//! made from the rest with one bit flipped where the next two bytes say.
//!
//! What must hold:
//! - `entry::decode` returns a payload or a typed `EntryError`, never a panic; it accepts only
//!   the exact encoding of its payload (`encode(key, payload) == bytes`) and never under
//!   another key;
//! - a valid entry decodes to its payload, and the same entry with any one bit flipped is
//!   refused;
//! - the same bytes written as an entry file (mode 0600, this user's) and read through
//!   `DiskCache::read` give `Hit(payload)` exactly when `decode` accepts them, and `Rejected`
//!   (the file deleted) otherwise: never `Refused`, never a panic.

#![no_main]

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;

use kernelyard_kernels::cache::entry::{decode, encode};
use kernelyard_kernels::cache::{DiskCache, KeyDigest, Read};
use libfuzzer_sys::fuzz_target;

const KEY: KeyDigest = KeyDigest([0x5a; 32]);
const OTHER: KeyDigest = KeyDigest([0xa5; 32]);
const NAME: &str = "softmax-sm_90a-0123456789abcdef.cubin";

/// A cache directory of this process (under the system's temporary directory; one entry file
/// at a time).
fn cache() -> &'static DiskCache {
    static CACHE: OnceLock<DiskCache> = OnceLock::new();
    CACHE.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("kernelyard-fuzz-cache-{}", std::process::id()));
        DiskCache::open(&dir).unwrap_or_else(|r| panic!("the fuzz cache directory: {r}"))
    })
}

fn check_bytes(bytes: &[u8]) {
    let decoded = decode(bytes, &KEY);
    match &decoded {
        Ok(payload) => {
            assert_eq!(
                encode(&KEY, payload),
                bytes,
                "a non-canonical entry was accepted"
            );
            assert!(
                decode(bytes, &OTHER).is_err(),
                "an entry read under another key"
            );
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }

    let cache = cache();
    let path = cache.dir().join(NAME);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .expect("write the entry file");
    file.write_all(bytes).expect("write the entry file");
    drop(file);
    match (cache.read(NAME, &KEY), decoded) {
        (Read::Hit(got), Ok(payload)) => assert_eq!(got, payload),
        (Read::Rejected(r), Err(_)) => {
            let _ = r.to_string();
            assert!(!path.exists(), "a rejected entry was left in place");
        }
        (read, decoded) => panic!("DiskCache::read gave {read:?}, decode gave {decoded:?}"),
    }
    let _ = std::fs::remove_file(&path);
}

fuzz_target!(|data: &[u8]| {
    check_bytes(data);
    if let [mode, hi, lo, payload @ ..] = data {
        if mode & 1 == 1 {
            let entry = encode(&KEY, payload);
            assert_eq!(decode(&entry, &KEY), Ok(payload));
            let bit = (usize::from(*hi) << 8 | usize::from(*lo)) % (entry.len() * 8);
            let mut flipped = entry;
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode(&flipped, &KEY).is_err(),
                "bit {bit} flipped was not detected"
            );
            check_bytes(&flipped);
        }
    }
});
