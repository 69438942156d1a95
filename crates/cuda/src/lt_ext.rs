//! cuBLASLt enumerators newer than the oldest bindings kernelyard compiles against.
//!
//! kernelyard builds against whatever CUDA 12.0+ bindings the final binary chooses
//! ([`BINDINGS`](crate::libs::BINDINGS), docs/EMBEDDING.md), but cuBLASLt's scale modes
//! (`CUBLASLT_MATMUL_DESC_A_SCALE_MODE`, ...) and its sub-byte data types (`CUDA_R_4F_E2M1`,
//! `CUDA_R_8F_UE8M0`) first appear in cudarc's bindings for CUDA 12.8, so naming them would not
//! compile against older bindings. This module gives them by their ABI values (the numbers
//! are the C API's and never change) as the bindings' own enum types, and only when the
//! bindings declare them: against older bindings each function returns `None`, and a kernel
//! that needs one refuses its problem with a typed reason instead.
//!
//! Whether the *library* found at run time takes a mode is a separate question (each kernel
//! compares `crate::device::cublaslt_version`): bindings for 12.8 may meet a 12.6 library and
//! the reverse.
//!
//! The FP4 values (`VEC16_UE4M3`, `VEC32_UE8M0`, the data types) are for the FP4 kernel; until
//! it lands they are allowed to be unused.

use cudarc::cublaslt::sys as ltsys;
use cudarc::driver::sys::CUDA_VERSION;

/// Whether cudarc's bindings are for CUDA 12.8 or newer: they then declare every value below
/// (checked against cudarc 0.19.10's bindings for 12.8, 12.9, 13.0 to 13.4).
pub(crate) const BINDINGS_HAVE_SCALE_MODES: bool = CUDA_VERSION >= 12080;

/// `CUBLASLT_MATMUL_DESC_A_SCALE_MODE` (31): how cuBLASLt's A scale pointer is read.
pub(crate) const A_SCALE_MODE: u32 = 31;
/// `CUBLASLT_MATMUL_DESC_B_SCALE_MODE` (32): how cuBLASLt's B scale pointer is read.
pub(crate) const B_SCALE_MODE: u32 = 32;

/// `cublasLtMatmulMatrixScale_t` values (the attribute's value is this enum, an `int32_t`).
pub(crate) mod scale_mode {
    /// `CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F`: one f32 for the matrix (the default).
    pub(crate) const SCALAR_32F: i32 = 0;
    /// `CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3`: one e4m3 per 16 elements along k (NVFP4),
    /// in cuBLASLt's tiled layout.
    #[allow(dead_code)]
    pub(crate) const VEC16_UE4M3: i32 = 1;
    /// `CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0`: one e8m0 per 32 elements along k (MX
    /// formats), in cuBLASLt's tiled layout.
    #[allow(dead_code)]
    pub(crate) const VEC32_UE8M0: i32 = 2;
    /// `CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F`: one f32 per row of the matrix's outer
    /// dimension (cuBLASLt 12.9+, Hopper).
    pub(crate) const OUTER_VEC_32F: i32 = 3;
    /// `CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F`: one f32 per 128 elements along k, outer
    /// dimension fastest (cuBLASLt 12.9+, Hopper).
    pub(crate) const VEC128_32F: i32 = 4;
    /// `CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F`: one f32 per 128 x 128 block, k blocks
    /// fastest with a leading dimension rounded up to 4 (cuBLASLt 12.9+, Hopper).
    pub(crate) const BLK128X128_32F: i32 = 5;
}

/// `CUDA_R_8F_UE8M0` (30): an unsigned 8-bit exponent (the MX formats' block scale).
#[allow(dead_code)]
pub(crate) const CUDA_R_8F_UE8M0: u32 = 30;
/// `CUDA_R_4F_E2M1` (33): FP4 e2m1, two per byte.
#[allow(dead_code)]
pub(crate) const CUDA_R_4F_E2M1: u32 = 33;

/// The matmul descriptor attribute with ABI value `raw`, when the bindings declare it
/// ([`BINDINGS_HAVE_SCALE_MODES`]); `raw` must be one of this module's attribute constants.
pub(crate) fn desc_attr(raw: u32) -> Option<ltsys::cublasLtMatmulDescAttributes_t> {
    if !BINDINGS_HAVE_SCALE_MODES || !matches!(raw, A_SCALE_MODE | B_SCALE_MODE) {
        return None;
    }
    // SAFETY: the enum is `#[repr(u32)]`, and bindings for CUDA 12.8 or newer (checked
    // above) declare a variant with each value this function lets through (31 and 32), so
    // the result is a valid value of the type. With older bindings this line is not reached.
    Some(unsafe { std::mem::transmute::<u32, ltsys::cublasLtMatmulDescAttributes_t>(raw) })
}

/// The CUDA data type with ABI value `raw`, when the bindings declare it
/// ([`BINDINGS_HAVE_SCALE_MODES`]); `raw` must be one of this module's data-type constants.
#[allow(dead_code)]
pub(crate) fn data_type(raw: u32) -> Option<ltsys::cudaDataType_t> {
    if !BINDINGS_HAVE_SCALE_MODES || !matches!(raw, CUDA_R_8F_UE8M0 | CUDA_R_4F_E2M1) {
        return None;
    }
    // SAFETY: `cudaDataType_t` is `#[repr(u32)]`, and bindings for CUDA 12.8 or newer
    // (checked above) declare variants 30 and 33, the only values let through.
    Some(unsafe { std::mem::transmute::<u32, ltsys::cudaDataType_t>(raw) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_values_are_the_bindings_own() {
        // The tests build against CUDA 13.0 bindings (the dev-dependency's feature), which
        // name every value: each raw constant must map to the variant of that name.
        use ltsys::cublasLtMatmulDescAttributes_t as A;
        const { assert!(BINDINGS_HAVE_SCALE_MODES) };
        assert_eq!(
            desc_attr(A_SCALE_MODE),
            Some(A::CUBLASLT_MATMUL_DESC_A_SCALE_MODE)
        );
        assert_eq!(
            desc_attr(B_SCALE_MODE),
            Some(A::CUBLASLT_MATMUL_DESC_B_SCALE_MODE)
        );
        assert_eq!(
            data_type(CUDA_R_4F_E2M1),
            Some(ltsys::cudaDataType_t::CUDA_R_4F_E2M1)
        );
        assert_eq!(
            data_type(CUDA_R_8F_UE8M0),
            Some(ltsys::cudaDataType_t::CUDA_R_8F_UE8M0)
        );
        use ltsys::cublasLtMatmulMatrixScale_t as S;
        for (raw, named) in [
            (
                scale_mode::SCALAR_32F,
                S::CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F,
            ),
            (
                scale_mode::VEC16_UE4M3,
                S::CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3,
            ),
            (
                scale_mode::VEC32_UE8M0,
                S::CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0,
            ),
            (
                scale_mode::OUTER_VEC_32F,
                S::CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F,
            ),
            (
                scale_mode::VEC128_32F,
                S::CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F,
            ),
            (
                scale_mode::BLK128X128_32F,
                S::CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F,
            ),
        ] {
            assert_eq!(raw, named as i32);
        }
    }

    #[test]
    fn values_outside_the_declared_ones_are_refused() {
        assert_eq!(desc_attr(3), None);
        assert_eq!(desc_attr(99), None);
        assert_eq!(data_type(0), None);
        assert_eq!(data_type(31), None);
    }
}
