//! CI's compile matrix: every kernel source compiles with NVRTC for every architecture in its
//! kernels' declared range, and every entry point the Rust side names is in the result; an
//! architecture outside a kernel's range is rejected by selection with `ArchTooOld` /
//! `ArchTooNew`.
//!
//! The NVRTC tests need `libnvrtc.so.13` (no GPU): `.ci/run` installs PyPI's
//! `nvidia-cuda-nvrtc==13.0.88` and runs them with `--include-ignored`; the GPU machine runs
//! them with the toolkit's NVRTC.

use kernelyard_core::{
    Arch, Capabilities, DeviceId, Kernel, OpKind, Params, Policy, Problem, Reason, Runtime,
    SelectError, Sm, Verdict, Version,
};
use kernelyard_cuda::module::{self, target_for};
use kernelyard_cuda::source::{self, KernelSource};
use kernelyard_cuda::CudaError;

/// The architectures CI compiles for (sm_90a and sm_100a with arch-specific instructions).
const MATRIX: &[Sm] = &[
    Sm::new(7, 5),
    Sm::new(8, 0),
    Sm::new(8, 6),
    Sm::new(8, 9),
    Sm::new(9, 0),
    Sm::new(10, 0),
    Sm::new(12, 0),
];

#[test]
#[ignore = "requires libnvrtc.so.13 (CI installs it from PyPI; see .ci/run)"]
fn every_source_compiles_for_every_arch_in_its_range() {
    let mut failures = Vec::new();
    let mut compiled = 0;
    assert!(
        !source::all().is_empty(),
        "no kernel sources are registered"
    );
    for entry in source::all() {
        for &sm in MATRIX {
            if !entry.targets(&Arch::Cuda { sm }) {
                continue;
            }
            let target = target_for(sm);
            match module::compile(entry.source, &target) {
                Ok(c) => {
                    compiled += 1;
                    let entries = c.entries();
                    for sym in entry.source.symbols {
                        if !entries.contains(sym) {
                            failures.push(format!(
                                "kernels/{} for {target}: no entry point `{sym}` (found {entries:?})",
                                entry.source.file
                            ));
                        }
                    }
                    if c.ptx.contains("ld.local") || c.ptx.contains("st.local") {
                        println!(
                            "note: kernels/{} for {target} uses local memory",
                            entry.source.file
                        );
                    }
                    println!(
                        "ok   kernels/{} {target}: {} entry points, cubin {} bytes",
                        entry.source.file,
                        entries.len(),
                        c.cubin.len()
                    );
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    println!(
        "{compiled} (source, arch) compiles, {} failures",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
#[ignore = "requires libnvrtc.so.13 (CI installs it from PyPI; see .ci/run)"]
fn a_compile_error_is_typed_and_carries_the_log() {
    static BAD: KernelSource = KernelSource {
        file: "bad.cu",
        code:
            "#include \"common.cuh\"\nextern \"C\" __global__ void bad() { undeclared_thing(); }\n",
        symbols: &["bad"],
    };
    match module::compile(&BAD, "sm_90a") {
        Err(CudaError::Compile {
            file,
            arch,
            nvrtc,
            log,
        }) => {
            assert_eq!(file, "bad.cu");
            assert_eq!(arch, "sm_90a");
            assert!(nvrtc >= Version::new(12, 0, 0), "{nvrtc}");
            assert!(log.contains("undeclared_thing"), "{log}");
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
}

/// The FP4 kernel's scale-tiling source: listed, and in the matrix for Blackwell only (its
/// kernel is sm_100+), so CI compiles it for sm_100a and sm_120 and for nothing older.
#[test]
fn the_fp4_source_is_in_the_matrix_for_blackwell_only() {
    let entry = source::all()
        .iter()
        .find(|e| e.source.file == "scaled_gemm_fp4.cu")
        .expect("kernels/scaled_gemm_fp4.cu is not a listed source");
    let targets: Vec<String> = MATRIX
        .iter()
        .filter(|&&sm| entry.targets(&Arch::Cuda { sm }))
        .map(|&sm| target_for(sm))
        .collect();
    assert_eq!(targets, ["sm_100a", "sm_120"]);
}

#[test]
#[ignore = "requires libnvrtc.so.13 (CI installs it from PyPI; see .ci/run)"]
fn the_fp4_source_compiles_for_sm100a_and_sm120() {
    let entry = source::all()
        .iter()
        .find(|e| e.source.file == "scaled_gemm_fp4.cu")
        .expect("listed");
    for target in ["sm_100a", "sm_120"] {
        let c = module::compile(entry.source, target).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            c.entries().contains(&"fp4_scales_to_tiles"),
            "{target}: {:?}",
            c.entries()
        );
    }
}

/// A simulated CUDA device of capability `sm`.
fn simulated(sm: Sm) -> Capabilities {
    kernelyard_cuda::device::simulated_caps(sm, 227 << 10)
}

/// The operator's example problem (its descriptor's `EXAMPLE`, in the example's dtype).
fn example(op: OpKind) -> Problem {
    let example = op.example();
    let params = Params::parse(op, example.params).expect("example params");
    Problem::from_params(op, &params, example.dtype).expect("example problem")
}

fn cuda_kernels() -> Vec<&'static dyn Kernel> {
    kernelyard_cuda::link();
    kernelyard_core::inventory::iter::<kernelyard_core::KernelEntry>
        .into_iter()
        .map(|e| e.0)
        .filter(|k| k.meta().backend == "cuda")
        .collect()
}

#[test]
fn archs_outside_a_kernels_range_are_rejected_by_selection() {
    let kernels = cuda_kernels();
    assert!(!kernels.is_empty());
    let mut archs = vec![Sm::new(6, 0), Sm::new(7, 0)];
    archs.extend_from_slice(MATRIX);
    let mut rejected = 0;
    for &sm in &archs {
        let rt = Runtime::builder()
            .no_probe()
            .simulated_device(simulated(sm))
            .build()
            .expect("runtime");
        for k in &kernels {
            let meta = k.meta();
            let mut arch_reasons = Vec::new();
            meta.arch.check(&Arch::Cuda { sm }, &mut arch_reasons);
            let problem = example(meta.op);
            let got = rt.select(DeviceId::cuda(0), &problem, &Policy::kernel(meta.name));
            if arch_reasons.is_empty() {
                continue;
            }
            rejected += 1;
            let reasons = match got {
                Err(SelectError::KernelRejected { report, .. }) => report
                    .candidates
                    .into_iter()
                    .find(|c| c.kernel == meta.name)
                    .and_then(|c| match c.verdict {
                        Verdict::Rejected { reasons } => Some(reasons),
                        _ => None,
                    })
                    .unwrap_or_default(),
                other => panic!(
                    "{} on sm_{}{}: expected a rejection, got {other:?}",
                    meta.name, sm.major, sm.minor
                ),
            };
            assert!(
                reasons.iter().any(|r| matches!(
                    r,
                    Reason::ArchTooOld { .. }
                        | Reason::ArchTooNew { .. }
                        | Reason::ArchFamily { .. }
                )),
                "{} on sm_{}{}: {reasons:?}",
                meta.name,
                sm.major,
                sm.minor
            );
        }
    }
    // Every kernel declares sm_75 as its floor, so sm_60 and sm_70 are rejected for each.
    assert!(rejected >= 2 * kernels.len(), "{rejected} rejections");
}
