//! One validation of problems: `from_params`, problems built directly and `validate` obey the
//! same invariants (`Op::check_problem`), in checked arithmetic.
//!
//! The reproductions of issue 13 (a rope problem whose `next_multiple_of` wrapped into a
//! division by zero in selection, gemm's batch strides overflowing in `from_params`, problems
//! of more bytes than `usize` holds being selected, a C dtype `validate` refuses) are typed
//! errors here; the properties check, for random parameters and random fields, that every
//! problem that passes the check is one that arguments validate to.

#[path = "support/problems.rs"]
mod problems;

use kernelyard_core::ops::attention::AttentionProblem;
use kernelyard_core::ops::gemm::{Gemm, GemmArgs, GemmProblem};
use kernelyard_core::ops::rope::{RopeProblem, RopeStyle};
use kernelyard_core::{
    ArchReq, Capabilities, DType, DeviceKind, Error, Kernel, KernelDef, KernelMeta, LaunchCtx,
    OpKind, Params, Pins, Policy, Problem, Registry, SelectError, Selector, ValidationError,
};
use proptest::prelude::*;

fn from_params(op: OpKind, spec: &str, dtype: DType) -> Result<Problem, Error> {
    Problem::from_params(op, &Params::parse(op, spec).expect("keys parse"), dtype)
}

fn validation(r: Result<Problem, Error>) -> ValidationError {
    match r {
        Err(Error::Validation(e)) => e,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

/// The rope problem of the issue: heads = 2^64 - 1.
fn issue_rope() -> RopeProblem {
    RopeProblem {
        tokens: 65535,
        heads: usize::MAX,
        head_dim: 256,
        rotary_dim: 256,
        style: RopeStyle::Neox,
        dtype: DType::F32,
        pos_dtype: DType::I64,
        in_place: false,
        align: 4,
    }
}

#[test]
fn the_issues_rope_problem_is_an_overflow_error() {
    let e = validation(from_params(
        OpKind::Rope,
        "tokens=65535,heads=18446744073709551615,head_dim=256,align=4",
        DType::F32,
    ));
    assert!(
        matches!(e, ValidationError::Overflow { arg: "x", .. }),
        "{e}"
    );
    // Built directly, the same problem fails the same check.
    let e = Problem::Rope(issue_rope()).check().unwrap_err();
    assert!(
        matches!(e, ValidationError::Overflow { arg: "x", .. }),
        "{e}"
    );
}

#[test]
fn gemm_batch_strides_are_checked_products() {
    // m * n overflowed in a debug build (the batch stride of C).
    let e = validation(from_params(
        OpKind::Gemm,
        "m=18446744073709551615,n=2,k=2,batch=2",
        DType::F32,
    ));
    assert!(
        matches!(e, ValidationError::Overflow { arg: "c", .. }),
        "{e}"
    );
    // m * k for A, k * n for B, each named.
    let e = validation(from_params(
        OpKind::Gemm,
        "m=2,n=2,k=9223372036854775808,batch=2",
        DType::F32,
    ));
    assert!(
        matches!(e, ValidationError::Overflow { arg: "a", .. }),
        "{e}"
    );
}

#[test]
fn problems_of_more_bytes_than_memory_holds_are_refused() {
    // 2^32 x 2^32 bf16: C alone is 2^65 bytes (selected by `explain` before).
    let e = validation(from_params(
        OpKind::Gemm,
        "m=4294967296,n=4294967296,k=2",
        DType::BF16,
    ));
    assert!(
        matches!(e, ValidationError::Overflow { arg: "c", .. }),
        "{e}"
    );
    // Each tensor fits in isize, all of them together do not: x, weight, out, residual and
    // residual_out of 2^61 bytes each.
    let e = validation(from_params(
        OpKind::RmsNorm,
        "rows=2305843009213693952,hidden=1,residual=1",
        DType::BF16,
    ));
    assert!(matches!(e, ValidationError::Overflow { .. }), "{e}");
    // Without the residual the three tensors fit.
    from_params(
        OpKind::RmsNorm,
        "rows=1152921504606846976,hidden=1",
        DType::BF16,
    )
    .unwrap();
}

#[test]
fn dtype_rules_are_validates() {
    let e = validation(from_params(
        OpKind::Gemm,
        "m=2,n=2,k=2,c_dtype=i32",
        DType::F32,
    ));
    assert!(
        matches!(
            e,
            ValidationError::DtypeNotAllowed {
                arg: "c",
                got: DType::I32,
                ..
            }
        ),
        "{e}"
    );
    // C in f16 next to bf16 A/B: `validate` refuses it, so does the problem check.
    let e = validation(from_params(
        OpKind::Gemm,
        "m=2,n=2,k=2,c_dtype=f16",
        DType::BF16,
    ));
    assert!(
        matches!(e, ValidationError::DtypeNotAllowed { arg: "c", .. }),
        "{e}"
    );
    from_params(OpKind::Gemm, "m=2,n=2,k=2,c_dtype=f32", DType::BF16).unwrap();
    let e = validation(from_params(
        OpKind::SelectiveStateUpdate,
        "batch=1,heads=2,head_dim=4,state_dim=8,state_dtype=i64",
        DType::BF16,
    ));
    assert!(
        matches!(e, ValidationError::DtypeNotAllowed { arg: "state", .. }),
        "{e}"
    );
    let e = validation(from_params(
        OpKind::Rope,
        "tokens=2,heads=2,head_dim=8,pos_dtype=f32",
        DType::BF16,
    ));
    assert!(
        matches!(
            e,
            ValidationError::DtypeNotAllowed {
                arg: "positions",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn align_is_a_power_of_two_at_least_the_element_size() {
    let gemm = |align: &str, dtype| {
        from_params(OpKind::Gemm, &format!("m=8,n=8,k=8,align={align}"), dtype)
    };
    for bad in ["0", "3", "12", "18446744073709551615"] {
        let e = validation(gemm(bad, DType::F32));
        assert!(
            matches!(e, ValidationError::Param { param: "align", .. }),
            "{bad}: {e}"
        );
    }
    // f32 pointers are 4-byte aligned at least.
    let e = validation(gemm("2", DType::F32));
    assert!(
        matches!(e, ValidationError::Param { param: "align", .. }),
        "{e}"
    );
    // bf16 A and B: 2 is fine (their pointers may be 2-byte aligned); 32 is capped at 16.
    assert_eq!(gemm("2", DType::BF16).unwrap().align(), 2);
    assert_eq!(gemm("32", DType::F32).unwrap().align(), 16);
    // rope's positions (i32) next to bf16 x: the least element size is 2.
    assert_eq!(
        from_params(
            OpKind::Rope,
            "tokens=4,heads=2,head_dim=8,align=2,pos_dtype=i32",
            DType::BF16
        )
        .unwrap()
        .align(),
        2
    );
}

#[test]
fn from_params_records_the_alignment_contiguous_tensors_have() {
    // Rows of 3 bf16 (6 bytes): the row stride allows 2-byte accesses only, whatever the
    // pointers' alignment; validation of such tensors records 2, and so does the problem.
    assert_eq!(
        from_params(OpKind::Softmax, "rows=4,cols=3", DType::BF16)
            .unwrap()
            .align(),
        2
    );
    // One row: its stride is never stepped over, so it does not count.
    assert_eq!(
        from_params(OpKind::Softmax, "rows=1,cols=3", DType::BF16)
            .unwrap()
            .align(),
        16
    );
    // silu_mul's fused `up` starts d elements into each row.
    assert_eq!(
        from_params(OpKind::SiluMul, "rows=1,d=4", DType::F32)
            .unwrap()
            .align(),
        16
    );
    assert_eq!(
        from_params(OpKind::SiluMul, "rows=1,d=6", DType::F32)
            .unwrap()
            .align(),
        8
    );
    // Typical shapes keep 16.
    for op in OpKind::ALL {
        let ex = op.example();
        let p = from_params(op, ex.params, ex.dtype).unwrap();
        assert_eq!(p.align(), 16, "{op} {}", ex.params);
    }
}

#[test]
fn problems_built_directly_are_checked() {
    let gemm = GemmProblem {
        batch: 2,
        m: 4,
        n: 4,
        k: 4,
        trans_a: false,
        trans_b: false,
        dtype: DType::F32,
        c_dtype: DType::F32,
        lda: 4,
        ldb: 4,
        ldc: 4,
        batch_stride_a: 16,
        batch_stride_b: 16,
        batch_stride_c: 16,
        accumulate: false,
        align: 16,
    };
    Problem::Gemm(gemm.clone()).check().unwrap();
    let bad = |p: GemmProblem| Problem::Gemm(p).check().unwrap_err();
    // A row stride below the row.
    let e = bad(GemmProblem {
        lda: 3,
        ..gemm.clone()
    });
    assert!(
        matches!(e, ValidationError::ProblemStrides { arg: "a", .. }),
        "{e}"
    );
    // C's batches overlapping.
    let e = bad(GemmProblem {
        batch_stride_c: 15,
        ..gemm.clone()
    });
    assert!(
        matches!(e, ValidationError::ProblemStrides { arg: "c", .. }),
        "{e}"
    );
    // Batch strides without a batch.
    let e = bad(GemmProblem {
        batch: 1,
        ..gemm.clone()
    });
    assert!(matches!(e, ValidationError::ProblemStrides { .. }), "{e}");
    // A stride whose span overflows.
    let e = bad(GemmProblem {
        batch_stride_a: usize::MAX,
        ..gemm.clone()
    });
    assert!(
        matches!(e, ValidationError::Overflow { arg: "a", .. }),
        "{e}"
    );
    // An align the strides cannot have: rows of 5 f32 are 4-byte aligned at best.
    let e = bad(GemmProblem {
        k: 5,
        lda: 5,
        ..gemm.clone()
    });
    assert!(
        matches!(e, ValidationError::Param { param: "align", .. }),
        "{e}"
    );
    // A zero size, a relation.
    let att = AttentionProblem {
        batch: 1,
        seq_q: 4,
        seq_kv: 4,
        heads_q: 8,
        heads_kv: 3,
        head_dim: 64,
        dtype: DType::BF16,
        causal: false,
        lse: false,
        align: 16,
    };
    let e = Problem::Attention(att.clone()).check().unwrap_err();
    assert!(matches!(e, ValidationError::Relation { .. }), "{e}");
    let e = Problem::Attention(AttentionProblem { heads_kv: 0, ..att })
        .check()
        .unwrap_err();
    assert!(matches!(e, ValidationError::ZeroSized { .. }), "{e}");
}

#[test]
fn causal_flops_count_the_visible_scores() {
    // The closed form against the sum it replaces, query by query.
    for sq in 1..12usize {
        for skv in 1..12usize {
            let p = AttentionProblem {
                batch: 1,
                seq_q: sq,
                seq_kv: skv,
                heads_q: 1,
                heads_kv: 1,
                head_dim: 1,
                dtype: DType::BF16,
                causal: true,
                lse: false,
                align: 16,
            };
            let pairs: f64 = (0..sq)
                .map(|i| ((i + skv) as f64 - sq as f64 + 1.0).clamp(0.0, skv as f64))
                .sum();
            assert_eq!(p.flops(), 4.0 * pairs, "sq {sq} skv {skv}");
        }
    }
    // Huge sizes neither overflow nor loop.
    let p = AttentionProblem {
        batch: 1,
        seq_q: usize::MAX,
        seq_kv: usize::MAX,
        heads_q: 1,
        heads_kv: 1,
        head_dim: 1,
        dtype: DType::BF16,
        causal: true,
        lse: false,
        align: 16,
    };
    assert!(p.flops().is_finite());
}

// ---------------------------------------------------------------------------------------------
// Selection refuses a problem that fails the check, before any kernel sees it.

static ANY_GEMM: KernelDef<Gemm> = KernelDef::<Gemm>::new(
    KernelMeta::new::<Gemm>(
        "fake.gemm",
        "fake",
        DeviceKind::Cpu,
        ArchReq::Any,
        module_path!(),
        "runs anything, launches nothing",
    ),
    noop,
)
.with_check(never_called_with_bad_strides);

fn noop(_: &LaunchCtx<'_>, _: &mut GemmArgs<'_>, _: &GemmProblem) -> Result<(), Error> {
    Ok(())
}

fn never_called_with_bad_strides(
    _: &Capabilities,
    p: &GemmProblem,
    _: &mut Vec<kernelyard_core::Reason>,
) {
    assert!(
        p.lda >= p.a_dims()[1],
        "a kernel check saw an invalid problem: {p:?}"
    );
}

#[test]
fn selection_refuses_invalid_problems_with_a_typed_error() {
    let registry: &'static Registry = Box::leak(Box::new(
        Registry::from_kernels([&ANY_GEMM as &dyn Kernel]).unwrap(),
    ));
    let selector = Selector::new(registry, Pins::default());
    let caps = Capabilities::host();
    let good = from_params(OpKind::Gemm, "m=4,n=4,k=4", DType::F32).unwrap();
    let plan = selector.select(&caps, &good, &Policy::auto()).unwrap();
    assert_eq!(plan.kernel_name(), "fake.gemm");
    let Problem::Gemm(g) = &good else {
        unreachable!()
    };
    for (bad, named) in [
        (
            Problem::Gemm(GemmProblem {
                lda: 1,
                ..g.clone()
            }),
            Policy::auto(),
        ),
        (
            Problem::Gemm(GemmProblem {
                m: usize::MAX,
                ..g.clone()
            }),
            Policy::kernel("fake.gemm"),
        ),
        (
            Problem::Gemm(GemmProblem {
                c_dtype: DType::I32,
                ..g.clone()
            }),
            Policy::auto(),
        ),
        (Problem::Rope(issue_rope()), Policy::auto()),
    ] {
        // Twice: an invalid problem is never cached as a plan.
        for _ in 0..2 {
            match selector.select(&caps, &bad, &named) {
                Err(SelectError::InvalidProblem { op, error }) => {
                    assert_eq!(op, bad.op());
                    assert_eq!(Problem::check(&bad).unwrap_err(), error);
                    let msg = SelectError::InvalidProblem { op, error }.to_string();
                    assert!(
                        msg.starts_with(&format!("invalid `{op}` problem: ")),
                        "{msg}"
                    );
                }
                other => panic!("{bad}: expected InvalidProblem, got {other:?}"),
            }
        }
    }
    assert_eq!(selector.cached_plans(), 1);
}

// ---------------------------------------------------------------------------------------------
// Properties.

fn op() -> impl Strategy<Value = OpKind> {
    prop::sample::select(OpKind::ALL.to_vec())
}

/// `p` (which passed its check) is what some arguments validate to: lays them out over fake
/// addresses and validates them.
fn materialises(p: &Problem) -> Result<(), TestCaseError> {
    let args = problems::args(p)
        .ok_or_else(|| TestCaseError::fail(format!("{p}: its tensors do not fit")))?;
    match args.validate() {
        Ok((q, device)) => {
            prop_assert_eq!(&q, p, "the arguments validate to another problem");
            prop_assert_eq!(device, problems::DEVICE);
            Ok(())
        }
        Err(e) => Err(TestCaseError::fail(format!(
            "{p}: {e} ({})",
            args.describe()
        ))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Every problem `from_params` accepts passes its check and is what arguments validate to.
    #[test]
    fn from_params_problems_are_what_arguments_validate_to(
        (op, (params, dtype)) in op().prop_flat_map(|op| (Just(op), problems::params(op)))
    ) {
        if let Ok(p) = Problem::from_params(op, &params, dtype) {
            prop_assert_eq!(p.op(), op);
            prop_assert_eq!(p.check(), Ok(()));
            materialises(&p)?;
        }
    }

    /// A problem built field by field passes its check exactly when arguments could describe
    /// it: every one that passes is what arguments validate to.
    #[test]
    fn problems_that_pass_the_check_are_what_arguments_validate_to(
        p in op().prop_flat_map(problems::direct)
    ) {
        if p.check().is_ok() {
            materialises(&p)?;
        }
    }
}
