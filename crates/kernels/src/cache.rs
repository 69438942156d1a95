//! The disk cache's pieces that do not depend on the compiler: a stable hash, file names that
//! change with every input of a compile, the directory, and writes that never leave a torn
//! file.
//!
//! - **Names.** [`cache_file_name`]: `<stem>-<target>-<16 hex digits>.<ext>`
//!   (`rms_norm-sm_90a-<hash>.cubin`), the hash covering everything in a [`CacheKey`] and the
//!   spliced source, so a changed header, option, target or compiler gives a new file rather
//!   than a stale hit.
//! - **Directory.** [`cache_dir`]: `KERNELYARD_CACHE_DIR`, else `$XDG_CACHE_HOME/kernelyard`,
//!   else `~/.cache/kernelyard`; `KERNELYARD_CACHE_DIR=off` disables the cache.
//! - **Writes.** [`write_atomically`]: a temporary name, then a rename.
//!
//! Responsibility: the backend decides what goes in the key (its format version, target
//! naming, options and compiler version), reads and loads cached files, deletes one its
//! driver rejects, and treats a failed write as a recompile next time, never a failure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    let spliced = source.spliced();
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

/// The disk cache directory, or `None` when disabled or no home directory is known.
pub fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("KERNELYARD_CACHE_DIR") {
        Some(v) if v == "off" => None,
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(|v| PathBuf::from(v).join("kernelyard"))
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kernelyard"))
            }),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory (created if
/// missing) and a rename, so a crash never leaves a torn file at `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// The memory cache of loaded modules of one device, by source file: each is loaded once, on
/// first use, under a lock of its own. A slow first load (a compile) blocks only the callers
/// that need that same source, never a launch of a module already loaded; a failed load is
/// not remembered (the next call tries again).
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
            Arc::clone(slots.entry(file).or_default())
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

#[cfg(test)]
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
    fn fnv_separates_parts() {
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
    }

    #[test]
    fn writes_replace_the_file_whole() {
        let dir = std::env::temp_dir().join(format!("kernelyard-kernels-{}", std::process::id()));
        let path = dir.join("sub").join("x.cubin");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        // Only the file itself: the temporary name was renamed away.
        assert_eq!(std::fs::read_dir(dir.join("sub")).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
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
