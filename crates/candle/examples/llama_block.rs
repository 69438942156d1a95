//! A Llama-style decoder block written twice, with kernelyard's operators and in plain candle,
//! on the same weights and inputs: the outputs must agree, and both are timed.
//!
//! The block: `h = rms_norm(x)`, q/k/v projections, rotary embedding, causal attention (GQA
//! when `--kv-heads` is below `--heads`), the output projection and a residual add, then
//! `rms_norm`, the gate and up projections, SwiGLU, the down projection and a residual add.
//! The kernelyard version keeps activations in `[B, T, H, D]` (no transposes), rotates q and k
//! in place and computes gate and up with one fused projection; the candle version is what
//! candle-transformers' Llama does (`[B, H, T, D]`, matmul-softmax-matmul attention with a
//! mask, `candle_nn` rms_norm / rope / silu).
//!
//! ```text
//! cargo run --release -p kernelyard-candle --example llama_block -- --device cpu
//! cargo run --release -p kernelyard-candle --features cuda --example llama_block -- --device cuda
//! ```
//! `--device` defaults to `cuda` in a build with the `cuda` feature, `cpu` otherwise.
//! Options: `--seq`, `--batch`, `--hidden`, `--heads`, `--kv-heads`, `--inter`, `--dtype`
//! (f32, bf16, f16), `--iters`, `--batch-invariant` (the matmuls' policy). Defaults: on the CPU
//! a small f32 block (CI); on CUDA seq 1024, hidden 4096, 32 heads of 128 (as many kv heads
//! unless `--kv-heads`), intermediate 11008, bf16. kernelyard's CUDA attention takes f16 and
//! bf16 with head dims 64 and 128: `--dtype f32` on CUDA fails with the selection report (it is
//! not run on the CPU instead).
//!
//! Agreement: `rel_l2` of the block's update (`out - x`, which the residual would otherwise
//! hide) and of the output, kernelyard against candle, at most 1e-4 in f32 (both sides
//! accumulate in f32 or better), 5e-3 in f16 and 3e-2 in bf16 (each side rounds a dozen
//! intermediate results to the dtype, about 5 bf16 unit roundoffs in all). The process exits
//! with status 1 if they disagree.

use std::time::Instant;

use candle_core::{DType, Device, Result, Tensor};
use kernelyard_candle::{capture_plans, AttentionOptions, KyTensorExt, Policy};

/// The block's sizes and run settings.
struct Config {
    batch: usize,
    seq: usize,
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    inter: usize,
    dtype: DType,
    iters: usize,
    batch_invariant: bool,
    eps: f32,
    theta: f32,
}

impl Config {
    fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
}

fn parse() -> std::result::Result<(Device, Config), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| -> Option<&str> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let num = |name: &str, default: usize| -> std::result::Result<usize, String> {
        get(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("{name} takes a number, got `{v}`"))
        })
    };
    // The default device is the build's: CUDA when built with the `cuda` feature (a machine
    // without a CUDA device is then an error, not a run on the CPU).
    let default_device = if cfg!(feature = "cuda") {
        "cuda"
    } else {
        "cpu"
    };
    let cuda = match get("--device").unwrap_or(default_device) {
        "cpu" => false,
        "cuda" => true,
        other => return Err(format!("--device is cpu or cuda, got `{other}`")),
    };
    let device = if cuda {
        Device::new_cuda(0).map_err(|e| format!("cannot open CUDA device 0: {e}"))?
    } else {
        Device::Cpu
    };
    // (batch, seq, hidden, heads, kv_heads, inter, dtype, iters)
    let (b, t, h, nh, nkv, i, dt, it) = if cuda {
        (1, 1024, 4096, 32, None, 11008, "bf16", 20)
    } else {
        (2, 16, 64, 4, Some(2), 172, "f32", 3)
    };
    let heads = num("--heads", nh)?;
    let dtype = match get("--dtype").unwrap_or(dt) {
        "f32" => DType::F32,
        "bf16" => DType::BF16,
        "f16" => DType::F16,
        other => return Err(format!("--dtype is f32, bf16 or f16, got `{other}`")),
    };
    let cfg = Config {
        batch: num("--batch", b)?,
        seq: num("--seq", t)?,
        hidden: num("--hidden", h)?,
        heads,
        kv_heads: num("--kv-heads", nkv.unwrap_or(heads))?,
        inter: num("--inter", i)?,
        dtype,
        iters: num("--iters", it)?.max(1),
        batch_invariant: args.iter().any(|a| a == "--batch-invariant"),
        eps: 1e-5,
        theta: 10_000.0,
    };
    if cfg.heads == 0
        || cfg.kv_heads == 0
        || !cfg.hidden.is_multiple_of(cfg.heads)
        || !cfg.heads.is_multiple_of(cfg.kv_heads)
    {
        return Err("hidden must be a multiple of heads, and heads of kv-heads".into());
    }
    Ok((device, cfg))
}

/// The block's weights, stored as candle-transformers stores them (`[out, in]`).
struct Weights {
    attn_norm: Tensor,
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    wo: Tensor,
    mlp_norm: Tensor,
    w_gate: Tensor,
    w_up: Tensor,
    w_down: Tensor,
    /// `cat([w_gate, w_up])`: one projection whose output is kernelyard's fused SwiGLU input.
    w_gate_up: Tensor,
}

impl Weights {
    fn random(c: &Config, dev: &Device) -> Result<Self> {
        let d = c.head_dim();
        let w = |rows: usize, cols: usize| -> Result<Tensor> {
            let std = 1.0 / (cols as f64).sqrt();
            Tensor::randn(0f32, std as f32, (rows, cols), dev)?.to_dtype(c.dtype)
        };
        let norm = || -> Result<Tensor> {
            (Tensor::randn(0f32, 0.1, c.hidden, dev)? + 1.0)?.to_dtype(c.dtype)
        };
        let (w_gate, w_up) = (w(c.inter, c.hidden)?, w(c.inter, c.hidden)?);
        let w_gate_up = Tensor::cat(&[&w_gate, &w_up], 0)?;
        Ok(Weights {
            attn_norm: norm()?,
            wq: w(c.heads * d, c.hidden)?,
            wk: w(c.kv_heads * d, c.hidden)?,
            wv: w(c.kv_heads * d, c.hidden)?,
            wo: w(c.hidden, c.heads * d)?,
            mlp_norm: norm()?,
            w_gate,
            w_up,
            w_down: w(c.hidden, c.inter)?,
            w_gate_up,
        })
    }
}

/// The block with kernelyard's operators; `positions [B, T]`.
fn ky_block(x: &Tensor, positions: &Tensor, w: &Weights, c: &Config) -> Result<Tensor> {
    let (b, t, d) = (c.batch, c.seq, c.head_dim());
    let policy = if c.batch_invariant {
        Policy::auto().batch_invariant()
    } else {
        Policy::auto()
    };
    let h = x.ky_rms_norm(&w.attn_norm, c.eps)?;
    let q = h
        .ky_matmul(&w.wq.t()?, &policy)?
        .reshape((b, t, c.heads, d))?;
    let k = h
        .ky_matmul(&w.wk.t()?, &policy)?
        .reshape((b, t, c.kv_heads, d))?;
    let v = h
        .ky_matmul(&w.wv.t()?, &policy)?
        .reshape((b, t, c.kv_heads, d))?;
    q.ky_rope_(positions, c.theta)?;
    k.ky_rope_(positions, c.theta)?;
    let a = q.ky_attention(&k, &v, &AttentionOptions::causal())?;
    let a = a.reshape((b, t, c.hidden))?;
    let x = (x + a.ky_matmul(&w.wo.t()?, &policy)?)?;
    let h = x.ky_rms_norm(&w.mlp_norm, c.eps)?;
    let m = h.ky_matmul(&w.w_gate_up.t()?, &policy)?.ky_silu_mul()?;
    x + m.ky_matmul(&w.w_down.t()?, &policy)?
}

/// What plain candle needs besides the weights: rotary tables and the causal mask.
struct CandleAux {
    cos: Tensor,
    sin: Tensor,
    mask: Tensor,
}

impl CandleAux {
    fn new(c: &Config, dev: &Device) -> Result<Self> {
        let d = c.head_dim();
        let inv: Vec<f32> = (0..d / 2)
            .map(|i| 1.0 / c.theta.powf(2.0 * i as f32 / d as f32))
            .collect();
        let inv = Tensor::from_vec(inv, (1, d / 2), dev)?;
        let pos = Tensor::arange(0u32, c.seq as u32, dev)?
            .to_dtype(DType::F32)?
            .reshape((c.seq, 1))?;
        let ang = pos.broadcast_mul(&inv)?;
        let mask: Vec<f32> = (0..c.seq)
            .flat_map(|i| (0..c.seq).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        Ok(CandleAux {
            cos: ang.cos()?.to_dtype(c.dtype)?,
            sin: ang.sin()?.to_dtype(c.dtype)?,
            mask: Tensor::from_vec(mask, (c.seq, c.seq), dev)?.to_dtype(c.dtype)?,
        })
    }
}

/// `[B, T, Hkv, D]` keys or values repeated to `[B, Hq, T, D]`.
fn repeat_kv(x: Tensor, c: &Config) -> Result<Tensor> {
    let (b, t, d, rep) = (c.batch, c.seq, c.head_dim(), c.heads / c.kv_heads);
    let x = x.transpose(1, 2)?; // [B, Hkv, T, D]
    if rep == 1 {
        return x.contiguous();
    }
    x.unsqueeze(2)?
        .broadcast_as((b, c.kv_heads, rep, t, d))?
        .reshape((b, c.heads, t, d))
}

/// The same block in plain candle, as candle-transformers' Llama computes it.
fn candle_block(x: &Tensor, aux: &CandleAux, w: &Weights, c: &Config) -> Result<Tensor> {
    let (b, t, d) = (c.batch, c.seq, c.head_dim());
    let h = candle_nn::ops::rms_norm(x, &w.attn_norm, c.eps)?;
    let proj = |h: &Tensor, w: &Tensor| h.broadcast_matmul(&w.t()?);
    let q = proj(&h, &w.wq)?
        .reshape((b, t, c.heads, d))?
        .transpose(1, 2)?
        .contiguous()?;
    let k = proj(&h, &w.wk)?
        .reshape((b, t, c.kv_heads, d))?
        .transpose(1, 2)?
        .contiguous()?;
    let v = proj(&h, &w.wv)?.reshape((b, t, c.kv_heads, d))?;
    let q = candle_nn::rotary_emb::rope(&q, &aux.cos, &aux.sin)?;
    let k = candle_nn::rotary_emb::rope(&k, &aux.cos, &aux.sin)?;
    let k = repeat_kv(k.transpose(1, 2)?, c)?;
    let v = repeat_kv(v, c)?;
    let scale = 1.0 / (d as f64).sqrt();
    let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&aux.mask)?;
    let att = candle_nn::ops::softmax_last_dim(&att)?;
    let y = att
        .matmul(&v.contiguous()?)?
        .transpose(1, 2)?
        .reshape((b, t, c.hidden))?;
    let x = (x + proj(&y, &w.wo)?)?;
    let h = candle_nn::ops::rms_norm(&x, &w.mlp_norm, c.eps)?;
    let m = (candle_nn::ops::silu(&proj(&h, &w.w_gate)?)? * proj(&h, &w.w_up)?)?;
    x + proj(&m, &w.w_down)?
}

/// `rel_l2(got, want)` over f64 copies on the host.
fn rel_l2(got: &Tensor, want: &Tensor) -> Result<f64> {
    let host = |t: &Tensor| -> Result<Vec<f64>> {
        t.to_dtype(DType::F64)?
            .flatten_all()?
            .to_device(&Device::Cpu)?
            .to_vec1::<f64>()
    };
    let (g, w) = (host(got)?, host(want)?);
    let (mut num, mut den) = (0f64, 0f64);
    for (g, w) in g.iter().zip(&w) {
        num += (g - w) * (g - w);
        den += w * w;
    }
    Ok(if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    })
}

/// Milliseconds per call of `f`, after `warmup` calls, over `iters` calls, the device
/// synchronised before and after.
fn time(dev: &Device, warmup: usize, iters: usize, f: &dyn Fn() -> Result<Tensor>) -> Result<f64> {
    for _ in 0..warmup {
        f()?;
    }
    dev.synchronize()?;
    let start = Instant::now();
    for _ in 0..iters {
        f()?;
    }
    dev.synchronize()?;
    Ok(start.elapsed().as_secs_f64() * 1e3 / iters as f64)
}

fn run(dev: &Device, c: &Config) -> Result<bool> {
    let w = Weights::random(c, dev)?;
    let aux = CandleAux::new(c, dev)?;
    let x = Tensor::randn(0f32, 1.0, (c.batch, c.seq, c.hidden), dev)?.to_dtype(c.dtype)?;
    let positions = Tensor::arange(0i64, c.seq as i64, dev)?
        .unsqueeze(0)?
        .repeat((c.batch, 1))?;
    println!(
        "llama block on {dev:?}: batch {}, seq {}, hidden {}, {} heads ({} kv) of {}, \
         intermediate {}, {:?}, matmul policy {}",
        c.batch,
        c.seq,
        c.hidden,
        c.heads,
        c.kv_heads,
        c.head_dim(),
        c.inter,
        c.dtype,
        if c.batch_invariant {
            "auto +batch_invariant"
        } else {
            "auto"
        }
    );

    let (ky, plans) = capture_plans(|| ky_block(&x, &positions, &w, c));
    let ky = ky?;
    println!("kernels selected by kernelyard:");
    let mut seen: Vec<(String, &str)> = Vec::new();
    for p in &plans {
        let entry = (p.problem().op().to_string(), p.kernel_name());
        if !seen.contains(&entry) {
            println!("  {:<12} -> {}", entry.0, entry.1);
            seen.push(entry);
        }
    }
    let cd = candle_block(&x, &aux, &w, c)?;

    let update = rel_l2(&(&ky - &x)?, &(&cd - &x)?)?;
    let output = rel_l2(&ky, &cd)?;
    let bound = match c.dtype {
        DType::F32 => 1e-4,
        DType::F16 => 5e-3,
        _ => 3e-2,
    };
    let agree = update <= bound && output <= bound;
    println!(
        "agreement (rel_l2, bound {bound:.0e}): update {update:.3e}, output {output:.3e}: {}",
        if agree { "ok" } else { "DISAGREE" }
    );

    let warmup = if dev.is_cpu() { 1 } else { 3 };
    let ky_ms = time(dev, warmup, c.iters, &|| ky_block(&x, &positions, &w, c))?;
    let cd_ms = time(dev, warmup, c.iters, &|| candle_block(&x, &aux, &w, c))?;
    println!(
        "time per block ({} iterations after {warmup} warm-up): kernelyard {ky_ms:.3} ms, \
         candle {cd_ms:.3} ms, candle / kernelyard = {:.2}x",
        c.iters,
        cd_ms / ky_ms
    );
    Ok(agree)
}

fn main() {
    let (dev, cfg) = match parse() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("llama_block: {why}");
            std::process::exit(2);
        }
    };
    match run(&dev, &cfg) {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("llama_block: kernelyard and candle disagree beyond the stated bound");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("llama_block: {e}");
            std::process::exit(1);
        }
    }
}
