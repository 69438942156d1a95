//! One cache directory: opened (created 0700, then its owner and modes checked), entries read
//! through every check, entries written whole.
//!
//! - **Open.** [`DiskCache::open`]: the directory must be absolute; missing directories are
//!   created with mode 0700; then the directory must be this user's and not writable by group or
//!   others, and every directory above it this user's or root's and not writable by others
//!   (unless sticky, as `/tmp`). Otherwise the cache is refused and the caller compiles in
//!   memory.
//! - **Read.** [`DiskCache::read`]: the entry is opened without following a symbolic link; it
//!   must be a regular file, this user's, not writable by group or others (else [`Read::Refused`]:
//!   left alone, not used), and a valid entry for the key ([`entry::decode`]: else
//!   [`Read::Rejected`]: deleted, if the name still names the file that was read).
//! - **Write.** [`DiskCache::write`]: a temporary file with a random name created exclusively in
//!   the same directory (`tempfile`: `O_EXCL`, so a planted file or symbolic link is never
//!   opened), mode 0600, the entry written, `fsync`ed, renamed onto the entry's name (a rename
//!   replaces a link there, never writes through it), then the directory `fsync`ed. Readers see
//!   the old entry or the new one, never a torn file.

use std::fs::{self, Metadata};
use std::io::{self, Read as _, Write as _};
use std::path::{Component, Path, PathBuf};

use crate::cache::entry::{self, KeyDigest, HEADER_LEN};
use crate::cache::os::{self, Identity};
use crate::cache::refusal::CacheRefusal;

/// The largest entry read (1 GiB): far above any compiled module (a few MB); a larger file is
/// not an entry.
pub const MAX_ENTRY_BYTES: u64 = 1 << 30;

/// A cache directory that passed [`DiskCache::open`]'s checks.
#[derive(Clone, Debug)]
pub struct DiskCache {
    dir: PathBuf,
    who: Identity,
}

/// What reading an entry found.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// A valid entry for the key: its payload.
    Hit(Vec<u8>),
    /// No entry of that name.
    Miss,
    /// Verified bad (not a regular file, too large, not a valid entry for the key): deleted.
    Rejected(CacheRefusal),
    /// Not trusted (another owner, writable by group or others) or not readable now: left as it
    /// is and not used. The caller compiles in memory and does not replace it.
    Refused(CacheRefusal),
}

impl DiskCache {
    /// The cache in `dir`, created (mode 0700) if missing, when it and the directories above it
    /// pass the checks (see the module docs).
    pub fn open(dir: &Path) -> Result<DiskCache, CacheRefusal> {
        DiskCache::open_as(dir, Identity::current())
    }

    /// [`DiskCache::open`] trusting `who` (tests pose as another user with it).
    pub(crate) fn open_as(dir: &Path, who: Identity) -> Result<DiskCache, CacheRefusal> {
        if !dir.is_absolute() {
            return Err(CacheRefusal::NotAbsolute {
                dir: dir.to_owned(),
            });
        }
        match fs::metadata(dir) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                os::create_private_dirs(dir).map_err(|e| CacheRefusal::CreateDir {
                    dir: dir.to_owned(),
                    error: e.to_string(),
                })?;
            }
            Err(e) => {
                return Err(CacheRefusal::Inspect {
                    what: crate::cache::refusal::Place::Directory,
                    path: dir.to_owned(),
                    error: e.to_string(),
                })
            }
        }
        os::check_tree(dir, who)?;
        Ok(DiskCache {
            dir: dir.to_owned(),
            who,
        })
    }

    /// This cache judging entries as `who` would (tests pose as another user with it).
    #[cfg(test)]
    pub(crate) fn posing_as(&self, who: Identity) -> DiskCache {
        DiskCache {
            dir: self.dir.clone(),
            who,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the entry `name`, when `name` is one plain file name.
    pub fn entry_path(&self, name: &str) -> Result<PathBuf, CacheRefusal> {
        let mut parts = Path::new(name).components();
        let plain = matches!(parts.next(), Some(Component::Normal(_)))
            && parts.next().is_none()
            && !name.contains(['/', '\\']);
        if plain {
            Ok(self.dir.join(name))
        } else {
            Err(CacheRefusal::BadName {
                name: name.to_owned(),
            })
        }
    }

    /// Reads the entry `name` for `key`, through every check (see the module docs).
    pub fn read(&self, name: &str, key: &KeyDigest) -> Read {
        let path = match self.entry_path(name) {
            Ok(p) => p,
            Err(r) => return Read::Refused(r),
        };
        let unreadable = |path: &Path, e: io::Error| {
            Read::Refused(CacheRefusal::Unreadable {
                path: path.to_owned(),
                error: e.to_string(),
            })
        };
        let mut file = match os::open_entry(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Read::Miss,
            Err(e) if os::is_link_error(&e) => {
                // Removing a link removes the link only, never what it points at.
                let _ = fs::remove_file(&path);
                return Read::Rejected(CacheRefusal::NotRegular { path });
            }
            Err(e) => return unreadable(&path, e),
        };
        let meta = match file.metadata() {
            Ok(m) => m,
            Err(e) => return unreadable(&path, e),
        };
        if !meta.is_file() {
            remove_if_same(&path, &meta);
            return Read::Rejected(CacheRefusal::NotRegular { path });
        }
        if let Err(r) = os::check_entry(&path, &meta, self.who) {
            return Read::Refused(r);
        }
        let too_large = |path: PathBuf, len: u64| {
            remove_if_same(&path, &meta);
            Read::Rejected(CacheRefusal::TooLarge { path, len })
        };
        if meta.len() > MAX_ENTRY_BYTES {
            return too_large(path, meta.len());
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        if let Err(e) = (&mut file)
            .take(MAX_ENTRY_BYTES + 1)
            .read_to_end(&mut bytes)
        {
            return unreadable(&path, e);
        }
        if bytes.len() as u64 > MAX_ENTRY_BYTES {
            return too_large(path, bytes.len() as u64);
        }
        match entry::decode(&bytes, key) {
            Ok(_) => {
                bytes.drain(..HEADER_LEN);
                Read::Hit(bytes)
            }
            Err(error) => {
                remove_if_same(&path, &meta);
                Read::Rejected(CacheRefusal::BadEntry { path, error })
            }
        }
    }

    /// Writes `payload` as the entry `name` for `key`, whole (see the module docs). An entry
    /// already there is replaced.
    pub fn write(&self, name: &str, key: &KeyDigest, payload: &[u8]) -> Result<(), CacheRefusal> {
        let path = self.entry_path(name)?;
        let failed = |e: io::Error| CacheRefusal::Write {
            path: path.clone(),
            error: e.to_string(),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .map_err(failed)?;
        os::make_private(tmp.as_file()).map_err(failed)?;
        tmp.write_all(&entry::header(key, payload))
            .and_then(|()| tmp.write_all(payload))
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(failed)?;
        // On failure the temporary file is dropped, which deletes it.
        tmp.persist(&path).map_err(|e| failed(e.error))?;
        // The rename is durable once the directory is flushed; where that fails, the entry is
        // still whole (at worst the old one, or none, after a crash).
        let _ = os::sync_dir(&self.dir);
        Ok(())
    }
}

/// Deletes `path` if it still names the file `meta` describes.
fn remove_if_same(path: &Path, meta: &Metadata) {
    if os::still_names(path, meta) {
        let _ = fs::remove_file(path);
    }
}
