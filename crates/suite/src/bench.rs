//! Benchmarks: one problem, timed on one device for the auto-selected kernel, a named one, or
//! every kernel registered for the device (`kernelyard bench`).
//!
//! # Who is responsible for what
//! - **The drivers** (the same ones as the equivalence suite) generate the inputs, once, on the
//!   host, and build the call's arguments over device buffers.
//! - **This module** uploads enough copies of the inputs and outputs (a "set") that the sets
//!   together exceed four times a 50 MiB L2 cache ([`ROTATION_BYTES`]; at least
//!   [`MIN_SETS`]), so runs never find their data in cache; selects each kernel once (`Runtime::select`, the call
//!   applications make; a named kernel that cannot run is an error with its reasons, never
//!   replaced); warms up; and times each run on its own with `Runtime::time` (CUDA events on
//!   GPUs, the host clock on the CPU), rotating through the sets. It reports the median, the
//!   minimum and the maximum.
//! - **The work conventions** ([`Problem::work`], [`Problem::shape`], [`Problem::layout`]: each
//!   operator's descriptor in core) are those of `../shared/peers/torch_ops.py`, so that a row of
//!   ours and a row of torch's for the same problem compare like for like (its JSON lines have
//!   the same shape: [`BenchReport::json_lines`]).
//! - **The device's copy bandwidth** is measured once per call (`Runtime::copy_bandwidth`,
//!   bytes read plus bytes written) and memory-bound rows report the fraction of it they reach.
//!
//! The work is split: [`scalars`](BenchScalars) checks the op's scalars, `report` formats the
//! table and the JSON lines, this file runs.
//!
//! Timings include what a launch costs the caller, as an application pays it: the plan's
//! argument validation and dispatch (the kernel is selected once, before timing). torch's
//! timings include its dispatch too.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use kernelyard::kernel::tactic_label;
use kernelyard::{
    Args, DeviceId, DeviceKind, Error, OpKind, Plan, Policy, Problem, Runtime, SelectError, Verdict,
};

use crate::exec::{panic_text, same_but_align};
use crate::ops::driver;

mod budget;
mod inputs;
mod report;
mod scalars;

use budget::{check_runs, host_available, Footprint};
use inputs::HostSet;

pub use budget::{Refused, MAX_RUNS};

/// The work of one run (core's, by the torch peer's conventions: [`Problem::work`]).
pub use kernelyard::ops::Work;
pub use report::{human_bytes, BenchReport, BenchRow, Skipped};
pub use scalars::BenchScalars;

/// Warm-up runs before timing, unless told otherwise.
pub const DEFAULT_WARMUP: usize = 10;
/// Timed runs, unless told otherwise.
pub const DEFAULT_ITERS: usize = 100;
/// Most launches per timed run ([`BenchOptions::launches`]).
pub const MAX_LAUNCHES: usize = 1000;
/// The L2 cache the rotation is sized for (50 MiB: H100; H200 has the same).
pub const L2_BYTES: usize = 50 << 20;
/// The input sets together exceed this (four L2 caches), so no run finds its data in cache.
pub const ROTATION_BYTES: usize = 4 * L2_BYTES;
/// At most this many input sets are uploaded (tiny problems stay in cache whatever we do).
pub const MAX_SETS: usize = 64;
/// At least this many input sets are uploaded where memory allows, however large a set is:
/// a run may touch far less than its set holds (a state cache read through indices), and
/// one set run again and again would find what it wrote last time in L2 (an H100 measured
/// 104 % of its copy bandwidth that way for `selective_state_update` over a 512-slot cache,
/// 75 % with the sets rotated).
pub const MIN_SETS: usize = 2;
/// Copies timed for the copy bandwidth (their median is reported).
pub const COPY_RUNS: usize = 10;
/// The largest copy timed for the copy bandwidth on a GPU (also at most an eighth of its
/// memory).
pub const GPU_COPY_BYTES: usize = 1 << 30;
/// The copy timed for the copy bandwidth on the CPU.
pub const CPU_COPY_BYTES: usize = 256 << 20;
/// The `"peer"` of our JSON lines (torch's say `"torch"`).
pub const PEER: &str = "kernelyard";

/// Which kernels to time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelChoice {
    /// The kernel `Policy::auto()` selects (what an application gets by default).
    Auto,
    /// Exactly this kernel; if it cannot run the problem the bench is an error with its
    /// reasons.
    Named(String),
    /// Every kernel registered for the device's kind; those that cannot run the problem are
    /// reported as skipped, with their reasons.
    All,
}

/// What to benchmark.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchOptions {
    /// The device; it must be present.
    pub device: DeviceId,
    /// The problem (its op is the op benchmarked), e.g. from `Problem::from_params`.
    pub problem: Problem,
    /// Which kernels to time.
    pub kernels: KernelChoice,
    /// Untimed runs before timing.
    pub warmup: usize,
    /// Timed runs (at least 1); the median is reported.
    pub iters: usize,
    /// Launches per timed run, 1 to [`MAX_LAUNCHES`]: a run's time is that of this many
    /// back-to-back launches (each on the next input set) divided by their number. 1 (the
    /// default, and `torch_ops.py`'s method) includes the launch latency in every run (an
    /// event, the launch, an event, on an idle stream: 7-9 us on an H100 for a tiny problem,
    /// docs/BENCHMARKS.md); more hide it behind the previous launches' work, which is what a
    /// stream of back-to-back kernels or a CUDA graph sees.
    pub launches: usize,
    /// The op's scalars.
    pub scalars: BenchScalars,
    /// Seed of the generated inputs.
    pub seed: u64,
    /// Bytes of the copy timed for the copy bandwidth; `None`: [`CPU_COPY_BYTES`] on the CPU,
    /// the smaller of [`GPU_COPY_BYTES`] and an eighth of device memory on GPUs.
    pub copy_bytes: Option<usize>,
}

impl BenchOptions {
    /// The auto-selected kernel, [`DEFAULT_WARMUP`] and [`DEFAULT_ITERS`] runs, default
    /// scalars and the suite's default seed.
    pub fn new(device: DeviceId, problem: Problem) -> Self {
        BenchOptions {
            device,
            problem,
            kernels: KernelChoice::Auto,
            warmup: DEFAULT_WARMUP,
            iters: DEFAULT_ITERS,
            launches: 1,
            scalars: BenchScalars::default(),
            seed: crate::runner::DEFAULT_SEED,
            copy_bytes: None,
        }
    }
}

/// Why a benchmark could not be run.
#[derive(Debug)]
#[non_exhaustive]
pub enum BenchError {
    /// The device is absent, or no kernel (or not the named one) can be selected; the error
    /// carries the selection report.
    Select(SelectError),
    /// The scalars do not fit the op.
    Scalars(String),
    /// The options are not usable (no timed run).
    Options(String),
    /// The run would exceed a bound (more runs than [`MAX_RUNS`], sizes that overflow or
    /// exceed the device's or the host's memory); found before anything is allocated.
    Refused(Refused),
    /// `--all` found no kernel that can run the problem: each one with its reasons.
    NoneRunnable {
        /// The op.
        op: OpKind,
        /// The device.
        device: DeviceId,
        /// Every kernel registered for the device's kind, with its reasons.
        skipped: Vec<Skipped>,
    },
    /// Setting the run up failed on the device (stream, allocation, upload, copy bandwidth).
    Device {
        /// What was being done.
        what: String,
        /// The device's error.
        source: Error,
    },
    /// A kernel's launch (or the timing around it) failed.
    Launch {
        /// The kernel.
        kernel: &'static str,
        /// The error.
        source: Error,
    },
    /// A kernel panicked.
    Panicked {
        /// The kernel.
        kernel: &'static str,
        /// The panic's message.
        message: String,
    },
    /// The harness could not build the inputs or arguments (a bug in kernelyard-suite).
    Harness(String),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Select(e) => write!(f, "{e}"),
            BenchError::Scalars(e) => write!(f, "bad scalars: {e}"),
            BenchError::Options(e) => write!(f, "bad options: {e}"),
            BenchError::Refused(e) => write!(f, "refused: {e}"),
            BenchError::NoneRunnable {
                op,
                device,
                skipped,
            } => {
                write!(
                    f,
                    "no kernel registered for {op} can run this problem on {device}:"
                )?;
                for s in skipped {
                    write!(f, "\n  {}: {}", s.kernel, s.reasons.join("; "))?;
                }
                Ok(())
            }
            BenchError::Device { what, source } => write!(f, "{what}: {source}"),
            BenchError::Launch { kernel, source } => {
                write!(f, "kernel `{kernel}` failed: {source}")
            }
            BenchError::Panicked { kernel, message } => {
                write!(f, "kernel `{kernel}` panicked: {message}")
            }
            BenchError::Harness(e) => write!(f, "harness bug: {e}"),
        }
    }
}

impl std::error::Error for BenchError {}

impl From<Refused> for BenchError {
    fn from(e: Refused) -> Self {
        BenchError::Refused(e)
    }
}

impl From<SelectError> for BenchError {
    fn from(e: SelectError) -> Self {
        BenchError::Select(e)
    }
}

/// The reasons a selection gave for rejecting `kernel`, or the error's text.
fn reasons(err: &SelectError, kernel: &str) -> Vec<String> {
    let report = match err {
        SelectError::KernelRejected { report, .. } | SelectError::AllRejected { report } => report,
        other => return vec![other.to_string()],
    };
    report
        .candidates
        .iter()
        .find(|c| c.kernel == kernel)
        .and_then(|c| match &c.verdict {
            Verdict::Rejected { reasons } => Some(reasons.iter().map(|r| r.to_string()).collect()),
            _ => None,
        })
        .unwrap_or_else(|| vec![err.to_string()])
}

/// The kernels to time under `choice`, with their policies: `Err` for each that selection
/// rejects (with its reasons), an error for an unknown name or device.
fn selections(
    rt: &Runtime,
    device: DeviceId,
    problem: &Problem,
    choice: &KernelChoice,
) -> Result<Vec<Result<Policy, Skipped>>, BenchError> {
    Ok(match choice {
        KernelChoice::Auto => {
            rt.select(device, problem, &Policy::auto())?;
            vec![Ok(Policy::auto())]
        }
        KernelChoice::Named(name) => {
            let policy = Policy::kernel(name.as_str());
            rt.select(device, problem, &policy)?;
            vec![Ok(policy)]
        }
        KernelChoice::All => {
            let candidates = rt.registry().candidates(device.kind, problem.op());
            if candidates.is_empty() {
                // The selector's error names where the op's kernels are.
                rt.select(device, problem, &Policy::auto())?;
            }
            candidates
                .iter()
                .flat_map(|&k| {
                    std::iter::once(k.meta().name).chain(
                        k.meta()
                            .tactics
                            .iter()
                            .map(move |t| tactic_label(k.meta().name, Some(*t))),
                    )
                })
                .map(|name| {
                    let policy = Policy::kernel(name);
                    match rt.select(device, problem, &policy) {
                        Ok(_) => Ok(policy),
                        Err(e) => Err(Skipped {
                            kernel: name,
                            reasons: reasons(&e, name),
                        }),
                    }
                })
                .collect()
        }
    })
}

/// The bytes of the copy timed for the copy bandwidth.
fn copy_bytes(rt: &Runtime, opts: &BenchOptions) -> Result<usize, BenchError> {
    if let Some(b) = opts.copy_bytes {
        return Ok(b.max(1));
    }
    if opts.device.kind == DeviceKind::Cpu {
        return Ok(CPU_COPY_BYTES);
    }
    let memory = rt.capabilities(opts.device)?.memory_bytes;
    let eighth = usize::try_from(memory / 8).unwrap_or(usize::MAX);
    Ok(if eighth == 0 {
        GPU_COPY_BYTES
    } else {
        GPU_COPY_BYTES.min(eighth)
    })
}

/// Benchmarks `opts.problem` on `opts.device`. `progress` is told what is happening (the long
/// steps: generating inputs, uploading, measuring the copy bandwidth, timing each kernel, and
/// each kernel skipped).
///
/// Selection and the bounds ([`MAX_RUNS`], the memory the run needs: [`Refused`]) are checked
/// before any input is generated or any memory allocated, so an unknown or rejected kernel, or
/// a problem too large for the device or the host, fails at once.
pub fn bench(
    rt: &Runtime,
    opts: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchReport, BenchError> {
    let device = opts.device;
    let caps = rt.capabilities(device)?;
    let device_name = caps.name.clone();
    let memory = usize::try_from(caps.memory_bytes).unwrap_or(usize::MAX);
    let op = opts.problem.op();
    let scalars = opts
        .scalars
        .resolve(&opts.problem)
        .map_err(BenchError::Scalars)?;
    if opts.iters == 0 {
        return Err(BenchError::Options("`iters` must be at least 1".into()));
    }
    if opts.launches == 0 || opts.launches > MAX_LAUNCHES {
        return Err(BenchError::Options(format!(
            "`launches` must be 1 to {MAX_LAUNCHES}, not {}",
            opts.launches
        )));
    }
    check_runs(opts.warmup, opts.iters)?;
    let chosen = selections(rt, device, &opts.problem, &opts.kernels)?;
    let mut skipped: Vec<Skipped> = Vec::new();
    let mut policies: Vec<Policy> = Vec::new();
    for c in chosen {
        match c {
            Ok(p) => policies.push(p),
            Err(s) => skipped.push(s),
        }
    }
    if policies.is_empty() {
        return Err(BenchError::NoneRunnable {
            op,
            device,
            skipped,
        });
    }

    // What the run needs, from the shapes alone, before anything is generated or allocated.
    let drv = driver(op).map_err(BenchError::Harness)?;
    let footprint = Footprint::of(drv, &opts.problem).map_err(|e| match e {
        Ok(refused) => BenchError::Refused(refused),
        Err(bug) => BenchError::Harness(bug),
    })?;
    let available = host_available();
    footprint.check(device, caps.memory_bytes, available)?;
    // On the CPU the sets are host memory: size the rotation by what is available too.
    let memory = match (device.kind, available) {
        (DeviceKind::Cpu, Some(a)) if memory > 0 => {
            memory.min(usize::try_from(a).unwrap_or(usize::MAX))
        }
        _ => memory,
    };

    let copy_bytes = copy_bytes(rt, opts)?;
    progress(&format!(
        "measuring the copy bandwidth of {device}: {} copied {COPY_RUNS} times",
        human_bytes(copy_bytes)
    ));
    let copy_bytes_per_s = rt
        .copy_bandwidth(device, copy_bytes, COPY_RUNS)
        .map_err(|source| BenchError::Device {
            what: format!("measuring the copy bandwidth of {device}"),
            source,
        })?;
    progress(&format!(
        "copy bandwidth: {:.3} TB/s (read + write)",
        copy_bytes_per_s / 1e12
    ));

    // Inputs: generated once on the host, converted once to their dtypes.
    let started = Instant::now();
    progress(&format!(
        "generating the inputs of {op} {:?} {} on the host",
        opts.problem.shape(),
        opts.problem.dtype()
    ));
    let host =
        HostSet::generate(drv, &opts.problem, scalars, opts.seed).map_err(BenchError::Harness)?;
    let set_bytes = host.bytes;
    progress(&format!(
        "generated {} of inputs and outputs in {:.1} s",
        human_bytes(set_bytes),
        started.elapsed().as_secs_f64()
    ));
    let wanted = host.sets_wanted(memory);
    progress(&format!(
        "uploading {wanted} input set(s) of {} ({} in all) to {device}",
        human_bytes(set_bytes),
        human_bytes(wanted.saturating_mul(set_bytes))
    ));
    let mut sets = Vec::with_capacity(wanted);
    for index in 0..wanted {
        sets.push(host.upload(rt, device, index)?);
    }
    let inst = &host.inst;

    let n_sets = sets.len();
    let mut args: Vec<Args<'_>> = Vec::with_capacity(n_sets);
    for set in &mut sets {
        args.push(
            drv.args(inst, &set.ins, &mut set.outs)
                .map_err(BenchError::Harness)?,
        );
    }
    let (problem, _) = args[0]
        .validate()
        .map_err(|e| BenchError::Harness(format!("the arguments do not validate: {e}")))?;
    if !same_but_align(&problem, &opts.problem) {
        return Err(BenchError::Harness(format!(
            "the arguments describe {problem}, the bench {}",
            opts.problem
        )));
    }

    let stream = rt
        .create_stream(device)
        .map_err(|source| BenchError::Device {
            what: format!("creating a stream on {device}"),
            source,
        })?;
    let mut rows = Vec::new();
    for policy in &policies {
        // Selected again for the problem as launched (its alignment is the buffers').
        let plan = match rt.select(device, &problem, policy) {
            Ok(plan) => plan,
            Err(e) => match (&opts.kernels, rejected_kernel(&e)) {
                // `--all` skips a kernel that the buffers' alignment rules out.
                (KernelChoice::All, Some(name)) => {
                    skipped.push(Skipped {
                        kernel: name,
                        reasons: reasons(&e, name),
                    });
                    continue;
                }
                _ => return Err(e.into()),
            },
        };
        let kernel = plan.label();
        progress(&format!(
            "timing {kernel}: {} warm-up runs, then {} timed runs{} over {} set(s)",
            opts.warmup,
            opts.iters,
            if opts.launches > 1 {
                format!(" of {} back-to-back launches", opts.launches)
            } else {
                String::new()
            },
            n_sets
        ));
        let times = match catch_unwind(AssertUnwindSafe(|| {
            time_kernel(rt, &plan, &stream, &mut args, opts)
        })) {
            Ok(Ok(t)) => t,
            Ok(Err(source)) => return Err(BenchError::Launch { kernel, source }),
            Err(panic) => {
                return Err(BenchError::Panicked {
                    kernel,
                    message: panic_text(panic.as_ref()),
                })
            }
        };
        let row = BenchRow {
            op,
            shape: problem.shape(),
            dtype: problem.dtype(),
            kernel,
            ms: times[times.len() / 2],
            min_ms: times[0],
            max_ms: times[times.len() - 1],
            iters: opts.iters,
            launches: opts.launches,
            warmup: opts.warmup,
            sets: n_sets,
            work: problem.work(),
        };
        progress(&format!(
            "{kernel}: {:.4} ms median ({:.4} to {:.4})",
            row.ms, row.min_ms, row.max_ms
        ));
        rows.push(row);
    }
    for s in &skipped {
        progress(&format!("skipped {}: {}", s.kernel, s.reasons.join("; ")));
    }
    if rows.is_empty() {
        return Err(BenchError::NoneRunnable {
            op,
            device,
            skipped,
        });
    }
    Ok(BenchReport {
        device,
        device_name,
        problem,
        copy_bytes_per_s,
        copy_bytes,
        set_bytes,
        rows,
        skipped,
    })
}

/// The kernel a `KernelRejected` error names.
fn rejected_kernel(e: &SelectError) -> Option<&'static str> {
    match e {
        SelectError::KernelRejected { name, .. } => Some(name),
        _ => None,
    }
}

/// Warm-up, then each timed run on its own (`opts.launches` back-to-back launches, the time
/// divided by their number), every launch on the next of the sets; the times sorted.
fn time_kernel(
    rt: &Runtime,
    plan: &Plan,
    stream: &kernelyard::Stream,
    args: &mut [Args<'_>],
    opts: &BenchOptions,
) -> Result<Vec<f64>, Error> {
    let k = args.len();
    for i in 0..opts.warmup {
        plan.launch(stream, &mut args[i % k])?;
    }
    rt.synchronize(stream)?;
    let mut next = opts.warmup;
    let n = opts.launches; // 1 ..= MAX_LAUNCHES: `bench` checked it
    let mut times = Vec::with_capacity(opts.iters);
    for _ in 0..opts.iters {
        let ms = rt.time(stream, &mut || {
            for _ in 0..n {
                plan.launch(stream, &mut args[next % k])?;
                next += 1;
            }
            Ok(())
        })?;
        times.push(ms / n as f64);
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard::ops::Listed;
    use kernelyard::{DType, Params};

    fn runtime() -> Runtime {
        kernelyard_reference::link();
        Runtime::builder().pins("").build().unwrap()
    }

    fn problem(op: OpKind, params: &str, dtype: DType) -> Problem {
        Problem::from_params(op, &Params::parse(op, params).unwrap(), dtype).unwrap()
    }

    fn opts(op: OpKind, params: &str, dtype: DType) -> BenchOptions {
        let mut o = BenchOptions::new(DeviceId::CPU, problem(op, params, dtype));
        o.warmup = 1;
        o.iters = 3;
        o.copy_bytes = Some(1 << 20);
        o
    }

    #[test]
    fn benches_every_op_on_the_reference() {
        let rt = runtime();
        let cases = [
            (OpKind::Gemm, "m=8,n=16,k=8"),
            (OpKind::Gemm, "m=8,n=16,k=8,accumulate=1"),
            (OpKind::RmsNorm, "rows=4,hidden=64"),
            (OpKind::Softmax, "rows=4,cols=33"),
            (OpKind::LogSoftmax, "rows=4,cols=64"),
            (OpKind::TokenLogprobs, "tokens=4,vocab=100"),
            (OpKind::Rope, "tokens=4,heads=2,head_dim=16"),
            (OpKind::Rope, "tokens=4,heads=2,head_dim=16,in_place=1"),
            (
                OpKind::Attention,
                "batch=1,seq_q=8,heads_q=2,heads_kv=1,head_dim=16,causal=1",
            ),
            (
                OpKind::SelectiveStateUpdate,
                "batch=2,heads=2,head_dim=4,state_dim=8",
            ),
            (OpKind::SiluMul, "rows=4,d=33"),
            (OpKind::SiluMul, "rows=4,d=64,split=1"),
            (OpKind::ScaledGemm, "m=4,n=16,k=32"),
            (OpKind::ScaledGemm, "m=3,n=130,k=200,scale_a=block,bias=1"),
        ];
        for op in OpKind::ALL {
            assert!(cases.iter().any(|(o, _)| *o == op), "{op} is not benched");
        }
        for (op, params) in cases {
            // scaled_gemm's primary dtype is A's FP8 type.
            let dtype = if op == OpKind::ScaledGemm {
                DType::F8E4M3
            } else {
                DType::BF16
            };
            let o = opts(op, params, dtype);
            let mut lines = Vec::new();
            let report = bench(&rt, &o, &mut |l| lines.push(l.to_string()))
                .unwrap_or_else(|e| panic!("{op} {params}: {e}"));
            assert_eq!(report.rows.len(), 1, "{op}");
            let row = &report.rows[0];
            assert_eq!(row.kernel, format!("reference.{op}"));
            assert!(row.min_ms <= row.ms && row.ms <= row.max_ms, "{row:?}");
            assert_eq!(row.sets, MAX_SETS, "tiny sets are rotated {MAX_SETS} deep");
            assert!(lines.iter().any(|l| l.starts_with("timing reference.")));
            let json: Vec<serde_json::Value> = report
                .json_lines()
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(json.len(), 2);
            assert_eq!(json[0]["peer"], PEER);
            assert!(json[0]["copy_tbps"].as_f64().unwrap() > 0.0);
            assert_eq!(json[1]["impl"], row.kernel);
            assert_eq!(json[1]["dtype"], dtype.name());
            let memory_bound = matches!(row.work, Work::Bytes(_));
            assert_eq!(json[1].get("tbps").is_some(), memory_bound);
            assert_eq!(json[1].get("copy_fraction").is_some(), memory_bound);
            assert_eq!(json[1].get("tflops").is_some(), !memory_bound);
            assert!(report.to_string().contains(row.kernel));
        }
    }

    #[test]
    fn kernel_choices() {
        let rt = runtime();
        let mut o = opts(OpKind::Softmax, "rows=2,cols=8", DType::F32);
        o.kernels = KernelChoice::All;
        let report = bench(&rt, &o, &mut |_| {}).unwrap();
        // The reference kernel in its default configuration and its tactic.
        let timed: Vec<&str> = report.rows.iter().map(|r| r.kernel).collect();
        assert_eq!(timed, ["reference.softmax", "reference.softmax@serial"]);
        assert!(report.skipped.is_empty());
        o.kernels = KernelChoice::Named("reference.softmax@serial".into());
        assert_eq!(
            bench(&rt, &o, &mut |_| {}).unwrap().rows[0].kernel,
            "reference.softmax@serial"
        );
        o.kernels = KernelChoice::Named("reference.softmax".into());
        assert_eq!(
            bench(&rt, &o, &mut |_| {}).unwrap().rows[0].kernel,
            "reference.softmax"
        );
        o.kernels = KernelChoice::Named("nope.softmax".into());
        let err = bench(&rt, &o, &mut |_| {}).unwrap_err();
        assert!(
            matches!(err, BenchError::Select(SelectError::UnknownKernel { .. })),
            "{err}"
        );
        o.iters = 0;
        let err = bench(&rt, &o, &mut |_| {}).unwrap_err();
        assert!(matches!(err, BenchError::Options(_)), "{err}");
        o.iters = 3;
        o.kernels = KernelChoice::Named("reference.gemm".into());
        let err = bench(&rt, &o, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("not `softmax`"), "{err}");
    }

    #[test]
    fn sets_are_rotated_at_least_two_deep_where_memory_allows() {
        use super::inputs::sets_for;
        // 300 MiB a set: one would exceed the rotation, but a run may touch less than that.
        assert_eq!(sets_for(300 << 20, 0), MIN_SETS);
        assert_eq!(sets_for(300 << 20, 80 << 30), MIN_SETS);
        // Half the memory holds one set only: one.
        assert_eq!(sets_for(300 << 20, 1 << 30), 1);
        assert_eq!(sets_for(64 << 20, 0), 4);
        assert_eq!(sets_for(1, 0), MAX_SETS);
    }

    #[test]
    fn large_sets_are_rotated_less() {
        let rt = runtime();
        // 2 * 1024 * 8192 * 4 B = 64 MiB a set: 4 sets exceed 200 MiB.
        let mut o = opts(OpKind::Softmax, "rows=1024,cols=8192", DType::F32);
        (o.warmup, o.iters) = (0, 1);
        let report = bench(&rt, &o, &mut |_| {}).unwrap();
        assert_eq!(report.set_bytes, 64 << 20);
        assert_eq!(report.rows[0].sets, 4);
    }

    /// Issue 13: counts and sizes beyond the bounds are refused before anything is measured,
    /// generated or allocated (they used to panic, abort or hang).
    #[test]
    fn runs_and_sizes_beyond_the_bounds_are_refused_before_any_work() {
        let rt = runtime();
        let mut lines = Vec::new();
        let mut o = opts(OpKind::Softmax, "rows=2,cols=8", DType::F32);
        o.warmup = usize::MAX;
        let err = bench(&rt, &o, &mut |l| lines.push(l.to_string())).unwrap_err();
        assert!(
            matches!(
                err,
                BenchError::Refused(Refused::TooManyRuns { what: "warmup", .. })
            ),
            "{err}"
        );
        (o.warmup, o.iters) = (1, MAX_RUNS + 1);
        let err = bench(&rt, &o, &mut |l| lines.push(l.to_string())).unwrap_err();
        assert!(
            matches!(
                err,
                BenchError::Refused(Refused::TooManyRuns { what: "iters", .. })
            ),
            "{err}"
        );
        // 2^24 x 2^24 f32: 64 TiB a tensor.
        let o = opts(OpKind::Softmax, "rows=16777216,cols=16777216", DType::F32);
        let err = bench(&rt, &o, &mut |l| lines.push(l.to_string())).unwrap_err();
        let memory = rt.capabilities(DeviceId::CPU).unwrap().memory_bytes;
        if memory > 0 {
            assert!(
                matches!(err, BenchError::Refused(Refused::DeviceMemory { .. })),
                "{err}"
            );
        } else {
            // No /proc/meminfo: nothing to compare with but the host bound, also unknown.
            assert!(matches!(err, BenchError::Refused(_)), "{err}");
        }
        // A problem built directly whose sizes overflow: selection refuses it as invalid (the
        // bench's own overflow checks, for what validation lets through, are tested in
        // `budget`).
        let huge = kernelyard::ops::softmax::Softmax::wrap(kernelyard::ops::softmax::RowsProblem {
            rows: 1 << 40,
            cols: 1 << 40,
            dtype: DType::F32,
            align: 16,
        });
        let o = BenchOptions {
            warmup: 1,
            iters: 1,
            ..BenchOptions::new(DeviceId::CPU, huge)
        };
        let err = bench(&rt, &o, &mut |l| lines.push(l.to_string())).unwrap_err();
        assert!(
            matches!(err, BenchError::Select(SelectError::InvalidProblem { .. })),
            "{err}"
        );
        assert_eq!(lines, Vec::<String>::new(), "work was done before refusing");
    }

    #[test]
    fn launches_per_run_are_bounded_and_reported() {
        let rt = runtime();
        let mut o = opts(OpKind::RmsNorm, "rows=4,hidden=64", DType::F32);
        (o.warmup, o.iters, o.launches) = (1, 3, 4);
        let report = bench(&rt, &o, &mut |_| {}).unwrap();
        let row = &report.rows[0];
        assert_eq!((row.iters, row.launches), (3, 4));
        assert!(row.ms > 0.0 && row.min_ms <= row.ms && row.ms <= row.max_ms);
        let json = report.json_lines();
        assert!(json[1].contains("\"launches\":4"), "{}", json[1]);
        assert!(report.to_string().contains("of 4 back-to-back launches"));
        // One launch a run: no `launches` key (torch's rows have none).
        o.launches = 1;
        let report = bench(&rt, &o, &mut |_| {}).unwrap();
        assert!(!report.json_lines()[1].contains("launches"));
        for bad in [0, MAX_LAUNCHES + 1] {
            o.launches = bad;
            let err = bench(&rt, &o, &mut |_| {}).unwrap_err();
            assert!(
                matches!(&err, BenchError::Options(m) if m.contains("launches")),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn scalars_are_checked() {
        assert!(BenchScalars::parse("eps=1e-5,temperature=0.5").is_ok());
        assert!(BenchScalars::parse("eps=1,eps=2").is_err());
        assert!(BenchScalars::parse("epsilon=1").is_err());
        let rt = runtime();
        let mut o = opts(OpKind::Softmax, "rows=2,cols=8", DType::F32);
        o.scalars = BenchScalars::parse("eps=1e-5").unwrap();
        let err = bench(&rt, &o, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("not a scalar of softmax"), "{err}");
        let mut o = opts(OpKind::Gemm, "m=2,n=2,k=2", DType::F32);
        o.scalars = BenchScalars::parse("beta=1").unwrap();
        assert!(bench(&rt, &o, &mut |_| {}).is_err());
        let mut o = opts(OpKind::TokenLogprobs, "tokens=2,vocab=8", DType::F32);
        o.scalars = BenchScalars::parse("temperature=0").unwrap();
        assert!(bench(&rt, &o, &mut |_| {}).is_err());
    }
}
