//! Checks shared by the CPU tests (`cpu.rs`) and the GPU tests (`cuda.rs`): each operator of
//! kernelyard-candle against candle's own implementation on the same tensors, on a given
//! device and dtype, within the tolerance contract of docs/TOLERANCES.md.
//!
//! Inputs come from a seeded generator (the same values on every device), made in f32 and
//! rounded once to the dtype; both sides get the same rounded tensors. For f16 and bf16,
//! candle's side is computed in f32 from those same half-precision inputs and rounded once at
//! the end (candle's CPU softmax, rms_norm and rope compute in the half type itself, and its
//! log_softmax, silu-then-mul and matmul-softmax-matmul attention round every intermediate), so
//! the comparison measures kernelyard's error, which the contract bounds, and not candle's
//! intermediate roundings. Matmul runs natively in the dtype (f32 accumulation on both sides).
#![allow(dead_code)]

use candle_core::{DType, Device, IndexOp, Result, Tensor, D};
use kernelyard_candle::{AttentionOptions, KyTensorExt, LogprobsOptions, Policy, RopeOptions};

/// `(rel_l2, max_abs)` bounds of docs/TOLERANCES.md for an op at a dtype.
pub fn tolerance(op: &str, dtype: DType) -> (f64, f64) {
    let half = |f16: (f64, f64)| match dtype {
        DType::F16 => f16,
        _ => (8e-3, 1.6e-2),
    };
    match (op, dtype) {
        ("gemm", DType::F32) => (2e-5, 1e-5),
        ("rope", DType::F32) => (3e-4, 1e-3),
        ("attention", DType::F32) => (2e-5, 2e-5),
        ("softmax", DType::F32) | ("silu_mul", DType::F32) => (1e-5, 1e-5),
        ("token_logprobs", _) => (1e-5, 2e-5),
        (_, DType::F32) => (1e-5, 2e-5),
        ("softmax", _) => half((2e-3, 2e-3)),
        _ => half((1e-3, 2e-3)),
    }
}

/// Deterministic pseudo-random values in `[-scale, scale)` (a 64-bit LCG).
pub fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (s >> 40) as f32 / (1u64 << 24) as f32;
            (2.0 * u - 1.0) * scale
        })
        .collect()
}

/// A tensor of `shape` with [`values`], rounded once to `dtype`, on `dev`.
pub fn rand(shape: &[usize], seed: u64, scale: f32, dtype: DType, dev: &Device) -> Result<Tensor> {
    let n = shape.iter().product();
    Tensor::from_vec(values(n, seed, scale), shape, &Device::Cpu)?
        .to_dtype(dtype)?
        .to_device(dev)
}

/// Elements as f64 on the host.
pub fn host(t: &Tensor) -> Result<Vec<f64>> {
    t.to_dtype(DType::F64)?
        .flatten_all()?
        .to_device(&Device::Cpu)?
        .to_vec1::<f64>()
}

/// `(rel_l2, max_abs)` of `got` against `want` as docs/TOLERANCES.md defines them.
pub fn errors(got: &Tensor, want: &Tensor) -> Result<(f64, f64)> {
    assert_eq!(got.dims(), want.dims(), "shapes differ");
    let (g, w) = (host(got)?, host(want)?);
    let (mut num, mut den, mut max_diff, mut max_want) = (0f64, 0f64, 0f64, 0f64);
    for (&g, &w) in g.iter().zip(&w) {
        assert!(
            g.is_finite() == w.is_finite(),
            "finite mismatch: got {g}, want {w}"
        );
        if !w.is_finite() {
            continue;
        }
        num += (g - w) * (g - w);
        den += w * w;
        max_diff = max_diff.max((g - w).abs());
        max_want = max_want.max(w.abs());
    }
    let rel = if den < 1e-60 { 0.0 } else { (num / den).sqrt() };
    Ok((rel, max_diff / max_want.max(1.0)))
}

/// Asserts `got` is within the tolerance of `op` at `dtype` of `want`.
pub fn assert_close(what: &str, op: &str, dtype: DType, got: &Tensor, want: &Tensor) -> Result<()> {
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtypes differ");
    let (rel, abs) = errors(got, want)?;
    let (tr, ta) = tolerance(op, dtype);
    if std::env::var_os("KERNELYARD_CANDLE_ERRORS").is_some() {
        eprintln!("{what} ({dtype:?}): rel_l2 {rel:.2e} (bound {tr:.0e}), max_abs {abs:.2e} (bound {ta:.0e})");
    }
    assert!(
        rel <= tr && abs <= ta,
        "{what} ({dtype:?}): rel_l2 {rel:.3e} (bound {tr:.1e}), max_abs {abs:.3e} (bound {ta:.1e})"
    );
    Ok(())
}

/// Asserts two tensors hold the same bits.
pub fn assert_bitwise(what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes differ");
    let (a, b) = (host(a)?, host(b)?);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            x.to_bits() == y.to_bits(),
            "{what}: element {i} differs: {x} vs {y}"
        );
    }
    Ok(())
}

/// candle computes `f` in f32 from `x`'s values and rounds the result to `x`'s dtype once.
fn in_f32(dtype: DType, f: impl FnOnce(DType) -> Result<Tensor>) -> Result<Tensor> {
    f(DType::F32)?.to_dtype(dtype)
}

pub fn check_rms_norm(dev: &Device, dtype: DType) -> Result<()> {
    let x = rand(&[2, 5, 96], 1, 2.0, dtype, dev)?;
    let w = rand(&[96], 2, 1.0, dtype, dev)?;
    let got = x.ky_rms_norm(&w, 1e-6)?;
    let want = in_f32(dtype, |f| {
        candle_nn::ops::rms_norm(&x.to_dtype(f)?, &w.to_dtype(f)?, 1e-6)
    })?;
    assert_close("rms_norm", "rms_norm", dtype, &got, &want)
}

pub fn check_softmax(dev: &Device, dtype: DType) -> Result<()> {
    let x = rand(&[3, 7, 50], 3, 4.0, dtype, dev)?;
    let got = x.ky_softmax()?;
    let want = in_f32(dtype, |f| candle_nn::ops::softmax_last_dim(&x.to_dtype(f)?))?;
    assert_close("softmax", "softmax", dtype, &got, &want)
}

pub fn check_log_softmax(dev: &Device, dtype: DType) -> Result<()> {
    let x = rand(&[3, 7, 50], 4, 4.0, dtype, dev)?;
    let got = x.ky_log_softmax()?;
    let want = in_f32(dtype, |f| {
        candle_nn::ops::log_softmax(&x.to_dtype(f)?, D::Minus1)
    })?;
    assert_close("log_softmax", "log_softmax", dtype, &got, &want)
}

pub fn check_silu_mul(dev: &Device, dtype: DType) -> Result<()> {
    let d = 40;
    let x = rand(&[4, 6, 2 * d], 5, 3.0, dtype, dev)?;
    let silu_mul = |gate: &Tensor, up: &Tensor| {
        in_f32(dtype, |f| {
            candle_nn::ops::silu(&gate.to_dtype(f)?)? * up.to_dtype(f)?
        })
    };
    let got = x.ky_silu_mul()?;
    let want = silu_mul(&x.narrow(D::Minus1, 0, d)?, &x.narrow(D::Minus1, d, d)?)?;
    assert_eq!(got.dims(), &[4, 6, d]);
    assert_close("silu_mul fused", "silu_mul", dtype, &got, &want)?;

    let gate = rand(&[4, 6, d], 6, 3.0, dtype, dev)?;
    let up = rand(&[4, 6, d], 7, 3.0, dtype, dev)?;
    let got = gate.ky_silu_mul_split(&up)?;
    let want = silu_mul(&gate, &up)?;
    assert_close("silu_mul split", "silu_mul", dtype, &got, &want)
}

/// `cos` and `sin` of `positions [B, T]` times `theta^(-2i / d)`, `[B, T, d / 2]` in `dtype`.
pub fn cos_sin(
    positions: &[i64],
    b: usize,
    t: usize,
    d: usize,
    theta: f32,
    dtype: DType,
    dev: &Device,
) -> Result<(Tensor, Tensor)> {
    let half = d / 2;
    let mut ang = Vec::with_capacity(b * t * half);
    for &p in positions {
        for i in 0..half {
            let inv = 1.0 / theta.powf(2.0 * i as f32 / d as f32);
            ang.push(p as f32 * inv);
        }
    }
    let ang = Tensor::from_vec(ang, (b, t, half), &Device::Cpu)?;
    Ok((
        ang.cos()?.to_dtype(dtype)?.to_device(dev)?,
        ang.sin()?.to_dtype(dtype)?.to_device(dev)?,
    ))
}

pub fn check_rope(dev: &Device, dtype: DType) -> Result<()> {
    let (b, t, h, d) = (2, 5, 3, 16);
    let theta = 10_000.0;
    let x = rand(&[b, t, h, d], 8, 2.0, dtype, dev)?;
    // Batch entry 1 continues at position 7 (a second sequence mid-decode).
    let pos: Vec<i64> = (0..t as i64).chain(7..7 + t as i64).collect();
    let positions = Tensor::from_vec(pos.clone(), (b, t), dev)?;
    let (cos, sin) = cos_sin(&pos, b, t, d, theta, DType::F32, dev)?;
    let xf = x.to_dtype(DType::F32)?;

    // NeoX on [B, T, H, D]: candle's rope_thd.
    let got = x.ky_rope(&positions, theta)?;
    let want = candle_nn::rotary_emb::rope_thd(&xf, &cos, &sin)?.to_dtype(dtype)?;
    assert_close("rope neox [B,T,H,D]", "rope", dtype, &got, &want)?;

    // NeoX against candle's [B, H, T, D] rope.
    let bhtd = xf.transpose(1, 2)?.contiguous()?;
    let want = candle_nn::rotary_emb::rope(&bhtd, &cos, &sin)?
        .transpose(1, 2)?
        .contiguous()?
        .to_dtype(dtype)?;
    assert_close("rope neox vs rope", "rope", dtype, &got, &want)?;

    // GPT-J (interleaved) against candle's rope_i; i32 positions.
    let pos32 = Tensor::from_vec(
        pos.iter().map(|&p| p as i32).collect::<Vec<_>>(),
        (b, t),
        dev,
    )?;
    let got = x.ky_rope_with(&pos32, &RopeOptions::gptj(theta), Policy::auto())?;
    let want = candle_nn::rotary_emb::rope_i(&bhtd, &cos, &sin)?
        .transpose(1, 2)?
        .contiguous()?
        .to_dtype(dtype)?;
    assert_close("rope gptj", "rope", dtype, &got, &want)?;

    // In place: the same bits as out of place.
    let y = x.copy()?;
    y.ky_rope_(&positions, theta)?;
    let out_of_place = x.ky_rope(&positions, theta)?;
    assert_bitwise("rope in place", &y, &out_of_place)?;
    // u32 positions (candle's usual id dtype) give the same result as i64.
    let pos_u32 = positions.to_dtype(DType::U32)?;
    assert_bitwise(
        "rope u32 positions",
        &x.ky_rope(&pos_u32, theta)?,
        &out_of_place,
    )?;
    Ok(())
}

pub fn check_token_logprobs(dev: &Device, dtype: DType) -> Result<()> {
    let (t, v) = (6, 100);
    let logits = rand(&[2, t / 2, v], 9, 6.0, dtype, dev)?;
    let ids: Vec<i64> = vec![3, 99, 0, -100, 42, 57];
    let targets = Tensor::from_vec(ids.clone(), (2, t / 2), dev)?;
    let got = logits.ky_token_logprobs(&targets)?;
    assert_eq!(got.dims(), &[2, t / 2]);
    assert_eq!(got.dtype(), DType::F32);
    // candle: log_softmax in f32 of the same logits, then gather; ignored rows give 0.
    let ls =
        candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?.reshape((t, v))?;
    let safe: Vec<u32> = ids.iter().map(|&i| i.max(0) as u32).collect();
    let idx = Tensor::from_vec(safe, (t, 1), dev)?;
    let gathered = ls.gather(&idx, 1)?.reshape(t)?;
    let keep: Vec<f32> = ids
        .iter()
        .map(|&i| if i == -100 { 0.0 } else { 1.0 })
        .collect();
    let want = (gathered * Tensor::from_vec(keep, t, dev)?)?.reshape((2, t / 2))?;
    assert_close("token_logprobs", "token_logprobs", dtype, &got, &want)?;

    // Temperature 2 is log_softmax(logits / 2).
    let opts = LogprobsOptions {
        temperature: 2.0,
        ..LogprobsOptions::default()
    };
    let got = logits.ky_token_logprobs_with(&targets, &opts, Policy::auto())?;
    let ls = candle_nn::ops::log_softmax(&(logits.to_dtype(DType::F32)? / 2.0)?, D::Minus1)?
        .reshape((t, v))?;
    let keep: Vec<f32> = ids
        .iter()
        .map(|&i| if i == -100 { 0.0 } else { 1.0 })
        .collect();
    let want =
        (ls.gather(&idx, 1)?.reshape(t)? * Tensor::from_vec(keep, t, dev)?)?.reshape((2, t / 2))?;
    assert_close("token_logprobs T=2", "token_logprobs", dtype, &got, &want)?;

    // u32 targets (no ignore index).
    let ids_u32: Vec<u32> = vec![3, 99, 0, 1, 42, 57];
    let t_u32 = Tensor::from_vec(ids_u32.clone(), (2, t / 2), dev)?;
    let t_i64 = Tensor::from_vec(
        ids_u32.iter().map(|&i| i as i64).collect::<Vec<_>>(),
        (2, t / 2),
        dev,
    )?;
    assert_bitwise(
        "token_logprobs u32 targets",
        &logits.ky_token_logprobs(&t_u32)?,
        &logits.ky_token_logprobs(&t_i64)?,
    )
}

/// candle's attention in f32 from `[B, S, H, D]` operands: `softmax(q k^T * scale + mask) v`
/// with key/value heads repeated for GQA, bottom-right causal mask; the result `[B, Sq, Hq, D]`
/// rounded to the operands' dtype.
pub fn candle_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    causal: bool,
    scale: f64,
) -> Result<Tensor> {
    let dtype = q.dtype();
    let f = DType::F32;
    let (b, sq, hq, d) = q.dims4()?;
    let (_, skv, hkv, _) = k.dims4()?;
    let rep = hq / hkv;
    let heads = |x: &Tensor, s: usize| -> Result<Tensor> {
        // [B, S, Hkv, D] -> [B, Hq, S, D], head h reading kv head h / rep.
        let x = x.to_dtype(f)?.transpose(1, 2)?; // [B, Hkv, S, D]
        let x = x.unsqueeze(2)?.broadcast_as((b, hkv, rep, s, d))?;
        x.reshape((b, hkv * rep, s, d))
    };
    let q = q.to_dtype(f)?.transpose(1, 2)?.contiguous()?;
    let k = heads(k, skv)?.contiguous()?;
    let v = heads(v, skv)?.contiguous()?;
    let mut scores = (q.matmul(&k.t()?)? * scale)?;
    if causal {
        let mask: Vec<f32> = (0..sq)
            .flat_map(|i| {
                (0..skv).map(move |j| {
                    if j + sq > i + skv {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (sq, skv), q.device())?;
        scores = scores.broadcast_add(&mask)?;
    }
    let p = candle_nn::ops::softmax_last_dim(&scores)?;
    p.matmul(&v)?.transpose(1, 2)?.contiguous()?.to_dtype(dtype)
}

pub fn check_attention(dev: &Device, dtype: DType, head_dim: usize) -> Result<()> {
    for (sq, skv, causal) in [(9, 9, true), (9, 9, false), (5, 9, true), (70, 130, true)] {
        let (b, hq, hkv) = (2, 4, 2);
        let q = rand(&[b, sq, hq, head_dim], 10, 1.0, dtype, dev)?;
        let k = rand(&[b, skv, hkv, head_dim], 11, 1.0, dtype, dev)?;
        let v = rand(&[b, skv, hkv, head_dim], 12, 1.0, dtype, dev)?;
        let opts = AttentionOptions {
            causal,
            scale: None,
        };
        let got = q.ky_attention(&k, &v, &opts)?;
        let want = candle_attention(&q, &k, &v, causal, 1.0 / (head_dim as f64).sqrt())?;
        assert_close(
            &format!("attention sq={sq} skv={skv} causal={causal}"),
            "attention",
            dtype,
            &got,
            &want,
        )?;
    }
    // An explicit scale, and a rank-3 [S, H, D] sequence.
    let q = rand(&[9, 4, head_dim], 13, 1.0, dtype, dev)?;
    let k = rand(&[9, 4, head_dim], 14, 1.0, dtype, dev)?;
    let got = q.ky_attention(&k, &k, &AttentionOptions::causal().with_scale(0.3))?;
    let want = candle_attention(
        &q.unsqueeze(0)?,
        &k.unsqueeze(0)?,
        &k.unsqueeze(0)?,
        true,
        0.3,
    )?
    .squeeze(0)?;
    assert_close(
        "attention rank 3, scale 0.3",
        "attention",
        dtype,
        &got,
        &want,
    )
}

pub fn check_matmul(dev: &Device, dtype: DType, policy: &Policy) -> Result<()> {
    let a = rand(&[2, 7, 64], 15, 1.0, dtype, dev)?;
    let w = rand(&[48, 64], 16, 1.0, dtype, dev)?; // [out, in]
                                                   // A Linear layer: x @ w.t() (folded rows, B transposed).
    let got = a.ky_matmul(&w.t()?, policy)?;
    let want = a.broadcast_matmul(&w.t()?)?;
    assert_close("matmul x @ w.t()", "gemm", dtype, &got, &want)?;
    // Row-major B.
    let b = rand(&[64, 48], 17, 1.0, dtype, dev)?;
    assert_close(
        "matmul x @ b",
        "gemm",
        dtype,
        &a.ky_matmul(&b, policy)?,
        &a.broadcast_matmul(&b)?,
    )?;
    // Batched, both operands batched.
    let bb = rand(&[2, 64, 48], 18, 1.0, dtype, dev)?;
    assert_close(
        "matmul batched",
        "gemm",
        dtype,
        &a.ky_matmul(&bb, policy)?,
        &a.matmul(&bb)?,
    )?;
    // A transposed ([k, m] stored), B transposed.
    let at = rand(&[64, 7], 19, 1.0, dtype, dev)?.t()?;
    assert_close(
        "matmul a.t() @ w.t()",
        "gemm",
        dtype,
        &at.ky_matmul(&w.t()?, policy)?,
        &at.matmul(&w.t()?)?,
    )?;
    // A narrowed along its columns: row stride 64 > 32 columns, start offset 16 (candle's CUDA
    // matmul takes no such layout, so candle multiplies a contiguous copy).
    let an = a.i((.., .., 16..48))?;
    let bn = rand(&[32, 48], 20, 1.0, dtype, dev)?;
    assert_close(
        "matmul narrowed a",
        "gemm",
        dtype,
        &an.ky_matmul(&bn, policy)?,
        &an.contiguous()?.broadcast_matmul(&bn)?,
    )?;
    // A whose batch does not fold into rows (a narrowed sequence): a broadcast B.
    let big = rand(&[3, 6, 64], 21, 1.0, dtype, dev)?;
    let seq = big.narrow(1, 1, 4)?;
    assert_close(
        "matmul unfoldable batch",
        "gemm",
        dtype,
        &seq.ky_matmul(&w.t()?, policy)?,
        &seq.contiguous()?.broadcast_matmul(&w.t()?)?,
    )?;
    // B broadcast over the batch with broadcast_as (batch stride 0).
    let bcast = b.unsqueeze(0)?.broadcast_as((2, 64, 48))?;
    assert_close(
        "matmul broadcast_as b",
        "gemm",
        dtype,
        &a.ky_matmul(&bcast, policy)?,
        &a.broadcast_matmul(&b)?,
    )
}

/// Row `r` of an `m`-row product has the same bits whatever `m`: computed with `m` rows, and
/// alone.
pub fn check_matmul_batch_invariance(dev: &Device, dtype: DType, k: usize, n: usize) -> Result<()> {
    let policy = Policy::auto().batch_invariant();
    let w = rand(&[n, k], 22, 1.0, dtype, dev)?;
    let all = rand(&[257, k], 23, 1.0, dtype, dev)?;
    let full = all.ky_matmul(&w.t()?, &policy)?;
    for m in [1usize, 3, 64, 257] {
        let part = all.narrow(0, 0, m)?.ky_matmul(&w.t()?, &policy)?;
        assert_bitwise(
            &format!("rows 0..{m} vs the 257-row product"),
            &part,
            &full.narrow(0, 0, m)?,
        )?;
    }
    for r in [0usize, 5, 100, 256] {
        let one = all.narrow(0, r, 1)?.ky_matmul(&w.t()?, &policy)?;
        assert_bitwise(&format!("row {r} alone"), &one, &full.narrow(0, r, 1)?)?;
    }
    Ok(())
}

/// Every operator at `dtype` on `dev`.
pub fn check_all(dev: &Device, dtype: DType) -> Result<()> {
    check_rms_norm(dev, dtype)?;
    check_softmax(dev, dtype)?;
    check_log_softmax(dev, dtype)?;
    check_silu_mul(dev, dtype)?;
    check_rope(dev, dtype)?;
    check_token_logprobs(dev, dtype)?;
    Ok(())
}
