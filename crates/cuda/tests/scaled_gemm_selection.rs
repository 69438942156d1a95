//! Selection of `cuda.scaled_gemm.cublaslt` on simulated devices (no GPU needed): sm_89 and
//! newer select it for every accepted FP8 operand pair, output dtype and bias, with per-tensor
//! scales, and sm_90 for per-row and block scales too; older architectures get `ArchTooOld`,
//! and what the kernel does not take (e5m2 on both sides, per-row or block scales off Hopper,
//! block scales with `ceil(k/128)` not a multiple of 4, misaligned pointers, k or n not a
//! multiple of 16) gets its typed reason. The
//! `deterministic` and `batch_invariant` constraints refuse it (cuBLASLt's algorithm depends on
//! M).

mod selection_support;

use std::convert::identity;

use kernelyard_core::{DType, DeviceId, OpKind, Policy, Problem, Reason, Runtime, Sm};
use selection_support::{rejection, H100_OPTIN};

const LT: &str = "cuda.scaled_gemm.cublaslt";

fn runtime(sm: Sm) -> Runtime {
    selection_support::runtime(sm, H100_OPTIN)
}

fn scaled_gemm(params: &str, dtype: DType) -> Problem {
    selection_support::problem(OpKind::ScaledGemm, params, dtype)
}

/// Why `kernel`, named by the policy (with `constrain` applied), is rejected for `p` on `rt`'s
/// device.
fn why(rt: &Runtime, p: &Problem, kernel: &str, constrain: fn(Policy) -> Policy) -> Vec<Reason> {
    let err = rt
        .select(DeviceId::cuda(0), p, &constrain(Policy::kernel(kernel)))
        .unwrap_err();
    rejection(err, kernel)
}

/// Why `kernel` is rejected for an e4m3 128 x 256 x 512 problem on a simulated `sm`.
fn arch_reasons(sm: Sm, kernel: &str) -> Vec<Reason> {
    let p = scaled_gemm("m=128,n=256,k=512", DType::F8E4M3);
    why(&runtime(sm), &p, kernel, identity)
}

#[test]
fn sm89_and_newer_select_it_for_every_accepted_pair() {
    for sm in [Sm::new(8, 9), Sm::new(9, 0), Sm::new(10, 0), Sm::new(12, 0)] {
        let rt = runtime(sm);
        for (a, b) in [
            ("f8e4m3", "f8e4m3"),
            ("f8e4m3", "f8e5m2"),
            ("f8e5m2", "f8e4m3"),
        ] {
            for out in ["bf16", "f16", "f32"] {
                for bias in [0, 1] {
                    for m in [1, 128, 4096] {
                        let params =
                            format!("m={m},n=256,k=512,b_dtype={b},out_dtype={out},bias={bias}");
                        let p = scaled_gemm(&params, a.parse().unwrap());
                        for policy in [Policy::auto(), Policy::kernel(LT)] {
                            let plan = rt
                                .select(DeviceId::cuda(0), &p, &policy)
                                .unwrap_or_else(|e| panic!("{sm} {a} {params}: {e}"));
                            assert_eq!(plan.kernel_name(), LT, "{sm} {a} {params}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn sm80_and_older_are_too_old() {
    for sm in [Sm::new(7, 5), Sm::new(8, 0), Sm::new(8, 6)] {
        let reasons = arch_reasons(sm, LT);
        assert!(
            reasons
                .iter()
                .any(|r| matches!(r, Reason::ArchTooOld { .. })),
            "{sm}: {reasons:?}"
        );
    }
}

#[test]
fn what_it_does_not_take_is_a_typed_reason() {
    let rt = runtime(Sm::new(9, 0));
    let e5m2 = scaled_gemm("m=128,n=256,k=512,b_dtype=f8e5m2", DType::F8E5M2);
    let reasons = why(&rt, &e5m2, LT, identity);
    assert!(
        matches!(
            reasons.as_slice(),
            [Reason::DtypeUnsupported {
                arg: "b",
                dtype: DType::F8E5M2,
                ..
            }]
        ),
        "{reasons:?}"
    );
    // Block scales with m = 37: A's scale columns (m fastest) are not 16-byte aligned.
    let p = scaled_gemm("m=37,n=256,k=512,scale_a=block", DType::F8E4M3);
    let reasons = why(&rt, &p, LT, identity);
    assert!(
        matches!(reasons.as_slice(), [Reason::ShapeUnsupported { what }]
            if what.starts_with("scales per block") && what.contains("m = 37")),
        "{reasons:?}"
    );
    // Block scales with ceil(k/128) = 5: cuBLASLt pads B's scale rows to 4.
    let p = scaled_gemm("m=128,n=256,k=640,scale_a=block", DType::F8E4M3);
    let reasons = why(&rt, &p, LT, identity);
    assert!(
        matches!(reasons.as_slice(), [Reason::ShapeUnsupported { what }]
            if what.starts_with("scales per block") && what.contains("multiple of 4")),
        "{reasons:?}"
    );
    let misaligned = scaled_gemm("m=128,n=256,k=500,align=4", DType::F8E4M3);
    let reasons = why(&rt, &misaligned, LT, identity);
    assert!(
        matches!(reasons.as_slice(), [Reason::Alignment { .. }, Reason::ShapeUnsupported { what }]
            if what.starts_with("k = 500")),
        "{reasons:?}"
    );
    // 16-byte aligned pointers and k = 48, but n = 24 is not a multiple of 16.
    let odd_n = scaled_gemm("m=3,n=24,k=48", DType::F8E4M3);
    let reasons = why(&rt, &odd_n, LT, identity);
    assert!(
        matches!(reasons.as_slice(), [Reason::ShapeUnsupported { what }] if what.starts_with("n = 24")),
        "{reasons:?}"
    );
}

#[test]
fn row_and_block_scales_select_it_on_hopper_only() {
    for mode in ["row", "block"] {
        let p = scaled_gemm(&format!("m=128,n=256,k=512,scale_a={mode}"), DType::F8E4M3);
        let plan = runtime(Sm::new(9, 0))
            .select(DeviceId::cuda(0), &p, &Policy::kernel(LT))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(plan.kernel_name(), LT);
        for sm in [Sm::new(8, 9), Sm::new(10, 0), Sm::new(12, 0)] {
            let reasons = why(&runtime(sm), &p, LT, identity);
            assert!(
                matches!(reasons.as_slice(), [Reason::ShapeUnsupported { what }]
                    if what.starts_with(&format!("scales per {mode}"))
                        && what.contains("Hopper (sm_90) only")),
                "{sm} {mode}: {reasons:?}"
            );
        }
    }
}

#[test]
fn deterministic_and_batch_invariant_policies_refuse_it() {
    let rt = runtime(Sm::new(9, 0));
    let p = scaled_gemm("m=128,n=256,k=512", DType::F8E4M3);
    let reasons = why(&rt, &p, LT, Policy::deterministic);
    assert!(reasons.contains(&Reason::NotDeterministic), "{reasons:?}");
    let reasons = why(&rt, &p, LT, Policy::batch_invariant);
    assert!(reasons.contains(&Reason::NotBatchInvariant), "{reasons:?}");
}

const BI: &str = "cuda.scaled_gemm.batch_invariant.sm90";

#[test]
fn sm90_takes_the_invariant_kernel_under_the_batch_invariant_and_deterministic_policies() {
    let rt = runtime(Sm::new(9, 0));
    for (a, b) in [
        ("f8e4m3", "f8e4m3"),
        ("f8e4m3", "f8e5m2"),
        ("f8e5m2", "f8e4m3"),
        ("f8e5m2", "f8e5m2"),
    ] {
        for out in ["bf16", "f16", "f32"] {
            for scales in ["tensor", "row"] {
                // Any M: the choice never depends on it.
                for m in [1, 3, 128, 4097] {
                    let params = format!(
                        "m={m},n=104,k=4096,b_dtype={b},out_dtype={out},scale_a={scales},bias=1"
                    );
                    let p = scaled_gemm(&params, a.parse().unwrap());
                    for policy in [
                        Policy::auto().batch_invariant(),
                        Policy::auto().deterministic(),
                    ] {
                        let plan = rt
                            .select(DeviceId::cuda(0), &p, &policy)
                            .unwrap_or_else(|e| panic!("{a} {params} {policy}: {e}"));
                        assert_eq!(plan.kernel_name(), BI, "{a} {params}");
                    }
                }
            }
        }
    }
    // Unconstrained, cuBLASLt (priority 10) is preferred where it takes the problem.
    let p = scaled_gemm("m=128,n=256,k=512", DType::F8E4M3);
    let plan = rt.select(DeviceId::cuda(0), &p, &Policy::auto()).unwrap();
    assert_eq!(plan.kernel_name(), LT);
}

#[test]
fn the_invariant_kernel_is_sm90a_only_and_names_what_it_does_not_take() {
    for sm in [Sm::new(8, 9), Sm::new(8, 0)] {
        let reasons = arch_reasons(sm, BI);
        assert!(
            reasons
                .iter()
                .any(|r| matches!(r, Reason::ArchTooOld { .. })),
            "{sm}: {reasons:?}"
        );
    }
    for sm in [Sm::new(10, 0), Sm::new(12, 0)] {
        let reasons = arch_reasons(sm, BI);
        assert!(
            reasons
                .iter()
                .any(|r| matches!(r, Reason::ArchTooNew { .. } | Reason::ArchFamily { .. })),
            "{sm}: {reasons:?}"
        );
    }
    let rt = runtime(Sm::new(9, 0));
    let block = scaled_gemm("m=128,n=256,k=512,scale_a=block", DType::F8E4M3);
    let reasons = why(&rt, &block, BI, identity);
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .all(|r| matches!(r, Reason::ShapeUnsupported { what }
            if what.contains("per block"))),
        "{reasons:?}"
    );
    // n = 31 bf16: out rows of 62 bytes. Refused at m = 1 too, where the problem's alignment
    // does not see the row stride: the verdict must not depend on M.
    for m in [1, 4] {
        let p = scaled_gemm(&format!("m={m},n=31,k=32"), DType::F8E4M3);
        let reasons = why(&rt, &p, BI, identity);
        assert!(
            reasons.iter().any(
                |r| matches!(r, Reason::ShapeUnsupported { what } if what.starts_with("n = 31"))
            ),
            "m = {m}: {reasons:?}"
        );
    }
    let odd_k = scaled_gemm("m=4,n=256,k=40,align=8", DType::F8E4M3);
    let reasons = why(&rt, &odd_k, BI, identity);
    assert!(
        reasons
            .iter()
            .any(|r| matches!(r, Reason::ShapeUnsupported { what } if what.starts_with("k = 40"))),
        "{reasons:?}"
    );
}
