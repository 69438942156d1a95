//! The source of the token log-probability kernels, `crates/kernels/kernels/token_logprobs.cu`
//! (`log_softmax(logits / T)[target]` per row, and optionally the row's entropy, in one read of
//! the logits), and their launch shapes.
//!
//! - **Main kernel.** One block per row of [`block_threads`] threads (chosen from the
//!   vocabulary size and dtype only, so a row's bits do not depend on its batch), each with
//!   [`UNROLL`] 16-byte chunks in flight. [`symbol`] names the entry point: element loads
//!   (`token_logprobs_<dtype>`) or 16-byte loads (`..._v16`, for a 16-byte aligned problem);
//!   both fold the same chunks in the same order. Signature: `(const void* logits, const void*
//!   targets, void* out, void* entropy, const void* bad, long long vocab, long long
//!   target_size, long long ignore_index, float k)`, `k = log2(e) / T`.
//! - **Checked mode.** Before the main kernel, `token_logprobs_check`
//!   (`SOURCE.symbols[CHECK_SYMBOL]`) records the least bad row in an 8-byte slot initialised
//!   to all ones, with [`CHECK_THREADS`] threads per block and at most [`CHECK_MAX_BLOCKS`]
//!   blocks striding over the rows. Signature: `(const void* targets, long long tokens, long
//!   long vocab, long long target_size, long long ignore_index, void* bad)`.
//!
//! Responsibility: core validated the views (shapes, dtypes, devices, no aliasing, a finite
//! positive temperature) into the [`TokenLogprobsProblem`]; [`check`] rejects what the launch
//! cannot do; [`launch`] queues the pre-pass (when given a slot) and the main kernel through
//! the backend. The backend owns the checked mode's slot: it allocates the 8 bytes, sets them
//! to `u64::MAX`, and after the launch waits for the stream, reads the slot and reports
//! [`Error::TargetOutOfRange`] for the row it names.

use std::ffi::c_void;

use kernelyard_core::ops::token_logprobs::{TokenLogprobsArgs, TokenLogprobsProblem};
use kernelyard_core::{Capabilities, DType, Error, Reason, Stream};

use crate::launch::{check_elements, Dims, Launch};
use crate::source::KernelSource;

/// The kernel source and its entry points: the main kernel per logits dtype, element-wise
/// (`token_logprobs_<dtype>`) and 16-byte (`..._v16`) loads, then the checked-mode pre-pass.
pub static SOURCE: KernelSource = KernelSource {
    file: "token_logprobs.cu",
    code: include_str!("../kernels/token_logprobs.cu"),
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
pub const CHECK_SYMBOL: usize = 6;

/// 16-byte chunks each thread loads per step (`KY_TL_UNROLL` in the kernel).
pub const UNROLL: usize = 2;

/// The most threads per CTA [`block_threads`] chooses.
pub const MAX_THREADS: u32 = 256;

/// Threads per CTA of the checked-mode pre-pass.
pub const CHECK_THREADS: u32 = 256;

/// The most CTAs of the pre-pass (it strides over the rows).
pub const CHECK_MAX_BLOCKS: usize = 4096;

/// `log2(e)`: the kernel works in base 2 (`k = log2(e) / T`).
const LOG2_E: f64 = std::f64::consts::LOG2_E;

/// Elements of a 16-byte chunk of `dtype`.
pub fn chunk_elems(dtype: DType) -> usize {
    16 / dtype.size().clamp(1, 16)
}

/// Threads per CTA for a row of `vocab` elements of `dtype`: enough that each thread folds at
/// least about 16 steps of [`UNROLL`] chunks, a multiple of 32, between 32 and
/// [`MAX_THREADS`]. Depends on the row length and dtype only (batch invariance).
pub fn block_threads(vocab: usize, dtype: DType) -> u32 {
    let chunks = vocab.div_ceil(chunk_elems(dtype).max(1));
    // Clamped before it is rounded up to 32, so no vocabulary size can overflow it.
    let want = chunks.div_ceil(16 * UNROLL).min(MAX_THREADS as usize);
    want.next_multiple_of(32).clamp(32, MAX_THREADS as usize) as u32
}

/// The main entry point for logits of `dtype`, with 16-byte loads when `vec`; `None` for a
/// dtype the kernel does not handle.
pub fn symbol(dtype: DType, vec: bool) -> Option<&'static str> {
    let i = match dtype {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::BF16 => 2,
        _ => return None,
    };
    Some(SOURCE.symbols[i + if vec { 3 } else { 0 }])
}

/// Pushes the reasons the kernels cannot run `p`: targets that are not i32 or i64, more
/// logits than 64-bit indices reach, or more rows than a grid of one CTA per row holds (no
/// device property matters).
pub fn check(_caps: &Capabilities, p: &TokenLogprobsProblem, reasons: &mut Vec<Reason>) {
    if !DType::INDICES.contains(&p.target_dtype) {
        reasons.push(Reason::DtypeUnsupported {
            arg: "targets",
            dtype: p.target_dtype,
            supported: DType::INDICES.to_vec(),
        });
    }
    check_elements("logits", &[p.tokens, p.vocab], reasons);
    if p.tokens > i32::MAX as usize {
        reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "{} tokens: one CTA per row allows at most 2^31 - 1",
                p.tokens
            ),
        });
    }
}

/// Launches `p` on `stream` through `gpu`: when `bad` is not null, first the checked mode's
/// pre-pass `token_logprobs_check`, which records the least row whose target is out of range
/// in the slot `bad` points at (the backend passes one exactly when `a.checked`, set to
/// `u64::MAX`, "no bad row"; the main kernel then writes nothing if a row is bad); then the
/// main kernel. Nothing is waited for: the backend reads the slot after the stream has run
/// both. Core validated `a` into `p`, and [`check`] accepted it.
///
/// # Safety
/// `bad` must be null, or point at 8 bytes of device memory on the stream's device that stay
/// allocated until the work queued here completes (both kernels write or read it there).
pub unsafe fn launch(
    gpu: &dyn Launch,
    stream: &Stream,
    _caps: &Capabilities,
    a: &mut TokenLogprobsArgs<'_>,
    p: &TokenLogprobsProblem,
    bad: *mut c_void,
) -> Result<(), Error> {
    let symbol = symbol(p.dtype, p.align >= 16).ok_or_else(|| Error::NoEntryPoint {
        file: SOURCE.file,
        what: format!("{} logits", p.dtype),
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

    if !bad.is_null() {
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
        // `target_size` bytes (core validated the view) and `bad` 8 bytes (this function's
        // contract), both on the stream's device.
        unsafe {
            gpu.launch(
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
    // aliasing); `entropy` is null or its view, `bad` null or 8 bytes (this function's
    // contract); the `_v16` entry point is chosen only for a 16-byte aligned problem; the
    // grid fits (`check`).
    unsafe {
        gpu.launch(
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
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::Recorder;
    use kernelyard_core::{TensorView, TensorViewMut};

    #[test]
    fn block_threads_of_any_vocabulary() {
        for dtype in [DType::F32, DType::BF16, DType::I64] {
            assert_eq!(block_threads(usize::MAX, dtype), MAX_THREADS);
            assert_eq!(block_threads(0, dtype), 32);
        }
        let mut reasons = Vec::new();
        let p = TokenLogprobsProblem {
            tokens: 2,
            vocab: usize::MAX,
            dtype: DType::BF16,
            target_dtype: DType::I64,
            entropy: false,
            checked: false,
            align: 16,
        };
        check(&Capabilities::host(), &p, &mut reasons);
        assert!(
            matches!(reasons.as_slice(), [Reason::ShapeUnsupported { .. }]),
            "{reasons:?}"
        );
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
        check(&Capabilities::host(), &p, &mut reasons);
        assert!(matches!(
            reasons.as_slice(),
            [Reason::ShapeUnsupported { .. }]
        ));
        let mut reasons = Vec::new();
        let ok = TokenLogprobsProblem { tokens: 4096, ..p };
        check(&Capabilities::host(), &ok, &mut reasons);
        assert!(reasons.is_empty(), "{reasons:?}");
    }

    #[test]
    fn the_check_kernel_runs_first_and_only_with_a_slot() {
        let (t, v) = (10_000, 100);
        let logits = vec![0.0f32; t * v];
        let targets = vec![1i32; t];
        let mut out = vec![0.0f32; t];
        let mut a = TokenLogprobsArgs::new(
            TensorView::from_slice(&logits, &[t, v]).unwrap(),
            TensorView::from_slice(&targets, &[t]).unwrap(),
            TensorViewMut::from_slice(&mut out, &[t]).unwrap(),
        );
        let (p, _) = a.validate().unwrap();
        let gpu = Recorder::default();
        let caps = Capabilities::host();
        let main = Dims {
            grid: (t as u32, 1, 1),
            block: (block_threads(v, DType::F32), 1, 1),
            shared_bytes: 0,
        };
        let want_main = symbol(DType::F32, p.align >= 16).unwrap();
        // SAFETY: the recorder launches nothing; a null slot is allowed.
        unsafe {
            launch(
                &gpu,
                &Stream::host(),
                &caps,
                &mut a,
                &p,
                std::ptr::null_mut(),
            )
        }
        .unwrap();
        let calls = gpu.0.take();
        assert_eq!(calls.len(), 1);
        assert_eq!((calls[0].symbol, calls[0].dims), (want_main, main));
        assert_eq!(
            (calls[0].params, calls[0].first),
            (9, logits.as_ptr().cast())
        );
        let mut slot = [u64::MAX];
        let bad = slot.as_mut_ptr().cast::<c_void>();
        // SAFETY: the recorder launches nothing and reads no slot.
        unsafe { launch(&gpu, &Stream::host(), &caps, &mut a, &p, bad) }.unwrap();
        let calls = gpu.0.take();
        assert_eq!(calls.len(), 2);
        let check_dims = Dims {
            grid: (t.div_ceil(CHECK_THREADS as usize) as u32, 1, 1),
            block: (CHECK_THREADS, 1, 1),
            shared_bytes: 0,
        };
        assert_eq!(
            (calls[0].symbol, calls[0].dims, calls[0].params),
            ("token_logprobs_check", check_dims, 6)
        );
        assert_eq!(calls[0].first, targets.as_ptr().cast());
        assert_eq!((calls[1].symbol, calls[1].dims), (want_main, main));
    }

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
                    t.is_multiple_of(32) && (32..=MAX_THREADS).contains(&t),
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
}
