//! The disk cache's checks on Unix: who owns the directory, its parents and each entry, and
//! who may write them; directories created 0700 and entries 0600; entries opened without
//! following a symbolic link.

use std::fs::{self, DirBuilder, File, Metadata, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::cache::refusal::{CacheRefusal, Place};

/// Who the checks trust: this process's effective user (and root, for directories above the
/// cache).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The effective user id.
    pub(crate) euid: u32,
}

impl Identity {
    /// This process's.
    pub(crate) fn current() -> Identity {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        Identity { euid }
    }
}

/// Group- and other-write bits.
const GROUP_OTHER_WRITE: u32 = 0o022;
/// The sticky bit: in such a directory only a file's owner may rename or delete it.
const STICKY: u32 = 0o1000;

/// Whether a file owned by `uid` with permission bits `mode`, at `what`, may be trusted by
/// `who`. The cache directory and entries must be `who`'s and not writable by group or
/// others. A directory above the cache may also be root's, and writable by others if it has
/// the sticky bit (`/tmp`): then nobody else can rename the cache directory away.
pub(crate) fn judge(
    what: Place,
    path: &Path,
    uid: u32,
    mode: u32,
    who: Identity,
) -> Result<(), CacheRefusal> {
    let owner_ok = uid == who.euid || (what == Place::Parent && uid == 0);
    if !owner_ok {
        return Err(CacheRefusal::Owner {
            what,
            path: path.to_owned(),
            owner: uid,
            euid: who.euid,
        });
    }
    let writable = mode & GROUP_OTHER_WRITE != 0;
    let sticky = what == Place::Parent && mode & STICKY != 0;
    if writable && !sticky {
        return Err(CacheRefusal::Writable {
            what,
            path: path.to_owned(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Creates `dir` and every missing directory above it, each with mode 0700 (set again after
/// creation, so the umask neither widens nor narrows it). Directories that existed keep their
/// modes; one created meanwhile by someone else is left to the checks.
pub(crate) fn create_private_dirs(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut p = dir;
    loop {
        match fs::symlink_metadata(p) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(p);
                match p.parent() {
                    Some(parent) => p = parent,
                    None => break,
                }
            }
            Err(e) => return Err(e),
        }
    }
    for p in missing.into_iter().rev() {
        match DirBuilder::new().mode(0o700).create(p) {
            Ok(()) => {
                // Through a descriptor opened without following links: the mode lands on the
                // directory just made, whatever its name points at now.
                let d = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY)
                    .open(p)?;
                d.set_permissions(Permissions::from_mode(0o700))?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Checks the cache directory (`who`'s, not writable by group or others) and every directory
/// above it, both along the path as given and along its resolved form (so a symbolic link on
/// the way, and where it leads, are both covered).
pub(crate) fn check_tree(dir: &Path, who: Identity) -> Result<(), CacheRefusal> {
    let inspect = |what: Place, path: &Path, e: io::Error| CacheRefusal::Inspect {
        what,
        path: path.to_owned(),
        error: e.to_string(),
    };
    let meta = fs::metadata(dir).map_err(|e| inspect(Place::Directory, dir, e))?;
    if !meta.is_dir() {
        return Err(CacheRefusal::NotADirectory {
            what: Place::Directory,
            path: dir.to_owned(),
        });
    }
    judge(Place::Directory, dir, meta.uid(), meta.mode(), who)?;
    let real = fs::canonicalize(dir).map_err(|e| inspect(Place::Directory, dir, e))?;
    let parents = dir.ancestors().skip(1).chain(real.ancestors().skip(1));
    for parent in parents {
        let meta = fs::metadata(parent).map_err(|e| inspect(Place::Parent, parent, e))?;
        judge(Place::Parent, parent, meta.uid(), meta.mode(), who)?;
    }
    Ok(())
}

/// Opens an entry for reading without following a symbolic link (a link fails with
/// [`is_link_error`]) and without blocking on a FIFO.
pub(crate) fn open_entry(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// Whether an [`open_entry`] error says the entry is a symbolic link.
pub(crate) fn is_link_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// Checks an opened entry's owner and mode (from the open descriptor, so what was checked is
/// what is read).
pub(crate) fn check_entry(path: &Path, meta: &Metadata, who: Identity) -> Result<(), CacheRefusal> {
    judge(Place::Entry, path, meta.uid(), meta.mode(), who)
}

/// Gives a file being written mode 0600.
pub(crate) fn make_private(file: &File) -> io::Result<()> {
    file.set_permissions(Permissions::from_mode(0o600))
}

/// Flushes a directory's entries (a rename in it) to disk.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Whether `path` still names the file `meta` was taken from (so a file that another process
/// renamed onto the name meanwhile is not deleted in its place).
pub(crate) fn still_names(path: &Path, meta: &Metadata) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
}

/// The permission bits of `path` (for tests).
#[cfg(test)]
pub(crate) fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).map_or(0, |m| m.mode() & 0o7777)
}

/// Sets the permission bits of `path` (for tests).
#[cfg(test)]
pub(crate) fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, Permissions::from_mode(mode)).expect("chmod");
}
