//! `cuda.scaled_gemm.fp4.cublaslt`: the block-scaled FP4 GEMM
//! `out = (scale_a * A) @ (scale_b * B)^T (+ bias)` through cuBLASLt, for NVFP4 (16-value
//! blocks, e4m3 scales) and MXFP4 (32-value blocks, e8m0 scales), declared for sm_100
//! (Blackwell) and newer.
//!
//! **It has never run on hardware.** The machines this project tests on are Hopper (sm_90),
//! where cuBLASLt has no FP4 matmul and selection refuses this kernel with `ArchTooOld`. What is
//! tested: selection on simulated devices (`tests/scaled_gemm_selection.rs`), the tiled-scale
//! index math on the CPU (below), and that `kernels/scaled_gemm_fp4.cu` compiles with NVRTC for
//! sm_100a and sm_120 (CI's compile matrix). The suite's FP4 cases run on the reference backend
//! and report this kernel as skipped (no device of its range). The launch sequence follows the
//! FP8 kernel's, which passes the suite on an H100; the first Blackwell run must check it.
//!
//! - **Layout, types, bias, plans, handle, CUDA graphs:** those of `cuda.scaled_gemm.cublaslt`
//!   ([`crate::ops::scaled_gemm`]: TN, cuBLASLt's A is our B, f32 compute, bias epilogue, plan
//!   cache of layouts and algorithm keyed by (device, problem), a descriptor per launch). A and
//!   B are `CUDA_R_4F_E2M1` (packed pairs, the first value in the low nibble, as kernelyard's
//!   [`DType::F4E2M1X2`]); the layouts count values (k), not bytes. Only CUDA 12.8+ bindings
//!   name that type and the scale modes (`crate::lt_ext`): with older bindings the kernel is
//!   refused with a reason that says so, as with a cuBLASLt older than 12.8.
//! - **Scales.** The scale modes are `VEC16_UE4M3` (NVFP4) or `VEC32_UE8M0` (MXFP4) on both
//!   sides (`A_SCALE_MODE` / `B_SCALE_MODE`). cuBLASLt reads block scales in its tiled layout
//!   (the cuBLAS docs' "1D block scaling factors layout": 128 x 4 tiles, [`tiled_offset`]),
//!   kernelyard's are row-major `[rows, ceil(k/block)]`; so each launch first rearranges both
//!   into the stream's workspace with `fp4_scales_to_tiles` (`kernels/scaled_gemm_fp4.cu`, one
//!   small launch per operand, padding written as 0), then runs the matmul with the scale
//!   pointers on those copies. NVFP4's per-tensor global scale is not an argument of the op
//!   (alpha stays 1; see `kernelyard_core::ops::scaled_gemm`).
//! - **Workspace.** The stream's workspace ([`WORKSPACE_BYTES`]) is split: its end holds the
//!   two tiled scale tensors (each rounded up to 256 bytes), the rest is cuBLASLt's, and the
//!   heuristic is told that size ([`Split`]). Problems whose tiled scales exceed half the
//!   workspace (16 MiB: about `(m + n) * ceil(k/block)` bytes) are refused with a reason: NVFP4
//!   at k = 4096 takes m + n up to about 65k, at k = 16384 up to about 16k. A dedicated scale
//!   buffer per stream (or accepting pre-tiled scales) would lift this; not done.
//! - **Sizes.** k a multiple of 32 (16-byte rows of pairs; whole blocks of both formats) and n
//!   a multiple of 16 (16-byte rows of `out`), as the FP8 kernel; `align = 16`. m is free.
//! - **Not declared deterministic or batch-invariant:** cuBLASLt's algorithm depends on M.

use std::ffi::c_void;

use kernelyard_core::ops::scaled_gemm::{ScaledGemm, ScaledGemmArgs, ScaledGemmProblem};
use kernelyard_core::{
    ArchReq, Capabilities, DType, DeviceKind, Error, Feature, KernelDef, KernelMeta, LaunchCtx,
    Reason, Sm, Stream, Version,
};

use crate::device::{bind, cublaslt_version};
use crate::error::CudaError;
use crate::launch::{launch as launch_entry, Dims};
use crate::libs::BINDINGS;
use crate::lt_ext;
use crate::ops::gemm::{check_available, handle, workspace, WORKSPACE_BYTES};
use crate::ops::scaled_gemm::{enqueue, plan, Pointers};
use crate::source::KernelSource;

/// The scale-rearranging kernel (`fp4_scales_to_tiles`); the matmul itself is cuBLASLt's.
pub(crate) static SOURCE: KernelSource = KernelSource {
    file: "scaled_gemm_fp4.cu",
    code: include_str!("../../kernels/scaled_gemm_fp4.cu"),
    symbols: &[TILES_SYMBOL],
};

const TILES_SYMBOL: &str = "fp4_scales_to_tiles";

/// The `cuda.scaled_gemm.fp4.cublaslt` kernel.
pub static SCALED_GEMM_FP4_CUBLASLT: KernelDef<ScaledGemm> =
    KernelDef::<ScaledGemm>::new(META, launch)
        .with_check(check)
        .with_prepare(prepare);
kernelyard_core::register!(SCALED_GEMM_FP4_CUBLASLT);

/// FP4 tensor cores with block scaling: sm_100 (Blackwell) and newer (sm_120 included).
const SM100_AND_NEWER: ArchReq = ArchReq::Cuda {
    min: Sm::new(10, 0),
    max: None,
    arch_specific: false,
};

const META: KernelMeta = KernelMeta::new::<ScaledGemm>(
    "cuda.scaled_gemm.fp4.cublaslt",
    crate::BACKEND,
    DeviceKind::Cuda,
    SM100_AND_NEWER,
    module_path!(),
    "cuBLASLt block-scaled FP4 matmul (NVFP4, MXFP4; sm_100+; scales tiled by an NVRTC kernel \
     first); never run on hardware",
)
.dtypes(DType::FP4)
.align(16)
.nondeterministic();

/// The cuBLASLt version that brought block-scaled FP4 matmuls.
const FP4_SINCE: Version = Version::new(12, 8, 0);

/// Rows of one tile of the tiled scale layout.
pub const TILE_ROWS: usize = 128;
/// Columns (scales along k) of one tile.
pub const TILE_COLS: usize = 4;
/// Bytes of one tile (one byte per scale).
pub const TILE_BYTES: usize = TILE_ROWS * TILE_COLS;

/// The offset in the tiled layout of the scale at (`row`, `col`) of a row-major `[rows, cols]`
/// scale matrix: tiles of 128 x 4 in row-major order, and inside a tile row `r`, column `c` at
/// `(r % 32) * 16 + (r / 32) * 4 + c` (cuBLAS's "1D block scaling factors layout", PyTorch's
/// `to_blocked`). The CPU mirror of `fp4_scales_to_tiles`' index math.
pub fn tiled_offset(row: usize, col: usize, cols: usize) -> usize {
    let tile = (row / TILE_ROWS) * cols.div_ceil(TILE_COLS) + col / TILE_COLS;
    let r = row % TILE_ROWS;
    tile * TILE_BYTES + (r % 32) * 16 + (r / 32) * 4 + col % TILE_COLS
}

/// The (row, col) whose scale goes to offset `o` of the tiled layout of a `cols`-column scale
/// matrix: the inverse of [`tiled_offset`], as `fp4_scales_to_tiles` computes it per output
/// byte (a row or column past the matrix is padding, written as 0).
pub fn tiled_source(o: usize, cols: usize) -> (usize, usize) {
    let col_tiles = cols.div_ceil(TILE_COLS);
    let (tile, within) = (o / TILE_BYTES, o % TILE_BYTES);
    let r = within / 16 + ((within / 4) % 4) * 32;
    let c = within % 4;
    (
        (tile / col_tiles) * TILE_ROWS + r,
        (tile % col_tiles) * TILE_COLS + c,
    )
}

/// Bytes of the tiled layout of a `[rows, cols]` scale matrix (padded to whole tiles), if that
/// fits a `usize`.
pub fn tiled_len(rows: usize, cols: usize) -> Option<usize> {
    rows.div_ceil(TILE_ROWS)
        .checked_mul(cols.div_ceil(TILE_COLS))?
        .checked_mul(TILE_BYTES)
}

/// Alignment of each tiled scale tensor in the workspace (cuBLASLt wants 16 bytes; 256 keeps
/// them apart from cuBLASLt's part on cache-line boundaries).
const SCALE_ALIGN: usize = 256;

/// How one launch splits the stream's workspace: cuBLASLt gets `[0, lt_bytes)`, A's tiled
/// scales start at `a_offset` and B's at `b_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Bytes cuBLASLt may use (a multiple of 256).
    pub lt_bytes: usize,
    /// Offset of A's tiled scales.
    pub a_offset: usize,
    /// Offset of B's tiled scales.
    pub b_offset: usize,
}

/// `p`'s split of the workspace, or `None` when its tiled scales exceed half of it (or `p`'s
/// scales are not an FP4 mode, which core never pairs with FP4 operands).
pub fn split(p: &ScaledGemmProblem) -> Option<Split> {
    let block = p.scale_a.fp4_block()?;
    let sf_k = p.k.div_ceil(block);
    let a = tiled_len(p.m, sf_k)?.checked_next_multiple_of(SCALE_ALIGN)?;
    let b = tiled_len(p.n, sf_k)?.checked_next_multiple_of(SCALE_ALIGN)?;
    let scales = a.checked_add(b)?;
    if scales > WORKSPACE_BYTES / 2 {
        return None;
    }
    let lt_bytes = (WORKSPACE_BYTES - scales) / SCALE_ALIGN * SCALE_ALIGN;
    Some(Split {
        lt_bytes,
        a_offset: lt_bytes,
        b_offset: lt_bytes + a,
    })
}

/// What the kernel cannot take, each with its reason: cuBLASLt missing or older than 12.8,
/// bindings that cannot name FP4 (older than CUDA 12.8), bf16 without the feature, k not a
/// multiple of 32, n not a multiple of 16, a dimension above `i32::MAX`, tiled scales beyond
/// half the workspace. The architecture (sm_100+) and the dtype (FP4 operands) are the
/// metadata's.
fn check(caps: &Capabilities, p: &ScaledGemmProblem, reasons: &mut Vec<Reason>) {
    check_available(reasons);
    let lt_backend = "cuda (cuBLASLt)";
    if !lt_ext::BINDINGS_HAVE_SCALE_MODES {
        reasons.push(Reason::BackendUnavailable {
            backend: lt_backend,
            why: format!(
                "block-scaled FP4 needs CUDA 12.8+ bindings to name CUDA_R_4F_E2M1 and the \
                 scale modes; this build has CUDA {BINDINGS} bindings"
            ),
        });
    }
    if let Ok(v) = cublaslt_version() {
        if *v < FP4_SINCE {
            reasons.push(Reason::BackendUnavailable {
                backend: lt_backend,
                why: format!("cuBLASLt {v} has no block-scaled FP4 matmul ({FP4_SINCE}+)"),
            });
        }
    }
    if (p.out_dtype == DType::BF16 || (p.bias && p.out_dtype == DType::F32))
        && !caps.has(Feature::Bf16)
    {
        reasons.push(Reason::MissingFeature {
            feature: Feature::Bf16,
        });
    }
    for (dim, value, multiple, why) in [
        (
            "k",
            p.k,
            32,
            "16-byte rows of FP4 pairs and whole NVFP4/MXFP4 blocks",
        ),
        ("n", p.n, 16, "16-byte rows of out"),
    ] {
        if value % multiple != 0 {
            reasons.push(Reason::ShapeUnsupported {
                what: format!(
                    "{dim} = {value}: cuBLASLt's block-scaled FP4 matmul takes {dim} a multiple \
                     of {multiple} ({why})"
                ),
            });
        }
    }
    if [p.m, p.n, p.k].iter().any(|&d| d > i32::MAX as usize) {
        reasons.push(Reason::ShapeUnsupported {
            what: "a dimension above 2^31 - 1".to_owned(),
        });
    } else if p.scale_a.is_fp4() && split(p).is_none() {
        // (FP8 problems have no split; their dtype reason, from the metadata, says enough.)
        reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "the block scales of m = {} and n = {} rows in cuBLASLt's tiled layout exceed \
                 half the {WORKSPACE_BYTES}-byte stream workspace: split the problem along m or n",
                p.m, p.n
            ),
        });
    }
}

/// Loads `fp4_scales_to_tiles`, makes the handle, `ctx.stream`'s workspace and the plan, so a
/// launch makes nothing that needs the stream.
fn prepare(meta: &KernelMeta, ctx: &LaunchCtx<'_>, p: &ScaledGemmProblem) -> Result<(), Error> {
    crate::ops::prepare_nvrtc::<ScaledGemm>(meta, ctx, p)?;
    let stream = ctx.stream;
    bind(stream.device())?;
    let handle = handle(stream)?;
    let ws = workspace(stream)?;
    plan(stream, handle, p, ws.ptr, split_of(p)?.lt_bytes)?;
    Ok(())
}

/// [`split`], or the misuse error of a launch `check` would have refused.
fn split_of(p: &ScaledGemmProblem) -> Result<Split, Error> {
    split(p).ok_or_else(|| {
        CudaError::Misuse {
            what: format!("{} launched for {p:?}", META.name),
        }
        .into()
    })
}

/// Rearranges a row-major `[rows, cols]` byte matrix at `src` into the tiled layout at `dst`
/// (`tiled_len(rows, cols)` bytes).
///
/// # Safety
/// `src` must hold `rows * cols` bytes and `dst` `tiled_len(rows, cols)` bytes of device memory
/// on `stream`'s device, `dst` not overlapping `src`, both alive until the launch completes.
unsafe fn to_tiles(
    stream: &Stream,
    src: *const c_void,
    dst: *mut c_void,
    rows: usize,
    cols: usize,
) -> Result<(), Error> {
    const THREADS: u32 = 256;
    let bytes = tiled_len(rows, cols).unwrap_or(0);
    // A grid-stride loop: at most 4096 blocks, each thread a few bytes on large problems.
    let blocks = bytes.div_ceil(THREADS as usize).clamp(1, 4096) as u32;
    let (rows, cols) = (rows as i64, cols as i64);
    let dims = Dims {
        grid: (blocks, 1, 1),
        block: (THREADS, 1, 1),
        shared_bytes: 0,
    };
    // SAFETY: `fp4_scales_to_tiles(const void*, void*, long long, long long)` takes these four
    // parameters; the pointers are valid as the caller promised.
    unsafe {
        launch_entry(
            stream,
            &SOURCE,
            TILES_SYMBOL,
            dims,
            &mut kernelyard_kernels::params![src, dst, rows, cols],
        )
    }
}

fn launch(
    ctx: &LaunchCtx<'_>,
    a: &mut ScaledGemmArgs<'_>,
    p: &ScaledGemmProblem,
) -> Result<(), Error> {
    let stream = ctx.stream;
    bind(stream.device())?;
    let handle = handle(stream)?;
    let split = split_of(p)?;
    let block = p.scale_a.fp4_block().unwrap_or(1);
    let sf_k = p.k.div_ceil(block);
    // Held until the matmul is enqueued: the tiled scales and cuBLASLt's part live in it.
    let ws = workspace(stream)?;
    let tiled_a = (ws.ptr as usize + split.a_offset) as *mut c_void;
    let tiled_b = (ws.ptr as usize + split.b_offset) as *mut c_void;
    // SAFETY: core validated `scale_a` as `[m, sf_k]` and `scale_b` as `[n, sf_k]` one-byte
    // scales on this device; `split` placed the two tiled copies (`tiled_len` bytes each,
    // rounded up) after cuBLASLt's part of the stream's own workspace, which work on this
    // stream uses in order and which we hold.
    unsafe {
        to_tiles(stream, a.scale_a.as_ptr(), tiled_a, p.m, sf_k)?;
        to_tiles(stream, a.scale_b.as_ptr(), tiled_b, p.n, sf_k)?;
    }
    let plan = plan(stream, handle, p, ws.ptr, split.lt_bytes)?;
    let pointers = Pointers {
        scale_b: tiled_b.cast_const(),
        scale_a: tiled_a.cast_const(),
        bias: a.bias.as_ref().map(|b| b.as_ptr()),
    };
    // SAFETY: as in `cuda.scaled_gemm.cublaslt`'s launch: the plan was made for `p` and the
    // pointers are `p`'s (FP4 A and B in values, the FP4 scale modes, the tiled scales written by
    // the two launches above on the same stream; the plan with `split.lt_bytes` of
    // workspace); the workspace given to cuBLASLt is the first `split.lt_bytes` bytes of the
    // held stream workspace, disjoint from the tiled scales.
    unsafe {
        enqueue(
            stream,
            handle,
            p,
            &plan,
            &pointers,
            a,
            (ws.ptr, split.lt_bytes),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard_core::ops::scaled_gemm::ScaleMode;

    /// The tiled layout built the way the cuBLAS docs and PyTorch's `to_blocked` describe it:
    /// pad to whole 128 x 4 tiles, take the tiles row-major, view each as [4][32][4]
    /// (row / 32, row % 32, col) and store it as [32][4][4]. Entry `o` is the (row, col) stored
    /// there, `None` for padding.
    fn documented(rows: usize, cols: usize) -> Vec<Option<(usize, usize)>> {
        let (rt, ct) = (rows.div_ceil(128), cols.div_ceil(4));
        let mut out = Vec::new();
        for tr in 0..rt {
            for tc in 0..ct {
                for r_lo in 0..32 {
                    for r_hi in 0..4 {
                        for c in 0..4 {
                            let (row, col) = (tr * 128 + r_hi * 32 + r_lo, tc * 4 + c);
                            out.push((row < rows && col < cols).then_some((row, col)));
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn tiled_layout_matches_the_documented_one() {
        for (rows, cols) in [(1, 1), (128, 4), (130, 6), (37, 32), (256, 3), (300, 9)] {
            let doc = documented(rows, cols);
            assert_eq!(Some(doc.len()), tiled_len(rows, cols), "{rows} x {cols}");
            for (o, &want) in doc.iter().enumerate() {
                let (row, col) = tiled_source(o, cols);
                let got = (row < rows && col < cols).then_some((row, col));
                assert_eq!(got, want, "{rows} x {cols}: offset {o}");
                if let Some((row, col)) = want {
                    assert_eq!(
                        tiled_offset(row, col, cols),
                        o,
                        "{rows} x {cols}: ({row}, {col})"
                    );
                }
            }
        }
    }

    #[test]
    fn tiled_offsets_by_hand() {
        // Inside the first tile: column c at c, row r < 32 at 16 r, row 32 at 4.
        assert_eq!(tiled_offset(0, 1, 4), 1);
        assert_eq!(tiled_offset(1, 0, 4), 16);
        assert_eq!(tiled_offset(32, 0, 4), 4);
        assert_eq!(tiled_offset(127, 3, 4), 31 * 16 + 3 * 4 + 3);
        // The next tile along k, then the next along rows: 512 bytes each.
        assert_eq!(tiled_offset(0, 4, 8), 512);
        assert_eq!(tiled_offset(128, 0, 8), 2 * 512);
        assert_eq!(tiled_offset(128, 0, 3), 512);
        assert_eq!(tiled_len(129, 5), Some(2 * 2 * 512));
        assert_eq!(tiled_len(usize::MAX, usize::MAX), None);
    }

    /// The device kernel against [`tiled_offset`]: any CUDA GPU runs it (plain CUDA), so this
    /// checks on a Hopper what the FP4 matmul will read on a Blackwell. Padding is written as 0
    /// over a sentinel.
    #[test]
    #[ignore = "requires a CUDA device (any architecture)"]
    fn the_tiling_kernel_matches_tiled_offset_on_a_device() {
        use kernelyard_core::{DeviceId, Runtime, F8E8M0};
        crate::link();
        let rt = Runtime::new().expect("runtime");
        let device = DeviceId::cuda(0);
        let stream = rt.default_stream(device).expect("stream");
        for (rows, cols) in [(1, 1), (37, 64), (128, 4), (300, 9), (129, 130)] {
            let src: Vec<F8E8M0> = (0..rows * cols)
                .map(|i| F8E8M0::from_bits((i % 251 + 1) as u8))
                .collect();
            let len = tiled_len(rows, cols).unwrap();
            let mut s = rt.alloc(device, src.len()).unwrap();
            s.upload(&src).unwrap();
            let mut d = rt.alloc(device, len).unwrap();
            d.upload(&vec![F8E8M0::from_bits(0xAA); len]).unwrap();
            bind(device).unwrap();
            // SAFETY: `s` holds rows * cols bytes and `d` tiled_len(rows, cols), both on
            // `device`, alive until the synchronisation below.
            unsafe {
                to_tiles(
                    &stream,
                    s.as_ptr().cast(),
                    d.as_mut_ptr().cast(),
                    rows,
                    cols,
                )
                .unwrap();
            }
            rt.synchronize(&stream).unwrap();
            let got = d.download::<F8E8M0>(len).unwrap();
            let mut want = vec![0u8; len];
            for row in 0..rows {
                for col in 0..cols {
                    want[tiled_offset(row, col, cols)] = src[row * cols + col].to_bits();
                }
            }
            let got: Vec<u8> = got.iter().map(|x| x.to_bits()).collect();
            assert_eq!(got, want, "{rows} x {cols}");
        }
    }

    fn problem(m: usize, n: usize, k: usize, mode: ScaleMode) -> ScaledGemmProblem {
        ScaledGemmProblem {
            m,
            n,
            k,
            dtype: DType::F4E2M1X2,
            b_dtype: DType::F4E2M1X2,
            out_dtype: DType::BF16,
            scale_a: mode,
            scale_b: mode,
            bias: false,
            align: 16,
        }
    }

    #[test]
    fn the_workspace_split_keeps_the_tiled_scales_apart() {
        // m = 37 (one row tile), n = 256 (two), k = 1024: NVFP4 64 scales a row (16 column
        // tiles), MXFP4 32 (8).
        let s = split(&problem(37, 256, 1024, ScaleMode::Nvfp4)).unwrap();
        let (a, b) = (16 * 512, 2 * 16 * 512);
        assert_eq!(s.a_offset, s.lt_bytes);
        assert_eq!(s.b_offset, s.a_offset + a);
        assert_eq!(s.b_offset + b, WORKSPACE_BYTES);
        assert_eq!(s.lt_bytes % SCALE_ALIGN, 0);
        let s = split(&problem(37, 256, 1024, ScaleMode::Mxfp4)).unwrap();
        assert_eq!(s.b_offset - s.a_offset, 8 * 512);
        // An FP8 mode has no FP4 split; scales beyond half the workspace have none.
        assert_eq!(split(&problem(8, 16, 64, ScaleMode::Tensor)), None);
        assert_eq!(
            split(&problem(1 << 17, 1 << 17, 1 << 14, ScaleMode::Nvfp4)),
            None
        );
    }
}
