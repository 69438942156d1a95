//! `scaled_gemm`: rows of A, of a row- or block-scaled `scale_a` and of `out` are independent
//! (axis 0; axis 1 of a block `scale_a`, stored m fastest); B, `scale_b`, `bias` and a per-tensor `scale_a` are shared by every row.
//!
//! A and B are drawn uniform in `[-8, 8)` (FP4: `[-6, 6)`) and rounded to their FP8 or FP4
//! dtype (so every input is a value of its dtype, exactly what the kernel reads), never zero;
//! the scales are drawn in `[0.25, 2)` (positive, as quantisation scales are; NVFP4's e4m3
//! scales are unsigned in hardware) and rounded to their dtype (f32; e4m3 for NVFP4; e8m0 for
//! MXFP4, so powers of two 0.25 to 2), the bias uniform in `[-4, 4)` in its dtype. Sums of k
//! products up to 64 in magnitude (FP4: 144) stay far from f16's and bf16's ranges for the
//! cases' k.
//!
//! Host tensors hold values: an FP4 operand is `[m, k]` here and `[m, k/2]` pairs on the
//! device (`exec`'s `storage_shape`), so rows and batches are sliced on values.

use kernelyard::ops::scaled_gemm::{bias_dtypes, ScaleMode, ScaledGemm, ScaledGemmArgs};
use kernelyard::ops::Listed;
use kernelyard::{Args, DType, Problem};
use kernelyard_reference::ops::scaled_gemm::scaled_gemm;

use crate::cases::Scalars;
use crate::data::{HostTensor, Init, Instance, OutputSpec};
use crate::exec::{input, optional_input, outputs_mut, required, DeviceTensor};
use crate::ops::{expect, Driver};
use crate::rng::Rng;

/// The range of A's and B's values before rounding to FP8.
const RANGE: (f64, f64) = (-8.0, 8.0);
/// The range of FP4 operands' values before rounding to e2m1 (whose largest magnitude is 6).
const FP4_RANGE: (f64, f64) = (-6.0, 6.0);
/// The range of the scales.
const SCALES: (f64, f64) = (0.25, 2.0);
/// The range of the bias.
const BIAS: (f64, f64) = (-4.0, 4.0);

/// The `scaled_gemm` driver.
pub(crate) struct ScaledGemmDriver;

/// The inputs of `p`: name, dtype, shape, batch axis, value range.
type InputDesc = (&'static str, DType, Vec<usize>, Option<usize>, (f64, f64));

fn inputs(p: &kernelyard::ops::scaled_gemm::ScaledGemmProblem) -> Vec<InputDesc> {
    // A's rows are axis 0 of a per-row `scale_a` and axis 1 of a block one (m fastest).
    let a_axis = match p.scale_a {
        ScaleMode::Tensor => None,
        ScaleMode::Row => Some(0),
        ScaleMode::Block => Some(1),
        ScaleMode::Nvfp4 | ScaleMode::Mxfp4 => Some(0),
    };
    let range = |d: DType| if d.is_fp4() { FP4_RANGE } else { RANGE };
    let (sa, sb) = (p.scale_a.scale_dtypes()[0], p.scale_b.scale_dtypes()[0]);
    let mut v = vec![
        ("a", p.dtype, vec![p.m, p.k], Some(0), range(p.dtype)),
        ("b", p.b_dtype, vec![p.n, p.k], None, range(p.b_dtype)),
        ("scale_a", sa, p.scale_a_shape(), a_axis, SCALES),
        ("scale_b", sb, p.scale_b_shape(), None, SCALES),
    ];
    if p.bias {
        v.push(("bias", bias_dtypes(p.out_dtype)[0], vec![p.n], None, BIAS));
    }
    v
}

impl Driver for ScaledGemmDriver {
    fn rows(&self, p: &Problem) -> Result<usize, String> {
        Ok(expect::<ScaledGemm>(p)?.m)
    }

    fn with_rows(&self, p: &Problem, rows: usize) -> Result<Problem, String> {
        let mut q = expect::<ScaledGemm>(p)?.clone();
        q.m = rows;
        Ok(ScaledGemm::wrap(q))
    }

    fn generate(
        &self,
        p: &Problem,
        _s: &Scalars,
        rng: &mut Rng,
    ) -> Result<Vec<HostTensor>, String> {
        let p = expect::<ScaledGemm>(p)?;
        Ok(inputs(p)
            .into_iter()
            .map(|(name, dtype, shape, axis, (lo, hi))| {
                HostTensor::uniform(name, dtype, shape, axis, rng, lo, hi)
            })
            .collect())
    }

    fn input_shapes(&self, p: &Problem) -> Result<Vec<HostTensor>, String> {
        let p = expect::<ScaledGemm>(p)?;
        Ok(inputs(p)
            .into_iter()
            .map(|(name, dtype, shape, axis, _)| HostTensor::shape_only(name, dtype, shape, axis))
            .collect())
    }

    fn outputs(&self, p: &Problem, _inputs: &[HostTensor]) -> Result<Vec<OutputSpec>, String> {
        let p = expect::<ScaledGemm>(p)?;
        Ok(vec![OutputSpec {
            name: "out",
            dtype: p.out_dtype,
            shape: vec![p.m, p.n],
            batch_axis: Some(0),
            init: Init::Poison,
        }])
    }

    fn oracle(&self, inst: &Instance) -> Result<Vec<Vec<f64>>, String> {
        let p = expect::<ScaledGemm>(&inst.problem)?;
        Ok(vec![scaled_gemm(
            p,
            &inst.input("a")?.data,
            &inst.input("b")?.data,
            &inst.input("scale_a")?.data,
            &inst.input("scale_b")?.data,
            inst.optional("bias"),
        )])
    }

    fn args<'a>(
        &self,
        inst: &Instance,
        ins: &'a [DeviceTensor],
        outs: &'a mut [DeviceTensor],
    ) -> Result<Args<'a>, String> {
        let p = expect::<ScaledGemm>(&inst.problem)?;
        let [out] = outputs_mut(outs, ["out"])?;
        Ok(Args::ScaledGemm(ScaledGemmArgs {
            a: input(ins, "a")?,
            b: input(ins, "b")?,
            scale_a: input(ins, "scale_a")?,
            scale_b: input(ins, "scale_b")?,
            scale_a_mode: p.scale_a,
            scale_b_mode: p.scale_b,
            bias: optional_input(ins, "bias")?,
            out: required(out, "out")?,
        }))
    }
}
