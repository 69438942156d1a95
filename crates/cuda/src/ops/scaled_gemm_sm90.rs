//! `cuda.scaled_gemm.batch_invariant.sm90`: the FP8 `scaled_gemm` on Hopper (`sm_90a`) with a
//! fixed reduction order: deterministic and batch-invariant, where cuBLASLt's FP8 matmul
//! (`cuda.scaled_gemm.cublaslt`) is neither.
//!
//! - **The kernel** is `sm90::scaled_gemm` in `cuda.gemm.batch_invariant.sm90`'s source
//!   (`kernels/gemm_bi_sm90.cu`): the same TMA ring, producer and consumer warpgroups and
//!   persistent rasterised grid, with a 128 x 192 block tile and five 40 KiB stages (128 x
//!   176 and five 38 KiB stages when n <= 4096: `tile_n`, from n alone).
//!   `scaled_gemm`'s A `[m, k]` and B `[n, k]` are both K-major; a stage holds 128 k (one
//!   128-byte swizzle row per operand row), consumed by four `wgmma ... m64n192k32` (or
//!   `n176`) FP8 steps.
//!   The epilogue multiplies by the scales (`acc * (scale_a * scale_b)` per tensor, `(acc *
//!   scale_a[i]) * scale_b[j]` per row), adds the bias and rounds once to out's dtype.
//! - **Promotion.** The tensor cores add FP8 products in fixed point, about 14 bits below the
//!   largest term (docs/TOLERANCES.md); kept over all of K that lost 1.1e-3 relative at
//!   k = 4096 (v1, measured on an H100). So each stage's four steps are summed in the tensor
//!   cores from zero and that sum is added in f32, in k order, to a second set of
//!   accumulators (DeepSeek-V3's "promotion" every 128), which is why the tile is 192 wide
//!   (96 + 96 accumulators per thread; at 256 it would need 256, more than a thread has).
//!   v2 had a 128-wide tile; 192 loads a sixth fewer bytes per product from L2 and shared
//!   memory (docs/BENCHMARKS.md, "thirteenth session").
//! - **Why it is batch-invariant.** Every element of out is `((t_0 + t_1) + ...)` over its
//!   k-tiles `t_j` of 128 (each the tensor cores' sum of four k32 steps from zero), scaled
//!   once, whatever M is: the tile, the stage count and the entry point depend on the dtypes
//!   and n alone; K is never split; rows past M are zero-filled by TMA and stores are predicated.
//!   Scales are read on the device (a CUDA graph replays with whatever the scale tensors then
//!   hold).
//! - **What it takes.** Compute capability 9.0 (`sm_90a`: `wgmma`, TMA), every FP8 operand pair
//!   (e4m3 / e5m2 on either side), out bf16, f16 or f32, per-tensor or per-row scales (block
//!   scales are refused by name), k a multiple of 16 (TMA's 16-byte row stride), out rows of a
//!   multiple of 16 bytes (checked on n, so that no M changes the verdict), sizes TMA's
//!   32-bit coordinates hold, and its shared memory (201 KiB at the wide tile, 191 KiB at the
//!   narrow one). Anything else is a typed reason, never a launch.

use kernelyard_core::ops::scaled_gemm::{ScaleMode, ScaledGemm, ScaledGemmArgs, ScaledGemmProblem};
use kernelyard_core::{
    Capabilities, DType, Error, Feature, KernelDef, KernelMeta, LaunchCtx, Reason,
};

use crate::error::CudaError;
use crate::launch::{self, Dims};
use crate::ops::gemm_bi_sm90::{tensor_map, Operand, SCALED_MODULES};
use crate::ops::{tensor_core_meta, TensorCores};
use crate::source::{KernelSource, SourceEntry};

/// The `cuda.scaled_gemm.batch_invariant.sm90` kernel.
pub static SCALED_GEMM_BATCH_INVARIANT_SM90: KernelDef<ScaledGemm> =
    KernelDef::<ScaledGemm>::new(META, launch)
        .with_check(check)
        .with_prepare(prepare);
kernelyard_core::register!(SCALED_GEMM_BATCH_INVARIANT_SM90);

const META: KernelMeta = tensor_core_meta::<ScaledGemm>(
    "cuda.scaled_gemm.batch_invariant.sm90",
    module_path!(),
    "TMA + wgmma FP8 GEMM (sm_90a), per-tensor or per-row scales, sums promoted to f32 every \
     128 k; batch-invariant, deterministic",
    TensorCores::Hopper,
    16,
    // Below cuBLASLt's 10: unconstrained selection takes cuBLASLt, `batch_invariant` or
    // `deterministic` this.
    6,
)
.dtypes(DType::FP8)
.features(&[Feature::Wgmma, Feature::Tma, Feature::Fp8]);

const KERNELS: &[&dyn kernelyard_core::Kernel] = &[&SCALED_GEMM_BATCH_INVARIANT_SM90];

/// The backend's source entry for module `i` of [`SCALED_MODULES`].
pub(crate) const fn source_entry(i: usize) -> SourceEntry {
    SourceEntry {
        source: &SCALED_MODULES[i],
        kernels: KERNELS,
    }
}

/// Rows of out per block and of an A box.
const BM: u32 = 128;
/// Columns of out per block and rows of a B box for wide `n`: the .cu's `#define KY_SM90_FP8_BN
/// <n>` (192 as committed; 128, 160 and 176 are timing variants), read from the source when
/// this crate is compiled, so kernel and launch cannot disagree.
const BN: u32 = match kernelyard_kernels::source::define_value(
    include_str!("../../kernels/gemm_bi_sm90.cu"),
    b"#define KY_SM90_FP8_BN ",
) {
    Some(n @ (128 | 160 | 176 | 192)) => n as u32,
    _ => panic!("gemm_bi_sm90.cu: `#define KY_SM90_FP8_BN <128 | 160 | 176 | 192>` is missing"),
};
/// The narrow tile width: the second half of [`SCALED_MODULES`] is compiled with it.
const BN_NARROW: u32 = 176;
/// The widest `n` that takes the narrow tile ([`tile_n`]).
const NARROW_MAX_N: usize = 4096;

/// The tile width of a problem with `n` columns: [`BN_NARROW`] up to [`NARROW_MAX_N`] unless
/// [`BN`] divides `n`, else [`BN`]. A function of `n` alone, so no M changes the kernel a row
/// runs (batch invariance; each element is summed the same way at either width, in k order).
/// Why, measured on an H100 at m = k = 4096 (sixteenth and seventeenth sessions): at n = 4096,
/// 704 tiles of 128 x 192 make 5.3 waves on 132 SMs (the last a third full) and 768 of 128 x 176
/// make 5.8: 176 was 4-7 % faster there, 6 % at n = 2048 and 3-10 % at M = 128; but at
/// n = 3072, which 192 divides (16 tiles a row, against 17.5 of 176), 192 was 12 % faster; and
/// above 4096 columns 192 was as fast or faster (1-4 %, n = 5120 .. 8192; 1 % slower at 14336).
const fn tile_n(n: usize) -> u32 {
    if n <= NARROW_MAX_N && !n.is_multiple_of(BN as usize) {
        BN_NARROW
    } else {
        BN
    }
}
/// k per stage: one 128-byte swizzle row of one-byte elements.
const BK: u32 = 128;
/// Threads per block: one producer and two consumer warpgroups.
const THREADS: u32 = 384;
/// Blocks per thread-block cluster: the .cu's `KY_SM90_FP8_CLUSTER` (a unit test keeps them
/// equal). With 2, a cluster's two blocks take vertically adjacent tiles and each multicasts
/// half of their shared B box into both.
const CLUSTER: u32 = 1;
/// Stages of the TMA ring at tile width `bn`: as many as 227 KiB hold beside the alignment
/// slack and barriers, at most six (the .cu's `STAGES8`, the same formula): 6 at N = 128 and
/// 160, 5 at 176 and 192.
const fn stages(bn: u32) -> u64 {
    if shared_bytes(6, bn) <= 227 * 1024 {
        6
    } else {
        5
    }
}
/// Dynamic shared memory of `stages` stages at tile width `bn`: the stages (A's `BM x BK` and
/// B's `bn x BK` bytes each), 1 KiB of slack for the 1024-byte alignment the 128-byte swizzle
/// needs, and a full and an empty barrier (8 bytes each) per stage.
const fn shared_bytes(stages: u64, bn: u32) -> u64 {
    stages * ((BM + bn) as u64 * BK as u64) + 1024 + stages * 2 * 8
}
/// The dynamic shared memory of a problem with `n` columns: 205 904 bytes at N = 192 and
/// 195 664 at 176, inside an H100's 227 KiB opt-in.
const fn shared_bytes_of(n: usize) -> u64 {
    let bn = tile_n(n);
    shared_bytes(stages(bn), bn)
}

/// Per-tensor or per-row scales, k a multiple of 16, out rows of a multiple of 16 bytes, sizes
/// TMA's 32-bit coordinates and the tile index hold, bf16 (for a bf16 out or bias), and the
/// shared memory.
fn check(caps: &Capabilities, p: &ScaledGemmProblem, reasons: &mut Vec<Reason>) {
    for (arg, mode) in [("scale_a", p.scale_a), ("scale_b", p.scale_b)] {
        if mode == ScaleMode::Block {
            reasons.push(Reason::ShapeUnsupported {
                what: format!(
                    "{arg} per {mode}: this kernel takes per-tensor and per-row scales (block \
                     scales need a second set of accumulators to promote each k-block)"
                ),
            });
        }
    }
    if !p.k.is_multiple_of(16) {
        reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "k = {}: TMA copies rows of a multiple of 16 bytes (k a multiple of 16)",
                p.k
            ),
        });
    }
    // Out's rows must keep the 16-byte alignment the kernel declares whatever M is: with one
    // row the problem's alignment ignores the row stride, and acceptance must not depend on M.
    let row_bytes = p.n.saturating_mul(p.out_dtype.size());
    if !row_bytes.is_multiple_of(16) {
        reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "n = {}: out's rows ({row_bytes} bytes of {}) are not a multiple of 16 bytes",
                p.n, p.out_dtype
            ),
        });
    }
    if [p.m, p.n, p.k, tiles(p).unwrap_or(usize::MAX)]
        .iter()
        .any(|&d| d > i32::MAX as usize)
    {
        reasons.push(Reason::ShapeUnsupported {
            what: "m, n, k or the tile count above 2^31 - 1".to_owned(),
        });
    }
    let bf16 = p.out_dtype == DType::BF16 || (p.bias && p.out_dtype == DType::F32);
    if bf16 && !caps.has(Feature::Bf16) {
        reasons.push(Reason::MissingFeature {
            feature: Feature::Bf16,
        });
    }
    let need = shared_bytes_of(p.n);
    if need > caps.shared_mem_per_block_optin {
        reasons.push(Reason::SharedMemory {
            need,
            have: caps.shared_mem_per_block_optin,
        });
    }
}

/// Tiles of out, if that count fits a `usize`.
fn tiles(p: &ScaledGemmProblem) -> Option<usize> {
    p.m.div_ceil(BM as usize)
        .checked_mul(p.n.div_ceil(tile_n(p.n) as usize))
}

/// Blocks to launch: one per schedule unit (`cluster` vertically adjacent tiles) up to what
/// the device's multiprocessors hold at one block each, a multiple of `cluster`.
fn grid(p: &ScaledGemmProblem, sms: usize, cluster: u32) -> u32 {
    let cluster = cluster.max(1) as usize;
    let units =
        p.m.div_ceil(BM as usize * cluster)
            .saturating_mul(p.n.div_ceil(tile_n(p.n) as usize));
    let clusters = units.min(sms / cluster).max(1);
    // At most max(`sms`, `cluster`) blocks: fits u32.
    (clusters * cluster) as u32
}

/// Loads the problem's module (compiling it on first use), so no launch compiles.
fn prepare(_: &KernelMeta, ctx: &LaunchCtx<'_>, p: &ScaledGemmProblem) -> Result<(), Error> {
    crate::device::load_symbols(ctx.stream.device(), entry(p)?)
}

/// The module of the problem's operand pair and out dtype (its one entry point).
fn entry(p: &ScaledGemmProblem) -> Result<&'static KernelSource, Error> {
    let fp8 = |d: DType| match d {
        DType::F8E4M3 => Some(0),
        DType::F8E5M2 => Some(1),
        _ => None,
    };
    let out = match p.out_dtype {
        DType::BF16 => Some(0),
        DType::F16 => Some(1),
        DType::F32 => Some(2),
        _ => None,
    };
    match (fp8(p.dtype), fp8(p.b_dtype), out) {
        (Some(a), Some(b), Some(c)) => {
            // The file's width: the first twelve modules; the narrow one: the next twelve.
            let half = if tile_n(p.n) == BN { 0 } else { 12 };
            Ok(&SCALED_MODULES[half + 3 * (2 * a + b) + c])
        }
        _ => Err(CudaError::Misuse {
            what: format!(
                "{} on {} x {} -> {}",
                META.name, p.dtype, p.b_dtype, p.out_dtype
            ),
        }
        .into()),
    }
}

/// A `[rows, k]` K-major FP8 operand as TMA sees it: boxes of 128 k by `box_rows` rows.
fn operand(rows: usize, k: usize, box_rows: u32) -> Operand {
    Operand {
        dims: [k, rows, 1],
        row_stride: k,
        batch_stride: rows.saturating_mul(k),
        box_dims: [BK, box_rows],
    }
}

fn launch(
    ctx: &LaunchCtx<'_>,
    a: &mut ScaledGemmArgs<'_>,
    p: &ScaledGemmProblem,
) -> Result<(), Error> {
    let module = entry(p)?;
    let (a_ptr, b_ptr) = (a.a.as_ptr(), a.b.as_ptr());
    let map_a = tensor_map(p.dtype, a_ptr, operand(p.m, p.k, BM))?;
    // With clusters each block loads its share of B's rows (and multicasts it).
    let map_b = tensor_map(p.b_dtype, b_ptr, operand(p.n, p.k, tile_n(p.n) / CLUSTER))?;
    let out = a.out.as_mut_ptr();
    let (m, n, k) = (p.m as i64, p.n as i64, p.k as i64);
    let (scale_a, scale_b) = (a.scale_a.as_ptr(), a.scale_b.as_ptr());
    let rows = i32::from(p.scale_a == ScaleMode::Row);
    let bias = a.bias.as_ref().map_or(std::ptr::null(), |b| b.as_ptr());
    // The bias is f16 next to an f16 out, bf16 otherwise (core's `bias_dtypes`).
    let bias_f16 = i32::from(p.out_dtype == DType::F16);
    let sms = ctx.caps.multiprocessors.max(1) as usize;
    let grid = grid(p, sms, CLUSTER);
    let dims = Dims {
        grid: (grid, 1, 1),
        block: (THREADS, 1, 1),
        shared_bytes: shared_bytes_of(p.n) as u32,
    };
    // The parameters match `scaled_gemm_sm90_*(KyTensorMap x2, void*, long long x3,
    // const float* x2, int, const void*, int)`. The maps describe A `[m, k]` and B `[n, k]`
    // exactly as core validated them (contiguous FP8 of those shapes on this device; 16-byte
    // aligned pointers, the kernel's `align`, and k a multiple of 16, its check), and TMA
    // reads only inside them. `out` is a contiguous `[m, n]` view of the module's out dtype,
    // written only inside it (stores are predicated on m and n; pairs only when n is even).
    // The scales are f32 views of one element each (per tensor) or of m and n (per row, with
    // `rows`: core checked the shapes against the modes, which are equal here: core accepts
    // only equal pairs and the check refuses block); the bias, when present, is `[n]` of the
    // dtype `bias_f16` names (f16 for an f16 out, else bf16: core's `bias_dtypes`).
    let params = &mut kernelyard_kernels::params![
        map_a, map_b, out, m, n, k, scale_a, scale_b, rows, bias, bias_f16
    ];
    // SAFETY: the parameters are as said above; with clusters, the kernel is compiled for
    // clusters of `CLUSTER` (the unit test `the_tile_width_and_cluster_are_the_sources`) and
    // the grid is a multiple of it.
    unsafe {
        if CLUSTER == 1 {
            launch::launch(ctx.stream, module, module.symbols[0], dims, params)
        } else {
            // Persistent: the kernel loops over its units by cluster index.
            launch::launch_cluster(
                ctx.stream,
                module,
                module.symbols[0],
                dims,
                CLUSTER,
                true,
                params,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::scaled_gemm::test_problem as problem;

    #[test]
    fn modules_follow_the_operand_pair() {
        let mut p = problem(1, 256, 128);
        let symbol = |p: &ScaledGemmProblem| entry(p).unwrap().symbols[0];
        assert_eq!(symbol(&p), "scaled_gemm_sm90_e4m3_e4m3_bf16");
        p.b_dtype = DType::F8E5M2;
        assert_eq!(symbol(&p), "scaled_gemm_sm90_e4m3_e5m2_bf16");
        p.dtype = DType::F8E5M2;
        assert_eq!(symbol(&p), "scaled_gemm_sm90_e5m2_e5m2_bf16");
        p.b_dtype = DType::F8E4M3;
        assert_eq!(symbol(&p), "scaled_gemm_sm90_e5m2_e4m3_bf16");
        p.out_dtype = DType::F32;
        assert_eq!(symbol(&p), "scaled_gemm_sm90_e5m2_e4m3_f32");
        p.out_dtype = DType::F16;
        assert_eq!(symbol(&p), "scaled_gemm_sm90_e5m2_e4m3_f16");
        p.dtype = DType::F8E4M3;
        assert_eq!(symbol(&p), "scaled_gemm_sm90_e4m3_e4m3_f16");
        p.out_dtype = DType::I32;
        assert!(entry(&p).is_err());
        p.out_dtype = DType::BF16;
        p.dtype = DType::BF16;
        assert!(entry(&p).is_err());
    }

    #[test]
    fn operands_are_k_major_boxes_of_128_bytes() {
        assert_eq!(
            operand(3, 4096, BM),
            Operand {
                dims: [4096, 3, 1],
                row_stride: 4096,
                batch_stride: 3 * 4096,
                box_dims: [128, 128],
            }
        );
        assert_eq!(operand(14336, 4096, BN).box_dims, [128, BN]);
    }

    #[test]
    fn shared_memory_is_as_many_stages_as_fit() {
        // The .cu's STAGES8 * STAGE8_BYTES + 1024 + barriers, at each tile width.
        assert_eq!(
            shared_bytes(stages(192), 192),
            5 * 40 * 1024 + 1024 + 5 * 2 * 8
        );
        assert_eq!(shared_bytes(stages(192), 192), 205_904);
        for (bn, want) in [(128, 6), (160, 6), (176, 5), (192, 5)] {
            assert_eq!(stages(bn), want, "N = {bn}");
            assert!(shared_bytes(stages(bn), bn) <= 227 * 1024, "N = {bn}");
            assert!(shared_bytes(stages(bn) + 1, bn) > 227 * 1024 || stages(bn) == 6);
        }
        assert_eq!(shared_bytes_of(4096), 195_664);
        assert_eq!(shared_bytes_of(4097), shared_bytes(stages(BN), BN));
    }

    #[test]
    fn the_tile_width_and_cluster_are_the_sources() {
        for (i, module) in SCALED_MODULES.iter().enumerate() {
            // The first `#define KY_SM90_FP8_BN` of a module's text is the width it compiles
            // with: the file's for the first twelve, the narrow one before the file for the
            // rest.
            let want = if i < 12 { BN } else { BN_NARROW };
            assert_eq!(
                kernelyard_kernels::source::define_value(module.code, b"#define KY_SM90_FP8_BN "),
                Some(want as usize),
                "{}",
                module.file
            );
            assert!(module
                .code
                .contains(&format!("#define KY_SM90_FP8_CLUSTER {CLUSTER}\n")));
        }
    }

    #[test]
    fn the_tile_width_depends_on_n_alone() {
        assert_eq!(tile_n(1), BN_NARROW);
        assert_eq!(tile_n(2048), BN_NARROW);
        assert_eq!(tile_n(4096), BN_NARROW);
        assert_eq!(tile_n(3072), BN);
        assert_eq!(tile_n(192), BN);
        assert_eq!(tile_n(4097), BN);
        assert_eq!(tile_n(14336), BN);
        for m in [1, 128, 4096, 8192] {
            let narrow = entry(&problem(m, 4096, 4096)).unwrap();
            let wide = entry(&problem(m, 8192, 4096)).unwrap();
            assert_eq!(narrow.file, "gemm_bi_sm90.e4m3_e4m3_bf16.n176.cu");
            assert_eq!(wide.file, "gemm_bi_sm90.e4m3_e4m3_bf16.cu");
            assert_eq!(narrow.symbols, wide.symbols);
        }
    }

    #[test]
    fn the_grid_is_whole_clusters_up_to_the_multiprocessors() {
        let g = |m, n, sms, cluster| grid(&problem(m, n, 4096), sms, cluster);
        let n_tiles = 4096usize.div_ceil(BN_NARROW as usize) as u32;
        assert_eq!(g(1, 4096, 132, 1), n_tiles);
        assert_eq!(g(1, 4096, 132, 2), 2 * n_tiles);
        // 129 rows: two tiles, one unit of two.
        assert_eq!(g(129, 4096, 132, 1), 2 * n_tiles);
        assert_eq!(g(129, 4096, 132, 2), 2 * n_tiles);
        assert_eq!(g(8192, 8192, 132, 1), 132);
        assert_eq!(g(8192, 8192, 132, 2), 132);
        assert_eq!(g(8192, 8192, 131, 2), 130);
        assert_eq!(g(1, 192, 1, 2), 2);
    }

    #[test]
    fn nothing_but_the_dtypes_chooses_the_entry_point() {
        // M changes the grid (at most one block per tile and per SM), never the module.
        let small = entry(&problem(1, 4096, 4096)).unwrap().file;
        let large = entry(&problem(8192, 4096, 4096)).unwrap().file;
        assert_eq!(small, large);
        assert_eq!(tiles(&problem(1, 4096, 4096)), Some(24));
        assert_eq!(tiles(&problem(129, 4096, 4096)), Some(48));
        assert_eq!(tiles(&problem(129, 8192, 4096)), Some(2 * 43));
    }
}
