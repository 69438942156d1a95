//! The batch-invariant GEMM on AMD matrix cores, `crates/kernels/kernels/gemm_bi_mfma.cu`:
//! `C = alpha * op(A) @ op(B) + beta * C` with MFMA instructions and one fixed reduction order,
//! for gfx908 (CDNA1, MI100) and gfx90a (CDNA2, MI200), wavefronts of 64 lanes; and its launch
//! [`plan`].
//!
//! **Not yet run on AMD hardware.** The source compiles with hipRTC for gfx908 and gfx90a; its
//! lane layouts are AMD's documented ones (below); its tiling, loads and epilogue are those of
//! [`gemm_bi_simt`](crate::gemm_bi_simt), whose logic is proven on an NVIDIA GPU. It is
//! written to be simple and obviously right rather than fast; the first run on an MI100 or
//! MI200 must be the equivalence and batch-invariance suites.
//!
//! - **What it computes.** f16 or bf16 A and B (the same dtype), f32 accumulation, C in A's
//!   dtype or f32; all four transpose combinations; row strides in elements; a batch (batch
//!   stride 0 broadcasts); any `M, N, K >= 1` and any alignment (element loads, zero fill,
//!   skipped out-of-range stores). With `accumulate` false C is never read.
//! - **Design.** One configuration for every problem: a block tile of [`BM`] x [`BN`] x [`BK`]
//!   = 64 x 64 x 16, [`THREADS`] = 256 threads = four wavefronts as 2 x 2, each owning a 32 x 32
//!   sub-tile = 2 x 2 MFMA output tiles of 16 x 16 (one 4 x f32 accumulator per lane each).
//!   Each k-tile of A and B is read element by element (coalesced in the stored orientation)
//!   and stored as raw 16-bit patterns to static LDS ([`SHARED_BYTES`] bytes), K-major
//!   whatever the stored orientation (`As[m][k]`, `Bs[n][k]`), the next one read into
//!   registers while the current one is multiplied. Per k-tile, each accumulator takes one
//!   `v_mfma_f32_16x16x16f16` (f16), one `v_mfma_f32_16x16x16bf16_1k` (bf16 on gfx90a) or two
//!   `v_mfma_f32_16x16x8bf16` (bf16 on gfx908, which lacks the `_1k` instruction: k 0..7 then
//!   8..15). One block per (batch entry, 64 x 64 tile of C) in a 1-D grid ([`Plan`]).
//! - **Lane layouts** (AMD Matrix Instruction Calculator,
//!   github.com/ROCm/amd_matrix_instruction_calculator, `--detail-instruction` for CDNA1/CDNA2;
//!   no CBSZ/ABID/BLGP modifiers). For a 16 x 16 output tile, lane `l` of 64:
//!   - 16x16x16 (f16, bf16_1k): `A[i][k]` is in lane `16 * (k / 4) + i`, vector element
//!     `k % 4`; `B[k][j]` in lane `16 * (k / 4) + j`, element `k % 4`;
//!   - 16x16x8 (bf16): `A[i][k]` in lane `16 * (k / 2) + i`, element `k % 2`; `B` likewise;
//!   - all three: `D[i][j]` (and C) in lane `16 * (i / 4) + j`, register `i % 4`.
//!
//!   So lane `l` supplies row `l % 16` of A and column `l % 16` of B at `k = E * (l / 16) + e`
//!   (`E` = 4 or 2 elements) and receives rows `4 * (l / 16) + e`, column `l % 16` of D. The
//!   kernel reads its operands from LDS with exactly these indices; a CPU emulation of the
//!   three instructions with these layouts reproduces the f64 product (checked while writing
//!   it, not committed).
//! - **Why it is batch-invariant.** Every element of C is held by one lane in one accumulator
//!   register that starts at zero and takes, for the k-tiles in increasing order, that
//!   k-tile's MFMA step(s) in increasing k order; each MFMA adds its k-slice in the hardware's
//!   fixed internal order, and the k past K are exact zeros in both operands. The instruction
//!   sequence depends on K and the architecture alone: not on M or the batch (one
//!   configuration, no split-K, no atomics), not on which block, wavefront or lane holds the
//!   element. The epilogue is [`gemm_bi_simt`](crate::gemm_bi_simt)'s. A row of C therefore
//!   has the same bits whatever batch it rides in, and every run the same bits, on a given
//!   device (gfx908 and gfx90a may differ: they run different bf16 instructions).
//!
//! Signature of every entry point: that of `gemm_bi_simt` (and `gemm_bi.cu`): `(const void* a,
//! const void* b, void* c, long long m, long long n, long long k, long long lda, long long
//! ldb, long long ldc, long long stride_a, long long stride_b, long long stride_c, float
//! alpha, float beta, int accumulate, int c_f32)`.
//!
//! Responsibility: core validated the views into the [`GemmProblem`]; the backend declares the
//! kernel for gfx908..=gfx90a with 64-lane wavefronts and f16/bf16 A/B (the source refuses to
//! compile for any other target); [`check_shape`] rejects what the launch cannot pass; [`plan`]
//! picks the entry point and the launch shape and [`launch`] passes them, with the parameters,
//! to the backend.

use kernelyard_core::ops::gemm::{GemmArgs, GemmProblem};
use kernelyard_core::{Capabilities, DType, Error, Reason, Stream};

use crate::gemm_bi_simt::{blocks, check_tiled_shape, launch_tiled};
use crate::launch::Launch;
use crate::source::KernelSource;

/// The kernel source and its entry points, `gemm_bi_mfma_<dtype>_<op(A)><op(B)>`: `n` for an
/// operand used as stored, `t` transposed. The order is the one [`plan`] indexes.
pub static SOURCE: KernelSource = KernelSource {
    file: "gemm_bi_mfma.cu",
    code: include_str!("../kernels/gemm_bi_mfma.cu"),
    symbols: &[
        "gemm_bi_mfma_f16_nn",
        "gemm_bi_mfma_f16_nt",
        "gemm_bi_mfma_f16_tn",
        "gemm_bi_mfma_f16_tt",
        "gemm_bi_mfma_bf16_nn",
        "gemm_bi_mfma_bf16_nt",
        "gemm_bi_mfma_bf16_tn",
        "gemm_bi_mfma_bf16_tt",
    ],
};

/// Rows of C per block (`gbm::BM` in the kernel).
pub const BM: usize = 64;
/// Columns of C per block (`gbm::BN`).
pub const BN: usize = 64;
/// K per LDS tile (`gbm::BK`): one 16x16x16 MFMA step, or two 16x16x8 ones.
pub const BK: usize = 16;
/// Threads per block (`gbm::THREADS`): four wavefronts of [`WAVE`] lanes.
pub const THREADS: u32 = 256;
/// Lanes per wavefront the kernel assumes (`gbm::WAVE`): gfx908 and gfx90a run wave64 only.
pub const WAVE: u32 = 64;
/// 16-bit elements of padding per LDS row (`gbm::PAD`).
const PAD: usize = 2;

/// Static LDS per block, bytes (`gbm::SMEM_BYTES`): one k-tile of A and of B as 16-bit
/// patterns, `BM` (`BN`) rows of `BK + PAD` elements. Declared in the kernel, so
/// [`Plan::dims`] asks for no dynamic shared memory.
pub const SHARED_BYTES: u32 = (BM * (BK + PAD) * 2 + BN * (BK + PAD) * 2) as u32;

/// How a problem is launched: the portable kernel's plan type (the same grid of one block of
/// [`THREADS`] threads per tile of C, static LDS only).
pub use crate::gemm_bi_simt::Plan;

const _: () = assert!(THREADS == crate::gemm_bi_simt::THREADS);

/// The launch plan of `p`, or `None` for an A/B dtype the kernel does not handle (f32 and the
/// integers). The entry point depends on the dtype and the transposes; the launch shape on
/// nothing else but the block count.
pub fn plan(p: &GemmProblem) -> Option<Plan> {
    let dtype = match p.dtype {
        DType::F16 => 0,
        DType::BF16 => 1,
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

/// Launches `p` on `stream` through `gpu`: [`gemm_bi_simt`](crate::gemm_bi_simt)'s sequence
/// (the same parameters) with this kernel's plan (no device property matters: static LDS of
/// [`SHARED_BYTES`]). Core validated `a` into `p`; the backend's metadata restricted it to
/// f16/bf16 on gfx908..=gfx90a and [`check_shape`] accepted it.
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
    // (any alignment), uses static LDS only, and `check_shape` checked C's dtype, the sizes and
    // the grid.
    unsafe { launch_tiled(gpu, stream, (&SOURCE, plan.symbol), plan.dims(), a, p) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm_bi_simt::tests::{problem, record_launch};
    use crate::launch::Dims;

    #[test]
    fn the_launch_follows_the_plan() {
        // The recorder runs nothing, so the f32 views can stand for 16-bit ones.
        let call = record_launch(launch, |p| {
            p.dtype = DType::BF16;
            p.c_dtype = DType::F32;
            p.trans_b = true;
        })
        .unwrap();
        let p = problem(100, 70, 30, false, true, DType::BF16);
        let plan = plan(&p).unwrap();
        assert_eq!(
            (call.file, call.symbol),
            ("gemm_bi_mfma.cu", "gemm_bi_mfma_bf16_nt")
        );
        assert_eq!(call.dims, plan.dims());
        let err = record_launch(launch, |_| {}).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NoEntryPoint {
                    file: "gemm_bi_mfma.cu",
                    ..
                }
            ),
            "{err}"
        );
    }

    fn reasons(p: &GemmProblem) -> Vec<Reason> {
        let mut r = Vec::new();
        check_shape(p, &mut r);
        r
    }

    #[test]
    fn the_entry_point_follows_dtype_and_transposes() {
        let t = |x: bool| if x { 't' } else { 'n' };
        for dtype in [DType::F16, DType::BF16] {
            for ta in [false, true] {
                for tb in [false, true] {
                    for align in [2, 4, 16] {
                        let mut p = problem(100, 200, 300, ta, tb, dtype);
                        p.align = align;
                        let plan = plan(&p).unwrap();
                        let want = format!("gemm_bi_mfma_{}_{}{}", dtype.name(), t(ta), t(tb));
                        assert_eq!(plan.symbol, want);
                        assert!(SOURCE.lists(plan.symbol));
                    }
                }
            }
        }
        for dtype in [DType::F32, DType::I32, DType::I64] {
            assert_eq!(plan(&problem(8, 8, 8, false, false, dtype)), None);
        }
    }

    #[test]
    fn the_launch_shape_depends_on_m_only_through_the_block_count() {
        let mut p = problem(1, 1, 1, false, false, DType::F16);
        assert_eq!(
            plan(&p).unwrap().dims(),
            Dims {
                grid: (1, 1, 1),
                block: (256, 1, 1),
                shared_bytes: 0,
            }
        );
        p.n = 129;
        p.batch = 3;
        for ta in [false, true] {
            p.trans_a = ta;
            let symbol = plan(&p).unwrap().symbol;
            for m in [1, 2, 7, 63, 64, 65, 129, 1000, 4096, 100_001] {
                p.m = m;
                p.lda = if ta { m } else { p.k };
                let plan = plan(&p).unwrap();
                assert_eq!(plan.symbol, symbol, "m = {m}");
                assert_eq!(plan.blocks, m.div_ceil(BM) * 3 * 3);
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
        assert_eq!(SHARED_BYTES, 4608);
        for (name, value) in [
            ("BM", BM),
            ("BN", BN),
            ("BK", BK),
            ("THREADS", THREADS as usize),
            ("WAVE", WAVE as usize),
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
        assert!(!SOURCE.code.contains("extern __shared__"));
        // The per-arch instructions the docs name, and the guard against other targets.
        for needle in [
            "__builtin_amdgcn_mfma_f32_16x16x16f16(",
            "__builtin_amdgcn_mfma_f32_16x16x16bf16_1k(",
            "__builtin_amdgcn_mfma_f32_16x16x8bf16(",
            "#if defined(__gfx90a__)",
            "#if !defined(__gfx908__) && !defined(__gfx90a__)",
            "NOT YET RUN ON AMD HARDWARE",
        ] {
            assert!(SOURCE.code.contains(needle), "`{needle}` not in the source");
        }
    }

    #[test]
    fn every_listed_entry_point_is_in_the_source() {
        for s in SOURCE.symbols {
            let (dtype, layout) = s
                .strip_prefix("gemm_bi_mfma_")
                .and_then(|r| r.split_once('_'))
                .unwrap();
            let entry = format!("GBM_ENTRY(gemm_bi_mfma_##D##_{layout},");
            assert!(SOURCE.code.contains(&entry), "{s}: no `{entry}`");
            assert!(
                SOURCE.code.contains(&format!("\nGBM_DTYPE({dtype}, ")),
                "{s}: no GBM_DTYPE({dtype}, ..)"
            );
        }
        assert_eq!(SOURCE.symbols.len(), 8);
    }

    #[test]
    fn what_the_launch_cannot_pass_is_a_reason() {
        let mut p = problem(64, 64, 64, false, false, DType::F16);
        p.c_dtype = DType::BF16;
        assert!(matches!(reasons(&p)[..], [Reason::ShapeUnsupported { .. }]));
        for dtype in [DType::F16, DType::BF16] {
            for c_dtype in [dtype, DType::F32] {
                let mut p = problem(3, 5, 7, true, false, dtype);
                p.c_dtype = c_dtype;
                assert_eq!(reasons(&p), vec![]);
            }
        }
        let mut p = problem(1 << 23, 1 << 14, 64, false, true, DType::BF16);
        p.batch = 64;
        assert!(matches!(reasons(&p)[..], [Reason::ShapeUnsupported { .. }]));
        p.batch = 63;
        assert_eq!(reasons(&p), vec![]);
        let mut p = problem(usize::MAX / 2, usize::MAX / 2, 1, false, false, DType::F16);
        p.batch = usize::MAX;
        assert_eq!(reasons(&p).len(), 2);
    }
}
