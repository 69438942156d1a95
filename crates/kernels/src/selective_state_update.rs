//! The source of the Mamba decode-step kernels, `kernels/selective_state_update.cu` (one step
//! of `mamba_ssm`'s `selective_state_update`, f32 math, the state updated in place), their
//! launch [`plan`], [`check`] and [`launch`] sequence.
//!
//! Entry points: `ssu_<dtype>_<state dtype>_<v|s>`, dtype (x, dt, z, out, Bm, Cm) and state
//! dtype each `f32`, `f16` or `bf16` (18 in all), `_v` with 16-byte accesses, `_s` with element
//! accesses, all with the signature `(void* state, const void* x, const void* dt, const void*
//! dt_bias, const void* a, const void* bm, const void* cm, const void* d, const void* z, void*
//! out, const void* state_indices, long long rows, int heads, int head_dim, int state_dim, int
//! groups, int heads_per_group, long long cache_slots, int index_bytes, int flags, int lanes)`:
//! `rows = batch * heads * head_dim`, `index_bytes` 0 (no indices: entry `b` owns state row
//! `b`), 4 or 8, `flags` a set of [`FLAG_A_PER_HEAD`], [`FLAG_DT_BIAS`], [`FLAG_D`],
//! [`FLAG_Z`] and [`FLAG_SOFTPLUS`] (a pointer whose flag is clear may be null), `lanes` the
//! plan's [`SsuPlan::lanes`].
//!
//! The tiled entry points `ssut_<dtype>_<state dtype>` (9, 16-byte path only) take the same
//! parameters with `rows` = `B` and one more, `int tile` (batch entries per tile, 1 ..= 32).
//!
//! Two kernels, chosen by [`plan_tactic`] (tactics [`TACTICS`]):
//! - the **row kernel** (the default, and what every tactic runs where the tiled kernel does
//!   not apply): one `(b, h, p)` row per group of `L` lanes (below). Measured the faster of the
//!   two, or within 5 % (docs/BENCHMARKS.md).
//! - the **tiled kernel** (tactics `tile4` .. `tile32`, on the 16-byte path with `N` up to
//!   [`max_tiled_state_dim`], 256 f32 / 512 halves): a block keeps `128 / L` rows `(h, p)` (`L`
//!   from [`tile_lanes`]: at most 2 chunks a lane) for tiles of `tile` batch entries, holds A
//!   in registers once per tile, reads the tile's indices once into shared memory, and issues
//!   the state loads of 4 entries at a time (L2-only). Grid
//!   `(ceil(H * P / (128 / L)), min(ceil(B / tile), 65535))`. For the tuner; not yet measured in
//!   this form (an earlier, pipelined form was, and lost to the row kernel).
//!
//! Both sum each row in a fixed order that depends on `N` and the dtypes alone; the tile never
//! changes a bit (tested on the emulator), the row kernel's lanes may (within tolerance).
//!
//! Responsibility: core validated the views (shapes, contiguity, dtypes, one device, `out` and
//! the state disjoint from every input and from each other, host-readable indices in range and
//! distinct) into the [`SelectiveStateUpdateProblem`], with `align` the least alignment (bytes,
//! at most 16) of every pointer and row stride; [`check`] rejects what the kernels cannot index;
//! [`launch`] picks the entry point and launch shape and launches through the backend. The
//! kernel assumes valid inputs, except device-resident `state_indices`, which it guards: an
//! entry outside `[0, cache_slots)` other than the pad slot -1 leaves the state untouched and
//! gets a NaN output row; the pad slot gets a zero row.
//!
//! # Launch configuration (the row kernel)
//! A *row* is a `(b, h, p)`, `rows = B * H * P`; its state row is `N` elements cut into 16-byte
//! chunks (4 f32 or 8 halves, the last one partial when `N * state size` is not a multiple of
//! 16). A group of `L` lanes within one warp takes a row, lane `l` the chunks `l, l + L, l + 2L,
//! ...`: `L` is the fewest lanes (a power of two) that leaves each at most [`CHUNKS_PER_LANE`]
//! chunks, so it depends on `N` and the state dtype alone ([`lanes`]):
//!
//! | state dtype | `N` | chunks | `L` | rows per block |
//! |---|---|---|---|---|
//! | f32 | 1 ..= 16 | 1 ..= 4 | 1 | 128 |
//! | f32 | 17 ..= 32 | 5 ..= 8 | 2 | 64 |
//! | f32 | 33 ..= 64 | 9 ..= 16 | 4 | 32 |
//! | f32 | 65 ..= 128 | 17 ..= 32 | 8 | 16 |
//! | f32 | 129 ..= 256 | 33 ..= 64 | 16 | 8 |
//! | f32 | 257 ..= 512 | 65 ..= 128 | 32 | 4 |
//! | f16, bf16 | 1 ..= 32 | 1 ..= 4 | 1 | 128 |
//! | f16, bf16 | 33 ..= 64 | 5 ..= 8 | 2 | 64 |
//! | f16, bf16 | 65 ..= 128 | 9 ..= 16 | 4 | 32 |
//! | f16, bf16 | 129 ..= 256 | 17 ..= 32 | 8 | 16 |
//! | f16, bf16 | 257 ..= 512 | 33 ..= 64 | 16 | 8 |
//! | f16, bf16 | 513 ..= 1024 | 65 ..= 128 | 32 | 4 |
//!
//! Beyond the last line a row would need more than 32 lanes: [`check`] rejects `N` above
//! [`max_state_dim`] (512 for an f32 state, 1024 for a half one: 4 chunks x 32 lanes x 16
//! bytes = 2 KiB a row). Blocks have [`THREADS`] = 128 threads (`128 / L` rows); the grid is
//! one-dimensional, `ceil(rows / (128 / L))` blocks capped at [`MAX_GRID`] (the kernel loops
//! over the rows beyond, every warp running the same iterations). The `_v` entry point is
//! chosen when `align` is 16 and `N * state size` is a multiple of 16 ([`vector`]): every
//! 16-byte chunk of a state row is then aligned, and so is every matching slice of Bm, Cm (16
//! bytes, 32 bytes, or 8 bytes for 4 halves) and of A (16 or 32 bytes). Nothing but the grid's
//! size depends on the batch.
//!
//! Per row, a lane issues the loads of all its state chunks (at most 64 bytes, all in flight),
//! then the Bm, Cm and A slices of each chunk (these are shared by the `H / G * P` rows of a
//! group, or by every batch entry for A, and mostly hit in cache), updates the chunks in
//! registers, and stores them last. Each lane sums `s * Cm` over its elements in increasing
//! `n`, then the `L` lanes add their sums by a butterfly of shuffles; lane 0 of the group adds
//! `D * x`, applies the gate and writes `y`. Both paths do the same arithmetic in the same
//! order (every product and sum explicit: no contraction a compiler could choose differently),
//! so they give the same bits, and the order depends only on `N` and the dtypes: deterministic
//! and batch-invariant.
//!
//! Registers (PyPI `ptxas` 13.0 on the spliced source, no stack frame): `_v` entry points are
//! bounded to [`V_MIN_BLOCKS`] = 8 blocks of 128 threads an SM (64 registers; 56 to 64 on
//! sm_75 ..= sm_120), except f32 inputs with a half state, [`V_MIN_BLOCKS_WIDE`] = 6 (72 to
//! 78), where 64 would spill; the only spill left is 4 bytes in `ssu_f16_f16_v` on sm_86 and
//! sm_89. On an H100 the bound of 8 was 13-15 % faster than the former 4 (80 registers, 37.5 %
//! occupancy: the kernel waits on L1/L2 latency with half the issue slots idle) with a bf16
//! state, 2-4 % with an f32 state, and 10 or 12 were slower (docs/BENCHMARKS.md, third
//! session). `_s` keeps [`MIN_BLOCKS`] = 4: 92 to 128 registers (its element loads of a half
//! state hold 32 floats), which spill hundreds of bytes at 64. hiprtc (ROCm 5.2, where every
//! bound stays 4): no scratch memory on gfx908, gfx90a or gfx1030; `_v` 63 to 96 VGPRs, `_s`
//! up to 114 (on gfx908 some in AGPRs).
//!
//! # Bytes moved
//! `2 * B * H * P * N * state size` (the state rows of the batch read and written, what core's
//! `work` counts) dominate: x, dt, z and out add `4 * B * H * P * size`, and Bm, Cm (`B * G * N`
//! each), A (`H * P * N` f32, read by every batch entry: from L2 when it fits, else up to a
//! third of the traffic with an f32 state), `dt_bias` and `D` are read once per row that uses
//! them, mostly from cache. Mamba-2 2.7B (80 heads of 64 channels, `N = 128`, bf16 state) at
//! batch 64: 167.8 MB of state traffic, `L = 4`, 32 rows a block, 10240 blocks. Not measured
//! yet: no GPU was available.
//!
//! # A Hopper variant (not registered)
//! There is no `cuda.selective_state_update.sm90`: the issue allows one only if it measures
//! faster than this kernel, and the one written in the eighteenth session (bulk copies of each
//! block's state rows into shared memory, this kernel's lanes and bits) was correct but 1-7 %
//! slower on an H100 at the bench shapes (4 % faster only at the served shape with an f32
//! state). `docs/SSU.md` has the numbers, the ncu and the commit that holds its code.

use std::ffi::c_void;

use kernelyard_core::ops::selective_state_update::{
    SelectiveStateUpdateArgs, SelectiveStateUpdateProblem,
};
use kernelyard_core::{Capabilities, DType, Error, Reason, Stream};

use crate::launch::{check_elements, Dims, Launch};
use crate::source::KernelSource;

#[cfg(test)]
mod tests;

/// The source and its entry points: per dtype and state dtype, `_v` (16-byte accesses) and
/// `_s` (element accesses).
pub static SOURCE: KernelSource = KernelSource {
    file: "selective_state_update.cu",
    code: include_str!("../kernels/selective_state_update.cu"),
    symbols: &[
        "ssu_f32_f32_v",
        "ssu_f32_f32_s",
        "ssu_f32_f16_v",
        "ssu_f32_f16_s",
        "ssu_f32_bf16_v",
        "ssu_f32_bf16_s",
        "ssu_f16_f32_v",
        "ssu_f16_f32_s",
        "ssu_f16_f16_v",
        "ssu_f16_f16_s",
        "ssu_f16_bf16_v",
        "ssu_f16_bf16_s",
        "ssu_bf16_f32_v",
        "ssu_bf16_f32_s",
        "ssu_bf16_f16_v",
        "ssu_bf16_f16_s",
        "ssu_bf16_bf16_v",
        "ssu_bf16_bf16_s",
        "ssut_f32_f32",
        "ssut_f32_f16",
        "ssut_f32_bf16",
        "ssut_f16_f32",
        "ssut_f16_f16",
        "ssut_f16_bf16",
        "ssut_bf16_f32",
        "ssut_bf16_f16",
        "ssut_bf16_bf16",
    ],
};

/// Threads per block (`KY_SSU_THREADS`, the entry points' `__launch_bounds__`).
pub const THREADS: u32 = 128;
/// Most 16-byte state chunks per lane (`KY_SSU_CHUNKS`).
pub const CHUNKS_PER_LANE: usize = 4;
/// Bytes of state in a chunk.
pub const CHUNK_BYTES: usize = 16;
/// Most lanes per row: one warp.
pub const MAX_LANES: usize = 32;
/// Blocks per SM the `_s` entry points' register budget is sized for (`KY_SSU_MIN_BLOCKS`).
pub const MIN_BLOCKS: u32 = 4;
/// Blocks per SM the `_v` entry points' register budget is sized for on CUDA
/// (`KY_SSU_V_MIN_BLOCKS`; 4 on HIP).
pub const V_MIN_BLOCKS: u32 = 8;
/// The same for the `_v` entry points with f32 inputs and a half state
/// (`KY_SSU_V_MIN_BLOCKS_WIDE`; 4 on HIP).
pub const V_MIN_BLOCKS_WIDE: u32 = 6;
/// Most blocks in the grid; the kernel loops over the rows beyond `MAX_GRID * (128 / L)`.
pub const MAX_GRID: usize = 65535;

/// Most 16-byte state chunks per lane of the tiled kernel (`KY_SSU_TILE_CHUNKS`).
pub const TILE_CHUNKS_PER_LANE: usize = 2;
/// Blocks per SM the tiled kernel's register budget is sized for (`KY_SSU_TILE_MIN_BLOCKS`).
pub const TILE_MIN_BLOCKS: u32 = 4;
/// Most batch entries per tile of the tiled kernel (`KY_SSU_TILE_MAX`).
pub const MAX_TILE: u32 = 32;
/// Most blocks along the grid's y (batch tiles); the tiled kernel loops over the tiles beyond.
pub const MAX_GRID_Y: usize = 65535;

/// The kernel's tactics (`cuda.selective_state_update@tile16`, ...): `tileN` runs the tiled
/// kernel with `N` batch entries a tile; the default (no tactic) is the row kernel, the faster
/// one where both were measured (docs/BENCHMARKS.md, second SSU session). Where the tiled
/// kernel does not apply (the element path, or `N` above [`max_tiled_state_dim`]) every
/// tactic runs the row kernel. Each is a fixed function of the problem's shape that changes
/// which thread computes a row, never the row's arithmetic order, so each keeps determinism and
/// batch invariance; the tile size does not change any bits, the row kernel's lanes may (within
/// the op's tolerance).
pub const TACTICS: &[&str] = &["tile4", "tile8", "tile16", "tile32"];

/// The tile of `tactic`: `Some(entries)` for the tiled kernel, `None` for the row kernel.
pub fn tactic_tile(tactic: Option<&str>) -> Result<Option<u32>, Error> {
    match tactic {
        None => Ok(None),
        Some("tile4") => Ok(Some(4)),
        Some("tile8") => Ok(Some(8)),
        Some("tile16") => Ok(Some(16)),
        Some("tile32") => Ok(Some(32)),
        Some(other) => Err(Error::NoEntryPoint {
            file: SOURCE.file,
            what: format!(
                "tactic `{other}` (selective_state_update has {})",
                TACTICS.join(", ")
            ),
        }),
    }
}

/// `flags`: A is `[H]` (`KY_SSU_A_PER_HEAD`).
pub const FLAG_A_PER_HEAD: i32 = 1;
/// `flags`: `dt_bias` is given (`KY_SSU_DT_BIAS`).
pub const FLAG_DT_BIAS: i32 = 2;
/// `flags`: `D` is given (`KY_SSU_D`).
pub const FLAG_D: i32 = 4;
/// `flags`: `z` is given (`KY_SSU_Z`).
pub const FLAG_Z: i32 = 8;
/// `flags`: softplus on `dt + dt_bias` (`KY_SSU_SOFTPLUS`).
pub const FLAG_SOFTPLUS: i32 = 16;

/// Which kernel a plan runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SsuKernel {
    /// The row kernel (`ssu_*`): one `(b, h, p)` row per lane group, grid-stride over rows.
    Rows,
    /// The tiled kernel (`ssut_*`): a block keeps `128 / L` rows `(h, p)` for tiles of `tile`
    /// batch entries, streaming them through a register pipeline.
    Tiles {
        /// Batch entries per tile (1 ..= [`MAX_TILE`]).
        tile: u32,
    },
}

/// How a problem is launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SsuPlan {
    /// The entry point.
    pub symbol: &'static str,
    /// The kernel.
    pub kernel: SsuKernel,
    /// 16-byte accesses (the `_v` entry point) rather than element ones (`_s`).
    pub vector: bool,
    /// Lanes per row, `L` (a power of two, 1 ..= 32).
    pub lanes: u32,
    /// Threads per block ([`THREADS`]).
    pub block: u32,
    /// Blocks along x: row kernel `ceil(rows / (128 / L))`, at most [`MAX_GRID`]; tiled
    /// kernel `ceil(H * P / (128 / L))`. At least 1.
    pub grid: u32,
    /// Blocks along y: 1 for the row kernel, `ceil(B / tile)` (at most [`MAX_GRID_Y`]) for the
    /// tiled one. At least 1.
    pub grid_y: u32,
}

impl SsuPlan {
    /// The launch shape.
    pub fn dims(&self) -> Dims {
        Dims {
            grid: (self.grid, self.grid_y, 1),
            block: (self.block, 1, 1),
            shared_bytes: 0,
        }
    }

    /// Rows a block handles per step of its loop: `128 / L` (the tiled kernel: rows `(h, p)`,
    /// each for every entry of its tiles).
    pub fn rows_per_block(&self) -> usize {
        (THREADS / self.lanes.max(1)) as usize
    }
}

/// 16-byte chunks in a state row of `state_dim` elements of `state_bytes` bytes (the last one
/// partial when they do not fill it), saturating.
pub fn chunks(state_dim: usize, state_bytes: usize) -> usize {
    state_dim.saturating_mul(state_bytes).div_ceil(CHUNK_BYTES)
}

/// Lanes per row: the fewest (a power of two) that leave each at most [`CHUNKS_PER_LANE`]
/// chunks, capped at [`MAX_LANES`] (beyond [`max_state_dim`], which [`check`] rejects).
pub fn lanes(state_dim: usize, state_bytes: usize) -> u32 {
    let need = chunks(state_dim, state_bytes)
        .div_ceil(CHUNKS_PER_LANE)
        .max(1);
    need.checked_next_power_of_two()
        .unwrap_or(MAX_LANES)
        .min(MAX_LANES) as u32
}

/// The largest `state_dim` for a state of `state_bytes`-byte elements: [`CHUNKS_PER_LANE`]
/// chunks for each of [`MAX_LANES`] lanes (512 f32, 1024 halves).
pub fn max_state_dim(state_bytes: usize) -> usize {
    CHUNKS_PER_LANE * MAX_LANES * CHUNK_BYTES / state_bytes.max(1)
}

/// Lanes per row of the tiled kernel: the fewest (a power of two) that leave each at most
/// [`TILE_CHUNKS_PER_LANE`] chunks; `None` beyond [`MAX_LANES`] lanes.
pub fn tile_lanes(state_dim: usize, state_bytes: usize) -> Option<u32> {
    let need = chunks(state_dim, state_bytes)
        .div_ceil(TILE_CHUNKS_PER_LANE)
        .max(1);
    need.checked_next_power_of_two()
        .filter(|&l| l <= MAX_LANES)
        .map(|l| l as u32)
}

/// The largest `state_dim` the tiled kernel takes: [`TILE_CHUNKS_PER_LANE`] chunks for each of
/// [`MAX_LANES`] lanes (256 f32, 512 halves); larger rows run the row kernel.
pub fn max_tiled_state_dim(state_bytes: usize) -> usize {
    TILE_CHUNKS_PER_LANE * MAX_LANES * CHUNK_BYTES / state_bytes.max(1)
}

/// Whether `p` takes the 16-byte path: every pointer and row stride 16-byte aligned and
/// `N * state size` a multiple of 16 (then every chunk of a state row, and the matching
/// slices of Bm, Cm and A, are aligned for their loads; see the module docs). The second rule
/// is not implied by `align`: a row stride counts in it only where its extent is above 1.
pub fn vector(p: &SelectiveStateUpdateProblem) -> bool {
    p.align >= 16
        && p.state_dim
            .checked_mul(p.state_dtype.size())
            .is_some_and(|b| b % CHUNK_BYTES == 0)
}

/// `ssu_<dtype>_<state dtype>_<variant>` from [`SOURCE`]'s list, if listed.
fn symbol(dtype: DType, state_dtype: DType, variant: &str) -> Option<&'static str> {
    SOURCE.symbols.iter().copied().find(|s| {
        s.strip_prefix("ssu_")
            .and_then(|r| r.strip_prefix(dtype.name()))
            .and_then(|r| r.strip_prefix('_'))
            .and_then(|r| r.strip_prefix(state_dtype.name()))
            .and_then(|r| r.strip_prefix('_'))
            == Some(variant)
    })
}

/// The default plan for `p`: [`plan_tactic`] without a tactic.
pub fn plan(p: &SelectiveStateUpdateProblem) -> Result<SsuPlan, Error> {
    plan_tactic(p, None)
}

/// The plan for `p` under `tactic` (the module docs give the tables): the tiled kernel with the
/// tactic's tile where `p` takes the 16-byte path and `N <= max_tiled_state_dim`, else the row
/// kernel; the entry point, lanes and block from `N`, the dtypes and `align` alone, the grid
/// from `H * P` and the batch. Fails with [`Error::NoEntryPoint`] for a tactic not in
/// [`TACTICS`], or for a dtype or state dtype that is not a float, which core's validation
/// excludes (and [`check`] reports).
pub fn plan_tactic(
    p: &SelectiveStateUpdateProblem,
    tactic: Option<&str>,
) -> Result<SsuPlan, Error> {
    let tile = tactic_tile(tactic)?;
    let vector = vector(p);
    let tiled = tile.zip(tile_lanes(p.state_dim, p.state_dtype.size()).filter(|_| vector));
    let missing = |variant: &str| Error::NoEntryPoint {
        file: SOURCE.file,
        what: format!(
            "variant `{variant}` of {} with a {} state",
            p.dtype, p.state_dtype
        ),
    };
    if let Some((tile, lanes)) = tiled {
        let symbol = SOURCE
            .symbols
            .iter()
            .copied()
            .find(|s| *s == format!("ssut_{}_{}", p.dtype.name(), p.state_dtype.name()))
            .ok_or_else(|| missing("tiled"))?;
        let per_block = (THREADS / lanes) as usize;
        let hp = p.heads.saturating_mul(p.head_dim);
        return Ok(SsuPlan {
            symbol,
            kernel: SsuKernel::Tiles { tile },
            vector,
            lanes,
            block: THREADS,
            grid: hp.div_ceil(per_block).clamp(1, u32::MAX as usize) as u32,
            grid_y: p.batch.div_ceil(tile as usize).clamp(1, MAX_GRID_Y) as u32,
        });
    }
    let variant = if vector { "v" } else { "s" };
    let symbol = symbol(p.dtype, p.state_dtype, variant).ok_or_else(|| missing(variant))?;
    let lanes = lanes(p.state_dim, p.state_dtype.size());
    let rows = rows(p);
    let per_block = (THREADS / lanes) as usize;
    Ok(SsuPlan {
        symbol,
        kernel: SsuKernel::Rows,
        vector,
        lanes,
        block: THREADS,
        grid: rows.div_ceil(per_block).clamp(1, MAX_GRID) as u32,
        grid_y: 1,
    })
}

/// `B * H * P`, saturating.
fn rows(p: &SelectiveStateUpdateProblem) -> usize {
    p.batch.saturating_mul(p.heads).saturating_mul(p.head_dim)
}

/// Pushes the reasons the kernels cannot run `p` (no device property matters): a state row
/// longer than [`max_state_dim`], `heads * head_dim` beyond 32 bits (the kernel's in-batch
/// row index), a state cache or an `[B, H, P]` tensor beyond 64-bit indices, or (never for a
/// validated problem) a dtype that is not a float or an index dtype that is not i32 or i64.
///
/// None of these depends on the batch for a problem core accepts (the kernel declares batch
/// invariance, so a batch size must never change the verdict): the 64-bit checks cannot fail
/// there (core bounds every tensor's bytes by `isize`), and the rest read only `H`, `P`, `N`,
/// `G` and the dtypes. The kernel loops over any number of rows.
pub fn check(_caps: &Capabilities, p: &SelectiveStateUpdateProblem, reasons: &mut Vec<Reason>) {
    for (arg, dtype) in [("x", p.dtype), ("state", p.state_dtype)] {
        if !DType::FLOATS.contains(&dtype) {
            reasons.push(Reason::DtypeUnsupported {
                arg,
                dtype,
                supported: DType::FLOATS.to_vec(),
            });
        }
    }
    if let Some(ix) = p.index_dtype {
        if !DType::INDICES.contains(&ix) {
            reasons.push(Reason::DtypeUnsupported {
                arg: "state_indices",
                dtype: ix,
                supported: DType::INDICES.to_vec(),
            });
        }
    }
    let max_n = max_state_dim(p.state_dtype.size());
    if p.state_dim > max_n {
        reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "state_dim {} with a {} state (at most {max_n}: {CHUNKS_PER_LANE} chunks of \
                 {CHUNK_BYTES} bytes for each of {MAX_LANES} lanes of a row)",
                p.state_dim, p.state_dtype
            ),
        });
    }
    let hp = p.heads.checked_mul(p.head_dim);
    if hp.is_none_or(|hp| hp > i32::MAX as usize) {
        reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "heads x head_dim = {} x {} (at most 2^31 - 1: 32-bit in-batch row indices)",
                p.heads, p.head_dim
            ),
        });
    }
    if p.groups > i32::MAX as usize {
        reasons.push(Reason::ShapeUnsupported {
            what: format!("{} groups (at most 2^31 - 1)", p.groups),
        });
    }
    check_elements(
        "state",
        &[p.cache_slots, p.heads, p.head_dim, p.state_dim],
        reasons,
    );
    check_elements("x", &[p.batch, p.heads, p.head_dim], reasons);
}

/// The entry point's parameters, in order (pointers of absent tensors null).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SsuParams {
    /// `state`, read and written.
    pub state: *mut c_void,
    /// `x`.
    pub x: *const c_void,
    /// `dt`.
    pub dt: *const c_void,
    /// `dt_bias` or null.
    pub dt_bias: *const c_void,
    /// `A`.
    pub a: *const c_void,
    /// `Bm`.
    pub bm: *const c_void,
    /// `Cm`.
    pub cm: *const c_void,
    /// `D` or null.
    pub d: *const c_void,
    /// `z` or null.
    pub z: *const c_void,
    /// `out`, written.
    pub out: *mut c_void,
    /// `state_indices` or null.
    pub state_indices: *const c_void,
    /// `B * H * P` for the row kernel, `B` for the tiled one.
    pub rows: i64,
    /// `H`.
    pub heads: i32,
    /// `P`.
    pub head_dim: i32,
    /// `N`.
    pub state_dim: i32,
    /// `G`.
    pub groups: i32,
    /// `H / G`.
    pub heads_per_group: i32,
    /// Rows of the state cache.
    pub cache_slots: i64,
    /// 0 (no indices), 4 (i32) or 8 (i64).
    pub index_bytes: i32,
    /// `FLAG_*` bits.
    pub flags: i32,
    /// The plan's lanes per row.
    pub lanes: i32,
    /// Batch entries per tile (the tiled kernel's last parameter; 0 for the row kernel, which
    /// does not take it).
    pub tile: i32,
}

/// `v` as a kernel `int` (saturating: [`check`] bounds every value passed this way).
fn int(v: usize) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// `v` as a kernel `long long` (saturating, likewise).
fn long(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The parameters of `plan`'s entry point for `a` (validated into `p`).
pub fn params(
    a: &mut SelectiveStateUpdateArgs<'_>,
    p: &SelectiveStateUpdateProblem,
    plan: &SsuPlan,
) -> SsuParams {
    let ptr = |v: &Option<kernelyard_core::TensorView<'_>>| {
        v.as_ref().map_or(std::ptr::null(), |v| v.as_ptr())
    };
    let mut flags = 0;
    for (on, flag) in [
        (p.a_per_head, FLAG_A_PER_HEAD),
        (p.dt_bias, FLAG_DT_BIAS),
        (p.d, FLAG_D),
        (p.z, FLAG_Z),
        (p.dt_softplus, FLAG_SOFTPLUS),
    ] {
        if on {
            flags |= flag;
        }
    }
    SsuParams {
        state: a.state.as_mut_ptr(),
        x: a.x.as_ptr(),
        dt: a.dt.as_ptr(),
        dt_bias: ptr(&a.dt_bias),
        a: a.a.as_ptr(),
        bm: a.bm.as_ptr(),
        cm: a.cm.as_ptr(),
        d: ptr(&a.d),
        z: ptr(&a.z),
        out: a.out.as_mut_ptr(),
        state_indices: ptr(&a.state_indices),
        rows: match plan.kernel {
            SsuKernel::Rows => long(rows(p)),
            SsuKernel::Tiles { .. } => long(p.batch),
        },
        heads: int(p.heads),
        head_dim: int(p.head_dim),
        state_dim: int(p.state_dim),
        groups: int(p.groups),
        heads_per_group: int(p.heads.checked_div(p.groups).unwrap_or(0)),
        cache_slots: long(p.cache_slots),
        index_bytes: p.index_dtype.map_or(0, |d| d.size() as i32),
        flags,
        lanes: plan.lanes as i32,
        tile: match plan.kernel {
            SsuKernel::Rows => 0,
            SsuKernel::Tiles { tile } => tile as i32,
        },
    }
}

/// Launches `p` on `stream` through `gpu` with `tactic` (one of [`TACTICS`], `None` for the
/// default; no device property matters). Core validated `a` into `p`, and [`check`] accepted it.
pub fn launch(
    gpu: &dyn Launch,
    stream: &Stream,
    _caps: &Capabilities,
    a: &mut SelectiveStateUpdateArgs<'_>,
    p: &SelectiveStateUpdateProblem,
    tactic: Option<&str>,
) -> Result<(), Error> {
    debug_assert_eq!(
        (p.dt_bias, p.d, p.z, p.index_dtype.is_some()),
        (
            a.dt_bias.is_some(),
            a.d.is_some(),
            a.z.is_some(),
            a.state_indices.is_some()
        )
    );
    debug_assert_eq!(p.a_per_head, a.a.shape().len() == 1);
    let plan = plan_tactic(p, tactic)?;
    let k = params(a, p, &plan);
    macro_rules! go {
        ($($extra:expr),*) => {
            gpu.launch(
                stream,
                &SOURCE,
                plan.symbol,
                plan.dims(),
                &mut crate::params![
                    k.state,
                    k.x,
                    k.dt,
                    k.dt_bias,
                    k.a,
                    k.bm,
                    k.cm,
                    k.d,
                    k.z,
                    k.out,
                    k.state_indices,
                    k.rows,
                    k.heads,
                    k.head_dim,
                    k.state_dim,
                    k.groups,
                    k.heads_per_group,
                    k.cache_slots,
                    k.index_bytes,
                    k.flags,
                    k.lanes
                    $(, $extra)*
                ],
            )
        };
    }
    // SAFETY: the parameters match `ssu_<dtype>_<state>_<v|s>(void* state, const void* x,
    // const void* dt, const void* dt_bias, const void* a, const void* bm, const void* cm, const
    // void* d, const void* z, void* out, const void* state_indices, long long rows, int heads,
    // int head_dim, int state_dim, int groups, int heads_per_group, long long cache_slots, int
    // index_bytes, int flags, int lanes)` in number and type; core validated the views
    // (device, bounds of each shape, contiguity, dtypes: the entry point is the plan's for
    // them; out and the state disjoint from the inputs, which the kernel reads as
    // `__restrict__`); a pointer is null only where its flag (or `index_bytes`) is clear, and
    // the kernel reads it only where set; device-resident indices are bounded by the kernel
    // against `cache_slots`; the `_v` entry point is chosen only with every pointer and row
    // stride 16-byte aligned and `N * state size` a multiple of 16; the block has 128 threads
    // (the entry points' bound), `lanes` leaves each lane at most 4 chunks (`check` bounded
    // `N`), and the grid at most 65535 blocks (the kernel's 32-bit row counters within a grid
    // step; it loops over the rows beyond); `check` bounded `H * P` and `G` by 2^31 - 1.
    // The tiled entry points `ssut_<dtype>_<state>` take the same parameters with `rows` = B
    // plus `int tile` (1 ..= 32, the kernel's shared slot array), and their grid is
    // (ceil(H * P / (128 / lanes)), at most 65535 batch tiles; the kernel loops over the rest);
    // `lanes` leaves each lane at most 2 chunks there (the plan takes the tiled kernel only for
    // such `N` on the 16-byte path).
    unsafe {
        match plan.kernel {
            SsuKernel::Rows => go!(),
            SsuKernel::Tiles { .. } => go!(k.tile),
        }
    }
}
