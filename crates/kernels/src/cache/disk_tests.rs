//! The disk cache against the attacks and accidents of `docs/CACHE_SECURITY.md`, on a real
//! file system (Unix: the owner and mode checks are Unix's). Changing a file's owner needs
//! root, so the owner checks are driven through the identity the cache trusts
//! ([`DiskCache::open_as`], [`DiskCache::posing_as`]) and [`judge`].

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::cache::disk::{DiskCache, Read};
use crate::cache::entry::{self, EntryError, KeyDigest, HEADER_LEN};
use crate::cache::load::{load_or_compile, notes, DiskEntry};
use crate::cache::refusal::{CacheRefusal, Place};
use crate::cache::unix::{judge, mode_of, set_mode, Identity};
use crate::cache::CacheKey;
use crate::source::KernelSource;

const KEY: KeyDigest = KeyDigest([1; 32]);
const OTHER_KEY: KeyDigest = KeyDigest([2; 32]);
const NAME: &str = "rms_norm-sm_90a-0123456789abcdef.cubin";
const CUBIN: &[u8] = b"\x7fELF pretend cubin bytes";

/// A fresh directory for one test (mode 0700, removed when dropped).
fn base() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn cache_in(base: &Path) -> DiskCache {
    DiskCache::open(&base.join("cache")).expect("a fresh cache directory is trusted")
}

fn me() -> Identity {
    Identity::current()
}

/// Files in `dir`, by name.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_relative_directory_is_refused() {
    assert_eq!(
        DiskCache::open(Path::new("kernelyard-cache")).unwrap_err(),
        CacheRefusal::NotAbsolute {
            dir: PathBuf::from("kernelyard-cache")
        }
    );
    assert!(!Path::new("kernelyard-cache").exists());
}

#[test]
fn new_directories_are_0700_and_existing_ones_keep_their_mode() {
    let base = base();
    set_mode(base.path(), 0o755);
    let dir = base.path().join("a").join("b").join("kernelyard");
    let cache = DiskCache::open(&dir).expect("created");
    assert_eq!(cache.dir(), dir);
    for made in [base.path().join("a"), base.path().join("a/b"), dir.clone()] {
        assert_eq!(mode_of(&made), 0o700, "{}", made.display());
    }
    assert_eq!(mode_of(base.path()), 0o755);
    // Opening again changes nothing.
    DiskCache::open(&dir).expect("reopened");
    assert_eq!(mode_of(&dir), 0o700);
}

#[test]
fn entries_are_written_0600_and_read_back() {
    let base = base();
    let cache = cache_in(base.path());
    assert_eq!(cache.read(NAME, &KEY), Read::Miss);
    cache.write(NAME, &KEY, CUBIN).expect("write");
    let path = cache.dir().join(NAME);
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(fs::read(&path).unwrap(), entry::encode(&KEY, CUBIN));
    assert_eq!(cache.read(NAME, &KEY), Read::Hit(CUBIN.to_vec()));
    // A rewrite replaces it whole; no temporary file is left.
    cache.write(NAME, &KEY, b"two").expect("rewrite");
    assert_eq!(cache.read(NAME, &KEY), Read::Hit(b"two".to_vec()));
    assert_eq!(listing(cache.dir()), vec![NAME.to_owned()]);
}

#[test]
fn a_group_or_other_writable_directory_is_refused() {
    for mode in [0o770, 0o720, 0o702, 0o777] {
        let base = base();
        let dir = base.path().join("cache");
        fs::create_dir(&dir).unwrap();
        set_mode(&dir, mode);
        assert_eq!(
            DiskCache::open(&dir).unwrap_err(),
            CacheRefusal::Writable {
                what: Place::Directory,
                path: dir.clone(),
                mode
            },
            "mode {mode:o}"
        );
    }
    // Readable by others is fine: the code is not secret, only its integrity matters.
    let base = base();
    let dir = base.path().join("cache");
    fs::create_dir(&dir).unwrap();
    set_mode(&dir, 0o755);
    DiskCache::open(&dir).expect("0755 is not writable by others");
}

#[test]
fn a_writable_directory_above_is_refused_unless_sticky() {
    let base = base();
    let parent = base.path().join("shared");
    fs::create_dir(&parent).unwrap();
    set_mode(&parent, 0o777);
    let dir = parent.join("cache");
    let refusal = DiskCache::open(&dir).unwrap_err();
    assert_eq!(
        refusal,
        CacheRefusal::Writable {
            what: Place::Parent,
            path: parent.clone(),
            mode: 0o777
        }
    );
    let text = refusal.to_string();
    assert!(
        text.contains("writable by group or others (mode 0777)"),
        "{text}"
    );
    // With the sticky bit (as /tmp), nobody else can rename the cache directory away.
    set_mode(&parent, 0o1777);
    DiskCache::open(&dir).expect("a sticky parent is fine");
}

#[test]
fn a_link_to_a_directory_is_judged_where_it_leads_and_where_it_sits() {
    let base = base();
    let real = base.path().join("real");
    fs::create_dir(&real).unwrap();
    set_mode(&real, 0o700);
    let link = base.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    DiskCache::open(&link).expect("a link to a private directory");
    // The directory the link leads into is loose: refused.
    let loose = base.path().join("loose");
    fs::create_dir(&loose).unwrap();
    let inner = loose.join("cache");
    fs::create_dir(&inner).unwrap();
    set_mode(&inner, 0o700);
    set_mode(&loose, 0o777);
    let link2 = base.path().join("link2");
    std::os::unix::fs::symlink(&inner, &link2).unwrap();
    assert!(matches!(
        DiskCache::open(&link2).unwrap_err(),
        CacheRefusal::Writable { what: Place::Parent, path, .. } if path == loose
    ));
}

#[test]
fn a_directory_or_entry_of_another_user_is_refused() {
    let real = me();
    let stranger = Identity {
        euid: real.euid.wrapping_add(4242),
    };
    let base = base();
    let dir = base.path().join("cache");
    // The directory, seen by another user: not theirs.
    DiskCache::open(&dir).expect("mine");
    assert_eq!(
        DiskCache::open_as(&dir, stranger).unwrap_err(),
        CacheRefusal::Owner {
            what: Place::Directory,
            path: dir.clone(),
            owner: real.euid,
            euid: stranger.euid
        }
    );
    // An entry, in a directory this user trusts, written by someone else: refused and left.
    let cache = DiskCache::open(&dir).unwrap();
    cache.write(NAME, &KEY, CUBIN).unwrap();
    let as_stranger = cache.posing_as(stranger);
    assert_eq!(
        as_stranger.read(NAME, &KEY),
        Read::Refused(CacheRefusal::Owner {
            what: Place::Entry,
            path: dir.join(NAME),
            owner: real.euid,
            euid: stranger.euid
        })
    );
    assert_eq!(
        fs::read(dir.join(NAME)).unwrap(),
        entry::encode(&KEY, CUBIN)
    );
}

#[test]
fn owners_are_compared_with_the_trusted_user() {
    let p = Path::new("/x");
    let me = Identity { euid: 1000 };
    assert_eq!(judge(Place::Directory, p, 1000, 0o700, me), Ok(()));
    assert_eq!(judge(Place::Entry, p, 1000, 0o644, me), Ok(()));
    // Root may own directories above the cache, not the cache or its entries.
    assert_eq!(judge(Place::Parent, p, 0, 0o755, me), Ok(()));
    for what in [Place::Directory, Place::Entry] {
        assert!(matches!(
            judge(what, p, 0, 0o700, me),
            Err(CacheRefusal::Owner {
                owner: 0,
                euid: 1000,
                ..
            })
        ));
    }
    assert!(matches!(
        judge(Place::Parent, p, 1001, 0o755, me),
        Err(CacheRefusal::Owner { owner: 1001, .. })
    ));
    // The sticky bit excuses loose modes only above the cache.
    assert_eq!(judge(Place::Parent, p, 0, 0o1777, me), Ok(()));
    assert!(judge(Place::Directory, p, 1000, 0o1777, me).is_err());
    assert!(judge(Place::Entry, p, 1000, 0o666, me).is_err());
    assert!(judge(Place::Parent, p, 1000, 0o775, me).is_err());
}

#[test]
fn a_loose_entry_is_refused_and_not_replaced() {
    let base = base();
    let cache = cache_in(base.path());
    cache.write(NAME, &KEY, CUBIN).unwrap();
    let path = cache.dir().join(NAME);
    set_mode(&path, 0o664);
    assert_eq!(
        cache.read(NAME, &KEY),
        Read::Refused(CacheRefusal::Writable {
            what: Place::Entry,
            path: path.clone(),
            mode: 0o664
        })
    );
    assert!(path.exists());
}

#[test]
fn a_tampered_payload_is_rejected_and_deleted() {
    let base = base();
    let cache = cache_in(base.path());
    cache.write(NAME, &KEY, CUBIN).unwrap();
    let path = cache.dir().join(NAME);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    assert_eq!(
        cache.read(NAME, &KEY),
        Read::Rejected(CacheRefusal::BadEntry {
            path: path.clone(),
            error: EntryError::Digest
        })
    );
    assert!(!path.exists(), "a verified-bad entry is deleted");
    assert_eq!(cache.read(NAME, &KEY), Read::Miss);
}

#[test]
fn an_entry_of_another_key_is_rejected() {
    let base = base();
    let cache = cache_in(base.path());
    // A valid entry of another key, renamed onto this name.
    cache.write("other.cubin", &OTHER_KEY, CUBIN).unwrap();
    fs::rename(cache.dir().join("other.cubin"), cache.dir().join(NAME)).unwrap();
    assert_eq!(
        cache.read(NAME, &KEY),
        Read::Rejected(CacheRefusal::BadEntry {
            path: cache.dir().join(NAME),
            error: EntryError::OtherKey {
                found: OTHER_KEY,
                expected: KEY
            }
        })
    );
    assert!(!cache.dir().join(NAME).exists());
    // A raw cubin with no header (what earlier releases wrote) is not an entry either.
    fs::write(cache.dir().join(NAME), CUBIN).unwrap();
    set_mode(&cache.dir().join(NAME), 0o600);
    assert!(matches!(
        cache.read(NAME, &KEY),
        Read::Rejected(CacheRefusal::BadEntry {
            error: EntryError::ShortHeader { .. } | EntryError::Magic,
            ..
        })
    ));
}

#[test]
fn a_truncated_entry_is_rejected() {
    let base = base();
    let cache = cache_in(base.path());
    let path = cache.dir().join(NAME);
    for keep in [HEADER_LEN + CUBIN.len() - 1, HEADER_LEN, HEADER_LEN - 1, 0] {
        cache.write(NAME, &KEY, CUBIN).unwrap();
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..keep]).unwrap();
        let expected = if keep >= HEADER_LEN {
            EntryError::Length {
                header: CUBIN.len() as u64,
                actual: (keep - HEADER_LEN) as u64,
            }
        } else {
            EntryError::ShortHeader { len: keep }
        };
        assert_eq!(
            cache.read(NAME, &KEY),
            Read::Rejected(CacheRefusal::BadEntry {
                path: path.clone(),
                error: expected
            }),
            "{keep} bytes kept"
        );
        assert!(!path.exists());
    }
}

#[test]
fn planted_links_are_never_written_through() {
    let base = base();
    let cache = cache_in(base.path());
    let victim = base.path().join("victim.txt");
    fs::write(&victim, b"precious").unwrap();
    let path = cache.dir().join(NAME);
    // The temporary name earlier releases used (`<file>.tmp.<pid>`), names in the shape the
    // writer uses now, and the final name: all links to the victim.
    let planted = [
        cache.dir().join(format!(
            "rms_norm-sm_90a-0123456789abcdef.tmp.{}",
            std::process::id()
        )),
        cache.dir().join(format!(".{NAME}.tmp")),
        cache.dir().join(format!(".{NAME}.aaaaaa.tmp")),
        path.clone(),
    ];
    for p in &planted {
        std::os::unix::fs::symlink(&victim, p).unwrap();
    }
    // Reading follows no link: the one at the entry's name is removed, the victim kept.
    assert_eq!(
        cache.read(NAME, &KEY),
        Read::Rejected(CacheRefusal::NotRegular { path: path.clone() })
    );
    assert!(fs::symlink_metadata(&path).is_err());
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    // Writing replaces the link at the final name with the entry; nothing reaches the victim.
    cache.write(NAME, &KEY, CUBIN).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_file());
    assert_eq!(cache.read(NAME, &KEY), Read::Hit(CUBIN.to_vec()));
    for p in &planted[..3] {
        assert!(fs::symlink_metadata(p).unwrap().file_type().is_symlink());
    }
}

#[test]
fn something_other_than_a_file_at_the_entry_name_is_rejected() {
    let base = base();
    let cache = cache_in(base.path());
    let path = cache.dir().join(NAME);
    fs::create_dir(&path).unwrap();
    assert_eq!(
        cache.read(NAME, &KEY),
        Read::Rejected(CacheRefusal::NotRegular { path: path.clone() })
    );
}

#[test]
fn names_with_path_separators_are_refused() {
    let base = base();
    let cache = cache_in(base.path());
    for bad in [
        "../x.cubin",
        "a/b.cubin",
        "..",
        ".",
        "",
        "/etc/passwd",
        "a\\b",
    ] {
        assert_eq!(
            cache.write(bad, &KEY, CUBIN).unwrap_err(),
            CacheRefusal::BadName { name: bad.into() },
            "{bad:?}"
        );
        assert!(matches!(
            cache.read(bad, &KEY),
            Read::Refused(CacheRefusal::BadName { .. })
        ));
    }
    assert!(!base.path().join("x.cubin").exists());
}

#[test]
fn concurrent_writers_of_one_key_leave_one_valid_entry() {
    let base = base();
    let cache = Arc::new(cache_in(base.path()));
    let payload: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let payload = Arc::new(payload);
    let bad_reads = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (cache, payload, bad_reads) = (
                Arc::clone(&cache),
                Arc::clone(&payload),
                Arc::clone(&bad_reads),
            );
            std::thread::spawn(move || {
                for _ in 0..25 {
                    if t % 2 == 0 {
                        cache.write(NAME, &KEY, &payload).expect("write");
                    } else {
                        // A reader sees no entry yet or a whole one, never a torn one.
                        match cache.read(NAME, &KEY) {
                            Read::Hit(b) if b == *payload => {}
                            Read::Miss => {}
                            _ => {
                                bad_reads.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(bad_reads.load(Ordering::SeqCst), 0);
    assert_eq!(listing(cache.dir()), vec![NAME.to_owned()]);
    assert_eq!(cache.read(NAME, &KEY), Read::Hit(payload.to_vec()));
}

static SOURCE: KernelSource = KernelSource {
    file: "a.cu",
    code: "extern \"C\" __global__ void a() {}",
    symbols: &["a"],
};

const CACHE_KEY: CacheKey<'static> = CacheKey {
    format: "kernelyard-test-2",
    target: "sm_90a",
    options: &["-std=c++17"],
    compiler: "13.0.0",
    ext: "cubin",
};

/// One load through `load_or_compile` with counters: the module is the bytes loaded; `fail`
/// makes the next loads of cached bytes fail.
struct Loads {
    compiles: AtomicUsize,
    fail_cached: AtomicUsize,
}

impl Loads {
    fn new() -> Self {
        Loads {
            compiles: AtomicUsize::new(0),
            fail_cached: AtomicUsize::new(0),
        }
    }

    fn run(&self, dir: &Path) -> Result<(Vec<u8>, bool), String> {
        let mut entry = DiskEntry::in_dir(Some(dir), &SOURCE, &CACHE_KEY);
        let mut first = true;
        let got = load_or_compile(
            &mut entry,
            |bytes: &[u8]| {
                let cached = std::mem::replace(&mut first, false);
                if cached && self.fail_cached.load(Ordering::SeqCst) > 0 {
                    self.fail_cached.fetch_sub(1, Ordering::SeqCst);
                    return Err("CUDA_ERROR_OUT_OF_MEMORY".to_owned());
                }
                Ok(bytes.to_vec())
            },
            || {
                self.compiles.fetch_add(1, Ordering::SeqCst);
                Ok(CUBIN.to_vec())
            },
            |e| format!("compiled code did not load: {e}"),
        )?;
        assert_eq!(got.module, got.image);
        Ok((got.module, got.from_disk))
    }
}

#[test]
fn loads_compile_once_then_read_the_verified_entry() {
    let base = base();
    let dir = base.path().join("cache");
    let loads = Loads::new();
    assert_eq!(loads.run(&dir), Ok((CUBIN.to_vec(), false)));
    assert_eq!(loads.run(&dir), Ok((CUBIN.to_vec(), true)));
    assert_eq!(loads.compiles.load(Ordering::SeqCst), 1);
    let (name, key) = CACHE_KEY.entry_id(&SOURCE);
    assert_eq!(listing(&dir), vec![name.clone()]);
    assert_eq!(
        DiskCache::open(&dir).unwrap().read(&name, &key),
        Read::Hit(CUBIN.to_vec())
    );
}

#[test]
fn a_transient_load_failure_keeps_a_good_entry() {
    let base = base();
    let dir = base.path().join("cache");
    let loads = Loads::new();
    loads.run(&dir).unwrap();
    let (name, _) = CACHE_KEY.entry_id(&SOURCE);
    let written = fs::metadata(dir.join(&name)).unwrap();
    // The driver refuses the cached bytes once (out of memory): the module is compiled afresh.
    loads.fail_cached.store(1, Ordering::SeqCst);
    assert_eq!(loads.run(&dir), Ok((CUBIN.to_vec(), false)));
    assert_eq!(loads.compiles.load(Ordering::SeqCst), 2);
    // The entry was never deleted (at most replaced by code that loaded), and serves again.
    let after = fs::metadata(dir.join(&name)).expect("entry still there");
    assert_eq!(after.len(), written.len());
    assert_eq!(loads.run(&dir), Ok((CUBIN.to_vec(), true)));
    assert_eq!(loads.compiles.load(Ordering::SeqCst), 2);
}

#[test]
fn a_corrupt_entry_is_recompiled_and_replaced() {
    let base = base();
    let dir = base.path().join("cache");
    let loads = Loads::new();
    loads.run(&dir).unwrap();
    let (name, _) = CACHE_KEY.entry_id(&SOURCE);
    let path = dir.join(&name);
    let mut bytes = fs::read(&path).unwrap();
    bytes[HEADER_LEN] ^= 0x80;
    fs::write(&path, &bytes).unwrap();
    assert_eq!(loads.run(&dir), Ok((CUBIN.to_vec(), false)));
    assert_eq!(loads.compiles.load(Ordering::SeqCst), 2);
    assert_eq!(loads.run(&dir), Ok((CUBIN.to_vec(), true)));
    assert!(notes().iter().any(|n| matches!(
        n,
        CacheRefusal::BadEntry { path: p, error: EntryError::Digest } if *p == path
    )));
}

#[test]
fn a_refused_cache_compiles_in_memory_and_writes_nothing() {
    let base = base();
    let dir = base.path().join("cache");
    fs::create_dir(&dir).unwrap();
    set_mode(&dir, 0o775);
    let loads = Loads::new();
    assert_eq!(loads.run(&dir), Ok((CUBIN.to_vec(), false)));
    assert_eq!(loads.run(&dir), Ok((CUBIN.to_vec(), false)));
    assert_eq!(loads.compiles.load(Ordering::SeqCst), 2);
    assert!(listing(&dir).is_empty());
    assert!(notes().contains(&CacheRefusal::Writable {
        what: Place::Directory,
        path: dir.clone(),
        mode: 0o775
    }));
    // A refused entry is neither used nor replaced.
    set_mode(&dir, 0o700);
    let (name, key) = CACHE_KEY.entry_id(&SOURCE);
    let cache = DiskCache::open(&dir).unwrap();
    cache.write(&name, &key, b"someone else's code").unwrap();
    set_mode(&dir.join(&name), 0o666);
    assert_eq!(loads.run(&dir), Ok((CUBIN.to_vec(), false)));
    assert_eq!(
        entry::decode(&fs::read(dir.join(&name)).unwrap(), &key),
        Ok(&b"someone else's code"[..])
    );
}

#[test]
fn a_compiled_module_that_does_not_load_is_an_error_and_not_stored() {
    let base = base();
    let dir = base.path().join("cache");
    let mut entry = DiskEntry::in_dir(Some(&dir), &SOURCE, &CACHE_KEY);
    let got: Result<_, String> = load_or_compile(
        &mut entry,
        |_: &[u8]| Err::<(), _>("CUDA_ERROR_INVALID_IMAGE"),
        || Ok(CUBIN.to_vec()),
        |e| format!("load: {e}"),
    );
    assert_eq!(got.unwrap_err(), "load: CUDA_ERROR_INVALID_IMAGE");
    assert!(listing(&dir).is_empty());
}
