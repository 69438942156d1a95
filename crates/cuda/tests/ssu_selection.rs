//! Selection of `cuda.selective_state_update` on simulated devices (no GPU needed): every
//! sm_75+ architecture selects it for every dtype, state dtype and index dtype, with or without
//! the `batch_invariant` / `deterministic` constraints and whatever the batch or alignment;
//! older architectures and state rows longer than its lanes can hold are typed reasons.

mod selection_support;

use kernelyard_core::{DType, DeviceId, OpKind, Policy, Problem, Reason, Runtime, Sm};
use selection_support::{rejection, H100_OPTIN};

const SSU: &str = "cuda.selective_state_update";

fn runtime(sm: Sm) -> Runtime {
    selection_support::runtime(sm, H100_OPTIN)
}

fn ssu(params: &str, dtype: DType) -> Problem {
    selection_support::problem(OpKind::SelectiveStateUpdate, params, dtype)
}

const FLOATS: [(DType, &str); 3] = [
    (DType::F32, "f32"),
    (DType::F16, "f16"),
    (DType::BF16, "bf16"),
];

/// Mamba-2 style decode shapes (A per head or per element, with and without the optional
/// inputs, a misaligned one), each with every state dtype and no, i32 or i64 indices.
fn problems() -> Vec<(String, DType, Problem)> {
    let shapes = [
        "batch=8,heads=80,head_dim=64,state_dim=128,groups=1,a_per_head=1",
        "batch=1,heads=24,head_dim=64,state_dim=128,groups=8",
        "batch=256,heads=32,head_dim=64,state_dim=16,dt_bias=0,d=0,z=0,dt_softplus=0",
        "batch=3,heads=2,head_dim=7,state_dim=100,align=4",
        "batch=2,heads=4,head_dim=64,state_dim=512",
    ];
    let indices = [
        "",
        ",state_indices=i32,cache_slots=512",
        ",state_indices=i64,cache_slots=300",
    ];
    let mut out = Vec::new();
    for shape in shapes {
        for (_, state) in FLOATS {
            for ix in indices {
                let params = format!("{shape},state_dtype={state}{ix}");
                for (dtype, _) in FLOATS {
                    out.push((params.clone(), dtype, ssu(&params, dtype)));
                }
            }
        }
    }
    out
}

#[test]
fn every_sm75_and_newer_device_selects_it_for_every_dtype_combination() {
    let problems = problems();
    assert_eq!(problems.len(), 5 * 3 * 3 * 3);
    for sm in [
        Sm::new(7, 5),
        Sm::new(8, 0),
        Sm::new(8, 9),
        Sm::new(9, 0),
        Sm::new(10, 0),
        Sm::new(12, 0),
    ] {
        let rt = runtime(sm);
        for (params, dtype, p) in &problems {
            for policy in [
                Policy::auto(),
                Policy::auto().batch_invariant(),
                Policy::auto().deterministic(),
                Policy::kernel(SSU),
            ] {
                let plan = rt
                    .select(DeviceId::cuda(0), p, &policy)
                    .unwrap_or_else(|e| panic!("{sm} {params} {dtype} {policy}: {e}"));
                assert_eq!(plan.kernel_name(), SSU, "{sm} {params} {dtype}");
            }
        }
    }
}

#[test]
fn the_choice_does_not_depend_on_the_batch() {
    let rt = runtime(Sm::new(9, 0));
    for batch in [1, 2, 3, 64, 1000, 65536] {
        for state in ["f32", "bf16"] {
            let p = ssu(
                &format!("batch={batch},heads=80,head_dim=64,state_dim=128,state_dtype={state}"),
                DType::BF16,
            );
            let plan = rt
                .select(DeviceId::cuda(0), &p, &Policy::auto().batch_invariant())
                .unwrap_or_else(|e| panic!("batch {batch}: {e}"));
            assert_eq!(plan.kernel_name(), SSU);
        }
    }
}

#[test]
fn sm70_is_too_old() {
    let rt = runtime(Sm::new(7, 0));
    let p = ssu("batch=4,heads=8,head_dim=64,state_dim=128", DType::BF16);
    let err = rt
        .select(DeviceId::cuda(0), &p, &Policy::kernel(SSU))
        .unwrap_err();
    let reasons = rejection(err, SSU);
    assert!(
        reasons
            .iter()
            .any(|r| matches!(r, Reason::ArchTooOld { .. })),
        "{reasons:?}"
    );
}

#[test]
fn state_rows_beyond_32_lanes_are_a_shape_reason() {
    let rt = runtime(Sm::new(9, 0));
    for (params, ok) in [
        ("state_dim=512,state_dtype=f32", true),
        ("state_dim=513,state_dtype=f32", false),
        ("state_dim=1024,state_dtype=bf16", true),
        ("state_dim=1024,state_dtype=f16", true),
        ("state_dim=1025,state_dtype=bf16", false),
        ("state_dim=1025,state_dtype=f16", false),
    ] {
        let p = ssu(
            &format!("batch=2,heads=4,head_dim=16,{params}"),
            DType::BF16,
        );
        let got = rt.select(DeviceId::cuda(0), &p, &Policy::kernel(SSU));
        if ok {
            assert_eq!(got.unwrap().kernel_name(), SSU, "{params}");
            continue;
        }
        let reasons = rejection(got.unwrap_err(), SSU);
        assert!(
            matches!(reasons.as_slice(), [Reason::ShapeUnsupported { what }]
                if what.contains("state_dim")),
            "{params}: {reasons:?}"
        );
    }
}
