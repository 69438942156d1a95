//! [`RowPlan`]: the launch plan of the row-wise kernels (`softmax`, `log_softmax`,
//! `rms_norm`; their entry points are built from `crates/kernels/kernels/rows.cuh`), and the
//! entry-point lookup they share ([`symbol`]).
//!
//! # Who does what
//! The plan reads the row length, the element size, the alignment and, for the kernels with a
//! shared-memory path, the device's opt-in shared memory per block; it names the entry point's
//! variant and the launch shape. The op modules check the problem ([`check_rows`]), look the
//! entry point up in the source ([`symbol`]) and launch through the backend's [`Launch`]
//! (softmax and log-softmax through one sequence, which passes `(x, y, rows, cols, tpr)`).
//!
//! # Launch configuration
//! Chosen by [`RowPlan::new`] from `cols` and the element size (never from `rows`), so a row's
//! reduction order, and its bits, do not depend on the batch it rides in; nor on the pointers'
//! alignment, which only switches between 16-byte and scalar accesses of the same elements in
//! the same order; nor on the device, whose shared memory only decides where the second pass of
//! a long row reads from. With `V = 16 / element size` elements per 16-byte chunk and
//! `nv = ceil(cols / V)` chunks per row:
//!
//! | cols (any dtype) | path | threads per row (`tpr`) | block | per thread |
//! |---|---|---|---|---|
//! | `<= 1024` | register, several rows per block | `next_pow2(ceil(nv / C))`, at most 32 | 128 | `C` chunks: least of 1, 2, 4 (8 for f32) with `nv <= 32 C` |
//! | `1025 ..= 16384` | register, one row per block | = block | `ceil(nv / C)` rounded up to 32, at most 512 | least `C` with `ceil(nv / C) <= 256`, else 4 (8 for f32) |
//! | `> 16384`, row fits in shared memory | two passes, row kept in shared memory | = block | 512 | 4 chunks in flight per step |
//! | longer | two passes, second read from L2 | = block | 512 | 4 chunks in flight per step |
//!
//! Why (measured on an H100 with a CuPy harness, bf16, against a 3.0 TB/s device copy): a row
//! held in registers (at most 32 f32 values per thread) is read once and written once, with
//! every load of a thread issued before the first use; short rows share a block so blocks stay
//! at 128 threads; 256 threads per row (2 chunks per thread at 4096 columns, 4 at 8192) keep
//! four or more blocks per SM, so one block's reduction overlaps another's loads (2.8 TB/s at
//! 16384 x 4096; 512-thread blocks were 15% slower at 8192 columns; 128 and 256 tie at 4096).
//! Past 16384 columns a whole row in registers would leave one block per SM: the row is read
//! once in steps (an online max and sum), kept in dynamic shared memory (64 KiB for 32768 bf16)
//! and read back from there: 2.8 TB/s at 4096 x 32768, against 1.9 TB/s for re-reading it from
//! L2. Rows too long for shared memory (more than about 116k bf16 on an H100) re-read from L2,
//! last step first.
//!
//! On sm_90 the first thread of each row also asks L2 for the row 4 MiB of rows ahead (one
//! `cp.async.bulk.prefetch.L2`, `KY_ROWS_L2_AHEAD_KB` in `rows.cuh`), so the row a later block
//! takes is in L2 when that block starts: more bytes in flight per SM than the registers hold.
//! Nothing read changes, so no bit does; 0.4-5 % faster on an H100 at the suite's shapes
//! (seventeenth session; 16 MiB or more ahead was slower: the rows left L2 first).

use std::ffi::c_void;

use kernelyard_core::ops::softmax::RowsProblem;
use kernelyard_core::{Capabilities, DType, Error, Reason, Stream};

use crate::launch::{Dims, Launch};
use crate::source::KernelSource;

/// Threads per block when several rows share a block (rows of at most 32 threads each).
pub const ROWS_BLOCK: u32 = 128;
/// Threads per row the register path aims at for rows of more than 32 threads' worth.
pub const TARGET_THREADS: u32 = 256;
/// Most threads per row on the register path (the `C = 4` / `C = 8` entry points' bound).
pub const MAX_REGISTER_THREADS: u32 = 512;
/// Threads per block (= per row) on the two-pass paths (their entry points' bound).
pub const TWO_PASS_THREADS: u32 = 512;
/// Most values (f32 registers) a thread holds on the register path.
pub const MAX_VALUES_PER_THREAD: u32 = 32;
/// Static shared memory of the two-pass entry points (two reductions of 32 floats), bytes.
pub const STATIC_SHARED_BYTES: u64 = 256;
/// Longest row the kernels accept: in-row offsets are 32-bit.
pub const MAX_COLS: usize = 1 << 30;

/// The row kernels' tactics (`cuda.softmax@t128`, ...).
/// - `t128`, `t512`: the threads a row aims at on the one-row-per-block register path (1025 to
///   16384 columns) instead of [`TARGET_THREADS`]: 128 (more chunks per thread, more blocks
///   per SM) or 512 (fewer chunks per thread, more threads per row). Elsewhere their plan is
///   the default's. Their reduction tree differs from the default's, so their bits may too
///   (within the op's tolerance).
/// - `p`, `p128`: the persistent register path ([`RowPlan::persistent`]) with the default's or
///   `t128`'s block: the same rows computed the same way (the same bits as the plan they
///   extend), by a grid of about as many blocks as the SMs keep resident, each with the next
///   row's loads in flight while it reduces the current one. Only 16-byte register plans have
///   the persistent entry points; elsewhere their plan is the one-shot one.
///
/// Each is a fixed function of `cols` and the element size, so it keeps determinism and batch
/// invariance.
pub const TACTICS: &[&str] = &["t128", "t512", "p", "p128"];

/// The threads per row a tactic aims at and whether it asks for the persistent path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tactic {
    /// Target threads per row on the one-row-per-block register path.
    pub target: u32,
    /// The persistent register path (where the plan has it).
    pub persistent: bool,
}

/// The configuration of `tactic` (`None`: the default, [`TARGET_THREADS`], one-shot).
pub fn tactic(source: &KernelSource, tactic: Option<&str>) -> Result<Tactic, Error> {
    let (target, persistent) = match tactic {
        None => (TARGET_THREADS, false),
        Some("t128") => (128, false),
        Some("t512") => (512, false),
        Some("p") => (TARGET_THREADS, true),
        Some("p128") => (128, true),
        Some(other) => {
            return Err(Error::NoEntryPoint {
                file: source.file,
                what: format!(
                    "tactic `{other}` (the row kernels have {})",
                    TACTICS.join(", ")
                ),
            })
        }
    };
    Ok(Tactic { target, persistent })
}

/// The plan of `tactic` for rows of `cols` elements (see [`RowPlan::with_target`] and
/// [`RowPlan::persistent`]).
pub fn tactic_plan(
    t: Tactic,
    cols: usize,
    elem_bytes: usize,
    align: usize,
    shared_limit: Option<u64>,
) -> RowPlan {
    let plan = RowPlan::with_target(cols, elem_bytes, align, shared_limit, t.target);
    if t.persistent {
        plan.persistent()
    } else {
        plan
    }
}

/// Threads per SM the persistent entry points are bounded to keep resident (`KY_P_TPSM` in
/// `rows.cuh`): 1024 (64 registers) for at most 2 chunks per thread and one input, else 512.
pub fn persistent_threads_per_sm(chunks: u32, second_input: bool) -> u32 {
    if chunks <= 2 && !second_input {
        1024
    } else {
        512
    }
}

/// Which kernel family runs a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowPath {
    /// The row is held in registers: `chunks` 16-byte chunks per thread.
    Register {
        /// Chunks of `16 / element size` elements per thread (1, 2, 4, or 8 for f32).
        chunks: u32,
    },
    /// Two passes, the row kept in `bytes` of dynamic shared memory between them.
    Shared {
        /// Dynamic shared memory per block, bytes (the row, rounded up to 16).
        bytes: u32,
    },
    /// Two passes, the second reading the row again from global memory (L2).
    Long,
}

/// The launch plan of a row-wise kernel: which entry point, block shape and grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowPlan {
    /// The kernel family.
    pub path: RowPath,
    /// 16-byte accesses (`v` entry points) rather than scalar ones (`s`).
    pub vector: bool,
    /// Threads per block.
    pub block: u32,
    /// Threads per row: a power of two up to 32 (several rows per block), or `block`.
    pub tpr: u32,
    /// The persistent entry point (`pv<C>`): only on the 16-byte register path.
    pub persistent: bool,
}

impl RowPlan {
    /// The plan for rows of `cols` elements of `elem_bytes` bytes whose pointers and row
    /// strides are `align`-byte aligned. `shared_limit` is the device's opt-in shared memory
    /// per block for a kernel that has the shared-memory path, `None` for one that has not.
    /// The block shape and reduction order depend on `cols` and `elem_bytes` alone (see the
    /// module docs for the table).
    pub fn new(cols: usize, elem_bytes: usize, align: usize, shared_limit: Option<u64>) -> RowPlan {
        RowPlan::with_target(cols, elem_bytes, align, shared_limit, TARGET_THREADS)
    }

    /// [`RowPlan::new`] aiming at `target` threads per row (at most [`MAX_REGISTER_THREADS`])
    /// on the one-row-per-block register path: a tactic's plan ([`TACTICS`]).
    pub fn with_target(
        cols: usize,
        elem_bytes: usize,
        align: usize,
        shared_limit: Option<u64>,
        target: u32,
    ) -> RowPlan {
        let target = target.clamp(32, MAX_REGISTER_THREADS) as usize;
        let per_chunk = (16 / elem_bytes.clamp(1, 16)).max(1);
        let vector = align >= 16 && cols.is_multiple_of(per_chunk);
        let nv = cols.div_ceil(per_chunk).max(1);
        let max_chunks = (MAX_VALUES_PER_THREAD as usize / per_chunk).max(1);
        let options = || {
            [1usize, 2, 4, 8]
                .into_iter()
                .filter(move |&c| c <= max_chunks)
        };
        if nv > MAX_REGISTER_THREADS as usize * max_chunks {
            // The row's bytes rounded up to 16, if they can be counted at all (checked: a row
            // too long for that is also too long for shared memory, and `check` rejects it).
            let bytes = (cols as u64)
                .checked_mul(elem_bytes as u64)
                .and_then(|b| b.checked_next_multiple_of(16))
                .and_then(|b| u32::try_from(b).ok());
            let shared = bytes.filter(|&b| {
                shared_limit.is_some_and(|limit| u64::from(b) + STATIC_SHARED_BYTES <= limit)
            });
            return RowPlan {
                path: match shared {
                    Some(bytes) => RowPath::Shared { bytes },
                    None => RowPath::Long,
                },
                vector,
                block: TWO_PASS_THREADS,
                tpr: TWO_PASS_THREADS,
                persistent: false,
            };
        }
        if nv <= 32 * max_chunks {
            let chunks = options().find(|&c| nv <= 32 * c).unwrap_or(max_chunks);
            let tpr = nv.div_ceil(chunks).next_power_of_two() as u32;
            return RowPlan {
                path: RowPath::Register {
                    chunks: chunks as u32,
                },
                vector,
                block: ROWS_BLOCK,
                tpr,
                persistent: false,
            };
        }
        let chunks = options()
            .find(|&c| nv.div_ceil(c) <= target)
            .unwrap_or(max_chunks);
        let block = (nv.div_ceil(chunks).div_ceil(32) * 32) as u32;
        RowPlan {
            path: RowPath::Register {
                chunks: chunks as u32,
            },
            vector,
            block,
            tpr: block,
            persistent: false,
        }
    }

    /// This plan on the persistent register path where it has one (16-byte register plans),
    /// else unchanged: the same block, rows and bits, a grid capped by [`RowPlan::launch_dims`].
    pub fn persistent(self) -> RowPlan {
        RowPlan {
            persistent: self.vector && matches!(self.path, RowPath::Register { .. }),
            ..self
        }
    }

    /// Rows handled by one block.
    pub fn rows_per_block(&self) -> u32 {
        self.block / self.tpr
    }

    /// Blocks for `rows` rows (may exceed the grid limit: see [`RowPlan::check`]).
    pub fn grid(&self, rows: usize) -> usize {
        rows.div_ceil(self.rows_per_block() as usize)
    }

    /// The launch shape for `rows` rows.
    pub fn dims(&self, rows: usize) -> Dims {
        let shared_bytes = match self.path {
            RowPath::Shared { bytes } => bytes,
            _ => 0,
        };
        Dims {
            grid: (self.grid(rows).min(i32::MAX as usize) as u32, 1, 1),
            block: (self.block, 1, 1),
            shared_bytes,
        }
    }

    /// The launch shape for `rows` rows on a device of `multiprocessors` SMs: [`RowPlan::dims`],
    /// with a persistent plan's grid capped at the blocks the SMs keep resident
    /// ([`persistent_threads_per_sm`]; `second_input`: rms_norm's fused residual).
    pub fn launch_dims(&self, rows: usize, multiprocessors: u32, second_input: bool) -> Dims {
        let mut dims = self.dims(rows);
        if let (true, RowPath::Register { chunks }) = (self.persistent, self.path) {
            let per_sm = (persistent_threads_per_sm(chunks, second_input) / self.block).max(1);
            let resident = u64::from(multiprocessors.max(1)) * u64::from(per_sm);
            dims.grid.0 = u64::from(dims.grid.0).min(resident) as u32;
        }
        dims
    }

    /// The entry point's suffix: `v1` .. `v8`, `s1` .. `s8`, `pv1` .. `pv8`, `smem_v`,
    /// `smem_s`, `long_v`, `long_s`.
    pub fn variant(&self) -> &'static str {
        if self.persistent {
            return match self.path {
                RowPath::Register { chunks: 1 } => "pv1",
                RowPath::Register { chunks: 2 } => "pv2",
                RowPath::Register { chunks: 4 } => "pv4",
                _ => "pv8",
            };
        }
        match (self.path, self.vector) {
            (RowPath::Shared { .. }, true) => "smem_v",
            (RowPath::Shared { .. }, false) => "smem_s",
            (RowPath::Long, true) => "long_v",
            (RowPath::Long, false) => "long_s",
            (RowPath::Register { chunks: 1 }, true) => "v1",
            (RowPath::Register { chunks: 2 }, true) => "v2",
            (RowPath::Register { chunks: 4 }, true) => "v4",
            (RowPath::Register { .. }, true) => "v8",
            (RowPath::Register { chunks: 1 }, false) => "s1",
            (RowPath::Register { chunks: 2 }, false) => "s2",
            (RowPath::Register { chunks: 4 }, false) => "s4",
            (RowPath::Register { .. }, false) => "s8",
        }
    }

    /// Pushes a reason for a shape the kernels cannot run: a row longer than [`MAX_COLS`],
    /// or more blocks than a grid holds.
    pub fn check(&self, rows: usize, cols: usize, reasons: &mut Vec<Reason>) {
        if cols > MAX_COLS {
            reasons.push(Reason::ShapeUnsupported {
                what: format!(
                    "rows of {cols} elements (at most {MAX_COLS}: 32-bit in-row offsets)"
                ),
            });
        }
        if self.grid(rows) > i32::MAX as usize {
            reasons.push(Reason::ShapeUnsupported {
                what: format!(
                    "{rows} rows need {} blocks of {} rows (at most 2^31 - 1 blocks)",
                    self.grid(rows),
                    self.rows_per_block()
                ),
            });
        }
    }
}

/// The entry point `<op>_<dtype>_<variant><suffix>` listed in `source` (no allocation), or
/// `None` when the source lists none: a plan naming a variant the source lacks for this dtype
/// is a bug (the unit tests check every plan), which the backend reports with the variant's
/// name.
pub fn symbol(
    source: &'static KernelSource,
    op: &str,
    dtype: DType,
    variant: &str,
    suffix: &str,
) -> Option<&'static str> {
    source.symbols.iter().copied().find(|s| {
        s.strip_prefix(op)
            .and_then(|r| r.strip_prefix('_'))
            .and_then(|r| r.strip_prefix(dtype.name()))
            .and_then(|r| r.strip_prefix('_'))
            .and_then(|r| r.strip_suffix(suffix))
            == Some(variant)
    })
}

/// Pushes the reasons a `(rows, cols)` row problem is beyond the row-wise kernels.
pub fn check_rows(rows: usize, cols: usize, elem_bytes: usize, reasons: &mut Vec<Reason>) {
    // The block shape does not depend on the device's shared memory.
    RowPlan::new(cols, elem_bytes, 1, None).check(rows, cols, reasons);
}

/// [`symbol`], or [`Error::NoEntryPoint`] naming the variant a plan asked for and the source
/// does not list (a bug: the unit tests check every plan).
pub(crate) fn entry_point(
    source: &'static KernelSource,
    op: &str,
    dtype: DType,
    variant: &'static str,
    suffix: &str,
) -> Result<&'static str, Error> {
    symbol(source, op, dtype, variant, suffix).ok_or_else(|| Error::NoEntryPoint {
        file: source.file,
        what: format!("variant `{variant}{suffix}` of {dtype}"),
    })
}

/// Launches a `(const void* x, void* y, long long rows, long long cols, long long tpr)`
/// row-wise entry point of `source`, `<op>_<dtype>_<variant>`, on the input and output
/// `(x, y)` of `p` (softmax and log-softmax share the signature, the plan and the
/// shared-memory path, up to `caps`' opt-in limit).
pub(crate) fn launch_rows(
    gpu: &dyn Launch,
    stream: &Stream,
    caps: &Capabilities,
    (source, op, tactic): (&'static KernelSource, &str, Option<&str>),
    p: &RowsProblem,
    (x, y): (*const c_void, *mut c_void),
) -> Result<(), Error> {
    let optin = caps.shared_mem_per_block_optin;
    let t = self::tactic(source, tactic)?;
    let plan = tactic_plan(t, p.cols, p.dtype.size(), p.align, Some(optin));
    let symbol = entry_point(source, op, p.dtype, plan.variant(), "")?;
    let (rows, cols, tpr) = (p.rows as i64, p.cols as i64, i64::from(plan.tpr));
    // SAFETY: the parameters match `<op>_<dtype>_<variant>(const void* x, void* y, long long
    // rows, long long cols, long long tpr)`; core validated the views (device, bounds,
    // contiguous [rows, cols] of `p.dtype`, no overlap); the plan's block, tpr and dynamic
    // shared memory are the ones the entry point expects (unit tests check the bounds; the
    // shared memory fits the device's opt-in limit, which the backend's `launch` raises the
    // function to).
    unsafe {
        gpu.launch(
            stream,
            source,
            symbol,
            plan.launch_dims(p.rows, caps.multiprocessors, false),
            &mut crate::params![x, y, rows, cols, tpr],
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// H100's opt-in shared memory per block.
    pub(crate) const H100: Option<u64> = Some(227 * 1024);

    /// Row lengths that cover every path and boundary.
    pub(crate) fn cols_to_try() -> impl Iterator<Item = usize> {
        (1usize..=40_000)
            .filter(|&c| {
                c <= 2100 || c % 97 == 0 || c.is_power_of_two() || (c - 1).is_power_of_two()
            })
            .chain([65_536, 65_543, 116_000, 262_144, 262_147, MAX_COLS])
    }

    fn plan(cols: usize, elem_bytes: usize) -> RowPlan {
        RowPlan::new(cols, elem_bytes, 16, H100)
    }

    #[test]
    fn plans_of_any_row_length_are_computed_without_overflow() {
        // Issue 13: `cols * elem_bytes` overflowed for the shared-memory path's size.
        for cols in [MAX_COLS + 1, 1 << 62, usize::MAX - 1, usize::MAX] {
            for elem in [1, 2, 4, 8, 16] {
                let p = RowPlan::new(cols, elem, 16, H100);
                assert_eq!(p.path, RowPath::Long, "{cols} x {elem}");
                let mut reasons = Vec::new();
                p.check(usize::MAX, cols, &mut reasons);
                check_rows(usize::MAX, cols, elem, &mut reasons);
                assert_eq!(reasons.len(), 4, "{reasons:?}");
            }
        }
    }

    #[test]
    fn target_shapes() {
        // bf16 rows of 4096: 512 chunks, 2 per thread, 256 threads.
        let p = plan(4096, 2);
        let want = RowPlan {
            path: RowPath::Register { chunks: 2 },
            vector: true,
            block: 256,
            tpr: 256,
            persistent: false,
        };
        assert_eq!(p, want);
        assert_eq!(p.variant(), "v2");
        assert_eq!(p.dims(16384).grid, (16384, 1, 1));
        // bf16 rows of 8192: 4 chunks (32 values) per thread, 256 threads.
        let p = plan(8192, 2);
        assert_eq!((p.path, p.block), (RowPath::Register { chunks: 4 }, 256));
        // bf16 rows of 16384: 512 threads x 32 values.
        let p = plan(16384, 2);
        assert_eq!((p.path, p.block), (RowPath::Register { chunks: 4 }, 512));
        // bf16 rows of 32768: two passes through 64 KiB of shared memory.
        let p = plan(32768, 2);
        assert_eq!(p.path, RowPath::Shared { bytes: 65536 });
        assert_eq!((p.block, p.tpr, p.variant()), (512, 512, "smem_v"));
        assert_eq!(p.dims(4096).shared_bytes, 65536);
        // f32 rows of 16384 still fit in registers: 512 threads x 8 chunks of 4.
        assert_eq!(plan(16384, 4).path, RowPath::Register { chunks: 8 });
        assert_eq!(plan(16385, 4).path, RowPath::Shared { bytes: 65552 });
        // Short rows share a block: 64 bf16 = 8 chunks, 8 threads per row, 16 rows per block.
        let p = plan(64, 2);
        assert_eq!((p.tpr, p.block, p.rows_per_block()), (8, 128, 16));
        assert_eq!(p.grid(257), 17);
        assert_eq!(p.dims(257).shared_bytes, 0);
        // One element: one thread per row, scalar accesses.
        let p = plan(1, 2);
        assert_eq!((p.tpr, p.rows_per_block(), p.vector), (1, 128, false));
    }

    #[test]
    fn rows_beyond_shared_memory_read_twice() {
        // 227 KiB hold 116k bf16 (minus the static 256 bytes), not 128k.
        assert!(matches!(plan(116_000, 2).path, RowPath::Shared { .. }));
        assert_eq!(plan(131_072, 2).path, RowPath::Long);
        assert_eq!(plan(65_536, 4).path, RowPath::Long);
        // Without the shared-memory path (rms_norm), or on a device with little of it.
        assert_eq!(RowPlan::new(32768, 2, 16, None).path, RowPath::Long);
        assert_eq!(
            RowPlan::new(32768, 2, 16, Some(48 * 1024)).path,
            RowPath::Long
        );
        assert_eq!(RowPlan::new(32768, 2, 16, None).variant(), "long_v");
        assert_eq!(RowPlan::new(32769, 2, 16, None).variant(), "long_s");
    }

    #[test]
    fn vector_only_when_aligned_and_whole_chunks() {
        assert!(plan(4096, 2).vector);
        assert!(!RowPlan::new(4096, 2, 8, H100).vector);
        assert!(!plan(4097, 2).vector);
        assert!(plan(12, 4).vector);
        assert!(!plan(12, 2).vector);
    }

    #[test]
    fn every_row_length_is_covered_within_the_entry_points_bounds() {
        for (size, target) in [4, 2].into_iter().flat_map(|s| {
            [None, Some("t128"), Some("t512"), Some("p"), Some("p128")]
                .map(|t| (s, tactic(&crate::softmax::SOURCE, t).unwrap()))
        }) {
            let v = 16 / size;
            for cols in cols_to_try() {
                let p = tactic_plan(target, cols, size, 16, H100);
                assert_eq!(
                    p.persistent,
                    target.persistent && p.vector && matches!(p.path, RowPath::Register { .. }),
                    "{cols}: {p:?}"
                );
                assert!(
                    p.block.is_multiple_of(32) && p.block <= 1024,
                    "{cols}: {p:?}"
                );
                assert_eq!(p.block % p.tpr, 0, "{cols}: {p:?}");
                assert!(
                    p.tpr == p.block || (p.tpr <= 32 && p.tpr.is_power_of_two()),
                    "{p:?}"
                );
                match p.path {
                    RowPath::Register { chunks } => {
                        assert!(chunks * v as u32 <= MAX_VALUES_PER_THREAD, "{cols}: {p:?}");
                        let bound = if chunks >= 4 { 512 } else { 1024 };
                        assert!(p.block <= bound, "{cols}: {p:?}");
                        // Every element has a thread.
                        assert!(
                            p.tpr as usize * chunks as usize * v >= cols,
                            "{cols}: {p:?}"
                        );
                    }
                    RowPath::Shared { bytes } => {
                        assert_eq!(p.tpr, p.block);
                        assert!(p.block <= 512);
                        assert!(bytes as usize >= cols * size && bytes % 16 == 0, "{cols}");
                        assert!(u64::from(bytes) + STATIC_SHARED_BYTES <= H100.unwrap());
                    }
                    RowPath::Long => {
                        assert_eq!(p.tpr, p.block);
                        assert!(p.block <= 512);
                    }
                }
                if !matches!(p.path, RowPath::Register { .. }) {
                    assert!(cols > MAX_REGISTER_THREADS as usize * 32, "{cols}");
                }
            }
        }
    }

    #[test]
    fn tactics_change_the_middle_path_only() {
        let t = |name| tactic(&crate::softmax::SOURCE, name).unwrap().target;
        assert_eq!(t(None), TARGET_THREADS);
        // rms_norm at 4096 bf16 (512 chunks): 256 threads by default, 128 or 512 by tactic.
        let shape = |target| {
            let p = RowPlan::with_target(4096, 2, 16, H100, target);
            (p.block, p.variant())
        };
        assert_eq!(shape(t(None)), (256, "v2"));
        assert_eq!(shape(t(Some("t128"))), (128, "v4"));
        assert_eq!(shape(t(Some("t512"))), (512, "v1"));
        // Short rows (several per block) and two-pass rows: the default's plan.
        for cols in [1, 100, 1024, 20_000, 200_000] {
            for name in ["t128", "t512"] {
                let with = RowPlan::with_target(cols, 2, 16, H100, t(Some(name)));
                assert_eq!(with, RowPlan::new(cols, 2, 16, H100), "{cols} {name}");
            }
        }
        match tactic(&crate::softmax::SOURCE, Some("t64")) {
            Err(Error::NoEntryPoint { file, what }) => {
                assert_eq!(file, "softmax.cu");
                assert!(
                    what.contains("t64") && what.contains("t128, t512, p, p128"),
                    "{what}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn persistent_plans_keep_the_block_and_cap_the_grid() {
        let p = |name, cols, size, align| {
            let t = tactic(&crate::softmax::SOURCE, Some(name)).unwrap();
            tactic_plan(t, cols, size, align, H100)
        };
        // bf16 rows of 4096: the default's block (256 threads, 2 chunks), `pv2`; 132 SMs keep
        // 1024 / 256 = 4 blocks each resident.
        let plan = p("p", 4096, 2, 16);
        assert_eq!((plan.block, plan.tpr, plan.variant()), (256, 256, "pv2"));
        assert_eq!(plan.launch_dims(16384, 132, false).grid, (528, 1, 1));
        assert_eq!(plan.dims(16384).grid, (16384, 1, 1));
        // Fewer rows than resident blocks: one block per row, as one-shot.
        assert_eq!(plan.launch_dims(100, 132, false).grid, (100, 1, 1));
        // With the second input (rms_norm's residual), 512 threads per SM: 2 blocks.
        assert_eq!(plan.launch_dims(16384, 132, true).grid, (264, 1, 1));
        // `p128`: t128's block, 4 chunks, 512 threads per SM.
        let plan = p("p128", 4096, 2, 16);
        assert_eq!((plan.block, plan.variant()), (128, "pv4"));
        assert_eq!(plan.launch_dims(16384, 132, false).grid, (528, 1, 1));
        // Short rows share a block: sets of 16 rows.
        let plan = p("p", 64, 2, 16);
        assert_eq!((plan.rows_per_block(), plan.variant()), (16, "pv1"));
        assert_eq!(plan.launch_dims(100_000, 132, false).grid, (1056, 1, 1));
        // Scalar and two-pass plans have no persistent entry points: one-shot.
        assert_eq!(
            p("p", 4096, 2, 8),
            RowPlan::with_target(4096, 2, 8, H100, 256)
        );
        assert_eq!(p("p", 32768, 2, 16), RowPlan::new(32768, 2, 16, H100));
        // Every persistent variant is listed for every dtype (f32 up to pv8).
        for (source, op) in [
            (&crate::softmax::SOURCE, "softmax"),
            (&crate::log_softmax::SOURCE, "log_softmax"),
            (&crate::rms_norm::SOURCE, "rms_norm"),
        ] {
            for dtype in [DType::F32, DType::F16, DType::BF16] {
                for name in ["p", "p128"] {
                    for cols in cols_to_try().filter(|c| *c <= 16384) {
                        let plan = p(name, cols, dtype.size(), 16);
                        assert!(
                            entry_point(source, op, dtype, plan.variant(), "").is_ok(),
                            "{op} {dtype} {cols} {plan:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn block_shape_depends_on_the_row_length_alone() {
        // The alignment only switches between the `v` and `s` twins of one mapping, and the
        // shared memory only between the two second passes of one block shape.
        for size in [4, 2] {
            for cols in cols_to_try() {
                let a = plan(cols, size);
                let b = RowPlan::new(cols, size, size, None);
                assert!(!b.vector);
                assert_eq!((a.block, a.tpr), (b.block, b.tpr), "{cols}");
                match (a.path, b.path) {
                    (RowPath::Register { chunks: c }, RowPath::Register { chunks: d }) => {
                        assert_eq!(c, d)
                    }
                    (RowPath::Shared { .. } | RowPath::Long, RowPath::Long) => {}
                    other => panic!("{cols}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn an_unlisted_variant_is_an_error_naming_it() {
        let source = &crate::softmax::SOURCE;
        assert_eq!(
            entry_point(source, "softmax", DType::F16, "smem_s", "").unwrap(),
            "softmax_f16_smem_s"
        );
        let err = entry_point(source, "softmax", DType::BF16, "v8", "").unwrap_err();
        assert!(
            matches!(
                err,
                Error::NoEntryPoint {
                    file: "softmax.cu",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("`v8`"), "{err}");
    }

    #[test]
    fn shapes_beyond_the_kernels_are_reasons() {
        let mut reasons = Vec::new();
        check_rows(1, MAX_COLS + 1, 2, &mut reasons);
        assert_eq!(reasons.len(), 1);
        let mut reasons = Vec::new();
        check_rows(1 << 31, 8192, 2, &mut reasons);
        assert!(matches!(reasons[..], [Reason::ShapeUnsupported { .. }]));
        let mut reasons = Vec::new();
        check_rows(1 << 20, 8192, 2, &mut reasons);
        check_rows(1 << 20, 1, 4, &mut reasons);
        assert!(reasons.is_empty(), "{reasons:?}");
    }
}
