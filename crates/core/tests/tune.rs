//! Tuning keys, environments and the cache file (`kernelyard_core::tune`), on the CPU.

#[path = "support/problems.rs"]
mod problems;

use std::path::PathBuf;

use kernelyard_core::tune::{
    bucket, Candidate, KeyValue, Lookup, Measurement, TuneError, TuningCache, TuningEntry,
    TuningEnv, TuningKey,
};
use kernelyard_core::{Capabilities, DType, OpKind, Params, Problem, Version};
use proptest::prelude::*;
use serde_json::Value;

fn problem(op: OpKind, spec: &str, dtype: DType) -> Problem {
    Problem::from_params(op, &Params::parse(op, spec).unwrap(), dtype).unwrap()
}

fn caps() -> Capabilities {
    Capabilities::host()
}

fn key(op: OpKind, spec: &str, constrained: bool) -> TuningKey {
    TuningKey::new(&problem(op, spec, DType::BF16), &caps(), constrained).unwrap()
}

#[test]
fn buckets_are_ceilings_of_powers_of_two() {
    assert_eq!(
        [0, 1, 2, 3, 4, 5, 4096, 4097, u64::MAX].map(bucket),
        [0, 0, 1, 2, 2, 3, 12, 13, 64]
    );
}

#[test]
fn sizes_bucket_and_everything_else_is_exact() {
    let k = key(OpKind::RmsNorm, "rows=100,hidden=4000", false);
    assert_eq!(k.fields["hidden"], KeyValue::Pow2(12));
    assert_eq!(k.fields["rows"], KeyValue::Pow2(7));
    assert_eq!(k.fields["dtype"], KeyValue::Exact("bf16".into()));
    assert_eq!(k.fields["align"], KeyValue::Exact("16".into()));
    // Same bucket, same key; another bucket, another key.
    assert_eq!(k, key(OpKind::RmsNorm, "rows=128,hidden=4096", false));
    assert_ne!(k, key(OpKind::RmsNorm, "rows=128,hidden=4097", false));
    // Alignment and flags are never coarsened: a key cannot claim more than its problem has.
    assert_ne!(
        k,
        key(OpKind::RmsNorm, "rows=100,hidden=4000,align=8", false)
    );
    assert_ne!(
        k,
        key(OpKind::RmsNorm, "rows=100,hidden=4000,residual=1", false)
    );
    let f32 = TuningKey::new(
        &problem(OpKind::RmsNorm, "rows=100,hidden=4000", DType::F32),
        &caps(),
        false,
    )
    .unwrap();
    assert_ne!(k, f32);
    assert!(
        k.label()
            .starts_with(&format!("rms_norm {} [", caps().arch)),
        "{}",
        k.label()
    );
}

#[test]
fn gemm_strides_stay_exact() {
    let k = key(OpKind::Gemm, "m=100,n=4000,k=4000", false);
    assert_eq!(k.fields["m"], KeyValue::Pow2(7));
    assert_eq!(k.fields["lda"], KeyValue::Exact("4000".into()));
    assert_ne!(k, key(OpKind::Gemm, "m=100,n=4000,k=4001", false));
}

#[test]
fn a_constrained_key_does_not_see_the_batch() {
    for (op, a, b) in [
        (OpKind::Gemm, "m=1,n=4096,k=4096", "m=1000,n=4096,k=4096"),
        (
            OpKind::RmsNorm,
            "rows=1,hidden=4096",
            "rows=70000,hidden=4096",
        ),
        (
            OpKind::SelectiveStateUpdate,
            "batch=1,heads=8,head_dim=64,state_dim=128",
            "batch=300,heads=8,head_dim=64,state_dim=128",
        ),
    ] {
        assert_ne!(key(op, a, false), key(op, b, false), "{op:?}");
        let (ka, kb) = (key(op, a, true), key(op, b, true));
        assert_eq!(ka, kb, "{op:?}");
        for f in op.batch_fields() {
            assert!(!ka.fields.contains_key(*f), "{op:?} {f}");
        }
    }
}

#[test]
fn every_batch_and_bucketed_field_is_a_problem_field() {
    for op in OpKind::ALL {
        let p = Problem::from_params(
            op,
            &Params::parse(op, op.example().params).unwrap(),
            op.example().dtype,
        )
        .unwrap();
        let Value::Object(map) = serde_json::to_value(&p).unwrap() else {
            panic!("{op:?}")
        };
        for f in op.batch_fields().iter().chain(op.bucketed()) {
            assert!(map.get(*f).is_some_and(Value::is_u64), "{op:?}: `{f}`");
        }
        assert!(!op.bucketed().contains(&"align"), "{op:?}");
    }
}

proptest! {
    /// For any valid problem, changing its batch fields never changes its constrained key.
    #[test]
    fn constrained_keys_ignore_batch_fields(
        p in prop_oneof![
            problems::problem(OpKind::Gemm),
            problems::problem(OpKind::RmsNorm),
            problems::problem(OpKind::Softmax),
            problems::problem(OpKind::TokenLogprobs),
            problems::problem(OpKind::Rope),
            problems::problem(OpKind::Attention),
            problems::problem(OpKind::SelectiveStateUpdate),
            problems::problem(OpKind::SiluMul),
        ],
        other in 1u64..1_000_000,
    ) {
        let base = TuningKey::new(&p, &caps(), true).unwrap();
        let Value::Object(mut map) = serde_json::to_value(&p).unwrap() else { unreachable!() };
        for f in p.op().batch_fields() {
            map.insert((*f).to_string(), Value::from(other));
        }
        let q: Problem = serde_json::from_value(Value::Object(map)).unwrap();
        prop_assert_eq!(TuningKey::new(&q, &caps(), true).unwrap(), base);
    }
}

fn env() -> TuningEnv {
    TuningEnv {
        device_name: "NVIDIA H200".into(),
        arch: "sm_90".into(),
        multiprocessors: 132,
        driver: Some("13.0".into()),
        compiler: Some("13.0".into()),
        libraries: [("cublaslt".to_string(), "13.0.2".to_string())].into(),
    }
}

fn measured(kernel: &str, ms: Option<f64>, verified: bool) -> Measurement {
    Measurement {
        candidate: Candidate {
            kernel: kernel.into(),
            tactic: None,
        },
        kernel_version: 1,
        ms,
        verified,
        rejected: (!verified).then(|| "max rel error 3e-1 above 2e-2".into()),
    }
}

fn entry() -> TuningEntry {
    TuningEntry::from_measurements(
        key(OpKind::Softmax, "rows=4096,cols=4096", false),
        env(),
        vec![
            measured("cuda.softmax", Some(0.05), true),
            // Faster but wrong: never chosen.
            measured("cuda.softmax.fast", Some(0.01), false),
            measured("cuda.softmax.slow", Some(0.09), true),
        ],
    )
    .unwrap()
}

#[test]
fn the_choice_is_the_fastest_verified_candidate() {
    let e = entry();
    assert_eq!(e.choice.kernel, "cuda.softmax");
    assert_eq!(e.chosen().unwrap().ms, Some(0.05));
    let none = TuningEntry::from_measurements(
        e.key.clone(),
        env(),
        vec![measured("cuda.softmax.fast", Some(0.01), false)],
    );
    assert!(none.is_none());
    let tactic = Candidate {
        kernel: "cuda.gemm.cublaslt".into(),
        tactic: Some("algo3".into()),
    };
    assert_eq!(tactic.to_string(), "cuda.gemm.cublaslt@algo3");
}

#[test]
fn an_entry_from_another_environment_is_stale_with_every_difference() {
    let mut cache = TuningCache::in_memory();
    let e = entry();
    let k = e.key.clone();
    cache.insert(e);
    let v1 = |_: &str| Some(1);
    assert!(matches!(cache.lookup(&k, &env(), v1), Lookup::Hit(_)));
    let mut other = env();
    other.driver = Some("13.1".into());
    other.libraries.insert("cublaslt".into(), "13.1.0".into());
    match cache.lookup(&k, &other, v1) {
        Lookup::Stale { mismatches, .. } => {
            let fields: Vec<&str> = mismatches.iter().map(|m| m.field.as_str()).collect();
            assert_eq!(fields, ["driver", "libraries.cublaslt"]);
            assert_eq!(
                mismatches[0].to_string(),
                "driver: measured with 13.0, now 13.1"
            );
        }
        other => panic!("{other:?}"),
    }
    // A kernel whose version changed, or that is gone, makes the entry stale too.
    match cache.lookup(&k, &env(), |_| Some(2)) {
        Lookup::Stale { mismatches, .. } => {
            assert_eq!(mismatches[0].field, "kernel cuda.softmax");
            assert_eq!(mismatches[0].current, "version 2");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        cache.lookup(&k, &env(), |_| None),
        Lookup::Stale { .. }
    ));
    let miss = key(OpKind::Softmax, "rows=4096,cols=8192", false);
    assert_eq!(cache.lookup(&miss, &env(), v1), Lookup::Miss);
}

#[test]
fn the_environment_carries_library_versions_and_a_new_cublaslt_makes_entries_stale() {
    let h100 = kernelyard_core::presets::simulate("h100").unwrap();
    let v = |major, minor, patch| Version::new(major, minor, patch);
    let measured_with = TuningEnv::with_libraries(&h100, [("cublaslt", v(13, 0, 2))]);
    assert_eq!(measured_with.libraries["cublaslt"], "13.0.2");
    // The compiler (NVRTC) stays where it was, not among the libraries.
    assert_eq!(
        measured_with.compiler,
        h100.compiler_version.map(|c| c.to_string())
    );
    assert_eq!(measured_with.libraries.len(), 1);
    // Without libraries it is what `of` gives where no backend of the kind reports any (core's
    // tests register none).
    assert_eq!(TuningEnv::with_libraries(&h100, []), TuningEnv::of(&h100));
    assert!(TuningEnv::of(&h100).libraries.is_empty());

    let k = TuningKey::new(
        &problem(OpKind::Gemm, "m=37,n=129,k=71", DType::BF16),
        &h100,
        false,
    )
    .unwrap();
    let tactic = |t: &str, ms| Measurement {
        candidate: Candidate {
            kernel: "cuda.gemm.cublaslt".into(),
            tactic: Some(t.into()),
        },
        ..measured("cuda.gemm.cublaslt", Some(ms), true)
    };
    let mut cache = TuningCache::in_memory();
    let e = TuningEntry::from_measurements(
        k.clone(),
        measured_with.clone(),
        vec![tactic("algo0", 0.02), tactic("algo3", 0.01)],
    )
    .unwrap();
    assert_eq!(e.choice.to_string(), "cuda.gemm.cublaslt@algo3");
    cache.insert(e);
    let v1 = |_: &str| Some(1);
    assert!(matches!(
        cache.lookup(&k, &measured_with, v1),
        Lookup::Hit(_)
    ));
    // Another cuBLASLt: algo3 may be another algorithm now.
    let upgraded = TuningEnv::with_libraries(&h100, [("cublaslt", v(13, 1, 0))]);
    let Lookup::Stale { mismatches, .. } = cache.lookup(&k, &upgraded, v1) else {
        panic!("an entry measured with cuBLASLt 13.0.2 must be stale with 13.1.0");
    };
    assert_eq!(mismatches.len(), 1);
    assert_eq!(
        mismatches[0].to_string(),
        "libraries.cublaslt: measured with 13.0.2, now 13.1.0"
    );
    // No cuBLASLt now (or none known when it was measured): stale too, never "the same".
    let Lookup::Stale { mismatches, .. } = cache.lookup(&k, &TuningEnv::of(&h100), v1) else {
        panic!("an entry measured with cuBLASLt must be stale without it");
    };
    assert_eq!(
        mismatches[0].to_string(),
        "libraries.cublaslt: measured with 13.0.2, now absent"
    );
    // The versions survive the file.
    let json = serde_json::to_value(&measured_with).unwrap();
    assert_eq!(json["libraries"]["cublaslt"], "13.0.2");
    assert_eq!(
        serde_json::from_value::<TuningEnv>(json).unwrap(),
        measured_with
    );
}

/// A fresh directory under the system's temporary directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let p = std::env::temp_dir().join(format!(
            "kernelyard-tune-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_file_round_trips_and_writes_leave_no_temporary_files() {
    let dir = Dir::new("roundtrip");
    let path = dir.0.join("sub").join("tuning.json");
    let mut cache = TuningCache::open(&path).unwrap();
    assert_eq!(
        cache.entries().count(),
        0,
        "a missing file is an empty cache"
    );
    cache.insert(entry());
    cache.save().unwrap();
    cache.save().unwrap();
    let back = TuningCache::open(&path).unwrap();
    assert_eq!(back, cache);
    let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["tuning.json"]);
    // Shipping a cache: save_to another file, open it there.
    let shipped = dir.0.join("shipped.json");
    cache.save_to(&shipped).unwrap();
    assert_eq!(TuningCache::open(&shipped).unwrap().entries().count(), 1);
    assert_eq!(TuningCache::in_memory().save(), Err(TuneError::NoPath));
}

#[test]
fn a_bad_file_is_an_error_naming_it_never_an_empty_cache() {
    let dir = Dir::new("bad");
    let torn = dir.0.join("torn.json");
    std::fs::write(&torn, "{\"format\": 1, \"entries\": [").unwrap();
    match TuningCache::open(&torn) {
        Err(e @ TuneError::Corrupt { .. }) => {
            assert!(e.to_string().contains("torn.json"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let future = dir.0.join("future.json");
    std::fs::write(&future, "{\"format\": 2, \"entries\": []}").unwrap();
    assert!(matches!(
        TuningCache::open(&future),
        Err(TuneError::Format { found: 2, .. })
    ));
    // A directory where the file should be: an I/O error, no panic.
    assert!(matches!(
        TuningCache::open(&dir.0),
        Err(TuneError::Io { .. })
    ));
}
