//! `cuda.gemm.cublaslt`: `C = alpha * op(A) @ op(B) + beta * C` through cuBLASLt.
//!
//! - **Layout.** kernelyard's matrices are row-major; cuBLASLt's default is column-major. A
//!   row-major `[r, c]` matrix with row stride `ld` is the column-major `[c, r]` matrix with the
//!   same `ld`, so the row-major `C = op(A) op(B)` is computed as the column-major
//!   `C^T = op(B)^T op(A)^T`: cuBLASLt's A is our B, its B is our A, and `m`/`n` swap.
//! - **Types.** A and B f32/f16/bf16, C that dtype or f32; compute in f32
//!   (`CUBLAS_COMPUTE_32F`: no TF32 for f32 inputs, matching `torch.matmul` with TF32 off);
//!   alpha and beta are f32 on the host. With `beta == 0` C is not read.
//! - **Batch.** Strided batches; a broadcast operand has batch stride 0.
//! - **Plans.** Descriptors, layouts and the heuristic's algorithm are made once per (device,
//!   problem, tactic) and cached; the heuristic is told the problem's least alignment, so the
//!   algorithms it offers are valid for every call the problem describes.
//! - **Tactics** ([`TACTICS`]: `algo0` to `algo7`). The heuristic
//!   (`cublasLtMatmulAlgoGetHeuristic`, the same preference: workspace and alignments) is asked
//!   for up to eight algorithms, best first; those it marks usable (state `SUCCESS`) are the
//!   list, and `cuda.gemm.cublaslt@algoK` runs its K-th entry. No tactic is `algo0`, the
//!   heuristic's first, as before tactics. The list is the heuristic's answer for this problem,
//!   this device and this cuBLASLt: it may be shorter than eight, and a tactic beyond it is
//!   [`CudaError::AlgorithmIndex`] from the launch (and from
//!   [`Plan::prepare`](kernelyard_core::Plan::prepare)), never a fallback to another
//!   algorithm; the tuner records it as that candidate's rejection. Selection cannot reject it
//!   earlier: the list is known only once cuBLASLt is asked on the device. The indices change
//!   with cuBLASLt's version, so the CUDA backend reports that version
//!   ([`library_versions`](kernelyard_core::Backend::library_versions)) and a tuning entry
//!   measured with another cuBLASLt is stale.
//! - **Workspace.** 32 MiB per stream, allocated on first use (or by
//!   [`Plan::prepare`](kernelyard_core::Plan::prepare)) and kept until the stream is released
//!   ([`release_stream`](crate::release_stream); streams made by kernelyard release theirs when
//!   they are destroyed), as PyTorch does, so concurrent streams never share one. Keyed by the
//!   stream's unique id ([`stream_id`](crate::capture::stream_id)), not its handle: candle's
//!   per-thread default stream has the same handle on every thread, and a destroyed stream's
//!   handle can come back as a new stream's.
//! - **CUDA graphs.** A launch whose handle, plan or workspace is not made yet makes it, except
//!   on a stream that is capturing a graph: then it returns `CaptureForbidden` and queues
//!   nothing. [`Plan::prepare`](kernelyard_core::Plan::prepare) makes all three.
//! - **Not batch-invariant, not declared deterministic.** The algorithm (tile shape, split-K)
//!   depends on M, so a row's result changes with the batch it rides in; selection with the
//!   `deterministic` or `batch_invariant` constraint never returns this kernel.

use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublaslt::{result as lt, sys as ltsys};
use cudarc::driver::{result as drv, sys as drvsys};
use kernelyard_core::ops::gemm::{Gemm, GemmArgs, GemmProblem};
use kernelyard_core::{
    Capabilities, DType, DeviceKind, Error, Feature, KernelDef, KernelMeta, LaunchCtx, Reason,
    Stream,
};

use crate::capture::{guard, stream_key};
use crate::device::{bind, platform};
use crate::error::CudaError;
use crate::ops::SM75_AND_NEWER;

/// Workspace per (device, stream), bytes.
pub const WORKSPACE_BYTES: usize = 32 << 20;

/// The kernel's tactics: `algoK` runs the K-th algorithm of cuBLASLt's heuristic list for the
/// problem (see the module docs); no tactic is `algo0`.
pub const TACTICS: &[&str] = &[
    "algo0", "algo1", "algo2", "algo3", "algo4", "algo5", "algo6", "algo7",
];

/// How many algorithms the heuristic is asked for: one per tactic.
const HEURISTIC_ALGOS: usize = TACTICS.len();

/// The `cuda.gemm.cublaslt` kernel.
pub static GEMM_CUBLASLT: KernelDef<Gemm> = KernelDef::<Gemm>::new(META, launch)
    .with_check(check)
    .with_prepare(prepare);
kernelyard_core::register!(GEMM_CUBLASLT);

// Not an NVRTC kernel, so not `nvrtc_meta`: the same arch range, declared neither
// deterministic nor batch-invariant (cuBLASLt's algorithm depends on M).
const META: KernelMeta = KernelMeta::new::<Gemm>(
    "cuda.gemm.cublaslt",
    crate::BACKEND,
    DeviceKind::Cuda,
    SM75_AND_NEWER,
    module_path!(),
    "cuBLASLt matmul (f32 compute); fast, but not batch-invariant",
)
.nondeterministic()
.tactics(TACTICS);

/// The index into the heuristic's list that `tactic` names (`None`, the default: 0).
fn algo_index(tactic: Option<&'static str>) -> Result<usize, Error> {
    match tactic {
        None => Ok(0),
        Some(t) => TACTICS
            .iter()
            .position(|x| *x == t)
            .ok_or(Error::NoSuchTactic {
                kernel: META.name,
                tactic: t,
            }),
    }
}

/// cuBLASLt's type code for `dtype`, for the types kernelyard hands it (FP8 for
/// `cuda.scaled_gemm.cublaslt`, packed FP4 for `cuda.scaled_gemm.fp4.cublaslt`: only with
/// CUDA 12.8+ bindings, [`crate::lt_ext`]).
pub(crate) fn cuda_type(dtype: DType) -> Option<ltsys::cudaDataType> {
    match dtype {
        DType::F4E2M1X2 => crate::lt_ext::data_type(crate::lt_ext::CUDA_R_4F_E2M1),
        DType::F8E4M3 => Some(ltsys::cudaDataType::CUDA_R_8F_E4M3),
        DType::F8E5M2 => Some(ltsys::cudaDataType::CUDA_R_8F_E5M2),
        DType::F32 => Some(ltsys::cudaDataType::CUDA_R_32F),
        DType::F16 => Some(ltsys::cudaDataType::CUDA_R_16F),
        DType::BF16 => Some(ltsys::cudaDataType::CUDA_R_16BF),
        _ => None,
    }
}

/// cuBLASLt's availability (probed with the platform), the dtypes it is given, and the sizes
/// its 32-bit API takes.
fn check(caps: &Capabilities, p: &GemmProblem, reasons: &mut Vec<Reason>) {
    check_available(reasons);
    if (p.dtype == DType::BF16 || p.c_dtype == DType::BF16) && !caps.has(Feature::Bf16) {
        reasons.push(Reason::MissingFeature {
            feature: Feature::Bf16,
        });
    }
    if p.c_dtype != p.dtype && p.c_dtype != DType::F32 {
        reasons.push(Reason::ShapeUnsupported {
            what: format!("C of dtype {} with A/B of {}", p.c_dtype, p.dtype),
        });
    }
    let too_big = [p.m, p.n, p.k, p.lda, p.ldb, p.ldc, p.batch]
        .iter()
        .any(|&d| d > i32::MAX as usize);
    if too_big {
        reasons.push(Reason::ShapeUnsupported {
            what: "a dimension or leading dimension above 2^31 - 1".to_owned(),
        });
    }
}

/// A `BackendUnavailable` reason when the platform probe found no cuBLASLt.
pub(crate) fn check_available(reasons: &mut Vec<Reason>) {
    if let Ok(platform) = platform() {
        if let Err(why) = &platform.cublaslt {
            reasons.push(Reason::BackendUnavailable {
                backend: "cuda (cuBLASLt)",
                why: why.clone(),
            });
        }
    }
}

/// Makes the handle, the plan and `ctx.stream`'s workspace, so launches make nothing.
fn prepare(_: &KernelMeta, ctx: &LaunchCtx<'_>, p: &GemmProblem) -> Result<(), Error> {
    let stream = ctx.stream;
    bind(stream.device())?;
    let handle = handle(stream)?;
    plan(stream, handle, p, ctx.tactic)?;
    workspace(stream)?;
    Ok(())
}

fn launch(ctx: &LaunchCtx<'_>, a: &mut GemmArgs<'_>, p: &GemmProblem) -> Result<(), Error> {
    let stream = ctx.stream;
    bind(stream.device())?;
    let handle = handle(stream)?;
    let plan = plan(stream, handle, p, ctx.tactic)?;
    // Held until the matmul is enqueued (cuBLASLt may launch several kernels through it).
    let workspace = workspace(stream)?;
    let (alpha, beta) = (a.alpha, if p.accumulate { a.beta } else { 0.0 });
    let c = a.c.as_mut_ptr();
    // SAFETY: the plan's descriptors describe exactly these views (core validated their
    // shapes, strides, dtypes and devices into `p`); cuBLASLt's A is our B and its B our A
    // (see the module docs); C is read only when beta != 0 and written in place (D = C);
    // the workspace is this stream's own and has the size the heuristic was told.
    unsafe {
        lt::matmul(
            handle.0,
            plan.desc,
            (&alpha as *const f32).cast(),
            (&beta as *const f32).cast(),
            a.b.as_ptr(),
            plan.lt_a,
            a.a.as_ptr(),
            plan.lt_b,
            c,
            plan.lt_c,
            c,
            plan.lt_c,
            &plan.algo,
            workspace.ptr as *mut c_void,
            WORKSPACE_BYTES,
            stream.raw() as ltsys::cudaStream_t,
        )
    }
    .map_err(lt_err("cublasLtMatmul"))
}

/// Maps a cuBLASLt error of `call` to the backend's error.
pub(crate) fn lt_err(call: &'static str) -> impl Fn(lt::CublasError) -> Error {
    move |e| {
        CudaError::Cublas {
            call,
            code: format!("{:?}", e.0),
        }
        .into()
    }
}

/// A cuBLASLt handle (one per device, kept for the life of the process).
#[derive(Clone, Copy)]
pub(crate) struct Handle(pub(crate) ltsys::cublasLtHandle_t);
// SAFETY: a cuBLASLt handle may be used from several threads (it holds no per-call state).
unsafe impl Send for Handle {}
// SAFETY: as above.
unsafe impl Sync for Handle {}

/// The device's cuBLASLt handle, made on first use (refused on a capturing `stream`).
pub(crate) fn handle(stream: &Stream) -> Result<Handle, Error> {
    static HANDLES: OnceLock<Mutex<HashMap<u32, Handle>>> = OnceLock::new();
    let device = stream.device();
    let mut map = HANDLES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(&h) = map.get(&device.index) {
        return Ok(h);
    }
    guard(stream, || "creating the cuBLASLt handle".to_owned())?;
    let h = Handle(lt::create_handle().map_err(lt_err("cublasLtCreate"))?);
    map.insert(device.index, h);
    Ok(h)
}

/// Workspaces by (device, stream id).
type Workspaces = Mutex<HashMap<(u32, u64), drvsys::CUdeviceptr>>;

fn workspaces() -> &'static Workspaces {
    static WORKSPACES: OnceLock<Workspaces> = OnceLock::new();
    WORKSPACES.get_or_init(Default::default)
}

/// `stream`'s workspace ([`WORKSPACE_BYTES`]), allocated on first use (refused on a capturing
/// stream), held for the caller (see [`Workspace`]). cuBLASLt uses it during a matmul, the
/// split paths of `cuda.token_logprobs`, `cuda.attention.decode`, `cuda.attention.decode.mma`
/// and the sm90 invariant GEMM for their partial results: work on one stream runs in order and
/// each enqueues its launches while holding it, so they never overlap, and none keeps anything
/// in it between launches. The caller bound the device.
pub(crate) fn workspace(stream: &Stream) -> Result<Workspace, Error> {
    let key = stream_key(stream)?;
    // The sequence lock first, then the map's (the only order either is taken in).
    let seq = sequence_lock(key).lock().unwrap_or_else(|e| e.into_inner());
    let mut map = workspaces().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&w) = map.get(&key) {
        return Ok(Workspace { ptr: w, _seq: seq });
    }
    guard(stream, || {
        format!(
            "allocating the {WORKSPACE_BYTES}-byte stream workspace (cuBLASLt, split \
             token_logprobs, attention decode, the sm90 GEMM's split-K) for this stream"
        )
    })?;
    // SAFETY: the device's context is current (bound by the caller).
    let w = crate::error::drv("cuMemAlloc", unsafe { drv::malloc_sync(WORKSPACE_BYTES) })?;
    tracing::debug!(
        device = %stream.device(),
        stream_id = key.1,
        bytes = WORKSPACE_BYTES,
        "kernelyard: stream workspace allocated"
    );
    map.insert(key, w);
    Ok(Workspace { ptr: w, _seq: seq })
}

/// A stream's workspace while its user enqueues the launches that use it.
///
/// Several host threads may share a stream (an embedder's default stream). A user whose
/// launches pass data through the workspace (partial sums, then a kernel that combines them)
/// must enqueue them with no other user's launch in between, or the second kernel could read
/// another thread's partials: holding this keeps every other user of the same stream's
/// workspace waiting until the sequence is enqueued (microseconds; nothing waits for the GPU).
/// Streams share 64 such locks by a hash of their key, so two streams may wait on each other
/// for as long as an enqueue takes, never longer.
pub(crate) struct Workspace {
    /// The device address of the [`WORKSPACE_BYTES`] bytes.
    pub(crate) ptr: drvsys::CUdeviceptr,
    _seq: std::sync::MutexGuard<'static, ()>,
}

/// The enqueue lock of the stream `key` (one of 64).
fn sequence_lock(key: (u32, u64)) -> &'static Mutex<()> {
    static LOCKS: [Mutex<()>; 64] = [const { Mutex::new(()) }; 64];
    let h = (u64::from(key.0).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ key.1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    &LOCKS[(h >> 58) as usize]
}

/// Frees `stream`'s workspace, if it has one, after the stream has finished the work queued on
/// it (see [`crate::release_stream`]). The caller bound the device.
pub(crate) fn release_workspace(stream: &Stream) -> Result<(), Error> {
    let key = stream_key(stream)?;
    let Some(w) = workspaces()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&key)
    else {
        return Ok(());
    };
    // SAFETY: the stream is live (the caller's contract); after it drains no queued work uses
    // the workspace, which was allocated by `workspace` and is freed once (it left the map).
    unsafe {
        crate::error::drv(
            "cuStreamSynchronize",
            drv::stream::synchronize(stream.raw() as drvsys::CUstream),
        )?;
        crate::error::drv("cuMemFree", drv::free_sync(w))?;
    }
    Ok(())
}

/// Descriptors and algorithm for one problem on one device.
struct Plan {
    desc: ltsys::cublasLtMatmulDesc_t,
    lt_a: ltsys::cublasLtMatrixLayout_t,
    lt_b: ltsys::cublasLtMatrixLayout_t,
    lt_c: ltsys::cublasLtMatrixLayout_t,
    algo: ltsys::cublasLtMatmulAlgo_t,
}
// SAFETY: the descriptors are only read after creation (cuBLASLt reads them during a call).
unsafe impl Send for Plan {}
// SAFETY: as above.
unsafe impl Sync for Plan {}

/// A plan's key: the device's index, the problem, and the index into the heuristic's list
/// (the tactic's), so plans of different tactics never mix.
type PlanKey = (u32, GemmProblem, usize);

type PlanCache = Mutex<HashMap<PlanKey, Arc<Plan>>>;

/// The key of the plan for `p` on device `device` with `tactic`.
fn plan_key(device: u32, p: &GemmProblem, tactic: Option<&'static str>) -> Result<PlanKey, Error> {
    Ok((device, p.clone(), algo_index(tactic)?))
}

/// The problem's descriptors and the tactic's algorithm on `stream`'s device, made on first
/// use (refused on a capturing stream: the heuristic query is not a stream operation, but a
/// launch in a capture makes nothing, so what a replay runs is exactly what was prepared).
fn plan(
    stream: &Stream,
    handle: Handle,
    p: &GemmProblem,
    tactic: Option<&'static str>,
) -> Result<Arc<Plan>, Error> {
    static PLANS: OnceLock<PlanCache> = OnceLock::new();
    let cache = PLANS.get_or_init(Default::default);
    let key = plan_key(stream.device().index, p, tactic)?;
    if let Some(plan) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(Arc::clone(plan));
    }
    guard(stream, || {
        "choosing the cuBLASLt algorithm for this problem".to_owned()
    })?;
    let plan = Arc::new(make_plan(handle, p, key.2, tactic)?);
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    // Plans are small; a process with very many shapes keeps the newest 4096.
    if map.len() >= 4096 {
        map.clear();
    }
    map.insert(key, Arc::clone(&plan));
    Ok(plan)
}

/// The column-major view of the problem cuBLASLt computes: `(rows, cols, ld, transposed)` for
/// its A (our B) and its B (our A), and `(m, n)` of its output.
pub(crate) fn lt_shapes(p: &GemmProblem) -> ([usize; 3], bool, [usize; 3], bool, [usize; 2]) {
    // Our B, stored row-major `[k, n]` (or `[n, k]` when transposed), is column-major
    // `[n, k]` (or `[k, n]`); cuBLASLt needs op(B)^T = `[n, k]`.
    let a = if p.trans_b {
        [p.k, p.n, p.ldb]
    } else {
        [p.n, p.k, p.ldb]
    };
    // Our A, stored `[m, k]` (or `[k, m]`), is column-major `[k, m]` (or `[m, k]`); cuBLASLt
    // needs op(A)^T = `[k, m]`.
    let b = if p.trans_a {
        [p.m, p.k, p.lda]
    } else {
        [p.k, p.m, p.lda]
    };
    (a, p.trans_b, b, p.trans_a, [p.n, p.m])
}

/// A heuristic result slot before cuBLASLt fills it (never read unless filled).
pub(crate) const NO_RESULT: ltsys::cublasLtMatmulHeuristicResult_t =
    ltsys::cublasLtMatmulHeuristicResult_t {
        algo: ltsys::cublasLtMatmulAlgo_t { data: [0; 8] },
        workspaceSize: 0,
        state: ltsys::cublasStatus_t::CUBLAS_STATUS_NOT_INITIALIZED,
        wavesCount: 0.0,
        reserved: [0; 4],
    };

/// The algorithms of a heuristic answer that cuBLASLt marks usable (state `SUCCESS`), in its
/// order (best first): the list the tactics index.
fn usable_algos(
    results: &[ltsys::cublasLtMatmulHeuristicResult_t],
) -> Vec<ltsys::cublasLtMatmulAlgo_t> {
    results
        .iter()
        .filter(|r| r.state == ltsys::cublasStatus_t::CUBLAS_STATUS_SUCCESS)
        .map(|r| r.algo)
        .collect()
}

/// The algorithm at `index` of the heuristic's usable list `algos` for `p` (the index `tactic`
/// names; `None` is the default, index 0), or why there is none: no algorithm at all, or fewer
/// than the tactic needs (never another algorithm instead).
fn choose(
    algos: &[ltsys::cublasLtMatmulAlgo_t],
    index: usize,
    tactic: Option<&'static str>,
    p: &GemmProblem,
) -> Result<ltsys::cublasLtMatmulAlgo_t, CudaError> {
    if algos.is_empty() {
        return Err(CudaError::NoAlgorithm {
            what: format!("{p:?} (its heuristic offers none)"),
        });
    }
    algos.get(index).copied().ok_or(CudaError::AlgorithmIndex {
        tactic: tactic.unwrap_or(TACTICS[0]),
        offered: algos.len(),
    })
}

/// The descriptors of `p` and the algorithm at `index` of the heuristic's list (the tactic
/// `tactic`'s).
fn make_plan(
    handle: Handle,
    p: &GemmProblem,
    index: usize,
    tactic: Option<&'static str>,
) -> Result<Plan, Error> {
    let ab_type = cuda_type(p.dtype).ok_or_else(|| CudaError::Misuse {
        what: format!("gemm in {}", p.dtype),
    })?;
    let c_type = cuda_type(p.c_dtype).ok_or_else(|| CudaError::Misuse {
        what: format!("gemm C in {}", p.c_dtype),
    })?;
    let (a, ta, b, tb, [m, n]) = lt_shapes(p);
    let desc = lt::create_matmul_desc(
        ltsys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
        ltsys::cudaDataType::CUDA_R_32F,
    )
    .map_err(lt_err("cublasLtMatmulDescCreate"))?;
    // `cublasOperation_t` (CUBLAS_OP_N = 0, CUBLAS_OP_T = 1), an i32; cudarc's cuBLASLt
    // bindings do not include the enum.
    let op = |t: bool| -> i32 { i32::from(t) };
    let (opa, opb) = (op(ta), op(tb));
    // SAFETY: `desc` is live; each attribute gets a value of its documented type and size.
    unsafe {
        lt::set_matmul_desc_attribute(
            desc,
            ltsys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSA,
            (&opa as *const i32).cast(),
            std::mem::size_of_val(&opa),
        )
        .map_err(lt_err("cublasLtMatmulDescSetAttribute(TRANSA)"))?;
        lt::set_matmul_desc_attribute(
            desc,
            ltsys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSB,
            (&opb as *const i32).cast(),
            std::mem::size_of_val(&opb),
        )
        .map_err(lt_err("cublasLtMatmulDescSetAttribute(TRANSB)"))?;
    }
    let layout = |ty, dims: [usize; 3], batch_stride: usize| {
        let l = lt::create_matrix_layout(ty, dims[0] as u64, dims[1] as u64, dims[2] as i64)
            .map_err(lt_err("cublasLtMatrixLayoutCreate"))?;
        if p.batch > 1 {
            let count = p.batch as i32;
            let stride = batch_stride as i64;
            // SAFETY: `l` is live; the attributes take an i32 and an i64.
            unsafe {
                lt::set_matrix_layout_attribute(
                    l,
                    ltsys::cublasLtMatrixLayoutAttribute_t::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                    (&count as *const i32).cast(),
                    4,
                )
                .map_err(lt_err("cublasLtMatrixLayoutSetAttribute(BATCH_COUNT)"))?;
                lt::set_matrix_layout_attribute(
                    l,
                    ltsys::cublasLtMatrixLayoutAttribute_t::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                    (&stride as *const i64).cast(),
                    8,
                )
                .map_err(lt_err("cublasLtMatrixLayoutSetAttribute(STRIDED_BATCH_OFFSET)"))?;
            }
        }
        Ok::<_, Error>(l)
    };
    let lt_a = layout(ab_type, a, p.batch_stride_b)?;
    let lt_b = layout(ab_type, b, p.batch_stride_a)?;
    let lt_c = layout(c_type, [m, n, p.ldc], p.batch_stride_c)?;
    let pref = lt::create_matmul_pref().map_err(lt_err("cublasLtMatmulPreferenceCreate"))?;
    let ws = WORKSPACE_BYTES as u64;
    let align = p.align.max(1) as u32;
    let mut results = [NO_RESULT; HEURISTIC_ALGOS];
    let mut returned: c_int = 0;
    // SAFETY: `pref` is live; each attribute gets a value of its documented type. The handle,
    // the descriptor and the layouts are live and describe `p`; `results` has room for the
    // `HEURISTIC_ALGOS` results asked for, and `returned` is a valid out-pointer.
    let status =
        unsafe {
            lt::set_matmul_pref_attribute(
            pref,
            ltsys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
            (&ws as *const u64).cast(),
            8,
        )
        .map_err(lt_err("cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)"))?;
            for attr in [
            ltsys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
            ltsys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
            ltsys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
            ltsys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
        ] {
            lt::set_matmul_pref_attribute(pref, attr, (&align as *const u32).cast(), 4)
                .map_err(lt_err("cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)"))?;
        }
            let status = ltsys::cublasLtMatmulAlgoGetHeuristic(
                handle.0,
                desc,
                lt_a,
                lt_b,
                lt_c,
                lt_c,
                pref,
                HEURISTIC_ALGOS as c_int,
                results.as_mut_ptr(),
                &mut returned,
            );
            let _ = lt::destroy_matmul_pref(pref);
            status
        };
    // cuBLASLt filled the first `returned` slots (at most the number asked for).
    let filled = &results[..usize::try_from(returned).unwrap_or(0).min(HEURISTIC_ALGOS)];
    let chosen = status
        .result()
        .map_err(|e| CudaError::NoAlgorithm {
            what: format!("{p:?} ({:?})", e.0),
        })
        .and_then(|()| choose(&usable_algos(filled), index, tactic, p));
    match chosen {
        Ok(algo) => Ok(Plan {
            desc,
            lt_a,
            lt_b,
            lt_c,
            algo,
        }),
        Err(e) => {
            // SAFETY: the descriptor and the layouts were made above for this plan, which is
            // not made: nothing else holds them, and each is destroyed once.
            unsafe {
                let _ = lt::destroy_matrix_layout(lt_c);
                let _ = lt::destroy_matrix_layout(lt_b);
                let _ = lt::destroy_matrix_layout(lt_a);
                let _ = lt::destroy_matmul_desc(desc);
            }
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(m: usize, n: usize, k: usize, ta: bool, tb: bool) -> GemmProblem {
        GemmProblem {
            batch: 1,
            m,
            n,
            k,
            trans_a: ta,
            trans_b: tb,
            dtype: DType::BF16,
            c_dtype: DType::BF16,
            lda: if ta { m } else { k },
            ldb: if tb { k } else { n },
            ldc: n,
            batch_stride_a: 0,
            batch_stride_b: 0,
            batch_stride_c: 0,
            accumulate: false,
            align: 16,
        }
    }

    #[test]
    fn row_major_maps_to_the_transposed_column_major_product() {
        // C[m,n] = A[m,k] B[k,n]  ->  C^T[n,m] = B^T[n,k] A^T[k,m], no transposes.
        let (a, ta, b, tb, c) = lt_shapes(&problem(2, 3, 5, false, false));
        assert_eq!(
            (a, ta, b, tb, c),
            ([3, 5, 3], false, [5, 2, 5], false, [3, 2])
        );
        // A stored [k,m] transposed and B stored [n,k] transposed: both transposed in Lt.
        let (a, ta, b, tb, c) = lt_shapes(&problem(2, 3, 5, true, true));
        assert_eq!(
            (a, ta, b, tb, c),
            ([5, 3, 5], true, [2, 5, 2], true, [3, 2])
        );
    }

    #[test]
    fn tactics_name_the_first_eight_entries_of_the_heuristic_list() {
        assert_eq!(META.tactics, TACTICS);
        assert_eq!(HEURISTIC_ALGOS, 8);
        assert_eq!(algo_index(None).unwrap(), 0);
        for (i, t) in TACTICS.iter().enumerate() {
            assert_eq!(*t, format!("algo{i}"));
            assert_eq!(algo_index(Some(t)).unwrap(), i);
        }
        // A name the kernel does not declare (selection refuses it first): a typed error.
        assert_eq!(
            algo_index(Some("algo8")).unwrap_err().to_string(),
            "kernel `cuda.gemm.cublaslt` has no tactic `algo8`"
        );
    }

    #[test]
    fn plans_of_different_tactics_never_share_a_key() {
        let p = problem(37, 129, 71, false, false);
        let key = |device, tactic| plan_key(device, &p, tactic).unwrap();
        // The default is algo0's plan: the same algorithm, so the same key.
        assert_eq!(key(0, None), key(0, Some("algo0")));
        let keys: std::collections::HashSet<PlanKey> =
            TACTICS.iter().map(|t| key(0, Some(t))).collect();
        assert_eq!(keys.len(), TACTICS.len());
        assert_ne!(key(0, Some("algo3")), key(1, Some("algo3")));
        let q = problem(37, 129, 72, false, false);
        assert_ne!(
            key(0, Some("algo3")),
            plan_key(0, &q, Some("algo3")).unwrap()
        );
    }

    fn result(tag: u64, state: ltsys::cublasStatus_t) -> ltsys::cublasLtMatmulHeuristicResult_t {
        ltsys::cublasLtMatmulHeuristicResult_t {
            algo: ltsys::cublasLtMatmulAlgo_t { data: [tag; 8] },
            state,
            ..NO_RESULT
        }
    }

    #[test]
    fn the_list_keeps_the_usable_algorithms_in_the_heuristics_order() {
        use ltsys::cublasStatus_t::{
            CUBLAS_STATUS_NOT_SUPPORTED as NO, CUBLAS_STATUS_SUCCESS as OK,
        };
        let results = [result(7, OK), result(8, NO), result(9, OK), result(10, OK)];
        let tags: Vec<u64> = usable_algos(&results).iter().map(|a| a.data[0]).collect();
        assert_eq!(tags, [7, 9, 10]);
        assert!(usable_algos(&[NO_RESULT; 3]).is_empty());
    }

    #[test]
    fn a_tactic_beyond_the_list_is_an_error_never_another_algorithm() {
        use ltsys::cublasStatus_t::CUBLAS_STATUS_SUCCESS as OK;
        let p = problem(37, 129, 71, false, false);
        let algos = usable_algos(&[result(7, OK), result(8, OK), result(9, OK)]);
        assert_eq!(choose(&algos, 0, None, &p).unwrap().data[0], 7);
        assert_eq!(choose(&algos, 2, Some("algo2"), &p).unwrap().data[0], 9);
        let e = choose(&algos, 5, Some("algo5"), &p).unwrap_err();
        assert_eq!(
            e,
            CudaError::AlgorithmIndex {
                tactic: "algo5",
                offered: 3
            }
        );
        assert_eq!(
            e.to_string(),
            "cuBLASLt's heuristic offers 3 algorithms for this problem; tactic algo5 does not \
             exist (this problem has algo0 to algo2)"
        );
        // As a launch error: core's `TacticUnavailable` (the suite skips it, the tuner rejects
        // the candidate), with the same text.
        let launch: Error = e.into();
        assert!(matches!(
            launch,
            Error::TacticUnavailable {
                kernel: "cuda.gemm.cublaslt",
                tactic: "algo5",
                ..
            }
        ));
        assert!(
            launch.to_string().contains("tactic algo5 does not exist"),
            "{launch}"
        );
        assert_eq!(
            choose(&algos[..1], 1, Some("algo1"), &p)
                .unwrap_err()
                .to_string(),
            "cuBLASLt's heuristic offers 1 algorithm for this problem; tactic algo1 does not \
             exist (this problem has algo0 only)"
        );
        // No algorithm at all is what it was before tactics, whatever the tactic.
        for (i, t) in [(0, None), (4, Some("algo4"))] {
            assert!(matches!(
                choose(&[], i, t, &p),
                Err(CudaError::NoAlgorithm { .. })
            ));
        }
    }

    #[test]
    fn every_catalog_float_has_a_cuda_type() {
        for d in DType::FLOATS {
            assert!(cuda_type(*d).is_some(), "{d}");
        }
        assert!(cuda_type(DType::I32).is_none());
    }
}
