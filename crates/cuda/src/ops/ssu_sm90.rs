//! `cuda.selective_state_update.sm90`: the Mamba decode step of `cuda.selective_state_update`
//! with the state moved by bulk asynchronous copies (`cp.async.bulk`, sm_90 and newer), from
//! `crates/cuda/kernels/ssu_sm90.cu`.
//!
//! # What it is
//! The same rows, lanes and arithmetic as the portable row kernel (both run a row through
//! `kernels/ssu.cuh`), so the same bits; only how the state travels differs. An item is `(b,
//! h, R consecutive channels)`, whose state rows are one contiguous range of at most
//! [`TILE_BYTES`]: one block copies it into shared memory with one bulk copy, updates its rows
//! there, and copies it back with one bulk store. No register holds state in flight, so the
//! bytes in flight per SM are bounded by shared memory, not by registers (the portable
//! kernel's limit: docs/SSU.md).
//!
//! # Which problems
//! The portable kernel's 16-byte path only (every pointer and row stride 16-byte aligned and
//! `N * state size` a multiple of 16) and its `N` limit (at most 4 chunks of 16 bytes for
//! each of 32 lanes of a row); other problems get typed reasons. sm_90 and newer (bulk
//! copies and mbarrier transaction counts are sm_90 PTX; not arch-specific).
//!
//! # Selection
//! Priority [`PRIORITY`]: below the portable kernel's 10 until a GPU run shows it faster at
//! the bench shapes (docs/SSU.md says what was measured); until then it runs when
//! named (`--kernel cuda.selective_state_update.sm90`), pinned or tuned.

use std::ffi::c_void;

use kernelyard_core::ops::selective_state_update::{
    SelectiveStateUpdate, SelectiveStateUpdateArgs, SelectiveStateUpdateProblem,
};
use kernelyard_core::{
    ArchReq, Capabilities, DeviceKind, Error, KernelDef, KernelMeta, LaunchCtx, Reason, Sm,
};
use kernelyard_kernels::selective_state_update as ssu;

use crate::launch::{self, Dims};
use crate::source::KernelSource;

/// The kernel's text.
const CODE: &str = include_str!("../../kernels/ssu_sm90.cu");

/// The source and its entry points, `ssu90_<dtype>_<state dtype>`.
pub(crate) static SOURCE: KernelSource = KernelSource {
    file: "ssu_sm90.cu",
    code: CODE,
    symbols: &[
        "ssu90_f32_f32",
        "ssu90_f32_f16",
        "ssu90_f32_bf16",
        "ssu90_f16_f32",
        "ssu90_f16_f16",
        "ssu90_f16_bf16",
        "ssu90_bf16_f32",
        "ssu90_bf16_f16",
        "ssu90_bf16_bf16",
    ],
};

/// Threads per block (`KY_SSU90_THREADS`).
pub const THREADS: u32 = 128;
/// Most state bytes per item: the block's shared-memory buffer (`KY_SSU90_TILE_BYTES`).
pub const TILE_BYTES: usize = 16384;
/// Most blocks in the grid; blocks loop over the items beyond.
pub const MAX_GRID: usize = 65535;
/// The selection priority: below the portable kernel's 10 (see the module docs).
pub const PRIORITY: i32 = 9;

/// The `cuda.selective_state_update.sm90` kernel.
pub static SELECTIVE_STATE_UPDATE_SM90: KernelDef<SelectiveStateUpdate> =
    KernelDef::<SelectiveStateUpdate>::new(META, launch_sm90)
        .with_check(check)
        .with_prepare(crate::ops::prepare_nvrtc::<SelectiveStateUpdate>);
kernelyard_core::register!(SELECTIVE_STATE_UPDATE_SM90);

const META: KernelMeta = KernelMeta::new::<SelectiveStateUpdate>(
    "cuda.selective_state_update.sm90",
    crate::BACKEND,
    DeviceKind::Cuda,
    ArchReq::Cuda {
        min: Sm::new(9, 0),
        max: None,
        arch_specific: false,
    },
    module_path!(),
    "Mamba decode step (mamba_ssm selective_state_update), state in place, f32 math; the \
     portable row kernel's lanes and bits, the state moved by bulk async copies (sm_90+)",
)
.align(16)
.priority(PRIORITY);

/// How a problem is launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The entry point.
    pub symbol: &'static str,
    /// Lanes per row (the portable row kernel's, [`ssu::lanes`]).
    pub lanes: u32,
    /// Channels `p` per item: `min(P, TILE_BYTES / (N * state size))`, at least 1.
    pub rows_per_item: usize,
    /// Items: `B * H * ceil(P / rows_per_item)`.
    pub items: usize,
    /// Blocks: `min(items, MAX_GRID)`, at least 1.
    pub grid: u32,
}

/// The plan for `p` (which [`check`] accepted): the entry point from the dtypes, the lanes and
/// items from `N`, `P` and the state dtype alone (the grid from the batch).
pub fn plan(p: &SelectiveStateUpdateProblem) -> Result<Plan, Error> {
    let symbol = SOURCE
        .symbols
        .iter()
        .copied()
        .find(|s| *s == format!("ssu90_{}_{}", p.dtype.name(), p.state_dtype.name()))
        .ok_or_else(|| Error::NoEntryPoint {
            file: SOURCE.file,
            what: format!("{} with a {} state", p.dtype, p.state_dtype),
        })?;
    let row_bytes = p.state_dim.saturating_mul(p.state_dtype.size()).max(1);
    let rows_per_item = (TILE_BYTES / row_bytes).clamp(1, p.head_dim.max(1));
    let items = p
        .batch
        .saturating_mul(p.heads)
        .saturating_mul(p.head_dim.div_ceil(rows_per_item));
    Ok(Plan {
        symbol,
        lanes: ssu::lanes(p.state_dim, p.state_dtype.size()),
        rows_per_item,
        items,
        grid: items.clamp(1, MAX_GRID) as u32,
    })
}

/// The portable kernel's reasons, and this kernel's own: the 16-byte path's `N * state size`
/// rule and a state row larger than [`TILE_BYTES`] (never, within the portable kernel's `N`
/// limit: 2 KiB). None depends on the batch.
pub fn check(caps: &Capabilities, p: &SelectiveStateUpdateProblem, reasons: &mut Vec<Reason>) {
    ssu::check(caps, p, reasons);
    let row_bytes = p.state_dim.checked_mul(p.state_dtype.size());
    if row_bytes.is_none_or(|b| b % 16 != 0) {
        reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "state_dim {} with a {} state: rows of a multiple of 16 bytes only (bulk copies)",
                p.state_dim, p.state_dtype
            ),
        });
    } else if row_bytes.is_some_and(|b| b > TILE_BYTES) {
        reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "state rows of {} bytes (at most {TILE_BYTES}: the block's buffer)",
                row_bytes.unwrap_or(0)
            ),
        });
    }
}

fn launch_sm90(
    ctx: &LaunchCtx<'_>,
    a: &mut SelectiveStateUpdateArgs<'_>,
    p: &SelectiveStateUpdateProblem,
) -> Result<(), Error> {
    let plan = plan(p)?;
    // The portable kernel's parameters (pointers, flags, sizes), with the batch for `rows`.
    let row_plan = ssu::plan(p)?;
    let k = ssu::params(a, p, &row_plan);
    let batch = i64::try_from(p.batch).unwrap_or(i64::MAX);
    let lanes = plan.lanes as i32;
    let rows_per_item = i32::try_from(plan.rows_per_item).unwrap_or(i32::MAX);
    let dims = Dims {
        grid: (plan.grid, 1, 1),
        block: (THREADS, 1, 1),
        shared_bytes: 0,
    };
    let (state, out): (*mut c_void, *mut c_void) = (k.state, k.out);
    // SAFETY: the parameters match `ssu90_<dtype>_<state>(void* state, const void* x, const
    // void* dt, const void* dt_bias, const void* a, const void* bm, const void* cm, const void*
    // d, const void* z, void* out, const void* state_indices, long long batch, int heads, int
    // head_dim, int state_dim, int groups, int heads_per_group, long long cache_slots, int
    // index_bytes, int flags, int lanes, int rows_per_item)` in number and type; core validated
    // the views (device, bounds, contiguity, dtypes: the entry point is the plan's for them;
    // out and the state disjoint from the inputs); core checked the 16-byte alignment of every
    // pointer and row stride (`META.align`) and `check` that N * state size is a multiple of
    // 16 and at most TILE_BYTES, so every bulk copy (rows_per_item whole state rows of one
    // (slot, h), at most TILE_BYTES) has 16-byte aligned addresses and sizes and fits the
    // block's buffer; a pointer is null only where its flag (or `index_bytes`) is clear;
    // device-resident indices are bounded by the kernel against `cache_slots`; `lanes` leaves
    // each lane at most 4 chunks (`check` bounded N); 128 threads (the entry points' bound);
    // `check` bounded H * P and G by 2^31 - 1, and the grid is at most 65535 blocks (the
    // kernel loops over the items beyond).
    unsafe {
        launch::launch(
            ctx.stream,
            &SOURCE,
            plan.symbol,
            dims,
            &mut kernelyard_kernels::params![
                state,
                k.x,
                k.dt,
                k.dt_bias,
                k.a,
                k.bm,
                k.cm,
                k.d,
                k.z,
                out,
                k.state_indices,
                batch,
                k.heads,
                k.head_dim,
                k.state_dim,
                k.groups,
                k.heads_per_group,
                k.cache_slots,
                k.index_bytes,
                k.flags,
                lanes,
                rows_per_item
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard_core::DType;

    fn problem(
        batch: usize,
        heads: usize,
        head_dim: usize,
        n: usize,
        state: DType,
    ) -> SelectiveStateUpdateProblem {
        SelectiveStateUpdateProblem {
            batch,
            heads,
            head_dim,
            state_dim: n,
            groups: 1,
            dtype: DType::BF16,
            state_dtype: state,
            a_per_head: false,
            dt_bias: true,
            d: true,
            z: true,
            dt_softplus: true,
            align: 16,
            cache_slots: batch,
            index_dtype: None,
        }
    }

    #[test]
    fn the_source_lists_every_entry_point_and_defines_the_host_constants() {
        for s in SOURCE.symbols {
            let (d, sd) = s.strip_prefix("ssu90_").unwrap().split_once('_').unwrap();
            assert!(CODE.contains(&format!("KY_SSU90_ENTRY({d}, {sd}, ")), "{s}");
        }
        for (name, value) in [
            ("KY_SSU90_THREADS", THREADS as usize),
            ("KY_SSU90_TILE_BYTES", TILE_BYTES),
            ("KY_SSU90_CHUNKS", ssu::CHUNKS_PER_LANE),
        ] {
            assert!(
                CODE.contains(&format!("#define {name} {value}\n")),
                "{name}"
            );
        }
    }

    #[test]
    fn items_hold_whole_rows_within_the_buffer() {
        // (64, 64, 64, 128): f32 state 512-byte rows, 32 a 16 KiB item; bf16 64 (all of P).
        let p = problem(64, 64, 64, 128, DType::F32);
        let k = plan(&p).unwrap();
        assert_eq!((k.rows_per_item, k.items, k.grid), (32, 64 * 64 * 2, 8192));
        assert_eq!(k.lanes, ssu::lanes(128, 4));
        let k = plan(&problem(64, 64, 64, 128, DType::BF16)).unwrap();
        assert_eq!((k.rows_per_item, k.items), (64, 64 * 64));
        // P smaller than the buffer's rows: one item per (b, h); a huge batch caps the grid.
        let k = plan(&problem(100_000, 2, 3, 16, DType::F32)).unwrap();
        assert_eq!(
            (k.rows_per_item, k.items, k.grid),
            (3, 200_000, MAX_GRID as u32)
        );
        for n in [16, 64, 128, 256, 512] {
            let k = plan(&problem(3, 5, 64, n, DType::F32)).unwrap();
            assert!(k.rows_per_item * n * 4 <= TILE_BYTES, "{n}");
        }
    }

    #[test]
    fn rows_that_are_not_whole_16_byte_chunks_are_refused_with_a_reason() {
        let caps = crate::device::simulated_caps(Sm::new(9, 0), 227 << 10);
        let mut reasons = Vec::new();
        check(&caps, &problem(2, 2, 4, 6, DType::F16), &mut reasons);
        assert!(
            reasons.iter().any(
                |r| matches!(r, Reason::ShapeUnsupported { what } if what.contains("16 bytes"))
            ),
            "{reasons:?}"
        );
        let mut reasons = Vec::new();
        check(&caps, &problem(2, 2, 4, 128, DType::BF16), &mut reasons);
        assert!(reasons.is_empty(), "{reasons:?}");
    }
}
