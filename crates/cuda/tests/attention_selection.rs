//! Selection between the CUDA attention kernels on simulated devices (no GPU needed):
//! `cuda.attention.decode.mma` (tensor cores, priority 31) for f16/bf16 problems of at most 16
//! query rows per key/value head at head dims 64, 128 and 256 on every sm_80+ device;
//! `cuda.attention.decode` (SIMT split keys, priority 30) for the other problems of at most 8
//! query rows per key/value head (f32, sm_75, other head dims); otherwise
//! `cuda.attention.sm90` (TMA + wgmma, priority 11) wherever it can run, since it measured
//! faster on the H100 (docs/BENCHMARKS.md), head dim 256 included where the device's opt-in
//! shared memory holds its 193 KiB; `cuda.attention` (mma.sync, priority 10) on other sm_80+
//! devices; and typed
//! reasons where none runs.

mod selection_support;

use kernelyard_core::{DType, DeviceId, OpKind, Policy, Problem, Reason, SelectError, Sm, Verdict};
use selection_support::{rejection, runtime};

const MMA: &str = "cuda.attention";
const SM90: &str = "cuda.attention.sm90";
const DECODE: &str = "cuda.attention.decode";
const DECODE_MMA: &str = "cuda.attention.decode.mma";

fn attention(params: &str, dtype: DType) -> Problem {
    selection_support::problem(OpKind::Attention, params, dtype)
}

const SHAPES: &[&str] = &[
    "batch=4,seq_q=4096,heads_q=32,heads_kv=32,head_dim=128,causal=0",
    "batch=1,seq_q=16384,heads_q=32,heads_kv=8,head_dim=128,causal=1",
    "batch=8,seq_q=2048,heads_q=16,heads_kv=16,head_dim=64,causal=1,lse=1",
    // 24 query rows per key/value head: past the decode kernels' 8 and 16.
    "batch=2,seq_q=3,seq_kv=77,heads_q=8,heads_kv=1,head_dim=64",
];

/// Head dim 256 prefill (more than 8 query rows per key/value head): torch_ops.py's
/// `attention_hd256` shape, GQA with ragged lengths, and a Gemma-like GQA 2 step.
const SHAPES_256: &[&str] = &[
    "batch=2,seq_q=4096,heads_q=16,heads_kv=16,head_dim=256,causal=1",
    "batch=2,seq_q=300,seq_kv=500,heads_q=8,heads_kv=2,head_dim=256,lse=1",
    "batch=1,seq_q=9,seq_kv=1000,heads_q=16,heads_kv=8,head_dim=256,causal=1",
];

/// What `cuda.attention` needs for head dim 256 in this build (`shared_bytes(256)`; the
/// default, `ATTN_D256` = 0: Q 32 KiB + two stages of K and V tiles of 32 keys (64 KiB) + 1 KiB
/// of row sums = 99,328 bytes; more in the other builds, docs/NOTES.md issue 18).
const NEED_256: u64 = match kernelyard_cuda::ops::attention::shared_bytes(256) {
    Some(n) => n,
    None => panic!("cuda.attention has head dim 256"),
};

/// torch_ops.py's decode shapes, a short-query prefill and a one-query MQA step.
const DECODE_SHAPES: &[&str] = &[
    "batch=64,seq_q=1,seq_kv=4096,heads_q=32,heads_kv=8,head_dim=128",
    "batch=8,seq_q=1,seq_kv=32768,heads_q=32,heads_kv=8,head_dim=128,lse=1",
    "batch=1,seq_q=1,seq_kv=131072,heads_q=32,heads_kv=8,head_dim=128,causal=1",
    "batch=2,seq_q=2,seq_kv=1000,heads_q=8,heads_kv=2,head_dim=256,causal=1",
    "batch=2,seq_q=1,seq_kv=77,heads_q=8,heads_kv=1,head_dim=64",
];

#[test]
fn decode_problems_get_a_split_kernel_on_every_device() {
    // The tensor-core one on sm_80+ for f16 and bf16; the SIMT one for f32 and on sm_75.
    for (sm, optin) in [
        (Sm::new(7, 5), 64 << 10),
        (Sm::new(8, 0), 163 << 10),
        (Sm::new(8, 9), 99 << 10),
        (Sm::new(9, 0), 227 << 10),
        (Sm::new(12, 0), 99 << 10),
    ] {
        let rt = runtime(sm, optin);
        for s in DECODE_SHAPES {
            for dtype in [DType::BF16, DType::F16, DType::F32] {
                let p = attention(s, dtype);
                for policy in [Policy::auto(), Policy::auto().batch_invariant()] {
                    let plan = rt
                        .select(DeviceId::cuda(0), &p, &policy)
                        .unwrap_or_else(|e| panic!("{sm} {s} {dtype}: {e}"));
                    let want = if sm >= Sm::new(8, 0) && dtype != DType::F32 {
                        DECODE_MMA
                    } else {
                        DECODE
                    };
                    assert_eq!(
                        plan.kernel_name(),
                        want,
                        "{sm} {s} {dtype}:\n{}",
                        plan.report()
                    );
                }
            }
        }
    }
}

/// Problems of 9 to 16 query rows per key/value head: past the SIMT decode kernel's 8.
const DECODE_16_ROWS: &[&str] = &[
    "batch=2,seq_q=2,seq_kv=77,heads_q=8,heads_kv=1,head_dim=64",
    "batch=3,seq_q=2,seq_kv=5000,heads_q=64,heads_kv=8,head_dim=128,causal=1,lse=1",
    "batch=1,seq_q=3,seq_kv=900,heads_q=12,heads_kv=3,head_dim=256,causal=1",
];

#[test]
fn up_to_16_query_rows_get_the_tensor_core_decode_kernel_on_sm80_and_newer() {
    for (sm, optin) in [
        (Sm::new(8, 0), 163 << 10),
        (Sm::new(8, 6), 99 << 10),
        (Sm::new(8, 9), 99 << 10),
        (Sm::new(9, 0), 227 << 10),
        (Sm::new(12, 0), 99 << 10),
    ] {
        let rt = runtime(sm, optin);
        for s in DECODE_16_ROWS {
            for dtype in [DType::BF16, DType::F16] {
                let p = attention(s, dtype);
                for policy in [Policy::auto(), Policy::auto().batch_invariant()] {
                    let plan = rt
                        .select(DeviceId::cuda(0), &p, &policy)
                        .unwrap_or_else(|e| panic!("{sm} {s} {dtype}: {e}"));
                    assert_eq!(
                        plan.kernel_name(),
                        DECODE_MMA,
                        "{sm} {s} {dtype}:\n{}",
                        plan.report()
                    );
                }
            }
        }
    }
}

#[test]
fn the_tensor_core_decode_kernel_names_what_it_cannot_run() {
    let rt = runtime(Sm::new(9, 0), 227 << 10);
    for (s, dtype, what) in [
        (
            "batch=2,seq_q=3,seq_kv=77,heads_q=12,heads_kv=2,head_dim=64",
            DType::BF16,
            "shape unsupported: (heads_q / heads_kv) * seq_q = 18 query rows",
        ),
        (
            "seq_q=1,seq_kv=77,heads_q=2,head_dim=96",
            DType::F16,
            "shape unsupported: head_dim 96",
        ),
        (
            "seq_q=1,seq_kv=77,heads_q=2,head_dim=128",
            DType::F32,
            "dtype f32 is unsupported",
        ),
    ] {
        let err = rt
            .select(
                DeviceId::cuda(0),
                &attention(s, dtype),
                &Policy::kernel(DECODE_MMA),
            )
            .err()
            .unwrap_or_else(|| panic!("{s}: selected"));
        let reasons = rejection(err, DECODE_MMA);
        assert!(
            reasons.iter().any(|r| r.to_string().contains(what)),
            "{s}: {reasons:?}"
        );
    }
    // sm_75: no mma.sync; the SIMT decode kernel runs the decode shapes there.
    let rt = runtime(Sm::new(7, 5), 64 << 10);
    let p = attention(DECODE_SHAPES[0], DType::F16);
    let err = rt
        .select(DeviceId::cuda(0), &p, &Policy::kernel(DECODE_MMA))
        .unwrap_err();
    let reasons = rejection(err, DECODE_MMA);
    assert!(
        reasons
            .iter()
            .any(|r| matches!(r, Reason::ArchTooOld { .. })),
        "{reasons:?}"
    );
    // 64 KiB per block: the 96 KiB of stages do not fit; auto falls back to the SIMT kernel.
    let rt = runtime(Sm::new(8, 0), 64 << 10);
    let err = rt
        .select(DeviceId::cuda(0), &p, &Policy::kernel(DECODE_MMA))
        .unwrap_err();
    assert_eq!(
        rejection(err, DECODE_MMA),
        vec![Reason::SharedMemory {
            need: 96 << 10,
            have: 64 << 10
        }]
    );
    let plan = rt.select(DeviceId::cuda(0), &p, &Policy::auto()).unwrap();
    assert_eq!(plan.kernel_name(), DECODE, "{}", plan.report());
}

#[test]
fn the_decode_kernel_names_what_it_cannot_run() {
    let rt = runtime(Sm::new(9, 0), 227 << 10);
    for (s, what) in [
        (
            "batch=2,seq_q=2,seq_kv=77,heads_q=8,heads_kv=1,head_dim=64",
            "16 query rows",
        ),
        ("seq_q=1,seq_kv=77,heads_q=2,head_dim=76", "head_dim 76"),
        ("seq_q=1,seq_kv=77,heads_q=2,head_dim=512", "head_dim 512"),
    ] {
        let err = rt
            .select(
                DeviceId::cuda(0),
                &attention(s, DType::BF16),
                &Policy::kernel(DECODE),
            )
            .err()
            .unwrap_or_else(|| panic!("{s}: selected"));
        let reasons = rejection(err, DECODE);
        assert!(
            reasons
                .iter()
                .any(|r| matches!(r, Reason::ShapeUnsupported { what: w } if w.contains(what))),
            "{s}: {reasons:?}"
        );
    }
    // A device with 16 KiB of shared memory per block: 8 rows at head dim 256 need 32.8 KB.
    kernelyard_cuda::link();
    let caps = kernelyard_core::Capabilities {
        shared_mem_per_block: 16 << 10,
        ..kernelyard_cuda::device::simulated_caps(Sm::new(8, 0), 48 << 10)
    };
    let small = kernelyard_core::Runtime::builder()
        .no_probe()
        .pins("")
        .simulated_device(caps)
        .build()
        .expect("runtime");
    let p = attention(
        "seq_q=1,seq_kv=700,heads_q=8,heads_kv=1,head_dim=256",
        DType::BF16,
    );
    let err = small
        .select(DeviceId::cuda(0), &p, &Policy::kernel(DECODE))
        .unwrap_err();
    let reasons = rejection(err, DECODE);
    assert!(
        reasons.iter().any(|r| matches!(
            r,
            Reason::SharedMemory { need: 32_832, have } if *have == 16 << 10
        )),
        "{reasons:?}"
    );
}

#[test]
fn the_hopper_kernel_is_preferred_where_it_runs() {
    let rt = runtime(Sm::new(9, 0), 227 << 10);
    for s in SHAPES {
        for dtype in [DType::BF16, DType::F16] {
            let p = attention(s, dtype);
            for policy in [Policy::auto(), Policy::auto().batch_invariant()] {
                let plan = rt
                    .select(DeviceId::cuda(0), &p, &policy)
                    .unwrap_or_else(|e| panic!("{s} {dtype}: {e}"));
                assert_eq!(plan.kernel_name(), SM90, "{s} {dtype}:\n{}", plan.report());
            }
        }
    }
}

#[test]
fn other_devices_get_the_mma_kernel() {
    // sm_80 (A100: 163 KiB), sm_89 and sm_120 (99 KiB): the mma.sync kernel fits all of them.
    for (sm, optin) in [
        (Sm::new(8, 0), 163 << 10),
        (Sm::new(8, 9), 99 << 10),
        (Sm::new(12, 0), 99 << 10),
    ] {
        let rt = runtime(sm, optin);
        for s in SHAPES {
            let p = attention(s, DType::BF16);
            let plan = rt
                .select(DeviceId::cuda(0), &p, &Policy::auto())
                .unwrap_or_else(|e| panic!("{sm} {s}: {e}"));
            assert_eq!(plan.kernel_name(), MMA, "{sm} {s}:\n{}", plan.report());
        }
    }
}

#[test]
fn a_small_shared_memory_limit_is_a_typed_reason_not_a_launch() {
    // An sm_90 part with only 99 KiB per block: the Hopper kernel (161 KiB at head dim 128)
    // is rejected with SharedMemory, the mma.sync kernel (98 KiB) runs.
    let rt = runtime(Sm::new(9, 0), 99 << 10);
    let p = attention(SHAPES[0], DType::BF16);
    let plan = rt.select(DeviceId::cuda(0), &p, &Policy::auto()).unwrap();
    assert_eq!(plan.kernel_name(), MMA, "{}", plan.report());
    let err = rt
        .select(DeviceId::cuda(0), &p, &Policy::kernel(SM90))
        .unwrap_err();
    let reasons = rejection(err, SM90);
    assert!(
        reasons
            .iter()
            .any(|r| matches!(r, Reason::SharedMemory { have, .. } if *have == 99 << 10)),
        "{reasons:?}"
    );
}

#[test]
fn unsupported_head_dims_and_dtypes_are_typed_reasons() {
    let rt = runtime(Sm::new(9, 0), 227 << 10);
    for (s, dtype) in [
        ("seq_q=64,heads_q=2,head_dim=80", DType::BF16),
        ("seq_q=64,heads_q=2,head_dim=128", DType::F32),
    ] {
        let p = attention(s, dtype);
        for name in [MMA, SM90] {
            let err = rt
                .select(DeviceId::cuda(0), &p, &Policy::kernel(name))
                .err()
                .unwrap_or_else(|| panic!("{name} {s} {dtype}: selected"));
            let reasons = rejection(err, name);
            assert!(
                reasons.iter().any(|r| matches!(
                    r,
                    Reason::ShapeUnsupported { .. } | Reason::DtypeUnsupported { .. }
                )),
                "{name} {s} {dtype}: {reasons:?}"
            );
        }
    }
}

/// What `cuda.attention.sm90` needs at head dim 256 (Q 64 KiB + two stages of 64-key K and V
/// tiles + barriers + alignment slack).
const NEED_256_SM90: u64 = kernelyard_cuda::ops::attention_sm90::shared_bytes(256);

#[test]
fn head_dim_256_gets_the_hopper_kernel_on_sm90_and_the_mma_kernel_elsewhere() {
    // sm_90 with its 227 KiB: the Hopper kernel (193 KiB at head dim 256). Elsewhere the
    // mma.sync kernel: in the default build its 97 KiB fit every sm_80+ device's opt-in limit
    // (99 KiB on sm_86 / sm_89 / sm_120). A build with a larger head-dim-256 tiling
    // (`ATTN_D256` 1, 2 or 3) runs where it fits, and elsewhere nothing runs, with the shared
    // memory as the reason (never another tiling).
    assert_eq!(NEED_256_SM90, 197_704);
    use kernelyard_cuda::ops::attention::D256_TILING;
    let devices = [
        (Sm::new(8, 0), 163 << 10),
        (Sm::new(8, 6), 99 << 10),
        (Sm::new(8, 9), 99 << 10),
        (Sm::new(9, 0), 227 << 10),
        (Sm::new(12, 0), 99 << 10),
    ];
    if D256_TILING == 0 {
        assert!(devices.iter().all(|&(_, optin)| NEED_256 <= optin));
    }
    for (sm, optin) in devices {
        let rt = runtime(sm, optin);
        for s in SHAPES_256 {
            for dtype in [DType::BF16, DType::F16] {
                let p = attention(s, dtype);
                for policy in [
                    Policy::auto(),
                    Policy::auto().batch_invariant(),
                    Policy::auto().deterministic(),
                ] {
                    let selected = rt.select(DeviceId::cuda(0), &p, &policy);
                    if sm == Sm::new(9, 0) && NEED_256_SM90 <= optin {
                        let plan = selected.unwrap_or_else(|e| panic!("{sm} {s} {dtype}: {e}"));
                        assert_eq!(
                            plan.kernel_name(),
                            SM90,
                            "{sm} {s} {dtype}:\n{}",
                            plan.report()
                        );
                        continue;
                    }
                    if NEED_256 <= optin {
                        let plan = selected.unwrap_or_else(|e| panic!("{sm} {s} {dtype}: {e}"));
                        assert_eq!(
                            plan.kernel_name(),
                            MMA,
                            "{sm} {s} {dtype}:\n{}",
                            plan.report()
                        );
                        continue;
                    }
                    let report = match selected {
                        Err(SelectError::AllRejected { report }) => report,
                        Err(e) => panic!("{sm} {s} {dtype}: expected AllRejected, got {e}"),
                        Ok(plan) => panic!("{sm} {s} {dtype}: selected {}", plan.kernel_name()),
                    };
                    let mma = report.candidates.iter().find(|c| c.kernel == MMA);
                    assert!(
                        mma.is_some_and(|c| matches!(
                            &c.verdict,
                            Verdict::Rejected { reasons } if reasons.contains(&Reason::SharedMemory {
                                need: NEED_256,
                                have: optin
                            })
                        )),
                        "{sm} {s} {dtype}:\n{report}"
                    );
                }
            }
        }
    }
    // An sm_90 part with less opt-in shared memory than the Hopper kernel needs at head dim
    // 256 (one byte short, 160 KiB): named, it says why not with the exact numbers; under auto
    // the mma.sync kernel runs (its 97 KiB fit), and the report keeps the Hopper kernel's
    // reason.
    for optin in [NEED_256_SM90 - 1, 160 << 10] {
        let rt = runtime(Sm::new(9, 0), optin);
        let p = attention(SHAPES_256[0], DType::BF16);
        let err = rt
            .select(DeviceId::cuda(0), &p, &Policy::kernel(SM90))
            .unwrap_err();
        assert_eq!(
            rejection(err, SM90),
            vec![Reason::SharedMemory {
                need: NEED_256_SM90,
                have: optin
            }],
            "{optin}"
        );
        if D256_TILING == 0 {
            let plan = rt
                .select(DeviceId::cuda(0), &p, &Policy::auto())
                .unwrap_or_else(|e| panic!("{optin}: {e}"));
            assert_eq!(plan.kernel_name(), MMA, "{}", plan.report());
            let sm90 = plan
                .report()
                .candidates
                .iter()
                .find(|c| c.kernel == SM90)
                .cloned();
            assert!(
                sm90.is_some_and(|c| matches!(
                    &c.verdict,
                    Verdict::Rejected { reasons } if reasons.contains(&Reason::SharedMemory {
                        need: NEED_256_SM90,
                        have: optin
                    })
                )),
                "{}",
                plan.report()
            );
        }
    }
}

#[test]
fn too_little_shared_memory_for_head_dim_256_is_a_typed_reason() {
    // One byte short of the need, and a 96 KiB device: named, the mma.sync kernel is rejected
    // with the exact numbers; under auto nothing runs (the Hopper kernel needs more still,
    // decode takes at most 8 query rows per key/value head) and the report has the same reason.
    for (sm, optin) in [(Sm::new(9, 0), NEED_256 - 1), (Sm::new(8, 6), 96 << 10)] {
        let rt = runtime(sm, optin);
        let p = attention(SHAPES_256[1], DType::BF16);
        let err = rt
            .select(DeviceId::cuda(0), &p, &Policy::kernel(MMA))
            .unwrap_err();
        assert_eq!(
            rejection(err, MMA),
            vec![Reason::SharedMemory {
                need: NEED_256,
                have: optin
            }],
            "{sm} {optin}"
        );
        let err = rt
            .select(DeviceId::cuda(0), &p, &Policy::auto())
            .unwrap_err();
        let SelectError::AllRejected { report } = err else {
            panic!("{sm} {optin}: expected AllRejected, got {err}");
        };
        let mma = report
            .candidates
            .iter()
            .find(|c| c.kernel == MMA)
            .unwrap_or_else(|| panic!("{report}"));
        assert!(
            matches!(
                &mma.verdict,
                Verdict::Rejected { reasons } if reasons.contains(&Reason::SharedMemory {
                    need: NEED_256,
                    have: optin
                })
            ),
            "{report}"
        );
        // Head dim 64 (50 KiB) still runs there.
        let small = attention(
            "batch=2,seq_q=300,heads_q=8,heads_kv=2,head_dim=64",
            DType::BF16,
        );
        let plan = rt
            .select(DeviceId::cuda(0), &small, &Policy::kernel(MMA))
            .unwrap_or_else(|e| panic!("{sm} {optin}: {e}"));
        assert_eq!(plan.kernel_name(), MMA);
    }
    // Exactly the need runs.
    let rt = runtime(Sm::new(9, 0), NEED_256);
    let p = attention(SHAPES_256[1], DType::F16);
    let plan = rt
        .select(DeviceId::cuda(0), &p, &Policy::kernel(MMA))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.kernel_name(), MMA);
}

/// Head dim 96 in `cuda.attention.sm90` (verified on an H100 in the sixteenth session: the
/// suite's six `d96_*` cases and the three sanitizers): the sm_90 device selects it, and its
/// 121 KiB fit the opt-in limit; a device with less shared memory is refused with the need.
#[test]
fn head_dim_96_runs_on_the_sm90_kernel() {
    let p = attention(
        "batch=2,seq_q=300,seq_kv=500,heads_q=8,heads_kv=2,head_dim=96,causal=1",
        DType::BF16,
    );
    let plan = runtime(Sm::new(9, 0), 227 << 10)
        .select(DeviceId::cuda(0), &p, &Policy::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.kernel_name(), SM90, "{}", plan.report());
    let err = runtime(Sm::new(9, 0), 99 << 10)
        .select(DeviceId::cuda(0), &p, &Policy::kernel(SM90))
        .err()
        .unwrap_or_else(|| panic!("head dim 96 selected in 99 KiB of shared memory"));
    let reasons = rejection(err, SM90);
    assert!(
        reasons
            .iter()
            .any(|r| matches!(r, Reason::SharedMemory { need, .. } if *need > 99 << 10)),
        "{reasons:?}"
    );
}
