//! The harness catches bugs: deliberately broken CPU kernels, in a registry of their own (so
//! they never reach the global registry other tests use), must fail the check that their bug
//! breaks, and a kernel that rejects every case must show as uncovered.
//!
//! Each broken kernel computes softmax correctly in f64 (via the reference oracle) and then
//! breaks one thing: one output element left unwritten, a result that depends on the batch
//! size, a result that depends on a global launch counter, values off by 1%, a panic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use kernelyard::ops::softmax::RowsProblem;
use kernelyard::{
    ArchReq, Args, Capabilities, DType, DeviceId, DeviceKind, Error, Kernel, KernelMeta, OpKind,
    Problem, Reason, Registry, Runtime, Stream,
};
use kernelyard_reference::host::gather;
use kernelyard_reference::ops::softmax::softmax;
use kernelyard_tests::{
    kernels_without_pass, run_suite, CaseResult, Outcome, SuiteOptions, SuiteReport, DEFAULT_SEED,
};

const fn meta(
    name: &'static str,
    deterministic: bool,
    batch_invariant: bool,
    summary: &'static str,
) -> KernelMeta {
    KernelMeta {
        name,
        op: OpKind::Softmax,
        backend: "broken",
        device: DeviceKind::Cpu,
        version: 1,
        deterministic,
        batch_invariant,
        dtypes: &[DType::F32],
        arch: ArchReq::Any,
        features: &[],
        align: 1,
        priority: 0,
        source: module_path!(),
        summary,
    }
}

/// The correct f32 softmax and the problem, or the error a kernel returns for other args.
fn compute(
    name: &'static str,
    args: &mut Args<'_>,
    problem: &Problem,
) -> Result<(Vec<f32>, RowsProblem), Error> {
    let (Args::Softmax(a), Problem::Softmax(p)) = (args, problem) else {
        return Err(Error::WrongOp {
            kernel: name,
            op: OpKind::Softmax,
            got: problem.op(),
        });
    };
    let y = softmax(p, &gather("x", &a.x)?);
    Ok((y.into_iter().map(|v| v as f32).collect(), p.clone()))
}

/// Writes `values` into the output, skipping the elements `skip` says to.
fn write(args: &mut Args<'_>, values: &[f32], skip: impl Fn(usize) -> bool) -> Result<(), Error> {
    let Args::Softmax(a) = args else {
        return Ok(());
    };
    let out = a.out.as_mut_slice::<f32>("out")?;
    for (i, (o, v)) in out.iter_mut().zip(values).enumerate() {
        if !skip(i) {
            *o = *v;
        }
    }
    Ok(())
}

/// Leaves the last output element unwritten.
struct Unwritten;
static UNWRITTEN: Unwritten = Unwritten;
const UNWRITTEN_META: KernelMeta = meta("broken.unwritten", true, true, "skips the last element");
impl Kernel for Unwritten {
    fn meta(&self) -> &KernelMeta {
        &UNWRITTEN_META
    }
    fn launch(&self, _: &Stream, args: &mut Args<'_>, problem: &Problem) -> Result<(), Error> {
        let (y, _) = compute(UNWRITTEN_META.name, args, problem)?;
        let last = y.len() - 1;
        write(args, &y, |i| i == last)
    }
}

/// Scales its output by `1 + 2^-20` (within the f32 tolerance) when the row count is odd.
struct BatchDependent;
static BATCH_DEPENDENT: BatchDependent = BatchDependent;
const BATCH_DEPENDENT_META: KernelMeta = meta(
    "broken.batch_dependent",
    true,
    true,
    "rounds differently for odd batches",
);
impl Kernel for BatchDependent {
    fn meta(&self) -> &KernelMeta {
        &BATCH_DEPENDENT_META
    }
    fn launch(&self, _: &Stream, args: &mut Args<'_>, problem: &Problem) -> Result<(), Error> {
        let (mut y, p) = compute(BATCH_DEPENDENT_META.name, args, problem)?;
        if p.rows % 2 == 1 {
            y.iter_mut().for_each(|v| *v *= 1.0 + 2f32.powi(-20));
        }
        write(args, &y, |_| false)
    }
}

/// Scales its output by `1 + 2^-20` on every other launch, process-wide.
struct Nondeterministic;
static NONDETERMINISTIC: Nondeterministic = Nondeterministic;
static LAUNCHES: AtomicU64 = AtomicU64::new(0);
const NONDETERMINISTIC_META: KernelMeta = meta(
    "broken.nondeterministic",
    true,
    false,
    "depends on a global counter",
);
impl Kernel for Nondeterministic {
    fn meta(&self) -> &KernelMeta {
        &NONDETERMINISTIC_META
    }
    fn launch(&self, _: &Stream, args: &mut Args<'_>, problem: &Problem) -> Result<(), Error> {
        let (mut y, _) = compute(NONDETERMINISTIC_META.name, args, problem)?;
        if LAUNCHES.fetch_add(1, Ordering::Relaxed) % 2 == 1 {
            y.iter_mut().for_each(|v| *v *= 1.0 + 2f32.powi(-20));
        }
        write(args, &y, |_| false)
    }
}

/// Off by 1%.
struct Inaccurate;
static INACCURATE: Inaccurate = Inaccurate;
const INACCURATE_META: KernelMeta = meta("broken.inaccurate", false, false, "1% too large");
impl Kernel for Inaccurate {
    fn meta(&self) -> &KernelMeta {
        &INACCURATE_META
    }
    fn launch(&self, _: &Stream, args: &mut Args<'_>, problem: &Problem) -> Result<(), Error> {
        let (mut y, _) = compute(INACCURATE_META.name, args, problem)?;
        y.iter_mut().for_each(|v| *v *= 1.01);
        write(args, &y, |_| false)
    }
}

/// Panics.
struct Panics;
static PANICS: Panics = Panics;
const PANICS_META: KernelMeta = meta("broken.panics", false, false, "panics");
impl Kernel for Panics {
    fn meta(&self) -> &KernelMeta {
        &PANICS_META
    }
    fn launch(&self, _: &Stream, _: &mut Args<'_>, _: &Problem) -> Result<(), Error> {
        panic!("deliberately broken")
    }
}

/// Rejects every problem.
struct RejectsAll;
static REJECTS_ALL: RejectsAll = RejectsAll;
const REJECTS_ALL_META: KernelMeta = meta("broken.rejects_all", false, false, "runs nothing");
impl Kernel for RejectsAll {
    fn meta(&self) -> &KernelMeta {
        &REJECTS_ALL_META
    }
    fn check_problem(&self, _: &Capabilities, _: &Problem, reasons: &mut Vec<Reason>) {
        reasons.push(Reason::ShapeUnsupported {
            what: "this kernel runs nothing".into(),
        });
    }
    fn launch(&self, _: &Stream, _: &mut Args<'_>, _: &Problem) -> Result<(), Error> {
        Ok(())
    }
}

/// A runtime whose registry holds only the broken kernels (the reference backend still
/// provides the CPU device and its memory).
fn runtime() -> Runtime {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    kernelyard_reference::link();
    let registry = REGISTRY.get_or_init(|| {
        let kernels: [&'static dyn Kernel; 6] = [
            &UNWRITTEN,
            &BATCH_DEPENDENT,
            &NONDETERMINISTIC,
            &INACCURATE,
            &PANICS,
            &REJECTS_ALL,
        ];
        Registry::from_kernels(kernels).expect("the broken kernels register")
    });
    Runtime::builder()
        .registry(registry)
        .pins("")
        .build()
        .expect("the runtime starts")
}

fn suite(rt: &Runtime) -> SuiteReport {
    let opts = SuiteOptions {
        op: Some(OpKind::Softmax),
        device: Some(DeviceId::CPU),
        seed: DEFAULT_SEED,
    };
    run_suite(rt, &opts, &mut |_| {})
}

fn of<'r>(report: &'r SuiteReport, kernel: &str) -> Vec<&'r CaseResult> {
    report
        .results
        .iter()
        .filter(|r| r.kernel == kernel)
        .collect()
}

fn failures_starting_with(results: &[&CaseResult], check: &str) -> usize {
    results
        .iter()
        .filter(|r| matches!(&r.outcome, Outcome::Fail { why } if why.starts_with(check)))
        .count()
}

#[test]
fn every_broken_kernel_fails_the_check_its_bug_breaks() {
    let rt = runtime();
    let report = suite(&rt);
    let text = report.to_string();
    println!("{text}");

    let unwritten = of(&report, "broken.unwritten");
    assert!(
        unwritten.iter().all(|r| !r.outcome.is_pass()),
        "an unwritten element passed:\n{text}"
    );
    assert!(failures_starting_with(&unwritten, "oracle:") > 0, "{text}");
    assert!(text.contains("unwritten"), "{text}");

    let inaccurate = of(&report, "broken.inaccurate");
    assert!(failures_starting_with(&inaccurate, "oracle:") > 0, "{text}");
    assert!(inaccurate.iter().all(|r| !r.outcome.is_pass()), "{text}");

    let batch = of(&report, "broken.batch_dependent");
    assert!(
        failures_starting_with(&batch, "batch_invariant:") > 0,
        "{text}"
    );
    assert_eq!(failures_starting_with(&batch, "oracle:"), 0, "{text}");

    let nondet = of(&report, "broken.nondeterministic");
    assert!(
        failures_starting_with(&nondet, "deterministic:") > 0,
        "{text}"
    );
    assert_eq!(failures_starting_with(&nondet, "oracle:"), 0, "{text}");

    let panics = of(&report, "broken.panics");
    assert!(
        panics
            .iter()
            .all(|r| r.outcome.is_fail() || r.outcome.is_skip()),
        "{text}"
    );
    assert!(
        failures_starting_with(&panics, "run: the kernel panicked: deliberately broken") > 0,
        "{text}"
    );
}

#[test]
fn rejections_are_skips_with_reasons_and_never_coverage() {
    let rt = runtime();
    let report = suite(&rt);
    let text = report.to_string();

    // Every dtype but f32 is rejected for every broken kernel, with the reason's text.
    let half_skips: Vec<&CaseResult> = report
        .results
        .iter()
        .filter(|r| r.dtype != DType::F32)
        .collect();
    assert!(!half_skips.is_empty());
    for r in &half_skips {
        let Outcome::Skip { reasons } = &r.outcome else {
            panic!("{r} should be a skip");
        };
        assert!(reasons.iter().any(|s| s.contains("unsupported")), "{r}");
    }

    let rejects = of(&report, "broken.rejects_all");
    assert!(!rejects.is_empty());
    assert!(rejects.iter().all(|r| r.outcome.is_skip()), "{text}");
    // Problem-specific reasons are asked only of dtypes the kernel declares.
    assert!(
        rejects
            .iter()
            .filter(|r| r.dtype == DType::F32)
            .all(|r| matches!(
                &r.outcome,
                Outcome::Skip { reasons } if reasons.iter().any(|s| s.contains("runs nothing"))
            )),
        "{text}"
    );
    assert!(text.contains("SKIP cpu broken.rejects_all"), "{text}");

    // A kernel that passed nothing is reported as uncovered; so is every other broken one
    // except those whose bug some cases do not trigger.
    let opts = SuiteOptions {
        op: Some(OpKind::Softmax),
        device: Some(DeviceId::CPU),
        seed: DEFAULT_SEED,
    };
    let uncovered = kernels_without_pass(&rt, &opts, &report);
    for name in [
        "broken.rejects_all",
        "broken.unwritten",
        "broken.inaccurate",
        "broken.panics",
    ] {
        assert!(
            uncovered.contains(&(DeviceId::CPU, name)),
            "{name} is not reported as uncovered: {uncovered:?}"
        );
    }
}
