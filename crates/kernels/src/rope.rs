//! The source of the rotary-embedding kernels, `crates/kernels/kernels/rope.cu`, and their
//! launch [`plan`].
//!
//! Each thread owns a unit of one token and a group of heads: a fixed set of pairs (16 bytes of
//! features, or one pair when unaligned) whose cos/sin it computes once and applies to every
//! head of the group, or (out of place) 16 bytes of the pass-through tail `[rotary_dim,
//! head_dim)` it copies for every head of the group. Head groups are as large as still gives
//! every SM [`THREADS_PER_SM`] threads, so on large problems sin/cos are computed a few times
//! per (token, frequency), not once per head. The `_v16` entry points (16-byte units) are
//! chosen when the problem is 16-byte aligned and the pairs fill whole 16-byte chunks; every
//! element's arithmetic is the same in both.
//!
//! Signature of every entry point: `(const void* x, void* out, const void* positions, long
//! long pos_size, long long tokens, long long heads, long long head_dim, long long rotary_dim,
//! long long heads_per_thread, long long copy_tail, double r)`, `r = theta^(-2 / rotary_dim)`
//! (computed on the host in f64); a one-dimensional grid of [`RopePlan::blocks`] blocks of
//! [`THREADS`] threads.
//!
//! Responsibility: core validated the views (shapes, dtypes, one device, in place one view,
//! out of place `out` disjoint from `x`, an even `rotary_dim <= head_dim`, a finite positive
//! theta) into the [`RopeProblem`]; [`check`] rejects what the launch cannot do; [`launch`]
//! plans for the device's SM count and launches through the backend.

use kernelyard_core::ops::rope::{RopeArgs, RopeProblem, RopeStyle};
use kernelyard_core::{Capabilities, DType, Error, Reason, Stream};

use crate::launch::{check_elements, Dims, Launch};
use crate::source::KernelSource;

/// The kernel source and its entry points: `rope_<dtype>_<style>`, one pair per thread, and
/// `rope_<dtype>_<style>_v16`, 16-byte units.
pub static SOURCE: KernelSource = KernelSource {
    file: "rope.cu",
    code: include_str!("../kernels/rope.cu"),
    symbols: &[
        "rope_f32_neox",
        "rope_f16_neox",
        "rope_bf16_neox",
        "rope_f32_gptj",
        "rope_f16_gptj",
        "rope_bf16_gptj",
        "rope_f32_neox_v16",
        "rope_f16_neox_v16",
        "rope_bf16_neox_v16",
        "rope_f32_gptj_v16",
        "rope_f16_gptj_v16",
        "rope_bf16_gptj_v16",
    ],
};

/// Threads per CTA.
pub const THREADS: u32 = 128;

/// Heads a thread loads before it stores any (`KY_ROPE_HEADS` in the kernel); head groups are
/// made multiples of it.
pub const HEADS_IN_FLIGHT: usize = 4;

/// Threads per SM [`plan`] aims for before it splits the heads of a token into more groups
/// (each group recomputes its cos/sin). On an H100, [16384, 32, 128] bf16 NeoX runs best with
/// groups of 8 heads (2.40 TB/s, against 2.36 with 16 and 2.24 with 32).
pub const THREADS_PER_SM: usize = 4096;

/// How a problem is launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RopePlan {
    /// The entry point.
    pub symbol: &'static str,
    /// 16-byte units (the `_v16` entry point).
    pub vec: bool,
    /// Units per (token, head group): rotary units then tail-copy units.
    pub units: usize,
    /// Heads per group (per thread).
    pub heads_per_thread: usize,
    /// Whether the tail `[rotary_dim, head_dim)` is copied (out of place only).
    pub copy_tail: bool,
    /// Threads in all: `tokens * groups * units`.
    pub threads: usize,
}

impl RopePlan {
    /// CTAs of [`THREADS`] threads.
    pub fn blocks(&self) -> usize {
        self.threads.div_ceil(THREADS as usize)
    }
}

/// Index of `dtype` among the symbols of one style, if the kernel handles it.
pub fn dtype_index(dtype: DType) -> Option<usize> {
    match dtype {
        DType::F32 => Some(0),
        DType::F16 => Some(1),
        DType::BF16 => Some(2),
        _ => None,
    }
}

/// The launch plan of `p` on a device with `sms` multiprocessors, or `None` for a dtype the
/// kernel does not handle. Mirrors the unit layout of `rope_impl` in the kernel.
pub fn plan(p: &RopeProblem, sms: u32) -> Option<RopePlan> {
    let d = dtype_index(p.dtype)?;
    let neox = p.style == RopeStyle::Neox;
    let n = 16 / p.dtype.size();
    let half = p.rotary_dim / 2;
    let vec_pairs = if neox { n } else { n / 2 };
    let vec = p.align >= 16 && half.is_multiple_of(vec_pairs);
    let pairs = if vec { vec_pairs } else { 1 };
    let copy_tail = !p.in_place && p.head_dim > p.rotary_dim;
    let copy_units = if copy_tail {
        (p.head_dim - p.rotary_dim).div_ceil(n)
    } else {
        0
    };
    let units = (half / pairs).saturating_add(copy_units);
    // As few head groups as give every SM THREADS_PER_SM threads. Saturating and checked
    // arithmetic: core's problem check keeps sizes far from overflow, but a plan of any
    // problem must not panic (`check` then reports the grid as too large).
    let heads = p.heads.max(1);
    let per_group = p.tokens.saturating_mul(units).max(1);
    let target = (sms as usize).max(1).saturating_mul(THREADS_PER_SM);
    let groups = target.div_ceil(per_group).clamp(1, heads);
    let per_thread = heads.div_ceil(groups);
    let heads_per_thread = per_thread
        .checked_next_multiple_of(HEADS_IN_FLIGHT)
        .unwrap_or(per_thread)
        .min(heads);
    let groups = heads.div_ceil(heads_per_thread);
    let symbol = SOURCE.symbols[d + if neox { 0 } else { 3 } + if vec { 6 } else { 0 }];
    Some(RopePlan {
        symbol,
        vec,
        units,
        heads_per_thread,
        copy_tail,
        threads: per_group.saturating_mul(groups),
    })
}

/// Pushes the reasons the kernels cannot run `p` on a device with `caps.multiprocessors` SMs:
/// positions that are not i32 or i64, more elements than 64-bit indices reach, more
/// frequencies than 32-bit indices reach, or more blocks than a grid holds.
pub fn check(caps: &Capabilities, p: &RopeProblem, reasons: &mut Vec<Reason>) {
    if !DType::INDICES.contains(&p.pos_dtype) {
        reasons.push(Reason::DtypeUnsupported {
            arg: "positions",
            dtype: p.pos_dtype,
            supported: DType::INDICES.to_vec(),
        });
    }
    check_elements("x", &[p.tokens, p.heads, p.head_dim], reasons);
    if p.rotary_dim / 2 > i32::MAX as usize {
        reasons.push(Reason::ShapeUnsupported {
            what: format!("rotary_dim {} (frequency indices are 32-bit)", p.rotary_dim),
        });
    }
    if let Some(plan) = plan(p, caps.multiprocessors) {
        if plan.blocks() > i32::MAX as usize {
            reasons.push(Reason::ShapeUnsupported {
                what: format!(
                    "{} CTAs of {THREADS} threads (at most 2^31 - 1)",
                    plan.blocks()
                ),
            });
        }
    }
}

/// Launches `p` on `stream` through `gpu`, planned for `caps.multiprocessors` SMs; `r =
/// theta^(-2 / rotary_dim)` is computed here in f64. Core validated `a` into `p`, and [`check`]
/// accepted it for the same `caps`.
pub fn launch(
    gpu: &dyn Launch,
    stream: &Stream,
    caps: &Capabilities,
    a: &mut RopeArgs<'_>,
    p: &RopeProblem,
) -> Result<(), Error> {
    let plan = plan(p, caps.multiprocessors).ok_or_else(|| Error::NoEntryPoint {
        file: SOURCE.file,
        what: format!("{} input", p.dtype),
    })?;
    // In place (`RopeInput::InPlace`) both addresses are the one view's; the kernel reads each
    // element before it writes it, from the same thread.
    let (x, out) = a.input.ptrs();
    let positions = a.positions.as_ptr();
    let pos_size = p.pos_dtype.size() as i64;
    let tokens = p.tokens as i64;
    let heads = p.heads as i64;
    let head_dim = p.head_dim as i64;
    let rotary_dim = p.rotary_dim as i64;
    let heads_per_thread = plan.heads_per_thread as i64;
    let copy_tail = i64::from(plan.copy_tail);
    let r = f64::from(a.theta).powf(-2.0 / p.rotary_dim as f64);
    let dims = Dims {
        grid: (plan.blocks() as u32, 1, 1),
        block: (THREADS, 1, 1),
        shared_bytes: 0,
    };
    // SAFETY: the parameters match `rope_<dtype>_<style>[_v16](const void*, void*,
    // const void*, long long, long long, long long, long long, long long, long long,
    // long long, double)`; core validated the views (`[tokens, heads, head_dim]` contiguous,
    // `[tokens]` positions of `pos_size` bytes, one device, in place one view or `out`
    // disjoint from `x`);
    // the `_v16` entry point is chosen only when the problem is 16-byte aligned and the units
    // fill whole chunks; the grid fits (checked by `check`).
    unsafe {
        gpu.launch(
            stream,
            &SOURCE,
            plan.symbol,
            dims,
            &mut crate::params![
                x,
                out,
                positions,
                pos_size,
                tokens,
                heads,
                head_dim,
                rotary_dim,
                heads_per_thread,
                copy_tail,
                r
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::c_void;

    use crate::launch::tests::Recorder;
    use kernelyard_core::{TensorView, TensorViewMut};

    #[test]
    fn checks_follow_the_device_and_the_positions() {
        let caps = Capabilities {
            multiprocessors: 132,
            ..Capabilities::host()
        };
        let mut reasons = Vec::new();
        check(
            &caps,
            &problem(16384, 32, 128, 128, RopeStyle::Neox),
            &mut reasons,
        );
        assert!(reasons.is_empty(), "{reasons:?}");
        let p = RopeProblem {
            pos_dtype: DType::F32,
            ..problem(4, 2, 64, 64, RopeStyle::Gptj)
        };
        check(&caps, &p, &mut reasons);
        assert!(matches!(
            reasons.as_slice(),
            [Reason::DtypeUnsupported {
                arg: "positions",
                ..
            }]
        ));
        // 2^31 tokens of 256 units (4096 features): 2^32 CTAs, too many for a grid.
        let mut reasons = Vec::new();
        let huge = problem(1 << 31, 1, 4096, 4096, RopeStyle::Neox);
        check(&caps, &huge, &mut reasons);
        assert!(matches!(
            reasons.as_slice(),
            [Reason::ShapeUnsupported { .. }]
        ));
    }

    #[test]
    fn the_launch_follows_the_plan_for_the_devices_sms() {
        let (t, h, d) = (64, 8, 64);
        let x = vec![1.0f32; t * h * d];
        let pos: Vec<i64> = (0..t as i64).collect();
        let mut y = vec![0.0f32; t * h * d];
        let mut a = RopeArgs::new(
            TensorView::from_slice(&x, &[t, h, d]).unwrap(),
            TensorView::from_slice(&pos, &[t]).unwrap(),
            TensorViewMut::from_slice(&mut y, &[t, h, d]).unwrap(),
        );
        let (p, _) = a.validate().unwrap();
        let gpu = Recorder::default();
        for sms in [1, 132] {
            let caps = Capabilities {
                multiprocessors: sms,
                ..Capabilities::host()
            };
            launch(&gpu, &Stream::host(), &caps, &mut a, &p).unwrap();
            let plan = plan(&p, sms).unwrap();
            let calls = gpu.0.take();
            assert_eq!(calls.len(), 1);
            let c = &calls[0];
            assert_eq!((c.file, c.symbol, c.params), ("rope.cu", plan.symbol, 11));
            assert_eq!(c.dims.grid, (plan.blocks() as u32, 1, 1));
            assert_eq!(c.dims.block, (THREADS, 1, 1));
            assert_eq!(c.first, x.as_ptr().cast());
        }
        let p = RopeProblem {
            dtype: DType::I32,
            ..p
        };
        let err = launch(&gpu, &Stream::host(), &Capabilities::host(), &mut a, &p).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NoEntryPoint {
                    file: "rope.cu",
                    ..
                }
            ),
            "{err}"
        );
        assert!(gpu.0.take().is_empty());
    }

    /// Records rope's `x` and `out` parameters (its first two, both pointers).
    #[derive(Default)]
    struct IoRecorder(std::cell::RefCell<Vec<(*const c_void, *const c_void)>>);

    impl Launch for IoRecorder {
        unsafe fn launch(
            &self,
            _stream: &Stream,
            source: &'static KernelSource,
            _symbol: &'static str,
            _dims: Dims,
            params: &mut [*mut c_void],
        ) -> Result<(), Error> {
            assert_eq!(source.file, "rope.cu");
            // SAFETY: the caller's contract: the parameters match rope's entry points, whose
            // first two are pointers.
            let io = unsafe {
                (
                    *(params[0] as *const *const c_void),
                    *(params[1] as *const *const c_void),
                )
            };
            self.0.borrow_mut().push(io);
            Ok(())
        }
    }

    #[test]
    fn in_place_passes_the_one_view_as_x_and_out() {
        let (t, h, d) = (4, 2, 32);
        let mut buf = vec![1.0f32; t * h * d];
        let pos: Vec<i32> = (0..t as i32).collect();
        let base = buf.as_ptr().cast::<c_void>();
        let mut a = RopeArgs::in_place(
            TensorViewMut::from_slice(&mut buf, &[t, h, d]).unwrap(),
            TensorView::from_slice(&pos, &[t]).unwrap(),
        );
        let (p, _) = a.validate().unwrap();
        assert!(p.in_place);
        let gpu = IoRecorder::default();
        launch(&gpu, &Stream::host(), &Capabilities::host(), &mut a, &p).unwrap();
        assert_eq!(gpu.0.take(), vec![(base, base)]);
        // Out of place, the two addresses are the two views'.
        let x = vec![1.0f32; t * h * d];
        let mut y = vec![0.0f32; t * h * d];
        let mut a = RopeArgs::new(
            TensorView::from_slice(&x, &[t, h, d]).unwrap(),
            TensorView::from_slice(&pos, &[t]).unwrap(),
            TensorViewMut::from_slice(&mut y, &[t, h, d]).unwrap(),
        );
        let (p, _) = a.validate().unwrap();
        assert!(!p.in_place);
        launch(&gpu, &Stream::host(), &Capabilities::host(), &mut a, &p).unwrap();
        let want = (x.as_ptr().cast(), y.as_ptr().cast());
        assert_eq!(gpu.0.take(), vec![want]);
    }

    fn problem(t: usize, h: usize, d: usize, r: usize, style: RopeStyle) -> RopeProblem {
        RopeProblem {
            tokens: t,
            heads: h,
            head_dim: d,
            rotary_dim: r,
            style,
            dtype: DType::BF16,
            pos_dtype: DType::I64,
            in_place: false,
            align: 16,
        }
    }

    #[test]
    fn large_problems_share_cos_sin_across_many_heads() {
        // [16384, 32, 128] bf16 NeoX on 132 SMs: 8 units of 8 pairs, 4 groups of 8 heads.
        let p = plan(&problem(16384, 32, 128, 128, RopeStyle::Neox), 132).unwrap();
        assert_eq!(p.symbol, "rope_bf16_neox_v16");
        assert!(p.vec && !p.copy_tail);
        assert_eq!((p.units, p.heads_per_thread), (8, 8));
        assert_eq!(p.threads, 16384 * 4 * 8);
        // GPT-J: 16 units of 4 pairs, 3 groups (12, 12 and 8 heads).
        let p = plan(&problem(16384, 32, 128, 128, RopeStyle::Gptj), 132).unwrap();
        assert_eq!(p.symbol, "rope_bf16_gptj_v16");
        assert_eq!((p.units, p.heads_per_thread), (16, 12));
        assert_eq!(p.threads, 16384 * 3 * 16);
    }

    #[test]
    fn small_problems_split_the_heads() {
        let p = plan(&problem(4, 32, 128, 128, RopeStyle::Neox), 132).unwrap();
        assert_eq!(p.heads_per_thread, HEADS_IN_FLIGHT);
        assert_eq!(p.threads, 4 * (32 / HEADS_IN_FLIGHT) * 8);
        // Fewer heads than one batch of loads: one group.
        let p = plan(&problem(1, 3, 64, 64, RopeStyle::Neox), 132).unwrap();
        assert_eq!(p.heads_per_thread, 3);
    }

    #[test]
    fn partial_rotary_copies_the_tail_out_of_place_only() {
        let mut q = problem(9, 4, 128, 32, RopeStyle::Neox);
        let p = plan(&q, 1).unwrap();
        // 16 pairs = 2 units of 8, then 96 tail features = 12 copy units.
        assert_eq!((p.units, p.copy_tail), (2 + 12, true));
        q.in_place = true;
        let p = plan(&q, 1).unwrap();
        assert_eq!((p.units, p.copy_tail), (2, false));
    }

    #[test]
    fn unaligned_or_odd_pairs_take_one_pair_per_thread() {
        let mut q = problem(7, 3, 34, 18, RopeStyle::Neox);
        let p = plan(&q, 1).unwrap();
        assert_eq!(p.symbol, "rope_bf16_neox");
        // 9 pairs, then 16 tail features = 2 copy units of 8.
        assert_eq!(p.units, 9 + 2);
        q = problem(5, 2, 64, 64, RopeStyle::Gptj);
        q.align = 8;
        q.dtype = DType::F32;
        assert_eq!(plan(&q, 1).unwrap().symbol, "rope_f32_gptj");
        q.align = 16;
        let p = plan(&q, 1).unwrap();
        assert_eq!(p.symbol, "rope_f32_gptj_v16");
        assert_eq!(p.units, 64 / 4);
        // GPT-J with head_dim 2 in bf16: one pair cannot fill 16 bytes.
        let q = problem(3, 5, 2, 2, RopeStyle::Gptj);
        assert_eq!(plan(&q, 1).unwrap().symbol, "rope_bf16_gptj");
        assert_eq!(
            plan(
                &RopeProblem {
                    dtype: DType::I32,
                    ..q
                },
                1
            ),
            None
        );
    }

    #[test]
    fn plans_of_any_sizes_neither_overflow_nor_divide_by_zero() {
        // Issue 13: heads = 2^64 - 1 wrapped `next_multiple_of` to 0 (then divided by it).
        let huge = RopeProblem {
            dtype: DType::F32,
            align: 4,
            ..problem(65535, usize::MAX, 256, 256, RopeStyle::Neox)
        };
        let p = plan(&huge, 132).unwrap();
        assert!(p.heads_per_thread >= 1 && p.threads >= 1);
        let caps = Capabilities {
            multiprocessors: 132,
            ..Capabilities::host()
        };
        let mut reasons = Vec::new();
        check(&caps, &huge, &mut reasons);
        assert!(
            matches!(reasons.as_slice(), [Reason::ShapeUnsupported { .. }]),
            "{reasons:?}"
        );
        let edges = [0, 1, 3, 1 << 32, usize::MAX - 1, usize::MAX];
        for t in edges {
            for h in edges {
                for (d, r) in [(0, 0), (2, 2), (usize::MAX, usize::MAX - 1), (8, 10)] {
                    let q = problem(t, h, d, r, RopeStyle::Gptj);
                    let _ = plan(&q, u32::MAX);
                    check(&caps, &q, &mut reasons);
                }
            }
        }
    }

    #[test]
    fn every_symbol_is_an_entry_of_the_source() {
        for s in SOURCE.symbols {
            assert!(
                SOURCE.code.contains(&format!("KY_ROPE_ENTRY({s},")),
                "{s} is not defined in {}",
                SOURCE.file
            );
        }
        assert!(SOURCE
            .code
            .contains(&format!("#define KY_ROPE_HEADS {HEADS_IN_FLIGHT}\n")));
    }
}
