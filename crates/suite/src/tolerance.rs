//! The tolerance contract: how far a kernel's output may be from the `f64` oracle, per op and
//! dtype, in one table. `docs/TOLERANCES.md` carries the same table (a unit test checks that it
//! contains every row of [`markdown_table`]).
//!
//! Two numbers bound every output of a case, over the elements whose expected value is finite:
//! - `rel_l2 = ||got - want||_2 / ||want||_2` (not checked when `||want||_2` is below
//!   [`TINY_NORM`], e.g. an all-ignored `token_logprobs` batch, where `max_abs` alone decides);
//! - `max_abs = max |got - want| / max(1, max |want|)`: the largest absolute error for outputs
//!   of magnitude at most 1, relative to the largest magnitude otherwise (so one bound serves
//!   `softmax` probabilities and `gemm` sums of a thousand products).
//!
//! Inputs are rounded to their dtype before the oracle sees them, so the only differences are a
//! kernel's own arithmetic and the rounding of its outputs. An output whose dtype is coarser
//! than the problem's (a bf16 `selective_state_update` state next to f32 inputs) is judged by
//! the coarser dtype's row. Expected NaN and infinities must be matched exactly; NaN where the
//! oracle is finite (outputs are poisoned with NaN before the launch) always fails.

use std::fmt::Write as _;

use serde::Serialize;

use kernelyard::{DType, OpKind};

/// Below this `||want||_2`, `rel_l2` is not computed (reported as 0) and `max_abs` decides.
pub const TINY_NORM: f64 = 1e-30;

/// The bounds for one (op, dtype).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Tolerance {
    /// The operator.
    pub op: OpKind,
    /// The primary dtype of the problem (or a coarser output dtype).
    pub dtype: DType,
    /// Bound on `||got - want||_2 / ||want||_2`.
    pub rel_l2: f64,
    /// Bound on `max |got - want| / max(1, max |want|)`.
    pub max_abs: f64,
    /// Why the bound is what it is.
    pub why: &'static str,
}

const F32_WHY: &str = "f32 arithmetic: a few ulps (6e-8) per operation, plus accumulation";
const F16_WHY: &str = "one f16 rounding of each output (unit roundoff u = 4.9e-4): about 2u and 4u, room for f32 arithmetic";
const BF16_WHY: &str = "one bf16 rounding of each output (unit roundoff u = 3.9e-3): about 2u and 4u, room for f32 arithmetic";

const FP8_WHY: &str = "rows keyed by out's dtype; FP8 inputs exact, products exact in f32, f32 sums: abs(err) <= u_out abs(want) + gamma(k+3) sum abs(x y) (docs/TOLERANCES.md)";
const FP8_F32_WHY: &str = "FP8 tensor cores add a k32 group's products in fixed point, about 14 bits below the largest: 1.05e-4 measured (cuBLASLt, H100); 4x room (docs/TOLERANCES.md)";

const fn row(op: OpKind, dtype: DType, rel_l2: f64, max_abs: f64, why: &'static str) -> Tolerance {
    Tolerance {
        op,
        dtype,
        rel_l2,
        max_abs,
        why,
    }
}

/// The contract: one row per (op, float dtype).
#[rustfmt::skip]
pub const TOLERANCES: &[Tolerance] = &[
    row(OpKind::Gemm, DType::F32, 2e-5, 1e-5, "f32 accumulation over k up to 4096 (error grows like sqrt(k) ulps)"),
    row(OpKind::Gemm, DType::F16, 1e-3, 2e-3, F16_WHY),
    row(OpKind::Gemm, DType::BF16, 8e-3, 1.6e-2, BF16_WHY),
    row(OpKind::RmsNorm, DType::F32, 1e-5, 2e-5, F32_WHY),
    row(OpKind::RmsNorm, DType::F16, 1e-3, 2e-3, F16_WHY),
    row(OpKind::RmsNorm, DType::BF16, 8e-3, 1.6e-2, BF16_WHY),
    row(OpKind::Softmax, DType::F32, 1e-5, 1e-5, F32_WHY),
    row(OpKind::Softmax, DType::F16, 2e-3, 2e-3, "f16 rounding; probabilities of 32768-wide rows are f16 subnormals (absolute spacing 6e-8)"),
    row(OpKind::Softmax, DType::BF16, 8e-3, 1.6e-2, BF16_WHY),
    row(OpKind::LogSoftmax, DType::F32, 1e-5, 2e-5, F32_WHY),
    row(OpKind::LogSoftmax, DType::F16, 1e-3, 2e-3, F16_WHY),
    row(OpKind::LogSoftmax, DType::BF16, 8e-3, 1.6e-2, BF16_WHY),
    row(OpKind::TokenLogprobs, DType::F32, 1e-5, 2e-5, "f32 outputs; f32 sums over vocabularies up to 262144"),
    row(OpKind::TokenLogprobs, DType::F16, 1e-5, 2e-5, "f32 outputs from exactly representable f16 logits"),
    row(OpKind::TokenLogprobs, DType::BF16, 1e-5, 2e-5, "f32 outputs from exactly representable bf16 logits"),
    row(OpKind::Rope, DType::F32, 3e-4, 1e-3, "angles up to 4096 rad in f32 are off by up to 2.4e-4 rad (half an ulp of 4096)"),
    row(OpKind::Rope, DType::F16, 1e-3, 2e-3, "f16 rounding plus the f32 angle error"),
    row(OpKind::Rope, DType::BF16, 8e-3, 1.6e-2, BF16_WHY),
    row(OpKind::Attention, DType::F32, 2e-5, 2e-5, "f32 scores, softmax and weighted sums over up to 1025 keys"),
    row(OpKind::Attention, DType::F16, 1e-3, 2e-3, "f16 rounding; f16 probabilities in the PV product (as flash attention does)"),
    row(OpKind::Attention, DType::BF16, 8e-3, 1.6e-2, "bf16 rounding; bf16 probabilities in the PV product (as flash attention does)"),
    row(OpKind::SelectiveStateUpdate, DType::F32, 1e-5, 2e-5, "f32 exp, softplus and sums over the state"),
    row(OpKind::SelectiveStateUpdate, DType::F16, 1e-3, 2e-3, F16_WHY),
    row(OpKind::SelectiveStateUpdate, DType::BF16, 8e-3, 1.6e-2, BF16_WHY),
    row(OpKind::SiluMul, DType::F32, 1e-5, 1e-5, "element-wise, no accumulation: f32 exp (a fast exp is off by up to 2 + 1.17 abs(g) ulps), a division and two products"),
    row(OpKind::SiluMul, DType::F16, 1e-3, 2e-3, F16_WHY),
    row(OpKind::SiluMul, DType::BF16, 8e-3, 1.6e-2, BF16_WHY),
    row(OpKind::ScaledGemm, DType::F32, 4e-4, 4e-4, FP8_F32_WHY),
    row(OpKind::ScaledGemm, DType::F16, 1e-3, 2e-3, FP8_WHY),
    row(OpKind::ScaledGemm, DType::BF16, 8e-3, 1.6e-2, FP8_WHY),
];

/// The coarser of two float dtypes (`bf16` > `f16` > `f32`); integers and the FP8 and FP4 types
/// count as `f32` (their inputs are exact: `scaled_gemm` is judged by its output dtype's row).
pub fn coarser(a: DType, b: DType) -> DType {
    let rank = |d: DType| match d {
        DType::BF16 => 2,
        DType::F16 => 1,
        _ => 0,
    };
    if rank(b) > rank(a) {
        b
    } else if rank(a) == 0 {
        DType::F32
    } else {
        a
    }
}

/// The bounds for `op` at `dtype`, if the table has them.
pub fn tolerance(op: OpKind, dtype: DType) -> Option<&'static Tolerance> {
    TOLERANCES.iter().find(|t| t.op == op && t.dtype == dtype)
}

/// The table as Markdown, one row per line, as `docs/TOLERANCES.md` must contain it.
pub fn markdown_table() -> String {
    let mut s = String::from("| op | dtype | rel_l2 | max_abs | why |\n|---|---|---|---|---|\n");
    for t in TOLERANCES {
        // Writing to a String cannot fail.
        let _ = writeln!(
            s,
            "| {} | {} | {:e} | {:e} | {} |",
            t.op, t.dtype, t.rel_l2, t.max_abs, t.why
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_and_float_dtype_has_one_row() {
        for op in OpKind::ALL {
            for &dtype in DType::FLOATS {
                let n = TOLERANCES
                    .iter()
                    .filter(|t| t.op == op && t.dtype == dtype)
                    .count();
                assert_eq!(n, 1, "{op} {dtype}");
            }
        }
        assert!(TOLERANCES
            .iter()
            .all(|t| t.rel_l2 > 0.0 && t.max_abs > 0.0 && t.rel_l2 < 0.1));
    }

    #[test]
    fn coarser_orders_dtypes() {
        assert_eq!(coarser(DType::F32, DType::BF16), DType::BF16);
        assert_eq!(coarser(DType::BF16, DType::F32), DType::BF16);
        assert_eq!(coarser(DType::F16, DType::F32), DType::F16);
        assert_eq!(coarser(DType::F32, DType::F32), DType::F32);
        assert_eq!(coarser(DType::I64, DType::F32), DType::F32);
        assert_eq!(coarser(DType::F8E4M3, DType::BF16), DType::BF16);
        assert_eq!(coarser(DType::F8E5M2, DType::F16), DType::F16);
        assert_eq!(coarser(DType::F8E4M3, DType::F32), DType::F32);
    }

    /// `docs/TOLERANCES.md` must contain the table exactly as generated; on failure the
    /// message is the table to paste.
    #[test]
    fn docs_contain_every_row() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/TOLERANCES.md");
        let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let table = markdown_table();
        let missing: Vec<&str> = table.lines().filter(|l| !doc.contains(l)).collect();
        assert!(
            missing.is_empty(),
            "{path} lacks these rows:\n{}\n\nthe whole table:\n{table}",
            missing.join("\n")
        );
    }
}
