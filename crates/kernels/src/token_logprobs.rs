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
//! - **Split rows.** A row of more than [`SPLIT_CHUNKS`] 16-byte chunks (32 KiB: 16384 bf16, 8192
//!   f32) is folded by [`splits`] CTAs of [`SPLIT_THREADS`] threads (`..._split`, grid `rows *
//!   splits`, one launch), each writing its merged state `(m, s, w)` to scratch memory the backend
//!   owns ([`Scratch`], [`PART_BYTES`] per split) and counting itself in on the row's arrival
//!   counter ([`Counters`], one `u32` per row of a pass). The row's last CTA to count in merges the
//!   row's states in split order (never arrival order), writes the outputs and sets the counter
//!   back to 0: the counters are zero between launches, and the backend zeroes them once, when it
//!   allocates them. (Before issue 17's one-launch change a second kernel, `_combine`, did that
//!   merge with the same arithmetic, so the bits are unchanged; its launch and the gap before it
//!   cost more than the split kernel's 11 us at 64 x 151936.) The split count depends on the
//!   vocabulary size and dtype only: a row's bits do not depend on its batch. Why split: with one
//!   CTA per row, 64 rows of 151936 bf16 logits kept 64 of an H100's 132 SMs busy (0.61 TB/s). Rows
//!   run in passes of as many as the scratch and the counters hold. With 16-byte loads a split
//!   thread issues the loads of all its steps (4 of [`UNROLL`] chunks) before it folds the first
//!   (`KY_TL_SPLIT_BATCH` in the kernel, [`SPLIT_BATCH`] here): the same folds in the same order,
//!   so the same bits, with one round trip to memory per CTA instead of four. Signature:
//!   `(const void* logits, const void* targets, void* part, void* counters, void* out, void*
//!   entropy, const void* bad, long long vocab, long long splits, long long split_chunks, long
//!   long target_size, long long ignore_index, float k)`.
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
//! [`Error::TargetOutOfRange`] for the row it names. It also owns the split path's scratch and
//! counters: device memory on the stream's device; the counters used by no other kernel and
//! zero when a launch starts (the split kernel leaves them at zero).

use std::ffi::c_void;

use kernelyard_core::ops::token_logprobs::{TokenLogprobsArgs, TokenLogprobsProblem};
use kernelyard_core::{Capabilities, DType, Error, Reason, Stream};

pub use crate::launch::Counters;
use crate::launch::{check_elements, Dims, Launch};
use crate::source::KernelSource;

/// The kernel source and its entry points: the main kernel per logits dtype, element-wise
/// (`token_logprobs_<dtype>`) and 16-byte (`..._v16`) loads, the checked-mode pre-pass, then
/// the split path's kernel in the same six variants.
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
        "token_logprobs_f32_split",
        "token_logprobs_f16_split",
        "token_logprobs_bf16_split",
        "token_logprobs_f32_v16_split",
        "token_logprobs_f16_v16_split",
        "token_logprobs_bf16_v16_split",
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

/// Chunks (16 bytes each) of a row that one CTA of the split path folds: 32 KiB of logits.
pub const SPLIT_CHUNKS: usize = 2048;

/// Threads per CTA of the split path (`..._split`): 4 steps of [`UNROLL`] chunks per thread
/// for a whole split.
pub const SPLIT_THREADS: u32 = 256;

/// Steps of the split path whose 16-byte loads a thread issues together (`KY_TL_SPLIT_BATCH`
/// in the kernel, read from its text): all of a split's ([`SPLIT_CHUNKS`] / ([`SPLIT_THREADS`]
/// x [`UNROLL`]) = 4) as committed. Only the issue order of the loads depends on it.
pub const SPLIT_BATCH: usize = match crate::source::define_value(
    include_str!("../kernels/token_logprobs.cu"),
    b"#define KY_TL_SPLIT_BATCH ",
) {
    Some(b) if b >= 1 => b,
    _ => panic!("token_logprobs.cu: `#define KY_TL_SPLIT_BATCH <n>` is missing"),
};

/// Bytes of one split's partial state (`m`, `s`, `w` as f32) in the scratch buffer.
pub const PART_BYTES: usize = 12;

/// How many CTAs fold each row: `ceil(chunks / SPLIT_CHUNKS)`, from the vocabulary size and
/// dtype alone, so a row's bits do not depend on its batch. One split (rows of at most 32 KiB)
/// runs the one-CTA-per-row kernel; more run the split kernel, whose last CTA of each row
/// merges the row's splits in split order.
pub fn splits(vocab: usize, dtype: DType) -> usize {
    vocab
        .div_ceil(chunk_elems(dtype).max(1))
        .div_ceil(SPLIT_CHUNKS)
        .max(1)
}

/// Scratch bytes the split path needs to run all of `p`'s rows in one pass (0 when its rows
/// are not split). A launch given less runs the rows in passes of as many rows as fit.
pub fn scratch_bytes(p: &TokenLogprobsProblem) -> usize {
    let splits = splits(p.vocab, p.dtype);
    if splits == 1 {
        0
    } else {
        p.tokens.saturating_mul(splits).saturating_mul(PART_BYTES)
    }
}

/// Arrival counters the split path needs to run all of `p`'s rows in one pass: one per row (0
/// when its rows are not split). A launch given fewer runs the rows in passes of as many rows
/// as there are counters (and as the scratch holds).
pub fn counters_needed(p: &TokenLogprobsProblem) -> usize {
    if splits(p.vocab, p.dtype) == 1 {
        0
    } else {
        p.tokens
    }
}

/// Device memory a launch of the split path writes its partial states to.
pub use crate::launch::Scratch;

/// The split path's device memory, the backend's: the partial states' scratch and the rows'
/// arrival counters (both none when the rows are not split; see [`launch`]'s safety contract).
#[derive(Clone, Copy, Debug)]
pub struct SplitMem {
    /// Partial states, [`PART_BYTES`] per split of a row ([`scratch_bytes`] for one pass).
    pub scratch: Scratch,
    /// One arrival counter per row of a pass ([`counters_needed`] for one pass).
    pub counters: Counters,
}

impl SplitMem {
    /// None: for problems whose rows are not split.
    pub const NONE: SplitMem = SplitMem {
        scratch: Scratch::NONE,
        counters: Counters::NONE,
    };
}

fn dtype_index(dtype: DType) -> Option<usize> {
    match dtype {
        DType::F32 => Some(0),
        DType::F16 => Some(1),
        DType::BF16 => Some(2),
        _ => None,
    }
}

/// The main entry point for logits of `dtype`, with 16-byte loads when `vec`; `None` for a
/// dtype the kernel does not handle.
pub fn symbol(dtype: DType, vec: bool) -> Option<&'static str> {
    let i = dtype_index(dtype)?;
    Some(SOURCE.symbols[i + if vec { 3 } else { 0 }])
}

/// The split path's entry point for `dtype` (16-byte loads when `vec`); `None` for a dtype the
/// kernel does not handle.
pub fn split_symbol(dtype: DType, vec: bool) -> Option<&'static str> {
    let i = dtype_index(dtype)?;
    Some(SOURCE.symbols[CHECK_SYMBOL + 1 + i + if vec { 3 } else { 0 }])
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
/// Rows longer than one split ([`splits`] > 1) run the split kernel instead of the main
/// kernel, one launch per pass of as many rows as `mem.scratch` holds partial states for and
/// `mem.counters` has counters (all of them when they have [`scratch_bytes`] and
/// [`counters_needed`]).
///
/// # Safety
/// `bad` must be null, or point at 8 bytes of device memory on the stream's device that stay
/// allocated until the work queued here completes (both kernels write or read it there).
/// `mem.scratch.ptr` must point at `mem.scratch.bytes` bytes of device memory on the stream's
/// device that nothing else uses until the work queued here completes (null and 0 when the
/// rows are not split). `mem.counters.ptr` must point at `mem.counters.len` `u32`s of device
/// memory on the stream's device (null and 0 when the rows are not split) that stay allocated
/// until the work queued here completes, that no other work writes (or counts on) meanwhile,
/// and that are all zero when it starts; the split kernel counts on them and leaves every one
/// it used at zero, so the same counters serve the next launch without being cleared.
pub unsafe fn launch(
    gpu: &dyn Launch,
    stream: &Stream,
    _caps: &Capabilities,
    a: &mut TokenLogprobsArgs<'_>,
    p: &TokenLogprobsProblem,
    bad: *mut c_void,
    mem: SplitMem,
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
    let splits = splits(p.vocab, p.dtype);
    if splits > 1 {
        // SAFETY: this function's contract, passed on.
        return unsafe { launch_split(gpu, stream, a, p, bad, mem, splits) };
    }
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

/// The split path of [`launch`]: per pass of `rows` rows, the split kernel (grid `rows *
/// splits`), whose last CTA of each row merges the row and writes its outputs.
///
/// # Safety
/// [`launch`]'s contract.
unsafe fn launch_split(
    gpu: &dyn Launch,
    stream: &Stream,
    a: &mut TokenLogprobsArgs<'_>,
    p: &TokenLogprobsProblem,
    bad: *const c_void,
    mem: SplitMem,
    splits: usize,
) -> Result<(), Error> {
    let split = split_symbol(p.dtype, p.align >= 16).ok_or_else(|| Error::NoEntryPoint {
        file: SOURCE.file,
        what: format!("{} logits", p.dtype),
    })?;
    let SplitMem { scratch, counters } = mem;
    let per_row = splits * PART_BYTES;
    // Rows per pass: what the scratch and the counters hold, and a grid of at most 2^31 - 1
    // CTAs.
    let pass = (scratch.bytes / per_row)
        .min(counters.len)
        .min(i32::MAX as usize / splits);
    if scratch.ptr.is_null() || counters.ptr.is_null() || pass == 0 {
        return Err(Error::NoEntryPoint {
            file: SOURCE.file,
            what: format!(
                "split rows ({splits} splits) without scratch memory for one row's {per_row} \
                 bytes or one arrival counter (a bug in the backend)"
            ),
        });
    }
    let elem = p.dtype.size();
    let target_size = p.target_dtype.size();
    let (vocab, nsplits) = (p.vocab as i64, splits as i64);
    let split_chunks = SPLIT_CHUNKS as i64;
    let (ts, ignore_index) = (target_size as i64, a.ignore_index);
    let k = (LOG2_E / f64::from(a.temperature)) as f32;
    let (part, count) = (scratch.ptr, counters.ptr);
    let mut r0 = 0;
    while r0 < p.tokens {
        let rows = pass.min(p.tokens - r0);
        // This pass's rows: the views' pointers advanced by r0 rows (inside the views: r0 <
        // tokens), as device addresses (never dereferenced here).
        let logits = a.logits.as_ptr().wrapping_byte_add(r0 * p.vocab * elem);
        let targets = a.targets.as_ptr().wrapping_byte_add(r0 * target_size);
        let out = a.out.as_mut_ptr().wrapping_byte_add(r0 * 4);
        let entropy = a.entropy.as_mut().map_or(std::ptr::null_mut(), |e| {
            e.as_mut_ptr().wrapping_byte_add(r0 * 4)
        });
        let dims = Dims {
            grid: ((rows * splits) as u32, 1, 1),
            block: (SPLIT_THREADS, 1, 1),
            shared_bytes: 0,
        };
        // SAFETY: the parameters match `token_logprobs_<dtype>[_v16]_split(const void*, const
        // void*, void*, void*, void*, void*, const void*, long long, long long, long long, long
        // long, long long, float)`; the pass's `rows` rows of logits, targets, out and entropy
        // lie in the validated views; `part` holds `rows * splits * 3` floats and `count`
        // `rows` counters, zero on entry, written by no other kernel, left at zero by this one
        // (`pass`, and this function's contract; the previous pass, earlier on the stream,
        // left them at zero); `bad` is null or 8 bytes (the contract); the grid is at most
        // 2^31 - 1 CTAs; the `_v16` entry point only for a 16-byte aligned problem (each split
        // starts at a whole 16-byte chunk).
        unsafe {
            gpu.launch(
                stream,
                &SOURCE,
                split,
                dims,
                &mut crate::params![
                    logits,
                    targets,
                    part,
                    count,
                    out,
                    entropy,
                    bad,
                    vocab,
                    nsplits,
                    split_chunks,
                    ts,
                    ignore_index,
                    k
                ],
            )?
        };
        r0 += rows;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::Recorder;
    use kernelyard_core::{TensorView, TensorViewMut};

    #[test]
    fn a_split_thread_issues_all_its_loads_at_once() {
        // One batch of steps covers a whole split, so each CTA of the split path makes one
        // round trip to memory (a timing variant may say otherwise; this is the committed one).
        assert_eq!(SPLIT_BATCH * SPLIT_THREADS as usize * UNROLL, SPLIT_CHUNKS);
    }

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
                SplitMem::NONE,
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
        unsafe {
            launch(
                &gpu,
                &Stream::host(),
                &caps,
                &mut a,
                &p,
                bad,
                SplitMem::NONE,
            )
        }
        .unwrap();
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
    fn splits_depend_on_the_row_only() {
        // 16-byte chunks, 2048 per split: 32 KiB of logits per CTA.
        assert_eq!(splits(1, DType::BF16), 1);
        assert_eq!(splits(16_384, DType::BF16), 1);
        assert_eq!(splits(16_385, DType::BF16), 2);
        assert_eq!(splits(8_192, DType::F32), 1);
        assert_eq!(splits(32_000, DType::BF16), 2);
        assert_eq!(splits(151_936, DType::BF16), 10);
        assert_eq!(splits(151_936, DType::F32), 19);
        assert_eq!(splits(usize::MAX, DType::BF16), usize::MAX / 8 / 2048 + 1);
        let p = |tokens, vocab| TokenLogprobsProblem {
            tokens,
            vocab,
            dtype: DType::BF16,
            target_dtype: DType::I64,
            entropy: true,
            checked: false,
            align: 16,
        };
        assert_eq!(scratch_bytes(&p(64, 151_936)), 64 * 10 * PART_BYTES);
        assert_eq!(scratch_bytes(&p(64, 16_384)), 0);
        assert_eq!(scratch_bytes(&p(usize::MAX, 151_936)), usize::MAX);
        assert_eq!(counters_needed(&p(64, 151_936)), 64);
        assert_eq!(counters_needed(&p(64, 16_384)), 0);
    }

    /// The launches of the split path for 7 rows of 20000 f32 logits (3 splits) with scratch
    /// for `scratch_rows` rows (plus 5 bytes) and `counter_rows` counters.
    fn split_launches(scratch_rows: usize, counter_rows: usize) -> Vec<(usize, *const c_void)> {
        let (t, v) = (7, 20_000);
        let logits = vec![0.0f32; t * v];
        let targets = vec![1i64; t];
        let mut out = vec![0.0f32; t];
        let mut ent = vec![0.0f32; t];
        let mut a = TokenLogprobsArgs::new(
            TensorView::from_slice(&logits, &[t, v]).unwrap(),
            TensorView::from_slice(&targets, &[t]).unwrap(),
            TensorViewMut::from_slice(&mut out, &[t]).unwrap(),
        );
        a.entropy = Some(TensorViewMut::from_slice(&mut ent, &[t]).unwrap());
        let (p, _) = a.validate().unwrap();
        let splits = splits(v, DType::F32);
        assert_eq!(splits, 3);
        let want_split = split_symbol(DType::F32, p.align >= 16).unwrap();
        let gpu = Recorder::default();
        let mut part = vec![0u8; scratch_rows * splits * PART_BYTES + 5];
        let mut count = vec![0u32; counter_rows];
        let mem = SplitMem {
            scratch: Scratch {
                ptr: part.as_mut_ptr().cast(),
                bytes: part.len(),
            },
            counters: Counters {
                ptr: count.as_mut_ptr().cast(),
                len: count.len(),
            },
        };
        // SAFETY: the recorder launches nothing.
        unsafe {
            launch(
                &gpu,
                &Stream::host(),
                &Capabilities::host(),
                &mut a,
                &p,
                std::ptr::null_mut(),
                mem,
            )
        }
        .unwrap();
        gpu.0
            .take()
            .iter()
            .map(|c| {
                // One kernel per pass: the split kernel, whose last CTA per row merges.
                assert_eq!(c.symbol, want_split);
                assert_eq!(c.dims.block, (SPLIT_THREADS, 1, 1));
                assert_eq!(c.dims.grid.0 as usize % splits, 0);
                assert_eq!(c.params, 13);
                (c.dims.grid.0 as usize / splits, c.first)
            })
            .collect()
    }

    #[test]
    fn split_rows_run_one_kernel_per_pass() {
        let rows = |s, c| -> Vec<usize> { split_launches(s, c).iter().map(|l| l.0).collect() };
        // 7 rows, 3 per pass (the scratch or the counters hold 3): passes of 3, 3 and 1 rows.
        assert_eq!(rows(3, 7), [3, 3, 1]);
        assert_eq!(rows(7, 3), [3, 3, 1]);
        assert_eq!(rows(100, 100), [7]);
        assert_eq!(rows(2, 100), [2, 2, 2, 1]);
        // Each pass starts at its first row (4 bytes per f32 logit, 20000 per row).
        let l = split_launches(3, 3);
        for (i, w) in l.windows(2).enumerate() {
            let step = (w[1].1 as usize).wrapping_sub(w[0].1 as usize);
            assert_eq!(step, 3 * 20_000 * 4, "pass {}", i + 1);
        }
    }

    #[test]
    fn split_rows_need_scratch_and_counters() {
        let (t, v) = (2, 20_000);
        let logits = vec![0.0f32; t * v];
        let targets = vec![1i64; t];
        let mut out = vec![0.0f32; t];
        let mut a = TokenLogprobsArgs::new(
            TensorView::from_slice(&logits, &[t, v]).unwrap(),
            TensorView::from_slice(&targets, &[t]).unwrap(),
            TensorViewMut::from_slice(&mut out, &[t]).unwrap(),
        );
        let (p, _) = a.validate().unwrap();
        let splits = splits(v, DType::F32);
        let mut part = vec![0u8; 16 * splits * PART_BYTES];
        let mut count = vec![0u32; 16];
        let scratch = Scratch {
            ptr: part.as_mut_ptr().cast(),
            bytes: part.len(),
        };
        let counters = Counters {
            ptr: count.as_mut_ptr().cast(),
            len: count.len(),
        };
        let small = Scratch {
            bytes: splits * PART_BYTES - 1,
            ..scratch
        };
        let gpu = Recorder::default();
        // Without scratch for one row, or without one counter: an error, nothing launched.
        for mem in [
            SplitMem::NONE,
            SplitMem {
                scratch,
                counters: Counters::NONE,
            },
            SplitMem {
                scratch: Scratch::NONE,
                counters,
            },
            SplitMem {
                scratch: small,
                counters,
            },
            SplitMem {
                scratch,
                counters: Counters { len: 0, ..counters },
            },
        ] {
            // SAFETY: the recorder launches nothing.
            let err = unsafe {
                launch(
                    &gpu,
                    &Stream::host(),
                    &Capabilities::host(),
                    &mut a,
                    &p,
                    std::ptr::null_mut(),
                    mem,
                )
            }
            .unwrap_err();
            assert!(matches!(err, Error::NoEntryPoint { .. }), "{mem:?}: {err}");
            assert!(gpu.0.take().is_empty());
        }
        let mem = SplitMem { scratch, counters };
        // SAFETY: the recorder launches nothing.
        unsafe {
            launch(
                &gpu,
                &Stream::host(),
                &Capabilities::host(),
                &mut a,
                &p,
                std::ptr::null_mut(),
                mem,
            )
        }
        .unwrap();
        assert_eq!(gpu.0.take().len(), 1);
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
        for &d in DType::FLOATS {
            assert_eq!(
                split_symbol(d, false).unwrap(),
                format!("token_logprobs_{}_split", d.name())
            );
            assert_eq!(
                split_symbol(d, true).unwrap(),
                format!("token_logprobs_{}_v16_split", d.name())
            );
        }
        assert_eq!(split_symbol(DType::I64, true), None);
        // The split path is one kernel: no combine entry point is left.
        assert!(!SOURCE.code.contains("_combine"));
    }

    #[test]
    fn every_symbol_is_an_entry_of_the_source() {
        for s in SOURCE.symbols {
            let n = SOURCE.code.matches(&format!("{s}(")).count()
                + ["KY_TL_ENTRY", "KY_TL_SPLIT"]
                    .iter()
                    .map(|m| SOURCE.code.matches(&format!("{m}({s},")).count())
                    .sum::<usize>();
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
