//! The operator catalog (`OpKind`, `Problem`, `Args` and `Listed`, generated from each op's
//! descriptor) and `KernelDef<O>`'s dispatch from them to `O`'s own types.
//!
//! Arguments are built from the valid baselines of `bad_input/specs.rs` (views over fake
//! addresses on `cuda:0`), so no device is needed.

#[path = "bad_input/specs.rs"]
#[allow(dead_code)] // the catalog tests use the baselines only
mod specs;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use kernelyard_core::ops::attention::Attention;
use kernelyard_core::ops::gemm::Gemm;
use kernelyard_core::ops::log_softmax::LogSoftmax;
use kernelyard_core::ops::rms_norm::RmsNorm;
use kernelyard_core::ops::rope::Rope;
use kernelyard_core::ops::scaled_gemm::ScaledGemm;
use kernelyard_core::ops::selective_state_update::SelectiveStateUpdate;
use kernelyard_core::ops::silu_mul::SiluMul;
use kernelyard_core::ops::softmax::{RowsProblem, Softmax, SoftmaxArgs};
use kernelyard_core::ops::token_logprobs::TokenLogprobs;
use kernelyard_core::{
    Arch, ArchReq, Args, Capabilities, DeviceKind, Error, Kernel, KernelDef, KernelMeta, LaunchCtx,
    Listed, OpKind, Params, Problem, Reason, Sm, Stream,
};

use specs::{
    attention, gemm, rms_norm, rope, scaled_gemm, silu_mul, softmax, ssu, token_logprobs, Rows,
    Spec, GPU,
};

/// Every operator's example problem, in catalog order.
fn examples() -> Vec<Problem> {
    OpKind::ALL
        .into_iter()
        .map(|op| {
            let ex = op.example();
            let params = Params::parse(op, ex.params)
                .unwrap_or_else(|e| panic!("{op} example `{}`: {e}", ex.params));
            Problem::from_params(op, &params, ex.dtype)
                .unwrap_or_else(|e| panic!("{op} example `{}`: {e}", ex.params))
        })
        .collect()
}

/// Valid arguments of every operator, one call each.
fn all_args() -> Vec<Args<'static>> {
    let specs: Vec<Box<dyn Spec>> = vec![
        Box::new(gemm()),
        Box::new(rms_norm()),
        Box::new(softmax()),
        Box::new(Rows {
            log: true,
            ..softmax()
        }),
        Box::new(token_logprobs()),
        Box::new(rope()),
        Box::new(attention()),
        Box::new(ssu()),
        Box::new(silu_mul()),
        Box::new(scaled_gemm()),
    ];
    let args: Vec<Args<'static>> = specs
        .iter()
        .map(|s| s.args().expect("baseline views build"))
        .collect();
    let ops: BTreeSet<OpKind> = args.iter().map(Args::op).collect();
    assert_eq!(ops.len(), OpKind::ALL.len(), "arguments for every op");
    args
}

// ---------------------------------------------------------------------------------------------
// OpKind and the descriptors behind it.

#[test]
fn names_round_trip_through_from_str() {
    let mut seen = BTreeSet::new();
    for op in OpKind::ALL {
        let name = op.name();
        assert!(seen.insert(name), "`{name}` names two operators");
        assert_eq!(name.parse::<OpKind>().unwrap(), op, "{name}");
        assert_eq!(format!(" {name} ").parse::<OpKind>().unwrap(), op, "{name}");
        assert_eq!(op.to_string(), name);
        // The JSON form is the name too.
        assert_eq!(
            serde_json::to_value(op).unwrap(),
            serde_json::Value::String(name.into())
        );
    }
    assert_eq!(
        OpKind::names(),
        OpKind::ALL.map(OpKind::name).to_vec(),
        "names() is the catalog order"
    );
    assert!(OpKind::ALL.contains(&OpKind::SiluMul));
    assert_eq!("silu_mul".parse::<OpKind>().unwrap(), OpKind::SiluMul);
    assert!(matches!(
        "silu".parse::<OpKind>(),
        Err(Error::UnknownOp { ref name }) if name == "silu"
    ));
}

#[test]
fn examples_parse_into_problems_of_their_op() {
    for (op, p) in OpKind::ALL.into_iter().zip(examples()) {
        assert_eq!(p.op(), op, "{op}: {p}");
        assert_eq!(p.dtype(), op.example().dtype, "{op}");
        assert!(
            p.align() >= 1 && p.align() <= 16,
            "{op}: align {}",
            p.align()
        );
        assert!(!p.shape().is_empty(), "{op}: no shape");
        let work = match p.work() {
            kernelyard_core::Work::Flops(f) | kernelyard_core::Work::Bytes(f) => f,
        };
        assert!(work.is_finite() && work > 0.0, "{op}: work {work}");
        // Every key of the example is one the operator documents.
        for pair in op.example().params.split(',') {
            let key = pair.split('=').next().unwrap_or_default().trim();
            assert!(
                op.params().iter().any(|k| k.key == key),
                "{op}: example key `{key}` is not in params()"
            );
        }
        // Scalars are documented, and named once.
        let names: BTreeSet<_> = op.scalars().iter().map(|s| s.name).collect();
        assert_eq!(names.len(), op.scalars().len(), "{op}: a scalar twice");
        assert!(op.scalars().iter().all(|s| !s.help.is_empty()), "{op}");
        // The problem's JSON names its op, and parses back into the same problem.
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["op"], op.name(), "{op}: {json}");
        assert_eq!(serde_json::from_value::<Problem>(json).unwrap(), p);
    }
    let silu = &examples()[OpKind::ALL
        .iter()
        .position(|&o| o == OpKind::SiluMul)
        .unwrap()];
    assert_eq!(silu.shape(), vec![128, 14336]);
    assert_eq!(silu.layout(), None);
}

// ---------------------------------------------------------------------------------------------
// Listed: the one match from the catalog's enums to an op's own types.

/// Checks `O`'s `Listed` against every example problem and every op's arguments: it finds its
/// own op's and only those, and `wrap` undoes `problem`. Returns `O::KIND`.
fn listed_finds_only_its_own<O: Listed>(problems: &[Problem], args: &mut [Args<'_>]) -> OpKind {
    let mut own = 0;
    for p in problems {
        match O::problem(p) {
            Some(q) => {
                assert_eq!(p.op(), O::KIND, "{:?} took a {} problem", O::KIND, p.op());
                assert_eq!(&O::wrap(q.clone()), p);
                own += 1;
            }
            None => assert_ne!(p.op(), O::KIND, "{:?} missed its own problem", O::KIND),
        }
    }
    assert_eq!(own, 1, "{:?}: one example each", O::KIND);
    for a in args.iter_mut() {
        let op = a.op();
        assert_eq!(
            O::args(a).is_some(),
            op == O::KIND,
            "{:?} with {op} arguments",
            O::KIND
        );
    }
    O::KIND
}

#[test]
fn listed_returns_none_for_another_op() {
    let problems = examples();
    let mut args = all_args();
    let covered: BTreeSet<OpKind> = [
        listed_finds_only_its_own::<Gemm>(&problems, &mut args),
        listed_finds_only_its_own::<RmsNorm>(&problems, &mut args),
        listed_finds_only_its_own::<Softmax>(&problems, &mut args),
        listed_finds_only_its_own::<LogSoftmax>(&problems, &mut args),
        listed_finds_only_its_own::<TokenLogprobs>(&problems, &mut args),
        listed_finds_only_its_own::<Rope>(&problems, &mut args),
        listed_finds_only_its_own::<Attention>(&problems, &mut args),
        listed_finds_only_its_own::<SelectiveStateUpdate>(&problems, &mut args),
        listed_finds_only_its_own::<SiluMul>(&problems, &mut args),
        listed_finds_only_its_own::<ScaledGemm>(&problems, &mut args),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        covered,
        OpKind::ALL.into_iter().collect(),
        "every op's descriptor is checked"
    );
}

// ---------------------------------------------------------------------------------------------
// KernelDef: typed check, score and launch behind the `Kernel` trait.

static LAUNCHES: AtomicUsize = AtomicUsize::new(0);

/// A softmax kernel that records its launches, rejects rows over 4096 and prefers long rows.
static SOFTMAX: KernelDef<Softmax> = KernelDef::<Softmax>::new(
    KernelMeta::new::<Softmax>(
        "fake.softmax",
        "fake",
        DeviceKind::Cuda,
        ArchReq::Any,
        module_path!(),
        "counts its launches",
    ),
    launch_softmax,
)
.with_check(check_softmax)
.with_score(score_softmax);

fn launch_softmax(
    ctx: &LaunchCtx<'_>,
    a: &mut SoftmaxArgs<'_>,
    p: &RowsProblem,
) -> Result<(), Error> {
    // The typed launch sees its own op's arguments and problem, and the context.
    assert_eq!(a.x.shape(), &[p.rows, p.cols]);
    assert_eq!(ctx.stream.device(), GPU);
    assert_eq!(ctx.caps.device, GPU);
    LAUNCHES.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

fn check_softmax(_: &Capabilities, p: &RowsProblem, reasons: &mut Vec<Reason>) {
    if p.cols > 4096 {
        reasons.push(Reason::ShapeUnsupported {
            what: format!("cols = {} > 4096", p.cols),
        });
    }
}

fn score_softmax(_: &Capabilities, p: &RowsProblem) -> i32 {
    if p.cols >= 1024 {
        2
    } else {
        1
    }
}

fn sm90() -> Capabilities {
    Capabilities {
        device: GPU,
        name: "simulated sm_90".into(),
        arch: Arch::Cuda { sm: Sm::new(9, 0) },
        multiprocessors: 132,
        shared_mem_per_block: 48 * 1024,
        shared_mem_per_block_optin: 227 * 1024,
        memory_bytes: 80 << 30,
        driver_version: None,
        compiler_version: None,
        features: BTreeSet::new(),
    }
}

fn problem(op: OpKind, spec: &str) -> Problem {
    Problem::from_params(
        op,
        &Params::parse(op, spec).unwrap(),
        kernelyard_core::DType::F32,
    )
    .unwrap()
}

#[test]
fn kernel_def_metadata_has_core_defaults() {
    let m = SOFTMAX.meta();
    assert_eq!(m.op, OpKind::Softmax);
    assert_eq!((m.version, m.priority, m.align), (1, 10, 1));
    assert!(m.deterministic && m.batch_invariant);
    assert_eq!(m.dtypes, kernelyard_core::DType::FLOATS);
    assert!(m.features.is_empty());
    let m = KernelMeta::new::<SiluMul>("x.silu_mul", "x", DeviceKind::Cpu, ArchReq::Any, "", "")
        .priority(3)
        .version(2)
        .align(16)
        .nondeterministic();
    assert_eq!(m.op, OpKind::SiluMul);
    assert_eq!((m.version, m.priority, m.align), (2, 3, 16));
    assert!(!m.deterministic && !m.batch_invariant);
}

#[test]
fn kernel_def_checks_and_scores_its_own_problems() {
    // Through the trait, as selection sees it (`KernelDef`'s inherent `check` and `score` are
    // its const builders).
    let k: &dyn Kernel = &SOFTMAX;
    let caps = sm90();
    let short = problem(OpKind::Softmax, "rows=4,cols=128");
    let long = problem(OpKind::Softmax, "rows=4,cols=2048");
    let huge = problem(OpKind::Softmax, "rows=4,cols=8192");
    assert_eq!(k.check(&caps, &short), Ok(()));
    assert_eq!(k.score(&caps, &short), 1);
    assert_eq!(k.score(&caps, &long), 2);
    assert_eq!(
        k.check(&caps, &huge),
        Err(vec![Reason::ShapeUnsupported {
            what: "cols = 8192 > 4096".into()
        }])
    );
    // Another op's problem never reaches the typed check or score: no reason of its own, and
    // a score of 0 (selection never asks, since the registry is keyed by op).
    let gemm = problem(OpKind::Gemm, "m=8,n=8,k=100000");
    assert_eq!(k.check(&caps, &gemm), Ok(()));
    assert_eq!(k.score(&caps, &gemm), 0);
}

#[test]
fn kernel_def_launch_with_another_ops_arguments_is_wrong_op() {
    let caps = sm90();
    let stream = Stream::default_for(GPU);
    let ctx = LaunchCtx {
        stream: &stream,
        caps: &caps,
        tactic: None,
    };
    let (softmax_problem, _) = softmax().args().unwrap().validate().unwrap();
    let mut softmax_args = softmax().args().unwrap();
    let before = LAUNCHES.load(Ordering::SeqCst);

    // Its own op: the typed launch runs.
    SOFTMAX
        .launch(&ctx, &mut softmax_args, &softmax_problem)
        .unwrap();
    assert_eq!(LAUNCHES.load(Ordering::SeqCst), before + 1);

    // Every other op's arguments: an error naming both ops, not a panic, and no launch.
    for mut args in all_args() {
        let op = args.op();
        if op == OpKind::Softmax {
            continue;
        }
        let (p, _) = args.validate().unwrap();
        let e = SOFTMAX.launch(&ctx, &mut args, &p).unwrap_err();
        assert!(
            matches!(
                e,
                Error::WrongOp { kernel: "fake.softmax", op: OpKind::Softmax, got } if got == op
            ),
            "{op}: {e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "kernel `fake.softmax` implements softmax but was launched with {op} arguments"
            )
        );
        // Its own arguments with another op's problem are refused the same way.
        let e = SOFTMAX.launch(&ctx, &mut softmax_args, &p).unwrap_err();
        assert!(
            matches!(e, Error::WrongOp { op: OpKind::Softmax, got, .. } if got == op),
            "{op}: {e:?}"
        );
    }
    assert_eq!(LAUNCHES.load(Ordering::SeqCst), before + 1);
}
