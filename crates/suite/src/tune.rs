//! The tuner: measures every kernel that can run a problem on a device, admits only those
//! whose output the suite verifies on the problem, and makes a tuning cache entry
//! (`kernelyard_core::tune`) choosing the fastest admitted one (`kernelyard tune`).
//!
//! # What it does, in order
//! 1. **Candidates**: every kernel registered for the device's kind and the op. One that
//!    selection rejects under the policy's constraints (determinism, batch invariance) or for
//!    the problem is recorded as rejected with its reasons.
//! 2. **Verification** ([`ProblemVerifier`]): each runnable candidate runs the problem on fresh
//!    random inputs, with poisoned outputs, and must pass the suite's checks on it (the oracle
//!    within the op's tolerance, and determinism and batch invariance where the kernel declares
//!    them). A candidate that fails is recorded as rejected with the failure (burn#5626: a wrong
//!    candidate is caught before it can win).
//! 3. **Timing** ([`bench()`]): the verified candidates are timed as `kernelyard bench` times them
//!    (warm-up, rotating inputs beyond the L2 cache, each run timed on its own with CUDA events
//!    or the host clock, the median).
//! 4. **Entry**: the fastest verified candidate, every measurement, and the environment.
//!
//! Each kernel is a candidate in its default configuration and in each of its tactics
//! (`kernel@tactic`): every one is verified before it is timed.
//!
//! # Once per process, thread-safe
//! Results are memoised per (device, key) in a process-wide map behind a mutex held while
//! tuning, so two threads asking for one key tune it once and get the same result.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use kernelyard::kernel::tactic_label;
use kernelyard::tune::{Candidate, Measurement, TuneError, TuningEntry, TuningEnv, TuningKey};
use kernelyard::{DeviceId, Kernel, Policy, Problem, Runtime, SelectError, Verdict};

use crate::bench::{bench, BenchError, BenchOptions, BenchScalars, KernelChoice};
use crate::report::Outcome;
use crate::runner::ProblemVerifier;

/// What to tune.
#[derive(Clone, Debug)]
pub struct TuneOptions {
    /// The device; it must be present.
    pub device: DeviceId,
    /// The problem.
    pub problem: Problem,
    /// Tune for deterministic policies (the key leaves out the batch fields).
    pub deterministic: bool,
    /// Tune for batch-invariant policies (the key leaves out the batch fields).
    pub batch_invariant: bool,
    /// Warm-up runs per candidate.
    pub warmup: usize,
    /// Timed runs per candidate (the median is kept).
    pub iters: usize,
    /// Seed of the verification and timing inputs.
    pub seed: u64,
}

impl TuneOptions {
    /// Unconstrained, `bench`'s default runs, the suite's default seed.
    pub fn new(device: DeviceId, problem: Problem) -> Self {
        TuneOptions {
            device,
            problem,
            deterministic: false,
            batch_invariant: false,
            warmup: crate::bench::DEFAULT_WARMUP,
            iters: crate::bench::DEFAULT_ITERS,
            seed: crate::DEFAULT_SEED,
        }
    }

    fn policy(&self, kernel: &str) -> Policy {
        let mut p = Policy::kernel(kernel);
        p.deterministic = self.deterministic;
        p.batch_invariant = self.batch_invariant;
        p
    }

    /// Selection as it is without a tuning cache, under the same constraints.
    fn untuned_policy(&self) -> Policy {
        let mut p = Policy::auto();
        p.deterministic = self.deterministic;
        p.batch_invariant = self.batch_invariant;
        p
    }

    fn constrained(&self) -> bool {
        self.deterministic || self.batch_invariant
    }
}

/// The result of tuning one problem.
#[derive(Clone, Debug)]
pub struct TuneReport {
    /// The key the entry is for.
    pub key: TuningKey,
    /// Every candidate's result, in registry order.
    pub measurements: Vec<Measurement>,
    /// The entry (the fastest verified candidate), or `None` if no candidate was verified.
    pub entry: Option<TuningEntry>,
    /// What selection picks for the problem without tuning (priority and heuristics under the
    /// same constraints), as `kernel` or `kernel@tactic`; `None` if nothing can run it. With
    /// the measurements, the tuned choice's gain over it.
    pub untuned: Option<String>,
    /// Wall time of the tuning, seconds.
    pub seconds: f64,
    /// This result was tuned earlier in this process and reused.
    pub memoised: bool,
}

/// Why tuning could not run.
#[derive(Debug)]
pub enum TuneFailure {
    /// The device or the key.
    Select(SelectError),
    /// The key could not be made.
    Key(TuneError),
    /// Timing failed.
    Bench(BenchError),
}

impl fmt::Display for TuneFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TuneFailure::Select(e) => write!(f, "{e}"),
            TuneFailure::Key(e) => write!(f, "{e}"),
            TuneFailure::Bench(e) => write!(f, "timing failed: {e}"),
        }
    }
}

impl std::error::Error for TuneFailure {}

type Memo = HashMap<(DeviceId, TuningKey), TuneReport>;

fn memo() -> &'static Mutex<Memo> {
    static MEMO: OnceLock<Mutex<Memo>> = OnceLock::new();
    MEMO.get_or_init(|| Mutex::new(HashMap::new()))
}

fn rejected(candidate: Candidate, version: u32, why: String) -> Measurement {
    Measurement {
        candidate,
        kernel_version: version,
        ms: None,
        verified: false,
        rejected: Some(why),
    }
}

/// The reasons selection gave for rejecting `kernel`, joined.
fn reasons(err: &SelectError, kernel: &str) -> String {
    let report = match err {
        SelectError::KernelRejected { report, .. } | SelectError::AllRejected { report } => report,
        other => return other.to_string(),
    };
    report
        .candidates
        .iter()
        .find(|c| c.kernel == kernel)
        .and_then(|c| match &c.verdict {
            Verdict::Rejected { reasons } => Some(
                reasons
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            _ => None,
        })
        .unwrap_or_else(|| err.to_string())
}

/// Tunes `opts.problem` on `opts.device` (see the module docs); `progress` hears each step.
pub fn tune(
    rt: &Runtime,
    opts: &TuneOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<TuneReport, TuneFailure> {
    let caps = rt
        .capabilities(opts.device)
        .map_err(TuneFailure::Select)?
        .clone();
    let key = TuningKey::new(&opts.problem, &caps, opts.constrained()).map_err(TuneFailure::Key)?;
    // Held while tuning: one key is tuned once per process, and tunings do not overlap (they
    // would disturb each other's timings).
    let mut memo = memo().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(done) = memo.get(&(opts.device, key.clone())) {
        progress(&format!("{}: tuned earlier in this process", key.label()));
        return Ok(TuneReport {
            memoised: true,
            ..done.clone()
        });
    }
    let start = Instant::now();
    let op = opts.problem.op();
    let candidates = rt.registry().candidates(opts.device.kind, op);
    progress(&format!(
        "tuning {} on {}: {} candidate(s)",
        key.label(),
        opts.device,
        candidates.len()
    ));
    let mut verifier = ProblemVerifier::new(&opts.problem, &BenchScalars::default(), opts.seed);
    let mut measurements = Vec::new();
    let mut verified = Vec::new();
    // Every kernel in its default configuration and in each of its tactics.
    let configs: Vec<(&'static dyn Kernel, Option<&'static str>)> = candidates
        .iter()
        .flat_map(|&k| {
            std::iter::once((k, None)).chain(k.meta().tactics.iter().map(move |t| (k, Some(*t))))
        })
        .collect();
    let n = configs.len();
    for (i, &(k, tactic)) in configs.iter().enumerate() {
        let m = k.meta();
        let label = tactic_label(m.name, tactic);
        let candidate = Candidate {
            kernel: m.name.to_string(),
            tactic: tactic.map(str::to_string),
        };
        if let Err(e) = rt.select(opts.device, &opts.problem, &opts.policy(label)) {
            let why = reasons(&e, m.name);
            progress(&format!("[{}/{n}] {label}: cannot run: {why}", i + 1));
            measurements.push(rejected(candidate, m.version, why));
            continue;
        }
        progress(&format!(
            "[{}/{n}] {label}: verifying against the reference",
            i + 1
        ));
        match verifier.verify(rt, opts.device, k, tactic) {
            Outcome::Pass { .. } => {
                verified.push(label);
                measurements.push(Measurement {
                    candidate,
                    kernel_version: m.version,
                    ms: None,
                    verified: true,
                    rejected: None,
                });
            }
            Outcome::Fail { why } => {
                progress(&format!("    {label}: rejected: {why}"));
                measurements.push(rejected(candidate, m.version, why));
            }
            Outcome::Skip { reasons } => {
                let why = reasons.join("; ");
                progress(&format!("    {label}: skipped: {why}"));
                measurements.push(rejected(candidate, m.version, why));
            }
        }
    }
    for label in verified {
        progress(&format!("timing {label}"));
        let mut bo = BenchOptions::new(opts.device, opts.problem.clone());
        bo.kernels = KernelChoice::Named(label.to_string());
        bo.warmup = opts.warmup;
        bo.iters = opts.iters;
        bo.seed = opts.seed;
        // The copy bandwidth is not needed here: a token copy.
        bo.copy_bytes = Some(1 << 20);
        let report = bench(rt, &bo, &mut |_| {}).map_err(TuneFailure::Bench)?;
        let ms = report.rows.iter().find(|r| r.kernel == label).map(|r| r.ms);
        if let Some(m) = measurements
            .iter_mut()
            .find(|m| m.candidate.to_string() == label)
        {
            m.ms = ms;
        }
    }
    let entry =
        TuningEntry::from_measurements(key.clone(), TuningEnv::of(&caps), measurements.clone());
    let untuned = rt
        .select(opts.device, &opts.problem, &opts.untuned_policy())
        .ok()
        .map(|plan| plan.label().to_string());
    let report = TuneReport {
        key: key.clone(),
        measurements,
        entry,
        untuned,
        seconds: start.elapsed().as_secs_f64(),
        memoised: false,
    };
    memo.insert((opts.device, key), report.clone());
    Ok(report)
}
