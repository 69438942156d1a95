//! Selection among the GEMM kernels under the `batch_invariant` and `deterministic`
//! constraints, on simulated devices (no GPU needed): the registered kernels, as an
//! application links them, against devices of each architecture.
//!
//! - With either constraint, selection returns a batch-invariant kernel and never
//!   `cuda.gemm.cublaslt` (which declares neither property): `cuda.gemm.batch_invariant.sm90`
//!   (priority 6) on sm_90, in every layout and alignment (A transposed with an odd row
//!   stride included: it loads what TMA cannot copy itself, so its choice never depends on M),
//!   `cuda.gemm.batch_invariant` (priority 5) on other sm_80+ devices;
//!   `cuda.gemm.batch_invariant.sm90.splitk` (priority 4: split-K for small M, other bits)
//!   only when named (or pinned, or tuned), and then for every M.
//! - Without constraints cuBLASLt (priority 10) stays the choice.
//! - Where no invariant kernel can run (sm_75, or f32 A/B), selection fails with every
//!   candidate's reasons: cuBLASLt's "not batch-invariant", the invariant kernels' architecture
//!   or dtype reasons.
//!
//! The same properties are checked on the real device by `gemm_batch_invariance.rs`.

mod selection_support;

use std::collections::BTreeSet;

use kernelyard_core::{
    DType, DeviceId, Feature, Kernel, OpKind, Policy, Problem, Reason, Runtime, SelectError,
    SelectionReport, Sm, Verdict,
};
use selection_support::H100_OPTIN;

const BI: &str = "cuda.gemm.batch_invariant";
const BI_SM90: &str = "cuda.gemm.batch_invariant.sm90";
const BI_SM90_SPLITK: &str = "cuda.gemm.batch_invariant.sm90.splitk";
const CUBLASLT: &str = "cuda.gemm.cublaslt";

/// A runtime with one simulated H100-like device of capability `sm` (only the architecture
/// and its features differ between them) and no pins.
fn runtime(sm: Sm) -> Runtime {
    selection_support::runtime(sm, H100_OPTIN)
}

fn gemm(params: &str, dtype: DType) -> Problem {
    selection_support::problem(OpKind::Gemm, params, dtype)
}

/// The shapes of the issue (forward, decode, and the backward layouts), bf16 and f16, C in
/// A's dtype or f32.
fn problems() -> Vec<(String, Problem)> {
    let shapes = [
        "m=4096,n=4096,k=4096",
        "m=1,n=4096,k=4096,trans_b=1",
        "m=128,n=14336,k=4096,trans_b=1",
        "m=2048,n=4096,k=1536,trans_b=1",
        "m=4096,n=1536,k=2048,trans_a=1,c_dtype=f32",
        "m=17,n=1000,k=2049,trans_a=1,c_dtype=f32",
        "m=1,n=33,k=9,trans_a=1,trans_b=1",
        "m=7,n=1000,k=65",
        "batch=3,m=683,n=1000,k=4096,trans_b=1,broadcast=b",
    ];
    let mut out = Vec::new();
    for s in shapes {
        for dtype in [DType::BF16, DType::F16] {
            out.push((format!("{s} {dtype}"), gemm(s, dtype)));
        }
    }
    out
}

fn registered(name: &str) -> &'static dyn Kernel {
    kernelyard_cuda::link();
    kernelyard_core::inventory::iter::<kernelyard_core::KernelEntry>
        .into_iter()
        .map(|e| e.0)
        .find(|k| k.meta().name == name)
        .unwrap_or_else(|| panic!("{name} is not registered"))
}

/// The verdict on `kernel` in `report`.
fn verdict<'r>(report: &'r SelectionReport, kernel: &str) -> &'r Verdict {
    &report
        .candidates
        .iter()
        .find(|c| c.kernel == kernel)
        .unwrap_or_else(|| panic!("{kernel} is not in the report:\n{report}"))
        .verdict
}

/// The reasons `kernel` was rejected for in `report` (panics if it was not rejected).
fn reasons<'r>(report: &'r SelectionReport, kernel: &str) -> &'r [Reason] {
    match verdict(report, kernel) {
        Verdict::Rejected { reasons } => reasons,
        other => panic!("{kernel}: expected a rejection, got {other:?}:\n{report}"),
    }
}

fn is_arch(r: &Reason) -> bool {
    matches!(
        r,
        Reason::ArchTooOld { .. } | Reason::ArchTooNew { .. } | Reason::ArchFamily { .. }
    )
}

#[test]
fn the_invariant_kernels_declare_what_selection_relies_on() {
    for (name, priority) in [(BI_SM90_SPLITK, 4), (BI, 5), (BI_SM90, 6)] {
        let m = registered(name).meta();
        assert_eq!(m.op, OpKind::Gemm, "{name}");
        assert_eq!(m.backend, "cuda", "{name}");
        assert!(m.deterministic && m.batch_invariant, "{name}");
        assert_eq!(m.priority, priority, "{name}");
        let dtypes: BTreeSet<DType> = m.dtypes.iter().copied().collect();
        assert_eq!(
            dtypes,
            BTreeSet::from([DType::F16, DType::BF16]),
            "{name}: f16/bf16 A and B only"
        );
    }
    let lt = registered(CUBLASLT).meta();
    assert!(!lt.deterministic && !lt.batch_invariant);
    assert!(lt.priority > registered(BI_SM90).meta().priority);
    // The wgmma/TMA kernels are for sm_90 alone, with arch-specific instructions (sm_90a).
    for name in [BI_SM90, BI_SM90_SPLITK] {
        match registered(name).meta().arch {
            kernelyard_core::ArchReq::Cuda {
                min,
                max,
                arch_specific,
            } => {
                assert_eq!(min, Sm::new(9, 0));
                assert_eq!(max, Some(Sm::new(9, 0)));
                assert!(arch_specific);
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    match registered(BI).meta().arch {
        kernelyard_core::ArchReq::Cuda { min, .. } => assert_eq!(min, Sm::new(8, 0)),
        other => panic!("{BI}: {other:?}"),
    }
}

#[test]
fn on_sm90_the_constraints_select_the_sm90_kernel_never_cublaslt() {
    let rt = runtime(Sm::new(9, 0));
    assert!(rt
        .capabilities(DeviceId::cuda(0))
        .unwrap()
        .has(Feature::Wgmma));
    for (what, p) in problems() {
        for policy in [
            Policy::auto().batch_invariant(),
            Policy::auto().deterministic(),
        ] {
            let plan = rt
                .select(DeviceId::cuda(0), &p, &policy)
                .unwrap_or_else(|e| panic!("{what}, {policy}: {e}"));
            let report = plan.report();
            assert_eq!(plan.kernel_name(), BI_SM90, "{what}, {policy}:\n{report}");
            assert_eq!(verdict(report, BI), &Verdict::Runnable, "{what}:\n{report}");
            let lt = reasons(report, CUBLASLT);
            assert!(lt.contains(&Reason::NotDeterministic), "{what}: {lt:?}");
            assert_eq!(
                lt.contains(&Reason::NotBatchInvariant),
                policy.batch_invariant,
                "{what}, {policy}: {lt:?}"
            );
        }
    }
}

#[test]
fn without_constraints_cublaslt_stays_the_choice() {
    for sm in [Sm::new(8, 0), Sm::new(9, 0), Sm::new(10, 0)] {
        let rt = runtime(sm);
        for (what, p) in problems() {
            let plan = rt
                .select(DeviceId::cuda(0), &p, &Policy::auto())
                .unwrap_or_else(|e| panic!("{sm} {what}: {e}"));
            assert_eq!(
                plan.kernel_name(),
                CUBLASLT,
                "{sm} {what}:\n{}",
                plan.report()
            );
        }
    }
}

#[test]
fn off_sm90_the_constraints_select_the_mma_kernel() {
    for sm in [
        Sm::new(8, 0),
        Sm::new(8, 6),
        Sm::new(8, 9),
        Sm::new(10, 0),
        Sm::new(12, 0),
    ] {
        let rt = runtime(sm);
        for (what, p) in problems() {
            for policy in [
                Policy::auto().batch_invariant(),
                Policy::auto().deterministic(),
            ] {
                let plan = rt
                    .select(DeviceId::cuda(0), &p, &policy)
                    .unwrap_or_else(|e| panic!("{sm} {what}, {policy}: {e}"));
                let report = plan.report();
                assert_eq!(plan.kernel_name(), BI, "{sm} {what}, {policy}:\n{report}");
                let sm90 = reasons(report, BI_SM90);
                assert!(sm90.iter().any(is_arch), "{sm} {what}: {sm90:?}");
                assert!(reasons(report, CUBLASLT).contains(&Reason::NotDeterministic));
            }
        }
    }
}

#[test]
fn the_split_k_kernel_runs_when_named_for_every_m_and_layout() {
    let rt = runtime(Sm::new(9, 0));
    for m in [1, 17, 128, 1000, 4096] {
        for layout in ["", ",trans_b=1", ",trans_a=1"] {
            let p = gemm(&format!("m={m},n=4096,k=4096{layout}"), DType::BF16);
            let plan = rt
                .select(DeviceId::cuda(0), &p, &Policy::kernel(BI_SM90_SPLITK))
                .unwrap_or_else(|e| panic!("m={m}{layout}: {e}"));
            assert_eq!(plan.kernel_name(), BI_SM90_SPLITK);
        }
    }
}

#[test]
fn named_invariant_kernels_outside_their_range_are_rejected_not_replaced() {
    let p = gemm("m=2048,n=1536,k=4096", DType::BF16);
    for (sm, name) in [
        (Sm::new(8, 0), BI_SM90),
        (Sm::new(10, 0), BI_SM90),
        (Sm::new(8, 9), BI_SM90_SPLITK),
        (Sm::new(12, 0), BI_SM90_SPLITK),
        (Sm::new(7, 5), BI),
    ] {
        match runtime(sm).select(DeviceId::cuda(0), &p, &Policy::kernel(name)) {
            Err(SelectError::KernelRejected { name: got, report }) => {
                assert_eq!(got, name);
                assert!(
                    reasons(&report, name).iter().any(is_arch),
                    "{sm}:\n{report}"
                );
            }
            other => panic!("{name} on {sm}: expected a rejection, got {other:?}"),
        }
    }
}

#[test]
fn without_an_invariant_kernel_for_the_device_selection_fails_with_the_reasons() {
    let rt = runtime(Sm::new(7, 5));
    for dtype in [DType::BF16, DType::F16] {
        let p = gemm("m=128,n=4096,k=4096", dtype);
        // Unconstrained, cuBLASLt can run f16 on sm_75 (bf16 needs sm_80).
        assert_eq!(
            rt.select(DeviceId::cuda(0), &p, &Policy::auto())
                .map(|plan| plan.kernel_name())
                .ok(),
            (dtype == DType::F16).then_some(CUBLASLT),
            "{dtype}"
        );
        let e = rt
            .select(DeviceId::cuda(0), &p, &Policy::auto().batch_invariant())
            .err()
            .unwrap_or_else(|| panic!("{dtype}: an invariant kernel was selected on sm_75"));
        let SelectError::AllRejected { report } = &e else {
            panic!("{dtype}: expected AllRejected, got {e:?}")
        };
        assert!(reasons(report, CUBLASLT).contains(&Reason::NotBatchInvariant));
        for k in [BI, BI_SM90] {
            let r = reasons(report, k);
            assert!(
                r.iter().any(|r| matches!(r, Reason::ArchTooOld { .. })),
                "{k}: {r:?}"
            );
        }
        // The error a caller prints names every reason.
        let text = e.to_string();
        for needle in [
            CUBLASLT,
            BI,
            BI_SM90,
            "the kernel is not batch-invariant",
            "is too old",
        ] {
            assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
        }
    }
}

#[test]
fn an_f32_problem_has_no_invariant_kernel() {
    let rt = runtime(Sm::new(9, 0));
    let p = gemm("m=2048,n=1536,k=4096", DType::F32);
    assert_eq!(
        rt.select(DeviceId::cuda(0), &p, &Policy::auto())
            .expect("cuBLASLt runs f32")
            .kernel_name(),
        CUBLASLT
    );
    for policy in [
        Policy::auto().batch_invariant(),
        Policy::auto().deterministic(),
    ] {
        let e = rt
            .select(DeviceId::cuda(0), &p, &policy)
            .err()
            .unwrap_or_else(|| panic!("{policy}: a kernel was selected for f32"));
        let SelectError::AllRejected { report } = &e else {
            panic!("{policy}: expected AllRejected, got {e:?}")
        };
        assert!(reasons(report, CUBLASLT).contains(&Reason::NotDeterministic));
        for k in [BI, BI_SM90] {
            let r = reasons(report, k);
            assert!(
                r.iter().any(|r| matches!(
                    r,
                    Reason::DtypeUnsupported {
                        dtype: DType::F32,
                        ..
                    }
                )),
                "{k}: {r:?}"
            );
        }
        let text = e.to_string();
        assert!(text.contains("dtype f32 is unsupported"), "{text}");
    }
}
