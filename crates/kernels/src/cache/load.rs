//! What a backend's module load does with the disk cache, the same for both backends: find the
//! entry ([`DiskEntry::open`]), try its verified bytes, else compile, load and store
//! ([`load_or_compile`]); every reason the cache or an entry was not used is logged
//! ([`notes`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::cache::disk::{DiskCache, Read};
use crate::cache::entry::KeyDigest;
use crate::cache::refusal::CacheRefusal;
use crate::cache::root::cache_root;
use crate::cache::CacheKey;
use crate::source::KernelSource;

/// The reasons logged so far in this process, each once.
static NOTES: Mutex<Vec<CacheRefusal>> = Mutex::new(Vec::new());

/// How many distinct reasons are kept (and printed); later ones are dropped.
const MAX_NOTES: usize = 64;

/// Logs `reason` as a `tracing` warning and keeps it for [`notes`], the first time it occurs in
/// this process. (The library prints nothing itself: a subscriber decides; the CLI shows
/// warnings on stderr by default.)
pub(crate) fn note(reason: CacheRefusal) {
    let mut notes = NOTES.lock().unwrap_or_else(|e| e.into_inner());
    if notes.len() < MAX_NOTES && !notes.contains(&reason) {
        tracing::warn!(reason = %reason, "kernelyard: kernel cache not used");
        notes.push(reason);
    }
}

/// Every reason this process logged for not using the disk cache or one of its entries (the
/// first 64 distinct ones), oldest first: for `doctor` and for embedders' own logs.
pub fn notes() -> Vec<CacheRefusal> {
    NOTES.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// One module's place in the disk cache, for one load: the directory (when the cache is on
/// and trusted), the entry's name and its key.
#[derive(Debug)]
pub struct DiskEntry {
    cache: Option<DiskCache>,
    name: String,
    key: KeyDigest,
    /// Whether a compiled module may be stored: not when the entry there was refused (another
    /// owner, loose modes, unreadable now), which is left for the user to look at.
    writable: bool,
}

impl DiskEntry {
    /// The entry for `source` compiled as `key` says, in the cache the environment names
    /// ([`cache_root`]). Why the cache is off or refused is logged, and then this entry only
    /// compiles.
    pub fn open(source: &KernelSource, key: &CacheKey<'_>) -> DiskEntry {
        let root = cache_root();
        for reason in root.notes {
            note(reason);
        }
        DiskEntry::in_dir(root.dir.as_deref(), source, key)
    }

    /// The entry in the cache directory `dir` (`None`: no cache).
    pub fn in_dir(dir: Option<&Path>, source: &KernelSource, key: &CacheKey<'_>) -> DiskEntry {
        let (name, digest) = key.entry_id(source);
        let cache = dir.and_then(|d| DiskCache::open(d).map_err(note).ok());
        DiskEntry {
            writable: cache.is_some(),
            cache,
            name,
            key: digest,
        }
    }

    /// The entry's path, when the cache is on.
    pub fn path(&self) -> Option<PathBuf> {
        self.cache.as_ref().map(|c| c.dir().join(&self.name))
    }

    /// The verified payload, if a valid entry is there. A verified-bad entry was deleted; an
    /// untrusted or unreadable one is left and will not be replaced by [`DiskEntry::store`];
    /// either reason is logged.
    pub fn read(&mut self) -> Option<Vec<u8>> {
        let cache = self.cache.as_ref()?;
        match cache.read(&self.name, &self.key) {
            Read::Hit(bytes) => Some(bytes),
            Read::Miss => None,
            Read::Rejected(reason) => {
                note(reason);
                None
            }
            Read::Refused(reason) => {
                self.writable = false;
                note(reason);
                None
            }
        }
    }

    /// Stores `payload` (a module that compiled and loaded), unless the cache is off or the
    /// entry was refused. A failed write is logged and costs a compile next time, never a
    /// failure.
    pub fn store(&self, payload: &[u8]) {
        if let (true, Some(cache)) = (self.writable, &self.cache) {
            if let Err(reason) = cache.write(&self.name, &self.key, payload) {
                note(reason);
            }
        }
    }
}

/// A loaded module and where its code came from.
#[derive(Debug)]
pub struct Obtained<M> {
    /// What `load` returned.
    pub module: M,
    /// The code that was loaded.
    pub image: Vec<u8>,
    /// Whether the code came from the disk cache (else it was compiled).
    pub from_disk: bool,
}

/// Loads a module through the disk cache: the entry's verified bytes if `load` accepts them,
/// else `compile`'s, which are then stored. A verified entry that `load` refuses (a driver's
/// transient failure: out of memory, a busy device) is never deleted: the module is compiled
/// afresh, and the entry is replaced only by code that loaded. A compiled module that does not
/// load is an error (`load_failed`) and is not stored.
pub fn load_or_compile<M, L, E>(
    entry: &mut DiskEntry,
    mut load: impl FnMut(&[u8]) -> Result<M, L>,
    compile: impl FnOnce() -> Result<Vec<u8>, E>,
    load_failed: impl FnOnce(L) -> E,
) -> Result<Obtained<M>, E> {
    if let Some(image) = entry.read() {
        if let Ok(module) = load(&image) {
            return Ok(Obtained {
                module,
                image,
                from_disk: true,
            });
        }
    }
    let image = compile()?;
    let module = load(&image).map_err(load_failed)?;
    entry.store(&image);
    Ok(Obtained {
        module,
        image,
        from_disk: false,
    })
}
