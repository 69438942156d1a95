//! Selection semantics, with fake kernels in custom registries on simulated devices.
//!
//! The fakes are in `select/fakes.rs`; pins, the plan cache, launching and concurrency are in
//! `select/plans.rs`; the plan cache's bound and eviction in `select/cache.rs`. Devices are
//! hand-written `Capabilities`, so no GPU is needed.

#[path = "select/cache.rs"]
mod cache;
#[path = "select/fakes.rs"]
mod fakes;
#[path = "select/plans.rs"]
mod plans;
#[path = "select/prepare.rs"]
mod prepare;
#[path = "select/tuned.rs"]
mod tuned;

use kernelyard_core::{
    Arch, ArchReq, DType, DeviceId, DeviceKind, Error, Feature, Gfx, Kernel, KernelMeta, OpKind,
    Policy, Reason, Registry, SelectError, Sm, Verdict,
};

use fakes::{
    all_rejected, cpu, cuda, cuda_gemm, cuda_range, fake, gemm_problem, kernel_rejected, meta,
    problem, registry, rejected, rocm, runtime, softmax_problem, verdicts, Fake, GPU0, GPU1, GPU2,
};

// ---------------------------------------------------------------------------------------------
// Auto: ordering and reports.

#[test]
fn auto_orders_by_priority_then_score_then_name() {
    let r = registry(&[
        Fake::new(KernelMeta {
            priority: 10,
            arch: cuda_range((8, 0), None),
            ..cuda_gemm("cuda.gemm.sm80")
        })
        .leak(),
        Fake::new(KernelMeta {
            priority: 5,
            ..cuda_gemm("cuda.gemm.b")
        })
        .score(9)
        .leak(),
        Fake::new(KernelMeta {
            priority: 5,
            ..cuda_gemm("cuda.gemm.a")
        })
        .score(9)
        .leak(),
        Fake::new(KernelMeta {
            priority: 5,
            ..cuda_gemm("cuda.gemm.c")
        })
        .score(1)
        .leak(),
        Fake::new(KernelMeta {
            priority: 1,
            ..cuda_gemm("cuda.gemm.low")
        })
        .score(100)
        .leak(),
    ]);
    let rt = runtime(r, vec![cuda(0, 9, 0), cuda(1, 7, 5)]);
    let p = gemm_problem();

    // Highest priority wins, whatever the others' scores.
    let plan = rt.select(GPU0, &p, &Policy::auto()).unwrap();
    assert_eq!(plan.kernel_name(), "cuda.gemm.sm80");
    let report = plan.report();
    assert_eq!(report.selected, Some("cuda.gemm.sm80"));
    assert_eq!(
        verdicts(report),
        vec![
            ("cuda.gemm.sm80", Verdict::Selected),
            ("cuda.gemm.a", Verdict::Runnable),
            ("cuda.gemm.b", Verdict::Runnable),
            ("cuda.gemm.c", Verdict::Runnable),
            ("cuda.gemm.low", Verdict::Runnable),
        ]
    );
    let scores: Vec<i32> = report.candidates.iter().map(|c| c.score).collect();
    assert_eq!(scores, vec![0, 9, 9, 1, 100]);

    // Without it (sm_75 is too old), equal priorities go by score, then by name.
    let plan = rt.select(GPU1, &p, &Policy::auto()).unwrap();
    assert_eq!(plan.kernel_name(), "cuda.gemm.a");
    assert_eq!(
        verdicts(plan.report()),
        vec![
            ("cuda.gemm.a", Verdict::Selected),
            ("cuda.gemm.b", Verdict::Runnable),
            ("cuda.gemm.c", Verdict::Runnable),
            ("cuda.gemm.low", Verdict::Runnable),
            (
                "cuda.gemm.sm80",
                rejected(vec![Reason::ArchTooOld {
                    have: Sm::new(7, 5).into(),
                    need: cuda_range((8, 0), None),
                }])
            ),
        ]
    );
    assert_eq!(plan.report().pinned_by_env, None);
    assert_eq!(plan.report().policy, Policy::auto());
    assert_eq!(plan.device(), GPU1);
    assert_eq!(plan.problem(), &p);
}

/// The kernels of `report_lists_every_candidate_with_its_reasons`, each failing one check on a
/// T4 for an f16, 4-byte aligned gemm, and one failing three at once.
fn picky_kernels() -> Vec<&'static Fake> {
    vec![
        fake(KernelMeta {
            arch: cuda_range((8, 0), Some((9, 0))),
            ..cuda_gemm("cuda.gemm.ampere_hopper")
        }),
        fake(KernelMeta {
            dtypes: &[DType::BF16],
            ..cuda_gemm("cuda.gemm.bf16")
        }),
        fake(KernelMeta {
            align: 16,
            ..cuda_gemm("cuda.gemm.vec16")
        }),
        Fake::new(cuda_gemm("cuda.gemm.big_smem"))
            .smem(100 * 1024)
            .leak(),
        fake(KernelMeta {
            features: &[Feature::Wgmma, Feature::Tma],
            ..cuda_gemm("cuda.gemm.wgmma")
        }),
        fake(KernelMeta {
            arch: cuda_range((8, 0), None),
            dtypes: &[DType::BF16],
            align: 16,
            ..cuda_gemm("cuda.gemm.many")
        }),
    ]
}

fn picky_reasons() -> Vec<(&'static str, Vec<Reason>)> {
    let too_old = |need: ArchReq| Reason::ArchTooOld {
        have: Sm::new(7, 5).into(),
        need,
    };
    let bf16_only = Reason::DtypeUnsupported {
        arg: "input",
        dtype: DType::F16,
        supported: vec![DType::BF16],
    };
    let align = Reason::Alignment {
        arg: "every tensor",
        need: 16,
        have: 4,
    };
    vec![
        (
            "cuda.gemm.ampere_hopper",
            vec![too_old(cuda_range((8, 0), Some((9, 0))))],
        ),
        ("cuda.gemm.bf16", vec![bf16_only.clone()]),
        (
            "cuda.gemm.big_smem",
            vec![Reason::SharedMemory {
                need: 100 * 1024,
                have: 64 * 1024,
            }],
        ),
        (
            "cuda.gemm.many",
            vec![too_old(cuda_range((8, 0), None)), bf16_only, align.clone()],
        ),
        ("cuda.gemm.vec16", vec![align]),
        (
            "cuda.gemm.wgmma",
            vec![
                Reason::MissingFeature {
                    feature: Feature::Wgmma,
                },
                Reason::MissingFeature {
                    feature: Feature::Tma,
                },
            ],
        ),
    ]
}

#[test]
fn report_lists_every_candidate_with_its_reasons() {
    let mut kernels = picky_kernels();
    kernels.push(fake(cuda_gemm("cuda.gemm.plain")));
    let rt = runtime(registry(&kernels), vec![cuda(0, 7, 5)]);
    let p = problem(OpKind::Gemm, "m=64,n=64,k=64,align=4", DType::F16);
    let plan = rt.select(GPU0, &p, &Policy::auto()).unwrap();
    assert_eq!(plan.kernel_name(), "cuda.gemm.plain");
    let mut want = vec![("cuda.gemm.plain", Verdict::Selected)];
    want.extend(
        picky_reasons()
            .into_iter()
            .map(|(k, reasons)| (k, rejected(reasons))),
    );
    assert_eq!(verdicts(plan.report()), want);
    // The printed report names every kernel and every reason.
    let text = plan.report().to_string();
    for needle in [
        "* cuda.gemm.plain",
        "- cuda.gemm.ampere_hopper: rejected",
        "architecture sm_75 is too old (kernel supports sm_80..=sm_90)",
        "`input` dtype f16 is unsupported (supported: bf16)",
        "must be 16-byte aligned",
        "needs 102400 bytes of shared memory per block, the device allows 65536",
        "the device lacks the `wgmma` feature",
        "the device lacks the `tma` feature",
    ] {
        assert!(text.contains(needle), "report lacks `{needle}`:\n{text}");
    }
}

#[test]
fn all_rejected_reports_each_reason() {
    let rt = runtime(registry(&picky_kernels()), vec![cuda(0, 7, 5)]);
    let p = problem(OpKind::Gemm, "m=64,n=64,k=64,align=4", DType::F16);
    let e = rt.select(GPU0, &p, &Policy::auto()).unwrap_err();
    let msg = e.to_string();
    let report = all_rejected(e);
    assert_eq!(report.selected, None);
    assert_eq!(report.op, OpKind::Gemm);
    assert_eq!(report.device, GPU0);
    assert_eq!(report.problem, p);
    let want: Vec<_> = picky_reasons()
        .into_iter()
        .map(|(k, reasons)| (k, rejected(reasons)))
        .collect();
    assert_eq!(verdicts(&report), want);
    assert!(
        msg.starts_with("no kernel can run this `gemm` problem on cuda:0"),
        "{msg}"
    );
    for (kernel, _) in &want {
        assert!(msg.contains(kernel), "{msg}");
    }
}

// ---------------------------------------------------------------------------------------------
// Requirements.

#[test]
fn arch_ranges_reject_too_old_too_new_and_other_families() {
    let r = registry(&[fake(KernelMeta {
        arch: cuda_range((8, 0), Some((9, 0))),
        ..cuda_gemm("cuda.gemm.sm80_90")
    })]);
    let rt = runtime(r, vec![cuda(0, 7, 5), cuda(1, 9, 0), cuda(2, 12, 0)]);
    let p = gemm_problem();
    let report = all_rejected(rt.select(GPU0, &p, &Policy::auto()).unwrap_err());
    assert_eq!(
        verdicts(&report),
        vec![(
            "cuda.gemm.sm80_90",
            rejected(vec![Reason::ArchTooOld {
                have: Sm::new(7, 5).into(),
                need: cuda_range((8, 0), Some((9, 0)))
            }])
        )]
    );
    assert_eq!(
        rt.select(GPU1, &p, &Policy::auto()).unwrap().kernel_name(),
        "cuda.gemm.sm80_90"
    );
    let report = all_rejected(rt.select(GPU2, &p, &Policy::auto()).unwrap_err());
    assert_eq!(
        verdicts(&report),
        vec![(
            "cuda.gemm.sm80_90",
            rejected(vec![Reason::ArchTooNew {
                have: Sm::new(12, 0).into(),
                max: Sm::new(9, 0).into()
            }])
        )]
    );

    // An arch-specific sm_90a kernel runs on sm_90 only.
    let hopper = ArchReq::Cuda {
        min: Sm::new(9, 0),
        max: Some(Sm::new(9, 0)),
        arch_specific: true,
    };
    assert_eq!(hopper.to_string(), "sm_90a only");
    let r = registry(&[fake(KernelMeta {
        arch: hopper,
        features: &[Feature::Wgmma],
        ..cuda_gemm("cuda.gemm.wgmma")
    })]);
    let rt = runtime(r, vec![cuda(0, 8, 0), cuda(1, 9, 0), cuda(2, 12, 0)]);
    let report = all_rejected(rt.select(GPU0, &p, &Policy::auto()).unwrap_err());
    assert_eq!(
        verdicts(&report),
        vec![(
            "cuda.gemm.wgmma",
            rejected(vec![
                Reason::ArchTooOld {
                    have: Sm::new(8, 0).into(),
                    need: hopper
                },
                Reason::MissingFeature {
                    feature: Feature::Wgmma
                },
            ])
        )]
    );
    assert!(rt.select(GPU1, &p, &Policy::auto()).is_ok());
    let report = all_rejected(rt.select(GPU2, &p, &Policy::auto()).unwrap_err());
    assert!(matches!(
        &report.candidates[0].verdict,
        Verdict::Rejected { reasons } if reasons.iter().any(|r| matches!(r, Reason::ArchTooNew { .. }))
    ));

    // A CUDA kernel declared with a ROCm range is a registration mistake, refused when the
    // registry is built (see `arch_range_must_match_the_device_kind`); the comparison itself
    // still names the family mismatch.
    let mut reasons = Vec::new();
    let gfx90a = ArchReq::Rocm {
        min: Gfx::new(9, 0, 0xa),
        max: None,
        wavefront: None,
    };
    gfx90a.check(&cuda(0, 9, 0).arch, &mut reasons);
    assert_eq!(
        reasons,
        vec![Reason::ArchFamily {
            have: Arch::Cuda { sm: Sm::new(9, 0) },
            need: gfx90a
        }]
    );
    assert_eq!(
        reasons[0].to_string(),
        "architecture sm_90 is not in the kernel's family (gfx90a or newer)"
    );
    // Typed reasons keep their text form, in Display and in JSON.
    let too_old = Reason::ArchTooOld {
        have: Sm::new(7, 5).into(),
        need: cuda_range((8, 0), Some((9, 0))),
    };
    let too_new = Reason::ArchTooNew {
        have: Gfx::new(9, 4, 2).into(),
        max: Gfx::new(9, 0, 0xa).into(),
    };
    assert_eq!(
        too_new.to_string(),
        "architecture gfx942 is newer than the kernel's newest supported gfx90a"
    );
    assert_eq!(
        [&reasons[0], &too_old, &too_new].map(|r| serde_json::to_value(r).unwrap()),
        [
            serde_json::json!({"reason": "arch_family", "have": "sm_90", "need": "gfx90a or newer"}),
            serde_json::json!({"reason": "arch_too_old", "have": "sm_75", "need": "sm_80..=sm_90"}),
            serde_json::json!({"reason": "arch_too_new", "have": "gfx942", "max": "gfx90a"}),
        ]
    );

    // A ROCm kernel for wave32 on a wave64 device.
    let r = registry(&[fake(KernelMeta {
        arch: ArchReq::Rocm {
            min: Gfx::new(9, 0, 8),
            max: Some(Gfx::new(9, 4, 2)),
            wavefront: Some(32),
        },
        ..meta("rocm.gemm.wave32", OpKind::Gemm, DeviceKind::Rocm)
    })]);
    let rt = runtime(r, vec![rocm(0)]);
    let report = all_rejected(
        rt.select(DeviceId::rocm(0), &p, &Policy::auto())
            .unwrap_err(),
    );
    assert_eq!(
        verdicts(&report),
        vec![(
            "rocm.gemm.wave32",
            rejected(vec![Reason::Wavefront { have: 64, need: 32 }])
        )]
    );
}

#[test]
fn dtype_and_alignment_requirements() {
    let r = registry(&[fake(KernelMeta {
        dtypes: &[DType::BF16, DType::F16],
        align: 16,
        ..cuda_gemm("cuda.gemm.half_vec16")
    })]);
    let rt = runtime(r, vec![cuda(0, 9, 0)]);
    let ok = problem(OpKind::Gemm, "m=64,n=64,k=64", DType::BF16);
    assert_eq!(ok.align(), 16);
    assert!(rt.select(GPU0, &ok, &Policy::auto()).is_ok());

    let f32 = problem(OpKind::Gemm, "m=64,n=64,k=64", DType::F32);
    let report = all_rejected(rt.select(GPU0, &f32, &Policy::auto()).unwrap_err());
    assert_eq!(
        verdicts(&report),
        vec![(
            "cuda.gemm.half_vec16",
            rejected(vec![Reason::DtypeUnsupported {
                arg: "input",
                dtype: DType::F32,
                supported: vec![DType::BF16, DType::F16],
            }])
        )]
    );

    for (align, have) in [("4", 4), ("8", 8), ("2", 2)] {
        let p = problem(
            OpKind::Gemm,
            &format!("m=64,n=64,k=64,align={align}"),
            DType::BF16,
        );
        let report = all_rejected(rt.select(GPU0, &p, &Policy::auto()).unwrap_err());
        assert_eq!(
            verdicts(&report),
            vec![(
                "cuda.gemm.half_vec16",
                rejected(vec![Reason::Alignment {
                    arg: "every tensor",
                    need: 16,
                    have
                }])
            )]
        );
    }
}

#[test]
fn shared_memory_is_checked_per_device() {
    let r = registry(&[
        Fake::new(KernelMeta {
            priority: 10,
            ..cuda_gemm("cuda.gemm.deep_pipeline")
        })
        .smem(200 * 1024)
        .leak(),
        fake(cuda_gemm("cuda.gemm.shallow")),
    ]);
    let rt = runtime(r, vec![cuda(0, 9, 0), cuda(1, 12, 0)]);
    let p = gemm_problem();
    assert_eq!(
        rt.select(GPU0, &p, &Policy::auto()).unwrap().kernel_name(),
        "cuda.gemm.deep_pipeline"
    );
    let plan = rt.select(GPU1, &p, &Policy::auto()).unwrap();
    assert_eq!(plan.kernel_name(), "cuda.gemm.shallow");
    assert_eq!(
        verdicts(plan.report()),
        vec![
            ("cuda.gemm.shallow", Verdict::Selected),
            (
                "cuda.gemm.deep_pipeline",
                rejected(vec![Reason::SharedMemory {
                    need: 200 * 1024,
                    have: 99 * 1024
                }])
            ),
        ]
    );
    // Named, it is an error on the small device.
    let (name, report) = kernel_rejected(
        rt.select(GPU1, &p, &Policy::kernel("cuda.gemm.deep_pipeline"))
            .unwrap_err(),
    );
    assert_eq!(name, "cuda.gemm.deep_pipeline");
    assert_eq!(report.selected, None);
}

// ---------------------------------------------------------------------------------------------
// Policy constraints.

#[test]
fn determinism_constraints_never_fall_back() {
    let softmax = |name| meta(name, OpKind::Softmax, DeviceKind::Cuda);
    let fast = fake(KernelMeta {
        priority: 10,
        ..softmax("cuda.softmax.fast")
    });
    let det = fake(KernelMeta {
        priority: 5,
        deterministic: true,
        ..softmax("cuda.softmax.det")
    });
    let inv = fake(KernelMeta {
        deterministic: true,
        batch_invariant: true,
        ..softmax("cuda.softmax.invariant")
    });
    let rt = runtime(registry(&[fast, det, inv]), vec![cuda(0, 9, 0)]);
    let p = softmax_problem();
    let pick = |policy: Policy| rt.select(GPU0, &p, &policy).map(|plan| plan.kernel_name());
    assert_eq!(pick(Policy::auto()).unwrap(), "cuda.softmax.fast");

    let plan = rt
        .select(GPU0, &p, &Policy::auto().deterministic())
        .unwrap();
    assert_eq!(
        verdicts(plan.report()),
        vec![
            ("cuda.softmax.det", Verdict::Selected),
            ("cuda.softmax.invariant", Verdict::Runnable),
            (
                "cuda.softmax.fast",
                rejected(vec![Reason::NotDeterministic])
            ),
        ]
    );

    let plan = rt
        .select(GPU0, &p, &Policy::auto().batch_invariant())
        .unwrap();
    assert_eq!(
        verdicts(plan.report()),
        vec![
            ("cuda.softmax.invariant", Verdict::Selected),
            (
                "cuda.softmax.fast",
                rejected(vec![Reason::NotDeterministic, Reason::NotBatchInvariant])
            ),
            (
                "cuda.softmax.det",
                rejected(vec![Reason::NotBatchInvariant])
            ),
        ]
    );

    // Naming a non-deterministic kernel under a determinism policy is an error, not a swap.
    let (name, report) = kernel_rejected(
        rt.select(
            GPU0,
            &p,
            &Policy::kernel("cuda.softmax.fast").deterministic(),
        )
        .unwrap_err(),
    );
    assert_eq!(name, "cuda.softmax.fast");
    assert_eq!(
        report.candidates[0].verdict,
        rejected(vec![Reason::NotDeterministic])
    );

    // Without a conforming kernel, nothing is chosen; runnable but non-conforming kernels are
    // never used instead. A kernel claiming batch invariance without determinism does not pass.
    let odd = fake(KernelMeta {
        batch_invariant: true,
        ..softmax("cuda.softmax.odd")
    });
    let rt = runtime(registry(&[fast, det, odd]), vec![cuda(0, 9, 0)]);
    let report = all_rejected(
        rt.select(GPU0, &p, &Policy::auto().batch_invariant())
            .unwrap_err(),
    );
    assert_eq!(
        verdicts(&report),
        vec![
            (
                "cuda.softmax.fast",
                rejected(vec![Reason::NotDeterministic, Reason::NotBatchInvariant])
            ),
            (
                "cuda.softmax.det",
                rejected(vec![Reason::NotBatchInvariant])
            ),
            ("cuda.softmax.odd", rejected(vec![Reason::NotDeterministic])),
        ]
    );
    let rt = runtime(registry(&[fast]), vec![cuda(0, 9, 0)]);
    let report = all_rejected(
        rt.select(GPU0, &p, &Policy::auto().deterministic())
            .unwrap_err(),
    );
    assert_eq!(
        verdicts(&report),
        vec![(
            "cuda.softmax.fast",
            rejected(vec![Reason::NotDeterministic])
        )]
    );
}

#[test]
fn backend_policy_restricts_and_unknown_backend_errors() {
    let r = registry(&[
        fake(KernelMeta {
            priority: 10,
            ..cuda_gemm("cuda.gemm.a")
        }),
        fake(cuda_gemm("vendor.gemm.b")),
    ]);
    let rt = runtime(r, vec![cuda(0, 9, 0)]);
    let p = gemm_problem();
    let plan = rt.select(GPU0, &p, &Policy::backend("vendor")).unwrap();
    assert_eq!(
        verdicts(plan.report()),
        vec![
            ("vendor.gemm.b", Verdict::Selected),
            (
                "cuda.gemm.a",
                rejected(vec![Reason::ExcludedByPolicy {
                    backend: "cuda",
                    allowed: "vendor".into()
                }])
            ),
        ]
    );
    assert_eq!(
        rt.select(GPU0, &p, &Policy::backend("cuda"))
            .unwrap()
            .kernel_name(),
        "cuda.gemm.a"
    );
    // A known backend with no kernel here: everything is excluded, nothing falls back.
    let report = all_rejected(rt.select(GPU0, &p, &Policy::backend("rocm")).unwrap_err());
    assert!(report.candidates.iter().all(|c| matches!(
        &c.verdict,
        Verdict::Rejected { reasons } if matches!(&reasons[..], [Reason::ExcludedByPolicy { allowed, .. }] if allowed == "rocm")
    )));
    assert_eq!(report.candidates.len(), 2);
    // An unknown backend.
    match rt.select(GPU0, &p, &Policy::backend("nope")).unwrap_err() {
        SelectError::UnknownBackend { name, known } => {
            assert_eq!(name, "nope");
            assert_eq!(known, vec!["reference", "cuda", "rocm"]);
        }
        other => panic!("expected UnknownBackend, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Named kernels.

#[test]
fn named_kernel_that_cannot_run_is_not_substituted() {
    let r = registry(&[
        fake(KernelMeta {
            priority: 10,
            arch: cuda_range((8, 0), Some((9, 0))),
            ..cuda_gemm("cuda.gemm.sm80_90")
        }),
        fake(cuda_gemm("cuda.gemm.any")),
        fake(meta("reference.gemm", OpKind::Gemm, DeviceKind::Cpu)),
    ]);
    let rt = runtime(r, vec![cuda(0, 12, 0), cuda(1, 9, 0), cpu()]);
    let p = gemm_problem();
    // Another kernel can run this problem on this device...
    assert_eq!(
        rt.select(GPU0, &p, &Policy::auto()).unwrap().kernel_name(),
        "cuda.gemm.any"
    );
    // ...but the named one cannot, and that is the answer.
    let e = rt
        .select(GPU0, &p, &Policy::kernel("cuda.gemm.sm80_90"))
        .unwrap_err();
    let msg = e.to_string();
    let (name, report) = kernel_rejected(e);
    assert_eq!(name, "cuda.gemm.sm80_90");
    assert_eq!(report.selected, None);
    assert_eq!(
        verdicts(&report),
        vec![
            (
                "cuda.gemm.sm80_90",
                rejected(vec![Reason::ArchTooNew {
                    have: Sm::new(12, 0).into(),
                    max: Sm::new(9, 0).into()
                }])
            ),
            ("cuda.gemm.any", Verdict::NotConsidered),
        ]
    );
    assert!(msg.contains("it is not replaced by another"), "{msg}");
    assert!(
        msg.contains("newer than the kernel's newest supported sm_90"),
        "{msg}"
    );

    // Where it can run, it is chosen even over a higher-priority kernel.
    let plan = rt
        .select(GPU1, &p, &Policy::kernel("cuda.gemm.any"))
        .unwrap();
    assert_eq!(
        verdicts(plan.report()),
        vec![
            ("cuda.gemm.any", Verdict::Selected),
            ("cuda.gemm.sm80_90", Verdict::NotConsidered),
        ]
    );

    // A kernel of another device kind, named on this device.
    let (_, report) = kernel_rejected(
        rt.select(GPU0, &p, &Policy::kernel("reference.gemm"))
            .unwrap_err(),
    );
    assert_eq!(
        report.candidates[0].verdict,
        rejected(vec![Reason::WrongDeviceKind {
            have: DeviceKind::Cuda,
            need: DeviceKind::Cpu
        }])
    );
}

#[test]
fn named_kernel_of_another_op_or_unknown_name() {
    let r = registry(&[
        fake(cuda_gemm("cuda.gemm.a")),
        fake(meta("reference.gemm", OpKind::Gemm, DeviceKind::Cpu)),
        fake(meta("cuda.softmax.a", OpKind::Softmax, DeviceKind::Cuda)),
    ]);
    let rt = runtime(r, vec![cuda(0, 9, 0)]);
    let p = gemm_problem();
    let e = rt
        .select(GPU0, &p, &Policy::kernel("cuda.softmax.a"))
        .unwrap_err();
    assert!(
        matches!(
            e,
            SelectError::KernelForOtherOp {
                name: "cuda.softmax.a",
                kernel_op: OpKind::Softmax,
                op: OpKind::Gemm
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("name a `gemm` kernel"), "{e}");

    let e = rt
        .select(GPU0, &p, &Policy::kernel("cuda.gemm.nope"))
        .unwrap_err();
    match &e {
        SelectError::UnknownKernel { name, op, known } => {
            assert_eq!(name, "cuda.gemm.nope");
            assert_eq!(*op, OpKind::Gemm);
            // Every gemm kernel, on any device; no kernel of another op.
            assert_eq!(known, &["reference.gemm", "cuda.gemm.a"]);
        }
        other => panic!("expected UnknownKernel, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("reference.gemm") && msg.contains("cuda.gemm.a"),
        "{msg}"
    );
    assert!(!msg.contains("softmax"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Devices.

#[test]
fn no_kernel_for_the_device_kind_says_where_there_is_one() {
    let r = registry(&[
        fake(cuda_gemm("cuda.gemm.a")),
        fake(meta("reference.gemm", OpKind::Gemm, DeviceKind::Cpu)),
    ]);
    let rt = runtime(r, vec![cuda(0, 9, 0), rocm(0), cpu()]);
    let e = rt
        .select(DeviceId::rocm(0), &gemm_problem(), &Policy::auto())
        .unwrap_err();
    assert!(
        matches!(
            &e,
            SelectError::NoKernelForDevice { op: OpKind::Gemm, kind: DeviceKind::Rocm, available_on }
                if available_on == &[DeviceKind::Cpu, DeviceKind::Cuda]
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("available on: cpu, cuda"), "{e}");
    // An op nobody implements.
    let e = rt
        .select(GPU0, &softmax_problem(), &Policy::auto())
        .unwrap_err();
    assert!(
        matches!(&e, SelectError::NoKernelForDevice { available_on, .. } if available_on.is_empty()),
        "{e:?}"
    );
    assert!(e.to_string().contains("available on: nothing"), "{e}");
}

#[test]
fn unknown_device_says_why() {
    let rt = runtime(
        registry(&[fake(cuda_gemm("cuda.gemm.a"))]),
        vec![cuda(0, 9, 0)],
    );
    let e = rt
        .select(DeviceId::cuda(3), &gemm_problem(), &Policy::auto())
        .unwrap_err();
    match &e {
        SelectError::UnknownDevice {
            device,
            why,
            present,
        } => {
            assert_eq!(*device, DeviceId::cuda(3));
            // Core links no backend: the CUDA backend is reported as not compiled in.
            assert!(
                why.contains("cuda") && why.contains("not compiled in"),
                "{why}"
            );
            assert_eq!(present, &[GPU0]);
        }
        other => panic!("expected UnknownDevice, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("cuda:3") && msg.contains("devices present: cuda:0"),
        "{msg}"
    );
    assert!(rt.capabilities(DeviceId::cuda(3)).is_err());
    assert_eq!(
        rt.capabilities(GPU0).unwrap().name,
        "simulated NVIDIA H100 80GB HBM3"
    );
    // A simulated device selects but has no memory or streams.
    assert!(matches!(
        rt.alloc(GPU0, 1024),
        Err(Error::NoBackendForDevice { device: GPU0, .. })
    ));
    assert!(rt.default_stream(GPU0).is_err());
}

// ---------------------------------------------------------------------------------------------
// Registration.

#[test]
fn duplicate_kernel_names_name_both_sources() {
    let first = fake(KernelMeta {
        source: "kernelyard_cuda::ops::gemm",
        ..cuda_gemm("cuda.gemm.tiled")
    });
    let second = fake(KernelMeta {
        source: "kernelyard_cuda::ops::gemm_v2",
        op: OpKind::Softmax,
        ..cuda_gemm("cuda.gemm.tiled")
    });
    let e = Registry::from_kernels([first as &dyn Kernel, second as &dyn Kernel])
        .err()
        .expect("duplicate names are rejected");
    assert!(
        matches!(
            e,
            Error::DuplicateKernel {
                name: "cuda.gemm.tiled",
                first: "kernelyard_cuda::ops::gemm",
                second: "kernelyard_cuda::ops::gemm_v2"
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("kernelyard_cuda::ops::gemm ")
            && msg.contains("kernelyard_cuda::ops::gemm_v2"),
        "{msg}"
    );
}

#[test]
fn kernel_name_must_start_with_its_backend() {
    for name in ["gemm.cuda", "cudax.gemm", "cuda", "cuda_gemm"] {
        let k = fake(KernelMeta {
            backend: "cuda",
            ..cuda_gemm(name)
        });
        let e = Registry::from_kernels([k as &dyn Kernel])
            .err()
            .unwrap_or_else(|| panic!("`{name}` is accepted"));
        assert!(
            matches!(e, Error::BadKernelMeta { name: n, .. } if n == name),
            "{e:?}"
        );
        assert!(e.to_string().contains("`<backend>.`"), "{e}");
    }
    assert!(Registry::from_kernels([fake(cuda_gemm("cuda.gemm")) as &dyn Kernel]).is_ok());
}

#[test]
fn arch_range_must_match_the_device_kind() {
    let k = fake(KernelMeta {
        arch: ArchReq::Rocm {
            min: Gfx::new(9, 0, 8),
            max: None,
            wavefront: Some(64),
        },
        ..cuda_gemm("cuda.gemm.rocm_arch")
    });
    let e = Registry::from_kernels([k as &dyn Kernel])
        .err()
        .unwrap_or_else(|| panic!("a CUDA kernel with a ROCm arch range is accepted"));
    assert!(
        matches!(
            e,
            Error::BadKernelMeta {
                name: "cuda.gemm.rocm_arch",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("arch range"), "{e}");
}

#[test]
fn check_reports_static_and_problem_reasons_together() {
    let k = Fake::new(KernelMeta {
        arch: fakes::cuda_range((8, 0), Some((9, 0))),
        ..cuda_gemm("cuda.gemm.old_and_big")
    })
    .smem(100 * 1024)
    .leak();
    let caps = cuda(0, 7, 5);
    let p = gemm_problem();
    let reasons = k.check(&caps, &p).unwrap_err();
    assert!(
        reasons
            .iter()
            .any(|r| matches!(r, Reason::ArchTooOld { .. }))
            && reasons
                .iter()
                .any(|r| matches!(r, Reason::SharedMemory { .. })),
        "{reasons:?}"
    );
}
