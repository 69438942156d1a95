//! The disk cache of compiled kernels (cubins, code objects) and the memory cache of loaded
//! modules: the parts that do not depend on the compiler or the driver.
//!
//! - **Names.** [`cache_file_name`]: `<stem>-<target>-<16 hex digits>.<ext>`
//!   (`rms_norm-sm_90a-<hash>.cubin`), the hash covering everything in a [`CacheKey`] and the
//!   spliced source, so a changed header, option, target or compiler gives a new file rather
//!   than a stale hit.
//! - **Keys.** [`CacheKey::digest`]: the SHA-256 of the full key (every part, the spliced source
//!   included), written into each entry's header and compared on every read, so a file is
//!   only ever used for the exact compile it came from.
//! - **Root.** [`root`]: `KERNELYARD_CACHE_DIR`, else `$XDG_CACHE_HOME/kernelyard`, else
//!   `$HOME/.cache/kernelyard`, only ever an absolute path; `off` (any case, white space
//!   ignored) turns the cache off.
//! - **Directory and entries.** [`disk`]: the directory is created 0700 and refused when it, a
//!   directory above it or an entry is not this user's or is writable by others; entries
//!   carry a header ([`entry`]: magic, version, key digest, length, payload SHA-256) verified
//!   before their bytes reach a driver; writes go through a unique temporary file, `fsync` and
//!   a rename.
//! - **Loading.** [`load`]: the flow both backends run ([`DiskEntry`], [`load_or_compile`]) and
//!   the log of reasons the cache was not used ([`notes`]).
//!
//! The threat model (who may write where, what the checks defend against and what they do
//! not) is `docs/CACHE_SECURITY.md`.
//!
//! Responsibility: the backend decides what goes in the key (its format version, target
//! naming, options and compiler version), compiles, and loads the bytes it is handed; this
//! module decides whether bytes on disk may be handed to it. A cache that cannot be used or
//! written costs a compile, never a failure.

pub mod disk;
pub mod entry;
pub mod load;
pub mod refusal;
pub mod root;

#[cfg(all(test, unix))]
mod disk_tests;
#[cfg(not(unix))]
mod other;
#[cfg(unix)]
mod unix;

#[cfg(not(unix))]
use other as os;
#[cfg(unix)]
use unix as os;

pub use disk::{DiskCache, Read};
pub use entry::{EntryError, KeyDigest};
pub use load::{load_or_compile, notes, DiskEntry, Obtained};
pub use refusal::{CacheRefusal, Place};
pub use root::{cache_root, Root};

use std::collections::HashMap;
use std::sync::Arc;
// Under `cfg(loom)` the module map's locks are loom's, for its model (`loom_model` below).
#[cfg(loom)]
use loom::sync::Mutex;
#[cfg(not(loom))]
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::source::KernelSource;

/// FNV-1a, 64 bits: a stable hash for cache keys (std's hasher may change between Rust
/// releases). Each part is followed by a separator, so `("ab", "c")` and `("a", "bc")` differ.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separate the parts so ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// What a compiled file depends on besides its source: everything that goes into its name.
#[derive(Clone, Copy, Debug)]
pub struct CacheKey<'a> {
    /// The backend's cache format version (`kernelyard-cubin-1`); bump it when the file format
    /// or the key changes.
    pub format: &'a str,
    /// The compile target (`sm_90a`, `gfx90a`); also written into the file name.
    pub target: &'a str,
    /// The compiler options besides the target.
    pub options: &'a [&'a str],
    /// The compiler's version (`13.0.0`).
    pub compiler: &'a str,
    /// The file extension, without the dot (`cubin`, `hsaco`).
    pub ext: &'a str,
}

/// The disk cache's file name for `source` compiled as `key` says:
/// `<stem>-<target>-<hash>.<ext>`, the stem being the file name without `.cu` and the hash
/// ([`fnv1a`], 16 hex digits) covering, in order, the format, the file name, the spliced text,
/// the target, the options joined by spaces and the compiler version.
pub fn cache_file_name(source: &KernelSource, key: &CacheKey<'_>) -> String {
    file_name(source, key, &source.spliced())
}

fn file_name(source: &KernelSource, key: &CacheKey<'_>, spliced: &str) -> String {
    let options = key.options.join(" ");
    let hash = fnv1a(&[
        key.format.as_bytes(),
        source.file.as_bytes(),
        spliced.as_bytes(),
        key.target.as_bytes(),
        options.as_bytes(),
        key.compiler.as_bytes(),
    ]);
    let stem = source.file.trim_end_matches(".cu");
    format!("{stem}-{}-{hash:016x}.{}", key.target, key.ext)
}

impl CacheKey<'_> {
    /// The SHA-256 of the full key of `source` compiled as `self` says: every part, each
    /// length-prefixed (the options one by one), after a domain tag, so two keys share a
    /// digest only if every part is equal. An entry's header carries it, and a reader uses an
    /// entry only for the same digest.
    pub fn digest(&self, source: &KernelSource) -> KeyDigest {
        self.digest_of(source, &source.spliced())
    }

    /// The entry's file name ([`cache_file_name`]) and key ([`CacheKey::digest`]), splicing the
    /// source once.
    pub fn entry_id(&self, source: &KernelSource) -> (String, KeyDigest) {
        let spliced = source.spliced();
        (
            file_name(source, self, &spliced),
            self.digest_of(source, &spliced),
        )
    }

    fn digest_of(&self, source: &KernelSource, spliced: &str) -> KeyDigest {
        let mut h = Sha256::new();
        let mut part = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        part(b"kernelyard kernel cache key 1");
        part(self.format.as_bytes());
        part(source.file.as_bytes());
        part(spliced.as_bytes());
        part(self.target.as_bytes());
        part(&(self.options.len() as u64).to_le_bytes());
        for option in self.options {
            part(option.as_bytes());
        }
        part(self.compiler.as_bytes());
        part(self.ext.as_bytes());
        KeyDigest(h.finalize().into())
    }
}

/// The memory cache of loaded modules of one device, by source file: each is loaded once, on
/// first use, under a lock of its own. A slow first load (a compile) blocks only the callers
/// that need that same source, never a launch of a module already loaded; a failed load is
/// not remembered (the next call tries again). Model-checked with loom (`loom_model`, run by
/// `.ci/run` with `RUSTFLAGS="--cfg loom"`).
pub struct ModuleMap<T> {
    slots: Mutex<HashMap<&'static str, Slot<T>>>,
}

/// One source's module: empty until its first successful load.
type Slot<T> = Arc<Mutex<Option<Arc<T>>>>;

impl<T> Default for ModuleMap<T> {
    fn default() -> Self {
        ModuleMap {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> ModuleMap<T> {
    /// The value for `file`, from `load` the first time.
    pub fn get_or_load<E>(
        &self,
        file: &'static str,
        load: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(
                slots
                    .entry(file)
                    .or_insert_with(|| Arc::new(Mutex::new(None))),
            )
        };
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = &*slot {
            return Ok(Arc::clone(v));
        }
        let v = Arc::new(load()?);
        *slot = Some(Arc::clone(&v));
        Ok(v)
    }
}

#[cfg(all(test, loom))]
mod loom_model {
    //! Every interleaving (loom) of concurrent first uses: one load per source however many
    //! threads race for it, a failed load retried by the next caller, and two sources loading
    //! at once without a deadlock. Run with `RUSTFLAGS="--cfg loom"`.
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::sync::Arc;
    use loom::thread;

    use super::ModuleMap;

    #[test]
    fn loom_racing_first_uses_load_once_and_share_the_module() {
        loom::model(|| {
            let map = Arc::new(ModuleMap::<u32>::default());
            let loads = Arc::new(AtomicUsize::new(0));
            let first = |map: &ModuleMap<u32>, loads: &AtomicUsize| {
                map.get_or_load("a.cu", || -> Result<u32, ()> {
                    Ok(loads.fetch_add(1, Ordering::SeqCst) as u32)
                })
                .unwrap()
            };
            let (m1, l1) = (Arc::clone(&map), Arc::clone(&loads));
            let t = thread::spawn(move || first(&m1, &l1));
            let mine = first(&map, &loads);
            let theirs = t.join().unwrap();
            assert_eq!(loads.load(Ordering::SeqCst), 1, "loaded once");
            assert!(std::sync::Arc::ptr_eq(&mine, &theirs), "one module");
        });
    }

    #[test]
    fn loom_a_failed_load_is_retried_and_a_success_kept() {
        loom::model(|| {
            let map = Arc::new(ModuleMap::<u32>::default());
            let m1 = Arc::clone(&map);
            let t = thread::spawn(move || m1.get_or_load("a.cu", || Err::<u32, &str>("no")).ok());
            let mine = map.get_or_load("a.cu", || Ok::<u32, &str>(5)).unwrap();
            let theirs = t.join().unwrap();
            assert_eq!(*mine, 5);
            // The failure ran only if it came first (then it was not remembered); after the
            // success nobody loads again.
            if let Some(v) = theirs {
                assert_eq!(*v, 5);
            }
            let again = map
                .get_or_load("a.cu", || Err::<u32, &str>("must not run"))
                .unwrap();
            assert_eq!(*again, 5);
        });
    }

    #[test]
    fn loom_two_sources_load_at_once_without_a_deadlock() {
        loom::model(|| {
            let map = Arc::new(ModuleMap::<&'static str>::default());
            let m1 = Arc::clone(&map);
            let t = thread::spawn(move || {
                let b = m1.get_or_load("b.cu", || Ok::<_, ()>("b")).unwrap();
                let a = m1.get_or_load("a.cu", || Ok::<_, ()>("a")).unwrap();
                (*a, *b)
            });
            let a = map.get_or_load("a.cu", || Ok::<_, ()>("a")).unwrap();
            let b = map.get_or_load("b.cu", || Ok::<_, ()>("b")).unwrap();
            assert_eq!((*a, *b), t.join().unwrap());
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    static A: KernelSource = KernelSource {
        file: "a.cu",
        code: "extern \"C\" __global__ void a() {}",
        symbols: &["a"],
    };

    static B: KernelSource = KernelSource {
        file: "a.cu",
        code: "extern \"C\" __global__ void a() { }",
        symbols: &["a"],
    };

    const KEY: CacheKey<'static> = CacheKey {
        format: "kernelyard-cubin-1",
        target: "sm_90a",
        options: &["-std=c++17", "-lineinfo"],
        compiler: "13.0.0",
        ext: "cubin",
    };

    #[test]
    fn cache_names_change_with_every_part_of_the_key() {
        let base = cache_file_name(&A, &KEY);
        // The name the CUDA backend gave this source before the cache moved here: a change
        // would orphan every cached file.
        assert_eq!(base, "a-sm_90a-b39d51010be41443.cubin");
        assert_eq!(base, cache_file_name(&A, &KEY));
        assert_ne!(base, cache_file_name(&B, &KEY));
        let changed = [
            CacheKey {
                format: "kernelyard-cubin-2",
                ..KEY
            },
            CacheKey {
                target: "sm_89",
                ..KEY
            },
            CacheKey {
                options: &["-std=c++17"],
                ..KEY
            },
            CacheKey {
                compiler: "13.1.0",
                ..KEY
            },
        ];
        for key in changed {
            assert_ne!(base, cache_file_name(&A, &key), "{key:?}");
        }
        let hsaco = cache_file_name(
            &A,
            &CacheKey {
                target: "gfx90a",
                ext: "hsaco",
                ..KEY
            },
        );
        assert!(
            hsaco.starts_with("a-gfx90a-") && hsaco.ends_with(".hsaco"),
            "{hsaco}"
        );
    }

    #[test]
    fn key_digests_change_with_every_part_of_the_key() {
        let base = KEY.digest(&A);
        assert_eq!(base, KEY.digest(&A));
        assert_eq!(KEY.entry_id(&A), (cache_file_name(&A, &KEY), base));
        assert_ne!(base, KEY.digest(&B));
        let changed = [
            CacheKey {
                format: "kernelyard-cubin-2",
                ..KEY
            },
            CacheKey {
                target: "sm_89",
                ..KEY
            },
            CacheKey {
                options: &["-std=c++17"],
                ..KEY
            },
            // The options are parts of their own: joined text alike, key different.
            CacheKey {
                options: &["-std=c++17 -lineinfo"],
                ..KEY
            },
            CacheKey {
                compiler: "13.1.0",
                ..KEY
            },
            CacheKey {
                ext: "hsaco",
                ..KEY
            },
        ];
        for key in changed {
            assert_ne!(base, key.digest(&A), "{key:?}");
        }
    }

    #[test]
    fn fnv_separates_parts() {
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
    }

    #[test]
    fn modules_load_once_and_a_slow_load_blocks_only_its_own_source() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::mpsc;
        let map: Arc<ModuleMap<usize>> = Arc::default();
        let loads = AtomicUsize::new(0);
        let first = map.get_or_load::<()>("a.cu", || {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok(1)
        });
        assert_eq!(*first.unwrap(), 1);
        assert_eq!(*map.get_or_load::<()>("a.cu", || Ok(2)).unwrap(), 1);
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        // A failed load is retried.
        assert!(map.get_or_load("b.cu", || Err("no")).is_err());
        assert_eq!(*map.get_or_load::<()>("b.cu", || Ok(3)).unwrap(), 3);
        // While "c.cu" loads (held until the main thread says so), "a.cu" is served.
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let m = Arc::clone(&map);
        let slow = std::thread::spawn(move || {
            m.get_or_load::<()>("c.cu", || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Ok(4)
            })
            .map(|v| *v)
        });
        started_rx.recv().unwrap();
        assert_eq!(*map.get_or_load::<()>("a.cu", || Ok(9)).unwrap(), 1);
        release_tx.send(()).unwrap();
        assert_eq!(slow.join().unwrap(), Ok(4));
    }
}
