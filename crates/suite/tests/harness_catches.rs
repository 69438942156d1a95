//! The harness catches bugs: deliberately broken CPU kernels, in a registry of their own (so
//! they never reach the global registry other tests use), must fail the check that their bug
//! breaks, and a kernel that rejects every case must show as uncovered.
//!
//! Each broken kernel computes softmax correctly in f64 (via the reference oracle) and then
//! breaks one thing: one output element left unwritten, a result that depends on the batch
//! size, a result that depends on a global launch counter, values off by 1%, a panic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use kernelyard::kernel::{KernelDef, LaunchCtx};
use kernelyard::ops::softmax::{RowsProblem, Softmax, SoftmaxArgs};
use kernelyard::{
    ArchReq, Capabilities, DType, DeviceId, DeviceKind, Error, Kernel, KernelMeta, OpKind, Reason,
    Registry, Runtime,
};
use kernelyard_reference::host::gather;
use kernelyard_reference::ops::softmax::softmax;
use kernelyard_suite::{
    kernels_without_pass, run_suite, CaseResult, Outcome, SuiteOptions, SuiteReport, DEFAULT_SEED,
};

/// A broken softmax's metadata: f32 only, on the CPU, declaring the determinism and batch
/// invariance the test wants checked.
const fn meta(
    name: &'static str,
    deterministic: bool,
    batch_invariant: bool,
    summary: &'static str,
) -> KernelMeta {
    let base = KernelMeta::new::<Softmax>(
        name,
        "broken",
        DeviceKind::Cpu,
        ArchReq::Any,
        module_path!(),
        summary,
    )
    .dtypes(&[DType::F32])
    .priority(0);
    KernelMeta {
        deterministic,
        batch_invariant,
        ..base
    }
}

/// The correct f32 softmax.
fn compute(a: &SoftmaxArgs<'_>, p: &RowsProblem) -> Result<Vec<f32>, Error> {
    let y = softmax(p, &gather("x", &a.x)?);
    Ok(y.into_iter().map(|v| v as f32).collect())
}

/// Writes `values` into the output, skipping the elements `skip` says to.
fn write(
    a: &mut SoftmaxArgs<'_>,
    values: &[f32],
    skip: impl Fn(usize) -> bool,
) -> Result<(), Error> {
    let out = a.out.as_mut_slice::<f32>("out")?;
    for (i, (o, v)) in out.iter_mut().zip(values).enumerate() {
        if !skip(i) {
            *o = *v;
        }
    }
    Ok(())
}

/// Leaves the last output element unwritten.
static UNWRITTEN: KernelDef<Softmax> = KernelDef::<Softmax>::new(
    meta("broken.unwritten", true, true, "skips the last element"),
    unwritten,
);
fn unwritten(_: &LaunchCtx<'_>, a: &mut SoftmaxArgs<'_>, p: &RowsProblem) -> Result<(), Error> {
    let y = compute(a, p)?;
    let last = y.len() - 1;
    write(a, &y, |i| i == last)
}

/// Scales its output by `1 + 2^-20` (within the f32 tolerance) when the row count is odd.
static BATCH_DEPENDENT: KernelDef<Softmax> = KernelDef::<Softmax>::new(
    meta(
        "broken.batch_dependent",
        true,
        true,
        "rounds differently for odd batches",
    ),
    batch_dependent,
);
fn batch_dependent(
    _: &LaunchCtx<'_>,
    a: &mut SoftmaxArgs<'_>,
    p: &RowsProblem,
) -> Result<(), Error> {
    let mut y = compute(a, p)?;
    if p.rows % 2 == 1 {
        y.iter_mut().for_each(|v| *v *= 1.0 + 2f32.powi(-20));
    }
    write(a, &y, |_| false)
}

/// Scales its output by `1 + 2^-20` on every other launch, process-wide.
static NONDETERMINISTIC: KernelDef<Softmax> = KernelDef::<Softmax>::new(
    meta(
        "broken.nondeterministic",
        true,
        false,
        "depends on a global counter",
    ),
    nondeterministic,
);
static LAUNCHES: AtomicU64 = AtomicU64::new(0);
fn nondeterministic(
    _: &LaunchCtx<'_>,
    a: &mut SoftmaxArgs<'_>,
    p: &RowsProblem,
) -> Result<(), Error> {
    let mut y = compute(a, p)?;
    if LAUNCHES.fetch_add(1, Ordering::Relaxed) % 2 == 1 {
        y.iter_mut().for_each(|v| *v *= 1.0 + 2f32.powi(-20));
    }
    write(a, &y, |_| false)
}

/// Off by 1%.
static INACCURATE: KernelDef<Softmax> = KernelDef::<Softmax>::new(
    meta("broken.inaccurate", false, false, "1% too large"),
    inaccurate,
);
fn inaccurate(_: &LaunchCtx<'_>, a: &mut SoftmaxArgs<'_>, p: &RowsProblem) -> Result<(), Error> {
    let mut y = compute(a, p)?;
    y.iter_mut().for_each(|v| *v *= 1.01);
    write(a, &y, |_| false)
}

/// Panics.
static PANICS: KernelDef<Softmax> =
    KernelDef::<Softmax>::new(meta("broken.panics", false, false, "panics"), panics);
fn panics(_: &LaunchCtx<'_>, _: &mut SoftmaxArgs<'_>, _: &RowsProblem) -> Result<(), Error> {
    panic!("deliberately broken")
}

/// Rejects every problem.
static REJECTS_ALL: KernelDef<Softmax> = KernelDef::<Softmax>::new(
    meta("broken.rejects_all", false, false, "runs nothing"),
    runs_nothing,
)
.with_check(rejects_all);
fn rejects_all(_: &Capabilities, _: &RowsProblem, reasons: &mut Vec<Reason>) {
    reasons.push(Reason::ShapeUnsupported {
        what: "this kernel runs nothing".into(),
    });
}
fn runs_nothing(_: &LaunchCtx<'_>, _: &mut SoftmaxArgs<'_>, _: &RowsProblem) -> Result<(), Error> {
    Ok(())
}

/// Correct by default; its tactic `short` is one the device "does not offer" for any problem
/// (as cuBLASLt's heuristic list can be shorter than a tactic's index).
static TACTIC_UNAVAILABLE: KernelDef<Softmax> = KernelDef::<Softmax>::new(
    meta(
        "broken.tactic_unavailable",
        true,
        true,
        "a tactic it cannot run",
    )
    .tactics(&["short"]),
    tactic_unavailable,
);
fn tactic_unavailable(
    ctx: &LaunchCtx<'_>,
    a: &mut SoftmaxArgs<'_>,
    p: &RowsProblem,
) -> Result<(), Error> {
    if let Some(tactic) = ctx.tactic {
        return Err(Error::TacticUnavailable {
            kernel: "broken.tactic_unavailable",
            tactic,
            source: "the device offers none of it here".into(),
        });
    }
    let y = compute(a, p)?;
    write(a, &y, |_| false)
}

/// A runtime whose registry holds only the broken kernels (the reference backend still
/// provides the CPU device and its memory).
fn runtime() -> Runtime {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    kernelyard_reference::link();
    let registry = REGISTRY.get_or_init(|| {
        let kernels: [&'static dyn Kernel; 7] = [
            &TACTIC_UNAVAILABLE,
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
    // The problem-specific reason is reported at every dtype, next to the dtype's own (core
    // asks a kernel's check for every reason, not only the first failing requirement).
    assert!(
        rejects.iter().all(|r| matches!(
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

#[test]
fn a_tactic_the_device_does_not_offer_is_a_skip_with_its_reason() {
    let rt = runtime();
    let report = suite(&rt);
    let text = report.to_string();
    let default = of(&report, "broken.tactic_unavailable");
    assert!(
        default
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Pass { .. })),
        "{text}"
    );
    let short = of(&report, "broken.tactic_unavailable@short");
    let f32_runs: Vec<_> = short.iter().filter(|r| r.dtype == DType::F32).collect();
    assert!(!f32_runs.is_empty(), "{text}");
    for r in f32_runs {
        let Outcome::Skip { reasons } = &r.outcome else {
            panic!("{r} should be a skip, not a failure");
        };
        assert!(
            reasons
                .iter()
                .any(|s| s.contains("cannot run tactic `short`") && s.contains("offers none")),
            "{r}"
        );
    }
}
