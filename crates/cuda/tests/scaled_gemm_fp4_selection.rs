//! Selection of `cuda.scaled_gemm.fp4.cublaslt` on simulated devices (no GPU needed; the
//! kernel has never run on hardware): sm_100 and sm_120 select it for NVFP4 and MXFP4
//! problems; Hopper, Ada and older get `ArchTooOld` (so on those devices an FP4 problem has no
//! CUDA kernel at all, and the suite counts its cases as skipped); what it does not take (k not
//! a multiple of 32, n not a multiple of 16, misaligned pointers, tiled scales beyond half the
//! workspace, FP8 operands) gets its typed reason, and the FP8 kernels refuse FP4 operands by
//! dtype.

mod selection_support;

use std::convert::identity;

use kernelyard_core::{
    DType, DeviceId, OpKind, Policy, Problem, Reason, Runtime, SelectError, Sm, Verdict,
};
use selection_support::{rejection, H100_OPTIN};

const FP4: &str = "cuda.scaled_gemm.fp4.cublaslt";

fn runtime(sm: Sm) -> Runtime {
    selection_support::runtime(sm, H100_OPTIN)
}

/// An FP4 `scaled_gemm` problem of `params` (which name the scale mode).
fn fp4(params: &str) -> Problem {
    selection_support::problem(OpKind::ScaledGemm, params, DType::F4E2M1X2)
}

/// Why `kernel`, named by the policy (with `constrain` applied), is rejected for `p` on `rt`'s
/// device.
fn why(rt: &Runtime, p: &Problem, kernel: &str, constrain: fn(Policy) -> Policy) -> Vec<Reason> {
    let err = rt
        .select(DeviceId::cuda(0), p, &constrain(Policy::kernel(kernel)))
        .unwrap_err();
    rejection(err, kernel)
}

#[test]
fn blackwell_selects_it_for_nvfp4_and_mxfp4() {
    for sm in [Sm::new(10, 0), Sm::new(10, 3), Sm::new(12, 0)] {
        let rt = runtime(sm);
        for mode in ["nvfp4", "mxfp4"] {
            for out in ["bf16", "f16", "f32"] {
                for (m, bias) in [(1, 0), (128, 1), (4099, 0)] {
                    let params =
                        format!("m={m},n=256,k=1024,scale_a={mode},out_dtype={out},bias={bias}");
                    let p = fp4(&params);
                    for policy in [Policy::auto(), Policy::kernel(FP4)] {
                        let plan = rt
                            .select(DeviceId::cuda(0), &p, &policy)
                            .unwrap_or_else(|e| panic!("{sm} {params}: {e}"));
                        assert_eq!(plan.kernel_name(), FP4, "{sm} {params}");
                    }
                }
            }
        }
    }
}

#[test]
fn hopper_and_older_are_too_old() {
    for sm in [Sm::new(9, 0), Sm::new(8, 9), Sm::new(8, 0), Sm::new(7, 5)] {
        let rt = runtime(sm);
        for mode in ["nvfp4", "mxfp4"] {
            let p = fp4(&format!("m=128,n=256,k=512,scale_a={mode}"));
            let reasons = why(&rt, &p, FP4, identity);
            assert!(
                reasons.iter().any(|r| matches!(r,
                    Reason::ArchTooOld { need, .. } if need.to_string().contains("sm_100"))),
                "{sm} {mode}: {reasons:?}"
            );
            // Unnamed, no CUDA kernel takes the problem: every candidate is rejected, this one
            // by architecture (the suite reports such a case as a skip with these reasons).
            let err = rt
                .select(DeviceId::cuda(0), &p, &Policy::auto())
                .unwrap_err();
            let SelectError::AllRejected { report } = err else {
                panic!("{sm} {mode}: expected every candidate rejected, got {err}");
            };
            let mine = report
                .candidates
                .iter()
                .find(|c| c.kernel == FP4)
                .unwrap_or_else(|| panic!("{sm}: {FP4} is not a candidate:\n{report}"));
            assert!(
                matches!(&mine.verdict, Verdict::Rejected { reasons }
                    if reasons.iter().any(|r| matches!(r, Reason::ArchTooOld { .. }))),
                "{sm}: {:?}",
                mine.verdict
            );
        }
    }
}

#[test]
fn what_it_does_not_take_is_a_typed_reason() {
    let rt = runtime(Sm::new(10, 0));
    // k = 48 is a valid NVFP4 problem (three blocks) but not 16-byte rows of pairs.
    let p = fp4("m=128,n=256,k=48,scale_a=nvfp4,align=8");
    let reasons = why(&rt, &p, FP4, identity);
    assert!(
        matches!(reasons.as_slice(), [Reason::Alignment { .. }, Reason::ShapeUnsupported { what }]
            if what.starts_with("k = 48") && what.contains("multiple of 32")),
        "{reasons:?}"
    );
    let p = fp4("m=3,n=24,k=64,scale_a=mxfp4");
    let reasons = why(&rt, &p, FP4, identity);
    assert!(
        matches!(reasons.as_slice(), [Reason::ShapeUnsupported { what }]
            if what.starts_with("n = 24")),
        "{reasons:?}"
    );
    // NVFP4 at k = 16384 has 1024 scales a row: m + n = 32768 rows need 32 MiB of tiles.
    let p = fp4("m=16384,n=16384,k=16384,scale_a=nvfp4");
    let reasons = why(&rt, &p, FP4, identity);
    assert!(
        matches!(reasons.as_slice(), [Reason::ShapeUnsupported { what }]
            if what.contains("tiled layout exceed half")),
        "{reasons:?}"
    );
    // The same k with MXFP4 (512 scales a row) and m + n = 16384 fits.
    let p = fp4("m=8192,n=8192,k=16384,scale_a=mxfp4");
    assert_eq!(
        rt.select(DeviceId::cuda(0), &p, &Policy::kernel(FP4))
            .map(|plan| plan.kernel_name().to_owned())
            .unwrap_or_else(|e| panic!("{e}")),
        FP4
    );
    // FP8 operands are not this kernel's (its metadata lists FP4 only).
    let fp8 = selection_support::problem(OpKind::ScaledGemm, "m=128,n=256,k=512", DType::F8E4M3);
    let reasons = why(&rt, &fp8, FP4, identity);
    assert!(
        matches!(reasons.as_slice(), [Reason::DtypeUnsupported { dtype: DType::F8E4M3, supported, .. }]
            if supported == &[DType::F4E2M1X2]),
        "{reasons:?}"
    );
    // Neither deterministic nor batch-invariant (cuBLASLt's algorithm depends on M).
    let p = fp4("m=128,n=256,k=512,scale_a=nvfp4");
    let reasons = why(&rt, &p, FP4, Policy::deterministic);
    assert!(reasons.contains(&Reason::NotDeterministic), "{reasons:?}");
}

#[test]
fn the_fp8_kernels_refuse_fp4_operands_by_dtype() {
    let p = fp4("m=128,n=256,k=512,scale_a=nvfp4");
    for (sm, kernel) in [
        (Sm::new(10, 0), "cuda.scaled_gemm.cublaslt"),
        (Sm::new(9, 0), "cuda.scaled_gemm.batch_invariant.sm90"),
    ] {
        let reasons = why(&runtime(sm), &p, kernel, identity);
        assert!(
            reasons.iter().any(|r| matches!(
                r,
                Reason::DtypeUnsupported {
                    dtype: DType::F4E2M1X2,
                    ..
                }
            )),
            "{kernel}: {reasons:?}"
        );
    }
    // The FP8 cuBLASLt kernel says only that (no word about its FP8 scale modes).
    let reasons = why(
        &runtime(Sm::new(10, 0)),
        &p,
        "cuda.scaled_gemm.cublaslt",
        identity,
    );
    assert_eq!(reasons.len(), 1, "{reasons:?}");
}
