//! The portable batch-invariant GEMM, `crates/kernels/kernels/gemm_bi_simt.cu`:
//! `C = alpha * op(A) @ op(B) + beta * C` with plain f32 FMAs (no matrix instructions) and one
//! fixed reduction order, and its launch [`plan`].
//!
//! - **What it computes.** f32, f16 or bf16 A and B (the same dtype), f32 accumulation, C in
//!   A's dtype or f32; all four transpose combinations (A stored `[k, m]` with `trans_a`, B
//!   stored `[n, k]` with `trans_b`); row strides in elements; a batch (an operand with batch
//!   stride 0 is broadcast); any `M, N, K >= 1` and any alignment (every global access is one
//!   element; out-of-range loads read zero, out-of-range stores are skipped). With
//!   `accumulate` false C is never read (it may hold NaN).
//! - **Where it runs.** Written once for hipRTC (every gfx arch: it needs no matrix
//!   instruction, no wavefront size and no shuffle) and NVRTC (sm_80, sm_90a): it is the AMD
//!   backend's path on devices without MFMA, and its logic is proven on an NVIDIA GPU
//!   (`crates/cuda/tests/gemm_simt_on_cuda.rs`).
//! - **Design.** One configuration for every problem: a block tile of [`BM`] x [`BN`] x [`BK`]
//!   = 64 x 64 x 16, [`THREADS`] = 256 threads (16 x 16; four wave64 wavefronts or eight
//!   32-lane groups), each owning 4 x 4 outputs at rows `ty + 16 i` and columns `tx + 16 j` of
//!   the tile in f32 registers; each k-tile of A and B is read element by element (coalesced in
//!   the operand's stored orientation), converted to f32 and stored to static shared memory
//!   ([`SHARED_BYTES`] bytes: `As[k][m]`, `Bs[k][n]`, rows padded by one float); the next
//!   k-tile is read into registers while the current one is multiplied. One block per (batch
//!   entry, 64 x 64 tile of C) in a 1-D grid ([`Plan`]); no dynamic shared memory.
//! - **Why it is batch-invariant.** Every element of C is computed by one thread, in one f32
//!   accumulator that starts at zero and takes `acc = fma(a, b, acc)` (rounded to nearest, as
//!   `__fmaf_rn`: never re-associated or contracted differently) for k = 0, 1, ... in
//!   increasing order, up to the next multiple of 16; the k past K are exact zeros in both
//!   operands. That sequence depends on K alone: not on M or the batch (one configuration, no
//!   split-K, no atomics), not on which block, thread or register holds the element. The
//!   epilogue is `v = alpha * acc` (rounded on its own) then `v = fma(beta, c, v)` when
//!   accumulating, stored rounded to nearest in C's dtype, as in
//!   `crates/cuda/kernels/gemm_bi.cu`. A row of C therefore has the same bits whatever batch it
//!   rides in, and every run the same bits, on a given device.
//!
//! Signature of every entry point (the same as `gemm_bi.cu`'s): `(const void* a, const void*
//! b, void* c, long long m, long long n, long long k, long long lda, long long ldb, long long
//! ldc, long long stride_a, long long stride_b, long long stride_c, float alpha, float beta,
//! int accumulate, int c_f32)`; strides in elements of their matrix's dtype; `beta` is read
//! only when `accumulate` is 1; `c_f32` is 1 when C is f32.
//!
//! Responsibility: core validated the views into the [`GemmProblem`] (shapes, strides, one
//! device, C not overlapping A or B, finite alpha and beta); [`check_shape`] rejects what the
//! launch cannot pass (C in another dtype, a size beyond `long long`, a grid beyond 2^31 - 1
//! blocks); [`plan`] picks the entry point and the launch shape and [`launch`] passes them,
//! with the parameters, to the backend; the kernel assumes valid inputs.

use kernelyard_core::ops::gemm::{GemmArgs, GemmProblem};
use kernelyard_core::{Capabilities, DType, Error, Reason, Stream};

use crate::launch::{Dims, Launch};
use crate::source::KernelSource;

/// The kernel source and its entry points, `gemm_bi_simt_<dtype>_<op(A)><op(B)>`: `n` for an
/// operand used as stored, `t` transposed. The order is the one [`plan`] indexes.
pub static SOURCE: KernelSource = KernelSource {
    file: "gemm_bi_simt.cu",
    code: include_str!("../kernels/gemm_bi_simt.cu"),
    symbols: &[
        "gemm_bi_simt_f32_nn",
        "gemm_bi_simt_f32_nt",
        "gemm_bi_simt_f32_tn",
        "gemm_bi_simt_f32_tt",
        "gemm_bi_simt_f16_nn",
        "gemm_bi_simt_f16_nt",
        "gemm_bi_simt_f16_tn",
        "gemm_bi_simt_f16_tt",
        "gemm_bi_simt_bf16_nn",
        "gemm_bi_simt_bf16_nt",
        "gemm_bi_simt_bf16_tn",
        "gemm_bi_simt_bf16_tt",
    ],
};

/// Rows of C per block (`gbs::BM` in the kernel).
pub const BM: usize = 64;
/// Columns of C per block (`gbs::BN`).
pub const BN: usize = 64;
/// K per shared-memory tile (`gbs::BK`).
pub const BK: usize = 16;
/// Threads per block (`gbs::THREADS`): 16 x 16, each computing 4 x 4 outputs.
pub const THREADS: u32 = 256;
/// Floats of padding per shared-memory row (`gbs::PAD`).
const PAD: usize = 1;

/// Static shared memory per block, bytes (`gbs::SMEM_BYTES`): one k-tile of A and of B in f32,
/// `BK` rows of `BM + PAD` floats each. Declared in the kernel, so [`Plan::dims`] asks for no
/// dynamic shared memory; every device has this much.
pub const SHARED_BYTES: u32 = (BK * (BM + PAD) * 4 + BK * (BN + PAD) * 4) as u32;

/// How a problem is launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The entry point.
    pub symbol: &'static str,
    /// Blocks: `batch * ceil(m / BM) * ceil(n / BN)`, one per (batch entry, tile of C).
    pub blocks: usize,
}

impl Plan {
    /// The launch shape (the caller has checked that `blocks` fits a grid: [`check_shape`]).
    pub fn dims(&self) -> Dims {
        Dims {
            grid: (self.blocks.min(i32::MAX as usize) as u32, 1, 1),
            block: (THREADS, 1, 1),
            shared_bytes: 0,
        }
    }
}

/// The launch plan of `p`, or `None` for an A/B dtype the kernel does not handle (integers).
/// The entry point depends on the dtype and the transposes; the launch shape on nothing else
/// but the block count.
pub fn plan(p: &GemmProblem) -> Option<Plan> {
    let dtype = match p.dtype {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::BF16 => 2,
        _ => return None,
    };
    let index = dtype * 4 + if p.trans_a { 2 } else { 0 } + usize::from(p.trans_b);
    Some(Plan {
        symbol: SOURCE.symbols[index],
        blocks: blocks(p, BM, BN).unwrap_or(usize::MAX),
    })
}

/// Pushes a reason for each part of `p` the launch cannot pass: C in a dtype other than A's
/// or f32, a size or stride beyond `long long` (with room for 64-bit byte offsets), more than
/// 2^31 - 1 blocks.
pub fn check_shape(p: &GemmProblem, reasons: &mut Vec<Reason>) {
    check_tiled_shape(p, BM, BN, reasons);
}

/// Blocks of `bm x bn` outputs the problem needs, if that count fits a `usize`.
pub(crate) fn blocks(p: &GemmProblem, bm: usize, bn: usize) -> Option<usize> {
    p.m.div_ceil(bm)
        .checked_mul(p.n.div_ceil(bn))?
        .checked_mul(p.batch)
}

/// [`check_shape`] for a kernel of this family (this signature, one block per `bm x bn` tile
/// of C in a 1-D grid): `gemm_bi_mfma` shares it.
pub(crate) fn check_tiled_shape(p: &GemmProblem, bm: usize, bn: usize, reasons: &mut Vec<Reason>) {
    if p.c_dtype != p.dtype && p.c_dtype != DType::F32 {
        reasons.push(Reason::ShapeUnsupported {
            what: format!("C of dtype {} with A/B of {}", p.c_dtype, p.dtype),
        });
    }
    let sizes = [
        p.m,
        p.n,
        p.k,
        p.lda,
        p.ldb,
        p.ldc,
        p.batch_stride_a,
        p.batch_stride_b,
        p.batch_stride_c,
    ];
    if sizes.iter().any(|&s| s > i64::MAX as usize / 4) {
        reasons.push(Reason::ShapeUnsupported {
            what: "a dimension or stride beyond 2^61 elements (64-bit byte offsets)".to_owned(),
        });
    }
    match blocks(p, bm, bn) {
        Some(b) if b <= i32::MAX as usize => {}
        b => reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "{} blocks of {bm} x {bn} outputs for batch {} of {} x {} (at most 2^31 - 1)",
                b.map_or_else(|| "more than 2^64".to_owned(), |b| b.to_string()),
                p.batch,
                p.m,
                p.n
            ),
        }),
    }
}

/// Launches `p` on `stream` through `gpu` (no device property matters: static shared memory
/// of [`SHARED_BYTES`], within every device's default). Core validated `a` into `p`, and
/// [`check_shape`] accepted it.
pub fn launch(
    gpu: &dyn Launch,
    stream: &Stream,
    _caps: &Capabilities,
    a: &mut GemmArgs<'_>,
    p: &GemmProblem,
) -> Result<(), Error> {
    let plan = plan(p).ok_or_else(|| Error::NoEntryPoint {
        file: SOURCE.file,
        what: format!("{} A/B", p.dtype),
    })?;
    // SAFETY: the plan's entry point has the family signature; it reads element by element
    // (any alignment), uses static shared memory only, and `check_shape` checked C's dtype, the
    // sizes and the grid.
    unsafe { launch_tiled(gpu, stream, (&SOURCE, plan.symbol), plan.dims(), a, p) }
}

/// The launch sequence of every batch-invariant GEMM entry point with the signature
/// `(const void* a, const void* b, void* c, long long m, n, k, lda, ldb, ldc, stride_a,
/// stride_b, stride_c, float alpha, float beta, int accumulate, int c_f32)`: this module's,
/// `gemm_bi_mfma`'s and the CUDA backend's mma.sync kernel (`gemm_bi.cu`). `beta` is passed as
/// 0 when `p` does not accumulate (C is then never read).
///
/// # Safety
/// `symbol` must be an entry point of `source` with that signature, chosen by its kernel's plan
/// for `p` with `dims`, and everything that entry point requires beyond core's validation of
/// `a` into `p` must hold (e.g. 16-byte alignment for a vector path, the dynamic shared memory
/// of `dims` within the device's limit, the grid within its limit): its kernel's checks
/// accepted `p`.
pub unsafe fn launch_tiled(
    gpu: &dyn Launch,
    stream: &Stream,
    (source, symbol): (&'static KernelSource, &'static str),
    dims: Dims,
    a: &mut GemmArgs<'_>,
    p: &GemmProblem,
) -> Result<(), Error> {
    let a_ptr = a.a.as_ptr();
    let b_ptr = a.b.as_ptr();
    let c_ptr = a.c.as_mut_ptr();
    let (m, n, k) = (p.m as i64, p.n as i64, p.k as i64);
    let (lda, ldb, ldc) = (p.lda as i64, p.ldb as i64, p.ldc as i64);
    let stride_a = p.batch_stride_a as i64;
    let stride_b = p.batch_stride_b as i64;
    let stride_c = p.batch_stride_c as i64;
    let alpha = a.alpha;
    let beta = if p.accumulate { a.beta } else { 0.0 };
    let accumulate = i32::from(p.accumulate);
    let c_f32 = i32::from(p.c_dtype == DType::F32);
    // SAFETY: the parameters match the signature above, which `symbol` has (the caller's
    // contract); core validated the views into `p` (A `[m, k]` or `[k, m]`, B `[k, n]` or
    // `[n, k]`, C `[m, n]` in `p.c_dtype`, their row and batch strides, one device, C disjoint
    // from A and B), and these kernels touch only elements inside them; what the entry point
    // needs beyond that (alignment, shared memory, grid) its kernel's checks accepted (the
    // caller's contract).
    unsafe {
        gpu.launch(
            stream,
            source,
            symbol,
            dims,
            &mut crate::params![
                a_ptr, b_ptr, c_ptr, m, n, k, lda, ldb, ldc, stride_a, stride_b, stride_c, alpha,
                beta, accumulate, c_f32
            ],
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::launch::tests::Recorder;

    /// A contiguous unbatched problem.
    pub(crate) fn problem(
        m: usize,
        n: usize,
        k: usize,
        ta: bool,
        tb: bool,
        dtype: DType,
    ) -> GemmProblem {
        GemmProblem {
            batch: 1,
            m,
            n,
            k,
            trans_a: ta,
            trans_b: tb,
            dtype,
            c_dtype: dtype,
            lda: if ta { m } else { k },
            ldb: if tb { k } else { n },
            ldc: n,
            batch_stride_a: 0,
            batch_stride_b: 0,
            batch_stride_c: 0,
            accumulate: false,
            align: 2,
        }
    }

    fn reasons(p: &GemmProblem) -> Vec<Reason> {
        let mut r = Vec::new();
        check_shape(p, &mut r);
        r
    }

    /// A GEMM launch sequence (`launch` of this module or of `gemm_bi_mfma`).
    pub(crate) type LaunchFn = fn(
        &dyn Launch,
        &Stream,
        &Capabilities,
        &mut GemmArgs<'_>,
        &GemmProblem,
    ) -> Result<(), Error>;

    /// Launches a `[m, k] x [k, n]` f32 GEMM (C in f32) through a [`Recorder`] with the
    /// problem changed by `edit`, returning the one launch.
    pub(crate) fn record_launch(
        launch: LaunchFn,
        edit: impl Fn(&mut GemmProblem),
    ) -> Result<crate::launch::tests::Call, Error> {
        use kernelyard_core::{TensorView, TensorViewMut};
        let (m, n, k) = (100, 70, 30);
        let a_data = vec![1.0f32; m * k];
        let b_data = vec![1.0f32; k * n];
        let mut c_data = vec![0.0f32; m * n];
        let mut a = GemmArgs::new(
            TensorView::from_slice(&a_data, &[m, k]).unwrap(),
            TensorView::from_slice(&b_data, &[k, n]).unwrap(),
            TensorViewMut::from_slice(&mut c_data, &[m, n]).unwrap(),
        );
        let (mut p, _) = a.validate().unwrap();
        edit(&mut p);
        let gpu = Recorder::default();
        launch(&gpu, &Stream::host(), &Capabilities::host(), &mut a, &p)?;
        let mut calls = gpu.0.take();
        assert_eq!(calls.len(), 1);
        let call = calls.pop().unwrap();
        assert_eq!(call.params, 16);
        assert_eq!(call.first, a_data.as_ptr().cast());
        Ok(call)
    }

    #[test]
    fn the_launch_follows_the_plan() {
        let call = record_launch(launch, |_| {}).unwrap();
        let p = problem(100, 70, 30, false, false, DType::F32);
        let plan = plan(&p).unwrap();
        assert_eq!(
            (call.file, call.symbol),
            ("gemm_bi_simt.cu", "gemm_bi_simt_f32_nn")
        );
        assert_eq!(call.dims, plan.dims());
        assert_eq!(call.dims.grid, (2 * 2, 1, 1));
        let err = record_launch(launch, |p| p.dtype = DType::I32).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NoEntryPoint {
                    file: "gemm_bi_simt.cu",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn the_entry_point_follows_dtype_and_transposes() {
        let t = |x: bool| if x { 't' } else { 'n' };
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            for ta in [false, true] {
                for tb in [false, true] {
                    for align in [2, 4, 16] {
                        let mut p = problem(100, 200, 300, ta, tb, dtype);
                        p.align = align;
                        let plan = plan(&p).unwrap();
                        let want = format!("gemm_bi_simt_{}_{}{}", dtype.name(), t(ta), t(tb));
                        assert_eq!(plan.symbol, want);
                        assert!(SOURCE.lists(plan.symbol));
                    }
                }
            }
        }
        for dtype in [DType::I32, DType::I64] {
            assert_eq!(plan(&problem(8, 8, 8, false, false, dtype)), None);
        }
    }

    #[test]
    fn the_launch_shape_depends_on_m_only_through_the_block_count() {
        let mut p = problem(1, 1, 1, false, false, DType::BF16);
        let one = plan(&p).unwrap();
        assert_eq!(one.blocks, 1);
        assert_eq!(
            one.dims(),
            Dims {
                grid: (1, 1, 1),
                block: (256, 1, 1),
                shared_bytes: 0,
            }
        );
        p.m = 65;
        p.n = 129;
        p.batch = 3;
        assert_eq!(plan(&p).unwrap().blocks, 2 * 3 * 3);
        for ta in [false, true] {
            p.trans_a = ta;
            let symbol = plan(&p).unwrap().symbol;
            for m in [1, 2, 7, 63, 64, 65, 129, 1000, 4096, 100_001] {
                p.m = m;
                p.lda = if ta { m } else { p.k };
                let plan = plan(&p).unwrap();
                assert_eq!(plan.symbol, symbol, "m = {m}");
                assert_eq!(
                    plan.dims(),
                    Dims {
                        grid: ((m.div_ceil(BM) * 3 * 3) as u32, 1, 1),
                        block: (THREADS, 1, 1),
                        shared_bytes: 0,
                    }
                );
            }
        }
    }

    #[test]
    fn the_constants_are_the_kernels() {
        assert_eq!(SHARED_BYTES, 8320);
        for (name, value) in [
            ("BM", BM),
            ("BN", BN),
            ("BK", BK),
            ("THREADS", THREADS as usize),
            ("PAD", PAD),
        ] {
            let line = format!("constexpr int {name} = {value};\n");
            assert!(
                SOURCE.code.contains(&line),
                "`{line}` not in {}",
                SOURCE.file
            );
        }
        assert!(SOURCE
            .code
            .contains(&format!("static_assert(SMEM_BYTES == {SHARED_BYTES},")));
        // Static shared memory only, one block per tile in a 1-D grid.
        assert!(!SOURCE.code.contains("extern __shared__"));
        assert!(SOURCE.code.contains("blockIdx.x"));
        assert!(!SOURCE.code.contains("blockIdx.y"));
    }

    #[test]
    fn every_listed_entry_point_is_in_the_source() {
        for s in SOURCE.symbols {
            let (dtype, layout) = s
                .strip_prefix("gemm_bi_simt_")
                .and_then(|r| r.split_once('_'))
                .unwrap();
            let entry = format!("GBS_ENTRY(gemm_bi_simt_##D##_{layout},");
            assert!(SOURCE.code.contains(&entry), "{s}: no `{entry}`");
            assert!(
                SOURCE.code.contains(&format!("\nGBS_DTYPE({dtype}, ")),
                "{s}: no GBS_DTYPE({dtype}, ..)"
            );
        }
        assert_eq!(SOURCE.symbols.len(), 12);
    }

    #[test]
    fn what_the_launch_cannot_pass_is_a_reason() {
        let mut p = problem(64, 64, 64, false, false, DType::F16);
        p.c_dtype = DType::BF16;
        assert!(matches!(reasons(&p)[..], [Reason::ShapeUnsupported { .. }]));
        // C in f32 or in A's dtype is fine, for every A/B dtype.
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            for c_dtype in [dtype, DType::F32] {
                let mut p = problem(3, 5, 7, true, true, dtype);
                p.c_dtype = c_dtype;
                assert_eq!(reasons(&p), vec![]);
            }
        }
        // 2^31 blocks: 2^17 x 2^8 tiles x 2^6 batch entries.
        let mut p = problem(1 << 23, 1 << 14, 64, false, false, DType::BF16);
        p.batch = 64;
        assert!(matches!(reasons(&p)[..], [Reason::ShapeUnsupported { .. }]));
        p.batch = 63;
        assert_eq!(reasons(&p), vec![]);
        let mut p = problem(usize::MAX / 2, usize::MAX / 2, 1, false, false, DType::BF16);
        p.batch = usize::MAX;
        assert_eq!(reasons(&p).len(), 2);
        assert_eq!(plan(&p).unwrap().blocks, usize::MAX);
    }
}
