//! `rocm.gemm.batch_invariant.mfma` and `rocm.gemm.batch_invariant`: `C = alpha * op(A) @
//! op(B) + beta * C` in one fixed reduction order (no split-K, no atomics, one configuration
//! for every M), from `kernels/gemm_bi_mfma.cu` (matrix cores) and `kernels/gemm_bi_simt.cu`
//! (portable). Plans, checks and launch sequences are in `kernelyard_kernels`; both modules'
//! docs say why the results are batch-invariant.
//!
//! Selection between the two depends on the architecture and the dtype only (never on M): on
//! gfx908 and gfx90a f16/bf16 run on the MFMA kernel (priority 10); f32, and every other
//! architecture, on the portable one (priority 5). The two are not promised to give each
//! other's bits.

use kernelyard_core::{Args, Capabilities, DType, Error, OpKind, Problem, Reason, Stream};

use super::{rocm_meta, RocmKernel, MFMA_FEATURES, MFMA_GFX};

macro_rules! gemm_kernel {
    ($module:ident) => {{
        fn check(_caps: &Capabilities, problem: &Problem, reasons: &mut Vec<Reason>) {
            if let Problem::Gemm(p) = problem {
                kernelyard_kernels::$module::check_shape(p, reasons);
            }
        }
        fn launch(
            stream: &Stream,
            caps: &Capabilities,
            args: &mut Args<'_>,
            problem: &Problem,
        ) -> Result<(), Error> {
            let (Args::Gemm(a), Problem::Gemm(p)) = (args, problem) else {
                return Err(Error::WrongOp {
                    kernel: stringify!($module),
                    op: OpKind::Gemm,
                    got: problem.op(),
                });
            };
            #[cfg(feature = "hip")]
            return kernelyard_kernels::$module::launch(super::gpu(), stream, caps, a, p);
            #[cfg(not(feature = "hip"))]
            {
                let _ = (caps, a, p);
                Err(super::not_compiled_in(stream))
            }
        }
        (check as super::Check, launch as super::Launch)
    }};
}

const MFMA: (super::Check, super::Launch) = gemm_kernel!(gemm_bi_mfma);
const SIMT: (super::Check, super::Launch) = gemm_kernel!(gemm_bi_simt);

/// The `rocm.gemm.batch_invariant.mfma` kernel: matrix cores, gfx908 and gfx90a, wave64.
pub static GEMM_BATCH_INVARIANT_MFMA: RocmKernel = RocmKernel {
    meta: kernelyard_core::KernelMeta {
        dtypes: &[DType::F16, DType::BF16],
        arch: MFMA_GFX,
        features: MFMA_FEATURES,
        ..rocm_meta(
            "rocm.gemm.batch_invariant.mfma",
            OpKind::Gemm,
            module_path!(),
            "batch-invariant deterministic GEMM on MFMA matrix cores, f32 accumulation, fixed \
             k order (not yet run on AMD hardware)",
        )
    },
    check: MFMA.0,
    launch: MFMA.1,
};
crate::register!(GEMM_BATCH_INVARIANT_MFMA);

/// The `rocm.gemm.batch_invariant` kernel: the portable path, every architecture.
pub static GEMM_BATCH_INVARIANT: RocmKernel = RocmKernel {
    meta: kernelyard_core::KernelMeta {
        priority: 5,
        ..rocm_meta(
            "rocm.gemm.batch_invariant",
            OpKind::Gemm,
            module_path!(),
            "batch-invariant deterministic GEMM without matrix cores (LDS tiles, f32 FMA in k \
             order); the same source runs on NVIDIA in the tests",
        )
    },
    check: SIMT.0,
    launch: SIMT.1,
};
crate::register!(GEMM_BATCH_INVARIANT);
