//! `cuda.rms_norm`: `y = x / sqrt(mean(x^2) + eps) * weight` over each row, with the fused
//! residual add, from `kernels/rms_norm.cu`.
//!
//! # Who does what
//! Core validated the views (contiguous `[rows, hidden]` x, out, residual and residual_out,
//! `[hidden]` weight, one dtype, one device, no overlap, finite `eps >= 0`) into the
//! [`RmsNormProblem`](kernelyard_core::ops::rms_norm::RmsNormProblem); this file picks the
//! entry point and launch shape and launches; the kernel assumes valid inputs. Math is f32 for
//! every dtype. With a residual, `x' = x + residual` is rounded to the dtype and written to
//! `residual_out`, and `y` is the norm of that stored `x'` (`_res` entry points; the plain
//! ones hold no residual registers).
//!
//! # Launch configuration
//! [`RowPlan`] from `hidden` and the element size alone, as for
//! [`softmax`](crate::ops::softmax) (see its table), without the shared-memory path:
//! - `hidden <= 1024`: a group of up to 32 threads per row, several rows per 128-thread block;
//! - `hidden <= 16384`: one row per block of up to 512 threads (256 for 8192 bf16: 4 chunks of
//!   8 per thread), the row and the weight chunks a thread needs in registers as raw storage
//!   (half the registers of f32 for 16-bit types: four or more blocks per SM), every load
//!   issued before the first use;
//! - longer rows: one row per 512-thread block, two passes: x (and the residual) streamed once
//!   while residual_out is written and the squares summed, then x' read again (from L2 while
//!   the rows in flight fit in it), last part first.
//!
//! The reduction order depends on `hidden` only: deterministic and batch-invariant.
//!
//! # Bytes moved
//! Plain: `2 * rows * hidden * size` plus the weight once (every row re-reads it, from L1/L2).
//! Fused: `4 * rows * hidden * size` plus the weight (x and residual read, y and residual_out
//! written). Rows past 16384 elements add a second read of x' from L2 (from device memory when
//! the rows in flight do not fit in L2).

use std::ffi::c_void;

use kernelyard_core::{
    Args, Capabilities, Error, Kernel, KernelMeta, OpKind, Problem, Reason, Stream,
};

use crate::launch::launch;
use crate::ops::softmax::{check_rows, symbol, RowPlan};
use crate::ops::{nvrtc_meta, wrong_op};
use crate::source::KernelSource;

pub(crate) static SOURCE: KernelSource = KernelSource {
    file: "rms_norm.cu",
    code: include_str!("../../../../kernels/rms_norm.cu"),
    symbols: &[
        "rms_norm_f32_v1",
        "rms_norm_f32_v1_res",
        "rms_norm_f32_v2",
        "rms_norm_f32_v2_res",
        "rms_norm_f32_v4",
        "rms_norm_f32_v4_res",
        "rms_norm_f32_v8",
        "rms_norm_f32_v8_res",
        "rms_norm_f32_s1",
        "rms_norm_f32_s1_res",
        "rms_norm_f32_s2",
        "rms_norm_f32_s2_res",
        "rms_norm_f32_s4",
        "rms_norm_f32_s4_res",
        "rms_norm_f32_s8",
        "rms_norm_f32_s8_res",
        "rms_norm_f32_long_v",
        "rms_norm_f32_long_v_res",
        "rms_norm_f32_long_s",
        "rms_norm_f32_long_s_res",
        "rms_norm_f16_v1",
        "rms_norm_f16_v1_res",
        "rms_norm_f16_v2",
        "rms_norm_f16_v2_res",
        "rms_norm_f16_v4",
        "rms_norm_f16_v4_res",
        "rms_norm_f16_s1",
        "rms_norm_f16_s1_res",
        "rms_norm_f16_s2",
        "rms_norm_f16_s2_res",
        "rms_norm_f16_s4",
        "rms_norm_f16_s4_res",
        "rms_norm_f16_long_v",
        "rms_norm_f16_long_v_res",
        "rms_norm_f16_long_s",
        "rms_norm_f16_long_s_res",
        "rms_norm_bf16_v1",
        "rms_norm_bf16_v1_res",
        "rms_norm_bf16_v2",
        "rms_norm_bf16_v2_res",
        "rms_norm_bf16_v4",
        "rms_norm_bf16_v4_res",
        "rms_norm_bf16_s1",
        "rms_norm_bf16_s1_res",
        "rms_norm_bf16_s2",
        "rms_norm_bf16_s2_res",
        "rms_norm_bf16_s4",
        "rms_norm_bf16_s4_res",
        "rms_norm_bf16_long_v",
        "rms_norm_bf16_long_v_res",
        "rms_norm_bf16_long_s",
        "rms_norm_bf16_long_s_res",
    ],
};

/// The `cuda.rms_norm` kernel.
pub struct CudaRmsNorm;

/// Its registration.
pub static RMS_NORM: CudaRmsNorm = CudaRmsNorm;
crate::register!(RMS_NORM);

const META: KernelMeta = nvrtc_meta(
    "cuda.rms_norm",
    OpKind::RmsNorm,
    module_path!(),
    "RMSNorm over rows with the fused residual add, f32 math; row in registers, 16-byte accesses",
);

/// The plan for rows of `hidden` elements (no shared-memory path).
pub fn plan(hidden: usize, elem_bytes: usize, align: usize) -> RowPlan {
    RowPlan::new(hidden, elem_bytes, align, None)
}

impl Kernel for CudaRmsNorm {
    fn meta(&self) -> &KernelMeta {
        &META
    }

    fn check_problem(&self, _caps: &Capabilities, problem: &Problem, reasons: &mut Vec<Reason>) {
        if let Problem::RmsNorm(p) = problem {
            check_rows(p.rows, p.hidden, p.dtype.size(), reasons);
        }
    }

    fn launch(&self, stream: &Stream, args: &mut Args<'_>, problem: &Problem) -> Result<(), Error> {
        let (Args::RmsNorm(a), Problem::RmsNorm(p)) = (args, problem) else {
            return Err(wrong_op(META.name, META.op, problem.op()));
        };
        let plan = plan(p.hidden, p.dtype.size(), p.align);
        // Core validated that residual and residual_out come together; the pointers decide.
        let (residual, residual_out): (*const c_void, *mut c_void) =
            match (&a.residual, &mut a.residual_out) {
                (Some(r), Some(ro)) => (r.as_ptr(), ro.as_mut_ptr()),
                _ => (std::ptr::null(), std::ptr::null_mut()),
            };
        let fused = !residual.is_null();
        let suffix = if fused { "_res" } else { "" };
        let symbol = symbol(&SOURCE, "rms_norm", p.dtype, plan.variant(), suffix)?;
        let x = a.x.as_ptr();
        let weight = a.weight.as_ptr();
        let y = a.out.as_mut_ptr();
        let (rows, cols, tpr, eps) = (p.rows as i64, p.hidden as i64, i64::from(plan.tpr), a.eps);
        // SAFETY: the parameters match `rms_norm_<dtype>_<variant>[_res](const void* x, const
        // void* residual, const void* weight, void* y, void* residual_out, long long rows, long
        // long cols, long long tpr, float eps)`; core validated the views (device, bounds,
        // shapes, dtype, no overlap); the `_res` entry point is chosen exactly when both
        // residual pointers are set, and the plain one never reads them; the plan's block and
        // tpr are the ones the entry point expects.
        unsafe {
            launch(
                stream,
                &SOURCE,
                symbol,
                plan.dims(p.rows),
                &mut crate::params![x, residual, weight, y, residual_out, rows, cols, tpr, eps],
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::softmax::RowPath;
    use kernelyard_core::DType;

    #[test]
    fn target_shapes() {
        // 4096 bf16: 2 chunks of 8 per thread, 256 threads; 8192 bf16: 4 chunks, 256 threads.
        let p = plan(4096, 2, 16);
        assert_eq!(
            (p.path, p.block, p.tpr),
            (RowPath::Register { chunks: 2 }, 256, 256)
        );
        let p = plan(8192, 2, 16);
        assert_eq!(
            (p.path, p.block, p.tpr),
            (RowPath::Register { chunks: 4 }, 256, 256)
        );
        assert_eq!(p.dims(4096).shared_bytes, 0);
        // Past the registers: two passes, never the shared-memory path.
        let p = plan(32768, 2, 16);
        assert_eq!(
            (p.path, p.block, p.variant()),
            (RowPath::Long, 512, "long_v")
        );
        // Short rows share a block.
        let p = plan(64, 4, 16);
        assert_eq!((p.tpr, p.rows_per_block()), (16, 8));
    }

    #[test]
    fn every_plan_names_a_listed_entry_point() {
        for dtype in DType::FLOATS.iter().copied() {
            for cols in (1..=20_000).chain([32_768, 32_769, 262_144]) {
                for align in [dtype.size(), 16] {
                    let v = plan(cols, dtype.size(), align).variant();
                    for suffix in ["", "_res"] {
                        let s = symbol(&SOURCE, "rms_norm", dtype, v, suffix).unwrap();
                        assert_eq!(s.ends_with("_res"), suffix == "_res", "{s}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_listed_entry_point_is_in_the_source() {
        // `KY_RMS_REG(rms_norm_##D##_<variant>, ...)` makes `<variant>` and `<variant>_res`.
        for s in SOURCE.symbols {
            let base = s.strip_suffix("_res").unwrap_or(s);
            let variant = base
                .strip_prefix("rms_norm_")
                .and_then(|r| r.split_once('_'))
                .map(|(_, v)| v)
                .unwrap();
            let per_dtype = format!("rms_norm_##D##_{variant},");
            assert!(
                SOURCE.code.contains(&per_dtype) || SOURCE.code.contains(&format!("({base},")),
                "{s}"
            );
        }
    }
}
