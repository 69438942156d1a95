//! Issue 13's reproductions on a simulated H100 (no GPU needed): problems that made selection
//! divide by zero or overflow are typed errors, and the CUDA kernels' own checks, called on
//! such problems directly (selection never passes them on), give typed reasons without
//! panicking (this file runs in debug builds, where overflow panics).

use kernelyard_core::ops::gemm::GemmProblem;
use kernelyard_core::ops::rope::{RopeProblem, RopeStyle};
use kernelyard_core::ops::softmax::RowsProblem;
use kernelyard_core::{
    Capabilities, DType, DeviceId, Error, OpKind, Params, Policy, Problem, Reason, Runtime,
    SelectError, Sm, ValidationError,
};

fn h100() -> Capabilities {
    kernelyard_cuda::device::simulated_caps(Sm::new(9, 0), 227 << 10)
}

fn runtime() -> Runtime {
    kernelyard_cuda::link();
    Runtime::builder()
        .no_probe()
        .pins("")
        .simulated_device(h100())
        .build()
        .expect("runtime")
}

/// `rope tokens=65535,heads=2^64-1,head_dim=256,align=4` (f32).
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

/// The reasons `kernel` gives for `p` on an H100, asked directly (no problem check first).
fn reasons(kernel: &str, p: &Problem) -> Vec<Reason> {
    kernelyard_cuda::link();
    let registry = kernelyard_core::Registry::global().expect("registry");
    let k = registry.get(kernel).expect("a registered kernel");
    k.check(&h100(), p).err().unwrap_or_default()
}

fn shape_unsupported(r: &[Reason]) -> bool {
    r.iter()
        .any(|r| matches!(r, Reason::ShapeUnsupported { .. }))
}

#[test]
fn the_issues_rope_problem_is_refused_before_any_kernel_plans_it() {
    let rt = runtime();
    // From `--problem` text (`explain`), the problem is an overflow error.
    let params = Params::parse(
        OpKind::Rope,
        "tokens=65535,heads=18446744073709551615,head_dim=256,align=4",
    )
    .unwrap();
    let err = Problem::from_params(OpKind::Rope, &params, DType::F32).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Validation(ValidationError::Overflow { arg: "x", .. })
        ),
        "{err}"
    );
    // Built directly, selection refuses it with the same error (it divided by zero).
    let p = Problem::Rope(issue_rope());
    for policy in [Policy::auto(), Policy::kernel("cuda.rope")] {
        match rt.select(DeviceId::cuda(0), &p, &policy) {
            Err(SelectError::InvalidProblem { op, error }) => {
                assert_eq!(op, OpKind::Rope);
                assert!(
                    matches!(error, ValidationError::Overflow { arg: "x", .. }),
                    "{error}"
                );
            }
            other => panic!("expected InvalidProblem, got {other:?}"),
        }
    }
}

#[test]
fn the_rope_plan_saturates_instead_of_dividing_by_zero() {
    // The kernel's check on the same problem (its plan's `next_multiple_of` wrapped to 0).
    let r = reasons("cuda.rope", &Problem::Rope(issue_rope()));
    assert!(shape_unsupported(&r), "{r:?}");
    // Zero heads or tokens (never valid) do not panic either.
    for (tokens, heads) in [(0, 0), (1, 0), (0, 1), (usize::MAX, usize::MAX)] {
        let p = RopeProblem {
            tokens,
            heads,
            ..issue_rope()
        };
        let _ = reasons("cuda.rope", &Problem::Rope(p));
    }
}

fn gemm(m: usize, n: usize, k: usize, batch: usize) -> GemmProblem {
    GemmProblem {
        batch,
        m,
        n,
        k,
        trans_a: false,
        trans_b: false,
        dtype: DType::BF16,
        c_dtype: DType::BF16,
        lda: k,
        ldb: n,
        ldc: n,
        batch_stride_a: 0,
        batch_stride_b: 0,
        batch_stride_c: 0,
        accumulate: false,
        align: 16,
    }
}

#[test]
fn gemm_checks_count_tiles_in_checked_arithmetic() {
    // The sm90 kernel's tile count (m/128 * n/256 * batch) and C's row bytes overflowed.
    for p in [
        gemm(usize::MAX, usize::MAX, 64, usize::MAX),
        gemm(1 << 40, 1 << 40, 64, 1 << 20),
        GemmProblem {
            ldc: usize::MAX,
            c_dtype: DType::F32,
            ..gemm(8, 8, 8, 1)
        },
    ] {
        let p = Problem::Gemm(p);
        for kernel in [
            "cuda.gemm.batch_invariant.sm90",
            "cuda.gemm.batch_invariant",
            "cuda.gemm.cublaslt",
        ] {
            let r = reasons(kernel, &p);
            assert!(shape_unsupported(&r), "{kernel}: {r:?}");
        }
    }
    // Selection refuses them before: C has more bytes than memory.
    let err = runtime()
        .select(
            DeviceId::cuda(0),
            &Problem::Gemm(gemm(1 << 40, 1 << 40, 64, 1 << 20)),
            &Policy::auto(),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            SelectError::InvalidProblem {
                op: OpKind::Gemm,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn row_kernels_measure_rows_in_checked_arithmetic() {
    // rows.rs multiplied the row length by the element size for the shared-memory path.
    for (rows, cols) in [(1, usize::MAX), (usize::MAX, usize::MAX), (usize::MAX, 1)] {
        let p = RowsProblem {
            rows,
            cols,
            dtype: DType::F32,
            align: 16,
        };
        for (kernel, p) in [
            ("cuda.softmax", Problem::Softmax(p.clone())),
            ("cuda.log_softmax", Problem::LogSoftmax(p)),
        ] {
            let r = reasons(kernel, &p);
            assert!(shape_unsupported(&r), "{kernel} {rows} x {cols}: {r:?}");
        }
    }
}

#[test]
fn explain_no_longer_selects_problems_larger_than_memory() {
    // What `explain` does: parameters, then selection.
    let rt = runtime();
    for (op, spec, dtype) in [
        (OpKind::Gemm, "m=4294967296,n=4294967296,k=2", DType::BF16),
        (
            OpKind::Softmax,
            "rows=4611686018427387904,cols=4",
            DType::F32,
        ),
        (
            OpKind::Attention,
            "batch=1048576,seq_q=1073741824,heads_q=32,head_dim=128",
            DType::BF16,
        ),
    ] {
        let params = Params::parse(op, spec).unwrap();
        match Problem::from_params(op, &params, dtype) {
            Err(Error::Validation(ValidationError::Overflow { .. })) => {}
            Ok(p) => panic!(
                "{op} {spec}: accepted, and selection says {:?}",
                rt.select(DeviceId::cuda(0), &p, &Policy::auto())
                    .map(|p| p.kernel_name())
            ),
            Err(e) => panic!("{op} {spec}: {e}"),
        }
    }
}
