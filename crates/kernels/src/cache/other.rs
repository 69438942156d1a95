//! The disk cache's checks where there is no Unix ownership model: only that the root is an
//! absolute directory (checked by the caller) and that entries are regular files. The
//! owner, mode and symbolic-link defences of `unix.rs` are not available here
//! (`docs/CACHE_SECURITY.md`).

use std::fs::{self, File, Metadata};
use std::io;
use std::path::Path;

use crate::cache::refusal::{CacheRefusal, Place};

/// Who the checks trust: nobody in particular (no ownership model).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity;

impl Identity {
    /// This process's.
    pub(crate) fn current() -> Identity {
        Identity
    }
}

/// Creates `dir` and every missing directory above it.
pub(crate) fn create_private_dirs(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

/// Checks that the cache root is a directory.
pub(crate) fn check_tree(dir: &Path, _who: Identity) -> Result<(), CacheRefusal> {
    let meta = fs::metadata(dir).map_err(|e| CacheRefusal::Inspect {
        what: Place::Directory,
        path: dir.to_owned(),
        error: e.to_string(),
    })?;
    if meta.is_dir() {
        Ok(())
    } else {
        Err(CacheRefusal::NotADirectory {
            what: Place::Directory,
            path: dir.to_owned(),
        })
    }
}

/// Opens an entry for reading.
pub(crate) fn open_entry(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// Never: links are followed here (the entry's metadata then says what it is).
pub(crate) fn is_link_error(_e: &io::Error) -> bool {
    false
}

/// Nothing to check beyond the entry being a regular file (checked by the caller).
pub(crate) fn check_entry(
    _path: &Path,
    _meta: &Metadata,
    _who: Identity,
) -> Result<(), CacheRefusal> {
    Ok(())
}

/// Nothing to do: no Unix modes.
pub(crate) fn make_private(_file: &File) -> io::Result<()> {
    Ok(())
}

/// Nothing to do: directories cannot be flushed through `std` here.
pub(crate) fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Always: no file identity to compare through `std` here.
pub(crate) fn still_names(_path: &Path, _meta: &Metadata) -> bool {
    true
}
