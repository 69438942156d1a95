//! Host types of the FP4 formats: [`F4E2M1x2`] (two OCP MX e2m1 values packed in a byte) and
//! [`F8E8M0`] (the OCP MX exponent-only scale). The `float8` crate has neither, and both are a
//! few lines of exact arithmetic, so they live here.
//!
//! Decoding is exact (every e2m1 and e8m0 value is an `f64`). Encoding rounds to nearest, ties
//! to even (the even code), and saturates; both encoders exist for test data and host-side
//! quantisation, so they never fail: what a format cannot hold has a documented code.

use super::{DType, Element, Storage};

/// The value of e2m1 code `c` (bits 0-3 of `code`; bits 4-7 are ignored): sign bit 3, exponent
/// bits 1-2 (bias 1), mantissa bit 0. `±{0, 0.5, 1, 1.5, 2, 3, 4, 6}`.
pub fn e2m1_to_f64(code: u8) -> f64 {
    let exp = i32::from((code >> 1) & 0b11);
    let man = f64::from(code & 1);
    let magnitude = if exp == 0 {
        // Subnormal: 0 or 0.5.
        man * 0.5
    } else {
        (1.0 + man * 0.5) * 2f64.powi(exp - 1)
    };
    if code & 0b1000 != 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// The e2m1 code (in bits 0-3) nearest to `v`, ties to the even code; magnitudes above 6
/// (infinities included) saturate to ±6 (`__NV_SATFINITE`'s rule). e2m1 has no NaN: NaN
/// becomes +6 (`0x7`), our choice, documented because it is not a rounding. The sign of a
/// zero is kept (`-0.0` is `0x8`).
pub fn e2m1_from_f64(v: f64) -> u8 {
    if v.is_nan() {
        return 0x7;
    }
    let sign = if v.is_sign_negative() { 0b1000 } else { 0 };
    let a = v.abs();
    if a >= 6.0 {
        return sign | 0x7;
    }
    let mut best = 0u8;
    for code in 1..8u8 {
        let (d, d_best) = ((a - e2m1_to_f64(code)).abs(), (a - e2m1_to_f64(best)).abs());
        // Codes increase with their values, so on a tie `best` is the smaller neighbour; the
        // tie goes to whichever code is even.
        if d < d_best || (d == d_best && code % 2 == 0) {
            best = code;
        }
    }
    sign | best
}

/// Two e2m1 values in one byte, as PyTorch's `float4_e2m1fn_x2` and cuBLASLt's
/// `CUDA_R_4F_E2M1` store them: the first (even-indexed) value in bits 0-3, the second in bits
/// 4-7. The element type of [`DType::F4E2M1X2`] views.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct F4E2M1x2(u8);

impl F4E2M1x2 {
    /// The pair whose byte is `bits`.
    pub const fn from_bits(bits: u8) -> Self {
        F4E2M1x2(bits)
    }

    /// The byte.
    pub const fn to_bits(self) -> u8 {
        self.0
    }

    /// `first` and `second` encoded ([`e2m1_from_f64`]) into one byte.
    pub fn pack(first: f64, second: f64) -> Self {
        F4E2M1x2(e2m1_from_f64(first) | (e2m1_from_f64(second) << 4))
    }

    /// The two values, first (low nibble) then second (high nibble); exact.
    pub fn to_f64s(self) -> [f64; 2] {
        [e2m1_to_f64(self.0 & 0xF), e2m1_to_f64(self.0 >> 4)]
    }

    /// `values` in logical order packed two per byte: `values.len().div_ceil(2)` bytes; an odd
    /// count leaves the last byte's high nibble +0.
    pub fn pack_slice(values: &[f64]) -> Vec<F4E2M1x2> {
        values
            .chunks(2)
            .map(|p| F4E2M1x2::pack(p[0], p.get(1).copied().unwrap_or(0.0)))
            .collect()
    }

    /// Every value of `pairs` in logical order (`2 * pairs.len()` values).
    pub fn unpack_slice(pairs: &[F4E2M1x2]) -> Vec<f64> {
        pairs.iter().flat_map(|p| p.to_f64s()).collect()
    }
}

impl Storage for F4E2M1x2 {
    const DTYPE: DType = DType::F4E2M1X2;
}

/// An OCP MX e8m0 scale (`float8_e8m0fnu`): the value of code `e` is `2^(e - 127)`, `0xFF` is
/// NaN; no zero, no sign, no infinity. The element type of [`DType::F8E8M0`] views.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct F8E8M0(u8);

impl F8E8M0 {
    /// The NaN code.
    pub const NAN: F8E8M0 = F8E8M0(0xFF);

    /// The scale whose byte is `bits`.
    pub const fn from_bits(bits: u8) -> Self {
        F8E8M0(bits)
    }

    /// The byte.
    pub const fn to_bits(self) -> u8 {
        self.0
    }

    /// `2^(e - 127)`, exact; NaN for `0xFF`.
    pub fn to_f64(self) -> f64 {
        if self.0 == 0xFF {
            f64::NAN
        } else {
            2f64.powi(i32::from(self.0) - 127)
        }
    }

    /// The power of two nearest to `v` in value, ties (`1.5 * 2^e`) to the even code. What e8m0
    /// cannot hold: NaN and negative values (not `-0.0`) give NaN; zero and anything below
    /// `2^-127` give `2^-127` (code 0, the nearest value); `2^127` and above, infinity included,
    /// give `2^127` (code `0xFE`: saturating, never NaN).
    pub fn from_f64(v: f64) -> Self {
        if v.is_nan() || v < 0.0 {
            return F8E8M0::NAN;
        }
        if v == f64::INFINITY {
            return F8E8M0(0xFE);
        }
        let bits = v.to_bits();
        let exp = ((bits >> 52) & 0x7FF) as i64;
        if exp == 0 {
            // Zero or an f64 subnormal: far below 2^-127.
            return F8E8M0(0);
        }
        let man = bits & ((1u64 << 52) - 1);
        let half = 1u64 << 51;
        let mut code = exp - 1023 + 127;
        if man > half || (man == half && code % 2 != 0) {
            code += 1;
        }
        F8E8M0(code.clamp(0, 0xFE) as u8)
    }
}

impl Storage for F8E8M0 {
    const DTYPE: DType = DType::F8E8M0;
}

impl Element for F8E8M0 {
    /// Exact: `2^(e - 127)`, NaN for `0xFF`.
    fn to_f64(self) -> f64 {
        F8E8M0::to_f64(self)
    }
    /// See [`F8E8M0::from_f64`].
    fn from_f64(v: f64) -> Self {
        F8E8M0::from_f64(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e2m1_decodes_the_ocp_table() {
        let want = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
        for (c, &w) in want.iter().enumerate() {
            assert_eq!(e2m1_to_f64(c as u8), w, "code {c}");
            assert_eq!(e2m1_to_f64(c as u8 | 8), -w, "code {}", c | 8);
        }
        assert!(e2m1_to_f64(0x8).is_sign_negative());
        // Only the low nibble counts.
        assert_eq!(e2m1_to_f64(0xF3), 1.5);
    }

    #[test]
    fn e2m1_round_trips_and_rounds_to_nearest_even() {
        for c in 0..16u8 {
            assert_eq!(e2m1_from_f64(e2m1_to_f64(c)), c, "code {c}");
        }
        // Midpoints go to the even code: 0.25 -> 0 (code 0), 0.75 -> 1 (code 2), 1.25 -> 1
        // (code 2), 1.75 -> 2 (code 4), 2.5 -> 2 (code 4), 3.5 -> 4 (code 6), 5 -> 4 (code 6).
        let ties = [
            (0.25, 0),
            (0.75, 2),
            (1.25, 2),
            (1.75, 4),
            (2.5, 4),
            (3.5, 6),
            (5.0, 6),
        ];
        for (v, c) in ties {
            assert_eq!(e2m1_from_f64(v), c, "{v}");
            assert_eq!(e2m1_from_f64(-v), c | 8, "-{v}");
        }
        assert_eq!(e2m1_from_f64(0.26), 1);
        assert_eq!(e2m1_from_f64(5.01), 7);
        // Saturation at 6, NaN to +6.
        assert_eq!(e2m1_from_f64(1e9), 0x7);
        assert_eq!(e2m1_from_f64(f64::NEG_INFINITY), 0xF);
        assert_eq!(e2m1_from_f64(f64::NAN), 0x7);
    }

    #[test]
    fn pairs_put_the_first_value_in_the_low_nibble() {
        let p = F4E2M1x2::pack(1.0, -6.0);
        assert_eq!(p.to_bits(), 0xF2);
        assert_eq!(p.to_f64s(), [1.0, -6.0]);
        let v = [0.5, 3.0, -2.0, 4.0, 6.0];
        let packed = F4E2M1x2::pack_slice(&v);
        assert_eq!(
            packed.iter().map(|p| p.to_bits()).collect::<Vec<_>>(),
            [0x51, 0x6C, 0x07]
        );
        assert_eq!(
            F4E2M1x2::unpack_slice(&packed),
            [0.5, 3.0, -2.0, 4.0, 6.0, 0.0]
        );
        assert_eq!(<F4E2M1x2 as Storage>::DTYPE, DType::F4E2M1X2);
        assert_eq!(std::mem::size_of::<F4E2M1x2>(), DType::F4E2M1X2.size());
    }

    #[test]
    fn e8m0_decodes_powers_of_two() {
        assert_eq!(F8E8M0::from_bits(127).to_f64(), 1.0);
        assert_eq!(F8E8M0::from_bits(0).to_f64(), 2f64.powi(-127));
        assert_eq!(F8E8M0::from_bits(0xFE).to_f64(), 2f64.powi(127));
        assert_eq!(F8E8M0::from_bits(130).to_f64(), 8.0);
        assert!(F8E8M0::from_bits(0xFF).to_f64().is_nan());
    }

    #[test]
    fn e8m0_encodes_to_the_nearest_power_and_saturates() {
        for c in 0..=0xFEu8 {
            let x = F8E8M0::from_bits(c);
            assert_eq!(F8E8M0::from_f64(x.to_f64()), x, "code {c}");
        }
        let enc = |v: f64| F8E8M0::from_f64(v).to_bits();
        // 1.5 lies halfway between 1 (code 127, odd) and 2 (code 128, even): up; 3 between 2
        // (128, even) and 4 (129): down.
        assert_eq!(enc(1.5), 128);
        assert_eq!(enc(3.0), 128);
        assert_eq!(enc(1.4), 127);
        assert_eq!(enc(1.6), 128);
        assert_eq!(enc(f64::INFINITY), 0xFE);
        assert_eq!(enc(1e300), 0xFE);
        assert_eq!(enc(0.0), 0);
        assert_eq!(enc(1e-300), 0);
        assert_eq!(enc(-1.0), 0xFF);
        assert_eq!(enc(f64::NAN), 0xFF);
        assert_eq!(<F8E8M0 as Element>::from_f64(0.25).to_f64(), 0.25);
    }
}
