//! The runtime: backends probed once, the devices they found, and a selector over them.
//!
//! There is no process-wide default device or policy: callers name both on every call. A
//! backend that is not compiled in, or that cannot be used on this machine, is reported with
//! its reason; its devices are absent, and selecting on them is an error that says why.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use serde::Serialize;

use crate::backend::{registered_backends, Backend, DeviceBuffer, KNOWN_BACKENDS};
use crate::caps::Capabilities;
use crate::device::{DeviceId, DeviceKind};
use crate::error::{Error, SelectError};
use crate::ops::{Args, Problem};
use crate::registry::Registry;
use crate::select::{Pins, Plan, Policy, Selector};
use crate::stream::{OwnedStream, Stream};
use crate::tune::TuningCache;

/// Whether a backend can be used in this process.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BackendState {
    /// Compiled in and probed: these devices were found.
    Available {
        /// The devices found.
        devices: Vec<DeviceId>,
    },
    /// Compiled in, but cannot be used here.
    Unavailable {
        /// Why, e.g. "libcuda.so not found".
        why: String,
    },
    /// Not compiled into this build.
    NotCompiledIn,
}

/// A backend and its state.
#[derive(Clone, Debug, Serialize)]
pub struct BackendStatus {
    /// The backend's name.
    pub name: &'static str,
    /// Its device kind.
    pub kind: DeviceKind,
    /// The `kernelyard` cargo feature that compiles it in.
    pub feature: &'static str,
    /// Its state.
    pub state: BackendState,
}

impl fmt::Display for BackendStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            BackendState::Available { devices } if devices.is_empty() => {
                write!(f, "{}: available, no devices found", self.name)
            }
            BackendState::Available { devices } => {
                let d: Vec<String> = devices.iter().map(|d| d.to_string()).collect();
                write!(f, "{}: available ({})", self.name, d.join(", "))
            }
            BackendState::Unavailable { why } => write!(f, "{}: unavailable: {why}", self.name),
            BackendState::NotCompiledIn => write!(
                f,
                "{}: not compiled in (rebuild with `--features {}`)",
                self.name, self.feature
            ),
        }
    }
}

struct DeviceEntry {
    caps: Capabilities,
    backend: Option<&'static dyn Backend>,
}

/// The environment variable that turns tuned selection on for every policy that names no
/// kernel, with the cache at [`TuningCache::default_path`]: `1` (or `on`, `true`).
pub const TUNE_ENV: &str = "KERNELYARD_TUNE";

/// Backends, devices and selection for one process (or one test).
pub struct Runtime {
    backends: Vec<BackendStatus>,
    devices: Vec<DeviceEntry>,
    selector: Selector,
    tuning_error: Option<String>,
}

/// Where a runtime's tuning cache comes from.
enum TuningSource {
    /// `KERNELYARD_TUNE`: on (every untuned policy tuned, default path) or off.
    Env,
    /// This cache, for policies that ask for tuning.
    Cache(TuningCache),
    /// The default path's cache, for policies that ask for tuning.
    DefaultPath,
}

/// Builds a [`Runtime`] with explicit parts (for tests and embedders).
pub struct RuntimeBuilder {
    registry: Option<&'static Registry>,
    pins: Option<String>,
    probe: bool,
    simulated: Vec<Capabilities>,
    tuning: TuningSource,
}

impl RuntimeBuilder {
    /// Use this registry instead of the global one.
    pub fn registry(mut self, registry: &'static Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Use these pins (`op=kernel,...`) instead of reading `KERNELYARD_KERNELS`.
    pub fn pins(mut self, spec: impl Into<String>) -> Self {
        self.pins = Some(spec.into());
        self
    }

    /// Use `cache` for policies that ask for tuning ([`Policy::tuned`]) instead of reading
    /// `KERNELYARD_TUNE`.
    pub fn tuning_cache(mut self, cache: TuningCache) -> Self {
        self.tuning = TuningSource::Cache(cache);
        self
    }

    /// Load the cache at [`TuningCache::default_path`] for policies that ask for tuning
    /// (without turning tuning on for the others, as `KERNELYARD_TUNE=1` does).
    pub fn tuning_from_default_path(mut self) -> Self {
        self.tuning = TuningSource::DefaultPath;
        self
    }

    /// Do not probe the registered backends (only simulated devices exist).
    pub fn no_probe(mut self) -> Self {
        self.probe = false;
        self
    }

    /// Adds a simulated device: selection works on it, memory and launches do not. For tests
    /// of selection against devices this machine does not have.
    pub fn simulated_device(mut self, caps: Capabilities) -> Self {
        self.simulated.push(caps);
        self
    }

    /// Probes the backends and builds the runtime.
    pub fn build(self) -> Result<Runtime, Error> {
        let registry = match self.registry {
            Some(r) => r,
            None => Registry::global()?,
        };
        let pins = match &self.pins {
            Some(spec) => Pins::parse(spec, registry)?,
            None => Pins::from_env(registry)?,
        };
        let mut backends = Vec::new();
        let mut devices: Vec<DeviceEntry> = Vec::new();
        let registered: Vec<&'static dyn Backend> = registered_backends().collect();
        let mut names: Vec<(&'static str, DeviceKind, &'static str)> = KNOWN_BACKENDS
            .iter()
            .map(|k| (k.name, k.kind, k.feature))
            .collect();
        for b in &registered {
            if !names.iter().any(|(n, _, _)| *n == b.name()) {
                names.push((b.name(), b.device_kind(), b.name()));
            }
        }
        for (name, kind, feature) in names {
            let state = match registered.iter().find(|b| b.name() == name) {
                None => BackendState::NotCompiledIn,
                Some(_) if !self.probe => BackendState::Unavailable {
                    why: "probing was disabled for this runtime".into(),
                },
                Some(&b) => match probe(b) {
                    Ok(Ok(found)) => {
                        let mut ids = Vec::new();
                        for caps in found {
                            ids.push(caps.device);
                            if !devices.iter().any(|d| d.caps.device == caps.device) {
                                devices.push(DeviceEntry {
                                    caps,
                                    backend: Some(b),
                                });
                            }
                        }
                        BackendState::Available { devices: ids }
                    }
                    Ok(Err(why)) => BackendState::Unavailable {
                        why: why.to_string(),
                    },
                    Err(panic) => BackendState::Unavailable {
                        why: format!(
                            "the probe panicked: {}",
                            panic
                                .downcast_ref::<String>()
                                .map(String::as_str)
                                .or_else(|| panic.downcast_ref::<&str>().copied())
                                .unwrap_or("(no message)")
                        ),
                    },
                },
            };
            backends.push(BackendStatus {
                name,
                kind,
                feature,
                state,
            });
        }
        for caps in self.simulated {
            devices.retain(|d| d.caps.device != caps.device);
            devices.push(DeviceEntry {
                caps,
                backend: None,
            });
        }
        devices.sort_by_key(|d| d.caps.device);
        let (cache, all, tuning_error) = load_tuning(self.tuning);
        Ok(Runtime {
            backends,
            devices,
            selector: Selector::new(registry, pins).with_tuning(cache.map(Arc::new), all),
            tuning_error,
        })
    }
}

/// The tuning cache, whether every policy is tuned, and why a requested cache is missing.
fn load_tuning(source: TuningSource) -> (Option<TuningCache>, bool, Option<String>) {
    let (wanted, all) = match source {
        TuningSource::Cache(c) => return (Some(c), false, None),
        TuningSource::DefaultPath => (true, false),
        TuningSource::Env => {
            let v = std::env::var(TUNE_ENV).unwrap_or_default();
            let on = matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "on" | "true");
            (on, on)
        }
    };
    if !wanted {
        return (None, false, None);
    }
    let loaded = match TuningCache::default_path() {
        None => Err("no tuning cache path: set KERNELYARD_TUNING_CACHE to an absolute path".into()),
        Some(p) => TuningCache::open(p).map_err(|e| e.to_string()),
    };
    match loaded {
        Ok(c) => {
            tracing::debug!(
                path = ?c.path(),
                entries = c.entries().count(),
                "kernelyard: tuning cache loaded"
            );
            (Some(c), all, None)
        }
        Err(why) => {
            tracing::warn!(why = %why, "kernelyard: tuning cache not used");
            (None, all, Some(why))
        }
    }
}

/// Probes one backend (never unwinding into the caller), traced.
fn probe(
    b: &'static dyn Backend,
) -> std::thread::Result<Result<Vec<Capabilities>, crate::error::ProbeError>> {
    let _span = tracing::info_span!("kernelyard.probe", backend = b.name()).entered();
    let start = std::time::Instant::now();
    let got = catch_unwind(AssertUnwindSafe(|| b.probe()));
    let ms = start.elapsed().as_secs_f64() * 1e3;
    match &got {
        Ok(Ok(found)) => tracing::info!(
            backend = b.name(),
            devices = found.len(),
            ms,
            "kernelyard: backend available"
        ),
        Ok(Err(why)) => tracing::info!(
            backend = b.name(),
            why = %why,
            ms,
            "kernelyard: backend unavailable"
        ),
        Err(_) => tracing::warn!(backend = b.name(), ms, "kernelyard: the probe panicked"),
    }
    got
}

impl Runtime {
    /// Probes every registered backend, with the global registry and `KERNELYARD_KERNELS`.
    pub fn new() -> Result<Runtime, Error> {
        Runtime::builder().build()
    }

    /// A builder for a runtime with explicit parts.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            registry: None,
            pins: None,
            probe: true,
            simulated: Vec::new(),
            tuning: TuningSource::Env,
        }
    }

    /// The registry.
    pub fn registry(&self) -> &'static Registry {
        self.selector.registry()
    }

    /// The tuning cache tuned policies use, if one is loaded.
    pub fn tuning_cache(&self) -> Option<&TuningCache> {
        self.selector.tuning_cache()
    }

    /// Why the tuning cache that was asked for (`KERNELYARD_TUNE`,
    /// [`RuntimeBuilder::tuning_from_default_path`]) is not loaded, if it is not.
    pub fn tuning_error(&self) -> Option<&str> {
        self.tuning_error.as_deref()
    }

    /// Every known or registered backend with its state.
    pub fn backends(&self) -> &[BackendStatus] {
        &self.backends
    }

    /// Capabilities of every device present.
    pub fn devices(&self) -> impl Iterator<Item = &Capabilities> {
        self.devices.iter().map(|d| &d.caps)
    }

    fn entry(&self, device: DeviceId) -> Result<&DeviceEntry, SelectError> {
        self.devices
            .iter()
            .find(|d| d.caps.device == device)
            .ok_or_else(|| SelectError::UnknownDevice {
                device,
                why: self.why_absent(device),
                present: self.devices.iter().map(|d| d.caps.device).collect(),
            })
    }

    fn why_absent(&self, device: DeviceId) -> String {
        let of_kind: Vec<&BackendStatus> = self
            .backends
            .iter()
            .filter(|b| b.kind == device.kind)
            .collect();
        if of_kind.is_empty() {
            return format!("no backend for {} devices exists", device.kind);
        }
        of_kind
            .iter()
            .map(|b| match &b.state {
                BackendState::Available { devices } => format!(
                    "backend `{}` found {} {} device(s)",
                    b.name,
                    devices.len(),
                    device.kind
                ),
                _ => b.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Capabilities of one device.
    pub fn capabilities(&self, device: DeviceId) -> Result<&Capabilities, SelectError> {
        self.entry(device).map(|d| &d.caps)
    }

    /// Selects a kernel for `problem` on `device` under `policy` (cached).
    pub fn select(
        &self,
        device: DeviceId,
        problem: &Problem,
        policy: &Policy,
    ) -> Result<Arc<Plan>, SelectError> {
        let caps = &self.entry(device)?.caps;
        self.selector.select(caps, problem, policy)
    }

    /// Validates `args`, selects for their device under `policy`, and launches on `stream`.
    /// Returns the plan that ran.
    pub fn run(
        &self,
        policy: &Policy,
        stream: &Stream,
        args: &mut Args<'_>,
    ) -> Result<Arc<Plan>, Error> {
        let (problem, device) = args.validate()?;
        let plan = self.select(device, &problem, policy)?;
        plan.launch_validated(stream, args, problem, device)?;
        Ok(plan)
    }

    /// Selects for `problem` on `stream`'s device under `policy` and prepares the plan for
    /// launches on `stream` ([`Plan::prepare`]): after this, launches of the returned plan on
    /// `stream` never compile, load, allocate or synchronise, so they can be captured in a
    /// CUDA graph.
    pub fn prepare(
        &self,
        policy: &Policy,
        stream: &Stream,
        problem: &Problem,
    ) -> Result<Arc<Plan>, Error> {
        let plan = self.select(stream.device(), problem, policy)?;
        plan.prepare(stream)?;
        Ok(plan)
    }

    fn backend_for(&self, device: DeviceId) -> Result<&'static dyn Backend, Error> {
        let entry = self.entry(device)?;
        entry.backend.ok_or_else(|| Error::NoBackendForDevice {
            device,
            why: "it is a simulated device (selection only)".into(),
        })
    }

    /// Allocates device memory on `device`.
    pub fn alloc(&self, device: DeviceId, bytes: usize) -> Result<DeviceBuffer, Error> {
        self.backend_for(device)?.alloc(device, bytes)
    }

    /// The default stream of `device` (the host stream for the CPU).
    pub fn default_stream(&self, device: DeviceId) -> Result<Stream, Error> {
        self.backend_for(device)?;
        Ok(if device.kind == DeviceKind::Cpu {
            Stream::host()
        } else {
            Stream::default_for(device)
        })
    }

    /// Waits for all work on `stream`.
    pub fn synchronize(&self, stream: &Stream) -> Result<(), Error> {
        self.backend_for(stream.device())?.synchronize(stream)
    }

    /// Creates a stream on `device`, destroyed when the returned value drops (the host stream
    /// for the CPU). Copies of its [`Stream`] handle must not be used after that.
    pub fn create_stream(&self, device: DeviceId) -> Result<OwnedStream, Error> {
        OwnedStream::new(self.backend_for(device)?, device)
    }

    /// Runs `f`, which queues work on `stream`, and returns the device time it took in
    /// milliseconds (CUDA events on GPUs; the host clock on the CPU).
    pub fn time(
        &self,
        stream: &Stream,
        f: &mut dyn FnMut() -> Result<(), Error>,
    ) -> Result<f64, Error> {
        self.backend_for(stream.device())?.time(stream, f)
    }

    /// Measures `device`'s copy bandwidth in bytes per second, counting bytes read plus bytes
    /// written: the median of `runs` device-to-device copies of `bytes` bytes, after one
    /// warm-up copy.
    pub fn copy_bandwidth(
        &self,
        device: DeviceId,
        bytes: usize,
        runs: usize,
    ) -> Result<f64, Error> {
        let backend = self.backend_for(device)?;
        let stream = self.default_stream(device)?;
        let src = backend.alloc(device, bytes)?;
        let mut dst = backend.alloc(device, bytes)?;
        backend.copy(&stream, &mut dst, &src, bytes)?;
        let mut times = Vec::with_capacity(runs.max(1));
        for _ in 0..runs.max(1) {
            times.push(backend.time(&stream, &mut || {
                backend.copy(&stream, &mut dst, &src, bytes)
            })?);
        }
        times.sort_by(f64::total_cmp);
        let ms = times[times.len() / 2];
        Ok(2.0 * bytes as f64 / (ms.max(1e-9) * 1e-3))
    }
}
