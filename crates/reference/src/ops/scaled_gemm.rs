//! `scaled_gemm` oracle and the `reference.scaled_gemm` kernel.
//!
//! FP8 and FP4 elements are decoded exactly (every e4m3, e5m2 and e2m1 value is an f64; FP4
//! pairs are unpacked low nibble first by `gather`), each is multiplied by the scale its mode
//! gives it (per tensor, per row, per 1x128 / 128x128 block, or per NVFP4 1x16 / MXFP4 1x32
//! block, the scales decoded exactly from f32, e4m3 or e8m0; the last block of a row or column
//! partial when `k` or `n` is not a multiple of the block), the products are summed in f64 in
//! increasing `l`, the bias is added, and the sum is rounded once to `out`'s dtype (by
//! `scatter`). Every product of two e2m1 values and two scales is exact in f64; the sums are
//! exact while they fit 53 bits.

use kernelyard_core::ops::scaled_gemm::{
    ScaledGemm, ScaledGemmArgs, ScaledGemmProblem, OPERAND_DTYPES,
};
use kernelyard_core::{Error, KernelDef, LaunchCtx};
use rayon::prelude::*;

use crate::host::{gather, scatter};
use crate::ops::meta;

/// `out[i, j] = sum_l (sa(i, l) * a[i, l]) * (sb(j, l) * b[j, l]) + bias[j]` over dense arrays
/// (`a [m, k]`, `b [n, k]` as values, FP4 unpacked, scales in the shapes of `p`'s modes,
/// `bias [n]`), in f64.
pub fn scaled_gemm(
    p: &ScaledGemmProblem,
    a: &[f64],
    b: &[f64],
    scale_a: &[f64],
    scale_b: &[f64],
    bias: Option<&[f64]>,
) -> Vec<f64> {
    let (m, n, k) = (p.m, p.n, p.k);
    // Arrays shorter than the problem says (a caller's bug) give NaN, never a panic: rows of
    // `out` without a row of `a` keep this NaN.
    let mut out = vec![f64::NAN; m * n];
    if n == 0 || k == 0 {
        return out;
    }
    let at = |v: &[f64], i: usize| v.get(i).copied().unwrap_or(f64::NAN);
    out.par_chunks_mut(n)
        .zip(a.par_chunks(k))
        .enumerate()
        .for_each(|(i, (row, ai))| {
            for (j, o) in row.iter_mut().enumerate() {
                let bj = b.chunks(k).nth(j).unwrap_or(&[]);
                let mut acc = 0.0f64;
                for l in 0..k {
                    let x = at(scale_a, p.scale_a.a_index(i, l, m, k)) * at(ai, l);
                    let y = at(scale_b, p.scale_b.b_index(j, l, k)) * at(bj, l);
                    acc += x * y;
                }
                *o = acc + bias.map_or(0.0, |b| at(b, j));
            }
        });
    out
}

/// The `reference.scaled_gemm` kernel.
pub static SCALED_GEMM: KernelDef<ScaledGemm> = KernelDef::<ScaledGemm>::new(
    meta::<ScaledGemm>(
        "reference.scaled_gemm",
        module_path!(),
        "FP8 (e4m3/e5m2) GEMM with per-tensor, per-row or block scales, and FP4 (e2m1) with NVFP4 \
         or MXFP4 block scales; exact decoding, f64 sums",
    )
    .dtypes(OPERAND_DTYPES),
    launch,
);
crate::register_kernel!(SCALED_GEMM);

fn launch(
    ctx: &LaunchCtx<'_>,
    a: &mut ScaledGemmArgs<'_>,
    p: &ScaledGemmProblem,
) -> Result<(), Error> {
    crate::ops::with_tactic(ctx, "reference.scaled_gemm", || {
        let bias = a.bias.as_ref().map(|b| gather("bias", b)).transpose()?;
        let y = scaled_gemm(
            p,
            &gather("a", &a.a)?,
            &gather("b", &a.b)?,
            &gather("scale_a", &a.scale_a)?,
            &gather("scale_b", &a.scale_b)?,
            bias.as_deref(),
        );
        scatter("out", &mut a.out, &y)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard_core::dtype::fp4::e2m1_to_f64;
    use kernelyard_core::float8::{F8E4M3, F8E5M2};
    use kernelyard_core::half::bf16;
    use kernelyard_core::ops::scaled_gemm::ScaleMode;
    use kernelyard_core::{Args, DType, Policy, Runtime, Stream, TensorView, TensorViewMut};
    use kernelyard_core::{F4E2M1x2, F8E8M0};

    /// Runs `args` through a runtime on the host and checks that the reference kernel ran.
    fn run_on_host(args: ScaledGemmArgs<'_>) {
        let rt = Runtime::builder().build().unwrap();
        let plan = rt
            .run(
                &Policy::auto(),
                &Stream::host(),
                &mut Args::ScaledGemm(args),
            )
            .unwrap();
        assert_eq!(plan.kernel_name(), "reference.scaled_gemm");
    }

    fn problem(m: usize, n: usize, k: usize, mode: ScaleMode) -> ScaledGemmProblem {
        ScaledGemmProblem {
            m,
            n,
            k,
            dtype: DType::F8E4M3,
            b_dtype: DType::F8E4M3,
            out_dtype: DType::F32,
            scale_a: mode,
            scale_b: mode,
            bias: false,
            align: 1,
        }
    }

    #[test]
    fn per_tensor_by_hand() {
        // A = [[1, 2], [3, 4]], B = [[1, 1], [0.5, -2]] (B^T's columns), sa = 0.5, sb = 4.
        let p = problem(2, 2, 2, ScaleMode::Tensor);
        let y = scaled_gemm(
            &p,
            &[1.0, 2.0, 3.0, 4.0],
            &[1.0, 1.0, 0.5, -2.0],
            &[0.5],
            &[4.0],
            None,
        );
        // (A @ B^T) = [[3, -3.5], [7, -6.5]], times 2.
        assert_eq!(y, vec![6.0, -7.0, 14.0, -13.0]);
        let y = scaled_gemm(
            &p,
            &[1.0, 2.0, 3.0, 4.0],
            &[1.0, 1.0, 0.5, -2.0],
            &[0.5],
            &[4.0],
            Some(&[1.0, 0.25]),
        );
        assert_eq!(y, vec![7.0, -6.75, 15.0, -12.75]);
    }

    #[test]
    fn per_row_by_hand() {
        let p = problem(2, 3, 1, ScaleMode::Row);
        // out[i, j] = sa[i] * a[i] * sb[j] * b[j].
        let y = scaled_gemm(
            &p,
            &[1.0, 2.0],
            &[1.0, 2.0, 3.0],
            &[10.0, 100.0],
            &[1.0, 0.5, 0.25],
            None,
        );
        assert_eq!(y, vec![10.0, 10.0, 7.5, 200.0, 200.0, 150.0]);
    }

    #[test]
    fn block_scales_with_partial_last_blocks() {
        // k = 130: two k-blocks (128 and 2 columns); n = 130: two n-blocks of B (rows 0..128
        // and 128..130). All elements 1, so each output is 128 * sa0 * sb0 + 2 * sa1 * sb1 with
        // the scales of its row of A and block row of B.
        let (m, n, k) = (2, 130, 130);
        let p = problem(m, n, k, ScaleMode::Block);
        assert_eq!(p.scale_a_shape(), vec![2, 2]);
        assert_eq!(p.scale_b_shape(), vec![2, 2]);
        // scale_a is [k-blocks, m] (m fastest): row 0's scales are sa[0] and sa[2].
        let sa = [1.0, 2.0, 10.0, 0.5];
        let sb = [2.0, 3.0, 0.25, 4.0];
        let y = scaled_gemm(&p, &vec![1.0; m * k], &vec![1.0; n * k], &sa, &sb, None);
        let want = |i: usize, j: usize| {
            let jb = j / 128;
            128.0 * sa[i] * sb[2 * jb] + 2.0 * sa[m + i] * sb[2 * jb + 1]
        };
        assert_eq!(want(0, 0), 316.0);
        for i in 0..m {
            for j in 0..n {
                assert_eq!(y[i * n + j], want(i, j), "[{i}, {j}]");
            }
        }
        // Row 1 of A with B's second block row: 128 * 2 * 0.25 + 2 * 0.5 * 4.
        assert_eq!(y[n + 129], 68.0);
    }

    /// Through the runtime: e4m3 A, e5m2 B, block scales, bf16 out with a bias; the result is
    /// the oracle on the decoded values, rounded once to bf16.
    #[test]
    fn runs_through_the_runtime_and_rounds_once() {
        let (m, n, k) = (3, 5, 200);
        let a: Vec<F8E4M3> = (0..m * k)
            .map(|i| F8E4M3::from_f64(((i * 7) % 23) as f64 * 0.25 - 2.75))
            .collect();
        let b: Vec<F8E5M2> = (0..n * k)
            .map(|i| F8E5M2::from_f64(((i * 5) % 19) as f64 * 0.5 - 4.0))
            .collect();
        let sa: Vec<f32> = (0..m * 2).map(|i| 0.5 + i as f32 * 0.125).collect();
        let sb: Vec<f32> = vec![0.75, 1.5];
        let bias: Vec<bf16> = (0..n).map(|j| bf16::from_f64(j as f64 - 2.0)).collect();
        let mut out = vec![bf16::from_f64(f64::NAN); m * n];
        let args = ScaledGemmArgs {
            a: TensorView::from_slice(&a, &[m, k]).unwrap(),
            b: TensorView::from_slice(&b, &[n, k]).unwrap(),
            scale_a: TensorView::from_slice(&sa, &[2, m]).unwrap(),
            scale_b: TensorView::from_slice(&sb, &[1, 2]).unwrap(),
            scale_a_mode: ScaleMode::Block,
            scale_b_mode: ScaleMode::Block,
            bias: Some(TensorView::from_slice(&bias, &[n]).unwrap()),
            out: TensorViewMut::from_slice(&mut out, &[m, n]).unwrap(),
        };
        run_on_host(args);
        let mut p = problem(m, n, k, ScaleMode::Block);
        (p.b_dtype, p.out_dtype, p.bias) = (DType::F8E5M2, DType::BF16, true);
        let want = scaled_gemm(
            &p,
            &a.iter().map(|x| x.to_f64()).collect::<Vec<_>>(),
            &b.iter().map(|x| x.to_f64()).collect::<Vec<_>>(),
            &sa.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
            &sb.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
            Some(&bias.iter().map(|x| x.to_f64()).collect::<Vec<_>>()),
        );
        let got: Vec<f64> = out.iter().map(|x| x.to_f64()).collect();
        let rounded: Vec<f64> = want.iter().map(|&v| bf16::from_f64(v).to_f64()).collect();
        assert_eq!(got, rounded);
        // Not vacuous: the sums are not all representable in bf16 before rounding.
        assert!(want.iter().zip(&rounded).any(|(w, r)| w != r));
    }

    #[test]
    fn nvfp4_blocks_of_16_with_a_partial_last_block() {
        // k = 40: blocks of 16, 16 and 8 values. A's row i has all values 1.5 with scales
        // [1, 2, 4] * (i + 1); B's row j has all values -2 with scales [0.5, 0.25, 8] * (j+1).
        let (m, n, k) = (2, 3, 40);
        let mut p = problem(m, n, k, ScaleMode::Nvfp4);
        p.dtype = DType::F4E2M1X2;
        p.b_dtype = DType::F4E2M1X2;
        let sa: Vec<f64> = (0..m)
            .flat_map(|i| [1.0, 2.0, 4.0].map(|s| s * (i + 1) as f64))
            .collect();
        let sb: Vec<f64> = (0..n)
            .flat_map(|j| [0.5, 0.25, 8.0].map(|s| s * (j + 1) as f64))
            .collect();
        let y = scaled_gemm(&p, &vec![1.5; m * k], &vec![-2.0; n * k], &sa, &sb, None);
        for i in 0..m {
            for j in 0..n {
                let (ri, rj) = ((i + 1) as f64, (j + 1) as f64);
                // 16 * 1.5 * -2 * (1*0.5 + 2*0.25) + 8 * 1.5 * -2 * (4 * 8), times ri * rj.
                let want = ri * rj * (-48.0 * 1.0 - 24.0 * 32.0);
                assert_eq!(y[i * n + j], want, "[{i}, {j}]");
            }
        }
    }

    /// Through the runtime: packed FP4 A and B with MXFP4 (e8m0) scales and with NVFP4 (e4m3)
    /// scales, f32 out; the result is the oracle on the unpacked values (every e2m1 code
    /// appears), rounded once.
    #[test]
    fn fp4_runs_through_the_runtime() {
        let (m, n, k) = (3, 4, 64);
        // A: every code 0..16 in turn; B: codes 0..7 with period 7, so the sums do not cancel.
        let a_vals: Vec<f64> = (0..m * k).map(|i| e2m1_to_f64((i % 16) as u8)).collect();
        let b_vals: Vec<f64> = (0..n * k).map(|i| e2m1_to_f64((i % 7) as u8)).collect();
        let a = F4E2M1x2::pack_slice(&a_vals);
        let b = F4E2M1x2::pack_slice(&b_vals);
        for mode in [ScaleMode::Mxfp4, ScaleMode::Nvfp4] {
            let blocks = k / mode.fp4_block().unwrap();
            let sa_vals: Vec<f64> = (0..m * blocks)
                .map(|i| 2f64.powi(i as i32 % 5 - 2))
                .collect();
            let sb_vals: Vec<f64> = (0..n * blocks)
                .map(|i| 0.5 + (i % 3) as f64 * 0.25)
                .collect();
            let mut out = vec![f32::NAN; m * n];
            let (e8a, e8b): (Vec<F8E8M0>, Vec<F8E8M0>);
            let (e4a, e4b): (Vec<F8E4M3>, Vec<F8E4M3>);
            let (scale_a, scale_b) = if mode == ScaleMode::Mxfp4 {
                // e8m0 holds only powers of two: B's scales round (0.75 -> 1, ties to even).
                e8a = sa_vals.iter().map(|&v| F8E8M0::from_f64(v)).collect();
                e8b = sb_vals.iter().map(|&v| F8E8M0::from_f64(v)).collect();
                (
                    TensorView::from_slice(&e8a, &[m, blocks]).unwrap(),
                    TensorView::from_slice(&e8b, &[n, blocks]).unwrap(),
                )
            } else {
                e4a = sa_vals.iter().map(|&v| F8E4M3::from_f64(v)).collect();
                e4b = sb_vals.iter().map(|&v| F8E4M3::from_f64(v)).collect();
                (
                    TensorView::from_slice(&e4a, &[m, blocks]).unwrap(),
                    TensorView::from_slice(&e4b, &[n, blocks]).unwrap(),
                )
            };
            let sa_dec = gather("scale_a", &scale_a).unwrap();
            let sb_dec = gather("scale_b", &scale_b).unwrap();
            let args = ScaledGemmArgs {
                a: TensorView::from_slice(&a, &[m, k / 2]).unwrap(),
                b: TensorView::from_slice(&b, &[n, k / 2]).unwrap(),
                scale_a,
                scale_b,
                scale_a_mode: mode,
                scale_b_mode: mode,
                bias: None,
                out: TensorViewMut::from_slice(&mut out, &[m, n]).unwrap(),
            };
            run_on_host(args);
            let mut p = problem(m, n, k, mode);
            (p.dtype, p.b_dtype) = (DType::F4E2M1X2, DType::F4E2M1X2);
            let want = scaled_gemm(&p, &a_vals, &b_vals, &sa_dec, &sb_dec, None);
            let got: Vec<f64> = out.iter().map(|&x| f64::from(x)).collect();
            let rounded: Vec<f64> = want.iter().map(|&v| v as f32 as f64).collect();
            assert_eq!(got, rounded, "{mode}");
            // Not vacuous: the decoded e8m0 scales differ from the requested ones (0.75 is not
            // a power of two), and the e4m3 ones hold them exactly.
            let exact = sb_dec == sb_vals;
            assert_eq!(exact, mode == ScaleMode::Nvfp4, "{mode}");
            assert!(want.iter().any(|&v| v != 0.0));
        }
    }

    #[test]
    fn short_arrays_give_nan_not_a_panic() {
        let p = problem(2, 2, 2, ScaleMode::Row);
        let y = scaled_gemm(
            &p,
            &[1.0, 1.0],
            &[1.0, 1.0, 1.0, 1.0],
            &[1.0],
            &[1.0, 1.0],
            None,
        );
        // Row 0 is complete but for nothing; row 1 has no data and no scale.
        assert_eq!(&y[..2], &[2.0, 2.0]);
        assert!(y[2].is_nan() && y[3].is_nan());
    }

    #[test]
    fn fp8_nan_and_e5m2_infinity_propagate() {
        let p = problem(2, 1, 2, ScaleMode::Tensor);
        let nan = F8E4M3::from_bits(0x7F).to_f64();
        let inf = F8E5M2::from_bits(0x7C).to_f64();
        let y = scaled_gemm(&p, &[nan, 1.0, inf, 1.0], &[1.0, 1.0], &[1.0], &[1.0], None);
        assert!(y[0].is_nan());
        assert_eq!(y[1], f64::INFINITY);
    }
}
