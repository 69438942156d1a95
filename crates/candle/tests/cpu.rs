//! kernelyard-candle on the CPU (kernelyard's reference backend): every operator against
//! candle's own implementation on the same tensors (f32 and bf16, docs/TOLERANCES.md bounds),
//! the layouts taken and refused, and the errors as a candle user sees them.

mod common;

use candle_core::{DType, Device, IndexOp, Result, Tensor};
use kernelyard::error::SelectError;
use kernelyard_candle::{
    capture_plans, AttentionOptions, Error, KyTensorExt, LogprobsOptions, Policy,
};

use common::*;

const CPU: Device = Device::Cpu;

macro_rules! per_dtype {
    ($($name:ident => $check:expr;)+) => {
        mod f32 {
            use super::*;
            $( #[test] fn $name() -> Result<()> { let dtype = DType::F32; $check(&CPU, dtype) } )+
        }
        mod bf16 {
            use super::*;
            $( #[test] fn $name() -> Result<()> { let dtype = DType::BF16; $check(&CPU, dtype) } )+
        }
    };
}

per_dtype! {
    rms_norm => check_rms_norm;
    softmax => check_softmax;
    log_softmax => check_log_softmax;
    silu_mul => check_silu_mul;
    rope => check_rope;
    token_logprobs => check_token_logprobs;
    attention => |d: &Device, t| check_attention(d, t, 16);
    matmul => |d: &Device, t| check_matmul(d, t, &Policy::auto());
    matmul_batch_invariant_policy => |d: &Device, t| check_matmul(d, t, &Policy::auto().batch_invariant());
    matmul_rows_are_batch_invariant => |d: &Device, t| check_matmul_batch_invariance(d, t, 64, 32);
}

#[test]
fn f16_runs_too() -> Result<()> {
    check_all(&CPU, DType::F16)
}

/// The error a call returned, as this crate's typed error.
fn typed(e: &candle_core::Error) -> &Error {
    Error::from_candle(e).unwrap_or_else(|| panic!("not a kernelyard-candle error: {e}"))
}

#[test]
fn a_narrowed_tensor_is_read_at_its_offset() -> Result<()> {
    let big = rand(&[6, 64], 30, 2.0, DType::F32, &CPU)?;
    let w = rand(&[64], 31, 1.0, DType::F32, &CPU)?;
    let x = big.narrow(0, 2, 3)?; // rows 2..5: contiguous, start offset 128
    assert!(x.is_contiguous());
    let got = x.ky_rms_norm(&w, 1e-6)?;
    assert_close(
        "narrowed rms_norm",
        "rms_norm",
        DType::F32,
        &got,
        &candle_nn::ops::rms_norm(&x, &w, 1e-6)?,
    )?;
    assert_bitwise(
        "narrowed vs copied",
        &got,
        &x.copy()?.ky_rms_norm(&w, 1e-6)?,
    )?;
    // The last columns of each row of a [4, 2 * d] fused input (a narrow along the last
    // dimension is not contiguous: refused).
    let e = big.i((.., 32..))?.ky_softmax().unwrap_err();
    assert!(
        matches!(typed(&e), Error::NotContiguous { arg: "x", .. }),
        "{e}"
    );
    Ok(())
}

#[test]
fn rope_in_place_writes_only_its_view() -> Result<()> {
    let (t, h, d) = (4, 2, 8);
    let big = rand(&[2 * t, h, d], 32, 1.0, DType::F32, &CPU)?;
    let before = big.copy()?;
    let positions = Tensor::arange(0i64, t as i64, &CPU)?;
    let view = big.narrow(0, t, t)?; // the second half: start offset t * h * d
    let want = view.copy()?.ky_rope(&positions, 10_000.0)?;
    view.ky_rope_(&positions, 10_000.0)?;
    assert_bitwise("rotated half", &big.narrow(0, t, t)?, &want)?;
    assert_bitwise(
        "untouched half",
        &big.narrow(0, 0, t)?,
        &before.narrow(0, 0, t)?,
    )
}

#[test]
fn a_transposed_tensor_is_refused_with_its_layout() -> Result<()> {
    let x = rand(&[8, 16], 33, 1.0, DType::F32, &CPU)?.t()?;
    let e = x.ky_softmax().unwrap_err();
    match typed(&e) {
        Error::NotContiguous {
            op,
            arg,
            shape,
            stride,
            ..
        } => {
            assert_eq!((*op, *arg), ("ky_softmax", "x"));
            assert_eq!(
                (shape.as_slice(), stride.as_slice()),
                (&[16, 8][..], &[1, 16][..])
            );
        }
        other => panic!("expected NotContiguous, got {other}"),
    }
    assert!(e.to_string().contains(".contiguous()"), "{e}");
    // Attention in candle's [B, H, S, D] layout, transposed from [B, S, H, D]: refused.
    let q = rand(&[1, 8, 2, 16], 34, 1.0, DType::F32, &CPU)?.transpose(1, 2)?;
    let e = q
        .ky_attention(&q, &q, &AttentionOptions::causal())
        .unwrap_err();
    assert!(
        matches!(
            typed(&e),
            Error::NotContiguous {
                op: "ky_attention",
                arg: "q",
                ..
            }
        ),
        "{e}"
    );
    // A matrix with neither unit stride: refused by ky_matmul.
    let m = rand(&[4, 8, 6], 35, 1.0, DType::F32, &CPU)?.permute((2, 0, 1))?; // [6, 4, 8]
    let w = rand(&[8, 3], 36, 1.0, DType::F32, &CPU)?;
    let e = m.ky_matmul(&w, Policy::auto()).unwrap_err();
    assert!(
        matches!(
            typed(&e),
            Error::NotContiguous {
                op: "ky_matmul",
                arg: "a",
                ..
            }
        ),
        "{e}"
    );
    Ok(())
}

#[test]
fn a_wrong_dtype_is_refused() -> Result<()> {
    let x = rand(&[4, 16], 37, 1.0, DType::F64, &CPU)?;
    let e = x.ky_softmax().unwrap_err();
    match typed(&e) {
        Error::DType { op, arg, dtype, .. } => {
            assert_eq!((*op, *arg, *dtype), ("ky_softmax", "x", DType::F64));
        }
        other => panic!("expected DType, got {other}"),
    }
    let x = rand(&[2, 3, 2, 8], 38, 1.0, DType::F32, &CPU)?;
    let positions = Tensor::zeros((2, 3), DType::F32, &CPU)?;
    let e = x.ky_rope(&positions, 10_000.0).unwrap_err();
    assert!(
        matches!(
            typed(&e),
            Error::DType {
                arg: "positions",
                dtype: DType::F32,
                ..
            }
        ),
        "{e}"
    );
    Ok(())
}

#[test]
fn a_wrong_shape_is_refused() -> Result<()> {
    let x = rand(&[2, 3, 2, 8], 39, 1.0, DType::F32, &CPU)?;
    let positions = Tensor::arange(0i64, 3, &CPU)?; // one per token of one sequence, not two
    let e = x.ky_rope(&positions, 10_000.0).unwrap_err();
    assert!(
        matches!(
            typed(&e),
            Error::Shape {
                arg: "positions",
                ..
            }
        ),
        "{e}"
    );
    let x = rand(&[3, 7], 40, 1.0, DType::F32, &CPU)?;
    let e = x.ky_silu_mul().unwrap_err();
    assert!(matches!(typed(&e), Error::Shape { arg: "x", .. }), "{e}");
    Ok(())
}

#[test]
fn kernelyard_validation_errors_come_through() -> Result<()> {
    let x = rand(&[4, 16], 41, 1.0, DType::F32, &CPU)?;
    let w = rand(&[15], 42, 1.0, DType::F32, &CPU)?; // one short
    let e = x.ky_rms_norm(&w, 1e-6).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("ky_rms_norm") && msg.contains("weight"),
        "{msg}"
    );
    let Error::Kernelyard { op, source } = typed(&e) else {
        panic!("expected Kernelyard, got {e}");
    };
    assert_eq!(*op, "ky_rms_norm");
    assert!(
        matches!(source, kernelyard::Error::Validation(_)),
        "{source}"
    );
    Ok(())
}

#[test]
fn the_selection_report_is_in_the_candle_error() -> Result<()> {
    // Only CUDA kernels allowed, on a CPU tensor: the reference kernel is rejected, and the
    // error says so (it never runs anyway).
    let x = rand(&[4, 16], 43, 1.0, DType::F32, &CPU)?;
    let e = x.ky_softmax_with(Policy::backend("cuda")).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("reference.softmax: rejected"), "{msg}");
    assert!(msg.contains("kernelyard-candle ky_softmax"), "{msg}");
    let source = typed(&e).kernelyard().expect("a kernelyard error");
    assert!(
        matches!(source, kernelyard::Error::Select(SelectError::AllRejected { report }) if report.candidates.iter().any(|c| c.kernel == "reference.softmax")),
        "{source}"
    );
    // A named kernel that cannot run here is an error with its reasons, not replaced.
    let e = x
        .ky_softmax_with(Policy::kernel("cuda.softmax"))
        .unwrap_err();
    assert!(e.to_string().contains("cuda.softmax"), "{e}");
    // And the candle error's Debug (what `?` in a test's `main` prints) carries it too.
    assert!(format!("{e:?}").contains("cuda.softmax"));
    Ok(())
}

#[test]
fn plans_name_the_kernels_that_ran() -> Result<()> {
    let x = rand(&[4, 16], 44, 1.0, DType::F32, &CPU)?;
    let w = rand(&[16], 45, 1.0, DType::F32, &CPU)?;
    let (r, plans) = capture_plans(|| -> Result<Tensor> { x.ky_rms_norm(&w, 1e-6)?.ky_softmax() });
    r?;
    let names: Vec<&str> = plans.iter().map(|p| p.kernel_name()).collect();
    assert_eq!(names, ["reference.rms_norm", "reference.softmax"]);
    // A Linear layer's `w.t()` is taken as kernelyard's transposed B (no copy).
    let wt = rand(&[24, 16], 46, 1.0, DType::F32, &CPU)?;
    let (r, plans) = capture_plans(|| x.ky_matmul(&wt.t()?, Policy::auto().batch_invariant()));
    r?;
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].problem().layout(), Some("nt"));
    // Nothing is recorded outside a capture.
    let (_, none) = capture_plans(|| ());
    assert!(none.is_empty());
    Ok(())
}

#[test]
fn token_logprobs_checked_mode_names_the_row() -> Result<()> {
    let logits = rand(&[3, 10], 47, 1.0, DType::F32, &CPU)?;
    let targets = Tensor::from_vec(vec![1i64, 10, 2], 3, &CPU)?; // 10 is outside [0, 10)
    let unchecked = logits.ky_token_logprobs(&targets)?.to_vec1::<f32>()?;
    assert!(unchecked[1].is_nan() && unchecked[0].is_finite());
    let opts = LogprobsOptions {
        checked: true,
        ..LogprobsOptions::default()
    };
    let e = logits
        .ky_token_logprobs_with(&targets, &opts, Policy::auto())
        .unwrap_err();
    assert!(
        matches!(
            typed(&e).kernelyard(),
            Some(kernelyard::Error::TargetOutOfRange {
                row: 1,
                target: 10,
                ..
            })
        ),
        "{e}"
    );
    Ok(())
}

#[test]
fn the_runtime_is_shared() {
    let a = kernelyard_candle::runtime().expect("runtime") as *const _;
    let b = kernelyard_candle::runtime().expect("runtime") as *const _;
    assert_eq!(a, b);
    // Too late to install another one.
    let other = kernelyard::Runtime::builder()
        .no_probe()
        .build()
        .expect("runtime");
    assert!(!kernelyard_candle::set_runtime(other));
}
