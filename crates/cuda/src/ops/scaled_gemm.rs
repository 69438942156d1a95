//! `cuda.scaled_gemm.cublaslt`: the FP8 GEMM `out = (scale_a * A) @ (scale_b * B)^T (+ bias)`
//! through cuBLASLt (sm_89 and newer).
//!
//! - **Layout.** A `[m, k]` and B `[n, k]` are row-major, so both are k-major: as column-major
//!   matrices they are A^T `[k, m]` and B^T `[k, n]`. The row-major `out [m, n]` is the
//!   column-major `out^T [n, m] = B A^T`, which cuBLASLt computes as `op(B^T) op(A^T)` with
//!   `TRANSA = T` and `TRANSB = N`: the "TN" form its FP8 matmuls require. cuBLASLt's A is our
//!   B (and `A_SCALE_POINTER` our `scale_b`), its B our A.
//! - **Types.** A and B e4m3 or e5m2, not both e5m2 (cuBLASLt needs an e4m3 operand); out
//!   bf16, f16 or f32 (C, never read, has out's type, as cuBLASLt's FP8 table asks); compute
//!   and scales in f32 (`CUBLAS_COMPUTE_32F`), with cuBLASLt's precise accumulation (not
//!   `FAST_ACCUM`, as torch's `_scaled_mm` default).
//! - **Scales.** cuBLASLt reads the scales on the device (`A_SCALE_POINTER` /
//!   `B_SCALE_POINTER`), so a CUDA graph replays with whatever the scale tensors hold then.
//!   Per tensor everywhere (`SCALAR_32F`, the default mode); on Hopper (sm_90) with cuBLASLt
//!   12.9 or newer also per row (`OUTER_VEC_32F`: our `scale_b [n]` is the vector over
//!   cuBLASLt's rows, `scale_a [m]` over its columns) and per block (`BLK128x128_32F` for B,
//!   `VEC128_32F` for A: the op's block layouts are cuBLASLt's, A's m fastest, B's k-blocks
//!   fastest with a leading dimension cuBLASLt rounds up to 4, so `ceil(k/128)` must be a
//!   multiple of 4; and m a multiple of 4, measured: A's scale columns then start 16-byte
//!   aligned). Setting a mode takes `A_SCALE_MODE`, which only CUDA 12.8+ bindings name
//!   (`crate::lt_ext`): with older bindings, and on other archs (cuBLASLt has these modes
//!   on Hopper only), row and block scales are refused with reasons that say which.
//! - **Bias.** cuBLASLt's `BIAS` epilogue: `bias [n]` is a vector over cuBLASLt's rows (our
//!   columns), of dtype bf16 (out bf16 or f32) or f16 (out f16).
//! - **Alignment.** cuBLASLt's FP8 kernels need 16-byte pointers and leading dimensions, so the
//!   kernel declares `align = 16` and its check asks k and n to be multiples of 16 (as torch's
//!   `_scaled_mm` does); m is free (m = 1 decodes).
//! - **Plans.** The layouts and the heuristic's algorithm are made once per (device, problem)
//!   and cached. The matmul descriptor carries the call's scale and bias pointers, so each
//!   launch makes its own (a host-side object: no stream work, so a launch in a capture is
//!   fine once the plan exists); the heuristic was asked with a descriptor of the same types,
//!   epilogue and non-null placeholder pointers.
//! - **Workspace, handle, CUDA graphs:** those of `cuda.gemm.cublaslt` (the per-stream
//!   workspace, one handle per device, nothing made on a capturing stream).
//! - **Not declared deterministic or batch-invariant:** cuBLASLt's algorithm depends on M.

use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublaslt::{result as lt, sys as ltsys};
use kernelyard_core::ops::scaled_gemm::{
    ScaleMode, ScaledGemm, ScaledGemmArgs, ScaledGemmProblem, BLOCK,
};
use kernelyard_core::{
    Arch, ArchReq, Capabilities, DType, DeviceKind, Error, Feature, KernelDef, KernelMeta,
    LaunchCtx, Reason, Sm, Stream, Version,
};

use crate::capture::guard;
use crate::device::{bind, cublaslt_version};
use crate::error::CudaError;
use crate::libs::BINDINGS;
use crate::lt_ext;
use crate::ops::gemm::{
    check_available, cuda_type, handle, lt_err, workspace, Handle, NO_RESULT, WORKSPACE_BYTES,
};

/// The `cuda.scaled_gemm.cublaslt` kernel.
pub static SCALED_GEMM_CUBLASLT: KernelDef<ScaledGemm> = KernelDef::<ScaledGemm>::new(META, launch)
    .with_check(check)
    .with_prepare(prepare);
kernelyard_core::register!(SCALED_GEMM_CUBLASLT);

/// FP8 tensor cores: sm_89 (Ada) and newer.
const SM89_AND_NEWER: ArchReq = ArchReq::Cuda {
    min: Sm::new(8, 9),
    max: None,
    arch_specific: false,
};

const META: KernelMeta = KernelMeta::new::<ScaledGemm>(
    "cuda.scaled_gemm.cublaslt",
    crate::BACKEND,
    DeviceKind::Cuda,
    SM89_AND_NEWER,
    module_path!(),
    "cuBLASLt FP8 matmul (per-tensor scales; per-row and block on Hopper; f32 compute); fast, but not batch-invariant",
)
.dtypes(DType::FP8)
.features(&[Feature::Fp8])
.align(16)
.nondeterministic();

/// cuBLASLt's availability, the operand pair it takes, the scale modes wired here, and the
/// sizes its 32-bit API takes.
fn check(caps: &Capabilities, p: &ScaledGemmProblem, reasons: &mut Vec<Reason>) {
    check_available(reasons);
    if p.dtype == DType::F8E5M2 && p.b_dtype == DType::F8E5M2 {
        reasons.push(Reason::DtypeUnsupported {
            arg: "b",
            dtype: p.b_dtype,
            supported: vec![DType::F8E4M3],
        });
    }
    if (p.out_dtype == DType::BF16 || (p.bias && p.out_dtype == DType::F32))
        && !caps.has(Feature::Bf16)
    {
        reasons.push(Reason::MissingFeature {
            feature: Feature::Bf16,
        });
    }
    // The FP4 modes come with FP4 operands, which the metadata's dtypes refuse already.
    if matches!(p.scale_a, ScaleMode::Row | ScaleMode::Block) {
        check_scale_modes(caps, p, reasons);
    }
    // cuBLASLt's FP8 kernels take leading dimensions of 16 bytes' multiples: its A and B
    // (our B and A) have leading dimension k bytes, its D (our out) n elements; torch's
    // `_scaled_mm` asks the same (k and n multiples of 16). m may be anything.
    for (dim, value) in [("k", p.k), ("n", p.n)] {
        if value % 16 != 0 {
            reasons.push(Reason::ShapeUnsupported {
                what: format!(
                    "{dim} = {value}: cuBLASLt's FP8 matmul takes k and n multiples of 16"
                ),
            });
        }
    }
    if [p.m, p.n, p.k].iter().any(|&d| d > i32::MAX as usize) {
        reasons.push(Reason::ShapeUnsupported {
            what: "a dimension above 2^31 - 1".to_owned(),
        });
    }
}

/// The cuBLASLt version that brought outer-vector and block scaling (on Hopper).
const SCALE_MODES_SINCE: Version = Version::new(12, 9, 0);

/// Why row or block scales (the core's descriptor allows only equal modes on both sides, so
/// `p.scale_a` names both) cannot run here, if they cannot: bindings too old to set the mode,
/// a cuBLASLt older than 12.9, a device other than Hopper, or block scales with an `m` or a
/// `k` whose scale layouts cuBLASLt does not take.
fn check_scale_modes(caps: &Capabilities, p: &ScaledGemmProblem, reasons: &mut Vec<Reason>) {
    let mode = p.scale_a;
    let mut refuse = |why: String| {
        reasons.push(Reason::ShapeUnsupported {
            what: format!("scales per {mode}: {why}"),
        })
    };
    if !lt_ext::BINDINGS_HAVE_SCALE_MODES {
        refuse(format!(
            "setting cuBLASLt's scale mode needs CUDA 12.8+ bindings (these are CUDA {})",
            BINDINGS
        ));
    }
    if let Ok(v) = cublaslt_version() {
        if *v < SCALE_MODES_SINCE {
            refuse(format!(
                "cuBLASLt {v} has no outer-vector or block scaling ({SCALE_MODES_SINCE}+)"
            ));
        }
    }
    if !matches!(caps.arch, Arch::Cuda { sm } if sm.major == 9) {
        refuse(format!(
            "cuBLASLt scales FP8 per row or per block on Hopper (sm_90) only, not on {}",
            caps.arch
        ));
    }
    // Measured on an H100 (cuBLASLt 13.0): m = 4, 8, 16, 32, 36, 40, 48, 64, 96 and 128 have an
    // algorithm, m = 1 and 37 none: A's scales are stored m fastest, so each k-block's column
    // of them starts 16-byte aligned only when m is a multiple of 4.
    if mode == ScaleMode::Block && !p.m.is_multiple_of(4) {
        refuse(format!(
            "m = {}: cuBLASLt's 1x128 block scales for A (m fastest) need m a multiple of 4 \
             (16-byte aligned columns)",
            p.m
        ));
    }
    let k_blocks = p.k.div_ceil(BLOCK);
    if mode == ScaleMode::Block && !k_blocks.is_multiple_of(4) {
        refuse(format!(
            "ceil(k/128) = {k_blocks}: cuBLASLt reads B's 128x128 block scales with a leading \
             dimension rounded up to a multiple of 4, so it must be one"
        ));
    }
}

/// cuBLASLt's scale modes (`cublasLtMatmulMatrixScale_t`) for its A (our B) and its B (our A).
/// The FP4 modes are `cuda.scaled_gemm.fp4.cublaslt`'s (this kernel takes FP8 operands only,
/// which core never pairs with them).
pub(crate) fn lt_scale_modes(mode: ScaleMode) -> (i32, i32) {
    use lt_ext::scale_mode as s;
    match mode {
        ScaleMode::Tensor => (s::SCALAR_32F, s::SCALAR_32F),
        ScaleMode::Row => (s::OUTER_VEC_32F, s::OUTER_VEC_32F),
        ScaleMode::Block => (s::BLK128X128_32F, s::VEC128_32F),
        ScaleMode::Nvfp4 => (s::VEC16_UE4M3, s::VEC16_UE4M3),
        ScaleMode::Mxfp4 => (s::VEC32_UE8M0, s::VEC32_UE8M0),
    }
}

/// Makes the handle, the plan and `ctx.stream`'s workspace, so launches make nothing that
/// needs the stream.
fn prepare(_: &KernelMeta, ctx: &LaunchCtx<'_>, p: &ScaledGemmProblem) -> Result<(), Error> {
    let stream = ctx.stream;
    bind(stream.device())?;
    let handle = handle(stream)?;
    let ws = workspace(stream)?;
    plan(stream, handle, p, ws.ptr, WORKSPACE_BYTES)?;
    Ok(())
}

fn launch(
    ctx: &LaunchCtx<'_>,
    a: &mut ScaledGemmArgs<'_>,
    p: &ScaledGemmProblem,
) -> Result<(), Error> {
    let stream = ctx.stream;
    bind(stream.device())?;
    let handle = handle(stream)?;
    // Held until the matmul is enqueued (cuBLASLt may launch several kernels through it).
    let ws = workspace(stream)?;
    let plan = plan(stream, handle, p, ws.ptr, WORKSPACE_BYTES)?;
    let pointers = Pointers {
        scale_b: a.scale_b.as_ptr(),
        scale_a: a.scale_a.as_ptr(),
        bias: a.bias.as_ref().map(|b| b.as_ptr()),
    };
    // SAFETY: the plan was made for `p` with this workspace's size; core validated the views into `p` (shapes, dtypes, this device, `out` disjoint
    // from the inputs), and the scale and bias pointers are the views' own, of the dtypes and
    // sizes cuBLASLt reads for `p`'s scale modes (one f32 each, or m and n, or the block
    // layouts: core checked the shapes); the workspace is this stream's own and held.
    unsafe {
        enqueue(
            stream,
            handle,
            p,
            &plan,
            &pointers,
            a,
            (ws.ptr, WORKSPACE_BYTES),
        )
    }
}

/// Enqueues cuBLASLt's matmul for `p` on `stream`, with a descriptor carrying `ptr`, over
/// the views in `a`: cuBLASLt's A is our B and its B our A (module docs), C is not read
/// (beta = 0) and D is `out`; `ws` is a workspace (device address, bytes).
///
/// # Safety
/// `plan` was made for `p` with a workspace of `ws.1` bytes; `ptr` holds device pointers
/// cuBLASLt may read for `p` (the scales and bias its modes and epilogue name); `a`'s A, B
/// and out are on `stream`'s device and core validated them into `p` (shapes, dtypes, `out`
/// disjoint from the inputs); `ws` is a workspace of that size on `stream`, held by the
/// caller until this returns (cuBLASLt may launch several kernels through it).
pub(crate) unsafe fn enqueue(
    stream: &Stream,
    handle: Handle,
    p: &ScaledGemmProblem,
    plan: &Plan,
    ptr: &Pointers,
    a: &mut ScaledGemmArgs<'_>,
    ws: (u64, usize),
) -> Result<(), Error> {
    let desc = Desc::new(p, ptr)?;
    let (alpha, beta) = (1.0f32, 0.0f32);
    let out = a.out.as_mut_ptr();
    // SAFETY: the caller's contract above (the descriptor is `p`'s, carrying `ptr`); alpha and
    // beta are host f32s alive for the call.
    unsafe {
        lt::matmul(
            handle.0,
            desc.0,
            (&alpha as *const f32).cast(),
            (&beta as *const f32).cast(),
            a.b.as_ptr(),
            plan.lt_a,
            a.a.as_ptr(),
            plan.lt_b,
            out,
            plan.lt_c,
            out,
            plan.lt_c,
            &plan.algo,
            ws.0 as *mut c_void,
            ws.1,
            stream.raw() as ltsys::cudaStream_t,
        )
    }
    .map_err(lt_err("cublasLtMatmul"))
}

/// The device pointers a descriptor carries: cuBLASLt's A scale (our `scale_b`), its B scale
/// (our `scale_a`), and the bias.
pub(crate) struct Pointers {
    /// Our `scale_b` (cuBLASLt's `A_SCALE_POINTER`).
    pub(crate) scale_b: *const c_void,
    /// Our `scale_a` (cuBLASLt's `B_SCALE_POINTER`).
    pub(crate) scale_a: *const c_void,
    /// The bias, if any.
    pub(crate) bias: Option<*const c_void>,
}

/// A matmul descriptor, destroyed on drop (shared with `cuda.scaled_gemm.fp4.cublaslt`,
/// whose FP4 modes [`lt_scale_modes`] maps).
struct Desc(ltsys::cublasLtMatmulDesc_t);

impl Drop for Desc {
    fn drop(&mut self) {
        // SAFETY: made by `Desc::new`, owned by this value alone, destroyed once.
        unsafe {
            let _ = lt::destroy_matmul_desc(self.0);
        }
    }
}

impl Desc {
    /// `p`'s descriptor: TN, f32 compute and scales, the scale pointers (and modes, but for
    /// per-tensor scales), and the bias epilogue when `p` has a bias.
    fn new(p: &ScaledGemmProblem, ptr: &Pointers) -> Result<Desc, Error> {
        let desc = Desc(
            lt::create_matmul_desc(
                ltsys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                ltsys::cudaDataType::CUDA_R_32F,
            )
            .map_err(lt_err("cublasLtMatmulDescCreate"))?,
        );
        use ltsys::cublasLtMatmulDescAttributes_t as A;
        // `cublasOperation_t` (CUBLAS_OP_N = 0, CUBLAS_OP_T = 1) as an i32.
        let (transa, transb) = (1i32, 0i32);
        let set = |attr, value: *const c_void, size: usize, call: &'static str| {
            // SAFETY: `desc` is live; each caller passes a value of the attribute's documented
            // type and its size, alive for the call (cuBLASLt copies it).
            unsafe { lt::set_matmul_desc_attribute(desc.0, attr, value, size) }
                .map_err(lt_err(call))
        };
        set(
            A::CUBLASLT_MATMUL_DESC_TRANSA,
            (&transa as *const i32).cast(),
            4,
            "cublasLtMatmulDescSetAttribute(TRANSA)",
        )?;
        set(
            A::CUBLASLT_MATMUL_DESC_TRANSB,
            (&transb as *const i32).cast(),
            4,
            "cublasLtMatmulDescSetAttribute(TRANSB)",
        )?;
        set(
            A::CUBLASLT_MATMUL_DESC_A_SCALE_POINTER,
            (&ptr.scale_b as *const *const c_void).cast(),
            std::mem::size_of::<*const c_void>(),
            "cublasLtMatmulDescSetAttribute(A_SCALE_POINTER)",
        )?;
        set(
            A::CUBLASLT_MATMUL_DESC_B_SCALE_POINTER,
            (&ptr.scale_a as *const *const c_void).cast(),
            std::mem::size_of::<*const c_void>(),
            "cublasLtMatmulDescSetAttribute(B_SCALE_POINTER)",
        )?;
        if p.scale_a != ScaleMode::Tensor {
            // Our B is cuBLASLt's A (module docs). `check` refused these modes where the
            // bindings cannot name the attribute, so `desc_attr` is `Some` here.
            let (mode_a, mode_b) = lt_scale_modes(p.scale_a);
            for (raw, mode, call) in [
                (
                    lt_ext::A_SCALE_MODE,
                    mode_a,
                    "cublasLtMatmulDescSetAttribute(A_SCALE_MODE)",
                ),
                (
                    lt_ext::B_SCALE_MODE,
                    mode_b,
                    "cublasLtMatmulDescSetAttribute(B_SCALE_MODE)",
                ),
            ] {
                let attr = lt_ext::desc_attr(raw).ok_or_else(|| CudaError::Misuse {
                    what: format!("{call} with bindings for CUDA {BINDINGS}"),
                })?;
                set(attr, (&mode as *const i32).cast(), 4, call)?;
            }
        }
        if let Some(bias) = ptr.bias {
            let epilogue = ltsys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS;
            let bias_type = if p.out_dtype == DType::F16 {
                ltsys::cudaDataType::CUDA_R_16F
            } else {
                ltsys::cudaDataType::CUDA_R_16BF
            };
            set(
                A::CUBLASLT_MATMUL_DESC_EPILOGUE,
                (&epilogue as *const ltsys::cublasLtEpilogue_t).cast(),
                std::mem::size_of_val(&epilogue),
                "cublasLtMatmulDescSetAttribute(EPILOGUE)",
            )?;
            set(
                A::CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                (&bias as *const *const c_void).cast(),
                std::mem::size_of::<*const c_void>(),
                "cublasLtMatmulDescSetAttribute(BIAS_POINTER)",
            )?;
            set(
                A::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                (&bias_type as *const ltsys::cudaDataType).cast(),
                std::mem::size_of_val(&bias_type),
                "cublasLtMatmulDescSetAttribute(BIAS_DATA_TYPE)",
            )?;
        }
        Ok(desc)
    }
}

/// A matrix layout, destroyed on drop.
struct Layout(ltsys::cublasLtMatrixLayout_t);

impl Drop for Layout {
    fn drop(&mut self) {
        // SAFETY: made by `layout`, owned by this value alone, destroyed once.
        unsafe {
            let _ = lt::destroy_matrix_layout(self.0);
        }
    }
}

/// A column-major `rows x cols` layout of `dtype` with leading dimension `ld`.
fn layout(dtype: DType, rows: usize, cols: usize, ld: usize) -> Result<Layout, Error> {
    let ty = cuda_type(dtype).ok_or_else(|| CudaError::Misuse {
        what: format!("scaled_gemm operand in {dtype}"),
    })?;
    Ok(Layout(
        lt::create_matrix_layout(ty, rows as u64, cols as u64, ld as i64)
            .map_err(lt_err("cublasLtMatrixLayoutCreate"))?,
    ))
}

/// Layouts and algorithm for one problem on one device.
pub(crate) struct Plan {
    /// cuBLASLt's A (our B).
    pub(crate) lt_a: ltsys::cublasLtMatrixLayout_t,
    /// cuBLASLt's B (our A).
    pub(crate) lt_b: ltsys::cublasLtMatrixLayout_t,
    /// cuBLASLt's C and D (our `out`).
    pub(crate) lt_c: ltsys::cublasLtMatrixLayout_t,
    /// The heuristic's algorithm.
    pub(crate) algo: ltsys::cublasLtMatmulAlgo_t,
    /// Owners of the three layouts above (destroyed with the plan).
    _layouts: [Layout; 3],
}
// SAFETY: the layouts are only read after creation (cuBLASLt reads them during a call).
unsafe impl Send for Plan {}
// SAFETY: as above.
unsafe impl Sync for Plan {}

type PlanCache = Mutex<HashMap<(u32, ScaledGemmProblem), Arc<Plan>>>;

/// The plan of `p` on `stream`'s device, made on first use (refused on a capturing stream).
/// `placeholder` is a non-null device address the heuristic's descriptor carries for the
/// scale and bias pointers (it never reads through them); `ws_bytes` is the workspace the
/// heuristic may count on, a function of `p` (the FP4 kernel keeps part of the stream's
/// workspace for its tiled scales), so `p` keys the cache alone.
pub(crate) fn plan(
    stream: &Stream,
    handle: Handle,
    p: &ScaledGemmProblem,
    placeholder: u64,
    ws_bytes: usize,
) -> Result<Arc<Plan>, Error> {
    static PLANS: OnceLock<PlanCache> = OnceLock::new();
    let cache = PLANS.get_or_init(Default::default);
    let key = (stream.device().index, p.clone());
    if let Some(plan) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(Arc::clone(plan));
    }
    guard(stream, || {
        format!(
            "choosing the cuBLASLt {} algorithm for this problem",
            p.dtype
        )
    })?;
    let plan = Arc::new(make_plan(
        handle,
        p,
        placeholder as *const c_void,
        ws_bytes,
    )?);
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    // Plans are small; a process with very many shapes keeps the newest 4096.
    if map.len() >= 4096 {
        map.clear();
    }
    map.insert(key, Arc::clone(&plan));
    Ok(plan)
}

/// The column-major shapes cuBLASLt is given: `(rows, cols, ld)` of its A (our B, stored
/// `[k, n]` column-major), its B (our A, `[k, m]`) and its C/D (`[n, m]`). In elements, FP4
/// ones too (cuBLASLt counts a packed type's rows and leading dimension in values).
fn lt_shapes(p: &ScaledGemmProblem) -> [[usize; 3]; 3] {
    [[p.k, p.n, p.k], [p.k, p.m, p.k], [p.n, p.m, p.n]]
}

/// The layouts of `p` and the heuristic's first usable algorithm.
fn make_plan(
    handle: Handle,
    p: &ScaledGemmProblem,
    placeholder: *const c_void,
    ws_bytes: usize,
) -> Result<Plan, Error> {
    let [a, b, c] = lt_shapes(p);
    let layouts = [
        layout(p.b_dtype, a[0], a[1], a[2])?,
        layout(p.dtype, b[0], b[1], b[2])?,
        layout(p.out_dtype, c[0], c[1], c[2])?,
    ];
    let desc = Desc::new(
        p,
        &Pointers {
            scale_b: placeholder,
            scale_a: placeholder,
            bias: p.bias.then_some(placeholder),
        },
    )?;
    let pref = lt::create_matmul_pref().map_err(lt_err("cublasLtMatmulPreferenceCreate"))?;
    let ws = ws_bytes as u64;
    let align = 16u32;
    let mut result = NO_RESULT;
    let mut returned: c_int = 0;
    use ltsys::cublasLtMatmulPreferenceAttributes_t as P;
    // SAFETY: `pref` is live; each attribute gets a value of its documented type. The handle,
    // the descriptor and the layouts are live and describe `p`; `result` has room for the one
    // result asked for, and `returned` is a valid out-pointer. `pref` is destroyed once.
    let status = unsafe {
        let mut set = lt::set_matmul_pref_attribute(
            pref,
            P::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
            (&ws as *const u64).cast(),
            8,
        );
        for attr in [
            P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
            P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
            P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
            P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
        ] {
            set = set.and_then(|()| {
                lt::set_matmul_pref_attribute(pref, attr, (&align as *const u32).cast(), 4)
            });
        }
        let status = set
            .map_err(lt_err("cublasLtMatmulPreferenceSetAttribute"))
            .map(|()| {
                ltsys::cublasLtMatmulAlgoGetHeuristic(
                    handle.0,
                    desc.0,
                    layouts[0].0,
                    layouts[1].0,
                    layouts[2].0,
                    layouts[2].0,
                    pref,
                    1,
                    &mut result,
                    &mut returned,
                )
            });
        let _ = lt::destroy_matmul_pref(pref);
        status?
    };
    status.result().map_err(|e| CudaError::NoAlgorithm {
        what: format!("{p:?} ({:?})", e.0),
    })?;
    if returned < 1 || result.state != ltsys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        return Err(CudaError::NoAlgorithm {
            what: format!("{p:?} (its heuristic offers none)"),
        }
        .into());
    }
    Ok(Plan {
        lt_a: layouts[0].0,
        lt_b: layouts[1].0,
        lt_c: layouts[2].0,
        algo: result.algo,
        _layouts: layouts,
    })
}

/// An e4m3 x e4m3 -> bf16 problem with per-tensor scales, no bias, 16-byte aligned (for the
/// FP8 kernels' unit tests).
#[cfg(test)]
pub(crate) fn test_problem(m: usize, n: usize, k: usize) -> ScaledGemmProblem {
    ScaledGemmProblem {
        m,
        n,
        k,
        dtype: DType::F8E4M3,
        b_dtype: DType::F8E4M3,
        out_dtype: DType::BF16,
        scale_a: ScaleMode::Tensor,
        scale_b: ScaleMode::Tensor,
        bias: false,
        align: 16,
    }
}

#[cfg(test)]
mod tests {
    use super::test_problem as problem;
    use super::*;

    #[test]
    fn row_major_operands_are_cublaslts_tn_form() {
        // out[m,n] = A[m,k] B[n,k]^T  ->  out^T[n,m] = (B^T)^T A^T with B^T, A^T stored
        // column-major [k, n] and [k, m] (leading dimension k), out^T [n, m] (ld n).
        assert_eq!(
            lt_shapes(&problem(3, 5, 32)),
            [[32, 5, 32], [32, 3, 32], [5, 3, 5]]
        );
    }

    fn reasons(p: &ScaledGemmProblem) -> Vec<Reason> {
        let mut caps = Capabilities::host();
        caps.features.insert(Feature::Bf16);
        let mut r = Vec::new();
        check(&caps, p, &mut r);
        r.retain(|r| !matches!(r, Reason::BackendUnavailable { .. }));
        r
    }

    #[test]
    fn per_tensor_scales_of_every_accepted_pair_pass_the_check() {
        for (a, b) in [
            (DType::F8E4M3, DType::F8E4M3),
            (DType::F8E4M3, DType::F8E5M2),
            (DType::F8E5M2, DType::F8E4M3),
        ] {
            for out in [DType::BF16, DType::F16, DType::F32] {
                let p = ScaledGemmProblem {
                    dtype: a,
                    b_dtype: b,
                    out_dtype: out,
                    bias: true,
                    ..problem(1, 64, 128)
                };
                assert_eq!(reasons(&p), vec![], "{a} x {b} -> {out}");
            }
        }
    }

    #[test]
    fn e5m2_on_both_sides_is_refused_by_name() {
        let p = ScaledGemmProblem {
            dtype: DType::F8E5M2,
            b_dtype: DType::F8E5M2,
            ..problem(8, 64, 128)
        };
        assert!(matches!(
            reasons(&p).as_slice(),
            [Reason::DtypeUnsupported {
                arg: "b",
                dtype: DType::F8E5M2,
                ..
            }]
        ));
    }

    /// Reasons of the check on a simulated device of capability `sm` with bf16.
    fn reasons_on(sm: Sm, p: &ScaledGemmProblem) -> Vec<String> {
        let caps = crate::device::simulated_caps(sm, 227 << 10);
        let mut r = Vec::new();
        check(&caps, p, &mut r);
        r.into_iter()
            .filter_map(|r| match r {
                Reason::BackendUnavailable { .. } => None,
                Reason::ShapeUnsupported { what } => Some(what),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn scaled(mode: ScaleMode, k: usize) -> ScaledGemmProblem {
        ScaledGemmProblem {
            scale_a: mode,
            scale_b: mode,
            ..problem(8, 256, k)
        }
    }

    #[test]
    fn row_and_block_scales_run_on_hopper_only() {
        for mode in [ScaleMode::Row, ScaleMode::Block] {
            assert!(reasons_on(Sm::new(9, 0), &scaled(mode, 512)).is_empty());
            for sm in [Sm::new(8, 9), Sm::new(10, 0), Sm::new(12, 0)] {
                let r = reasons_on(sm, &scaled(mode, 512));
                assert_eq!(r.len(), 1, "{sm} {mode}: {r:?}");
                assert!(r[0].starts_with(&format!("scales per {mode}")), "{r:?}");
                assert!(r[0].contains("Hopper (sm_90) only"), "{r:?}");
            }
        }
    }

    #[test]
    fn block_scales_need_k_blocks_in_fours() {
        // ceil(k/128) = 4, 8, 4, 16: taken; 2, 3, 5: not (B's scale rows are padded to 4 by cuBLASLt).
        for k in [512, 1024, 400, 2048] {
            assert!(
                reasons_on(Sm::new(9, 0), &scaled(ScaleMode::Block, k)).is_empty(),
                "{k}"
            );
        }
        for k in [256, 384, 640] {
            let r = reasons_on(Sm::new(9, 0), &scaled(ScaleMode::Block, k));
            assert_eq!(r.len(), 1, "{k}: {r:?}");
            assert!(r[0].contains("multiple of 4"), "{r:?}");
            // Row scales have no such rule.
            assert!(reasons_on(Sm::new(9, 0), &scaled(ScaleMode::Row, k)).is_empty());
        }
    }

    #[test]
    fn block_scales_need_m_in_fours() {
        // m = 1 and 37 found no algorithm on an H100; 4, 36, 40 and 64 did.
        for m in [4, 36, 40, 64] {
            let p = ScaledGemmProblem {
                m,
                ..scaled(ScaleMode::Block, 512)
            };
            assert!(reasons_on(Sm::new(9, 0), &p).is_empty(), "{m}");
        }
        for m in [1, 37, 66] {
            let p = ScaledGemmProblem {
                m,
                ..scaled(ScaleMode::Block, 512)
            };
            let r = reasons_on(Sm::new(9, 0), &p);
            assert_eq!(r.len(), 1, "{m}: {r:?}");
            assert!(r[0].contains(&format!("m = {m}")), "{r:?}");
            // Row scales take any m.
            let p = ScaledGemmProblem {
                m,
                ..scaled(ScaleMode::Row, 512)
            };
            assert!(reasons_on(Sm::new(9, 0), &p).is_empty(), "{m}");
        }
    }

    #[test]
    fn scale_modes_map_our_b_to_cublaslts_a() {
        use lt_ext::scale_mode as s;
        assert_eq!(
            lt_scale_modes(ScaleMode::Tensor),
            (s::SCALAR_32F, s::SCALAR_32F)
        );
        assert_eq!(
            lt_scale_modes(ScaleMode::Row),
            (s::OUTER_VEC_32F, s::OUTER_VEC_32F)
        );
        // cuBLASLt's A is our B (128x128 blocks), its B our A (1x128).
        assert_eq!(
            lt_scale_modes(ScaleMode::Block),
            (s::BLK128X128_32F, s::VEC128_32F)
        );
    }
}
