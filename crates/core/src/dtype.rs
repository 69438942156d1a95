//! Element types: what a tensor holds, its size, and its DLPack code.
//!
//! # FP8
//! [`DType::F8E4M3`] and [`DType::F8E5M2`] are the OCP 8-bit formats (one byte per element),
//! the ones cuBLASLt, PyTorch (`float8_e4m3fn`, `float8_e5m2`) and DLPack 1.1 (codes 10 and
//! 12) name:
//!
//! | dtype | bits (sign.exp.mantissa) | bias | max finite | min normal | min subnormal | inf | NaN |
//! |---|---|---|---|---|---|---|---|
//! | `f8e4m3` (e4m3fn) | 1.4.3 | 7 | 448 | 2^-6 | 2^-9 | none | `S.1111.111` |
//! | `f8e5m2` | 1.5.2 | 15 | 57344 | 2^-14 | 2^-16 | `S.11111.00` | `S.11111.{01,10,11}` |
//!
//! They are *storage* formats: only operators that say so take them (today `scaled_gemm`'s A
//! and B), so they are not in [`DType::FLOATS`] and every operator that takes `FLOATS` refuses
//! them with its usual `DtypeNotAllowed`. Host views hold them as [`float8::F8E4M3`] and
//! [`float8::F8E5M2`]: decoding ([`Element::to_f64`]) is exact (every FP8 value is an f64);
//! encoding ([`Element::from_f64`]) rounds to nearest, ties to even, and saturates: a finite
//! value or an infinity beyond the largest finite value (past the rounding midpoint: 464 for
//! e4m3, 61440 for e5m2) becomes that value with its sign (CUDA's `__NV_SATFINITE`); NaN stays
//! NaN (e4m3: `0x7F`); magnitudes at or below half the smallest subnormal become a zero of the
//! same sign.
//!
//! # FP4 and its block scales
//! [`DType::F4E2M1X2`] is the OCP MX 4-bit float e2m1 (sign, two exponent bits of bias 1, one
//! mantissa bit; no infinity, no NaN) stored **two per byte**, as PyTorch's
//! `float4_e2m1fn_x2`: one element of the dtype is one byte holding a pair, the even (first)
//! value of the pair in bits 0-3 and the odd (next) one in bits 4-7, the order PyTorch and
//! cuBLASLt's `CUDA_R_4F_E2M1` use. Shapes and strides count bytes (pairs): an FP4 matrix of
//! `k` logical columns is a `[rows, k/2]` view, so `k` is even. [`DType::lanes`] is 2 for it.
//! DLPack maps it as PyTorch does: `kDLFloat4_e2m1fn` (code 17), 4 bits, 2 lanes.
//!
//! | dtype | bits (sign.exp.mantissa) | bias | max finite | min normal | min subnormal | inf | NaN |
//! |---|---|---|---|---|---|---|---|
//! | `f4e2m1x2` (each of the pair: e2m1fn) | 1.2.1 | 1 | 6 | 1 | 0.5 | none | none |
//! | `f8e8m0` (e8m0fnu) | 0.8.0 | 127 | 2^127 | 2^-127 | none (no zero) | none | `0xFF` |
//!
//! | e2m1 code (sign 0) | 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 |
//! |---|---|---|---|---|---|---|---|---|
//! | value | 0 | 0.5 | 1 | 1.5 | 2 | 3 | 4 | 6 |
//!
//! [`DType::F8E8M0`] is the OCP MX scale format e8m0 (`float8_e8m0fnu`, DLPack code 14): an
//! unsigned biased exponent, the value of code `e` is `2^(e - 127)` (`2^-127 ..= 2^127`),
//! `0xFF` is NaN; there is no zero and no sign. MXFP4's 32-element blocks carry e8m0 scales,
//! NVFP4's 16-element blocks carry [`DType::F8E4M3`] scales (used as unsigned: UE4M3).
//!
//! Both are storage formats like FP8: only `scaled_gemm` takes them (FP4 as A and B, e4m3 and
//! e8m0 as block scales). Host views hold them as [`F4E2M1x2`] and [`F8E8M0`] ([`fp4`]'s
//! types): decoding is exact; encoding rounds to nearest, ties to even, and saturates (e2m1 at
//! ±6; e8m0 at `2^127`, see [`F8E8M0::from_f64`]). A packed pair is not one number, so
//! [`F4E2M1x2`] implements [`Storage`] (what a view's bytes hold) but not [`Element`] (one
//! number per element).

pub mod fp4;

use std::fmt;
use std::str::FromStr;

use float8::{F8E4M3, F8E5M2};
use half::{bf16, f16};
use serde::{Deserialize, Serialize};

use crate::error::Error;

pub use fp4::{F4E2M1x2, F8E8M0};

/// The element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary16.
    F16,
    /// bfloat16 (8 exponent bits, 7 mantissa bits).
    BF16,
    /// Signed 32-bit integer.
    I32,
    /// Signed 64-bit integer.
    I64,
    /// OCP FP8 E4M3 (`e4m3fn`: no infinities, max 448, NaN `S.1111.111`); a storage format.
    F8E4M3,
    /// OCP FP8 E5M2 (IEEE-like: infinities, max 57344); a storage format.
    F8E5M2,
    /// OCP MX FP4 e2m1, two per byte (PyTorch's `float4_e2m1fn_x2`): one element is a packed
    /// pair, the first value in the low nibble; a storage format (see the module docs).
    F4E2M1X2,
    /// OCP MX e8m0 (`float8_e8m0fnu`): a power of two `2^(e-127)`, `0xFF` NaN; MXFP4's block
    /// scales.
    F8E8M0,
}

impl DType {
    /// Every element type, in declaration order.
    pub const ALL: [DType; 9] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::I32,
        DType::I64,
        DType::F8E4M3,
        DType::F8E5M2,
        DType::F4E2M1X2,
        DType::F8E8M0,
    ];
    /// The floating-point types the catalog computes on: inputs and outputs of every operator
    /// that takes "a float". The FP8 types are not among them (see [`DType::FP8`]).
    pub const FLOATS: &'static [DType] = &[DType::F32, DType::F16, DType::BF16];
    /// The 8-bit floating-point storage types, taken only where an operator names them
    /// (`scaled_gemm`'s A and B).
    pub const FP8: &'static [DType] = &[DType::F8E4M3, DType::F8E5M2];
    /// The 4-bit floating-point storage types (packed pairs), taken only where an operator
    /// names them (`scaled_gemm`'s A and B with block scales).
    pub const FP4: &'static [DType] = &[DType::F4E2M1X2];
    /// The integer types used for indices (targets, positions).
    pub const INDICES: &'static [DType] = &[DType::I32, DType::I64];

    /// Size of one element in bytes.
    pub const fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::I64 => 8,
            DType::F8E4M3 | DType::F8E5M2 | DType::F4E2M1X2 | DType::F8E8M0 => 1,
        }
    }

    /// Values per element: 2 for the packed [`DType::F4E2M1X2`], 1 for every other type. A
    /// tensor of `n` elements holds `n * lanes()` values.
    pub const fn lanes(self) -> usize {
        match self {
            DType::F4E2M1X2 => 2,
            _ => 1,
        }
    }

    /// The short name used in the CLI, reports and test data (`f32`, `bf16`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::F8E4M3 => "f8e4m3",
            DType::F8E5M2 => "f8e5m2",
            DType::F4E2M1X2 => "f4e2m1x2",
            DType::F8E8M0 => "f8e8m0",
        }
    }

    /// True for the floating-point types the catalog computes on ([`DType::FLOATS`]): f32, f16
    /// and bf16. False for the FP8 storage types (see [`DType::is_fp8`]) and the integers.
    pub const fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16)
    }

    /// True for the 8-bit floating-point operand types ([`DType::FP8`]: e4m3 and e5m2; not the
    /// scale type e8m0).
    pub const fn is_fp8(self) -> bool {
        matches!(self, DType::F8E4M3 | DType::F8E5M2)
    }

    /// True for the packed 4-bit floating-point types ([`DType::FP4`]).
    pub const fn is_fp4(self) -> bool {
        matches!(self, DType::F4E2M1X2)
    }

    /// The DLPack `(code, bits, lanes)` triple of this type (`kDLInt` = 0, `kDLFloat` = 2,
    /// `kDLBfloat` = 4, DLPack 1.1's `kDLFloat8_e4m3fn` = 10, `kDLFloat8_e5m2` = 12,
    /// `kDLFloat8_e8m0fnu` = 14 and `kDLFloat4_e2m1fn` = 17). The packed FP4 pair is 4 bits
    /// with 2 lanes, as PyTorch exports `float4_e2m1fn_x2` (`aten/src/ATen/DLConvertor.cpp`).
    pub const fn dlpack(self) -> (u8, u8, u16) {
        match self {
            DType::F32 => (2, 32, 1),
            DType::F16 => (2, 16, 1),
            DType::BF16 => (4, 16, 1),
            DType::I32 => (0, 32, 1),
            DType::I64 => (0, 64, 1),
            DType::F8E4M3 => (10, 8, 1),
            DType::F8E5M2 => (12, 8, 1),
            DType::F8E8M0 => (14, 8, 1),
            DType::F4E2M1X2 => (17, 4, 2),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "float32" | "float" => DType::F32,
            "f16" | "float16" | "half" => DType::F16,
            "bf16" | "bfloat16" => DType::BF16,
            "i32" | "int32" => DType::I32,
            "i64" | "int64" => DType::I64,
            "f8e4m3" | "float8_e4m3fn" => DType::F8E4M3,
            "f8e5m2" | "float8_e5m2" => DType::F8E5M2,
            "f4e2m1x2" | "float4_e2m1fn_x2" => DType::F4E2M1X2,
            "f8e8m0" | "float8_e8m0fnu" => DType::F8E8M0,
            _ => {
                return Err(Error::UnknownDType {
                    name: s.to_string(),
                })
            }
        })
    }
}

/// A Rust type that can be the element of a tensor view: plain bytes (no padding, every bit
/// pattern valid) of the dtype it names. Host views
/// ([`TensorView::from_slice`](crate::TensorView::from_slice)) and device uploads take any
/// `Storage`; [`Element`] adds the conversion of one number.
pub trait Storage: Copy + Send + Sync + 'static {
    /// The dtype tag of this type.
    const DTYPE: DType;
}

/// A [`Storage`] type that holds one number.
///
/// Widening to `f64` is exact for every float type (FP8 included) and for integers up to 2^53;
/// narrowing rounds to nearest, ties to even (FP8: saturating, see the module docs).
pub trait Element: Storage {
    /// Widen to `f64`.
    fn to_f64(self) -> f64;
    /// Narrow from `f64` with round-to-nearest-even (saturating for integers).
    fn from_f64(v: f64) -> Self;
}

impl Storage for f32 {
    const DTYPE: DType = DType::F32;
}

impl Element for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Storage for f16 {
    const DTYPE: DType = DType::F16;
}

impl Element for f16 {
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
}

impl Storage for bf16 {
    const DTYPE: DType = DType::BF16;
}

impl Element for bf16 {
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_f64(v: f64) -> Self {
        bf16::from_f64(v)
    }
}

impl Storage for i32 {
    const DTYPE: DType = DType::I32;
}

impl Element for i32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as i32
    }
}

impl Storage for i64 {
    const DTYPE: DType = DType::I64;
}

impl Element for i64 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as i64
    }
}

impl Storage for F8E4M3 {
    const DTYPE: DType = DType::F8E4M3;
}

impl Element for F8E4M3 {
    /// Exact: every e4m3 value (NaN included) is an f16, hence an f64.
    fn to_f64(self) -> f64 {
        F8E4M3::to_f64(&self)
    }
    /// Round to nearest even; beyond 448 (past the midpoint 464) or infinite: ±448; NaN: NaN.
    fn from_f64(v: f64) -> Self {
        F8E4M3::from_f64(v)
    }
}

impl Storage for F8E5M2 {
    const DTYPE: DType = DType::F8E5M2;
}

impl Element for F8E5M2 {
    /// Exact: every e5m2 value (infinities and NaN included) is an f16, hence an f64.
    fn to_f64(self) -> f64 {
        F8E5M2::to_f64(&self)
    }
    /// Round to nearest even; beyond 57344 (past the midpoint 61440) or infinite: ±57344 (the
    /// encoding never makes an infinity); NaN: NaN.
    fn from_f64(v: f64) -> Self {
        F8E5M2::from_f64(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(d.name().parse::<DType>().unwrap(), d);
        }
        assert!("f8".parse::<DType>().is_err());
        assert_eq!("float8_e4m3fn".parse::<DType>().unwrap(), DType::F8E4M3);
        assert_eq!("FLOAT8_E5M2".parse::<DType>().unwrap(), DType::F8E5M2);
        // The IEEE-like e4m3 with infinities (DLPack code 8) is another format.
        assert!("float8_e4m3".parse::<DType>().is_err());
    }

    #[test]
    fn fp8_is_not_a_computing_float() {
        for d in DType::FP8 {
            assert!(!d.is_float() && d.is_fp8() && !DType::FLOATS.contains(d));
            assert_eq!(d.size(), 1);
        }
        assert!(DType::FLOATS.iter().all(|d| d.is_float() && !d.is_fp8()));
    }

    #[test]
    fn fp4_and_e8m0_are_storage_types() {
        assert_eq!(
            "float4_e2m1fn_x2".parse::<DType>().unwrap(),
            DType::F4E2M1X2
        );
        assert_eq!("float8_e8m0fnu".parse::<DType>().unwrap(), DType::F8E8M0);
        for d in [DType::F4E2M1X2, DType::F8E8M0] {
            assert!(!d.is_float() && !d.is_fp8() && !DType::FLOATS.contains(&d));
            assert_eq!(d.size(), 1);
        }
        assert!(DType::F4E2M1X2.is_fp4() && !DType::F8E8M0.is_fp4());
        assert_eq!(DType::F4E2M1X2.lanes(), 2);
        assert!(DType::ALL
            .iter()
            .all(|&d| d == DType::F4E2M1X2 || d.lanes() == 1));
        // The packed pair's DLPack bits times lanes is its byte.
        let (_, bits, lanes) = DType::F4E2M1X2.dlpack();
        assert_eq!(usize::from(bits) * usize::from(lanes), 8);
    }

    fn e4(bits: u8) -> f64 {
        F8E4M3::from_bits(bits).to_f64()
    }

    fn e5(bits: u8) -> f64 {
        F8E5M2::from_bits(bits).to_f64()
    }

    #[test]
    fn e4m3_decodes_exactly() {
        assert_eq!(e4(0x00), 0.0);
        assert!(e4(0x80) == 0.0 && e4(0x80).is_sign_negative());
        assert_eq!(e4(0x38), 1.0);
        assert_eq!(e4(0x7E), 448.0);
        assert_eq!(e4(0xFE), -448.0);
        assert_eq!(e4(0x01), 2f64.powi(-9));
        assert_eq!(e4(0x07), 7.0 * 2f64.powi(-9));
        assert_eq!(e4(0x08), 2f64.powi(-6));
        assert_eq!(e4(0x39), 1.125);
        assert!(e4(0x7F).is_nan() && e4(0xFF).is_nan());
        // Every code but the two NaNs is finite: e4m3fn has no infinity.
        let finite = (0..=255u8).filter(|&b| e4(b).is_finite()).count();
        assert_eq!(finite, 254);
    }

    #[test]
    fn e5m2_decodes_exactly() {
        assert_eq!(e5(0x3C), 1.0);
        assert_eq!(e5(0x7B), 57344.0);
        assert_eq!(e5(0xFB), -57344.0);
        assert_eq!(e5(0x01), 2f64.powi(-16));
        assert_eq!(e5(0x04), 2f64.powi(-14));
        assert_eq!(e5(0x7C), f64::INFINITY);
        assert_eq!(e5(0xFC), f64::NEG_INFINITY);
        for b in [0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF] {
            assert!(e5(b).is_nan(), "{b:#x}");
        }
    }

    #[test]
    fn fp8_encoding_round_trips_every_value() {
        for b in 0..=255u8 {
            let (x, y) = (e4(b), e5(b));
            if !x.is_nan() {
                assert_eq!(F8E4M3::from_f64(x).to_bits(), b, "e4m3 {b:#x}");
            }
            if y.is_finite() {
                assert_eq!(F8E5M2::from_f64(y).to_bits(), b, "e5m2 {b:#x}");
            }
        }
    }

    #[test]
    fn fp8_encoding_rounds_to_nearest_even_and_saturates() {
        let enc4 = |v: f64| <F8E4M3 as Element>::from_f64(v).to_bits();
        let enc5 = |v: f64| <F8E5M2 as Element>::from_f64(v).to_bits();
        // 1 + 1/16 is halfway between 1 (even mantissa) and 1.125: down; 1.1875 between 1.125
        // and 1.25 (even): up.
        assert_eq!(enc4(1.0625), 0x38);
        assert_eq!(enc4(1.1875), 0x3A);
        // Saturation: the midpoint 464 rounds to 448 (even), anything above saturates.
        assert_eq!(enc4(464.0), 0x7E);
        assert_eq!(enc4(465.0), 0x7E);
        assert_eq!(enc4(1e30), 0x7E);
        assert_eq!(enc4(f64::INFINITY), 0x7E);
        assert_eq!(enc4(f64::NEG_INFINITY), 0xFE);
        assert_eq!(enc5(61440.0), 0x7B);
        assert_eq!(enc5(1e30), 0x7B);
        assert_eq!(enc5(f64::INFINITY), 0x7B);
        assert_eq!(enc5(-1e30), 0xFB);
        // NaN stays NaN.
        assert_eq!(enc4(f64::NAN) & 0x7F, 0x7F);
        assert!(<F8E5M2 as Element>::from_f64(f64::NAN).to_f64().is_nan());
        // Underflow: at most half the smallest subnormal is zero (ties to even), above it the
        // smallest subnormal.
        assert_eq!(enc4(2f64.powi(-10)), 0x00);
        assert_eq!(enc4(1.5 * 2f64.powi(-10)), 0x01);
        assert_eq!(enc4(-2f64.powi(-11)), 0x80);
        assert_eq!(enc5(2f64.powi(-17)), 0x00);
        assert_eq!(enc5(1.5 * 2f64.powi(-17)), 0x01);
        // Subnormal ties: 1.5 * 2^-9 lies between codes 1 and 2: to even (2).
        assert_eq!(enc4(1.5 * 2f64.powi(-9)), 0x02);
    }
}
