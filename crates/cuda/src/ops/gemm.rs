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
//!   problem) and cached; the heuristic is told the problem's least alignment, so the
//!   algorithm it picks is valid for every call the problem describes.
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
use std::ffi::c_void;
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
.nondeterministic();

fn cuda_type(dtype: DType) -> Option<ltsys::cudaDataType> {
    match dtype {
        DType::F32 => Some(ltsys::cudaDataType::CUDA_R_32F),
        DType::F16 => Some(ltsys::cudaDataType::CUDA_R_16F),
        DType::BF16 => Some(ltsys::cudaDataType::CUDA_R_16BF),
        _ => None,
    }
}

/// cuBLASLt's availability (probed with the platform), the dtypes it is given, and the sizes
/// its 32-bit API takes.
fn check(caps: &Capabilities, p: &GemmProblem, reasons: &mut Vec<Reason>) {
    if let Ok(platform) = platform() {
        if let Err(why) = &platform.cublaslt {
            reasons.push(Reason::BackendUnavailable {
                backend: "cuda (cuBLASLt)",
                why: why.clone(),
            });
        }
    }
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

/// Makes the handle, the plan and `ctx.stream`'s workspace, so launches make nothing.
fn prepare(_: &KernelMeta, ctx: &LaunchCtx<'_>, p: &GemmProblem) -> Result<(), Error> {
    let stream = ctx.stream;
    bind(stream.device())?;
    let handle = handle(stream)?;
    plan(stream, handle, p)?;
    workspace(stream)?;
    Ok(())
}

fn launch(ctx: &LaunchCtx<'_>, a: &mut GemmArgs<'_>, p: &GemmProblem) -> Result<(), Error> {
    let stream = ctx.stream;
    bind(stream.device())?;
    let handle = handle(stream)?;
    let plan = plan(stream, handle, p)?;
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
            workspace as *mut c_void,
            WORKSPACE_BYTES,
            stream.raw() as ltsys::cudaStream_t,
        )
    }
    .map_err(|e| {
        CudaError::Cublas {
            call: "cublasLtMatmul",
            code: format!("{:?}", e.0),
        }
        .into()
    })
}

fn lt_err(call: &'static str) -> impl Fn(lt::CublasError) -> Error {
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
struct Handle(ltsys::cublasLtHandle_t);
// SAFETY: a cuBLASLt handle may be used from several threads (it holds no per-call state).
unsafe impl Send for Handle {}
// SAFETY: as above.
unsafe impl Sync for Handle {}

/// The device's cuBLASLt handle, made on first use (refused on a capturing `stream`).
fn handle(stream: &Stream) -> Result<Handle, Error> {
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

/// `stream`'s workspace, allocated on first use (refused on a capturing stream). The caller
/// bound the device.
fn workspace(stream: &Stream) -> Result<drvsys::CUdeviceptr, Error> {
    let key = stream_key(stream)?;
    let mut map = workspaces().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&w) = map.get(&key) {
        return Ok(w);
    }
    guard(stream, || {
        format!("allocating the {WORKSPACE_BYTES}-byte cuBLASLt workspace for this stream")
    })?;
    // SAFETY: the device's context is current (bound by the caller).
    let w = crate::error::drv("cuMemAlloc", unsafe { drv::malloc_sync(WORKSPACE_BYTES) })?;
    tracing::debug!(
        device = %stream.device(),
        stream_id = key.1,
        bytes = WORKSPACE_BYTES,
        "kernelyard: cuBLASLt workspace allocated"
    );
    map.insert(key, w);
    Ok(w)
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

type PlanCache = Mutex<HashMap<(u32, GemmProblem), Arc<Plan>>>;

/// The problem's descriptors and algorithm on `stream`'s device, made on first use (refused on
/// a capturing stream: the heuristic query is not a stream operation, but a launch in a
/// capture makes nothing, so what a replay runs is exactly what was prepared).
fn plan(stream: &Stream, handle: Handle, p: &GemmProblem) -> Result<Arc<Plan>, Error> {
    static PLANS: OnceLock<PlanCache> = OnceLock::new();
    let cache = PLANS.get_or_init(Default::default);
    let key = (stream.device().index, p.clone());
    if let Some(plan) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(Arc::clone(plan));
    }
    guard(stream, || {
        "choosing the cuBLASLt algorithm for this problem".to_owned()
    })?;
    let plan = Arc::new(make_plan(handle, p)?);
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

fn make_plan(handle: Handle, p: &GemmProblem) -> Result<Plan, Error> {
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
    // SAFETY: `pref` is live; each attribute gets a value of its documented type.
    let heuristic =
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
            let h = lt::get_matmul_algo_heuristic(handle.0, desc, lt_a, lt_b, lt_c, lt_c, pref);
            let _ = lt::destroy_matmul_pref(pref);
            h
        };
    let heuristic = heuristic.map_err(|e| {
        Error::from(CudaError::NoAlgorithm {
            what: format!("{p:?} ({:?})", e.0),
        })
    })?;
    Ok(Plan {
        desc,
        lt_a,
        lt_b,
        lt_c,
        algo: heuristic.algo,
    })
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
    fn every_catalog_float_has_a_cuda_type() {
        for d in DType::FLOATS {
            assert!(cuda_type(*d).is_some(), "{d}");
        }
        assert!(cuda_type(DType::I32).is_none());
    }
}
