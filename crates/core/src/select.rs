//! Selection: from (device, problem, policy) to a [`Plan`] with a report, or a typed error.
//!
//! All checks live here, in one place: the kernel's static requirements and problem checks,
//! the policy's constraints (determinism, batch invariance, backend restriction) and the
//! `KERNELYARD_KERNELS` pins. A named kernel (by the policy or a pin) that cannot run is an
//! error with its reasons, never replaced by another. Plans are cached per (device, problem,
//! policy) in a bounded cache with gradual eviction (`select/cache.rs`); a cached lookup hashes
//! the key once and takes one shard's read lock.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rustc_hash::FxHasher;
use serde::{Deserialize, Serialize};

use crate::backend::KNOWN_BACKENDS;
use crate::caps::Capabilities;
use crate::device::{DeviceId, DeviceKind};
use crate::error::{Error, SelectError};
use crate::kernel::{split_tactic, tactic_label, Kernel, LaunchCtx};
use crate::ops::{Args, OpKind, Problem};
use crate::reason::Reason;
use crate::registry::Registry;
use crate::stream::Stream;
use crate::tune::{EnvMismatch, Lookup, TuningCache, TuningEnv, TuningKey};

mod cache;

use cache::ClockCache;

/// The environment variable that pins kernels per op: `op=kernel,op=kernel`.
pub const PIN_ENV: &str = "KERNELYARD_KERNELS";

/// Which kernels a selection may consider.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum Choice {
    /// Every suitable kernel, best first (priority, then the kernel's heuristic score).
    Auto,
    /// Exactly this kernel, or an error.
    Kernel(String),
    /// Only kernels of this backend.
    Backend(String),
}

/// What the caller asks of a selection.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Policy {
    /// Which kernels may be considered.
    pub choice: Choice,
    /// Only kernels that declare bitwise run-to-run determinism.
    pub deterministic: bool,
    /// Only kernels that declare batch invariance (and determinism).
    pub batch_invariant: bool,
    /// Among the runnable kernels, prefer the one the tuning cache measured fastest for the
    /// problem's tuning key ([`crate::tune`]); without a usable entry, choose as without it.
    /// Ignored when a kernel is named (by the policy or a pin).
    #[serde(default)]
    pub tuned: bool,
}

impl Policy {
    /// Any suitable kernel, no constraints.
    pub fn auto() -> Self {
        Policy {
            choice: Choice::Auto,
            deterministic: false,
            batch_invariant: false,
            tuned: false,
        }
    }

    /// Also prefer the tuning cache's measured choice (see [`Policy::tuned`](Policy#structfield.tuned)).
    pub fn tuned(mut self) -> Self {
        self.tuned = true;
        self
    }

    /// The choice must not depend on the batch: determinism or batch invariance was asked.
    pub fn constrained(&self) -> bool {
        self.deterministic || self.batch_invariant
    }

    /// Exactly the kernel `name`, or one of its tactics as `name@tactic`.
    pub fn kernel(name: impl Into<String>) -> Self {
        Policy {
            choice: Choice::Kernel(name.into()),
            ..Policy::auto()
        }
    }

    /// Only kernels of backend `name`.
    pub fn backend(name: impl Into<String>) -> Self {
        Policy {
            choice: Choice::Backend(name.into()),
            ..Policy::auto()
        }
    }

    /// Also require determinism.
    pub fn deterministic(mut self) -> Self {
        self.deterministic = true;
        self
    }

    /// Also require batch invariance (which implies determinism).
    pub fn batch_invariant(mut self) -> Self {
        self.batch_invariant = true;
        self
    }

    fn constraint_reasons(&self, k: &dyn Kernel, reasons: &mut Vec<Reason>) {
        let m = k.meta();
        if (self.deterministic || self.batch_invariant) && !m.deterministic {
            reasons.push(Reason::NotDeterministic);
        }
        if self.batch_invariant && !m.batch_invariant {
            reasons.push(Reason::NotBatchInvariant);
        }
        if let Choice::Backend(b) = &self.choice {
            if m.backend != b {
                reasons.push(Reason::ExcludedByPolicy {
                    backend: m.backend,
                    allowed: b.clone(),
                });
            }
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::auto()
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.choice {
            Choice::Auto => f.write_str("auto")?,
            Choice::Kernel(k) => write!(f, "kernel={k}")?,
            Choice::Backend(b) => write!(f, "backend={b}")?,
        }
        if self.deterministic {
            f.write_str(" +deterministic")?;
        }
        if self.batch_invariant {
            f.write_str(" +batch_invariant")?;
        }
        if self.tuned {
            f.write_str(" +tuned")?;
        }
        Ok(())
    }
}

/// What selection decided about one candidate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Chosen.
    Selected,
    /// Could run, ranked below the chosen one.
    Runnable,
    /// Cannot run, for these reasons.
    Rejected {
        /// Every reason.
        reasons: Vec<Reason>,
    },
    /// Not considered: another kernel was named by the policy or a pin.
    NotConsidered,
}

/// One candidate in a selection report.
#[derive(Clone, Debug, Serialize)]
pub struct Candidate {
    /// Kernel name.
    pub kernel: &'static str,
    /// Its backend.
    pub backend: &'static str,
    /// Its priority.
    pub priority: i32,
    /// Its heuristic score for this problem (0 unless runnable).
    pub score: i32,
    /// The verdict.
    pub verdict: Verdict,
}

/// What decided the choice among the runnable kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChoiceSource {
    /// The policy named the kernel.
    Named,
    /// A `KERNELYARD_KERNELS` pin named it.
    Pinned,
    /// The highest priority (the only kernel, or the only one of its priority).
    Priority,
    /// The kernels' heuristic scores (or names) among kernels of equal priority.
    Heuristic,
    /// A tuning cache entry measured it fastest.
    Tuned,
}

impl fmt::Display for ChoiceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChoiceSource::Named => "named by the policy",
            ChoiceSource::Pinned => "pinned",
            ChoiceSource::Priority => "priority",
            ChoiceSource::Heuristic => "heuristic score among equal priorities",
            ChoiceSource::Tuned => "tuning",
        })
    }
}

/// What a tuned selection found in the tuning cache.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "tuning", rename_all = "snake_case")]
pub enum TuningNote {
    /// The selector has no tuning cache (`RuntimeBuilder::tuning_cache`, `KERNELYARD_TUNE`).
    NoCache,
    /// No entry for the key.
    Miss {
        /// The key (one line).
        key: String,
    },
    /// An entry measured elsewhere: not applied.
    Stale {
        /// The key (one line).
        key: String,
        /// Every difference from here.
        mismatches: Vec<EnvMismatch>,
    },
    /// The entry's choice cannot run this problem (or is not a candidate): not applied.
    Unusable {
        /// The key (one line).
        key: String,
        /// The cached choice.
        choice: String,
        /// Why it cannot run.
        why: String,
    },
    /// The entry's choice was applied.
    Applied {
        /// The key (one line).
        key: String,
        /// Every candidate's measured median time, ms (`None`: rejected), with verification.
        measured: Vec<(String, Option<f64>, bool)>,
    },
}

/// Why a plan was chosen: every candidate with its verdict.
#[derive(Clone, Debug, Serialize)]
pub struct SelectionReport {
    /// The operator.
    pub op: OpKind,
    /// The device.
    pub device: DeviceId,
    /// The problem.
    pub problem: Problem,
    /// The policy asked for.
    pub policy: Policy,
    /// The kernel named by `KERNELYARD_KERNELS`, if a pin applied.
    pub pinned_by_env: Option<&'static str>,
    /// The chosen kernel, if any.
    pub selected: Option<&'static str>,
    /// The chosen kernel's tactic, if not its default configuration.
    pub tactic: Option<&'static str>,
    /// What decided the choice, if one was made.
    pub source: Option<ChoiceSource>,
    /// What the tuning cache said, for a tuned policy.
    pub tuning: Option<TuningNote>,
    /// Every candidate, in preference order.
    pub candidates: Vec<Candidate>,
}

impl SelectionReport {
    /// How many candidates were rejected (each with its reasons in [`SelectionReport::candidates`]).
    pub fn rejected(&self) -> usize {
        self.candidates
            .iter()
            .filter(|c| matches!(c.verdict, Verdict::Rejected { .. }))
            .count()
    }
}

impl fmt::Display for SelectionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  op {} on {}, policy {}",
            self.op, self.device, self.policy
        )?;
        writeln!(f, "  problem {}", self.problem)?;
        if let Some(pin) = self.pinned_by_env {
            writeln!(f, "  pinned by {PIN_ENV}: {pin}")?;
        }
        if let Some(src) = self.source {
            writeln!(f, "  chosen by: {src}")?;
        }
        if let Some(t) = self.tactic {
            writeln!(f, "  tactic: {t}")?;
        }
        match &self.tuning {
            None => {}
            Some(TuningNote::NoCache) => writeln!(f, "  tuning: no tuning cache loaded")?,
            Some(TuningNote::Miss { key }) => writeln!(f, "  tuning: no entry for {key}")?,
            Some(TuningNote::Stale { key, mismatches }) => {
                writeln!(
                    f,
                    "  tuning: entry for {key} not applied, measured elsewhere:"
                )?;
                for m in mismatches {
                    writeln!(f, "      {m}")?;
                }
            }
            Some(TuningNote::Unusable { key, choice, why }) => writeln!(
                f,
                "  tuning: entry for {key} chose {choice}, which cannot run here: {why}"
            )?,
            Some(TuningNote::Applied { key, measured }) => {
                writeln!(f, "  tuning: entry for {key}, measured:")?;
                for (k, ms, verified) in measured {
                    let t = ms.map_or("-".to_string(), |ms| format!("{ms:.4} ms"));
                    let v = if *verified { "verified" } else { "rejected" };
                    writeln!(f, "      {k}: {t} ({v})")?;
                }
            }
        }
        for c in &self.candidates {
            match &c.verdict {
                Verdict::Selected => writeln!(
                    f,
                    "  * {} (priority {}, score {}): selected",
                    c.kernel, c.priority, c.score
                )?,
                Verdict::Runnable => writeln!(
                    f,
                    "  + {} (priority {}, score {}): runnable, ranked lower",
                    c.kernel, c.priority, c.score
                )?,
                Verdict::NotConsidered => writeln!(
                    f,
                    "  . {}: not considered (another kernel was named)",
                    c.kernel
                )?,
                Verdict::Rejected { reasons } => {
                    writeln!(f, "  - {}: rejected", c.kernel)?;
                    for r in reasons {
                        writeln!(f, "      {r}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A selected kernel for one (device, problem, policy), with its report.
pub struct Plan {
    kernel: &'static dyn Kernel,
    tactic: Option<&'static str>,
    device: DeviceId,
    /// The device's capabilities, handed to every launch (probed once by the runtime).
    caps: Capabilities,
    problem: Problem,
    report: SelectionReport,
}

impl Plan {
    /// The chosen kernel.
    pub fn kernel(&self) -> &'static dyn Kernel {
        self.kernel
    }

    /// The chosen kernel's name.
    pub fn kernel_name(&self) -> &'static str {
        self.kernel.meta().name
    }

    /// The chosen tactic, or `None` for the kernel's default configuration.
    pub fn tactic(&self) -> Option<&'static str> {
        self.tactic
    }

    /// `kernel@tactic`, or the kernel's name for its default configuration.
    pub fn label(&self) -> &'static str {
        tactic_label(self.kernel_name(), self.tactic)
    }

    /// The device it runs on.
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// The capabilities of that device, as selection saw them.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The problem it was selected for.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    /// Why it was chosen.
    pub fn report(&self) -> &SelectionReport {
        &self.report
    }

    /// Does ahead of time everything a launch on `stream` would do on first use: compiles and
    /// loads the kernel's modules, looks up its entry points, raises its shared-memory limits,
    /// creates library handles and allocates the workspaces `stream` needs. Afterwards a launch
    /// of this plan on `stream` does not compile, load, allocate or synchronise, so it can be
    /// captured in a CUDA graph. Idempotent and cheap once done. Without it, a launch on a
    /// stream that is capturing a graph and would need any of this returns
    /// [`Error::CaptureForbidden`] and queues nothing.
    ///
    /// What it cannot make capturable is a launch that synchronises by design (the checked
    /// mode of `token_logprobs`): that launch returns [`Error::CaptureForbidden`] in a capture.
    pub fn prepare(&self, stream: &Stream) -> Result<(), Error> {
        if stream.device() != self.device {
            return Err(Error::WrongDevice {
                what: "stream",
                have: stream.device(),
                need: self.device,
            });
        }
        let _span = tracing::debug_span!(
            "kernelyard.prepare",
            kernel = self.kernel_name(),
            device = %self.device
        )
        .entered();
        let start = std::time::Instant::now();
        let ctx = LaunchCtx {
            stream,
            caps: &self.caps,
            tactic: self.tactic,
        };
        self.kernel.prepare(&ctx, &self.problem)?;
        tracing::debug!(
            kernel = self.kernel_name(),
            ms = start.elapsed().as_secs_f64() * 1e3,
            "kernelyard: prepared"
        );
        Ok(())
    }

    /// Validates `args` against the plan's problem and device, then launches on `stream`.
    pub fn launch(&self, stream: &Stream, args: &mut Args<'_>) -> Result<(), Error> {
        let (problem, device) = args.validate()?;
        self.launch_validated(stream, args, problem, device)
    }

    /// [`Plan::launch`] for arguments already validated into `problem` on `device`.
    pub(crate) fn launch_validated(
        &self,
        stream: &Stream,
        args: &mut Args<'_>,
        problem: Problem,
        device: DeviceId,
    ) -> Result<(), Error> {
        if device != self.device {
            return Err(Error::WrongDevice {
                what: "arguments",
                have: device,
                need: self.device,
            });
        }
        if stream.device() != self.device {
            return Err(Error::WrongDevice {
                what: "stream",
                have: stream.device(),
                need: self.device,
            });
        }
        if problem != self.problem {
            return Err(Error::ProblemMismatch {
                plan: Box::new(self.problem.clone()),
                args: Box::new(problem),
            });
        }
        let ctx = LaunchCtx {
            stream,
            caps: &self.caps,
            tactic: self.tactic,
        };
        tracing::trace!(
            kernel = self.kernel_name(),
            device = %self.device,
            stream = ?stream.raw(),
            "kernelyard: launch"
        );
        self.kernel.launch(&ctx, args, &self.problem)
    }
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan")
            .field("kernel", &self.kernel_name())
            .field("device", &self.device)
            .field("problem", &self.problem)
            .finish()
    }
}

/// Kernels pinned per (op, device kind) by `KERNELYARD_KERNELS`.
#[derive(Default)]
pub struct Pins {
    map: HashMap<(OpKind, DeviceKind), &'static dyn Kernel>,
}

impl Pins {
    /// Parses `op=kernel,op=kernel`. An unknown op or kernel, a kernel of another op, or two
    /// pins for one op on one device kind is an error. A pin applies on devices of its
    /// kernel's kind only.
    pub fn parse(spec: &str, registry: &Registry) -> Result<Pins, Error> {
        let mut map = HashMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = |why: String| Error::EnvOverride {
                entry: entry.to_string(),
                why,
            };
            let (op, name) = entry
                .split_once('=')
                .ok_or_else(|| bad("expected `op=kernel`".into()))?;
            let op: OpKind = op.trim().parse().map_err(|_| {
                bad(format!(
                    "unknown op `{}`; ops: {}",
                    op.trim(),
                    OpKind::names().join(", ")
                ))
            })?;
            let kernel = registry.get(name.trim()).ok_or_else(|| {
                bad(format!(
                    "unknown kernel `{}`; kernels for {op}: {}",
                    name.trim(),
                    registry.names_for(op).join(", ")
                ))
            })?;
            if kernel.meta().op != op {
                return Err(bad(format!(
                    "kernel `{}` implements {}, not {op}",
                    kernel.meta().name,
                    kernel.meta().op
                )));
            }
            if map.insert((op, kernel.meta().device), kernel).is_some() {
                return Err(bad(format!(
                    "{op} is pinned twice for {} devices",
                    kernel.meta().device
                )));
            }
        }
        Ok(Pins { map })
    }

    /// Reads [`PIN_ENV`]; unset or empty means no pins.
    pub fn from_env(registry: &Registry) -> Result<Pins, Error> {
        match std::env::var(PIN_ENV) {
            Ok(spec) => Pins::parse(&spec, registry),
            Err(std::env::VarError::NotPresent) => Ok(Pins::default()),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::EnvOverride {
                entry: PIN_ENV.into(),
                why: "the value is not valid UTF-8".into(),
            }),
        }
    }

    /// The pinned kernel for an op on a device kind.
    pub fn get(&self, op: OpKind, kind: DeviceKind) -> Option<&'static dyn Kernel> {
        self.map.get(&(op, kind)).copied()
    }
}

/// Plans a [`Selector`] keeps at most by default (see [`Selector::with_cache_capacity`]).
///
/// Past it, one plan is evicted per new one (CLOCK with a random hand: recently used plans
/// stay), so a working set larger than the cache loses a part of its hits, not all of them.
/// A cached plan with a four-candidate report takes about 1 KiB (1,001 bytes measured by
/// `tests/plan_cache_memory.rs`, which fails past 2 KiB: a 168-byte slot with the key, the
/// 488-byte `Arc<Plan>`, its report's candidates and capabilities' heap), so a full default
/// cache is about 16 MiB; it only fills in a process that selects that many distinct keys.
pub const PLAN_CACHE_CAPACITY: usize = 16_384;

type CacheKey = (DeviceId, Problem, Policy);

/// Chooses kernels and caches the plans. Thread-safe.
pub struct Selector {
    registry: &'static Registry,
    pins: Pins,
    tuning: Option<Arc<TuningCache>>,
    tune_all: bool,
    // Keyed by the key's Fx hash, computed once per select; see `cache.rs` for the layout.
    cache: ClockCache<CacheKey, Arc<Plan>>,
}

fn key_hash(device: DeviceId, problem: &Problem, policy: &Policy) -> u64 {
    let mut h = FxHasher::default();
    device.hash(&mut h);
    problem.hash(&mut h);
    policy.hash(&mut h);
    h.finish()
}

impl Selector {
    /// A selector over `registry` with `pins`, caching up to [`PLAN_CACHE_CAPACITY`] plans.
    pub fn new(registry: &'static Registry, pins: Pins) -> Self {
        Selector::with_cache_capacity(registry, pins, PLAN_CACHE_CAPACITY)
    }

    /// A selector that caches at most `capacity` plans (at least one; the bound is rounded
    /// down to a multiple of the cache's shard count, at most 16).
    pub fn with_cache_capacity(registry: &'static Registry, pins: Pins, capacity: usize) -> Self {
        Selector {
            registry,
            pins,
            tuning: None,
            tune_all: false,
            cache: ClockCache::new(capacity),
        }
    }

    /// Uses `cache` for tuned policies; with `all`, every policy that names no kernel is
    /// treated as tuned (`KERNELYARD_TUNE=1`). Cached plans are kept: set this before
    /// selecting.
    pub fn with_tuning(mut self, cache: Option<Arc<TuningCache>>, all: bool) -> Self {
        self.tuning = cache;
        self.tune_all = all;
        self
    }

    /// The tuning cache, if one is loaded.
    pub fn tuning_cache(&self) -> Option<&TuningCache> {
        self.tuning.as_deref()
    }

    /// What the tuning cache holds for `problem` on `caps` under `policy`, and the usable
    /// entry's choice, if any.
    fn tuned_choice(
        &self,
        caps: &Capabilities,
        problem: &Problem,
        policy: &Policy,
    ) -> (TuningNote, Option<crate::tune::Candidate>) {
        let Some(cache) = &self.tuning else {
            return (TuningNote::NoCache, None);
        };
        let key = match TuningKey::new(problem, caps, policy.constrained()) {
            Ok(k) => k,
            Err(e) => {
                return (
                    TuningNote::Miss {
                        key: format!("(no key: {e})"),
                    },
                    None,
                )
            }
        };
        let label = key.label();
        let version = |name: &str| self.registry.get(name).map(|k| k.meta().version);
        match cache.lookup(&key, &TuningEnv::of(caps), version) {
            Lookup::Miss => (TuningNote::Miss { key: label }, None),
            Lookup::Stale { mismatches, .. } => (
                TuningNote::Stale {
                    key: label,
                    mismatches,
                },
                None,
            ),
            Lookup::Hit(entry) => {
                let measured = entry
                    .measurements
                    .iter()
                    .map(|m| (m.candidate.to_string(), m.ms, m.verified))
                    .collect();
                (
                    TuningNote::Applied {
                        key: label,
                        measured,
                    },
                    Some(entry.choice.clone()),
                )
            }
        }
    }

    /// The registry.
    pub fn registry(&self) -> &'static Registry {
        self.registry
    }

    /// The most plans the cache holds.
    pub fn cache_capacity(&self) -> usize {
        self.cache.capacity()
    }

    /// Plans cached now.
    pub fn cached_plans(&self) -> usize {
        self.cache.len()
    }

    /// Selects (or returns the cached plan) for `problem` on the device `caps` describes.
    pub fn select(
        &self,
        caps: &Capabilities,
        problem: &Problem,
        policy: &Policy,
    ) -> Result<Arc<Plan>, SelectError> {
        let device = caps.device;
        let h = key_hash(device, problem, policy);
        let same = |(d, p, pol): &CacheKey| *d == device && p == problem && pol == policy;
        if let Some(plan) = self.cache.get(h, same) {
            tracing::trace!(
                op = %problem.op(),
                device = %device,
                kernel = plan.kernel_name(),
                "kernelyard: selection (cached plan)"
            );
            return Ok(plan);
        }
        let selected = self.select_uncached(caps, problem, policy);
        match &selected {
            Ok(plan) => tracing::debug!(
                op = %problem.op(),
                device = %device,
                policy = %policy,
                kernel = plan.kernel_name(),
                rejected = plan.report.rejected(),
                "kernelyard: selected"
            ),
            Err(e) => tracing::debug!(
                op = %problem.op(),
                device = %device,
                policy = %policy,
                error = %e,
                "kernelyard: no kernel selected"
            ),
        }
        let plan = Arc::new(selected?);
        // Another thread may have selected this key meanwhile: `insert` then returns its plan,
        // so one key has one plan and the cache holds no duplicates.
        Ok(self
            .cache
            .insert(h, (device, problem.clone(), policy.clone()), plan, same))
    }

    /// Runs selection without the cache.
    pub fn select_uncached(
        &self,
        caps: &Capabilities,
        problem: &Problem,
        policy: &Policy,
    ) -> Result<Plan, SelectError> {
        let op = problem.op();
        // A problem built directly (or deserialized) gets the invariants `from_params` and
        // `validate` enforce before any kernel's check or plan sees it.
        problem
            .check()
            .map_err(|error| SelectError::InvalidProblem { op, error })?;
        let kind = caps.device.kind;
        if let Choice::Backend(b) = &policy.choice {
            if !KNOWN_BACKENDS.iter().any(|k| k.name == b)
                && !self.registry.all().iter().any(|k| k.meta().backend == b)
            {
                return Err(SelectError::UnknownBackend {
                    name: b.clone(),
                    known: KNOWN_BACKENDS.iter().map(|k| k.name).collect(),
                });
            }
        }
        let pinned = match &policy.choice {
            Choice::Kernel(_) => None,
            _ => self.pins.get(op, kind),
        };
        let mut named_tactic: Option<&'static str> = None;
        let named: Option<&'static dyn Kernel> = match (&policy.choice, pinned) {
            (Choice::Kernel(spec), _) => {
                let (name, tactic) = split_tactic(spec);
                let k = self
                    .registry
                    .get(name)
                    .ok_or_else(|| SelectError::UnknownKernel {
                        name: name.to_string(),
                        op,
                        known: self.registry.names_for(op),
                    })?;
                if k.meta().op != op {
                    return Err(SelectError::KernelForOtherOp {
                        name: k.meta().name,
                        kernel_op: k.meta().op,
                        op,
                    });
                }
                if let Some(t) = tactic {
                    named_tactic = Some(
                        k.meta()
                            .tactics
                            .iter()
                            .copied()
                            .find(|x| *x == t)
                            .ok_or_else(|| SelectError::UnknownTactic {
                                kernel: k.meta().name,
                                tactic: t.to_string(),
                                known: k.meta().tactics.to_vec(),
                            })?,
                    );
                }
                Some(k)
            }
            (_, Some(k)) => Some(k),
            _ => None,
        };
        let candidates = self.registry.candidates(kind, op);
        if named.is_none() && candidates.is_empty() {
            return Err(SelectError::NoKernelForDevice {
                op,
                kind,
                available_on: self.registry.kinds_for(op),
            });
        }
        let mut report = SelectionReport {
            op,
            device: caps.device,
            problem: problem.clone(),
            policy: policy.clone(),
            pinned_by_env: pinned.map(|k| k.meta().name),
            selected: None,
            tactic: None,
            source: None,
            tuning: None,
            candidates: Vec::new(),
        };
        let evaluate = |k: &'static dyn Kernel| {
            let mut reasons = k.check(caps, problem).err().unwrap_or_default();
            policy.constraint_reasons(k, &mut reasons);
            reasons
        };
        if let Some(k) = named {
            let reasons = evaluate(k);
            let ok = reasons.is_empty();
            report.candidates.push(Candidate {
                kernel: k.meta().name,
                backend: k.meta().backend,
                priority: k.meta().priority,
                score: if ok { k.score(caps, problem) } else { 0 },
                verdict: if ok {
                    Verdict::Selected
                } else {
                    Verdict::Rejected { reasons }
                },
            });
            for other in candidates.iter().filter(|c| c.meta().name != k.meta().name) {
                report.candidates.push(Candidate {
                    kernel: other.meta().name,
                    backend: other.meta().backend,
                    priority: other.meta().priority,
                    score: 0,
                    verdict: Verdict::NotConsidered,
                });
            }
            if !ok {
                return Err(SelectError::KernelRejected {
                    name: k.meta().name,
                    report: Box::new(report),
                });
            }
            report.selected = Some(k.meta().name);
            report.tactic = named_tactic;
            report.source = Some(if pinned.is_some() {
                ChoiceSource::Pinned
            } else {
                ChoiceSource::Named
            });
            return Ok(Plan {
                kernel: k,
                tactic: named_tactic,
                device: caps.device,
                caps: caps.clone(),
                problem: problem.clone(),
                report,
            });
        }
        let mut runnable: Vec<(&'static dyn Kernel, i32)> = Vec::new();
        let mut rejected = Vec::new();
        for &k in candidates {
            let reasons = evaluate(k);
            if reasons.is_empty() {
                runnable.push((k, k.score(caps, problem)));
            } else {
                rejected.push((k, reasons));
            }
        }
        runnable.sort_by(|(a, sa), (b, sb)| {
            let (ma, mb) = (a.meta(), b.meta());
            mb.priority
                .cmp(&ma.priority)
                .then(sb.cmp(sa))
                .then(ma.name.cmp(mb.name))
        });
        let mut source = match runnable.as_slice() {
            [(a, _), (b, _), ..] if a.meta().priority == b.meta().priority => {
                ChoiceSource::Heuristic
            }
            _ => ChoiceSource::Priority,
        };
        let mut tactic = None;
        if policy.tuned || self.tune_all {
            let (mut note, choice) = self.tuned_choice(caps, problem, policy);
            if let (Some(choice), TuningNote::Applied { key, .. }) = (choice, &note) {
                let pos = runnable
                    .iter()
                    .position(|(k, _)| k.meta().name == choice.kernel);
                let known_tactic = |k: &'static dyn Kernel| match &choice.tactic {
                    None => Ok(None),
                    Some(t) => k
                        .meta()
                        .tactics
                        .iter()
                        .copied()
                        .find(|x| x == t)
                        .map(Some)
                        .ok_or_else(|| format!("the kernel has no tactic `{t}` (any more)")),
                };
                let usable = pos.map(|i| (i, known_tactic(runnable[i].0)));
                if let Some((i, Ok(t))) = usable {
                    let k = runnable.remove(i);
                    runnable.insert(0, k);
                    tactic = t;
                    source = ChoiceSource::Tuned;
                } else {
                    let why = match (
                        usable,
                        rejected
                            .iter()
                            .find(|(k, _)| k.meta().name == choice.kernel),
                    ) {
                        (Some((_, Err(why))), _) => why,
                        (_, Some((_, reasons))) => reasons
                            .iter()
                            .map(|r| r.to_string())
                            .collect::<Vec<_>>()
                            .join("; "),
                        _ => "not a candidate for this device and operator".to_string(),
                    };
                    note = TuningNote::Unusable {
                        key: key.clone(),
                        choice: choice.to_string(),
                        why,
                    };
                }
            }
            report.tuning = Some(note);
        }
        for (i, (k, score)) in runnable.iter().enumerate() {
            report.candidates.push(Candidate {
                kernel: k.meta().name,
                backend: k.meta().backend,
                priority: k.meta().priority,
                score: *score,
                verdict: if i == 0 {
                    Verdict::Selected
                } else {
                    Verdict::Runnable
                },
            });
        }
        for (k, reasons) in rejected {
            report.candidates.push(Candidate {
                kernel: k.meta().name,
                backend: k.meta().backend,
                priority: k.meta().priority,
                score: 0,
                verdict: Verdict::Rejected { reasons },
            });
        }
        match runnable.first() {
            Some(&(k, _)) => {
                report.selected = Some(k.meta().name);
                report.tactic = tactic;
                report.source = Some(source);
                Ok(Plan {
                    kernel: k,
                    tactic,
                    device: caps.device,
                    caps: caps.clone(),
                    problem: problem.clone(),
                    report,
                })
            }
            None => Err(SelectError::AllRejected {
                report: Box::new(report),
            }),
        }
    }
}
