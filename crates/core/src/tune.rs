//! Tuning keys and the persistent tuning cache: the data half of autotuning (issue 16).
//!
//! Selection reads the cache for tuned policies ([`Policy::tuned`](crate::Policy)); the tuner
//! that fills it is `kernelyard_suite::tune` (`kernelyard tune`). Status, decisions and next
//! steps: `docs/TUNING.md`.
//!
//! # Keys ([`TuningKey`])
//! A key is the problem with its sizes coarsened to what changes the best choice:
//! - the fields an operator lists in [`Op::BUCKETED`](crate::Op::BUCKETED) (sizes such as rows,
//!   hidden, m, n, k) become their power-of-two bucket `ceil(log2 v)`;
//! - every other field stays exact: dtypes, flags, layouts, `align`, strides. A key never claims
//!   more than its problem has (the lesson of burn#5352: bucketed strides overstated alignment),
//!   and a choice read back from the cache is still re-checked by its kernel on the actual
//!   problem before it runs;
//! - under a determinism or batch-invariance constraint the fields an operator lists in
//!   [`Op::BATCH_FIELDS`](crate::Op::BATCH_FIELDS) (m, rows, tokens, batch) are dropped, so the
//!   choice, and with it every bit of the output, cannot depend on them.
//!
//! The key also names the operator and the device's architecture.
//!
//! # Environment ([`TuningEnv`])
//! Every entry records where it was measured: device name, architecture, multiprocessor count,
//! driver and compiler (NVRTC, hiprtc) versions, library versions (cuBLASLt: the backends of
//! the device's kind report them, [`Backend::library_versions`](crate::Backend::library_versions))
//! and each measured kernel's version.
//! [`TuningCache::lookup`] reports an entry measured elsewhere as [`Lookup::Stale`] with every
//! difference ([`EnvMismatch`]); such an entry is never applied (the lesson of flashinfer
//! PR #3970: a cache that needed "healing").
//!
//! # File
//! JSON, `{"format": 1, "entries": [...]}`, at [`TuningCache::default_path`]
//! (`KERNELYARD_TUNING_CACHE`, else `tuning.json` in the kernel cache's directory). Writes go to a
//! unique temporary file in the same directory, are flushed and renamed over the file, so a
//! reader sees the old file or the new one, never a torn one. A file in another format version
//! or that does not parse is an error naming the path, never silently replaced. What a file can
//! do is bounded: it can only name registered kernels, whose checks still run; a hostile file
//! can make calls slower, not wrong.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::caps::{Capabilities, Version};
use crate::ops::{OpKind, Problem};

/// The version of the cache file's format.
pub const FORMAT: u32 = 1;

/// A field of a [`TuningKey`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyValue {
    /// The field's exact value (as the problem serializes it).
    Exact(String),
    /// A size's power-of-two bucket: `ceil(log2 v)` (0 for 0 and 1).
    Pow2(u32),
}

/// The power-of-two bucket of a size: the least `b` with `v <= 2^b`.
pub fn bucket(v: u64) -> u32 {
    if v <= 1 {
        0
    } else {
        64 - (v - 1).leading_zeros()
    }
}

/// What the cache is keyed by: an operator, an architecture, whether the choice is constrained
/// (determinism or batch invariance), and the problem's fields, bucketed or exact.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TuningKey {
    /// The operator.
    pub op: OpKind,
    /// The device's architecture (`sm_90`, `gfx90a`, `host`).
    pub arch: String,
    /// Selected under `deterministic` or `batch_invariant`: the batch fields are left out.
    pub constrained: bool,
    /// The problem's fields (without `op`), bucketed or exact.
    pub fields: BTreeMap<String, KeyValue>,
}

impl TuningKey {
    /// The key of `problem` on a device of `caps`; `constrained` when the policy asks for
    /// determinism or batch invariance.
    pub fn new(
        problem: &Problem,
        caps: &Capabilities,
        constrained: bool,
    ) -> Result<TuningKey, TuneError> {
        let op = problem.op();
        let Value::Object(map) =
            serde_json::to_value(problem).map_err(|e| TuneError::Key(e.to_string()))?
        else {
            return Err(TuneError::Key(format!(
                "a {op:?} problem did not serialize to an object"
            )));
        };
        let (bucketed, batch) = (op.bucketed(), op.batch_fields());
        let mut fields = BTreeMap::new();
        for (name, v) in map {
            if name == "op" || (constrained && batch.contains(&name.as_str())) {
                continue;
            }
            let kv = match (&v, bucketed.contains(&name.as_str())) {
                (Value::Number(n), true) => match n.as_u64() {
                    Some(u) => KeyValue::Pow2(bucket(u)),
                    None => KeyValue::Exact(v.to_string()),
                },
                (Value::String(s), _) => KeyValue::Exact(s.clone()),
                _ => KeyValue::Exact(v.to_string()),
            };
            fields.insert(name, kv);
        }
        Ok(TuningKey {
            op,
            arch: caps.arch.to_string(),
            constrained,
            fields,
        })
    }

    /// A canonical one-line form (`softmax sm_90 [cols=2^12 dtype=bf16 ...]`), for tables and
    /// logs.
    pub fn label(&self) -> String {
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| match v {
                KeyValue::Exact(s) => format!("{k}={s}"),
                KeyValue::Pow2(b) => format!("{k}<=2^{b}"),
            })
            .collect();
        format!(
            "{} {}{} [{}]",
            self.op.name(),
            self.arch,
            if self.constrained { " constrained" } else { "" },
            fields.join(" ")
        )
    }
}

/// Where a measurement was taken. Two environments that differ in any field are different
/// places: an entry from one is not applied in the other.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TuningEnv {
    /// The device's name (`NVIDIA H200`).
    pub device_name: String,
    /// Its architecture (`sm_90`).
    pub arch: String,
    /// Its multiprocessor (SM/CU) count.
    pub multiprocessors: u32,
    /// The driver's version, if known.
    pub driver: Option<String>,
    /// The run-time compiler's version (NVRTC/hiprtc), if known.
    pub compiler: Option<String>,
    /// Library versions the candidates depend on (`cublaslt` -> `13.0.2`).
    pub libraries: BTreeMap<String, String>,
}

impl TuningEnv {
    /// The environment of a device: its capabilities, and the library versions that the
    /// backends of its kind registered in this binary report
    /// ([`Backend::library_versions`](crate::Backend::library_versions), e.g. cuBLASLt's for
    /// CUDA devices).
    pub fn of(caps: &Capabilities) -> TuningEnv {
        let kind = caps.arch.kind();
        TuningEnv::with_libraries(
            caps,
            crate::backend::registered_backends()
                .filter(|b| b.device_kind() == kind)
                .flat_map(|b| b.library_versions()),
        )
    }

    /// The environment of a device of `caps` with these library versions (what
    /// [`TuningEnv::of`] gives when the device's backends report `libraries`).
    pub fn with_libraries(
        caps: &Capabilities,
        libraries: impl IntoIterator<Item = (&'static str, Version)>,
    ) -> TuningEnv {
        TuningEnv {
            device_name: caps.name.clone(),
            arch: caps.arch.to_string(),
            multiprocessors: caps.multiprocessors,
            driver: caps.driver_version.map(|v| v.to_string()),
            compiler: caps.compiler_version.map(|v| v.to_string()),
            libraries: libraries
                .into_iter()
                .map(|(name, v)| (name.to_owned(), v.to_string()))
                .collect(),
        }
    }

    /// Every field in which `self` (where an entry was measured) differs from `current`.
    pub fn mismatches(&self, current: &TuningEnv) -> Vec<EnvMismatch> {
        let mut v = Vec::new();
        let mut cmp = |field: String, cached: String, now: String| {
            if cached != now {
                v.push(EnvMismatch {
                    field,
                    cached,
                    current: now,
                });
            }
        };
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "unknown".into());
        cmp(
            "device_name".into(),
            self.device_name.clone(),
            current.device_name.clone(),
        );
        cmp("arch".into(), self.arch.clone(), current.arch.clone());
        cmp(
            "multiprocessors".into(),
            self.multiprocessors.to_string(),
            current.multiprocessors.to_string(),
        );
        cmp("driver".into(), opt(&self.driver), opt(&current.driver));
        cmp(
            "compiler".into(),
            opt(&self.compiler),
            opt(&current.compiler),
        );
        let names: std::collections::BTreeSet<&String> = self
            .libraries
            .keys()
            .chain(current.libraries.keys())
            .collect();
        for name in names {
            let get = |m: &BTreeMap<String, String>| {
                m.get(name).cloned().unwrap_or_else(|| "absent".into())
            };
            cmp(
                format!("libraries.{name}"),
                get(&self.libraries),
                get(&current.libraries),
            );
        }
        v
    }
}

/// One way a cached entry's environment differs from the current one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvMismatch {
    /// The field (`driver`, `libraries.cublaslt`, `kernel cuda.softmax`).
    pub field: String,
    /// Its value where the entry was measured.
    pub cached: String,
    /// Its value now.
    pub current: String,
}

impl std::fmt::Display for EnvMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: measured with {}, now {}",
            self.field, self.cached, self.current
        )
    }
}

/// A candidate: a kernel and, optionally, one of its named configurations.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Candidate {
    /// The kernel's registered name.
    pub kernel: String,
    /// The tactic's name, if the kernel has tactics.
    pub tactic: Option<String>,
}

impl std::fmt::Display for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tactic {
            Some(t) => write!(f, "{}@{t}", self.kernel),
            None => f.write_str(&self.kernel),
        }
    }
}

/// One candidate's result in a tuning run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// The candidate.
    pub candidate: Candidate,
    /// The kernel's version ([`KernelMeta::version`](crate::KernelMeta)) when it was measured.
    pub kernel_version: u32,
    /// Median time of one run, milliseconds (`None` when it was rejected before timing).
    pub ms: Option<f64>,
    /// Its output matched the reference on the problem.
    pub verified: bool,
    /// Why it was not admitted (a launch error or a verification failure), if it was not.
    pub rejected: Option<String>,
}

/// A tuned choice for one key, with where and how it was measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TuningEntry {
    /// The key.
    pub key: TuningKey,
    /// Where it was measured.
    pub env: TuningEnv,
    /// The chosen candidate: the fastest verified one.
    pub choice: Candidate,
    /// Every candidate's result.
    pub measurements: Vec<Measurement>,
    /// When, seconds since the Unix epoch.
    pub tuned_at: u64,
}

impl TuningEntry {
    /// An entry choosing the fastest verified measurement, or `None` if none was verified.
    pub fn from_measurements(
        key: TuningKey,
        env: TuningEnv,
        measurements: Vec<Measurement>,
    ) -> Option<TuningEntry> {
        let choice = measurements
            .iter()
            .filter(|m| m.verified && m.rejected.is_none())
            .filter_map(|m| m.ms.map(|ms| (ms, &m.candidate)))
            .min_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)))?
            .1
            .clone();
        Some(TuningEntry {
            key,
            env,
            choice,
            measurements,
            tuned_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        })
    }

    /// The chosen candidate's measurement.
    pub fn chosen(&self) -> Option<&Measurement> {
        self.measurements
            .iter()
            .find(|m| m.candidate == self.choice)
    }
}

/// What the cache holds for a key in the current environment.
#[derive(Clone, Debug, PartialEq)]
pub enum Lookup<'a> {
    /// A usable entry.
    Hit(&'a TuningEntry),
    /// An entry measured elsewhere (or for another kernel version): not to be applied.
    Stale {
        /// The entry.
        entry: &'a TuningEntry,
        /// Every difference.
        mismatches: Vec<EnvMismatch>,
    },
    /// Nothing for the key.
    Miss,
}

/// A tuning cache: entries by key, optionally backed by a file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TuningCache {
    path: Option<PathBuf>,
    entries: BTreeMap<TuningKey, TuningEntry>,
}

#[derive(Serialize, Deserialize)]
struct File {
    format: u32,
    entries: Vec<TuningEntry>,
}

impl TuningCache {
    /// An empty cache with no file.
    pub fn in_memory() -> TuningCache {
        TuningCache::default()
    }

    /// Where the cache lives by default: `KERNELYARD_TUNING_CACHE` if set, else `tuning.json`
    /// in the kernel cache's directory (`KERNELYARD_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/kernelyard`, else `$HOME/.cache/kernelyard`). `None` when none of them
    /// is set to an absolute path.
    pub fn default_path() -> Option<PathBuf> {
        let abs = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
        if let Some(p) = std::env::var_os("KERNELYARD_TUNING_CACHE").and_then(abs) {
            return Some(p);
        }
        let dir = std::env::var_os("KERNELYARD_CACHE_DIR")
            .and_then(abs)
            .or_else(|| {
                std::env::var_os("XDG_CACHE_HOME")
                    .and_then(abs)
                    .map(|p| p.join("kernelyard"))
            })
            .or_else(|| {
                std::env::var_os("HOME")
                    .and_then(abs)
                    .map(|p| p.join(".cache").join("kernelyard"))
            })?;
        Some(dir.join("tuning.json"))
    }

    /// The cache at `path`: empty if the file does not exist; an error if it cannot be read,
    /// does not parse, or has another format version.
    pub fn open(path: impl Into<PathBuf>) -> Result<TuningCache, TuneError> {
        let path = path.into();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(TuningCache {
                    path: Some(path),
                    entries: BTreeMap::new(),
                })
            }
            Err(e) => {
                return Err(TuneError::Io {
                    path,
                    what: e.to_string(),
                })
            }
        };
        let file: File = serde_json::from_str(&text).map_err(|e| TuneError::Corrupt {
            path: path.clone(),
            what: e.to_string(),
        })?;
        if file.format != FORMAT {
            return Err(TuneError::Format {
                path,
                found: file.format,
            });
        }
        let entries = file
            .entries
            .into_iter()
            .map(|e| (e.key.clone(), e))
            .collect();
        Ok(TuningCache {
            path: Some(path),
            entries,
        })
    }

    /// The file behind the cache, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Every entry, in key order.
    pub fn entries(&self) -> impl Iterator<Item = &TuningEntry> {
        self.entries.values()
    }

    /// Adds or replaces the entry for its key.
    pub fn insert(&mut self, entry: TuningEntry) {
        self.entries.insert(entry.key.clone(), entry);
    }

    /// The entry for `key`, judged against the current environment `env` and the current
    /// version of each kernel (`kernel_version`, `None` for a kernel no longer registered).
    pub fn lookup(
        &self,
        key: &TuningKey,
        env: &TuningEnv,
        kernel_version: impl Fn(&str) -> Option<u32>,
    ) -> Lookup<'_> {
        let Some(entry) = self.entries.get(key) else {
            return Lookup::Miss;
        };
        let mut mismatches = entry.env.mismatches(env);
        if let Some(m) = entry.chosen() {
            let now = kernel_version(&m.candidate.kernel);
            if now != Some(m.kernel_version) {
                mismatches.push(EnvMismatch {
                    field: format!("kernel {}", m.candidate.kernel),
                    cached: format!("version {}", m.kernel_version),
                    current: now.map_or("not registered".into(), |v| format!("version {v}")),
                });
            }
        } else {
            mismatches.push(EnvMismatch {
                field: "choice".into(),
                cached: entry.choice.to_string(),
                current: "no measurement of it in the entry".into(),
            });
        }
        if mismatches.is_empty() {
            Lookup::Hit(entry)
        } else {
            Lookup::Stale { entry, mismatches }
        }
    }

    /// Writes the cache to its file atomically (see the module docs), or to `path` when the
    /// cache has none; creates the directory.
    pub fn save(&self) -> Result<(), TuneError> {
        let path = self.path.clone().ok_or(TuneError::NoPath)?;
        self.save_to(&path)
    }

    /// Writes the cache to `path` atomically (`kernelyard tune --out`).
    pub fn save_to(&self, path: &Path) -> Result<(), TuneError> {
        let io = |e: std::io::Error| TuneError::Io {
            path: path.to_path_buf(),
            what: e.to_string(),
        };
        let file = File {
            format: FORMAT,
            entries: self.entries.values().cloned().collect(),
        };
        let text = serde_json::to_string_pretty(&file).map_err(|e| TuneError::Io {
            path: path.to_path_buf(),
            what: e.to_string(),
        })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(io)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = path.file_name().map_or_else(
            || "tuning.json".into(),
            |n| n.to_string_lossy().into_owned(),
        );
        let tmp = dir.join(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
        let written = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map_err(io)
    }
}

/// Why tuning data could not be made, read or written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TuneError {
    /// A problem could not be turned into a key.
    #[error("cannot make a tuning key: {0}")]
    Key(String),
    /// The cache file could not be read or written.
    #[error("tuning cache {}: {what}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        what: String,
    },
    /// The cache file does not parse.
    #[error("tuning cache {} does not parse ({what}); move it away or re-tune", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        what: String,
    },
    /// The cache file has another format version.
    #[error("tuning cache {} has format {found}, this build reads format {FORMAT}; re-tune or use a matching kernelyard", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// Its format version.
        found: u32,
    },
    /// The cache has no file to save to.
    #[error("this tuning cache has no file: use save_to")]
    NoPath,
}
