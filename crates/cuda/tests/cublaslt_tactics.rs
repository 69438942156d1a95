//! `cuda.gemm.cublaslt`'s tactics `algo0` to `algo7` (the index into cuBLASLt's heuristic list
//! for the problem) and cuBLASLt's version in the tuning environment.
//!
//! On the CPU (simulated devices, no GPU needed):
//! - the kernel declares the eight tactics, `kernelyard list` shows them, and each
//!   `cuda.gemm.cublaslt@algoK` resolves through `Policy::kernel` on a simulated sm_90 device
//!   to the kernel with that tactic (its plan's label and report say so); `@algo8` is
//!   `UnknownTactic` with the list; a tactic keeps the kernel's declarations, so constrained
//!   selection refuses it as it refuses the kernel;
//! - the tuning environment of a CUDA device carries cuBLASLt's version exactly when the
//!   library is present (the backend's `library_versions`);
//! - the device test's harness (layouts, the `f64` product, the error measures, the NaN
//!   poison) agrees with `reference.gemm`, so a failure on the device is the kernel's.
//!
//! On a device (ignored without one; never returns early): every tactic the heuristic offers
//! for odd shapes (m=37, n=129, k=71, bf16, C in bf16 or f32, B plain or transposed) runs,
//! with C poisoned with NaN first, and matches an `f64` product of the same bf16 inputs within
//! the tolerance contract (`kernelyard_suite::tolerance`); every tactic beyond the list is
//! `CudaError::AlgorithmIndex` with the same count of offered algorithms (printed as SKIP with
//! its reason), and the count is at least one. Run with
//! `cargo test -p kernelyard-cuda --release --test cublaslt_tactics -- --include-ignored --nocapture`.

use kernelyard_core::half::bf16;
use kernelyard_core::ops::gemm::GemmArgs;
use kernelyard_core::tune::TuningEnv;
use kernelyard_core::{
    Args, Backend, DType, DeviceId, Error, Kernel, OpKind, Params, Policy, Problem, Runtime,
    SelectError, Sm, Verdict,
};
use kernelyard_cuda::libs::CudaLib;
use kernelyard_cuda::ops::gemm::TACTICS;
use kernelyard_cuda::CudaError;
use kernelyard_suite::tolerance::{coarser, tolerance};

const CUBLASLT: &str = "cuda.gemm.cublaslt";

fn simulated_runtime(sm: Sm) -> Runtime {
    kernelyard_cuda::link();
    Runtime::builder()
        .no_probe()
        .pins("")
        .simulated_device(kernelyard_cuda::device::simulated_caps(sm, 227 << 10))
        .build()
        .expect("runtime")
}

fn gemm(params: &str, dtype: DType) -> Problem {
    Problem::from_params(
        OpKind::Gemm,
        &Params::parse(OpKind::Gemm, params).expect("params"),
        dtype,
    )
    .expect("problem")
}

fn registered() -> &'static dyn Kernel {
    kernelyard_cuda::link();
    kernelyard_core::Registry::global()
        .expect("registry")
        .get(CUBLASLT)
        .expect("cuda.gemm.cublaslt is registered")
}

#[test]
fn the_kernel_declares_eight_algorithm_tactics() {
    let meta = registered().meta();
    assert_eq!(meta.tactics, TACTICS);
    let want: Vec<String> = (0..8).map(|i| format!("algo{i}")).collect();
    assert_eq!(meta.tactics, want);
}

#[test]
fn each_tactic_resolves_through_policy_kernel_on_a_simulated_sm90() {
    let rt = simulated_runtime(Sm::new(9, 0));
    let device = DeviceId::cuda(0);
    for (params, dtype) in [
        ("m=37,n=129,k=71", DType::BF16),
        ("m=4096,n=4096,k=4096,trans_b=1,c_dtype=f32", DType::BF16),
        ("m=1,n=4096,k=4096", DType::F16),
    ] {
        let p = gemm(params, dtype);
        for t in TACTICS {
            let spec = format!("{CUBLASLT}@{t}");
            let plan = rt
                .select(device, &p, &Policy::kernel(spec.as_str()))
                .unwrap_or_else(|e| panic!("{spec} for {params} {dtype}: {e}"));
            assert_eq!(plan.kernel_name(), CUBLASLT);
            assert_eq!(plan.tactic(), Some(*t));
            assert_eq!(plan.label(), spec);
            assert_eq!(plan.report().tactic, Some(*t));
        }
        // No tactic: the default configuration (algo0's algorithm, see the kernel's docs).
        let plan = rt
            .select(device, &p, &Policy::kernel(CUBLASLT))
            .expect("the default");
        assert_eq!((plan.kernel_name(), plan.tactic()), (CUBLASLT, None));
    }
}

#[test]
fn a_tactic_it_does_not_declare_is_unknown_with_the_list() {
    let rt = simulated_runtime(Sm::new(9, 0));
    let p = gemm("m=37,n=129,k=71", DType::BF16);
    let policy = Policy::kernel(format!("{CUBLASLT}@algo8"));
    match rt.select(DeviceId::cuda(0), &p, &policy) {
        Err(SelectError::UnknownTactic {
            kernel,
            tactic,
            known,
        }) => {
            assert_eq!((kernel, tactic.as_str()), (CUBLASLT, "algo8"));
            assert_eq!(known, TACTICS);
        }
        other => panic!("expected UnknownTactic, got {other:?}"),
    }
}

#[test]
fn a_tactic_is_refused_where_the_kernel_is() {
    // Neither deterministic nor batch-invariant, with or without a tactic.
    let rt = simulated_runtime(Sm::new(9, 0));
    let p = gemm("m=37,n=129,k=71", DType::BF16);
    for policy in [
        Policy::kernel(format!("{CUBLASLT}@algo3")).batch_invariant(),
        Policy::kernel(format!("{CUBLASLT}@algo3")).deterministic(),
    ] {
        let Err(SelectError::KernelRejected { name, report }) =
            rt.select(DeviceId::cuda(0), &p, &policy)
        else {
            panic!("{CUBLASLT}@algo3 must be refused under a constraint");
        };
        assert_eq!(name, CUBLASLT);
        let c = report.candidates.iter().find(|c| c.kernel == CUBLASLT);
        assert!(
            matches!(c.map(|c| &c.verdict), Some(Verdict::Rejected { .. })),
            "{report}"
        );
    }
}

#[test]
fn a_cuda_tuning_environment_carries_cublaslts_version_when_it_is_present() {
    kernelyard_cuda::link();
    let caps = kernelyard_cuda::device::simulated_caps(Sm::new(9, 0), 227 << 10);
    let env = TuningEnv::of(&caps);
    let reported = kernelyard_cuda::CUDA.library_versions();
    assert_eq!(env, TuningEnv::with_libraries(&caps, reported.clone()));
    // NVRTC is the compiler, not a library: not repeated.
    assert_eq!(env.compiler.as_deref(), Some("13.0.0"));
    assert!(!env.libraries.contains_key("nvrtc"));
    match (
        CudaLib::CublasLt.is_present(),
        env.libraries.get("cublaslt"),
    ) {
        (true, Some(v)) => println!("cuBLASLt {v}"),
        (false, None) => println!("cuBLASLt absent: no version in the environment"),
        (present, got) => {
            panic!("cuBLASLt present: {present}, version in the environment: {got:?}")
        }
    }
    // The host's environment has no CUDA library.
    let host = TuningEnv::of(&kernelyard_core::Capabilities::host());
    assert!(!host.libraries.contains_key("cublaslt"), "{host:?}");
}

// ---------------------------------------------------------------------------------------------
// On a device.

/// One odd shape: C `[M, N]` = A `[M, K]` op(B), bf16 A and B.
const M: usize = 37;
const N: usize = 129;
const K: usize = 71;

/// The layouts: `(name, trans_b, C's dtype, seed)`.
const CASES: [(&str, bool, DType, u64); 2] = [
    ("A @ B", false, DType::BF16, 1),
    ("A @ B^T -> f32", true, DType::F32, 2),
];

/// `len` values uniform in [-1, 1), rounded to bf16 (xorshift, seeded).
fn random_bf16(len: usize, seed: u64) -> Vec<bf16> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            bf16::from_f64((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        })
        .collect()
}

/// The product in f64 of the bf16 inputs, `[M, N]`; B stored `[K, N]` or, with `trans_b`,
/// `[N, K]`.
fn reference(a: &[bf16], b: &[bf16], trans_b: bool) -> Vec<f64> {
    let mut c = vec![0.0; M * N];
    for i in 0..M {
        for j in 0..N {
            c[i * N + j] = (0..K)
                .map(|k| {
                    let bv = if trans_b { b[j * K + k] } else { b[k * N + j] };
                    a[i * K + k].to_f64() * bv.to_f64()
                })
                .sum();
        }
    }
    c
}

/// Relative L2 error and max error relative to `max(1, max |want|)`, or why the output is not
/// comparable (a NaN left from the poison, or any other non-finite value).
fn errors(got: &[f64], want: &[f64]) -> Result<(f64, f64), String> {
    if let Some(i) = got.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "C[{}, {}] = {} (C was poisoned with NaN before the launch)",
            i / N,
            i % N,
            got[i]
        ));
    }
    let num: f64 = got.iter().zip(want).map(|(g, w)| (g - w).powi(2)).sum();
    let den: f64 = want.iter().map(|w| w * w).sum();
    let scale = want.iter().fold(1.0_f64, |m, w| m.max(w.abs()));
    let max = got
        .iter()
        .zip(want)
        .fold(0.0_f64, |m, (g, w)| m.max((g - w).abs()));
    Ok(((num / den).sqrt(), max / scale))
}

/// C = A op(B) by `spec` on `device`, C poisoned with NaN first; C as f64.
fn product(
    rt: &Runtime,
    device: DeviceId,
    spec: &str,
    a: &[bf16],
    b: &[bf16],
    trans_b: bool,
    c_dtype: DType,
) -> Result<Vec<f64>, Error> {
    let stream = rt.default_stream(device)?;
    let mut a_buf = rt.alloc(device, a.len() * 2)?;
    a_buf.upload(a)?;
    let mut b_buf = rt.alloc(device, b.len() * 2)?;
    b_buf.upload(b)?;
    let mut c_buf = rt.alloc(device, M * N * c_dtype.size())?;
    match c_dtype {
        DType::F32 => c_buf.upload(&vec![f32::NAN; M * N])?,
        DType::BF16 => c_buf.upload(&vec![bf16::NAN; M * N])?,
        other => panic!("C is bf16 or f32 here, not {other}"),
    }
    let b_shape = if trans_b { [N, K] } else { [K, N] };
    {
        let mut args = Args::Gemm(GemmArgs {
            trans_b,
            ..GemmArgs::new(
                a_buf.view(DType::BF16, &[M, K])?,
                b_buf.view(DType::BF16, &b_shape)?,
                c_buf.view_mut(c_dtype, &[M, N])?,
            )
        });
        let plan = rt.run(&Policy::kernel(spec), &stream, &mut args)?;
        assert_eq!(plan.label(), spec, "ran another kernel or tactic");
    }
    rt.synchronize(&stream)?;
    Ok(match c_dtype {
        DType::F32 => c_buf
            .download::<f32>(M * N)?
            .into_iter()
            .map(f64::from)
            .collect(),
        _ => c_buf
            .download::<bf16>(M * N)?
            .into_iter()
            .map(|v| v.to_f64())
            .collect(),
    })
}

/// The heuristic's count, if `e` is the launch error of a tactic beyond its list.
fn out_of_range(e: &Error, tactic: &str) -> Option<usize> {
    let Error::TacticUnavailable { source, .. } = e else {
        return None;
    };
    match source.downcast_ref::<CudaError>()? {
        CudaError::AlgorithmIndex { tactic: t, offered } if *t == tactic => Some(*offered),
        _ => None,
    }
}

/// The harness on the CPU against `reference.gemm` (f64-exact products of the same inputs
/// within the same bounds), so a failure on the device is the kernel's: the layouts, the
/// reference product and the error measures agree with an independent GEMM, and a NaN left
/// in C is caught.
#[test]
fn the_harness_agrees_with_reference_gemm_on_the_cpu() {
    kernelyard_reference::link();
    let rt = Runtime::new().expect("runtime");
    for (layout, trans_b, c_dtype, seed) in CASES {
        let a = random_bf16(M * K, seed);
        let b = random_bf16(K * N, seed + 100);
        let want = reference(&a, &b, trans_b);
        let got = product(
            &rt,
            DeviceId::CPU,
            "reference.gemm",
            &a,
            &b,
            trans_b,
            c_dtype,
        )
        .unwrap_or_else(|e| panic!("{layout}: {e}"));
        let (rel_l2, max_abs) = errors(&got, &want).unwrap_or_else(|e| panic!("{layout}: {e}"));
        let tol = tolerance(OpKind::Gemm, coarser(DType::BF16, c_dtype)).expect("tolerance");
        assert!(
            rel_l2 <= tol.rel_l2 && max_abs <= tol.max_abs,
            "{layout}: {rel_l2:e} {max_abs:e}"
        );
        // B read the other way round is another product: the check sees it.
        let (swapped, _) = errors(&reference(&a, &b, !trans_b), &want).expect("finite");
        assert!(swapped > 10.0 * tol.rel_l2, "{layout}: {swapped:e}");
        let mut poisoned = got.clone();
        poisoned[5 * N + 7] = f64::NAN;
        assert_eq!(
            errors(&poisoned, &want).unwrap_err(),
            "C[5, 7] = NaN (C was poisoned with NaN before the launch)"
        );
    }
}

#[test]
#[ignore = "requires a CUDA device"]
fn every_offered_algorithm_matches_an_f64_product_on_odd_shapes() {
    kernelyard_cuda::link();
    let rt = Runtime::new().unwrap_or_else(|e| panic!("kernelyard runtime: {e}"));
    let caps = rt
        .capabilities(DeviceId::cuda(0))
        .unwrap_or_else(|e| panic!("cuda:0 is required: {e}"));
    println!(
        "cuda:0: {} ({}), cuBLASLt {:?}",
        caps.name,
        caps.arch,
        TuningEnv::of(caps).libraries.get("cublaslt")
    );
    let mut failures = Vec::new();
    let (mut ran, mut skipped) = (0, 0);
    for (layout, trans_b, c_dtype, seed) in CASES {
        let case = format!("{layout} (m={M},n={N},k={K}, bf16 -> {c_dtype})");
        let a = random_bf16(M * K, seed);
        let b = random_bf16(K * N, seed + 100);
        let want = reference(&a, &b, trans_b);
        let tol =
            tolerance(OpKind::Gemm, coarser(DType::BF16, c_dtype)).expect("gemm has tolerances");
        let check = |spec: &str, failures: &mut Vec<String>| match product(
            &rt,
            DeviceId::cuda(0),
            spec,
            &a,
            &b,
            trans_b,
            c_dtype,
        ) {
            Ok(got) => match errors(&got, &want) {
                Ok((rel_l2, max_abs)) => {
                    println!("{spec} {case}: rel_l2 {rel_l2:.2e}, max_abs {max_abs:.2e}");
                    if rel_l2 > tol.rel_l2 || max_abs > tol.max_abs {
                        failures.push(format!(
                            "{spec} {case}: rel_l2 {rel_l2:.2e} (bound {:.0e}), max_abs \
                             {max_abs:.2e} (bound {:.0e})",
                            tol.rel_l2, tol.max_abs
                        ));
                    }
                    Ok(())
                }
                Err(why) => {
                    failures.push(format!("{spec} {case}: {why}"));
                    Ok(())
                }
            },
            Err(e) => Err(e),
        };
        // The default (algo0's algorithm) must run.
        match check(CUBLASLT, &mut failures) {
            Ok(()) => ran += 1,
            Err(e) => failures.push(format!("{CUBLASLT} {case}: {e}")),
        }
        // Each tactic runs, or is beyond the heuristic's list: then so is every later one,
        // with the same count.
        let mut offered: Option<usize> = None;
        for (i, t) in TACTICS.iter().enumerate() {
            let spec = format!("{CUBLASLT}@{t}");
            match check(&spec, &mut failures) {
                Ok(()) => {
                    ran += 1;
                    if let Some(o) = offered {
                        failures.push(format!(
                            "{spec} {case}: ran, but an earlier tactic was told the heuristic \
                             offers {o}"
                        ));
                    }
                }
                Err(e) => match out_of_range(&e, t) {
                    Some(o) if o <= i && o >= 1 && offered.is_none_or(|seen| seen == o) => {
                        skipped += 1;
                        offered = Some(o);
                        println!("SKIP {spec} {case}: {e}");
                    }
                    _ => failures.push(format!("{spec} {case}: {e}")),
                },
            }
        }
        println!(
            "{case}: the heuristic offers {}",
            offered.map_or(format!("{} or more", TACTICS.len()), |o| o.to_string())
        );
    }
    println!("{ran} runs, {skipped} tactics beyond the heuristic's list (SKIP)");
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
