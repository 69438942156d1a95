//! Pins (`KERNELYARD_KERNELS`), the plan cache, launching a plan, and concurrent selection.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};

use kernelyard_core::{
    Args, DType, DeviceId, DeviceKind, Error, Kernel, KernelMeta, OpKind, Pins, Plan, Policy,
    Problem, Reason, Registry, Selector, Sm, Stream, Verdict, PIN_ENV,
};

use crate::fakes::{
    cpu, cuda, cuda_gemm, cuda_range, fake, gemm_args, gemm_problem, kernel_rejected, meta,
    problem, registry, rejected, runtime, runtime_with_pins, softmax_problem, verdicts, Fake, GPU0,
    GPU1, GPU2,
};

// ---------------------------------------------------------------------------------------------
// Pins (`KERNELYARD_KERNELS`).

fn pin_registry() -> &'static Registry {
    registry(&[
        fake(KernelMeta {
            priority: 10,
            ..cuda_gemm("cuda.gemm.high")
        }),
        fake(cuda_gemm("cuda.gemm.low")),
        fake(KernelMeta {
            priority: 20,
            arch: cuda_range((8, 0), Some((9, 0))),
            ..cuda_gemm("cuda.gemm.sm80_90")
        }),
        fake(meta("reference.gemm", OpKind::Gemm, DeviceKind::Cpu)),
        fake(meta("cuda.softmax.a", OpKind::Softmax, DeviceKind::Cuda)),
    ])
}

#[test]
fn pins_parse_rejects_bad_entries() {
    let r = pin_registry();
    let table: &[(&str, &str, &str)] = &[
        ("gemmm=cuda.gemm.high", "gemmm=cuda.gemm.high", "unknown op `gemmm`; ops: gemm, rms_norm"),
        ("gemm=cuda.gemm.nope", "gemm=cuda.gemm.nope", "unknown kernel `cuda.gemm.nope`; kernels for gemm: reference.gemm, cuda.gemm.sm80_90, cuda.gemm.high, cuda.gemm.low"),
        ("softmax=cuda.gemm.high", "softmax=cuda.gemm.high", "kernel `cuda.gemm.high` implements gemm, not softmax"),
        ("gemm=cuda.gemm.high, gemm=cuda.gemm.low", "gemm=cuda.gemm.low", "gemm is pinned twice for cuda devices"),
        ("gemm", "gemm", "expected `op=kernel`"),
        ("softmax=cuda.softmax.a,gemm:cuda.gemm.low", "gemm:cuda.gemm.low", "expected `op=kernel`"),
    ];
    for &(spec, entry, why) in table {
        let e = Pins::parse(spec, r)
            .err()
            .unwrap_or_else(|| panic!("`{spec}` parses"));
        match &e {
            Error::EnvOverride {
                entry: got,
                why: got_why,
            } => {
                assert_eq!(got, entry, "{spec}");
                assert!(got_why.contains(why), "{spec}: `{got_why}` lacks `{why}`");
            }
            other => panic!("`{spec}`: expected EnvOverride, got {other:?}"),
        }
        assert!(
            e.to_string().starts_with(&format!("{PIN_ENV} entry")),
            "{e}"
        );
        // The builder reports the same error instead of running without the pin.
        assert!(matches!(
            runtime_with_pins(r, spec, vec![cuda(0, 9, 0)]),
            Err(Error::EnvOverride { .. })
        ));
    }
    // Valid: empty, whitespace, and one pin per device kind.
    for spec in ["", " , ", "gemm = cuda.gemm.low , softmax=cuda.softmax.a"] {
        assert!(Pins::parse(spec, r).is_ok(), "{spec}");
    }
    let pins = Pins::parse("gemm=cuda.gemm.low,gemm=reference.gemm", r).unwrap();
    let name = |k: Option<&'static dyn Kernel>| k.map(|k| k.meta().name);
    assert_eq!(
        name(pins.get(OpKind::Gemm, DeviceKind::Cuda)),
        Some("cuda.gemm.low")
    );
    assert_eq!(
        name(pins.get(OpKind::Gemm, DeviceKind::Cpu)),
        Some("reference.gemm")
    );
    assert_eq!(name(pins.get(OpKind::Gemm, DeviceKind::Rocm)), None);
    assert_eq!(name(pins.get(OpKind::Softmax, DeviceKind::Cuda)), None);
}

#[test]
fn pin_overrides_auto_on_its_device_kind_only() {
    let rt = runtime_with_pins(
        pin_registry(),
        "gemm=cuda.gemm.low",
        vec![cuda(0, 9, 0), cpu()],
    )
    .unwrap();
    let p = gemm_problem();
    let plan = rt.select(GPU0, &p, &Policy::auto()).unwrap();
    assert_eq!(plan.kernel_name(), "cuda.gemm.low");
    let report = plan.report();
    assert_eq!(report.pinned_by_env, Some("cuda.gemm.low"));
    assert_eq!(
        verdicts(report),
        vec![
            ("cuda.gemm.low", Verdict::Selected),
            ("cuda.gemm.sm80_90", Verdict::NotConsidered),
            ("cuda.gemm.high", Verdict::NotConsidered),
        ]
    );
    assert!(
        report
            .to_string()
            .contains("pinned by KERNELYARD_KERNELS: cuda.gemm.low"),
        "{report}"
    );
    // On the CPU the pin does not apply.
    let plan = rt.select(DeviceId::CPU, &p, &Policy::auto()).unwrap();
    assert_eq!(plan.kernel_name(), "reference.gemm");
    assert_eq!(plan.report().pinned_by_env, None);
    // Nor to another op.
    let plan = rt
        .select(GPU0, &softmax_problem(), &Policy::auto())
        .unwrap();
    assert_eq!(plan.report().pinned_by_env, None);
    // A backend policy does not bypass the pin.
    assert_eq!(
        rt.select(GPU0, &p, &Policy::backend("cuda"))
            .unwrap()
            .kernel_name(),
        "cuda.gemm.low"
    );
}

#[test]
fn pinned_kernel_that_cannot_run_is_an_error() {
    let rt = runtime_with_pins(
        pin_registry(),
        "gemm=cuda.gemm.sm80_90",
        vec![cuda(0, 12, 0)],
    )
    .unwrap();
    let p = gemm_problem();
    let (name, report) = kernel_rejected(rt.select(GPU0, &p, &Policy::auto()).unwrap_err());
    assert_eq!(name, "cuda.gemm.sm80_90");
    assert_eq!(report.pinned_by_env, Some("cuda.gemm.sm80_90"));
    assert_eq!(
        report.candidates[0].verdict,
        rejected(vec![Reason::ArchTooNew {
            have: Sm::new(12, 0).into(),
            max: Sm::new(9, 0).into()
        }])
    );
    // A pin is checked against the policy's constraints too.
    let rt = runtime_with_pins(pin_registry(), "gemm=cuda.gemm.low", vec![cuda(0, 9, 0)]).unwrap();
    let (name, report) = kernel_rejected(
        rt.select(GPU0, &p, &Policy::auto().deterministic())
            .unwrap_err(),
    );
    assert_eq!(name, "cuda.gemm.low");
    assert_eq!(
        report.candidates[0].verdict,
        rejected(vec![Reason::NotDeterministic])
    );
}

#[test]
fn explicit_kernel_beats_a_pin() {
    let rt = runtime_with_pins(pin_registry(), "gemm=cuda.gemm.low", vec![cuda(0, 9, 0)]).unwrap();
    let plan = rt
        .select(GPU0, &gemm_problem(), &Policy::kernel("cuda.gemm.high"))
        .unwrap();
    assert_eq!(plan.kernel_name(), "cuda.gemm.high");
    assert_eq!(plan.report().pinned_by_env, None);
}

// ---------------------------------------------------------------------------------------------
// The plan cache and launching.

#[test]
fn cache_returns_one_plan_per_key() {
    let r = registry(&[
        fake(KernelMeta {
            deterministic: true,
            ..cuda_gemm("cuda.gemm.det")
        }),
        fake(cuda_gemm("cuda.gemm.other")),
    ]);
    let rt = runtime(r, vec![cuda(0, 9, 0), cuda(1, 9, 0)]);
    let select = |device, p: &Problem, policy: &Policy| rt.select(device, p, policy).unwrap();
    let a = select(GPU0, &gemm_problem(), &Policy::auto());
    let b = select(GPU0, &gemm_problem(), &Policy::auto());
    assert!(Arc::ptr_eq(&a, &b), "equal keys give the cached plan");

    let det = select(GPU0, &gemm_problem(), &Policy::auto().deterministic());
    assert_eq!(det.kernel_name(), a.kernel_name());
    assert!(!Arc::ptr_eq(&a, &det), "another policy is another plan");
    assert!(Arc::ptr_eq(
        &det,
        &select(GPU0, &gemm_problem(), &Policy::auto().deterministic())
    ));

    let named = select(GPU0, &gemm_problem(), &Policy::kernel(a.kernel_name()));
    assert!(!Arc::ptr_eq(&a, &named));

    let other_problem = problem(OpKind::Gemm, "m=129,n=256,k=64", DType::BF16);
    let c = select(GPU0, &other_problem, &Policy::auto());
    assert!(!Arc::ptr_eq(&a, &c), "another problem is another plan");
    assert_eq!(c.problem(), &other_problem);

    let d = select(GPU1, &gemm_problem(), &Policy::auto());
    assert!(!Arc::ptr_eq(&a, &d), "another device is another plan");
    assert_eq!(d.device(), GPU1);

    // Errors are not cached as plans: they repeat.
    for _ in 0..2 {
        assert!(rt
            .select(GPU0, &gemm_problem(), &Policy::kernel("cuda.gemm.nope"))
            .is_err());
    }
    // The cache agrees with a fresh, uncached selection.
    let selector = Selector::new(r, Pins::default());
    let fresh = selector
        .select_uncached(&cuda(0, 9, 0), &gemm_problem(), &Policy::auto())
        .unwrap();
    assert_eq!(fresh.kernel_name(), a.kernel_name());
    assert_eq!(verdicts(fresh.report()), verdicts(a.report()));
}

#[test]
fn plan_launch_checks_arguments_against_the_plan() {
    let kernel = fake(cuda_gemm("cuda.gemm.counting"));
    let rt = runtime(registry(&[kernel]), vec![cuda(0, 9, 0), cuda(1, 9, 0)]);
    let stream = Stream::default_for(GPU0);
    let (p, device) = gemm_args(8, 32, 16, GPU0).validate().unwrap();
    assert_eq!(device, GPU0);
    // The CLI's problem for the same shapes is the same key.
    assert_eq!(p, problem(OpKind::Gemm, "m=8,n=32,k=16", DType::F32));
    let plan: Arc<Plan> = rt.select(GPU0, &p, &Policy::auto()).unwrap();

    plan.launch(&stream, &mut gemm_args(8, 32, 16, GPU0))
        .unwrap();
    assert_eq!(kernel.launches.load(Ordering::SeqCst), 1);

    let e = plan
        .launch(&stream, &mut gemm_args(8, 32, 64, GPU0))
        .unwrap_err();
    match &e {
        Error::ProblemMismatch { plan: want, args } => {
            assert_eq!(**want, p);
            assert!(matches!(**args, Problem::Gemm(ref g) if g.k == 64));
        }
        other => panic!("expected ProblemMismatch, got {other:?}"),
    }
    assert!(
        e.to_string().contains("select a plan for these arguments"),
        "{e}"
    );

    let e = plan
        .launch(&stream, &mut gemm_args(8, 32, 16, GPU1))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::WrongDevice {
                what: "arguments",
                have: GPU1,
                need: GPU0
            }
        ),
        "{e:?}"
    );
    let e = plan
        .launch(&Stream::default_for(GPU1), &mut gemm_args(8, 32, 16, GPU0))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::WrongDevice {
                what: "stream",
                have: GPU1,
                need: GPU0
            }
        ),
        "{e:?}"
    );
    let mut bad = gemm_args(8, 32, 16, GPU0);
    if let Args::Gemm(g) = &mut bad {
        g.alpha = f32::NAN;
    }
    assert!(matches!(
        plan.launch(&stream, &mut bad),
        Err(Error::Validation(_))
    ));
    // None of the refused launches reached the kernel.
    assert_eq!(kernel.launches.load(Ordering::SeqCst), 1);

    // `Runtime::run` validates, selects (the cached plan) and launches.
    let ran = rt
        .run(&Policy::auto(), &stream, &mut gemm_args(8, 32, 16, GPU0))
        .unwrap();
    assert!(Arc::ptr_eq(&ran, &plan));
    assert_eq!(kernel.launches.load(Ordering::SeqCst), 2);
}

#[test]
fn concurrent_selection_is_identical() {
    const THREADS: usize = 8;
    let r = registry(&[
        fake(KernelMeta {
            priority: 10,
            arch: cuda_range((8, 0), Some((9, 0))),
            ..cuda_gemm("cuda.gemm.sm80_90")
        }),
        Fake::new(cuda_gemm("cuda.gemm.a")).score(2).leak(),
        Fake::new(KernelMeta {
            deterministic: true,
            ..cuda_gemm("cuda.gemm.b")
        })
        .score(1)
        .leak(),
        fake(meta("cuda.softmax.a", OpKind::Softmax, DeviceKind::Cuda)),
    ]);
    let rt = runtime(r, vec![cuda(0, 9, 0), cuda(1, 12, 0), cuda(2, 7, 5)]);
    let mut keys = Vec::new();
    for device in [GPU0, GPU1, GPU2] {
        for p in [gemm_problem(), softmax_problem()] {
            for policy in [
                Policy::auto(),
                Policy::auto().deterministic(),
                Policy::auto().batch_invariant(),
                Policy::kernel("cuda.gemm.sm80_90"),
            ] {
                keys.push((device, p.clone(), policy));
            }
        }
    }
    // Per key: the chosen kernel (or the error text) and the plan's address.
    type Outcome = Vec<(Result<&'static str, String>, usize)>;
    let barrier = Barrier::new(THREADS);
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    keys.iter()
                        .map(|(d, p, policy)| match rt.select(*d, p, policy) {
                            Ok(plan) => (Ok(plan.kernel_name()), Arc::as_ptr(&plan) as usize),
                            Err(e) => (Err(e.to_string()), 0),
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Every thread got the same kernel, or the same error, and the very same plan per key.
    for (t, o) in outcomes.iter().enumerate() {
        for (k, (got, want)) in o.iter().zip(&outcomes[0]).enumerate() {
            assert_eq!(
                got, want,
                "thread {t}, key {k} {:?}: not what thread 0 got",
                keys[k]
            );
        }
    }
    // The outcomes are the ones a single thread gets.
    for ((device, p, policy), (got, _)) in keys.iter().zip(&outcomes[0]) {
        let want = rt
            .select(*device, p, policy)
            .map(|plan| plan.kernel_name())
            .map_err(|e| e.to_string());
        assert_eq!(got, &want);
    }
    let chosen: BTreeSet<_> = outcomes[0]
        .iter()
        .filter_map(|(r, _)| r.clone().ok())
        .collect();
    assert!(chosen.len() >= 3, "{chosen:?}");
    assert!(outcomes[0].iter().any(|(r, _)| r.is_err()));
}
