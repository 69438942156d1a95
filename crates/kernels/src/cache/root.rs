//! Where the disk cache lives: the first of `KERNELYARD_CACHE_DIR`, `$XDG_CACHE_HOME/kernelyard`
//! and `$HOME/.cache/kernelyard` that is set, and only if it is an absolute path.
//!
//! - `KERNELYARD_CACHE_DIR=off` (any case, surrounding white space ignored: `OFF`, ` off `)
//!   turns the cache off. An empty `KERNELYARD_CACHE_DIR` counts as unset. A relative one
//!   turns the cache off with a [`CacheRefusal::RelativeRoot`]: the user named a directory, and
//!   silently using another would surprise them.
//! - An empty `XDG_CACHE_HOME` counts as unset; a relative one is ignored
//!   ([`CacheRefusal::IgnoredXdg`]), as the XDG base directory rules say.
//! - An unset or empty `HOME` ([`CacheRefusal::NoHome`]) or a relative one
//!   ([`CacheRefusal::RelativeRoot`]) leaves no cache.
//!
//! So the cache is never relative to the working directory, where whoever controls that
//! directory would choose the code the process loads.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use crate::cache::refusal::CacheRefusal;

/// The cache root the environment names, and the reasons for every source skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    /// The cache directory (absolute), or `None`: the cache is off (by `off`, or for the reason
    /// in `notes`).
    pub dir: Option<PathBuf>,
    /// Why a source was skipped or the cache is off (empty for `off` and for a usable root
    /// found at the first try).
    pub notes: Vec<CacheRefusal>,
}

/// Whether a `KERNELYARD_CACHE_DIR` value means "off": `off` in any case, white space around
/// it ignored.
pub fn is_off(value: &OsStr) -> bool {
    value
        .to_str()
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("off"))
}

/// The cache root of this process's environment.
pub fn cache_root() -> Root {
    root_from(|var| std::env::var_os(var))
}

/// The cache root that the variables `env` returns name (`env("HOME")` is `HOME`'s value):
/// [`cache_root`] with the environment passed in, for tests and embedders.
pub fn root_from(env: impl Fn(&str) -> Option<OsString>) -> Root {
    let mut notes = Vec::new();
    let set = |var: &str| env(var).filter(|v| !v.is_empty());
    if let Some(v) = set("KERNELYARD_CACHE_DIR") {
        if is_off(&v) {
            return Root { dir: None, notes };
        }
        return absolute("KERNELYARD_CACHE_DIR", v, notes);
    }
    if let Some(v) = set("XDG_CACHE_HOME") {
        let p = PathBuf::from(&v);
        if p.is_absolute() {
            return Root {
                dir: Some(p.join("kernelyard")),
                notes,
            };
        }
        notes.push(CacheRefusal::IgnoredXdg {
            value: v.to_string_lossy().into_owned(),
        });
    }
    match env("HOME") {
        None => {
            notes.push(CacheRefusal::NoHome { state: "not set" });
            Root { dir: None, notes }
        }
        Some(h) if h.is_empty() => {
            notes.push(CacheRefusal::NoHome { state: "empty" });
            Root { dir: None, notes }
        }
        Some(h) => {
            let mut root = absolute("HOME", h, notes);
            root.dir = root.dir.map(|d| d.join(".cache").join("kernelyard"));
            root
        }
    }
}

/// `value` as the root if it is absolute, else no cache and the reason.
fn absolute(var: &'static str, value: OsString, mut notes: Vec<CacheRefusal>) -> Root {
    let p = PathBuf::from(&value);
    if p.is_absolute() {
        return Root {
            dir: Some(p),
            notes,
        };
    }
    notes.push(CacheRefusal::RelativeRoot {
        var,
        value: value.to_string_lossy().into_owned(),
    });
    Root { dir: None, notes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(vars: &[(&str, &str)]) -> Root {
        root_from(|var| {
            vars.iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| OsString::from(v))
        })
    }

    fn dir(p: &str) -> Option<PathBuf> {
        Some(PathBuf::from(p))
    }

    #[test]
    fn sources_are_taken_in_order() {
        let all = [
            ("KERNELYARD_CACHE_DIR", "/k"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(root(&all).dir, dir("/k"));
        assert_eq!(root(&all[1..]).dir, dir("/x/kernelyard"));
        assert_eq!(root(&all[2..]).dir, dir("/h/.cache/kernelyard"));
        for vars in [&all[..], &all[1..], &all[2..]] {
            assert_eq!(root(vars).notes, vec![]);
        }
    }

    #[test]
    fn off_is_case_and_white_space_insensitive() {
        for off in ["off", "OFF", "Off", " off ", "\toff\n", "oFf "] {
            let r = root(&[("KERNELYARD_CACHE_DIR", off), ("HOME", "/h")]);
            assert_eq!(
                r,
                Root {
                    dir: None,
                    notes: vec![]
                },
                "{off:?}"
            );
        }
        // Not "off": a relative directory of that name is refused, never used.
        for not_off in ["of f", "offf", "./off"] {
            let r = root(&[("KERNELYARD_CACHE_DIR", not_off), ("HOME", "/h")]);
            assert_eq!(r.dir, None, "{not_off:?}");
            assert!(
                matches!(&r.notes[..], [CacheRefusal::RelativeRoot { var: "KERNELYARD_CACHE_DIR", value }] if value == not_off),
                "{not_off:?}: {:?}",
                r.notes
            );
        }
    }

    #[test]
    fn a_relative_root_is_refused_never_taken_from_the_working_directory() {
        // The user named a directory: the cache is off rather than elsewhere.
        let r = root(&[("KERNELYARD_CACHE_DIR", "cache"), ("HOME", "/h")]);
        assert_eq!(r.dir, None);
        assert_eq!(
            r.notes,
            vec![CacheRefusal::RelativeRoot {
                var: "KERNELYARD_CACHE_DIR",
                value: "cache".into()
            }]
        );
        let text = r.notes[0].to_string();
        assert!(
            text.contains("not an absolute path") && text.contains("off"),
            "{text}"
        );

        // A relative XDG_CACHE_HOME is ignored (the XDG rules); HOME is used.
        let r = root(&[("XDG_CACHE_HOME", "rel/cache"), ("HOME", "/h")]);
        assert_eq!(r.dir, dir("/h/.cache/kernelyard"));
        assert_eq!(
            r.notes,
            vec![CacheRefusal::IgnoredXdg {
                value: "rel/cache".into()
            }]
        );

        // A relative HOME leaves no cache.
        let r = root(&[("XDG_CACHE_HOME", "x"), ("HOME", "home")]);
        assert_eq!(r.dir, None);
        assert_eq!(r.notes.len(), 2);
        assert_eq!(
            r.notes[1],
            CacheRefusal::RelativeRoot {
                var: "HOME",
                value: "home".into()
            }
        );
    }

    #[test]
    fn an_empty_or_missing_home_leaves_no_cache() {
        let r = root(&[("HOME", "")]);
        assert_eq!(r.dir, None);
        assert_eq!(r.notes, vec![CacheRefusal::NoHome { state: "empty" }]);
        let r = root(&[]);
        assert_eq!(r.dir, None);
        assert_eq!(r.notes, vec![CacheRefusal::NoHome { state: "not set" }]);
        // Empty KERNELYARD_CACHE_DIR and XDG_CACHE_HOME count as unset.
        let r = root(&[
            ("KERNELYARD_CACHE_DIR", ""),
            ("XDG_CACHE_HOME", ""),
            ("HOME", ""),
        ]);
        assert_eq!(r.dir, None);
        assert_eq!(r.notes, vec![CacheRefusal::NoHome { state: "empty" }]);
        let r = root(&[
            ("KERNELYARD_CACHE_DIR", ""),
            ("XDG_CACHE_HOME", ""),
            ("HOME", "/h"),
        ]);
        assert_eq!(r.dir, dir("/h/.cache/kernelyard"));
    }
}
