//! The source of the SwiGLU kernels, `kernels/silu_mul.cu` (`out[r, j] = silu(gate[r, j]) *
//! up[r, j]`, `silu(g) = g / (1 + exp(-g))`, f32 math, one rounding to the dtype), their launch
//! [`plan`], [`check`] and [`launch`] sequence.
//!
//! Entry points: `silu_mul_<dtype>_v` (16-byte accesses: every pointer, row stride and `d *
//! size` a multiple of 16 bytes) and `silu_mul_<dtype>_s` (element accesses, any alignment),
//! dtype `f32`, `f16` or `bf16`, all with the signature `(const void* gate, const void* up,
//! void* out, long long rows, long long d, long long in_stride)`. One set serves both input
//! layouts: fused `x [rows, 2d]` is passed as `gate = x`, `up = x + d` and `in_stride = 2d`;
//! split `gate [rows, d]`, `up [rows, d]` as themselves and `in_stride = d`; `out [rows, d]`.
//!
//! Responsibility: core validated the views (contiguous rows, shapes, one float dtype, one
//! device, `out` disjoint from the inputs, which the kernel reads with non-coherent loads) into
//! the [`SiluMulProblem`], with `align` the least alignment (bytes, at most 16) of every pointer
//! and row stride, the fused `up` offset `d * size` included; [`check`] rejects the rows the
//! kernels cannot index; [`launch`] picks the entry point and launch shape and launches
//! through the backend; the kernel assumes valid inputs.
//!
//! # Launch configuration
//! A unit is a 16-byte vector (`_v`, [`VECTORS_PER_THREAD`] per thread and row) or an element
//! (`_s`, [`ELEMS_PER_THREAD`]); a row of `d` elements has `units` of them and needs `q =
//! ceil(units / per thread)` threads. Blocks are `(tx, ty)`, at most [`THREADS`] threads, `tx`
//! threads over a column tile of `ty` rows; the grid is `(column tiles, row groups)`, the row
//! groups capped at [`MAX_GRID_Y`] (the kernel loops over further rows).
//!
//! | threads per row `q` | block `(tx, ty)` | column tiles |
//! |---|---|---|
//! | `<= 32` | `(next_pow2(q), 256 / tx)`: several rows per warp | 1 |
//! | `33 ..= 256` | `(q rounded up to 32, 256 / tx)` | 1 |
//! | `> 256` | `(ceil(q / tiles) rounded up to 32, 1)` | `ceil(q / 256)` |
//!
//! A long row is cut into tiles of equal size rather than full tiles and a mostly idle last
//! one: SwiGLU of 16384 x 14336 bf16 (1792 vectors a row, `q = 448`) runs 2 tiles of 224
//! threads, 16384 row groups, each thread with 4 vectors of gate and 4 of up (128 bytes) in
//! flight before it computes. Bytes: `2 * rows * d` elements read and `rows * d` written (1.41
//! GB there); arithmetic: an ex2, a reciprocal and about 20 instructions an element (the bf16
//! rounding is a third of them), about half the memory time in issue slots.
//!
//! Measured on an H200 (CuPy harness, median of 7 x 20 launches; a 1.41 GB device copy moved
//! 4.24 to 4.26 TB/s counting reads and writes): 16384 x 14336 bf16 in 351 us, 4.02 TB/s =
//! 94% of the copy, fused and split alike (f16 the same; f32 695 us, 95%); 8192 x 28672 bf16
//! 94%; 16384 x 4096 and 4096 x 11008 bf16 89%. PyTorch eager `silu(g) * u` took 1251 us at
//! the first shape. Two vectors a thread instead of 4 gained 1% at 14336 and lost 1 to 3% at
//! the other shapes; 8 lost 1%; 128- and 512-thread blocks were within 1.5%. Elementwise:
//! deterministic and batch-invariant by construction (no shape choice changes any element's
//! arithmetic; the `_v` and `_s` paths gave the same bits).

use std::ffi::c_void;

use kernelyard_core::ops::silu_mul::{SiluMulArgs, SiluMulInput, SiluMulProblem};
use kernelyard_core::{Capabilities, Error, Reason, Stream};

use crate::launch::{check_elements, Dims, Launch};
use crate::rows::entry_point;
use crate::source::KernelSource;

/// The source and its entry points: per dtype, `_v` (16-byte accesses) and `_s` (element
/// accesses).
pub static SOURCE: KernelSource = KernelSource {
    file: "silu_mul.cu",
    code: include_str!("../kernels/silu_mul.cu"),
    symbols: &[
        "silu_mul_f32_v",
        "silu_mul_f32_s",
        "silu_mul_f16_v",
        "silu_mul_f16_s",
        "silu_mul_bf16_v",
        "silu_mul_bf16_s",
    ],
};

/// Most threads per block (the entry points' `__launch_bounds__`, `KY_SILU_THREADS`).
pub const THREADS: u32 = 256;
/// 16-byte vectors of gate (and of up) per thread and row on the `_v` path (`KY_SILU_VECS`).
pub const VECTORS_PER_THREAD: usize = 4;
/// Elements of gate (and of up) per thread and row on the `_s` path (`KY_SILU_ELEMS`).
pub const ELEMS_PER_THREAD: usize = 8;
/// Most blocks in y; the kernel loops over the rows beyond `MAX_GRID_Y * ty`.
pub const MAX_GRID_Y: usize = 65535;
/// Longest row the kernels accept: in-row indices are 32-bit.
pub const MAX_D: usize = 1 << 30;

/// How a problem is launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiluMulPlan {
    /// 16-byte accesses (the `_v` entry point) rather than element ones (`_s`).
    pub vector: bool,
    /// Threads per block over the columns of a row (`tx`) and rows per block (`ty`).
    pub block: (u32, u32),
    /// Column tiles of `tx * units per thread` units each: blocks in x.
    pub col_blocks: usize,
    /// Row groups of `ty` rows: blocks in y before the cap of [`MAX_GRID_Y`].
    pub row_blocks: usize,
}

impl SiluMulPlan {
    /// The entry point's suffix: `v` or `s`.
    pub fn variant(&self) -> &'static str {
        if self.vector {
            "v"
        } else {
            "s"
        }
    }

    /// Units (16-byte vectors or elements) each thread handles per row.
    pub fn per_thread(&self) -> usize {
        if self.vector {
            VECTORS_PER_THREAD
        } else {
            ELEMS_PER_THREAD
        }
    }

    /// The launch shape: y capped at [`MAX_GRID_Y`] (the kernel loops over the other rows), x
    /// at `i32::MAX` (see [`check`]); at least one block each way, so an empty problem is a
    /// valid launch that does nothing.
    pub fn dims(&self) -> Dims {
        Dims {
            grid: (
                self.col_blocks.clamp(1, i32::MAX as usize) as u32,
                self.row_blocks.clamp(1, MAX_GRID_Y) as u32,
                1,
            ),
            block: (self.block.0, self.block.1, 1),
            shared_bytes: 0,
        }
    }
}

/// The plan for `rows` rows of `d` elements of `elem_bytes` bytes whose pointers and row
/// strides are `align`-byte aligned (the module docs give the table). The block shape depends
/// on `d` and the element size alone; the alignment only picks the access width.
pub fn plan(rows: usize, d: usize, elem_bytes: usize, align: usize) -> SiluMulPlan {
    let elem_bytes = elem_bytes.clamp(1, 16);
    // A row whose bytes overflow takes the element path (`check` rejects it anyway).
    let row_bytes = d.checked_mul(elem_bytes);
    let vector = align >= 16 && row_bytes.is_some_and(|b| b % 16 == 0);
    let (units, per_thread) = match row_bytes {
        Some(b) if vector => (b / 16, VECTORS_PER_THREAD),
        _ => (d, ELEMS_PER_THREAD),
    };
    let q = units.div_ceil(per_thread).max(1);
    let threads = THREADS as usize;
    let (tx, col_blocks) = if q <= 32 {
        (q.next_power_of_two(), 1)
    } else if q <= threads {
        (q.next_multiple_of(32), 1)
    } else {
        let col_blocks = q.div_ceil(threads);
        (q.div_ceil(col_blocks).next_multiple_of(32), col_blocks)
    };
    let ty = (threads / tx).max(1);
    SiluMulPlan {
        vector,
        block: (tx as u32, ty as u32),
        col_blocks,
        row_blocks: rows.div_ceil(ty),
    }
}

/// Pushes the reasons the kernels cannot run `p` (no device property matters): more elements
/// than 64-bit indices reach, a row longer than [`MAX_D`], or more column tiles than a grid
/// holds. Any number of rows otherwise fits: the grid's y is capped and the kernel loops.
pub fn check(_caps: &Capabilities, p: &SiluMulProblem, reasons: &mut Vec<Reason>) {
    check_elements("out", &[p.rows, p.d], reasons);
    if p.d > MAX_D {
        reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "rows of {} elements (at most {MAX_D}: 32-bit in-row offsets)",
                p.d
            ),
        });
    }
    let plan = plan(p.rows, p.d, p.dtype.size(), p.align);
    if plan.col_blocks > i32::MAX as usize {
        reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "rows of {} elements need {} blocks in x (at most 2^31 - 1)",
                p.d, plan.col_blocks
            ),
        });
    }
}

/// The kernel's `(gate, up, in_stride)` for `input`: fused `x [rows, 2d]` is read as gate =
/// `x`, up = `x + d` elements (`elem_bytes` each), rows `2d` apart; split views as they are,
/// rows `d` apart.
fn inputs(
    input: &SiluMulInput<'_>,
    d: usize,
    elem_bytes: usize,
) -> (*const c_void, *const c_void, i64) {
    match input {
        SiluMulInput::Fused(x) => {
            let gate = x.as_ptr();
            // A device address: offset without dereferencing, within the view core validated.
            (gate, gate.wrapping_byte_add(d * elem_bytes), 2 * d as i64)
        }
        SiluMulInput::Split { gate, up } => (gate.as_ptr(), up.as_ptr(), d as i64),
    }
}

/// Launches `p` on `stream` through `gpu` (no device property matters). Core validated `a`
/// into `p`, and [`check`] accepted it.
pub fn launch(
    gpu: &dyn Launch,
    stream: &Stream,
    _caps: &Capabilities,
    a: &mut SiluMulArgs<'_>,
    p: &SiluMulProblem,
) -> Result<(), Error> {
    debug_assert_eq!(p.split, matches!(a.input, SiluMulInput::Split { .. }));
    let plan = plan(p.rows, p.d, p.dtype.size(), p.align);
    let symbol = entry_point(&SOURCE, "silu_mul", p.dtype, plan.variant(), "")?;
    let (gate, up, in_stride) = inputs(&a.input, p.d, p.dtype.size());
    let out = a.out.as_mut_ptr();
    let (rows, d) = (p.rows as i64, p.d as i64);
    // SAFETY: the parameters match `silu_mul_<dtype>_<v|s>(const void* gate, const void* up,
    // void* out, long long rows, long long d, long long in_stride)`; core validated the views
    // (device, bounds: the fused x holds `rows` rows of `2d`, so `up = x + d` reads rows of
    // `d` within it; contiguous rows; one dtype; out disjoint from the inputs); the `_v` entry
    // point is chosen only when every pointer (the fused up included) and row stride is
    // 16-byte aligned and `d * size` is a multiple of 16; the block has at most 256 threads
    // (the entry points' bound) and the grid's y at most 65535 (the kernel loops over the
    // rows beyond); `check` bounded `d` for the kernel's 32-bit in-row indices.
    unsafe {
        gpu.launch(
            stream,
            &SOURCE,
            symbol,
            plan.dims(),
            &mut crate::params![gate, up, out, rows, d, in_stride],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::Recorder;
    use crate::rows::symbol;
    use kernelyard_core::{DType, TensorView, TensorViewMut};

    #[test]
    fn plans_of_any_sizes_are_computed_without_overflow() {
        for d in [MAX_D + 1, 1 << 62, usize::MAX] {
            let p = plan(usize::MAX, d, 2, 16);
            assert!(p.block.0 >= 1 && p.col_blocks >= 1, "{d}: {p:?}");
            let mut reasons = Vec::new();
            check(
                &Capabilities::host(),
                &problem(usize::MAX, d, DType::BF16, false, 16),
                &mut reasons,
            );
            assert!(
                reasons
                    .iter()
                    .all(|r| matches!(r, Reason::ShapeUnsupported { .. }))
                    && reasons.len() >= 2,
                "{reasons:?}"
            );
        }
    }

    fn problem(rows: usize, d: usize, dtype: DType, split: bool, align: usize) -> SiluMulProblem {
        SiluMulProblem {
            rows,
            d,
            dtype,
            split,
            align,
        }
    }

    #[test]
    fn the_launch_takes_the_vector_path_exactly_when_aligned() {
        let (rows, d) = (3, 64);
        let x = vec![1.0f32; rows * 2 * d];
        let (g, u) = (vec![1.0f32; rows * d], vec![2.0f32; rows * d]);
        let mut y = vec![0.0f32; rows * d];
        let gpu = Recorder::default();
        let caps = Capabilities::host();
        for split in [false, true] {
            for align in [16, 8, 4] {
                let input = if split {
                    SiluMulInput::Split {
                        gate: TensorView::from_slice(&g, &[rows, d]).unwrap(),
                        up: TensorView::from_slice(&u, &[rows, d]).unwrap(),
                    }
                } else {
                    SiluMulInput::Fused(TensorView::from_slice(&x, &[rows, 2 * d]).unwrap())
                };
                let mut a = SiluMulArgs {
                    input,
                    out: TensorViewMut::from_slice(&mut y, &[rows, d]).unwrap(),
                };
                let p = problem(rows, d, DType::F32, split, align);
                launch(&gpu, &Stream::host(), &caps, &mut a, &p).unwrap();
                let calls = gpu.0.take();
                assert_eq!(calls.len(), 1);
                let c = &calls[0];
                let want = if align == 16 {
                    "silu_mul_f32_v"
                } else {
                    "silu_mul_f32_s"
                };
                assert_eq!((c.file, c.symbol, c.params), ("silu_mul.cu", want, 6));
                assert_eq!(c.dims, plan(rows, d, 4, align).dims());
                let gate = if split { g.as_ptr() } else { x.as_ptr() };
                assert_eq!(c.first, gate.cast());
            }
        }
    }

    #[test]
    fn validated_arguments_launch_the_planned_entry_point() {
        // Core's problem: a fused f32 row of d = 3 puts up 12 bytes in, so the element path
        // whatever the allocation's alignment.
        let gpu = Recorder::default();
        for (d, split) in [(64, false), (64, true), (3, false)] {
            let rows = 5;
            let x = vec![0.5f32; rows * 2 * d];
            let (g, u) = (vec![0.5f32; rows * d], vec![2.0f32; rows * d]);
            let mut y = vec![0.0f32; rows * d];
            let input = if split {
                SiluMulInput::Split {
                    gate: TensorView::from_slice(&g, &[rows, d]).unwrap(),
                    up: TensorView::from_slice(&u, &[rows, d]).unwrap(),
                }
            } else {
                SiluMulInput::Fused(TensorView::from_slice(&x, &[rows, 2 * d]).unwrap())
            };
            let mut a = SiluMulArgs {
                input,
                out: TensorViewMut::from_slice(&mut y, &[rows, d]).unwrap(),
            };
            let (p, _) = a.validate().unwrap();
            assert_eq!((p.rows, p.d, p.split), (rows, d, split));
            launch(&gpu, &Stream::host(), &Capabilities::host(), &mut a, &p).unwrap();
            let calls = gpu.0.take();
            let want = plan(rows, d, 4, p.align);
            assert_eq!(calls[0].symbol, format!("silu_mul_f32_{}", want.variant()));
            assert_eq!(calls[0].dims, want.dims());
            if d == 3 {
                assert_eq!((p.align, calls[0].symbol), (4, "silu_mul_f32_s"));
            }
        }
    }

    #[test]
    fn fused_input_reads_up_from_the_second_half_of_each_row() {
        let (rows, d) = (2, 24);
        let x = vec![0.0f32; rows * 2 * d];
        let input = SiluMulInput::Fused(TensorView::from_slice(&x, &[rows, 2 * d]).unwrap());
        let (gate, up, stride) = inputs(&input, d, 4);
        assert_eq!(gate, x.as_ptr().cast());
        assert_eq!(up, x[d..].as_ptr().cast());
        assert_eq!(stride, 2 * d as i64);
        let (g, u) = (vec![0.0f32; rows * d], vec![0.0f32; rows * d]);
        let input = SiluMulInput::Split {
            gate: TensorView::from_slice(&g, &[rows, d]).unwrap(),
            up: TensorView::from_slice(&u, &[rows, d]).unwrap(),
        };
        let (gate, up, stride) = inputs(&input, d, 4);
        assert_eq!((gate, up), (g.as_ptr().cast(), u.as_ptr().cast()));
        assert_eq!(stride, d as i64);
    }

    #[test]
    fn target_shapes() {
        // SwiGLU 16384 x 14336 bf16: 1792 vectors a row, 448 threads' worth: 2 tiles of 224.
        let p = plan(16384, 14336, 2, 16);
        assert!(p.vector);
        assert_eq!((p.block, p.col_blocks), ((224, 1), 2));
        assert_eq!(p.dims().grid, (2, 16384, 1));
        // f32: 3584 vectors, 4 tiles of 224.
        let p = plan(16384, 14336, 4, 16);
        assert_eq!((p.block, p.col_blocks), ((224, 1), 4));
        // 4096 bf16: 512 vectors, 128 threads a row, 2 rows a block.
        let p = plan(100, 4096, 2, 16);
        assert_eq!((p.block, p.col_blocks, p.row_blocks), ((128, 2), 1, 50));
        // Short rows share warps: 64 bf16 = 8 vectors, 2 threads a row, 128 rows a block.
        let p = plan(1000, 64, 2, 16);
        assert_eq!((p.block, p.dims().grid), ((2, 128), (1, 8, 1)));
        // Misaligned or not whole vectors: elements, 8 a thread (1792 threads: 7 tiles of 256).
        let p = plan(7, 14336, 2, 8);
        assert!(!p.vector);
        assert_eq!((p.block, p.col_blocks), ((256, 1), 7));
        assert!(!plan(7, 14337, 2, 16).vector);
        assert!(!plan(7, 12, 2, 16).vector);
        assert!(plan(7, 12, 4, 16).vector);
        // Beyond 65535 row groups the grid stays at the cap (the kernel loops).
        let p = plan(1 << 20, 14336, 2, 16);
        assert_eq!(p.dims().grid, (2, 65535, 1));
        // Empty problems are launches that do nothing.
        assert_eq!(plan(0, 0, 2, 16).dims().grid, (1, 1, 1));
    }

    /// The kernel's unit mapping: `(column tile, thread x, i)` to unit `tile * tx * per + x +
    /// i * tx`, those `< units` taken.
    fn columns_covered(p: &SiluMulPlan, units: usize) -> Vec<u32> {
        let (tx, per) = (p.block.0 as usize, p.per_thread());
        let mut seen = vec![0u32; units];
        for tile in 0..p.dims().grid.0 as usize {
            for x in 0..tx {
                for i in 0..per {
                    let c = tile * tx * per + x + i * tx;
                    if c < units {
                        seen[c] += 1;
                    }
                }
            }
        }
        seen
    }

    /// The kernel's row mapping: `(block y, thread y)` to rows `by * ty + y`, then steps of
    /// `grid y * ty`.
    fn rows_covered(p: &SiluMulPlan, rows: usize) -> Vec<u32> {
        let ty = p.block.1 as usize;
        let step = p.dims().grid.1 as usize * ty;
        let mut seen = vec![0u32; rows];
        for by in 0..p.dims().grid.1 as usize {
            for y in 0..ty {
                let mut row = by * ty + y;
                while row < rows {
                    seen[row] += 1;
                    row += step;
                }
            }
        }
        seen
    }

    #[test]
    fn every_element_has_exactly_one_thread() {
        for size in [4, 2] {
            for d in (1..=3000).chain([4096, 11008, 14336, 14337, 28672, 65536, 65539]) {
                for align in [size, 16] {
                    let p = plan(5, d, size, align);
                    let units = if p.vector { d * size / 16 } else { d };
                    let (tx, ty) = (p.block.0, p.block.1);
                    assert!(tx * ty <= THREADS && (tx * ty) % 32 == 0, "{d}: {p:?}");
                    let seen = columns_covered(&p, units);
                    assert!(seen.iter().all(|&n| n == 1), "{d} {size} {align}: {p:?}");
                    // No column tile is empty.
                    let tile = tx as usize * p.per_thread();
                    assert!((p.col_blocks - 1) * tile < units.max(1), "{d}: {p:?}");
                }
            }
        }
        // Rows: within one grid and past the cap of 65535 row groups (the kernel's loop).
        for (rows, d) in [
            (1, 4096),
            (3, 64),
            (257, 8),
            (65535 * 2 + 7, 4096),
            (70_001, 14336),
        ] {
            let p = plan(rows, d, 2, 16);
            let seen = rows_covered(&p, rows);
            assert!(seen.iter().all(|&n| n == 1), "{rows} x {d}: {p:?}");
        }
        let p = plan(70_001, 14336, 2, 16);
        assert!(p.row_blocks > MAX_GRID_Y && p.dims().grid.1 as usize == MAX_GRID_Y);
    }

    #[test]
    fn the_kernels_in_row_indices_fit_32_bits() {
        // The largest unit index the kernel forms is below tiles * tx * per.
        for size in [4, 2] {
            for align in [size, 16] {
                let p = plan(1, MAX_D, size, align);
                let reach = p.col_blocks * p.block.0 as usize * p.per_thread();
                assert!(reach <= i32::MAX as usize, "{p:?}");
            }
        }
    }

    #[test]
    fn check_rejects_only_rows_beyond_32_bit_offsets() {
        let caps = Capabilities::host();
        let mut reasons = Vec::new();
        check(
            &caps,
            &problem(1 << 40, 14336, DType::BF16, false, 16),
            &mut reasons,
        );
        check(&caps, &problem(3, MAX_D, DType::F32, true, 4), &mut reasons);
        assert!(reasons.is_empty(), "{reasons:?}");
        check(
            &caps,
            &problem(3, MAX_D + 1, DType::F16, true, 2),
            &mut reasons,
        );
        assert!(
            matches!(reasons.as_slice(), [Reason::ShapeUnsupported { .. }]),
            "{reasons:?}"
        );
    }

    #[test]
    fn every_plan_names_a_listed_entry_point() {
        for dtype in DType::FLOATS.iter().copied() {
            for align in [dtype.size(), 16] {
                let v = plan(1, 4096, dtype.size(), align).variant();
                let s = symbol(&SOURCE, "silu_mul", dtype, v, "").unwrap();
                assert_eq!(s, format!("silu_mul_{}_{v}", dtype.name()));
            }
        }
    }

    #[test]
    fn every_listed_entry_point_is_in_the_source() {
        // `KY_SILU_DTYPE(D, T)` makes `silu_mul_##D##_v` and `silu_mul_##D##_s`.
        assert!(SOURCE.code.contains("silu_mul_##D##_v(KY_SILU_ARGS)"));
        assert!(SOURCE.code.contains("silu_mul_##D##_s(KY_SILU_ARGS)"));
        for s in SOURCE.symbols {
            let dtype = s
                .strip_prefix("silu_mul_")
                .and_then(|r| r.rsplit_once('_'))
                .map(|(d, _)| d)
                .unwrap();
            assert!(
                SOURCE.code.contains(&format!("\nKY_SILU_DTYPE({dtype}, ")),
                "{s}"
            );
        }
        for (name, value) in [
            ("KY_SILU_VECS", VECTORS_PER_THREAD),
            ("KY_SILU_ELEMS", ELEMS_PER_THREAD),
            ("KY_SILU_THREADS", THREADS as usize),
        ] {
            assert!(
                SOURCE.code.contains(&format!("#define {name} {value}\n")),
                "{name}"
            );
        }
    }
}
