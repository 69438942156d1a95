//! The CUDA kernels, one file per operator (mirroring `kernelyard_core::ops`), each with its
//! kernel static(s) and, for CUDA-only NVRTC kernels, its source of `kernels/` (the sources
//! shared with the ROCm backend are `kernelyard_kernels`').
//!
//! Every kernel is a `static` [`KernelDef`](kernelyard_core::KernelDef) of its operator,
//! registered with [`kernelyard_core::register!`]: metadata (built by `nvrtc_meta` or
//! `tensor_core_meta`, or `KernelMeta::new` for cuBLASLt), a typed problem check and a typed
//! launch that gets the stream and the device's capabilities from its
//! [`LaunchCtx`]. Core matches the catalog's `Problem`/`Args` to the
//! operator's types before calling them.

use kernelyard_core::{
    ArchReq, DType, DeviceKind, Error, Feature, KernelMeta, LaunchCtx, Listed, Sm,
};

use crate::source::SourceEntry;

pub mod attention;
pub mod attention_decode;
pub mod attention_decode_mma;
pub mod attention_sm90;
pub mod gemm;
pub mod gemm_bi;
pub mod gemm_bi_sm90;
pub mod log_softmax;
pub mod rms_norm;
pub mod rope;
pub mod scaled_gemm;
pub mod scaled_gemm_fp4;
pub mod scaled_gemm_sm90;
pub mod selective_state_update;
pub mod silu_mul;
pub mod softmax;
pub mod token_logprobs;

/// Every NVRTC kernel source, with the kernels that launch it: the backend's own, and those
/// shared with the ROCm backend (in `kernelyard_kernels`).
pub(crate) static SOURCES: &[SourceEntry] = &[
    SourceEntry {
        source: &attention::SOURCE,
        kernels: &[&attention::ATTENTION],
    },
    SourceEntry {
        source: &attention_sm90::SOURCE,
        kernels: &[&attention_sm90::ATTENTION_SM90],
    },
    SourceEntry {
        source: &kernelyard_kernels::attention_decode::SOURCE,
        kernels: &[&attention_decode::ATTENTION_DECODE],
    },
    SourceEntry {
        source: &attention_decode_mma::SOURCE,
        kernels: &[&attention_decode_mma::ATTENTION_DECODE_MMA],
    },
    SourceEntry {
        source: &kernelyard_kernels::rms_norm::SOURCE,
        kernels: &[&rms_norm::RMS_NORM],
    },
    SourceEntry {
        source: &kernelyard_kernels::softmax::SOURCE,
        kernels: &[&softmax::SOFTMAX],
    },
    SourceEntry {
        source: &kernelyard_kernels::log_softmax::SOURCE,
        kernels: &[&log_softmax::LOG_SOFTMAX],
    },
    SourceEntry {
        source: &kernelyard_kernels::token_logprobs::SOURCE,
        kernels: &[&token_logprobs::TOKEN_LOGPROBS],
    },
    SourceEntry {
        source: &kernelyard_kernels::rope::SOURCE,
        kernels: &[&rope::ROPE],
    },
    SourceEntry {
        source: &kernelyard_kernels::silu_mul::SOURCE,
        kernels: &[&silu_mul::SILU_MUL],
    },
    SourceEntry {
        source: &kernelyard_kernels::selective_state_update::SOURCE,
        kernels: &[&selective_state_update::SELECTIVE_STATE_UPDATE],
    },
    SourceEntry {
        source: &gemm_bi::SOURCE,
        kernels: &[&gemm_bi::GEMM_BATCH_INVARIANT],
    },
    // The sm90 GEMM: one module per entry point (`gemm_bi_sm90::MODULES`).
    gemm_bi_sm90::source_entry(0),
    gemm_bi_sm90::source_entry(1),
    gemm_bi_sm90::source_entry(2),
    gemm_bi_sm90::source_entry(3),
    gemm_bi_sm90::source_entry(4),
    gemm_bi_sm90::source_entry(5),
    gemm_bi_sm90::source_entry(6),
    gemm_bi_sm90::source_entry(7),
    gemm_bi_sm90::source_entry(8),
    gemm_bi_sm90::source_entry(9),
    gemm_bi_sm90::source_entry(10),
    gemm_bi_sm90::source_entry(11),
    gemm_bi_sm90::source_entry(12),
    gemm_bi_sm90::source_entry(13),
    gemm_bi_sm90::source_entry(14),
    gemm_bi_sm90::source_entry(15),
    gemm_bi_sm90::source_entry(16),
    // Its FP8 instantiation (`cuda.scaled_gemm.batch_invariant.sm90`), one module per entry
    // point and tile width (`gemm_bi_sm90::SCALED_MODULES`).
    scaled_gemm_sm90::source_entry(0),
    scaled_gemm_sm90::source_entry(1),
    scaled_gemm_sm90::source_entry(2),
    scaled_gemm_sm90::source_entry(3),
    scaled_gemm_sm90::source_entry(4),
    scaled_gemm_sm90::source_entry(5),
    scaled_gemm_sm90::source_entry(6),
    scaled_gemm_sm90::source_entry(7),
    scaled_gemm_sm90::source_entry(8),
    scaled_gemm_sm90::source_entry(9),
    scaled_gemm_sm90::source_entry(10),
    scaled_gemm_sm90::source_entry(11),
    scaled_gemm_sm90::source_entry(12),
    scaled_gemm_sm90::source_entry(13),
    scaled_gemm_sm90::source_entry(14),
    scaled_gemm_sm90::source_entry(15),
    scaled_gemm_sm90::source_entry(16),
    scaled_gemm_sm90::source_entry(17),
    scaled_gemm_sm90::source_entry(18),
    scaled_gemm_sm90::source_entry(19),
    scaled_gemm_sm90::source_entry(20),
    scaled_gemm_sm90::source_entry(21),
    scaled_gemm_sm90::source_entry(22),
    scaled_gemm_sm90::source_entry(23),
    // The FP4 kernel's scale-tiling kernel (the matmul is cuBLASLt's).
    SourceEntry {
        source: &scaled_gemm_fp4::SOURCE,
        kernels: &[&scaled_gemm_fp4::SCALED_GEMM_FP4_CUBLASLT],
    },
];

/// The preparation of every NVRTC kernel ([`Plan::prepare`](kernelyard_core::Plan::prepare)):
/// compiles (or reads from the disk cache) and loads each source in [`SOURCES`] that lists the
/// kernel, on the stream's device, and looks up every entry point, so no launch of the kernel
/// loads anything. (Dynamic shared-memory limits are raised at launch: `cuFuncSetAttribute` is
/// allowed in a capture.)
pub(crate) fn prepare_nvrtc<O: Listed>(
    meta: &KernelMeta,
    ctx: &LaunchCtx<'_>,
    _: &O::Problem,
) -> Result<(), Error> {
    let device = ctx.stream.device();
    let mut found = false;
    for entry in SOURCES
        .iter()
        .filter(|e| e.kernels.iter().any(|k| k.meta().name == meta.name))
    {
        crate::device::load_symbols(device, entry.source)?;
        found = true;
    }
    if !found {
        return Err(crate::CudaError::Misuse {
            what: format!(
                "kernel `{}` has no source in the backend's SOURCES table",
                meta.name
            ),
        }
        .into());
    }
    Ok(())
}

/// The architectures of every kernel but the tensor-core ones: sm_75 (Turing) and newer.
pub(crate) const SM75_AND_NEWER: ArchReq = ArchReq::Cuda {
    min: Sm::new(7, 5),
    max: None,
    arch_specific: false,
};

/// The metadata every NVRTC kernel of this backend shares: [`KernelMeta::new`]'s defaults
/// (f32/f16/bf16, deterministic and batch-invariant, element alignment, priority 10,
/// version 1) for the CUDA backend on sm_75 and newer, with its name, declaration site and
/// summary. Adjust with `KernelMeta`'s builders.
pub(crate) const fn nvrtc_meta<O: Listed>(
    name: &'static str,
    source: &'static str,
    summary: &'static str,
) -> KernelMeta {
    KernelMeta::new::<O>(
        name,
        crate::BACKEND,
        DeviceKind::Cuda,
        SM75_AND_NEWER,
        source,
        summary,
    )
}

/// Which tensor-core instructions a kernel uses, and so its arch range and features.
#[derive(Clone, Copy)]
pub(crate) enum TensorCores {
    /// `mma.sync`: sm_80 and newer.
    MmaSync,
    /// TMA + `wgmma`: sm_90a only (arch-specific).
    Hopper,
}

/// The metadata of a tensor-core kernel: deterministic and batch-invariant (as
/// [`nvrtc_meta`]'s) with f16/bf16 only, the arch range and features of `cores`, `align` and
/// `priority`.
pub(crate) const fn tensor_core_meta<O: Listed>(
    name: &'static str,
    source: &'static str,
    summary: &'static str,
    cores: TensorCores,
    align: usize,
    priority: i32,
) -> KernelMeta {
    let (arch, features): (ArchReq, &'static [Feature]) = match cores {
        TensorCores::MmaSync => (
            ArchReq::Cuda {
                min: Sm::new(8, 0),
                max: None,
                arch_specific: false,
            },
            &[Feature::TensorCores],
        ),
        TensorCores::Hopper => (
            ArchReq::Cuda {
                min: Sm::new(9, 0),
                max: Some(Sm::new(9, 0)),
                arch_specific: true,
            },
            &[Feature::Wgmma, Feature::Tma],
        ),
    };
    KernelMeta::new::<O>(
        name,
        crate::BACKEND,
        DeviceKind::Cuda,
        arch,
        source,
        summary,
    )
    .dtypes(&[DType::F16, DType::BF16])
    .features(features)
    .align(align)
    .priority(priority)
}

#[cfg(test)]
mod tests {
    use kernelyard_core::{Kernel, OpKind};

    use super::*;

    /// What a kernel declares besides its name and op.
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Declared {
        arch: ArchReq,
        features: &'static [Feature],
        dtypes: &'static [DType],
        align: usize,
        priority: i32,
        deterministic: bool,
    }

    const NVRTC: Declared = Declared {
        arch: SM75_AND_NEWER,
        features: &[],
        dtypes: DType::FLOATS,
        align: 1,
        priority: 10,
        deterministic: true,
    };

    const MMA_SYNC: Declared = Declared {
        arch: ArchReq::Cuda {
            min: Sm::new(8, 0),
            max: None,
            arch_specific: false,
        },
        features: &[Feature::TensorCores],
        dtypes: &[DType::F16, DType::BF16],
        align: 1,
        priority: 10,
        deterministic: true,
    };

    const HOPPER: Declared = Declared {
        arch: ArchReq::Cuda {
            min: Sm::new(9, 0),
            max: Some(Sm::new(9, 0)),
            arch_specific: true,
        },
        features: &[Feature::Wgmma, Feature::Tma],
        align: 16,
        ..MMA_SYNC
    };

    /// What each kernel declares (selection depends on it; a change is a behaviour change).
    #[test]
    fn every_kernel_declares_what_it_always_has() {
        let want: [(&dyn Kernel, &str, OpKind, Declared); 18] = [
            (
                &gemm::GEMM_CUBLASLT,
                "cuda.gemm.cublaslt",
                OpKind::Gemm,
                Declared {
                    deterministic: false,
                    ..NVRTC
                },
            ),
            (
                &gemm_bi::GEMM_BATCH_INVARIANT,
                "cuda.gemm.batch_invariant",
                OpKind::Gemm,
                Declared {
                    priority: 5,
                    ..MMA_SYNC
                },
            ),
            (
                &gemm_bi_sm90::GEMM_BATCH_INVARIANT_SM90,
                "cuda.gemm.batch_invariant.sm90",
                OpKind::Gemm,
                Declared {
                    priority: 6,
                    align: 2,
                    ..HOPPER
                },
            ),
            (
                &gemm_bi_sm90::GEMM_BATCH_INVARIANT_SM90_SPLITK,
                "cuda.gemm.batch_invariant.sm90.splitk",
                OpKind::Gemm,
                Declared {
                    priority: 4,
                    align: 2,
                    ..HOPPER
                },
            ),
            (
                &attention::ATTENTION,
                "cuda.attention",
                OpKind::Attention,
                Declared {
                    align: 16,
                    ..MMA_SYNC
                },
            ),
            (
                &attention_sm90::ATTENTION_SM90,
                "cuda.attention.sm90",
                OpKind::Attention,
                Declared {
                    priority: 11,
                    ..HOPPER
                },
            ),
            (
                &attention_decode::ATTENTION_DECODE,
                "cuda.attention.decode",
                OpKind::Attention,
                Declared {
                    align: 16,
                    priority: 30,
                    ..NVRTC
                },
            ),
            (
                &attention_decode_mma::ATTENTION_DECODE_MMA,
                "cuda.attention.decode.mma",
                OpKind::Attention,
                Declared {
                    align: 16,
                    priority: 31,
                    ..MMA_SYNC
                },
            ),
            (&rms_norm::RMS_NORM, "cuda.rms_norm", OpKind::RmsNorm, NVRTC),
            (&softmax::SOFTMAX, "cuda.softmax", OpKind::Softmax, NVRTC),
            (
                &log_softmax::LOG_SOFTMAX,
                "cuda.log_softmax",
                OpKind::LogSoftmax,
                NVRTC,
            ),
            (
                &token_logprobs::TOKEN_LOGPROBS,
                "cuda.token_logprobs",
                OpKind::TokenLogprobs,
                NVRTC,
            ),
            (&rope::ROPE, "cuda.rope", OpKind::Rope, NVRTC),
            (&silu_mul::SILU_MUL, "cuda.silu_mul", OpKind::SiluMul, NVRTC),
            (
                &selective_state_update::SELECTIVE_STATE_UPDATE,
                "cuda.selective_state_update",
                OpKind::SelectiveStateUpdate,
                NVRTC,
            ),
            (
                &scaled_gemm::SCALED_GEMM_CUBLASLT,
                "cuda.scaled_gemm.cublaslt",
                OpKind::ScaledGemm,
                Declared {
                    arch: ArchReq::Cuda {
                        min: Sm::new(8, 9),
                        max: None,
                        arch_specific: false,
                    },
                    features: &[Feature::Fp8],
                    dtypes: DType::FP8,
                    align: 16,
                    priority: 10,
                    deterministic: false,
                },
            ),
            (
                &scaled_gemm_fp4::SCALED_GEMM_FP4_CUBLASLT,
                "cuda.scaled_gemm.fp4.cublaslt",
                OpKind::ScaledGemm,
                Declared {
                    arch: ArchReq::Cuda {
                        min: Sm::new(10, 0),
                        max: None,
                        arch_specific: false,
                    },
                    features: &[],
                    dtypes: DType::FP4,
                    align: 16,
                    priority: 10,
                    deterministic: false,
                },
            ),
            (
                &scaled_gemm_sm90::SCALED_GEMM_BATCH_INVARIANT_SM90,
                "cuda.scaled_gemm.batch_invariant.sm90",
                OpKind::ScaledGemm,
                Declared {
                    features: &[Feature::Wgmma, Feature::Tma, Feature::Fp8],
                    dtypes: DType::FP8,
                    priority: 6,
                    ..HOPPER
                },
            ),
        ];
        for (kernel, name, op, declared) in want {
            let m = kernel.meta();
            assert_eq!((m.name, m.op), (name, op));
            let got = Declared {
                arch: m.arch,
                features: m.features,
                dtypes: m.dtypes,
                align: m.align,
                priority: m.priority,
                deterministic: m.deterministic,
            };
            assert_eq!(got, declared, "{name}");
            assert_eq!(m.batch_invariant, m.deterministic, "{name}");
            assert_eq!(
                (m.backend, m.device, m.version),
                ("cuda", DeviceKind::Cuda, 1)
            );
            assert!(m.source.starts_with("kernelyard_cuda::ops::"), "{name}");
        }
        // Every kernel of a source is in the table (the two FP16/FP8 cuBLASLt kernels have
        // none; the FP4 one has its scale-tiling source).
        let kernels: std::collections::BTreeSet<&str> = SOURCES
            .iter()
            .flat_map(|e| e.kernels.iter().map(|k| k.meta().name))
            .collect();
        assert_eq!(kernels.len() + 2, want.len());
        for name in kernels {
            assert!(want.iter().any(|w| w.1 == name), "{name}");
        }
    }
}
