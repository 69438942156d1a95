//! The split-KV attention kernels for few queries against long keys (decode, short-query
//! prefill), `crates/kernels/kernels/attention_decode.cu`: their plan, checks and launch
//! sequence.
//!
//! - **Split kernel** `attention_decode_<dtype>_c<C>`: one CTA of [`THREADS`] threads per
//!   (batch entry, key/value head, split of [`CHUNK`] keys), for the `R = (Hq / Hkv) * Sq`
//!   query rows that share the key/value head (at most [`MAX_ROWS`]), so a GQA group's heads
//!   read K and V once. It writes each row's partial softmax state and `p V` to scratch memory
//!   the backend owns: [`SLOT_EXTRA`] + `D` floats per (row, split).
//! - **Combine** `attention_decode_<dtype>_combine`: one warp per query row merges its splits in
//!   split order and writes `out` (and `lse`).
//!
//! The split count ([`splits`]: `ceil(Skv / CHUNK)`) depends on the key length alone, the lane
//! mapping ([`lanes`]) on the head dim and dtype alone, and every sum runs in an order they fix:
//! deterministic and batch-invariant. Batch entries run in passes of as many as the scratch
//! holds (all of them with [`scratch_bytes`]).
//!
//! Responsibility: core validated the views (layouts `[B, S, H, D]`, one float dtype, one
//! device, no aliasing) into the [`AttentionProblem`]; [`check`] rejects what the kernels cannot
//! run; [`launch`] queues the passes through the backend.

use std::ffi::c_void;

use kernelyard_core::ops::attention::{AttentionArgs, AttentionProblem};
use kernelyard_core::{Capabilities, DType, Error, Reason, Stream};

use crate::launch::{Dims, Launch};
use crate::source::KernelSource;

/// The kernel source and its entry points: the split kernels (`c1` for every dtype, `c2` for
/// f32 head dims past 128), then the combines.
pub static SOURCE: KernelSource = KernelSource {
    file: "attention_decode.cu",
    code: include_str!("../kernels/attention_decode.cu"),
    symbols: &[
        "attention_decode_f32_c1",
        "attention_decode_f32_c2",
        "attention_decode_f16_c1",
        "attention_decode_bf16_c1",
        "attention_decode_f32_combine",
        "attention_decode_f16_combine",
        "attention_decode_bf16_combine",
    ],
};

/// Keys per split (`chunk` in the kernel): the split count is `ceil(Skv / CHUNK)`.
pub const CHUNK: usize = 256;
/// Threads per CTA of the split kernel (`KY_AD_THREADS`).
pub const THREADS: u32 = 128;
/// Warps per CTA (`KY_AD_WARPS`).
pub const WARPS: usize = 4;
/// Query rows per pass over V (`KY_AD_RT`).
pub const ROW_TILE: usize = 4;
/// Most query rows per key/value head, `(Hq / Hkv) * Sq` (`KY_AD_MAX_ROWS`).
pub const MAX_ROWS: usize = 8;
/// Largest head dim.
pub const MAX_HEAD_DIM: usize = 256;
/// Threads per CTA of the combine (4 rows, one warp each).
pub const COMBINE_THREADS: u32 = 128;
/// Floats of a scratch slot besides the `D` accumulators: the row's max and sum.
pub const SLOT_EXTRA: usize = 2;

/// How many splits a key length of `seq_kv` has.
pub fn splits(seq_kv: usize) -> usize {
    seq_kv.div_ceil(CHUNK).max(1)
}

/// The lane mapping for head dim `head_dim` of `dtype`: `(g, c)`, a group of `g` lanes (a power
/// of two up to 32) per key, each with `c` 16-byte chunks (1, or 2 for f32 past 128).
pub fn lanes(head_dim: usize, dtype: DType) -> (usize, usize) {
    let chunks = head_dim.div_ceil(16 / dtype.size().clamp(1, 16)).max(1);
    let g = chunks.next_power_of_two().min(32);
    (g, chunks.div_ceil(g))
}

/// Query rows per key/value head.
pub fn rows(p: &AttentionProblem) -> usize {
    (p.heads_q / p.heads_kv.max(1)).saturating_mul(p.seq_q)
}

/// Shared memory of the split kernel, bytes: q rows and scores (`R * (D + CHUNK)`), the warps'
/// `p V` tiles (`WARPS * ROW_TILE * D`) and the rows' max and sum (`2 R`), f32.
pub fn shared_bytes(p: &AttentionProblem) -> u64 {
    let r = rows(p) as u64;
    let d = p.head_dim as u64;
    let floats = r
        .saturating_mul(d.saturating_add(CHUNK as u64))
        .saturating_add((WARPS * ROW_TILE) as u64 * d)
        .saturating_add(2 * r);
    floats.saturating_mul(4)
}

/// Bytes of one batch entry's scratch slots.
fn entry_scratch(p: &AttentionProblem) -> usize {
    p.heads_q
        .saturating_mul(p.seq_q)
        .saturating_mul(splits(p.seq_kv))
        .saturating_mul(p.head_dim + SLOT_EXTRA)
        .saturating_mul(4)
}

/// Scratch bytes for all of `p`'s batch entries in one pass. A launch given less runs the batch
/// in passes of as many entries as fit.
pub fn scratch_bytes(p: &AttentionProblem) -> usize {
    entry_scratch(p).saturating_mul(p.batch)
}

/// Device memory the split kernel writes its partial results to.
pub use crate::launch::Scratch;

fn symbols(dtype: DType, c: usize) -> Option<(&'static str, &'static str)> {
    let s = &SOURCE.symbols;
    match (dtype, c) {
        (DType::F32, 1) => Some((s[0], s[4])),
        (DType::F32, 2) => Some((s[1], s[4])),
        (DType::F16, 1) => Some((s[2], s[5])),
        (DType::BF16, 1) => Some((s[3], s[6])),
        _ => None,
    }
}

/// The device addresses of one pass's first batch entry in each view of a decode launch.
#[derive(Clone, Copy, Debug)]
pub struct PassPointers {
    /// `q` at batch entry `b0`.
    pub q: *const c_void,
    /// `k` at batch entry `b0`.
    pub k: *const c_void,
    /// `v` at batch entry `b0`.
    pub v: *const c_void,
    /// `out` at batch entry `b0`.
    pub out: *mut c_void,
    /// `lse` at batch entry `b0`, or null when the caller wants none.
    pub lse: *mut c_void,
}

/// The views' addresses at batch entry `b0` (device addresses, computed with wrapping
/// arithmetic and never dereferenced here; inside the views when `b0 < batch`), for a launch
/// that runs the batch in passes.
pub fn pass_pointers(a: &mut AttentionArgs<'_>, p: &AttentionProblem, b0: usize) -> PassPointers {
    let elem = p.dtype.size();
    let q_entry = p.seq_q * p.heads_q * p.head_dim * elem;
    let kv_entry = p.seq_kv * p.heads_kv * p.head_dim * elem;
    let lse_entry = p.heads_q * p.seq_q * 4;
    PassPointers {
        q: a.q.as_ptr().wrapping_byte_add(b0 * q_entry),
        k: a.k.as_ptr().wrapping_byte_add(b0 * kv_entry),
        v: a.v.as_ptr().wrapping_byte_add(b0 * kv_entry),
        out: a.out.as_mut_ptr().wrapping_byte_add(b0 * q_entry),
        lse: a.lse.as_mut().map_or(std::ptr::null_mut(), |l| {
            l.as_mut_ptr().wrapping_byte_add(b0 * lse_entry)
        }),
    }
}

/// Pushes the reasons the kernels cannot run `p`: a head dim that 16-byte chunks do not cover
/// or past [`MAX_HEAD_DIM`], more than [`MAX_ROWS`] query rows per key/value head, shared
/// memory beyond the device's per-block limit, sizes past the kernels' 32-bit indices. None
/// depends on the batch.
pub fn check(caps: &Capabilities, p: &AttentionProblem, reasons: &mut Vec<Reason>) {
    let v = 16 / p.dtype.size().clamp(1, 16);
    if p.head_dim > MAX_HEAD_DIM || !p.head_dim.is_multiple_of(v) {
        reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "head_dim {} (the decode kernel takes multiples of {v} up to {MAX_HEAD_DIM} for \
                 {})",
                p.head_dim, p.dtype
            ),
        });
    }
    let r = rows(p);
    if r > MAX_ROWS {
        reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "(heads_q / heads_kv) * seq_q = {r} query rows per key/value head (the decode \
                 kernel takes at most {MAX_ROWS}; longer queries are prefill)"
            ),
        });
    }
    let need = shared_bytes(p);
    if need > caps.shared_mem_per_block {
        reasons.push(Reason::SharedMemory {
            need,
            have: caps.shared_mem_per_block,
        });
    }
    check_grid(p, splits(p.seq_kv), reasons);
}

/// The limits a split-keys decode kernel shares whatever its split rule (this file's and
/// `cuda.attention.decode.mma`'s): 32-bit query positions and heads, 2^40 keys, and one batch
/// entry's `splits x heads_kv` CTAs within a grid of 2^31 - 1.
pub fn check_grid(p: &AttentionProblem, splits: usize, reasons: &mut Vec<Reason>) {
    let limit = i32::MAX as usize;
    if p.seq_q > limit || p.heads_q > limit || p.seq_kv > 1 << 40 {
        reasons.push(Reason::ShapeUnsupported {
            what: "seq_q or heads_q past 2^31 - 1, or seq_kv past 2^40".to_owned(),
        });
    }
    if splits.saturating_mul(p.heads_kv) > limit {
        reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "{splits} splits x {} key/value heads: one batch entry needs more than \
                 2^31 - 1 CTAs",
                p.heads_kv
            ),
        });
    }
}

/// Launches `p` on `stream` through `gpu`: per pass of batch entries, the split kernel then the
/// combine. Core validated `a` into `p`, and [`check`] accepted it.
///
/// # Safety
/// `scratch.ptr` must point at `scratch.bytes` bytes of device memory on the stream's device
/// that nothing else uses until the work queued here completes.
pub unsafe fn launch(
    gpu: &dyn Launch,
    stream: &Stream,
    a: &mut AttentionArgs<'_>,
    p: &AttentionProblem,
    scratch: Scratch,
) -> Result<(), Error> {
    let (g, c) = lanes(p.head_dim, p.dtype);
    let (split, combine) = symbols(p.dtype, c).ok_or_else(|| Error::NoEntryPoint {
        file: SOURCE.file,
        what: format!("{} with head_dim {}", p.dtype, p.head_dim),
    })?;
    let per_entry = entry_scratch(p);
    let splits = splits(p.seq_kv);
    // Entries per pass: what the scratch holds, and a grid of at most 2^31 - 1 CTAs (`check`
    // keeps one entry's within it).
    let ctas_per_entry = splits * p.heads_kv;
    let pass = (scratch.bytes / per_entry.max(1)).min(i32::MAX as usize / ctas_per_entry.max(1));
    if scratch.ptr.is_null() || pass == 0 {
        return Err(Error::NoEntryPoint {
            file: SOURCE.file,
            what: format!(
                "a batch entry without scratch memory for its {per_entry} bytes (a bug in the \
                 backend)"
            ),
        });
    }
    let (seq_q, seq_kv) = (p.seq_q as i64, p.seq_kv as i64);
    let (heads_q, heads_kv, head_dim) = (p.heads_q as i64, p.heads_kv as i64, p.head_dim as i64);
    let (nsplits, chunk, g) = (splits as i64, CHUNK as i64, g as i64);
    let qscale = (f64::from(a.effective_scale()) * std::f64::consts::LOG2_E) as f32;
    let causal = i64::from(p.causal);
    let part = scratch.ptr;
    let mut b0 = 0;
    while b0 < p.batch {
        let entries = pass.min(p.batch - b0);
        let PassPointers { q, k, v, out, lse } = pass_pointers(a, p, b0);
        let dims = Dims {
            grid: ((entries * ctas_per_entry) as u32, 1, 1),
            block: (THREADS, 1, 1),
            shared_bytes: shared_bytes(p) as u32,
        };
        // SAFETY: the parameters match `attention_decode_<dtype>_c<C>(const void* q, const
        // void* k, const void* v, void* part, long long seq_q, long long seq_kv, long long
        // heads_q, long long heads_kv, long long head_dim, long long splits, long long chunk,
        // long long g, float qscale, long long causal)`; the pass's entries lie in the
        // validated views; `part` holds their slots (`pass` is what the scratch holds, the
        // contract); (g, C) cover the head dim and the shared memory fits (`check`).
        unsafe {
            gpu.launch(
                stream,
                &SOURCE,
                split,
                dims,
                &mut crate::params![
                    q, k, v, part, seq_q, seq_kv, heads_q, heads_kv, head_dim, nsplits, chunk, g,
                    qscale, causal
                ],
            )?
        };
        let rows = entries * p.heads_q * p.seq_q;
        let dims = Dims {
            grid: ((rows * 32).div_ceil(COMBINE_THREADS as usize) as u32, 1, 1),
            block: (COMBINE_THREADS, 1, 1),
            shared_bytes: 0,
        };
        let (part_in, nrows) = (part as *const c_void, rows as i64);
        // SAFETY: the parameters match `attention_decode_<dtype>_combine(const void* part,
        // void* out, void* lse, long long rows, long long seq_q, long long heads_q, long long
        // head_dim, long long splits)`; `part` holds the slots the split kernel wrote just
        // before on this stream; out and lse (null or its view) cover the pass's entries.
        unsafe {
            gpu.launch(
                stream,
                &SOURCE,
                combine,
                dims,
                &mut crate::params![part_in, out, lse, nrows, seq_q, heads_q, head_dim, nsplits],
            )?
        };
        b0 += entries;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::Recorder;
    use kernelyard_core::{TensorView, TensorViewMut};

    fn problem(
        batch: usize,
        seq_q: usize,
        seq_kv: usize,
        hq: usize,
        hkv: usize,
        d: usize,
    ) -> AttentionProblem {
        AttentionProblem {
            batch,
            seq_q,
            seq_kv,
            heads_q: hq,
            heads_kv: hkv,
            head_dim: d,
            dtype: DType::BF16,
            causal: false,
            lse: false,
            align: 16,
        }
    }

    #[test]
    fn splits_and_lanes_depend_on_the_key_length_and_head_dim_alone() {
        assert_eq!(splits(1), 1);
        assert_eq!(splits(256), 1);
        assert_eq!(splits(257), 2);
        assert_eq!(splits(4096), 16);
        assert_eq!(splits(131_072), 512);
        assert_eq!(lanes(128, DType::BF16), (16, 1));
        assert_eq!(lanes(64, DType::BF16), (8, 1));
        assert_eq!(lanes(256, DType::BF16), (32, 1));
        assert_eq!(lanes(128, DType::F32), (32, 1));
        assert_eq!(lanes(256, DType::F32), (32, 2));
        assert_eq!(lanes(8, DType::F16), (1, 1));
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let v = 16 / dtype.size();
            for d in (v..=MAX_HEAD_DIM).step_by(v) {
                let (g, c) = lanes(d, dtype);
                assert!(
                    g.is_power_of_two() && g <= 32 && g * c * v >= d,
                    "{dtype} {d}"
                );
                assert!(symbols(dtype, c).is_some(), "{dtype} {d}");
            }
        }
    }

    #[test]
    fn checks_name_each_limit_and_none_depends_on_the_batch() {
        let caps = Capabilities {
            shared_mem_per_block: 48 * 1024,
            ..Capabilities::host()
        };
        let ok = |p: &AttentionProblem| {
            let mut r = Vec::new();
            check(&caps, p, &mut r);
            r
        };
        // Llama-3 decode: G = 4, one query, head dim 128; any batch.
        for b in [1, 7, 4096] {
            assert!(ok(&problem(b, 1, 131_072, 32, 8, 128)).is_empty());
        }
        // G = 8, two queries: 16 rows.
        let r = ok(&problem(1, 2, 100, 64, 8, 128));
        assert!(
            matches!(&r[..], [Reason::ShapeUnsupported { what }] if what.contains("16 query rows")),
            "{r:?}"
        );
        let r = ok(&problem(1, 1, 100, 4, 4, 76));
        assert!(
            matches!(&r[..], [Reason::ShapeUnsupported { what }] if what.contains("head_dim 76")),
            "{r:?}"
        );
        let r = ok(&problem(1, 1, 100, 4, 4, 264));
        assert_eq!(r.len(), 1, "{r:?}");
        // Shared memory: 8 rows at head dim 256 need 32.8 KB; a device with 16 KiB refuses.
        let p = problem(1, 1, 100, 8, 1, 256);
        assert_eq!(shared_bytes(&p), (8 * (256 + 256) + 16 * 256 + 16) * 4);
        let small = Capabilities {
            shared_mem_per_block: 16 * 1024,
            ..caps.clone()
        };
        let mut r = Vec::new();
        check(&small, &p, &mut r);
        assert!(
            matches!(
                r[..],
                [Reason::SharedMemory {
                    need: 32_832,
                    have: 16_384
                }]
            ),
            "{r:?}"
        );
    }

    #[test]
    fn the_batch_runs_in_passes_the_scratch_holds() {
        let (b, sq, skv, hq, hkv, d) = (5, 1, 600, 4, 2, 64);
        let q = vec![0.0f32; b * sq * hq * d];
        let kv = vec![0.0f32; b * skv * hkv * d];
        let mut out = vec![0.0f32; b * sq * hq * d];
        let mut a = AttentionArgs::new(
            TensorView::from_slice(&q, &[b, sq, hq, d]).unwrap(),
            TensorView::from_slice(&kv, &[b, skv, hkv, d]).unwrap(),
            TensorView::from_slice(&kv, &[b, skv, hkv, d]).unwrap(),
            TensorViewMut::from_slice(&mut out, &[b, sq, hq, d]).unwrap(),
        );
        let (p, _) = a.validate().unwrap();
        let per_entry = hq * sq * splits(skv) * (d + SLOT_EXTRA) * 4;
        assert_eq!(scratch_bytes(&p), b * per_entry);
        let mut part = vec![0u8; 2 * per_entry + 3];
        let scratch = Scratch {
            ptr: part.as_mut_ptr().cast(),
            bytes: part.len(),
        };
        let gpu = Recorder::default();
        // SAFETY: the recorder launches nothing.
        unsafe { launch(&gpu, &Stream::host(), &mut a, &p, scratch) }.unwrap();
        let calls = gpu.0.take();
        let (split, combine) = symbols(DType::F32, 1).unwrap();
        // Passes of 2, 2 and 1 entries: the split kernel over (entries, Hkv, 3 splits), then
        // the combine over entries * Hq * Sq rows of one warp.
        assert_eq!(calls.len(), 6);
        for (i, (pass, entries)) in calls.chunks(2).zip([2, 2, 1]).enumerate() {
            assert_eq!(pass[0].symbol, split);
            assert_eq!(pass[0].dims.grid.0 as usize, entries * hkv * 3);
            assert_eq!(pass[0].dims.block, (THREADS, 1, 1));
            assert_eq!(pass[0].params, 14);
            assert_eq!(pass[0].first, q[i * 2 * sq * hq * d..].as_ptr().cast());
            assert_eq!(pass[1].symbol, combine);
            assert_eq!(
                pass[1].dims.grid.0 as usize,
                (entries * hq * sq * 32).div_ceil(128)
            );
            assert_eq!(pass[1].params, 8);
        }
        // No room for one entry: an error, nothing launched.
        let small = Scratch {
            ptr: part.as_mut_ptr().cast(),
            bytes: per_entry - 1,
        };
        // SAFETY: the recorder launches nothing.
        let err = unsafe { launch(&gpu, &Stream::host(), &mut a, &p, small) }.unwrap_err();
        assert!(matches!(err, Error::NoEntryPoint { .. }), "{err}");
        assert!(gpu.0.take().is_empty());
    }

    #[test]
    fn every_symbol_is_an_entry_of_the_source() {
        for s in SOURCE.symbols {
            let n = ["KY_AD_SPLIT", "KY_AD_COMBINE"]
                .iter()
                .map(|m| SOURCE.code.matches(&format!("{m}({s},")).count())
                .sum::<usize>();
            assert_eq!(n, 1, "{s} is not defined in {}", SOURCE.file);
        }
        for (name, value) in [
            ("KY_AD_THREADS", THREADS as usize),
            ("KY_AD_WARPS", WARPS),
            ("KY_AD_RT", ROW_TILE),
            ("KY_AD_MAX_ROWS", MAX_ROWS),
        ] {
            assert!(
                SOURCE.code.contains(&format!("#define {name} {value}\n")),
                "{name}"
            );
        }
    }
}
