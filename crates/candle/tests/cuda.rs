//! kernelyard-candle on a CUDA device, against candle's own CUDA implementations on the same
//! tensors: every operator (docs/TOLERANCES.md bounds), the kernels selected, bitwise batch
//! invariance of `ky_matmul` rows, and eight threads on candle's per-thread default streams.
//!
//! Build (needs nvcc for candle's kernels; see docs/EMBEDDING.md) and run on a GPU machine:
//! `cargo test --release -p kernelyard-candle --features cuda --test cuda -- --include-ignored`.
//! The `cuda` feature also turns on candle-nn's CUDA ops, the comparison.
#![cfg(feature = "cuda")]

mod common;

use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor};
use kernelyard::DeviceKind;
use kernelyard_candle::{capture_plans, AttentionOptions, Error, KyTensorExt, Plan, Policy};

use common::*;

fn gpu() -> Device {
    Device::new_cuda(0).expect("CUDA device 0 (candle)")
}

/// Every plan ran on a CUDA device (never the CPU).
fn on_cuda(plans: &[Arc<Plan>]) {
    assert!(!plans.is_empty(), "no kernelyard launch was recorded");
    for p in plans {
        assert_eq!(
            p.device().kind,
            DeviceKind::Cuda,
            "{} ran on {}",
            p.kernel_name(),
            p.device()
        );
    }
}

/// Runs `check` on the GPU for each dtype, checking every launch went to a CUDA kernel.
fn each(dtypes: &[DType], check: impl Fn(&Device, DType) -> Result<()>) {
    let dev = gpu();
    for &dtype in dtypes {
        let (r, plans) = capture_plans(|| check(&dev, dtype));
        r.unwrap_or_else(|e| panic!("{dtype:?}: {e}"));
        on_cuda(&plans);
    }
}

const ALL: [DType; 3] = [DType::F32, DType::BF16, DType::F16];
const HALF: [DType; 2] = [DType::BF16, DType::F16];

#[test]
#[ignore = "requires a CUDA device"]
fn rms_norm_matches_candle() {
    each(&ALL, check_rms_norm);
}

#[test]
#[ignore = "requires a CUDA device"]
fn softmax_matches_candle() {
    each(&ALL, check_softmax);
}

#[test]
#[ignore = "requires a CUDA device"]
fn log_softmax_matches_candle() {
    each(&ALL, check_log_softmax);
}

#[test]
#[ignore = "requires a CUDA device"]
fn silu_mul_matches_candle() {
    each(&ALL, check_silu_mul);
}

#[test]
#[ignore = "requires a CUDA device"]
fn rope_matches_candle() {
    each(&ALL, check_rope);
}

#[test]
#[ignore = "requires a CUDA device"]
fn token_logprobs_matches_candle() {
    each(&ALL, check_token_logprobs);
}

#[test]
#[ignore = "requires a CUDA device"]
fn attention_matches_candle() {
    // kernelyard's CUDA attention kernels take f16/bf16 and head dims 64 and 128.
    each(&HALF, |d, t| check_attention(d, t, 64));
    each(&HALF, |d, t| check_attention(d, t, 128));
}

#[test]
#[ignore = "requires a CUDA device"]
fn attention_in_f32_is_refused_with_the_report_not_run_on_the_cpu() {
    let dev = gpu();
    let q = rand(&[1, 16, 2, 64], 50, 1.0, DType::F32, &dev).expect("q");
    let e = q
        .ky_attention(&q, &q, &AttentionOptions::causal())
        .expect_err("no CUDA attention kernel takes f32");
    let msg = e.to_string();
    assert!(msg.contains("cuda.attention: rejected"), "{msg}");
    let typed = Error::from_candle(&e).expect("a kernelyard-candle error");
    assert!(
        matches!(
            typed,
            Error::Kernelyard {
                op: "ky_attention",
                ..
            }
        ),
        "{typed}"
    );
}

#[test]
#[ignore = "requires a CUDA device"]
fn matmul_matches_candle() {
    each(&ALL, |d, t| check_matmul(d, t, &Policy::auto()));
    each(&HALF, |d, t| {
        check_matmul(d, t, &Policy::auto().batch_invariant())
    });
}

#[test]
#[ignore = "requires a CUDA device"]
fn matmul_rows_are_batch_invariant() {
    let dev = gpu();
    for dtype in HALF {
        for (k, n) in [(64, 48), (1000, 520), (4096, 4096)] {
            let (r, plans) = capture_plans(|| check_matmul_batch_invariance(&dev, dtype, k, n));
            r.unwrap_or_else(|e| panic!("{dtype:?} k={k} n={n}: {e}"));
            on_cuda(&plans);
            for p in &plans {
                assert!(
                    p.kernel_name().starts_with("cuda.gemm.batch_invariant"),
                    "{} is not a batch-invariant kernel",
                    p.kernel_name()
                );
            }
        }
    }
}

#[test]
#[ignore = "requires a CUDA device"]
fn a_narrowed_tensor_is_read_at_its_offset() {
    let dev = gpu();
    let big = rand(&[6, 256], 51, 2.0, DType::BF16, &dev).expect("x");
    let w = rand(&[256], 52, 1.0, DType::BF16, &dev).expect("w");
    let x = big.narrow(0, 2, 3).expect("narrow");
    let got = x.ky_rms_norm(&w, 1e-6).expect("ky_rms_norm");
    let copied = x
        .copy()
        .expect("copy")
        .ky_rms_norm(&w, 1e-6)
        .expect("ky_rms_norm");
    assert_bitwise("narrowed vs copied", &got, &copied).expect("bitwise");
    let (t, h, d) = (4, 2, 64);
    let big = rand(&[2 * t, h, d], 53, 1.0, DType::BF16, &dev).expect("x");
    let before = big.copy().expect("copy");
    let positions = Tensor::arange(0i64, t as i64, &dev).expect("positions");
    let view = big.narrow(0, t, t).expect("narrow");
    let want = view
        .copy()
        .expect("copy")
        .ky_rope(&positions, 10_000.0)
        .expect("rope");
    view.ky_rope_(&positions, 10_000.0).expect("rope in place");
    assert_bitwise("rotated half", &big.narrow(0, t, t).expect("n"), &want).expect("bitwise");
    assert_bitwise(
        "untouched half",
        &big.narrow(0, 0, t).expect("n"),
        &before.narrow(0, 0, t).expect("n"),
    )
    .expect("bitwise");
}

/// One thread's work: `iters` products of its own operands on its own
/// `Device::new_cuda(0)` (candle's per-thread default stream), the last result on the host.
fn thread_work(seed: u64, iters: usize, policy: &Policy) -> Vec<f32> {
    let dev = gpu();
    let a = rand(&[192, 1024], seed, 1.0, DType::BF16, &dev).expect("a");
    let w = rand(&[768, 1024], seed + 100, 1.0, DType::BF16, &dev).expect("w");
    let wt = w.t().expect("w.t()");
    let mut out = a.ky_matmul(&wt, policy).expect("ky_matmul");
    for _ in 1..iters {
        // Chain on the same stream so the launches overlap other threads' work.
        out = a.ky_matmul(&wt, policy).expect("ky_matmul");
    }
    out.to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .expect("to host")
}

#[test]
#[ignore = "requires a CUDA device"]
fn threads_on_per_thread_streams_match_a_single_thread() {
    // cuBLASLt (a workspace per stream) and the batch-invariant kernel.
    for policy in [
        Policy::kernel("cuda.gemm.cublaslt"),
        Policy::auto().batch_invariant(),
    ] {
        let single: Vec<Vec<f32>> = (0..8).map(|i| thread_work(i, 1, &policy)).collect();
        let again = thread_work(0, 1, &policy);
        assert!(
            single[0]
                .iter()
                .zip(&again)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{policy}: two single-thread runs differ: the kernel is not run-to-run \
             deterministic, so this test cannot judge the threads"
        );
        let results: Vec<Vec<f32>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8u64)
                .map(|i| {
                    let policy = policy.clone();
                    s.spawn(move || thread_work(i, 20, &policy))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        for (i, (got, want)) in results.iter().zip(&single).enumerate() {
            let same = got
                .iter()
                .zip(want)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "{policy}: thread {i} differs from its single-thread result"
            );
        }
    }
}

#[test]
#[ignore = "requires a CUDA device"]
fn the_fast_kernels_are_selected_for_llama_shapes() {
    let dev = gpu();
    let (r, plans) = capture_plans(|| -> Result<()> {
        let x = rand(&[1, 256, 4096], 60, 1.0, DType::BF16, &dev)?;
        let w = rand(&[4096, 4096], 61, 0.02, DType::BF16, &dev)?;
        let q = x.ky_matmul(&w.t()?, Policy::auto().batch_invariant())?;
        let q = q.reshape((1, 256, 32, 128))?;
        q.ky_attention(&q, &q, &AttentionOptions::causal())?;
        Ok(())
    });
    r.expect("ops");
    let names: Vec<&str> = plans.iter().map(|p| p.kernel_name()).collect();
    println!("selected: {names:?}");
    assert!(
        names[0].starts_with("cuda.gemm.batch_invariant"),
        "{names:?}"
    );
    assert!(names[1].starts_with("cuda.attention"), "{names:?}");
}
