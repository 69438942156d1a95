//! The source of the softmax kernels, `crates/kernels/kernels/softmax.cu`:
//! `y = exp(x - max) / sum(exp(x - max))` over each row, f32 math for every dtype. Its entry
//! points are `softmax_<dtype>_<variant>`, the variant named by
//! [`RowPlan::variant`](crate::rows::RowPlan::variant) (see [`rows`](crate::rows) for the
//! plan), with the signature
//! `(const void* x, void* y, long long rows, long long cols, long long tpr)`, which
//! `log_softmax.cu` shares; its [`check`] and [`launch`] sequence.
//!
//! Responsibility: core validated the views (contiguous `[rows, cols]`, one dtype, one device,
//! no overlap) into the [`SoftmaxProblem`]; [`check`] rejects the shapes the kernels cannot
//! run; [`launch`] picks the entry point and launch shape and launches through the backend;
//! the kernel assumes valid inputs.

use kernelyard_core::ops::softmax::{SoftmaxArgs, SoftmaxProblem};
use kernelyard_core::{Capabilities, Error, Reason, Stream};

use crate::launch::Launch;
use crate::rows::{check_rows, launch_rows};
use crate::source::KernelSource;

/// The source and its entry points: per dtype, the register variants (`v1` .. `v8`, `s1` ..
/// `s8`; `v8`/`s8` for f32 only), the persistent ones (`pv1` .. `pv8`) and the two-pass ones
/// (`smem_v`, `smem_s`, `long_v`, `long_s`).
pub static SOURCE: KernelSource = KernelSource {
    file: "softmax.cu",
    code: include_str!("../kernels/softmax.cu"),
    symbols: &[
        "softmax_f32_v1",
        "softmax_f32_v2",
        "softmax_f32_v4",
        "softmax_f32_v8",
        "softmax_f32_s1",
        "softmax_f32_s2",
        "softmax_f32_s4",
        "softmax_f32_s8",
        "softmax_f32_smem_v",
        "softmax_f32_smem_s",
        "softmax_f32_long_v",
        "softmax_f32_long_s",
        "softmax_f32_pv1",
        "softmax_f32_pv2",
        "softmax_f32_pv4",
        "softmax_f32_pv8",
        "softmax_f16_v1",
        "softmax_f16_v2",
        "softmax_f16_v4",
        "softmax_f16_s1",
        "softmax_f16_s2",
        "softmax_f16_s4",
        "softmax_f16_smem_v",
        "softmax_f16_smem_s",
        "softmax_f16_long_v",
        "softmax_f16_long_s",
        "softmax_f16_pv1",
        "softmax_f16_pv2",
        "softmax_f16_pv4",
        "softmax_bf16_v1",
        "softmax_bf16_v2",
        "softmax_bf16_v4",
        "softmax_bf16_s1",
        "softmax_bf16_s2",
        "softmax_bf16_s4",
        "softmax_bf16_smem_v",
        "softmax_bf16_smem_s",
        "softmax_bf16_long_v",
        "softmax_bf16_long_s",
        "softmax_bf16_pv1",
        "softmax_bf16_pv2",
        "softmax_bf16_pv4",
    ],
};

/// Pushes the reasons the kernels cannot run `p` (the row length and the grid; no device
/// property matters).
pub fn check(_caps: &Capabilities, p: &SoftmaxProblem, reasons: &mut Vec<Reason>) {
    check_rows(p.rows, p.cols, p.dtype.size(), reasons);
}

/// Launches `p` on `stream` through `gpu`, the row kept in shared memory on the two-pass path
/// when it fits `caps.shared_mem_per_block_optin`. Core validated `a` into `p`, and [`check`]
/// accepted it.
pub fn launch(
    gpu: &dyn Launch,
    stream: &Stream,
    caps: &Capabilities,
    a: &mut SoftmaxArgs<'_>,
    p: &SoftmaxProblem,
) -> Result<(), Error> {
    launch_tactic(gpu, stream, caps, a, p, None)
}

/// [`launch`] with one of the row kernels' tactics ([`crate::rows::TACTICS`]), or `None` for
/// the default configuration.
pub fn launch_tactic(
    gpu: &dyn Launch,
    stream: &Stream,
    caps: &Capabilities,
    a: &mut SoftmaxArgs<'_>,
    p: &SoftmaxProblem,
    tactic: Option<&str>,
) -> Result<(), Error> {
    let io = (a.x.as_ptr(), a.out.as_mut_ptr());
    launch_rows(gpu, stream, caps, (&SOURCE, "softmax", tactic), p, io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::Recorder;
    use crate::rows::tests::{cols_to_try, H100};
    use crate::rows::{symbol, RowPath, RowPlan};
    use kernelyard_core::{DType, TensorView, TensorViewMut};

    #[test]
    fn the_launch_keeps_long_rows_in_shared_memory_up_to_the_devices_limit() {
        let (rows, cols) = (2, 20_000);
        let x = vec![1.0f32; rows * cols];
        let mut y = vec![0.0f32; rows * cols];
        let mut a = SoftmaxArgs {
            x: TensorView::from_slice(&x, &[rows, cols]).unwrap(),
            out: TensorViewMut::from_slice(&mut y, &[rows, cols]).unwrap(),
        };
        let (p, _) = a.validate().unwrap();
        let gpu = Recorder::default();
        for (optin, shared) in [(227 * 1024, true), (48 * 1024, false)] {
            let caps = Capabilities {
                shared_mem_per_block_optin: optin,
                ..Capabilities::host()
            };
            launch(&gpu, &Stream::host(), &caps, &mut a, &p).unwrap();
            let plan = RowPlan::new(cols, 4, p.align, Some(optin));
            assert_eq!(matches!(plan.path, RowPath::Shared { .. }), shared);
            let calls = gpu.0.take();
            assert_eq!(calls.len(), 1);
            let c = &calls[0];
            let want = format!("softmax_f32_{}", plan.variant());
            assert_eq!((c.file, c.symbol), ("softmax.cu", want.as_str()));
            assert_eq!((c.dims, c.params), (plan.dims(rows), 5));
            assert_eq!(c.first, x.as_ptr().cast());
        }
    }

    #[test]
    fn every_plan_names_a_listed_entry_point() {
        for dtype in DType::FLOATS.iter().copied() {
            for cols in cols_to_try() {
                for align in [dtype.size(), 16] {
                    for limit in [H100, None] {
                        let v = RowPlan::new(cols, dtype.size(), align, limit).variant();
                        symbol(&SOURCE, "softmax", dtype, v, "").unwrap();
                    }
                }
            }
        }
        assert!(symbol(&SOURCE, "softmax", DType::BF16, "v8", "").is_none());
        assert_eq!(
            symbol(&SOURCE, "softmax", DType::F16, "smem_s", "").unwrap(),
            "softmax_f16_smem_s"
        );
    }

    #[test]
    fn every_listed_entry_point_is_in_the_source() {
        // Each symbol comes from one macro line `..._REG(<op>_##D##_<variant>, ...)` (per dtype)
        // or is written out in full (f32 only).
        for s in SOURCE.symbols {
            let (dtype, variant) = s
                .strip_prefix("softmax_")
                .and_then(|r| r.split_once('_'))
                .unwrap();
            let per_dtype = format!("softmax_##D##_{variant},");
            assert!(
                SOURCE.code.contains(&per_dtype) || SOURCE.code.contains(&format!("({s},")),
                "{s} ({dtype})"
            );
        }
    }
}
