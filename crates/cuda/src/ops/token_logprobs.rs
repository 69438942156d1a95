//! `cuda.token_logprobs`: `log_softmax(logits / T)[target]` per row, and optionally the row's
//! entropy, in one read of the logits (`kernels/token_logprobs.cu`).
//!
//! - **Design.** One CTA per row; an online log-sum-exp in base 2 (`y = x log2(e) / T`, with
//!   `ex2.approx`) that also carries `sum 2^(y - m) (y - m)`, rescaled when the running max
//!   grows, so the entropy comes out of the same pass: `H = (log2 s - w / s) ln 2`. The row is
//!   read as 16-byte chunks, [`UNROLL`] loads in flight per thread; the block size depends on
//!   the vocabulary size and dtype only ([`block_threads`]).
//! - **Bytes.** Reads `tokens * vocab * dtype.size()` bytes of logits once (plus the targets and
//!   one target logit per row) and writes 4 bytes per row (8 with the entropy): the logits are
//!   the whole cost, so the kernel is judged against the device's read bandwidth. Measured on
//!   an H100 (bf16, entropy on): 2.89 TB/s at [4096, 151936] and 2.92 TB/s at [16384, 32000],
//!   about the device's read ceiling, 1.97x and 2.2x `torch.compile` in the same run.
//! - **Alignment.** The `_v16` entry points (16-byte loads) run when the problem is 16-byte
//!   aligned; the others load element by element. Both fold the same chunks in the same order,
//!   so a row gives the same bits whichever one its batch selects: deterministic and
//!   batch-invariant.
//! - **Targets.** `ignore_index` gives 0 (the entropy is still written); an out-of-range target
//!   gives NaN. In the checked mode the launch allocates 8 bytes of device memory, runs
//!   `token_logprobs_check` (the least bad row, by `atomicMin`) before the main kernel (which
//!   then writes nothing if a row is bad), **synchronizes the stream**, and returns
//!   [`Error::TargetOutOfRange`] for the first bad row. The checked mode therefore cannot be
//!   captured in a CUDA graph; the unchecked mode is asynchronous.
//!
//! Responsibility: core validated the views (shapes, dtypes, devices, no aliasing, a finite
//! positive temperature); [`Kernel::check_problem`] rejects what the launch cannot do.

use std::ffi::c_void;

use cudarc::driver::{result, sys};
use kernelyard_core::ops::token_logprobs::TokenLogprobsProblem;
use kernelyard_core::{
    Args, Capabilities, DType, DeviceId, Error, Kernel, KernelMeta, OpKind, Problem, Reason, Stream,
};

use crate::device::bind;
use crate::error::{drv, CudaError};
use crate::launch::{launch, Dims};
use crate::ops::{nvrtc_meta, wrong_op};
use crate::source::KernelSource;

/// The kernel source and its entry points: the main kernel per logits dtype, element-wise
/// (`token_logprobs_<dtype>`) and 16-byte (`..._v16`) loads, then the checked-mode pre-pass.
pub(crate) static SOURCE: KernelSource = KernelSource {
    file: "token_logprobs.cu",
    code: include_str!("../../../../kernels/token_logprobs.cu"),
    symbols: &[
        "token_logprobs_f32",
        "token_logprobs_f16",
        "token_logprobs_bf16",
        "token_logprobs_f32_v16",
        "token_logprobs_f16_v16",
        "token_logprobs_bf16_v16",
        "token_logprobs_check",
    ],
};

/// Index of `token_logprobs_check` in [`SOURCE`]'s symbols.
const CHECK_SYMBOL: usize = 6;

/// 16-byte chunks each thread loads per step (`KY_TL_UNROLL` in the kernel).
pub const UNROLL: usize = 2;

/// The most threads per CTA [`block_threads`] chooses.
pub const MAX_THREADS: u32 = 256;

/// Threads per CTA of the checked-mode pre-pass.
const CHECK_THREADS: u32 = 256;

/// The most CTAs of the pre-pass (it strides over the rows).
const CHECK_MAX_BLOCKS: usize = 4096;

/// `log2(e)`: the kernel works in base 2.
const LOG2_E: f64 = std::f64::consts::LOG2_E;

/// The `cuda.token_logprobs` kernel.
pub struct CudaTokenLogprobs;

/// Its registration.
pub static TOKEN_LOGPROBS: CudaTokenLogprobs = CudaTokenLogprobs;
crate::register!(TOKEN_LOGPROBS);

const META: KernelMeta = nvrtc_meta(
    "cuda.token_logprobs",
    OpKind::TokenLogprobs,
    module_path!(),
    "one-pass online log-sum-exp with entropy, one CTA per row, 16-byte streaming loads",
);

/// Elements of a 16-byte chunk of `dtype`.
fn chunk_elems(dtype: DType) -> usize {
    16 / dtype.size()
}

/// Threads per CTA for a row of `vocab` elements of `dtype`: enough that each thread folds at
/// least about 16 steps of [`UNROLL`] chunks, a multiple of 32, between 32 and
/// [`MAX_THREADS`]. Depends on the row length and dtype only (batch invariance).
pub fn block_threads(vocab: usize, dtype: DType) -> u32 {
    let chunks = vocab.div_ceil(chunk_elems(dtype));
    let want = chunks.div_ceil(16 * UNROLL).next_multiple_of(32);
    want.clamp(32, MAX_THREADS as usize) as u32
}

/// The main entry point for logits of `dtype`, with 16-byte loads when `vec`.
fn symbol(dtype: DType, vec: bool) -> Option<&'static str> {
    let i = match dtype {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::BF16 => 2,
        _ => return None,
    };
    Some(SOURCE.symbols[i + if vec { 3 } else { 0 }])
}

/// Eight bytes of device memory for the checked mode's first bad row, freed on drop after the
/// stream has finished with it.
struct BadRow {
    device: DeviceId,
    stream: sys::CUstream,
    ptr: sys::CUdeviceptr,
}

impl BadRow {
    /// Allocates the slot and queues its initialisation to `u64::MAX` ("no bad row").
    fn new(stream: &Stream) -> Result<Self, Error> {
        let device = stream.device();
        bind(device)?;
        // SAFETY: the device's context is current.
        let ptr = drv("cuMemAlloc", unsafe { result::malloc_sync(8) })?;
        let slot = BadRow {
            device,
            stream: stream.raw() as sys::CUstream,
            ptr,
        };
        // SAFETY: `ptr` holds 8 bytes; the stream is a live stream of the device.
        drv("cuMemsetD8Async", unsafe {
            result::memset_d8_async(slot.ptr, 0xff, 8, slot.stream)
        })?;
        Ok(slot)
    }

    /// Waits for the stream and reads the slot: the first bad row, if any.
    fn read(&self) -> Result<Option<usize>, Error> {
        bind(self.device)?;
        // SAFETY: the stream is a live stream of the bound device.
        drv("cuStreamSynchronize", unsafe {
            result::stream::synchronize(self.stream)
        })?;
        let mut row = [0u64; 1];
        // SAFETY: the slot holds 8 bytes and no queued work writes it any more.
        drv("cuMemcpyDtoH", unsafe {
            result::memcpy_dtoh_sync(&mut row, self.ptr)
        })?;
        Ok((row[0] != u64::MAX).then_some(row[0] as usize))
    }
}

impl Drop for BadRow {
    fn drop(&mut self) {
        if bind(self.device).is_ok() {
            // SAFETY: the stream is live; once it has drained no kernel uses the slot, which
            // was allocated by `new` and is freed once. On failure the 8 bytes leak.
            unsafe {
                let _ = result::stream::synchronize(self.stream);
                let _ = result::free_sync(self.ptr);
            }
        }
    }
}

/// Reads target `row` from device memory (the value the error reports).
fn read_target(targets: *const c_void, dtype: DType, row: usize) -> Result<i64, Error> {
    let at = targets as sys::CUdeviceptr + (row * dtype.size()) as sys::CUdeviceptr;
    // SAFETY: `row < tokens` (the kernel only records rows it read) and core validated the
    // targets view: `[tokens]` contiguous elements of `dtype` on the bound device.
    unsafe {
        if dtype == DType::I32 {
            let mut t = [0i32; 1];
            drv("cuMemcpyDtoH", result::memcpy_dtoh_sync(&mut t, at))?;
            Ok(i64::from(t[0]))
        } else {
            let mut t = [0i64; 1];
            drv("cuMemcpyDtoH", result::memcpy_dtoh_sync(&mut t, at))?;
            Ok(t[0])
        }
    }
}

impl Kernel for CudaTokenLogprobs {
    fn meta(&self) -> &KernelMeta {
        &META
    }

    fn check_problem(&self, _caps: &Capabilities, problem: &Problem, reasons: &mut Vec<Reason>) {
        let Problem::TokenLogprobs(p) = problem else {
            return;
        };
        if !DType::INDICES.contains(&p.target_dtype) {
            reasons.push(Reason::DtypeUnsupported {
                arg: "targets",
                dtype: p.target_dtype,
                supported: DType::INDICES.to_vec(),
            });
        }
        if p.tokens > i32::MAX as usize {
            reasons.push(Reason::ShapeUnsupported {
                what: format!(
                    "{} tokens: one CTA per row allows at most 2^31 - 1",
                    p.tokens
                ),
            });
        }
    }

    fn launch(&self, stream: &Stream, args: &mut Args<'_>, problem: &Problem) -> Result<(), Error> {
        let (Args::TokenLogprobs(a), Problem::TokenLogprobs(p)) = (args, problem) else {
            return Err(wrong_op(META.name, META.op, problem.op()));
        };
        launch_rows(stream, a, p)
    }
}

fn launch_rows(
    stream: &Stream,
    a: &mut kernelyard_core::ops::token_logprobs::TokenLogprobsArgs<'_>,
    p: &TokenLogprobsProblem,
) -> Result<(), Error> {
    let symbol = symbol(p.dtype, p.align >= 16).ok_or_else(|| CudaError::Misuse {
        what: format!("{} launched for {} logits", META.name, p.dtype),
    })?;
    let logits = a.logits.as_ptr();
    let targets = a.targets.as_ptr();
    let out = a.out.as_mut_ptr();
    let entropy = a
        .entropy
        .as_mut()
        .map_or(std::ptr::null_mut(), |e| e.as_mut_ptr());
    let vocab = p.vocab as i64;
    let tokens = p.tokens as i64;
    let target_size = p.target_dtype.size() as i64;
    let ignore_index = a.ignore_index;
    let k = (LOG2_E / f64::from(a.temperature)) as f32;

    let bad_row = if a.checked {
        Some(BadRow::new(stream)?)
    } else {
        None
    };
    let bad = bad_row
        .as_ref()
        .map_or(std::ptr::null_mut(), |b| b.ptr as *mut c_void);
    if bad_row.is_some() {
        let blocks = p
            .tokens
            .div_ceil(CHECK_THREADS as usize)
            .min(CHECK_MAX_BLOCKS) as u32;
        let dims = Dims {
            grid: (blocks, 1, 1),
            block: (CHECK_THREADS, 1, 1),
            shared_bytes: 0,
        };
        // SAFETY: the parameters match `token_logprobs_check(const void*, long long,
        // long long, long long, long long, void*)`; `targets` holds `tokens` elements of
        // `target_size` bytes and `bad` 8 bytes, both on the stream's device.
        unsafe {
            launch(
                stream,
                &SOURCE,
                SOURCE.symbols[CHECK_SYMBOL],
                dims,
                &mut crate::params![targets, tokens, vocab, target_size, ignore_index, bad],
            )?
        };
    }
    let bad = bad as *const c_void;
    let dims = Dims {
        grid: (p.tokens as u32, 1, 1),
        block: (block_threads(p.vocab, p.dtype), 1, 1),
        shared_bytes: 0,
    };
    // SAFETY: the parameters match `token_logprobs_<dtype>[_v16](const void*, const void*,
    // void*, void*, const void*, long long, long long, long long, float)`; core validated the
    // views (`[tokens, vocab]` logits, `[tokens]` targets, f32 outputs, one device, no
    // aliasing); `entropy` and `bad` are null or valid; the `_v16` entry point is chosen only
    // for a 16-byte aligned problem.
    unsafe {
        launch(
            stream,
            &SOURCE,
            symbol,
            dims,
            &mut crate::params![
                logits,
                targets,
                out,
                entropy,
                bad,
                vocab,
                target_size,
                ignore_index,
                k
            ],
        )?
    };
    if let Some(slot) = bad_row {
        if let Some(row) = slot.read()? {
            let target = read_target(targets, p.target_dtype, row)?;
            return Err(Error::TargetOutOfRange {
                row,
                target,
                vocab: p.vocab,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_size_depends_on_the_row_only() {
        // Each thread folds at least ~16 steps before the block grows, up to MAX_THREADS.
        assert_eq!(block_threads(1, DType::F32), 32);
        assert_eq!(block_threads(33, DType::BF16), 32);
        assert_eq!(block_threads(32000, DType::BF16), 128);
        assert_eq!(block_threads(32000, DType::F32), 256);
        assert_eq!(block_threads(151_936, DType::BF16), MAX_THREADS);
        assert_eq!(block_threads(262_144, DType::F16), MAX_THREADS);
        for v in [1, 7, 100, 4097, 50257, 128_256] {
            for d in DType::FLOATS {
                let t = block_threads(v, *d);
                assert!(
                    t % 32 == 0 && (32..=MAX_THREADS).contains(&t),
                    "{v} {d}: {t}"
                );
            }
        }
    }

    #[test]
    fn symbols_follow_the_naming() {
        for &d in DType::FLOATS {
            assert_eq!(
                symbol(d, false).unwrap(),
                format!("token_logprobs_{}", d.name())
            );
            assert_eq!(
                symbol(d, true).unwrap(),
                format!("token_logprobs_{}_v16", d.name())
            );
        }
        assert_eq!(symbol(DType::I32, false), None);
        assert_eq!(SOURCE.symbols[CHECK_SYMBOL], "token_logprobs_check");
    }

    #[test]
    fn every_symbol_is_an_entry_of_the_source() {
        for s in SOURCE.symbols {
            let n = SOURCE.code.matches(&format!("{s}(")).count()
                + SOURCE.code.matches(&format!("KY_TL_ENTRY({s},")).count();
            assert!(n >= 1, "{s} is not defined in {}", SOURCE.file);
        }
        assert!(SOURCE
            .code
            .contains(&format!("#define KY_TL_UNROLL {UNROLL}\n")));
        assert!(SOURCE
            .code
            .contains(&format!("__launch_bounds__({MAX_THREADS}, 4)")));
    }

    #[test]
    fn rejects_more_rows_than_a_grid_holds() {
        let p = TokenLogprobsProblem {
            tokens: 1 << 31,
            vocab: 8,
            dtype: DType::BF16,
            target_dtype: DType::I64,
            entropy: false,
            checked: false,
            align: 16,
        };
        let mut reasons = Vec::new();
        TOKEN_LOGPROBS.check_problem(
            &Capabilities::host(),
            &Problem::TokenLogprobs(p.clone()),
            &mut reasons,
        );
        assert!(matches!(
            reasons.as_slice(),
            [Reason::ShapeUnsupported { .. }]
        ));
        let mut reasons = Vec::new();
        let ok = TokenLogprobsProblem { tokens: 4096, ..p };
        TOKEN_LOGPROBS.check_problem(
            &Capabilities::host(),
            &Problem::TokenLogprobs(ok),
            &mut reasons,
        );
        assert!(reasons.is_empty(), "{reasons:?}");
    }
}
