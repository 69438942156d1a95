//! Why the disk cache, or one of its entries, was not used: the reasons a backend logs (once
//! per process, see [`notes`](crate::cache::notes)) before it compiles in memory instead.

use std::path::PathBuf;

use crate::cache::entry::EntryError;

/// What a check was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The cache directory itself.
    Directory,
    /// A directory above it (it could swap the cache directory for another).
    Parent,
    /// One cache entry.
    Entry,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Place::Directory => "the kernel cache directory",
            Place::Parent => "the directory above the kernel cache",
            Place::Entry => "the kernel cache entry",
        })
    }
}

/// Why the disk cache or an entry of it was not used. Each names what was found and what to
/// do about it; none is an error of the caller's operation (the kernel is compiled in memory
/// instead).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheRefusal {
    /// A variable that would name the cache root holds a relative path: the cache is off
    /// rather than relative to the working directory.
    #[error(
        "{var}={value:?} is not an absolute path, so the kernel cache is off (a cache relative \
         to the working directory would load whatever code is there); set {var} to an \
         absolute directory, or KERNELYARD_CACHE_DIR=off"
    )]
    RelativeRoot {
        /// The variable (`KERNELYARD_CACHE_DIR`, `HOME`).
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// `XDG_CACHE_HOME` holds a relative path: ignored, as the XDG base directory rules say,
    /// and the next source (`HOME`) is used.
    #[error(
        "XDG_CACHE_HOME={value:?} is not an absolute path and is ignored for the kernel cache \
         (the XDG base directory rules); set it to an absolute directory"
    )]
    IgnoredXdg {
        /// Its value.
        value: String,
    },
    /// No variable names a cache root.
    #[error(
        "HOME is {state} and neither KERNELYARD_CACHE_DIR nor XDG_CACHE_HOME names a \
         directory, so the kernel cache is off; set KERNELYARD_CACHE_DIR to an absolute \
         directory, or KERNELYARD_CACHE_DIR=off to say so"
    )]
    NoHome {
        /// `empty` or `not set`.
        state: &'static str,
    },
    /// A cache directory that is not an absolute path.
    #[error("the kernel cache directory {} is not an absolute path; the cache is off", .dir.display())]
    NotAbsolute {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory (or a directory above it) could not be created.
    #[error("cannot create the kernel cache directory {}: {error}; the cache is off", .dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// What the OS said.
        error: String,
    },
    /// The cache directory or a directory above it could not be inspected.
    #[error("cannot inspect {what} {}: {error}; the cache is off", .path.display())]
    Inspect {
        /// What was inspected.
        what: Place,
        /// Its path.
        path: PathBuf,
        /// What the OS said.
        error: String,
    },
    /// The cache root is not a directory.
    #[error("{what} {} is not a directory; the cache is off", .path.display())]
    NotADirectory {
        /// What was inspected.
        what: Place,
        /// Its path.
        path: PathBuf,
    },
    /// Owned by someone this process does not trust with its code: another user (the cache
    /// directory and entries must be this process's user's; directories above them this user's
    /// or root's).
    #[error(
        "{what} {} is owned by uid {owner}, not by this process's user (uid {euid}){}; it is \
         not used (anyone who can write it could make this process run their GPU code): \
         remove it or point KERNELYARD_CACHE_DIR at a directory of your own",
        .path.display(),
        if matches!(.what, Place::Parent) { " or root" } else { "" }
    )]
    Owner {
        /// What was inspected.
        what: Place,
        /// Its path.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// This process's effective user.
        euid: u32,
    },
    /// Writable by group or others (a directory above the cache may be, with the sticky bit).
    #[error(
        "{what} {} is writable by group or others (mode {mode:04o}); it is not used (they \
         could plant or alter GPU code): `chmod go-w` it, or remove it",
        .path.display()
    )]
    Writable {
        /// What was inspected.
        what: Place,
        /// Its path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The entry is not a regular file (a symbolic link, a FIFO, a directory): deleted where
    /// possible, and recompiled.
    #[error("the kernel cache entry {} is not a regular file; it was removed", .path.display())]
    NotRegular {
        /// Its path.
        path: PathBuf,
    },
    /// The entry is larger than any compiled module: deleted and recompiled.
    #[error("the kernel cache entry {} has {len} bytes, more than an entry may; it was removed", .path.display())]
    TooLarge {
        /// Its path.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The entry failed verification: deleted and recompiled.
    #[error("the kernel cache entry {} is invalid: {error}; it was removed", .path.display())]
    BadEntry {
        /// Its path.
        path: PathBuf,
        /// What the check found.
        error: EntryError,
    },
    /// The entry could not be read (an I/O error that may pass): left as it is; the kernel
    /// is compiled in memory this time.
    #[error("cannot read the kernel cache entry {}: {error}; compiled in memory", .path.display())]
    Unreadable {
        /// Its path.
        path: PathBuf,
        /// What the OS said.
        error: String,
    },
    /// An entry could not be written (a full disk, a read-only file system): the next process
    /// compiles again.
    #[error("cannot write the kernel cache entry {}: {error}", .path.display())]
    Write {
        /// The entry's path.
        path: PathBuf,
        /// What the OS said.
        error: String,
    },
    /// An entry name that is not one plain file name (a path separator, `..`): a backend bug.
    #[error("{name:?} is not a plain file name for a kernel cache entry")]
    BadName {
        /// The name.
        name: String,
    },
}
