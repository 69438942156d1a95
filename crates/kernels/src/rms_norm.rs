//! The source of the RMSNorm kernels, `crates/kernels/kernels/rms_norm.cu`
//! (`y = x / sqrt(mean(x^2) + eps) * weight` over each row, with the fused residual add), and
//! their [`plan`]: the row plan of [`rows`](crate::rows) without the shared-memory path.
//!
//! Entry points: `rms_norm_<dtype>_<variant>` and, with the residual, `..._res`, all with the
//! signature `(const void* x, const void* residual, const void* weight, void* y, void*
//! residual_out, long long rows, long long cols, long long tpr, float eps)`; the plain ones
//! never read the residual pointers.
//!
//! Responsibility: core validated the views (contiguous `[rows, hidden]` x, out, residual and
//! residual_out, `[hidden]` weight, one dtype, one device, no overlap, finite `eps >= 0`) into
//! the [`RmsNormProblem`]; [`check`] rejects the shapes the kernels cannot run; [`launch`]
//! picks the entry point (`_res` exactly when both residual views are given) and launch shape
//! and launches through the backend; the kernel assumes valid inputs.

use std::ffi::c_void;

use kernelyard_core::ops::rms_norm::{RmsNormArgs, RmsNormProblem};
use kernelyard_core::{Capabilities, Error, Reason, Stream};

use crate::launch::Launch;
use crate::rows::{check_rows, entry_point, RowPlan};
use crate::source::KernelSource;

/// The source and its entry points: the register variants (`v1` .. `v8`, `s1` .. `s8`; `v8`/`s8`
/// for f32 only), the persistent ones (`pv1` .. `pv8`) and the two-pass ones (`long_v`,
/// `long_s`), each plain and `_res`.
pub static SOURCE: KernelSource = KernelSource {
    file: "rms_norm.cu",
    code: include_str!("../kernels/rms_norm.cu"),
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
        "rms_norm_f32_pv1",
        "rms_norm_f32_pv1_res",
        "rms_norm_f32_pv2",
        "rms_norm_f32_pv2_res",
        "rms_norm_f32_pv4",
        "rms_norm_f32_pv4_res",
        "rms_norm_f32_pv8",
        "rms_norm_f32_pv8_res",
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
        "rms_norm_f16_pv1",
        "rms_norm_f16_pv1_res",
        "rms_norm_f16_pv2",
        "rms_norm_f16_pv2_res",
        "rms_norm_f16_pv4",
        "rms_norm_f16_pv4_res",
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
        "rms_norm_bf16_pv1",
        "rms_norm_bf16_pv1_res",
        "rms_norm_bf16_pv2",
        "rms_norm_bf16_pv2_res",
        "rms_norm_bf16_pv4",
        "rms_norm_bf16_pv4_res",
    ],
};

/// The plan for rows of `hidden` elements of `elem_bytes` bytes, `align`-byte aligned (no
/// shared-memory path).
pub fn plan(hidden: usize, elem_bytes: usize, align: usize) -> RowPlan {
    RowPlan::new(hidden, elem_bytes, align, None)
}

/// Pushes the reasons the kernels cannot run `p` (the row length and the grid; no device
/// property matters).
pub fn check(_caps: &Capabilities, p: &RmsNormProblem, reasons: &mut Vec<Reason>) {
    check_rows(p.rows, p.hidden, p.dtype.size(), reasons);
}

/// Launches `p` on `stream` through `gpu` (no device property matters). Core validated `a`
/// into `p`, and [`check`] accepted it.
pub fn launch(
    gpu: &dyn Launch,
    stream: &Stream,
    caps: &Capabilities,
    a: &mut RmsNormArgs<'_>,
    p: &RmsNormProblem,
) -> Result<(), Error> {
    launch_tactic(gpu, stream, caps, a, p, None)
}

/// [`launch`] with one of the row kernels' tactics ([`crate::rows::TACTICS`]), or `None` for
/// the default configuration.
pub fn launch_tactic(
    gpu: &dyn Launch,
    stream: &Stream,
    caps: &Capabilities,
    a: &mut RmsNormArgs<'_>,
    p: &RmsNormProblem,
    tactic: Option<&str>,
) -> Result<(), Error> {
    let t = crate::rows::tactic(&SOURCE, tactic)?;
    let plan = crate::rows::tactic_plan(t, p.hidden, p.dtype.size(), p.align, None);
    // Core validated that residual and residual_out come together; the pointers decide.
    let (residual, residual_out): (*const c_void, *mut c_void) =
        match (&a.residual, &mut a.residual_out) {
            (Some(r), Some(ro)) => (r.as_ptr(), ro.as_mut_ptr()),
            _ => (std::ptr::null(), std::ptr::null_mut()),
        };
    let fused = !residual.is_null();
    let suffix = if fused { "_res" } else { "" };
    let symbol = entry_point(&SOURCE, "rms_norm", p.dtype, plan.variant(), suffix)?;
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
        gpu.launch(
            stream,
            &SOURCE,
            symbol,
            plan.launch_dims(p.rows, caps.multiprocessors, fused),
            &mut crate::params![x, residual, weight, y, residual_out, rows, cols, tpr, eps],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::Recorder;
    use crate::rows::{symbol, RowPath};
    use kernelyard_core::{DType, TensorView, TensorViewMut};

    #[test]
    fn the_launch_takes_the_residual_entry_point_exactly_with_a_residual() {
        let (rows, hidden) = (3, 4096);
        let x = vec![1.0f32; rows * hidden];
        let r = vec![2.0f32; rows * hidden];
        let w = vec![1.0f32; hidden];
        let mut y = vec![0.0f32; rows * hidden];
        let mut ro = vec![0.0f32; rows * hidden];
        let gpu = Recorder::default();
        let caps = Capabilities::host();
        for fused in [false, true] {
            let mut a = RmsNormArgs::new(
                TensorView::from_slice(&x, &[rows, hidden]).unwrap(),
                TensorView::from_slice(&w, &[hidden]).unwrap(),
                TensorViewMut::from_slice(&mut y, &[rows, hidden]).unwrap(),
                1e-6,
            );
            if fused {
                a.residual = Some(TensorView::from_slice(&r, &[rows, hidden]).unwrap());
                a.residual_out = Some(TensorViewMut::from_slice(&mut ro, &[rows, hidden]).unwrap());
            }
            let (p, _) = a.validate().unwrap();
            launch(&gpu, &Stream::host(), &caps, &mut a, &p).unwrap();
            let plan = plan(hidden, 4, p.align);
            let calls = gpu.0.take();
            assert_eq!(calls.len(), 1);
            let c = &calls[0];
            let want = format!(
                "rms_norm_f32_{}{}",
                plan.variant(),
                if fused { "_res" } else { "" }
            );
            assert_eq!((c.file, c.symbol), ("rms_norm.cu", want.as_str()));
            assert_eq!((c.dims, c.params), (plan.dims(rows), 9));
            assert_eq!(c.first, x.as_ptr().cast());
        }
    }

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
