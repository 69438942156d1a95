//! The runner: every case of every op, for every kernel registered for every present device.
//!
//! For one (case, dtype) the inputs are generated once from the seed, so every kernel on
//! every device sees the same data, and the oracle runs at most once. Per kernel:
//! 1. select it by name (`Policy::kernel`): a rejection is a skip with each reason;
//! 2. run it (outputs poisoned with NaN) and compare with the oracle (`oracle`);
//! 3. if it declares determinism, run it again and require identical bits (`deterministic`);
//! 4. if it declares batch invariance, run sub-batches (the first row alone, the rest, a
//!    middle slice) and a padded batch (random rows appended) and require each row's bits to
//!    equal the full batch's (`batch_invariant`).
//!
//! The first failing check decides the outcome; its message starts with the check's name.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::Serialize;

use kernelyard::kernel::tactic_label;
use kernelyard::{DType, DeviceId, Error, Kernel, OpKind, Problem, Runtime};

use crate::cases::{case_path, cases_for, Case};
use crate::compare::{against_oracle, bit_difference, num, Metrics};
use crate::data::{select_rows, unravel, with_axis, Instance};
use crate::exec::{execute, panic_text, Downloaded, RunError};
use crate::known::{self, KNOWN_DIFFERENCES};
use crate::ops::{driver, instance, padded, subset, Driver, ExpectedError};
use crate::report::{CaseResult, Outcome, SuiteReport};
use crate::rng::Rng;
use crate::tolerance::{coarser, tolerance};

/// The seed the suite uses unless told otherwise.
pub const DEFAULT_SEED: u64 = 0x6b79_2d73_7569_7465;

/// The environment variable that adds a run with another seed (decimal or `0x` hex).
pub const SEED_ENV: &str = "KERNELYARD_SEED";

/// Reads [`SEED_ENV`]: `Ok(None)` when unset or empty, an error naming the value when it is
/// not a number.
pub fn seed_from_env() -> Result<Option<u64>, String> {
    let Ok(raw) = std::env::var(SEED_ENV) else {
        return Ok(None);
    };
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed
        .map(Some)
        .map_err(|_| format!("{SEED_ENV}=`{raw}` is not a decimal or 0x-hex u64"))
}

/// What to run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SuiteOptions {
    /// Only this operator (every one when `None`).
    pub op: Option<OpKind>,
    /// Only this device (every present one when `None`).
    pub device: Option<DeviceId>,
    /// The seed of the generated inputs.
    pub seed: u64,
}

/// One case and dtype, ready to run on any kernel.
struct Prepared {
    inst: Instance,
    expected_error: Option<ExpectedError>,
}

fn devices(rt: &Runtime, opts: &SuiteOptions) -> Vec<DeviceId> {
    rt.devices()
        .map(|c| c.device)
        .filter(|d| opts.device.is_none_or(|want| want == *d))
        .collect()
}

fn ops(opts: &SuiteOptions) -> Vec<OpKind> {
    OpKind::ALL
        .into_iter()
        .filter(|op| opts.op.is_none_or(|want| want == *op))
        .collect()
}

/// A kernel in one configuration: its default, or one of its tactics.
type Target = (DeviceId, &'static dyn Kernel, Option<&'static str>);

/// Every (device, kernel, tactic) the suite runs for `op`: each kernel's default and each of
/// its tactics, so no tactic ships unverified.
fn targets(rt: &Runtime, opts: &SuiteOptions, op: OpKind) -> Vec<Target> {
    let mut v = Vec::new();
    for device in devices(rt, opts) {
        for &k in rt.registry().candidates(device.kind, op) {
            v.push((device, k, None));
            for t in k.meta().tactics {
                v.push((device, k, Some(*t)));
            }
        }
    }
    v
}

/// Runs the suite: every case of every op in `opts`, for every kernel registered for every
/// present device in `opts`. `progress` sees every result as it is decided.
///
/// A device named in `opts.device` that is not present gives an empty report: check it with
/// [`Runtime::capabilities`] first (as `kernelyard verify` does). Pair the report with
/// [`kernels_without_pass`] to find kernels the run did not cover.
pub fn run_suite(
    rt: &Runtime,
    opts: &SuiteOptions,
    progress: &mut dyn FnMut(&CaseResult),
) -> SuiteReport {
    let mut report = SuiteReport {
        seed: opts.seed,
        results: Vec::new(),
    };
    let mut record = |r: CaseResult| {
        progress(&r);
        report.results.push(r);
    };
    for op in ops(opts) {
        let targets = targets(rt, opts, op);
        if targets.is_empty() {
            continue;
        }
        // An op the suite does not list fails every kernel of it, as a broken case file does.
        let (cases, driver) = match cases_and_driver(op) {
            Ok(c) => c,
            Err(e) => {
                for &(device, k, tactic) in &targets {
                    record(CaseResult {
                        device,
                        kernel: tactic_label(k.meta().name, tactic),
                        op,
                        case: case_path(op),
                        dtype: DType::F32,
                        outcome: Outcome::Fail {
                            why: format!("case file: {e}"),
                        },
                    });
                }
                continue;
            }
        };
        for case in &cases {
            for &dtype in &case.dtypes {
                let prepared = prepare(driver, op, case, dtype, opts.seed);
                let mut oracle: Option<Result<Vec<Vec<f64>>, String>> = None;
                for &(device, k, tactic) in &targets {
                    let name = tactic_label(k.meta().name, tactic);
                    let outcome = match &prepared {
                        Err(e) => Outcome::Fail {
                            why: format!("case: {e}"),
                        },
                        Ok(p) => {
                            let run = KernelRun {
                                rt,
                                device,
                                kernel: k,
                                label: name,
                                driver,
                                seed_parts: [op.name(), &case.name, dtype.name()],
                                seed: opts.seed,
                            };
                            run.outcome(p, &mut oracle)
                        }
                    };
                    let known = known::lookup(KNOWN_DIFFERENCES, name, &case.name, dtype);
                    record(CaseResult {
                        device,
                        kernel: name,
                        op,
                        case: case.name.clone(),
                        dtype,
                        outcome: known::apply(known, outcome),
                    });
                }
            }
        }
    }
    report
}

/// Every kernel registered for a present device (within `opts`) that passed no case of
/// `report`: a kernel whose every case was skipped is not covered by the suite. A kernel whose
/// declared architecture range excludes the device (`cuda.scaled_gemm.fp4.cublaslt`, sm_100+,
/// on a Hopper) is not listed: it cannot run there, and the report shows each of its cases as
/// a skip with `ArchTooOld`; it is covered, or not, on a device of its range.
pub fn kernels_without_pass(
    rt: &Runtime,
    opts: &SuiteOptions,
    report: &SuiteReport,
) -> Vec<(DeviceId, &'static str)> {
    let mut v = Vec::new();
    for op in ops(opts) {
        for (device, k, tactic) in targets(rt, opts, op) {
            if let Ok(caps) = rt.capabilities(device) {
                let mut outside = Vec::new();
                k.meta().arch.check(&caps.arch, &mut outside);
                if !outside.is_empty() {
                    continue;
                }
            }
            let name = tactic_label(k.meta().name, tactic);
            let passed = report
                .results
                .iter()
                .any(|r| r.device == device && r.kernel == name && r.outcome.is_pass());
            if !passed {
                v.push((device, name));
            }
        }
    }
    v
}

/// Verifies kernels on one problem, as the suite verifies them on a case: fresh inputs from
/// the seed (made once), the oracle (computed once, on the first kernel that runs), and every
/// check the kernel declares (oracle, determinism, batch invariance). What the tuner admits a
/// candidate by.
pub struct ProblemVerifier {
    driver: Option<&'static dyn Driver>,
    prepared: Result<Prepared, String>,
    oracle: Option<Result<Vec<Vec<f64>>, String>>,
    seed: u64,
    label: String,
}

impl ProblemVerifier {
    /// Inputs for `problem` with `scalars` (the op's defaults when `None`), from `seed`.
    pub fn new(problem: &Problem, scalars: &crate::bench::BenchScalars, seed: u64) -> Self {
        let op = problem.op();
        let label = format!("{problem}");
        let driver = match driver(op) {
            Ok(d) => d,
            Err(e) => {
                return ProblemVerifier {
                    driver: None,
                    prepared: Err(e),
                    oracle: None,
                    seed,
                    label,
                }
            }
        };
        let prepared = (|| {
            let scalars = scalars.resolve(problem)?;
            let mut rng = Rng::derived(seed, &[op.name(), "tune", &label]);
            let inst = instance(driver, problem.clone(), scalars, &mut rng)?;
            let expected_error = driver.expected_error(&inst)?;
            Ok(Prepared {
                inst,
                expected_error,
            })
        })();
        ProblemVerifier {
            driver: Some(driver),
            prepared,
            oracle: None,
            seed,
            label,
        }
    }

    /// Runs `kernel` (in its default configuration, or `tactic`) on the problem on `device`
    /// and judges it.
    pub fn verify(
        &mut self,
        rt: &Runtime,
        device: DeviceId,
        kernel: &'static dyn Kernel,
        tactic: Option<&'static str>,
    ) -> Outcome {
        let (p, driver) = match (&self.prepared, self.driver) {
            (Ok(p), Some(d)) => (p, d),
            (Err(e), _) => {
                return Outcome::Fail {
                    why: format!("case: {e}"),
                }
            }
            (Ok(_), None) => {
                return Outcome::Fail {
                    why: "harness bug: no driver".into(),
                }
            }
        };
        let op = p.inst.problem.op();
        let run = KernelRun {
            rt,
            device,
            kernel,
            label: tactic_label(kernel.meta().name, tactic),
            driver,
            seed_parts: [op.name(), "tune", &self.label],
            seed: self.seed,
        };
        run.outcome(p, &mut self.oracle)
    }
}

/// The cases of `op` and its driver.
fn cases_and_driver(op: OpKind) -> Result<(Vec<Case>, &'static dyn Driver), String> {
    Ok((cases_for(op)?, driver(op)?))
}

fn prepare(
    driver: &dyn Driver,
    op: OpKind,
    case: &Case,
    dtype: DType,
    seed: u64,
) -> Result<Prepared, String> {
    let problem = case.problem(op, dtype)?;
    let mut rng = Rng::derived(seed, &[op.name(), &case.name, dtype.name()]);
    let inst = instance(driver, problem, case.scalars()?, &mut rng)?;
    let expected_error = driver.expected_error(&inst)?;
    Ok(Prepared {
        inst,
        expected_error,
    })
}

/// The oracle's outputs, with a panic in the oracle reported as an error.
fn compute_oracle(driver: &dyn Driver, inst: &Instance) -> Result<Vec<Vec<f64>>, String> {
    let want = catch_unwind(AssertUnwindSafe(|| driver.oracle(inst)))
        .map_err(|p| format!("the oracle panicked: {}", panic_text(p.as_ref())))??;
    if want.len() != inst.outputs.len() {
        return Err(format!(
            "the oracle gave {} outputs for {}",
            want.len(),
            inst.outputs.len()
        ));
    }
    Ok(want)
}

/// An element's index with the batch axis mapped back to the full batch's row.
fn full_index(i: usize, shape: &[usize], axis: usize, rows: &[usize]) -> Vec<usize> {
    let mut idx = unravel(i, shape);
    if let Some(slot) = idx.get_mut(axis) {
        *slot = rows.get(*slot).copied().unwrap_or(*slot);
    }
    idx
}

/// One kernel on one device, for one case and dtype.
struct KernelRun<'r> {
    rt: &'r Runtime,
    device: DeviceId,
    kernel: &'static dyn Kernel,
    /// `kernel@tactic`, or the kernel's name for its default configuration.
    label: &'static str,
    driver: &'static dyn Driver,
    seed_parts: [&'r str; 3],
    seed: u64,
}

impl KernelRun<'_> {
    fn execute(&self, inst: &Instance) -> Result<Vec<Downloaded>, RunError> {
        execute(self.rt, self.device, self.label, self.driver, inst)
    }

    /// Runs every check and decides the outcome.
    fn outcome(&self, p: &Prepared, oracle: &mut Option<Result<Vec<Vec<f64>>, String>>) -> Outcome {
        let first = self.execute(&p.inst);
        if let Some(expected) = &p.expected_error {
            return match first {
                Err(RunError::Launch(e)) => match expected.check(&e) {
                    Ok(()) => Outcome::Pass {
                        rel_l2: 0.0,
                        max_abs: 0.0,
                        checks: vec!["expected_error"],
                    },
                    Err(why) => Outcome::Fail {
                        why: format!("expected_error: {why}"),
                    },
                },
                Err(RunError::Rejected(reasons)) => Outcome::Skip { reasons },
                Err(RunError::Failed(why)) => Outcome::Fail {
                    why: format!("run: {why}"),
                },
                Ok(_) => Outcome::Fail {
                    why: format!(
                        "expected_error: the launch succeeded; expected {}",
                        expected.describe()
                    ),
                },
            };
        }
        let first = match first {
            Ok(out) => out,
            Err(RunError::Rejected(reasons)) => return Outcome::Skip { reasons },
            Err(RunError::Failed(why)) => {
                return Outcome::Fail {
                    why: format!("run: {why}"),
                }
            }
            // A declared tactic the device cannot offer for this problem (cuBLASLt's list is
            // shorter): nothing ran, nothing else was run instead.
            Err(RunError::Launch(e @ Error::TacticUnavailable { .. })) => {
                return Outcome::Skip {
                    reasons: vec![e.to_string()],
                }
            }
            Err(RunError::Launch(e)) => {
                return Outcome::Fail {
                    why: format!("launch: {e}"),
                }
            }
        };
        let want = match oracle.get_or_insert_with(|| compute_oracle(self.driver, &p.inst)) {
            Ok(w) => w,
            Err(e) => {
                return Outcome::Fail {
                    why: format!("oracle: the reference oracle failed: {e}"),
                }
            }
        };
        let metrics = match self.against_oracle(&p.inst, &first, want) {
            Ok(m) => m,
            Err(why) => {
                return Outcome::Fail {
                    why: format!("oracle: {why}"),
                }
            }
        };
        let mut checks = vec!["oracle"];
        let meta = self.kernel.meta();
        if meta.deterministic {
            if let Err(why) = self.deterministic(&p.inst, &first) {
                return Outcome::Fail {
                    why: format!("deterministic: {why}"),
                };
            }
            checks.push("deterministic");
        }
        if meta.batch_invariant {
            if let Err(why) = self.batch_invariant(&p.inst, &first) {
                return Outcome::Fail {
                    why: format!("batch_invariant: {why}"),
                };
            }
            checks.push("batch_invariant");
        }
        Outcome::Pass {
            rel_l2: metrics.rel_l2,
            max_abs: metrics.max_abs,
            checks,
        }
    }

    /// Every output within the tolerance of its (op, dtype); the worst of each metric.
    fn against_oracle(
        &self,
        inst: &Instance,
        got: &[Downloaded],
        want: &[Vec<f64>],
    ) -> Result<Metrics, String> {
        if got.len() != inst.outputs.len() || want.len() != inst.outputs.len() {
            return Err("harness bug: output counts differ".into());
        }
        let op = inst.problem.op();
        let mut worst = Metrics {
            rel_l2: 0.0,
            max_abs: 0.0,
        };
        for ((spec, g), w) in inst.outputs.iter().zip(got).zip(want) {
            let dtype = coarser(inst.problem.dtype(), spec.dtype);
            let tol = tolerance(op, dtype).ok_or_else(|| {
                format!("no tolerance for {op} {dtype} in crates/suite/src/tolerance.rs")
            })?;
            let m = against_oracle(spec, &g.values, w, tol)?;
            worst.rel_l2 = worst.rel_l2.max(m.rel_l2);
            worst.max_abs = worst.max_abs.max(m.max_abs);
        }
        Ok(worst)
    }

    /// A second run on the same inputs (outputs poisoned again) gives identical bits.
    fn deterministic(&self, inst: &Instance, first: &[Downloaded]) -> Result<(), String> {
        let second = self
            .execute(inst)
            .map_err(|e| format!("the second run failed: {}", describe(e)))?;
        for ((spec, a), b) in inst.outputs.iter().zip(first).zip(&second) {
            if let Some(d) = bit_difference(&a.bits, &b.bits) {
                return Err(format!(
                    "`{}` differs between two runs on the same inputs: {} element(s), first at {:?}: {} vs {}",
                    spec.name,
                    d.count,
                    unravel(d.first, &spec.shape),
                    num(value(a, d.first)),
                    num(value(b, d.first))
                ));
            }
        }
        Ok(())
    }

    /// Each row's bits are the same in sub-batches and in a padded batch as in the full batch.
    fn batch_invariant(&self, inst: &Instance, full: &[Downloaded]) -> Result<(), String> {
        let n = self.driver.rows(&inst.problem)?;
        let mut batches: Vec<(String, Vec<usize>)> = Vec::new();
        if n >= 2 {
            batches.push(("row 0 alone".into(), vec![0]));
            batches.push((format!("rows 1..{n}"), (1..n).collect()));
        }
        if n >= 4 {
            let (lo, hi) = (n / 3, n / 3 + (n / 3).max(1));
            batches.push((format!("rows {lo}..{hi}"), (lo..hi).collect()));
        }
        for (desc, rows) in &batches {
            let sub = subset(self.driver, inst, rows)?;
            let got = self
                .execute(&sub)
                .map_err(|e| format!("the run of {desc} failed: {}", describe(e)))?;
            for ((spec, whole), part) in inst.outputs.iter().zip(full).zip(&got) {
                let Some(axis) = spec.batch_axis else {
                    continue;
                };
                let want = select_rows(&whole.bits, &spec.shape, axis, rows);
                if let Some(d) = bit_difference(&part.bits, &want) {
                    let sub_shape = with_axis(&spec.shape, axis, rows.len());
                    let idx = full_index(d.first, &sub_shape, axis, rows);
                    let want_values = select_rows(&whole.values, &spec.shape, axis, rows);
                    return Err(format!(
                        "`{}` computed for {desc} differs from the full batch of {n}: {} element(s), first at {idx:?} (full-batch index): {} vs {} in the full batch",
                        spec.name,
                        d.count,
                        num(value(part, d.first)),
                        num(want_values.get(d.first).copied().unwrap_or(f64::NAN))
                    ));
                }
            }
        }
        let extra = (n / 2).max(3);
        let [op, case, dtype] = self.seed_parts;
        let mut rng = Rng::derived(self.seed, &[op, case, dtype, "padding"]);
        let big = padded(self.driver, inst, extra, &mut rng)?;
        let got = self
            .execute(&big)
            .map_err(|e| format!("the run with {extra} rows appended failed: {}", describe(e)))?;
        let rows: Vec<usize> = (0..n).collect();
        for ((spec, whole), (big_spec, part)) in inst
            .outputs
            .iter()
            .zip(full)
            .zip(big.outputs.iter().zip(&got))
        {
            let Some(axis) = spec.batch_axis else {
                continue;
            };
            let mine = select_rows(&part.bits, &big_spec.shape, axis, &rows);
            if let Some(d) = bit_difference(&mine, &whole.bits) {
                return Err(format!(
                    "`{}` with {extra} random rows appended to the {n} differs from the full batch: {} element(s), first at {:?}: {} vs {} in the full batch",
                    spec.name,
                    d.count,
                    unravel(d.first, &spec.shape),
                    num(select_rows(&part.values, &big_spec.shape, axis, &rows)
                        .get(d.first)
                        .copied()
                        .unwrap_or(f64::NAN)),
                    num(value(whole, d.first))
                ));
            }
        }
        Ok(())
    }
}

fn value(d: &Downloaded, i: usize) -> f64 {
    d.values.get(i).copied().unwrap_or(f64::NAN)
}

/// A run error in words, for checks after the first run (where a rejection is a failure: the
/// kernel ran this case and must run its sub-batches too).
fn describe(e: RunError) -> String {
    match e {
        RunError::Rejected(reasons) => format!("the kernel was rejected: {}", reasons.join("; ")),
        RunError::Failed(why) => why,
        RunError::Launch(e) => e.to_string(),
    }
}
