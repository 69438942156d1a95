//! `rope` oracle and the `reference.rope` kernel.

use kernelyard_core::ops::rope::{Rope, RopeArgs, RopeProblem, RopeStyle};
use kernelyard_core::{Error, KernelDef, LaunchCtx};
use rayon::prelude::*;

use crate::host::{gather, gather_indices, scatter};
use crate::ops::meta;

/// Rotary position embedding of a dense `[T, H, D]` array, in `f64`; returns dense `[T, H, D]`.
///
/// `inv_freq[i] = theta^(-2i / rotary_dim)` and the angle is `position * inv_freq[i]`. NeoX
/// style rotates the pairs `(j, j + rotary_dim / 2)` with `inv_freq[j]`; GPT-J style rotates
/// `(2i, 2i + 1)` with `inv_freq[i]`; each pair `(a, b)` becomes
/// `(a cos - b sin, b cos + a sin)`. Features at and beyond `rotary_dim` are copied.
///
/// `p` is a validated problem (`rotary_dim` even, at most `head_dim`) and the arrays have its
/// lengths. Tokens are rotated in parallel; each element's arithmetic is fixed.
pub fn rope(p: &RopeProblem, x: &[f64], positions: &[i64], theta: f64) -> Vec<f64> {
    let half = p.rotary_dim / 2;
    let inv_freq: Vec<f64> = (0..half)
        .map(|i| theta.powf(-((2 * i) as f64) / p.rotary_dim as f64))
        .collect();
    let mut out = x.to_vec();
    let token = p.heads * p.head_dim;
    if token == 0 {
        return out;
    }
    out.par_chunks_mut(token)
        .zip(positions.par_iter())
        .for_each(|(tok, &pos)| {
            let (cos, sin): (Vec<f64>, Vec<f64>) = inv_freq
                .iter()
                .map(|f| {
                    let angle = pos as f64 * f;
                    (angle.cos(), angle.sin())
                })
                .unzip();
            for head in tok.chunks_mut(p.head_dim) {
                for i in 0..half {
                    let (ia, ib) = match p.style {
                        RopeStyle::Neox => (i, i + half),
                        RopeStyle::Gptj => (2 * i, 2 * i + 1),
                    };
                    let (a, b) = (head[ia], head[ib]);
                    head[ia] = a * cos[i] - b * sin[i];
                    head[ib] = b * cos[i] + a * sin[i];
                }
            }
        });
    out
}

/// The `reference.rope` kernel.
pub static ROPE: KernelDef<Rope> = KernelDef::<Rope>::new(
    meta::<Rope>(
        "reference.rope",
        module_path!(),
        "rotary position embedding (NeoX or GPT-J) in f64, in place or not",
    ),
    launch,
);
crate::register_kernel!(ROPE);

fn launch(ctx: &LaunchCtx<'_>, a: &mut RopeArgs<'_>, p: &RopeProblem) -> Result<(), Error> {
    crate::ops::with_tactic(ctx, "reference.rope", || {
        // In place (`RopeInput::InPlace`), `x` is a view borrowed from the one writable view:
        // `gather` copies it into a `Vec`, and the borrow ends before `scatter` writes.
        let x = gather("x", &a.input.x())?;
        let positions = gather_indices("positions", &a.positions)?;
        let y = rope(p, &x, &positions, f64::from(a.theta));
        scatter("out", a.input.out_mut(), &y)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard_core::half::bf16;
    use kernelyard_core::ops::rope::RopeArgs;
    use kernelyard_core::{
        Args, DType, Element, Policy, Problem, Runtime, Stream, TensorView, TensorViewMut,
    };

    fn problem(t: usize, h: usize, d: usize, rotary_dim: usize, style: RopeStyle) -> RopeProblem {
        RopeProblem {
            tokens: t,
            heads: h,
            head_dim: d,
            rotary_dim,
            style,
            dtype: DType::F32,
            pos_dtype: DType::I64,
            in_place: false,
            align: 16,
        }
    }

    fn data(n: usize, salt: usize) -> Vec<f64> {
        (0..n)
            .map(|i| ((i * 17 + salt * 3) % 31) as f64 * 0.23 - 3.3)
            .collect()
    }

    /// Written independently of the oracle: per element, as a complex multiplication
    /// `(a + ib) * e^{i angle}` with the frequency taken as `exp(-ln(theta) * 2i / r)`.
    fn naive(p: &RopeProblem, x: &[f64], pos: &[i64], theta: f64) -> Vec<f64> {
        let (d, r) = (p.head_dim, p.rotary_dim);
        // Everything is copied first; the rotated features are then overwritten.
        let mut out = x.to_vec();
        for (t, &position) in pos.iter().enumerate().take(p.tokens) {
            for h in 0..p.heads {
                let base = (t * p.heads + h) * d;
                for i in 0..r / 2 {
                    let freq = (-theta.ln() * (2 * i) as f64 / r as f64).exp();
                    let (s, c) = (position as f64 * freq).sin_cos();
                    let (ia, ib) = if p.style == RopeStyle::Neox {
                        (base + i, base + i + r / 2)
                    } else {
                        (base + 2 * i, base + 2 * i + 1)
                    };
                    let (re, im) = (x[ia], x[ib]);
                    out[ia] = re * c - im * s;
                    out[ib] = re * s + im * c;
                }
            }
        }
        out
    }

    fn assert_close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "[{i}] {x} vs {y}");
        }
    }

    #[test]
    fn matches_naive_both_styles() {
        for style in [RopeStyle::Neox, RopeStyle::Gptj] {
            for rotary_dim in [16, 10] {
                let p = problem(5, 3, 16, rotary_dim, style);
                let x = data(5 * 3 * 16, 1);
                let pos = [0i64, 1, 7, 300, 4095];
                assert_close(
                    &rope(&p, &x, &pos, 10000.0),
                    &naive(&p, &x, &pos, 10000.0),
                    1e-12,
                );
            }
        }
    }

    #[test]
    fn position_zero_is_the_identity() {
        for style in [RopeStyle::Neox, RopeStyle::Gptj] {
            let p = problem(2, 2, 8, 8, style);
            let x = data(32, 2);
            assert_eq!(rope(&p, &x, &[0, 0], 10000.0), x);
        }
    }

    #[test]
    fn rotation_preserves_each_pair_norm() {
        let half = 6;
        for style in [RopeStyle::Neox, RopeStyle::Gptj] {
            let p = problem(3, 2, 12, 12, style);
            let x = data(72, 3);
            let y = rope(&p, &x, &[5, 123, 100_000], 500.0);
            for (hx, hy) in x.chunks(12).zip(y.chunks(12)) {
                for i in 0..half {
                    let (ia, ib) = match style {
                        RopeStyle::Neox => (i, i + half),
                        RopeStyle::Gptj => (2 * i, 2 * i + 1),
                    };
                    let before = hx[ia].hypot(hx[ib]);
                    let after = hy[ia].hypot(hy[ib]);
                    assert!((before - after).abs() < 1e-12 * (1.0 + before));
                }
            }
        }
    }

    #[test]
    fn gptj_equals_neox_on_permuted_input() {
        let (t, h, d, r) = (3, 2, 12, 8);
        let x = data(t * h * d, 4);
        let pos = [2i64, 9, 31];
        // neox[i] = gptj[2i], neox[i + r/2] = gptj[2i + 1]; the tail stays in place.
        let perm: Vec<usize> = (0..d)
            .map(|f| match f {
                f if f < r / 2 => 2 * f,
                f if f < r => 2 * (f - r / 2) + 1,
                f => f,
            })
            .collect();
        let permute = |v: &[f64]| -> Vec<f64> {
            v.chunks(d)
                .flat_map(|head| perm.iter().map(move |&f| head[f]))
                .collect()
        };
        let gptj = rope(&problem(t, h, d, r, RopeStyle::Gptj), &x, &pos, 10000.0);
        let neox = rope(
            &problem(t, h, d, r, RopeStyle::Neox),
            &permute(&x),
            &pos,
            10000.0,
        );
        assert_eq!(permute(&gptj), neox);
    }

    #[test]
    fn partial_rotary_copies_the_tail() {
        let (d, r) = (16, 6);
        for style in [RopeStyle::Neox, RopeStyle::Gptj] {
            let x = data(2 * 3 * d, 5);
            let y = rope(&problem(2, 3, d, r, style), &x, &[11, 12], 10000.0);
            for (hx, hy) in x.chunks(d).zip(y.chunks(d)) {
                assert_eq!(hx[r..], hy[r..]);
                assert_ne!(hx[..r], hy[..r]);
            }
        }
    }

    fn positions() -> Vec<i64> {
        vec![0, 3, 17, 1000, 65535]
    }

    fn launch_matches_oracle<T: Element>(style: RopeStyle, rotary_dim: usize) {
        let (t, h, d) = (5, 3, 16);
        let x: Vec<T> = data(t * h * d, 6).iter().map(|v| T::from_f64(*v)).collect();
        let pos = positions();
        let mut out = vec![T::from_f64(f64::NAN); t * h * d];
        let rt = Runtime::builder().build().unwrap();
        {
            let mut args = RopeArgs::new(
                TensorView::from_slice(&x, &[t, h, d]).unwrap(),
                TensorView::from_slice(&pos, &[t]).unwrap(),
                TensorViewMut::from_slice(&mut out, &[t, h, d]).unwrap(),
            );
            args.rotary_dim = rotary_dim;
            args.style = style;
            args.theta = 500.0;
            let plan = rt
                .run(&Policy::auto(), &Stream::host(), &mut Args::Rope(args))
                .unwrap();
            assert_eq!(plan.kernel_name(), "reference.rope");
        }
        let wide: Vec<f64> = x.iter().map(|v| v.to_f64()).collect();
        let want = rope(&problem(t, h, d, rotary_dim, style), &wide, &pos, 500.0);
        // Half an ulp, relative: the one rounding of the f64 result.
        let half_ulp = match T::DTYPE {
            DType::F32 => f64::powi(2.0, -24),
            _ => f64::powi(2.0, -8),
        };
        for (i, (g, w)) in out.iter().zip(&want).enumerate() {
            let g = g.to_f64();
            assert!(
                (g - w).abs() <= half_ulp * w.abs(),
                "out[{i}] = {g}, oracle {w}"
            );
        }
    }

    #[test]
    fn launch_bf16() {
        launch_matches_oracle::<bf16>(RopeStyle::Neox, 16);
        launch_matches_oracle::<bf16>(RopeStyle::Gptj, 8);
    }

    #[test]
    fn launch_f32() {
        launch_matches_oracle::<f32>(RopeStyle::Gptj, 16);
        launch_matches_oracle::<f32>(RopeStyle::Neox, 10);
    }

    #[test]
    fn in_place_equals_out_of_place() {
        let (t, h, d, r) = (5, 2, 8, 6);
        let x: Vec<bf16> = data(t * h * d, 7)
            .iter()
            .map(|v| bf16::from_f64(*v))
            .collect();
        let pos = positions();
        let rt = Runtime::builder().build().unwrap();
        let mut out = vec![bf16::NAN; t * h * d];
        {
            let mut args = RopeArgs::new(
                TensorView::from_slice(&x, &[t, h, d]).unwrap(),
                TensorView::from_slice(&pos, &[t]).unwrap(),
                TensorViewMut::from_slice(&mut out, &[t, h, d]).unwrap(),
            );
            args.rotary_dim = r;
            args.style = RopeStyle::Gptj;
            rt.run(&Policy::auto(), &Stream::host(), &mut Args::Rope(args))
                .unwrap();
        }
        let mut buf = x.clone();
        {
            let mut args = RopeArgs::in_place(
                TensorViewMut::from_slice(&mut buf, &[t, h, d]).unwrap(),
                TensorView::from_slice(&pos, &[t]).unwrap(),
            );
            args.rotary_dim = r;
            args.style = RopeStyle::Gptj;
            let plan = rt
                .run(&Policy::auto(), &Stream::host(), &mut Args::Rope(args))
                .unwrap();
            assert_eq!(plan.kernel_name(), "reference.rope");
            assert!(matches!(plan.problem(), Problem::Rope(p) if p.in_place));
        }
        let bits = |v: &[bf16]| v.iter().map(|e| e.to_bits()).collect::<Vec<u16>>();
        assert_eq!(bits(&buf), bits(&out));
        assert_ne!(bits(&buf), bits(&x));
    }
}
