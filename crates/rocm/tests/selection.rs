//! Selection of the ROCm kernels on simulated AMD devices (no GPU needed): each kernel's gfx
//! range and wavefront assumption is enforced with typed reasons, the GEMM's choice between the
//! MFMA and the portable kernel depends on the architecture and dtype only, and a build without
//! the `hip` feature reports every ROCm kernel as not compiled in.

use kernelyard_core::{
    ArchReq, ArchVersion, DType, DeviceId, Feature, Gfx, Kernel, OpKind, Params, Policy, Problem,
    Reason, Registry, Runtime,
};
use kernelyard_rocm::device::simulated_caps;
use kernelyard_rocm::ops;

const GFX803: Gfx = Gfx::new(8, 0, 3);
const GFX906: Gfx = Gfx::new(9, 0, 6);
const GFX908: Gfx = Gfx::new(9, 0, 8);
const GFX90A: Gfx = Gfx::new(9, 0, 0xa);
const GFX942: Gfx = Gfx::new(9, 4, 2);
const GFX1030: Gfx = Gfx::new(10, 3, 0);
const GFX1100: Gfx = Gfx::new(11, 0, 0);

fn problem(op: OpKind, params: &str, dtype: DType) -> Problem {
    let params = Params::parse(op, params).expect("params");
    Problem::from_params(op, &params, dtype).expect("problem")
}

/// One problem per op with a ROCm kernel, small and contiguous.
fn problems(dtype: DType) -> Vec<(OpKind, Problem)> {
    [
        (OpKind::RmsNorm, "rows=4,hidden=4096"),
        (OpKind::Softmax, "rows=4,cols=1000"),
        (OpKind::LogSoftmax, "rows=4,cols=1000"),
        (OpKind::TokenLogprobs, "tokens=4,vocab=32000"),
        (OpKind::Rope, "tokens=4,heads=8,head_dim=128"),
        (OpKind::SiluMul, "rows=4,d=1024"),
        (
            OpKind::SelectiveStateUpdate,
            "batch=4,heads=8,head_dim=64,state_dim=128",
        ),
        (OpKind::Gemm, "m=128,n=256,k=64"),
    ]
    .into_iter()
    .map(|(op, p)| (op, problem(op, p, dtype)))
    .collect()
}

fn reasons(kernel: &dyn Kernel, gfx: Gfx, wavefront: u32, p: &Problem) -> Vec<Reason> {
    kernel
        .check(&simulated_caps(gfx, wavefront), p)
        .err()
        .unwrap_or_default()
}

fn kernel(name: &str) -> &'static dyn Kernel {
    ops::kernels()
        .into_iter()
        .find(|k| k.meta().name == name)
        .unwrap_or_else(|| panic!("{name} is not registered"))
}

#[test]
fn every_kernel_declares_its_range_and_the_backend_registers_eight_ops() {
    let names: Vec<&str> = ops::kernels().iter().map(|k| k.meta().name).collect();
    assert_eq!(
        names,
        [
            "rocm.rms_norm",
            "rocm.softmax",
            "rocm.log_softmax",
            "rocm.token_logprobs",
            "rocm.rope",
            "rocm.silu_mul",
            "rocm.selective_state_update",
            "rocm.gemm.batch_invariant",
            "rocm.gemm.batch_invariant.mfma",
        ]
    );
    for k in ops::kernels() {
        let m = k.meta();
        assert!(
            matches!(m.arch, ArchReq::Rocm { .. }),
            "{}: {:?}",
            m.name,
            m.arch
        );
        assert!(m.deterministic && m.batch_invariant, "{}", m.name);
        assert_eq!(m.backend, "rocm");
    }
    let mfma = kernel("rocm.gemm.batch_invariant.mfma").meta();
    assert_eq!(mfma.arch.to_string(), "gfx908..=gfx90a (wave64)");
    assert_eq!(
        kernel("rocm.gemm.batch_invariant").meta().arch.to_string(),
        "gfx900 or newer"
    );
}

#[test]
fn every_registered_rocm_kernel_is_in_a_source_entry() {
    kernelyard_rocm::link();
    let mut registered: Vec<&str> = Registry::global()
        .expect("registry")
        .all()
        .iter()
        .map(|k| k.meta())
        .filter(|m| m.backend == "rocm")
        .map(|m| m.name)
        .collect();
    let mut listed: Vec<&str> = ops::kernels().iter().map(|k| k.meta().name).collect();
    registered.sort_unstable();
    listed.sort_unstable();
    assert_eq!(registered, listed);
}

#[test]
fn silu_mul_has_the_rocm_defaults() {
    let m = kernel("rocm.silu_mul").meta();
    assert_eq!(m.op, OpKind::SiluMul);
    assert_eq!(m.arch.to_string(), "gfx900 or newer");
    assert!(matches!(
        m.arch,
        ArchReq::Rocm {
            wavefront: None,
            ..
        }
    ));
    assert_eq!(m.dtypes, [DType::F32, DType::F16, DType::BF16]);
    assert!(m.features.is_empty());
    assert_eq!((m.priority, m.version, m.align), (10, 1, 1));
    assert!(m.deterministic && m.batch_invariant);
    assert_eq!(m.source, "kernelyard_rocm::ops::silu_mul");
}

#[test]
fn selective_state_update_has_the_rocm_defaults() {
    let m = kernel("rocm.selective_state_update").meta();
    assert_eq!(m.op, OpKind::SelectiveStateUpdate);
    assert_eq!(m.arch.to_string(), "gfx900 or newer");
    assert!(matches!(
        m.arch,
        ArchReq::Rocm {
            wavefront: None,
            ..
        }
    ));
    assert_eq!(m.dtypes, [DType::F32, DType::F16, DType::BF16]);
    assert!(m.features.is_empty());
    assert_eq!((m.priority, m.version, m.align), (10, 1, 1));
    assert!(m.deterministic && m.batch_invariant);
    assert_eq!(m.source, "kernelyard_rocm::ops::selective_state_update");
}

#[test]
fn architectures_older_than_gfx900_are_rejected_by_every_kernel() {
    for (op, p) in problems(DType::F16) {
        for k in ops::kernels().into_iter().filter(|k| k.meta().op == op) {
            let r = reasons(k, GFX803, 64, &p);
            assert!(
                r.iter().any(|r| matches!(r, Reason::ArchTooOld { have, .. }
                        if *have == ArchVersion::Gfx(GFX803))),
                "{}: {r:?}",
                k.meta().name
            );
        }
    }
}

#[test]
fn the_mfma_kernel_rejects_archs_and_wavefronts_outside_its_range() {
    let mfma = kernel("rocm.gemm.batch_invariant.mfma");
    let p = problem(OpKind::Gemm, "m=128,n=256,k=64", DType::BF16);
    // Inside: gfx908 and gfx90a at wave64 raise no architecture reason.
    for gfx in [GFX908, GFX90A] {
        let r = reasons(mfma, gfx, 64, &p);
        assert!(
            !r.iter().any(|r| matches!(
                r,
                Reason::ArchTooOld { .. }
                    | Reason::ArchTooNew { .. }
                    | Reason::Wavefront { .. }
                    | Reason::MissingFeature { .. }
            )),
            "{gfx}: {r:?}"
        );
    }
    // Older: gfx906 (Vega 20, no MFMA).
    let r = reasons(mfma, GFX906, 64, &p);
    assert!(
        r.iter()
            .any(|r| matches!(r, Reason::ArchTooOld { have, need }
            if *have == ArchVersion::Gfx(GFX906) && *need == ops::MFMA_GFX)),
        "{r:?}"
    );
    assert!(r.contains(&Reason::MissingFeature {
        feature: Feature::TensorCores
    }));
    // Newer: gfx942 (CDNA3: other MFMA encodings), gfx1030 and gfx1100 (RDNA, wave32).
    for gfx in [GFX942, GFX1030, GFX1100] {
        let wave = if gfx.major >= 10 { 32 } else { 64 };
        let r = reasons(mfma, gfx, wave, &p);
        assert!(
            r.iter()
                .any(|r| matches!(r, Reason::ArchTooNew { have, max }
                    if *have == ArchVersion::Gfx(gfx) && *max == ArchVersion::Gfx(GFX90A))),
            "{gfx}: {r:?}"
        );
        if wave == 32 {
            assert!(
                r.contains(&Reason::Wavefront { have: 32, need: 64 }),
                "{gfx}: {r:?}"
            );
        }
    }
    // f32 is not an MFMA dtype of this kernel.
    let r = reasons(
        mfma,
        GFX90A,
        64,
        &problem(OpKind::Gemm, "m=8,n=8,k=8", DType::F32),
    );
    assert!(
        r.iter()
            .any(|r| matches!(r, Reason::DtypeUnsupported { .. })),
        "{r:?}"
    );
}

#[cfg(not(feature = "hip"))]
#[test]
fn without_the_hip_feature_every_kernel_says_not_compiled_in() {
    for (op, p) in problems(DType::BF16) {
        for k in ops::kernels().into_iter().filter(|k| k.meta().op == op) {
            for (gfx, wave) in [(GFX90A, 64), (GFX1030, 32)] {
                let r = reasons(k, gfx, wave, &p);
                assert!(
                    r.contains(&Reason::NotCompiledIn {
                        backend: "rocm",
                        feature: "rocm"
                    }),
                    "{} on {gfx}: {r:?}",
                    k.meta().name
                );
                let text = r
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                assert!(text.contains("--features rocm"), "{text}");
            }
        }
    }
    // Selection on a simulated AMD device then fails with that reason for every candidate.
    kernelyard_rocm::link();
    let rt = Runtime::builder()
        .no_probe()
        .pins("")
        .simulated_device(simulated_caps(GFX90A, 64))
        .build()
        .expect("runtime");
    let p = problem(OpKind::Softmax, "rows=4,cols=1000", DType::F16);
    let e = rt
        .select(DeviceId::rocm(0), &p, &Policy::backend("rocm"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not compiled in"), "{e}");
}

#[cfg(feature = "hip")]
mod compiled_in {
    use super::*;

    fn runtime(gfx: Gfx, wavefront: u32) -> Runtime {
        kernelyard_rocm::link();
        Runtime::builder()
            .no_probe()
            .pins("")
            .simulated_device(simulated_caps(gfx, wavefront))
            .build()
            .expect("runtime")
    }

    #[test]
    fn every_op_selects_its_rocm_kernel_on_cdna_and_rdna() {
        for (gfx, wave) in [
            (GFX908, 64),
            (GFX90A, 64),
            (GFX942, 64),
            (GFX1030, 32),
            (GFX1100, 32),
        ] {
            let rt = runtime(gfx, wave);
            for dtype in [DType::F32, DType::F16, DType::BF16] {
                for (op, p) in problems(dtype) {
                    let plan = rt
                        .select(DeviceId::rocm(0), &p, &Policy::backend("rocm"))
                        .unwrap_or_else(|e| panic!("{gfx} {op} {dtype}: {e}"));
                    let want = match op {
                        OpKind::Gemm if gfx <= GFX90A && gfx >= GFX908 && dtype != DType::F32 => {
                            "rocm.gemm.batch_invariant.mfma"
                        }
                        OpKind::Gemm => "rocm.gemm.batch_invariant",
                        _ => kernel_for(op),
                    };
                    assert_eq!(plan.kernel_name(), want, "{gfx} {op} {dtype}");
                }
            }
        }
    }

    fn kernel_for(op: OpKind) -> &'static str {
        ops::kernels()
            .into_iter()
            .find(|k| k.meta().op == op)
            .map(|k| k.meta().name)
            .expect("a kernel per op")
    }

    #[test]
    fn the_gemm_choice_does_not_depend_on_m() {
        let rt = runtime(GFX90A, 64);
        for dtype in [DType::F16, DType::BF16, DType::F32] {
            let mut chosen = Vec::new();
            for m in [1, 2, 7, 128, 129, 1000, 4096] {
                let p = problem(OpKind::Gemm, &format!("m={m},n=4096,k=4096"), dtype);
                let plan = rt
                    .select(DeviceId::rocm(0), &p, &Policy::auto().batch_invariant())
                    .expect("select");
                chosen.push(plan.kernel_name());
            }
            chosen.dedup();
            assert_eq!(chosen.len(), 1, "{dtype}: {chosen:?}");
        }
    }
}
