//! The shared GPU kernels through the whole equivalence suite on the CPU emulator
//! (`crates/kernels/tests/emu/`): each kernel's exact source and real launch sequence
//! (`kernelyard_kernels::<op>::launch...`), registered for the CPU with the CUDA kernel's check
//! and tactics, against every suite case of its op, judged as on a GPU: the oracle within
//! tolerance with outputs poisoned, two runs bitwise equal, and each row's bits the same in
//! sub-batches and in a padded batch.
//!
//! - `selective_state_update` (issue 15): the state cache and indices, pad slots, groups, state
//!   dtypes, N = 128 and 256, Mamba-2 2.7B's shape.
//! - `softmax`, `log_softmax`, `rms_norm` in their default configuration and in each of the
//!   row kernels' tactics (`@t128`, `@t512`, issue 16), which no GPU has run yet.
//! - attention (issue 18): the SIMT decode kernel, `cuda.attention`'s mma.sync source in each
//!   head-dim-256 build, and `cuda.attention.decode.mma` (the tensor-core decode kernel, a
//!   CUDA-only source) through its real launch sequence.
//!
//! What this does not prove: speed, the GPU's memory model (races, coalescing), or bits equal
//! to a GPU's where the compiler fuses differently (docs/SSU.md). The GPU proof is the `ssu`
//! and `tests`/`verify` stages of scripts/gpu_proof.sh.

#[path = "../../kernels/tests/emu/mod.rs"]
mod emu;

use std::sync::OnceLock;

use kernelyard::cuda::ops::attention as cuda_attention;
use kernelyard::cuda::ops::attention_decode_mma as cuda_decode_mma;
use kernelyard::ops::attention::{Attention, AttentionArgs, AttentionProblem};
use kernelyard::ops::log_softmax::{LogSoftmax, LogSoftmaxArgs, LogSoftmaxProblem};
use kernelyard::ops::rms_norm::{RmsNorm, RmsNormArgs, RmsNormProblem};
use kernelyard::ops::selective_state_update::{
    SelectiveStateUpdate, SelectiveStateUpdateArgs, SelectiveStateUpdateProblem,
};
use kernelyard::ops::softmax::{Softmax, SoftmaxArgs, SoftmaxProblem};
use kernelyard::ops::token_logprobs::{TokenLogprobs, TokenLogprobsArgs, TokenLogprobsProblem};
use kernelyard::{
    ArchReq, Capabilities, DType, DeviceId, DeviceKind, Error, Kernel, KernelDef, KernelMeta,
    LaunchCtx, Listed, OpKind, Reason, Registry, Runtime,
};
use kernelyard_kernels::launch::Launch;
use kernelyard_kernels::source::KernelSource;
use kernelyard_kernels::{
    attention_decode as ad, log_softmax, rms_norm, rows, selective_state_update as ssu, softmax,
    token_logprobs as tl,
};
use kernelyard_suite::{run_suite, Outcome, SuiteOptions, DEFAULT_SEED};

/// The emulator of `source`, built once per process.
fn emulator(source: &'static KernelSource) -> Result<&'static emu::Emulator, Error> {
    emu::Emulator::shared(source).map_err(|e| Error::Device {
        backend: "emulator",
        source: e.into(),
    })
}

const fn meta<O: Listed>(name: &'static str, summary: &'static str) -> KernelMeta {
    KernelMeta::new::<O>(
        name,
        "emu",
        DeviceKind::Cpu,
        ArchReq::Any,
        module_path!(),
        summary,
    )
}

fn ssu_launch(
    ctx: &LaunchCtx<'_>,
    a: &mut SelectiveStateUpdateArgs<'_>,
    p: &SelectiveStateUpdateProblem,
) -> Result<(), Error> {
    ssu::launch(
        emulator(&ssu::SOURCE)?,
        ctx.stream,
        ctx.caps,
        a,
        p,
        ctx.tactic,
    )
}

static SSU: KernelDef<SelectiveStateUpdate> = KernelDef::<SelectiveStateUpdate>::new(
    meta::<SelectiveStateUpdate>(
        "emu.selective_state_update",
        "crates/kernels/kernels/selective_state_update.cu on the CPU emulator",
    )
    .tactics(ssu::TACTICS),
    ssu_launch,
)
.with_check(ssu::check);

/// `caps` with one multiprocessor: the persistent row entry points then run a grid of a few
/// blocks that walk many row sets each (both buffers, the early exit), as on a GPU with more
/// rows than resident blocks.
fn one_sm(caps: &Capabilities) -> Capabilities {
    Capabilities {
        multiprocessors: 1,
        ..caps.clone()
    }
}

fn softmax_launch(
    ctx: &LaunchCtx<'_>,
    a: &mut SoftmaxArgs<'_>,
    p: &SoftmaxProblem,
) -> Result<(), Error> {
    let gpu = emulator(&softmax::SOURCE)?;
    softmax::launch_tactic(gpu, ctx.stream, &one_sm(ctx.caps), a, p, ctx.tactic)
}

static SOFTMAX: KernelDef<Softmax> = KernelDef::<Softmax>::new(
    meta::<Softmax>(
        "emu.softmax",
        "crates/kernels/kernels/softmax.cu on the CPU emulator",
    )
    .tactics(rows::TACTICS),
    softmax_launch,
)
.with_check(softmax::check);

fn log_softmax_launch(
    ctx: &LaunchCtx<'_>,
    a: &mut LogSoftmaxArgs<'_>,
    p: &LogSoftmaxProblem,
) -> Result<(), Error> {
    let gpu = emulator(&log_softmax::SOURCE)?;
    log_softmax::launch_tactic(gpu, ctx.stream, &one_sm(ctx.caps), a, p, ctx.tactic)
}

static LOG_SOFTMAX: KernelDef<LogSoftmax> = KernelDef::<LogSoftmax>::new(
    meta::<LogSoftmax>(
        "emu.log_softmax",
        "crates/kernels/kernels/log_softmax.cu on the CPU emulator",
    )
    .tactics(rows::TACTICS),
    log_softmax_launch,
)
.with_check(log_softmax::check);

fn rms_norm_launch(
    ctx: &LaunchCtx<'_>,
    a: &mut RmsNormArgs<'_>,
    p: &RmsNormProblem,
) -> Result<(), Error> {
    let gpu = emulator(&rms_norm::SOURCE)?;
    rms_norm::launch_tactic(gpu, ctx.stream, &one_sm(ctx.caps), a, p, ctx.tactic)
}

static RMS_NORM: KernelDef<RmsNorm> = KernelDef::<RmsNorm>::new(
    meta::<RmsNorm>(
        "emu.rms_norm",
        "crates/kernels/kernels/rms_norm.cu on the CPU emulator",
    )
    .tactics(rows::TACTICS),
    rms_norm_launch,
)
.with_check(rms_norm::check);

/// token_logprobs as the CUDA backend runs it: the checked mode's slot, the split path's
/// partial states and its arrival counters in host memory (the emulator's device memory), with
/// scratch for 3 rows at a time so the split path runs in several passes. The counters are one
/// set for the whole process, zeroed once, as a CUDA stream's: every launch (and each pass of
/// one) must find them at zero and leave them so, which this checks after each launch.
fn token_logprobs_launch(
    ctx: &LaunchCtx<'_>,
    a: &mut TokenLogprobsArgs<'_>,
    p: &TokenLogprobsProblem,
) -> Result<(), Error> {
    static COUNTERS: std::sync::Mutex<[u32; 3]> = std::sync::Mutex::new([0; 3]);
    let gpu = emulator(&tl::SOURCE)?;
    let mut slot = [u64::MAX];
    let bad = if a.checked {
        slot.as_mut_ptr().cast()
    } else {
        std::ptr::null_mut()
    };
    let per_row = tl::splits(p.vocab, p.dtype) * tl::PART_BYTES;
    let mut part = vec![0u8; 3 * per_row];
    let mut counters = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    let mem = if tl::scratch_bytes(p) > 0 {
        tl::SplitMem {
            scratch: tl::Scratch {
                ptr: part.as_mut_ptr().cast(),
                bytes: part.len(),
            },
            counters: tl::Counters {
                ptr: counters.as_mut_ptr().cast(),
                len: counters.len(),
            },
        }
    } else {
        tl::SplitMem::NONE
    };
    // SAFETY: the slot, `part` and the counters are host memory the emulator's kernels may
    // use, alive until the launch returns (the emulator runs a launch to completion); the
    // counters are zero (every launch leaves them so, checked below) and, locked, used by no
    // other launch.
    unsafe { tl::launch(gpu, ctx.stream, ctx.caps, a, p, bad, mem)? };
    assert_eq!(
        *counters, [0; 3],
        "a split launch left its arrival counters set"
    );
    drop(counters);
    if slot[0] != u64::MAX {
        let row = slot[0] as usize;
        let target = match a.targets.dtype() {
            kernelyard::DType::I32 => i64::from(a.targets.as_slice::<i32>("targets")?[row]),
            _ => a.targets.as_slice::<i64>("targets")?[row],
        };
        return Err(Error::TargetOutOfRange {
            row,
            target,
            vocab: p.vocab,
        });
    }
    Ok(())
}

static TOKEN_LOGPROBS: KernelDef<TokenLogprobs> = KernelDef::<TokenLogprobs>::new(
    meta::<TokenLogprobs>(
        "emu.token_logprobs",
        "crates/kernels/kernels/token_logprobs.cu on the CPU emulator",
    ),
    token_logprobs_launch,
)
.with_check(tl::check);

/// `caps` with a GPU's 48 KiB of shared memory per block (the host reports none).
fn gpu_shared(caps: &Capabilities) -> Capabilities {
    Capabilities {
        shared_mem_per_block: 48 * 1024,
        ..caps.clone()
    }
}

/// The decode kernels with scratch for at most two batch entries, so a batch runs in passes.
fn attention_decode_launch(
    ctx: &LaunchCtx<'_>,
    a: &mut AttentionArgs<'_>,
    p: &AttentionProblem,
) -> Result<(), Error> {
    let gpu = emulator(&ad::SOURCE)?;
    let entry = ad::scratch_bytes(p) / p.batch;
    let mut part = vec![0u8; entry * p.batch.min(2)];
    let scratch = ad::Scratch {
        ptr: part.as_mut_ptr().cast(),
        bytes: part.len(),
    };
    // SAFETY: `part` is host memory the emulator's kernels may use, alive until the launch
    // returns (the emulator runs a launch to completion).
    unsafe { ad::launch(gpu, ctx.stream, a, p, scratch) }
}

fn attention_decode_check(
    caps: &Capabilities,
    p: &AttentionProblem,
    reasons: &mut Vec<kernelyard::Reason>,
) {
    ad::check(&gpu_shared(caps), p, reasons);
}

static ATTENTION_DECODE: KernelDef<Attention> = KernelDef::<Attention>::new(
    meta::<Attention>(
        "emu.attention.decode",
        "crates/kernels/kernels/attention_decode.cu on the CPU emulator",
    )
    .align(16),
    attention_decode_launch,
)
.with_check(attention_decode_check);

/// Runs the suite of `op` on the CPU with the reference kernels and `kernel`, and checks that
/// every case passed every check for the kernel in each of its configurations.
fn suite_passes(op: OpKind, kernel: &'static dyn Kernel, min_results: usize) {
    let kernels: Vec<&'static dyn Kernel> = Registry::global()
        .unwrap()
        .all()
        .iter()
        .copied()
        .filter(|k| k.meta().op == op)
        .chain([kernel])
        .collect();
    let registry: &'static Registry = Box::leak(Box::new(Registry::from_kernels(kernels).unwrap()));
    let rt = Runtime::builder().registry(registry).build().unwrap();
    let opts = SuiteOptions {
        op: Some(op),
        device: Some(DeviceId::CPU),
        seed: DEFAULT_SEED,
    };
    let name = kernel.meta().name;
    let ours_name = |k: &str| k == name || k.starts_with(&format!("{name}@"));
    let report = run_suite(&rt, &opts, &mut |r| {
        if ours_name(r.kernel) {
            eprintln!("{} {} {}: {:?}", r.kernel, r.dtype, r.case, r.outcome)
        }
    });
    let ours: Vec<_> = report
        .results
        .iter()
        .filter(|r| ours_name(r.kernel))
        .collect();
    let configurations = 1 + kernel.meta().tactics.len();
    // Cases beyond a kernel's checks are skips with typed reasons (the decode kernel takes few
    // query rows); every other result must pass, and enough of them.
    let passed = ours
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Pass { .. }))
        .count();
    assert!(
        passed >= min_results * configurations,
        "{passed} passed of {} results",
        ours.len()
    );
    for t in kernel.meta().tactics {
        let label = format!("{name}@{t}");
        assert!(
            ours.iter().any(|r| r.kernel == label),
            "no result for {label}"
        );
    }
    let mut failed = Vec::new();
    for r in &ours {
        match &r.outcome {
            // A case that expects an error (token_logprobs' checked mode) passes by raising it.
            Outcome::Pass { checks, .. } => {
                assert!(
                    checks == &["oracle", "deterministic", "batch_invariant"]
                        || checks == &["expected_error"],
                    "{} {} {}: {checks:?}",
                    r.kernel,
                    r.case,
                    r.dtype
                );
            }
            Outcome::Skip { .. } => {}
            other => failed.push(format!("{} {} {}: {other:?}", r.kernel, r.case, r.dtype)),
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn selective_state_update_passes_the_suite_on_the_emulator() {
    suite_passes(OpKind::SelectiveStateUpdate, &SSU, 40);
}

#[test]
fn softmax_and_its_tactics_pass_the_suite_on_the_emulator() {
    suite_passes(OpKind::Softmax, &SOFTMAX, 10);
}

#[test]
fn log_softmax_and_its_tactics_pass_the_suite_on_the_emulator() {
    suite_passes(OpKind::LogSoftmax, &LOG_SOFTMAX, 10);
}

#[test]
fn rms_norm_and_its_tactics_pass_the_suite_on_the_emulator() {
    suite_passes(OpKind::RmsNorm, &RMS_NORM, 10);
}

#[test]
fn token_logprobs_passes_the_suite_on_the_emulator() {
    suite_passes(OpKind::TokenLogprobs, &TOKEN_LOGPROBS, 25);
}

#[test]
fn attention_decode_passes_the_suite_on_the_emulator() {
    suite_passes(OpKind::Attention, &ATTENTION_DECODE, 8);
}

/// `crates/cuda/kernels/attention_decode_mma.cu` (`cuda.attention.decode.mma`, the tensor-core
/// decode kernel) through its real launch sequence (`launch_with`) on the emulator, with
/// scratch for at most two batch entries, so a batch runs in passes. Its source needs no edit:
/// `ky_ex2_approx` and its `extern __shared__` arrays are the emulator's already.
fn attention_decode_mma_launch(
    ctx: &LaunchCtx<'_>,
    a: &mut AttentionArgs<'_>,
    p: &AttentionProblem,
) -> Result<(), Error> {
    let gpu = emulator(&cuda_decode_mma::SOURCE)?;
    let entry = cuda_decode_mma::scratch_bytes(p) / p.batch;
    let mut part = vec![0u8; entry * p.batch.min(2)];
    let scratch = ad::Scratch {
        ptr: part.as_mut_ptr().cast(),
        bytes: part.len(),
    };
    // SAFETY: `part` is host memory the emulator's kernels may use, alive until the launch
    // returns (the emulator runs a launch to completion).
    unsafe { cuda_decode_mma::launch_with(gpu, ctx.stream, a, p, scratch) }
}

/// The CUDA kernel's check on an H100's shared memory (the host reports none).
fn attention_decode_mma_check(
    caps: &Capabilities,
    p: &AttentionProblem,
    reasons: &mut Vec<Reason>,
) {
    let gpu = Capabilities {
        shared_mem_per_block_optin: 227 << 10,
        ..gpu_shared(caps)
    };
    cuda_decode_mma::check(&gpu, p, reasons);
}

static ATTENTION_DECODE_MMA: KernelDef<Attention> = KernelDef::<Attention>::new(
    meta::<Attention>(
        "emu.attention.decode.mma",
        "crates/cuda/kernels/attention_decode_mma.cu (mma.sync) on the CPU emulator",
    )
    .dtypes(&[DType::F16, DType::BF16])
    .align(16),
    attention_decode_mma_launch,
)
.with_check(attention_decode_mma_check);

#[test]
fn attention_decode_mma_passes_the_suite_on_the_emulator() {
    // Every f16/bf16 case of head dim 64, 128 or 256 with at most 16 query rows per key/value
    // head: the decode cases (4096 to 131072 keys, GQA 4 and 8, MQA, causal with two queries),
    // long_kv, one query at head dim 128, head dim 256 (the others are skips).
    suite_passes(OpKind::Attention, &ATTENTION_DECODE_MMA, 18);
}

/// The head-dim-256 tiling (`ATTN_D256`, an index into `D256_TILINGS` of
/// `kernelyard_cuda::ops::attention`) of the emulated `cuda.attention`: `KERNELYARD_EMU_ATTN_D256`
/// when set (to prove another build on the CPU before it is timed on a GPU), else this build's
/// (`D256_TILING`, read from attention.cu's `#define ATTN_D256` line).
fn attention_mma_build() -> usize {
    match std::env::var("KERNELYARD_EMU_ATTN_D256") {
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|&v| v < cuda_attention::D256_TILINGS.len())
            .unwrap_or_else(|| {
                panic!(
                    "KERNELYARD_EMU_ATTN_D256={v}: expected 0 .. {}",
                    cuda_attention::D256_TILINGS.len() - 1
                )
            }),
        Err(_) => cuda_attention::D256_TILING,
    }
}

/// `crates/cuda/kernels/attention.cu` (`cuda.attention`, the mma.sync kernel) for the emulator,
/// built with `ATTN_D256` = `d256`: its text with the two inline PTX instructions it has of its
/// own (`ex2`, `%tid.x`) and its file-scope dynamic shared array in the host's dialect, and its
/// `#define ATTN_D256` line set to `d256`; `mma.cuh` is `mma_emu.hpp` there. Each replaced text
/// must be there exactly once, so an edit of the kernel cannot slip by.
fn attention_mma_source(d256: usize) -> Result<&'static KernelSource, Error> {
    type Built = Result<&'static KernelSource, String>;
    static SOURCES: [OnceLock<Built>; cuda_attention::D256_TILINGS.len()] =
        [const { OnceLock::new() }; cuda_attention::D256_TILINGS.len()];
    let source = SOURCES[d256].get_or_init(|| {
        let mut code = include_str!("../../cuda/kernels/attention.cu").to_string();
        let define = format!("#define ATTN_D256 {}", cuda_attention::D256_TILING);
        for (from, to) in [
            (
                r#"asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));"#.to_string(),
                "y = ky_ex2_approx(x);".to_string(),
            ),
            (
                r#"asm volatile("mov.u32 %0, %%tid.x;\n" : "=r"(t));"#.to_string(),
                "t = threadIdx.x;".to_string(),
            ),
            (
                "extern __shared__ __align__(128) unsigned char smem[];".to_string(),
                "#define smem (::ky_emu::dyn_shared())".to_string(),
            ),
            (format!("{define}\n"), format!("#define ATTN_D256 {d256}\n")),
        ] {
            if code.matches(&from).count() != 1 {
                return Err(format!("attention.cu has not exactly one `{from}`"));
            }
            code = code.replace(&from, &to);
        }
        Ok(&*Box::leak(Box::new(KernelSource {
            file: "attention.cu",
            code: Box::leak(code.into_boxed_str()),
            symbols: ATTENTION_MMA_SYMBOLS,
        })))
    });
    source.clone().map_err(|e| Error::Device {
        backend: "emulator",
        source: e.into(),
    })
}

/// `kernelyard_cuda::ops::attention`'s entry points (`SOURCE.symbols`).
const ATTENTION_MMA_SYMBOLS: &[&str] = &[
    "attention_f16_d64",
    "attention_f16_d128",
    "attention_f16_d256",
    "attention_bf16_d64",
    "attention_bf16_d128",
    "attention_bf16_d256",
];

/// The entry point and launch shape of `p` in build `d256` (`kernelyard_cuda::ops::attention`'s
/// `tiling_with` and `dims_with`, which its unit tests hold to the kernel's static_asserts).
fn attention_mma_dims(
    d256: usize,
    p: &AttentionProblem,
) -> Result<(&'static str, kernelyard_kernels::launch::Dims), Error> {
    let dtype = p.dtype.name();
    let symbol = ATTENTION_MMA_SYMBOLS
        .iter()
        .find(|s| **s == format!("attention_{dtype}_d{}", p.head_dim));
    match (symbol, cuda_attention::tiling_with(d256, p.head_dim)) {
        (Some(symbol), Some(t)) => Ok((symbol, cuda_attention::dims_with(t, p))),
        _ => Err(Error::Device {
            backend: "emulator",
            source: format!("no entry point for {dtype} head_dim {}", p.head_dim).into(),
        }),
    }
}

/// The launch of `cuda.attention` (`crates/cuda/src/ops/attention.rs`) on the emulator.
fn attention_mma_launch(
    ctx: &LaunchCtx<'_>,
    a: &mut AttentionArgs<'_>,
    p: &AttentionProblem,
) -> Result<(), Error> {
    let d256 = attention_mma_build();
    let source = attention_mma_source(d256)?;
    let gpu = emulator(source)?;
    let (symbol, dims) = attention_mma_dims(d256, p)?;
    let scale = a.effective_scale();
    let (q, k, v) = (a.q.as_ptr(), a.k.as_ptr(), a.v.as_ptr());
    let out = a.out.as_mut_ptr();
    let lse: *mut std::ffi::c_void = match a.lse.as_mut() {
        Some(l) => l.as_mut_ptr(),
        None => std::ptr::null_mut(),
    };
    let flags = i32::from(a.causal) | (i32::from(!lse.is_null()) << 1);
    let (seq_q, seq_kv) = (p.seq_q as i64, p.seq_kv as i64);
    let (heads_q, heads_kv) = (p.heads_q as i64, p.heads_kv as i64);
    // SAFETY: the parameters match the entry point's (see crates/cuda/src/ops/attention.rs);
    // core validated the views (host memory here), which the kernel stays inside.
    unsafe {
        gpu.launch(
            ctx.stream,
            source,
            symbol,
            dims,
            &mut kernelyard_kernels::params![
                q, k, v, out, lse, seq_q, seq_kv, heads_q, heads_kv, scale, flags
            ],
        )
    }
}

/// Keys past which a case is skipped here: the emulated `mma.sync` trades fragments by warp
/// exchanges, slow enough that the decode cases (4096 to 131072 keys) would take many minutes.
const ATTENTION_MMA_MAX_KV: usize = 2048;

/// The head dims `cuda.attention` has (its static dtype list is the meta's), and the
/// emulator's own limit on the keys.
fn attention_mma_check(_: &Capabilities, p: &AttentionProblem, reasons: &mut Vec<Reason>) {
    if !cuda_attention::HEAD_DIMS.contains(&p.head_dim) {
        reasons.push(Reason::ShapeUnsupported {
            what: format!("head_dim {}", p.head_dim),
        });
    }
    if p.seq_kv > ATTENTION_MMA_MAX_KV {
        reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "seq_kv {} (the emulator runs at most {ATTENTION_MMA_MAX_KV} keys)",
                p.seq_kv
            ),
        });
    }
}

static ATTENTION_MMA: KernelDef<Attention> = KernelDef::<Attention>::new(
    meta::<Attention>(
        "emu.attention",
        "crates/cuda/kernels/attention.cu (mma.sync) on the CPU emulator",
    )
    .dtypes(&[DType::F16, DType::BF16])
    .align(16),
    attention_mma_launch,
)
.with_check(attention_mma_check);

#[test]
fn attention_mma_passes_the_suite_on_the_emulator() {
    // Every f16/bf16 case of head dim 64, 128 or 256 (the 16 with other head dims are skips).
    suite_passes(OpKind::Attention, &ATTENTION_MMA, 40);
}

/// `out` and `lse` (as bits) of build `d256` of `cuda.attention` on the emulator, for `p` with
/// inputs from `seed` (values in [-2, 2), rounded to the dtype) and the default scale.
fn attention_mma_bits(d256: usize, p: &AttentionProblem, seed: u64) -> (Vec<u16>, Vec<u32>) {
    let mut x = seed;
    let mut input = |n: usize| -> Vec<u16> {
        (0..n)
            .map(|_| {
                // 64-bit LCG (Knuth's MMIX constants); the top 24 bits as a value in [-2, 2).
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let v = (x >> 40) as f32 / (1u64 << 22) as f32 - 2.0;
                match p.dtype {
                    DType::BF16 => kernelyard::half::bf16::from_f32(v).to_bits(),
                    _ => kernelyard::half::f16::from_f32(v).to_bits(),
                }
            })
            .collect()
    };
    let d = p.head_dim;
    let q = input(p.batch * p.seq_q * p.heads_q * d);
    let k = input(p.batch * p.seq_kv * p.heads_kv * d);
    let v = input(p.batch * p.seq_kv * p.heads_kv * d);
    // Poisoned, so an element the kernel does not write shows.
    let mut out = vec![0xffffu16; q.len()];
    let mut lse = vec![f32::NAN; p.batch * p.heads_q * p.seq_q];
    let source = attention_mma_source(d256).unwrap();
    let gpu = emulator(source).unwrap();
    let (symbol, dims) = attention_mma_dims(d256, p).unwrap();
    let (qp, kp, vp) = (q.as_ptr(), k.as_ptr(), v.as_ptr());
    let (op, lp) = (out.as_mut_ptr(), lse.as_mut_ptr());
    let flags = i32::from(p.causal) | 2;
    let (seq_q, seq_kv) = (p.seq_q as i64, p.seq_kv as i64);
    let (heads_q, heads_kv) = (p.heads_q as i64, p.heads_kv as i64);
    let scale = 1.0f32 / (d as f32).sqrt();
    // SAFETY: the parameters match the entry point's; q, k, v, out and lse hold `p`'s shapes.
    unsafe {
        gpu.launch(
            &kernelyard::Stream::host(),
            source,
            symbol,
            dims,
            &mut kernelyard_kernels::params![
                qp, kp, vp, op, lp, seq_q, seq_kv, heads_q, heads_kv, scale, flags
            ],
        )
    }
    .unwrap_or_else(|e| panic!("build {d256} {p:?}: {e}"));
    (out, lse.iter().map(|l| l.to_bits()).collect())
}

#[test]
fn attention_d256_builds_with_the_same_key_tiles_give_the_same_bits() {
    // ATTN_D256 = 1 (8 warps, 128 rows) against 0 (4 warps, 64 rows), both 32-key tiles, and
    // 3 against 2 (64-key tiles): a row's warp, key tiles and arithmetic are the same, the
    // larger blocks only visit more tiles wholly masked for their first rows (causal), so
    // every bit of out and lse must be the same (crates/cuda/src/ops/attention.rs,
    // `D256_TILINGS`). Causal and not, Sq < Skv, Sq > Skv (rows that see no key), GQA, tails.
    let problem = |batch, seq_q, seq_kv, heads_q, heads_kv, causal, dtype| AttentionProblem {
        batch,
        seq_q,
        seq_kv,
        heads_q,
        heads_kv,
        head_dim: 256,
        dtype,
        causal,
        lse: true,
        align: 16,
    };
    let problems = [
        problem(2, 200, 333, 4, 2, true, DType::BF16),
        problem(2, 200, 333, 4, 2, false, DType::BF16),
        problem(1, 300, 97, 2, 1, true, DType::F16),
        problem(1, 129, 1025, 2, 2, true, DType::BF16),
    ];
    for (i, p) in problems.iter().enumerate() {
        let seed = 0x5eed + i as u64;
        for (a, b) in [(0, 1), (2, 3)] {
            let (out_a, lse_a) = attention_mma_bits(a, p, seed);
            let (out_b, lse_b) = attention_mma_bits(b, p, seed);
            assert!(
                !out_a.contains(&0xffff),
                "build {a} {p:?}: an output not written"
            );
            assert!(out_a == out_b, "builds {a} and {b} differ in out: {p:?}");
            assert!(lse_a == lse_b, "builds {a} and {b} differ in lse: {p:?}");
        }
    }
}
