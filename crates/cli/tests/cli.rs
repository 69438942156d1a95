//! End-to-end tests of the `kernelyard` binary: exit codes, and that every error says what is
//! wrong and what exists instead.

mod common;

use std::process::Output;

use serde_json::Value;

use common::{all, code, json, run, run_env, stderr, stdout};

/// Runs the binary with `args` and no `KERNELYARD_KERNELS`, or with `pins` as its value.
fn run_with(pins: Option<&str>, args: &[&str]) -> Output {
    match pins {
        Some(pins) => run_env(&[("KERNELYARD_KERNELS", pins)], args),
        None => run(args),
    }
}

/// `kernelyard explain softmax --device cpu --problem rows=2,cols=8 --dtype f32` plus `extra`.
fn explain_softmax_on_cpu(extra: &[&str]) -> Output {
    let base = [
        "explain",
        "softmax",
        "--device",
        "cpu",
        "--problem",
        "rows=2,cols=8",
        "--dtype",
        "f32",
    ];
    run(&[&base[..], extra].concat())
}

#[test]
fn doctor_reports_backends() {
    let o = run(&["doctor"]);
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{}", all(&o));
    assert!(out.contains("reference: available"), "{out}");
    // The CLI builds the CUDA backend by default: here it is either available (a GPU machine)
    // or unavailable with its reason (CI), never missing.
    assert!(
        out.contains("cuda: available") || out.contains("cuda: unavailable: "),
        "{out}"
    );
    if cfg!(feature = "rocm") {
        assert!(
            out.contains("rocm: available") || out.contains("rocm: unavailable: "),
            "{out}"
        );
    } else {
        // The stub: the backend is not compiled in, its kernels are listed and say why they
        // have no device.
        assert!(
            out.contains("rocm: not compiled in (rebuild with `--features rocm`)"),
            "{out}"
        );
        assert!(
            out.contains(
                "rocm.rms_norm (rocm, rocm)\n      no rocm device present (rocm: not compiled in"
            ),
            "{out}"
        );
    }
    assert!(out.contains("reference.gemm"), "{out}");
    assert!(out.contains("cpu: yes"), "{out}");
}

#[test]
fn doctor_json_parses() {
    let o = run(&["doctor", "--json"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    let v = json(&o);
    let backends = v["backends"].as_array().expect("backends is an array");
    let cuda = backends
        .iter()
        .find(|b| b["name"] == "cuda")
        .expect("cuda is listed");
    match cuda["state"]["state"].as_str() {
        Some("available") => assert!(!cuda["state"]["devices"].as_array().unwrap().is_empty()),
        Some("unavailable") => assert!(!cuda["state"]["why"].as_str().unwrap().is_empty()),
        other => panic!("cuda state {other:?}"),
    }
    let rocm = backends
        .iter()
        .find(|b| b["name"] == "rocm")
        .expect("rocm is listed");
    if cfg!(feature = "rocm") {
        assert!(
            matches!(
                rocm["state"]["state"].as_str(),
                Some("available" | "unavailable")
            ),
            "{rocm}"
        );
    } else {
        assert_eq!(rocm["state"]["state"], "not_compiled_in");
    }
    assert!(v["devices"]
        .as_array()
        .expect("devices is an array")
        .iter()
        .any(|d| d["device"] == "cpu"));
    let ops = v["ops"].as_array().expect("ops is an array");
    assert_eq!(ops.len(), 10);
    // Each op is checked against its descriptor's example problem.
    let silu_mul = ops
        .iter()
        .find(|o| o["op"] == "silu_mul")
        .expect("silu_mul is listed");
    assert_eq!(silu_mul["params"], "rows=128,d=14336");
    assert_eq!(silu_mul["dtype"], "bf16");
    assert_eq!(silu_mul["kernels"][0]["name"], "reference.silu_mul");
    assert_eq!(silu_mul["kernels"][0]["checks"][0]["runnable"], true);
    // scaled_gemm's example is an FP8 problem, runnable on the reference backend only.
    let scaled = ops
        .iter()
        .find(|o| o["op"] == "scaled_gemm")
        .expect("scaled_gemm is listed");
    assert_eq!(scaled["params"], "m=128,n=128,k=128");
    assert_eq!(scaled["dtype"], "f8e4m3");
    assert_eq!(scaled["kernels"][0]["name"], "reference.scaled_gemm");
    assert_eq!(scaled["kernels"][0]["checks"][0]["runnable"], true);
    let gemm = ops
        .iter()
        .find(|o| o["op"] == "gemm")
        .expect("gemm is listed");
    assert_eq!(gemm["kernels"][0]["name"], "reference.gemm");
    assert_eq!(gemm["kernels"][0]["checks"][0]["runnable"], true);
}

#[test]
fn doctor_reports_a_bad_pin_and_exits_2() {
    let o = run_with(Some("bogus=x"), &["doctor"]);
    assert_eq!(code(&o), 2, "{}", all(&o));
    assert!(stdout(&o).contains("unknown op `bogus`"), "{}", all(&o));
    assert!(stdout(&o).contains("reference: available"), "{}", all(&o));
}

#[test]
fn list_json_contains_reference_gemm() {
    let o = run(&["list", "--json"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    let v = json(&o);
    let gemm = v["kernels"]
        .as_array()
        .expect("kernels is an array")
        .iter()
        .find(|k| k["name"] == "reference.gemm")
        .expect("reference.gemm is listed")
        .clone();
    assert_eq!(gemm["op"], "gemm");
    assert_eq!(gemm["backend"], "reference");
    assert_eq!(gemm["device"], "cpu");
    assert_eq!(gemm["deterministic"], true);
    assert!(gemm["dtypes"]
        .as_array()
        .expect("dtypes is an array")
        .contains(&Value::from("bf16")));
}

#[test]
fn list_filters_by_op() {
    let o = run(&["list", "--op", "rms_norm"]);
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{}", all(&o));
    assert!(out.contains("reference.rms_norm"), "{out}");
    assert!(!out.contains("reference.gemm"), "{out}");
    assert!(out.contains("deterministic yes"), "{out}");
}

#[test]
fn explain_selects_reference_rms_norm_on_cpu() {
    let args = [
        "explain",
        "rms_norm",
        "--device",
        "cpu",
        "--problem",
        "rows=4,hidden=64",
        "--dtype",
        "bf16",
    ];
    let o = run(&args);
    assert_eq!(code(&o), 0, "{}", all(&o));
    assert!(
        stdout(&o).contains("reference.rms_norm (priority"),
        "{}",
        all(&o)
    );
    assert!(stdout(&o).contains("selected"), "{}", all(&o));

    let o = run(&[&args[..], &["--deterministic", "--json"]].concat());
    assert_eq!(code(&o), 0, "{}", all(&o));
    let v = json(&o);
    assert_eq!(v["selected"], "reference.rms_norm");
    assert_eq!(v["report"]["selected"], "reference.rms_norm");
    assert!(v["error"].is_null());
}

/// What the CLI says about an absent ROCm device: "not compiled in" in the default build; with
/// the `rocm` feature, the backend's unavailability or the devices present.
fn assert_rocm_absence_explained(text: &str, device: &str) {
    assert!(text.contains(device), "{text}");
    if cfg!(feature = "rocm") {
        assert!(
            text.contains("rocm: unavailable") || text.contains("devices present"),
            "{text}"
        );
    } else {
        assert!(text.contains("not compiled in"), "{text}");
        assert!(text.contains("--features rocm"), "{text}");
    }
}

#[test]
fn explain_on_rocm_says_not_compiled_in() {
    let args = [
        "explain",
        "gemm",
        "--device",
        "rocm:7",
        "--problem",
        "m=128,n=128,k=64",
        "--dtype",
        "bf16",
    ];
    let o = run(&args);
    assert_eq!(code(&o), 2, "{}", all(&o));
    assert_rocm_absence_explained(&stderr(&o), "rocm:7");

    let o = run(&[&args[..], &["--json"]].concat());
    assert_eq!(code(&o), 2, "{}", all(&o));
    let v = json(&o);
    assert!(v["selected"].is_null());
    assert_eq!(v["error"]["class"], "device");
    assert_rocm_absence_explained(
        v["error"]["message"]
            .as_str()
            .expect("the message is a string"),
        "rocm:7",
    );
}

#[test]
fn explain_rejects_a_kernel_of_another_op() {
    let o = explain_softmax_on_cpu(&["--kernel", "reference.gemm"]);
    assert_eq!(code(&o), 2, "{}", all(&o));
    assert!(
        stderr(&o).contains("implements `gemm`, not `softmax`"),
        "{}",
        all(&o)
    );
}

#[test]
fn explain_unknown_kernel_lists_known_ones() {
    let o = explain_softmax_on_cpu(&["--kernel", "reference.nope"]);
    assert_eq!(code(&o), 2, "{}", all(&o));
    assert!(
        stderr(&o).contains("unknown kernel `reference.nope`"),
        "{}",
        all(&o)
    );
    assert!(stderr(&o).contains("reference.softmax"), "{}", all(&o));
}

#[test]
fn explain_with_a_constraint_no_kernel_meets_reports_every_reason() {
    let o = explain_softmax_on_cpu(&["--backend", "cuda", "--json"]);
    assert_eq!(code(&o), 2, "{}", all(&o));
    let v = json(&o);
    assert!(v["selected"].is_null());
    let candidates = v["report"]["candidates"]
        .as_array()
        .expect("the report has candidates");
    assert!(candidates
        .iter()
        .any(|c| c["kernel"] == "reference.softmax" && c["verdict"]["verdict"] == "rejected"));
}

#[test]
fn unknown_op_exits_2() {
    let o = run(&[
        "explain",
        "convolution",
        "--device",
        "cpu",
        "--problem",
        "rows=1",
        "--dtype",
        "f32",
    ]);
    assert_eq!(code(&o), 2, "{}", all(&o));
    assert!(
        stderr(&o).contains("unknown operator `convolution`"),
        "{}",
        all(&o)
    );
    assert!(stderr(&o).contains("rms_norm"), "{}", all(&o));
}

#[test]
fn unknown_dtype_and_device_exit_2() {
    let base = ["explain", "softmax", "--problem", "rows=2,cols=8"];
    let o = run(&[&base[..], &["--device", "cpu", "--dtype", "f8"]].concat());
    assert_eq!(code(&o), 2, "{}", all(&o));
    assert!(stderr(&o).contains("unknown dtype `f8`"), "{}", all(&o));
    let o = run(&[&base[..], &["--device", "tpu:0", "--dtype", "f32"]].concat());
    assert_eq!(code(&o), 2, "{}", all(&o));
    assert!(stderr(&o).contains("invalid device `tpu:0`"), "{}", all(&o));
}

#[test]
fn bad_problem_key_lists_the_keys() {
    let o = run(&[
        "explain",
        "softmax",
        "--device",
        "cpu",
        "--problem",
        "rows=2,columns=8",
        "--dtype",
        "f32",
    ]);
    assert_eq!(code(&o), 2, "{}", all(&o));
    let err = stderr(&o);
    assert!(err.contains("unknown key `columns`"), "{err}");
    assert!(err.contains("cols"), "{err}");
    assert!(err.contains("rows"), "{err}");
}

#[test]
fn explain_help_documents_problem_keys() {
    let o = run(&["explain", "--help"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    let out = stdout(&o);
    for needle in [
        "gemm",
        "trans_a",
        "selective_state_update",
        "state_dim",
        "silu_mul",
        "split",
        "--kernel",
    ] {
        assert!(out.contains(needle), "`{needle}` missing from:\n{out}");
    }
}

#[test]
fn bad_pin_env_exits_2() {
    let o = run_with(
        Some("bogus=x"),
        &[
            "explain",
            "gemm",
            "--device",
            "cpu",
            "--problem",
            "m=4,n=4,k=4",
            "--dtype",
            "f32",
        ],
    );
    assert_eq!(code(&o), 2, "{}", all(&o));
    assert!(stderr(&o).contains("KERNELYARD_KERNELS"), "{}", all(&o));
    assert!(stderr(&o).contains("bogus"), "{}", all(&o));
}

#[test]
fn pin_env_shows_in_explain() {
    let o = run_with(
        Some("gemm=reference.gemm"),
        &[
            "explain",
            "gemm",
            "--device",
            "cpu",
            "--problem",
            "m=4,n=4,k=4",
            "--dtype",
            "f32",
        ],
    );
    assert_eq!(code(&o), 0, "{}", all(&o));
    assert!(
        stdout(&o).contains("pinned by KERNELYARD_KERNELS: reference.gemm"),
        "{}",
        all(&o)
    );
}

#[test]
fn verify_on_an_absent_device_exits_2() {
    let o = run(&["verify", "--device", "rocm:3"]);
    assert_eq!(code(&o), 2, "{}", all(&o));
    assert_rocm_absence_explained(&stderr(&o), "rocm:3");
}

#[test]
fn verify_softmax_passes() {
    let o = run(&["verify", "--op", "softmax"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    assert!(stdout(&o).contains("passed"), "{}", all(&o));
    assert!(stderr(&o).contains("reference.softmax"), "{}", all(&o));
}

/// `kernelyard bench OP --device cpu --problem PARAMS --dtype T --iters 3 --warmup 1` plus
/// `extra`.
fn bench_on_cpu(op: &str, params: &str, dtype: &str, extra: &[&str]) -> Output {
    let base = [
        "bench",
        op,
        "--device",
        "cpu",
        "--problem",
        params,
        "--dtype",
        dtype,
        "--iters",
        "3",
        "--warmup",
        "1",
    ];
    run(&[&base[..], extra].concat())
}

/// Every stdout line parsed as JSON.
fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("`{l}` is not JSON ({e}):\n{}", all(o)))
        })
        .collect()
}

#[test]
fn bench_json_lines_have_the_torch_peer_shape() {
    let o = bench_on_cpu("rms_norm", "rows=4,hidden=64", "bf16", &["--json"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 2, "{}", all(&o));
    let header = &lines[0];
    assert_eq!(header["peer"], "kernelyard");
    assert!(header["version"].is_string());
    assert!(header["device"].is_string());
    assert!(header["copy_tbps"].as_f64().unwrap() > 0.0, "{header}");
    let row = &lines[1];
    assert_eq!(row["peer"], "kernelyard");
    assert_eq!(row["op"], "rms_norm");
    assert_eq!(row["shape"], serde_json::json!([4, 64]));
    assert_eq!(row["dtype"], "bf16");
    assert_eq!(row["impl"], "reference.rms_norm");
    assert_eq!(row["device"], header["device"]);
    assert_eq!(row["iters"], 3);
    let ms = row["ms"].as_f64().expect("ms is a number");
    assert!(ms > 0.0, "{row}");
    assert!(row["min_ms"].as_f64().unwrap() <= ms && ms <= row["max_ms"].as_f64().unwrap());
    assert!(row["tbps"].is_number(), "{row}");
    assert!(row["copy_fraction"].is_number(), "{row}");
    assert!(row.get("tflops").is_none(), "{row}");
    // Progress goes to stderr, never into the JSON.
    assert!(
        stderr(&o).contains("timing reference.rms_norm"),
        "{}",
        all(&o)
    );
    assert!(stderr(&o).contains("copy bandwidth"), "{}", all(&o));
}

/// `silu_mul` rows carry the key of `torch_ops.py`'s (`op`, `shape` `[rows, d]`, `dtype`,
/// no layout), so `scripts/ratio_table.py` joins them; the split form (which the peer does not
/// time) says `"layout": "split"`, so it never joins the peer's fused rows.
#[test]
fn bench_silu_mul_rows_have_torch_ops_key() {
    for (params, layout) in [
        ("rows=16,d=64", None),
        ("rows=16,d=64,split=1", Some("split")),
    ] {
        let o = bench_on_cpu("silu_mul", params, "bf16", &["--json"]);
        assert_eq!(code(&o), 0, "{}", all(&o));
        let lines = json_lines(&o);
        let row = &lines[1];
        assert_eq!(row["op"], "silu_mul");
        assert_eq!(row["shape"], serde_json::json!([16, 64]));
        assert_eq!(row["dtype"], "bf16");
        assert_eq!(row["impl"], "reference.silu_mul");
        assert_eq!(row.get("layout").and_then(|l| l.as_str()), layout, "{row}");
        assert!(row["tbps"].is_number(), "{row}");
    }
}

/// Every argument that takes an operator lists every operator of the catalog in its help.
#[test]
fn help_lists_every_op() {
    for cmd in [
        &["bench", "--help"][..],
        &["explain", "--help"],
        &["list", "--help"],
        &["verify", "--help"],
    ] {
        let o = run(cmd);
        assert_eq!(code(&o), 0, "{}", all(&o));
        let out = stdout(&o);
        assert!(
            out.contains("gemm, rms_norm, softmax, log_softmax, token_logprobs, rope, attention, selective_state_update, silu_mul, scaled_gemm"),
            "{cmd:?}:\n{out}"
        );
    }
    let o = run(&["bench", "--help"]);
    assert!(
        stdout(&o).contains("(alpha, beta, eps, temperature, ignore_index, theta, scale); defaults as in the equivalence suite"),
        "{}",
        all(&o)
    );
}

#[test]
fn bench_gemm_reports_tflops() {
    let o = bench_on_cpu("gemm", "m=8,n=16,k=8", "f32", &["--json"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    let lines = json_lines(&o);
    let row = &lines[1];
    assert_eq!(row["shape"], serde_json::json!([8, 16, 8]));
    assert_eq!(row["dtype"], "f32");
    assert_eq!(row["layout"], "nn", "{row}");
    assert!(row["tflops"].is_number(), "{row}");
    assert!(
        row.get("tbps").is_none() && row.get("copy_fraction").is_none(),
        "{row}"
    );
}

#[test]
fn bench_prints_a_table() {
    let o = bench_on_cpu("softmax", "rows=2,cols=8", "f32", &[]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    let out = stdout(&o);
    assert!(out.contains("copy bandwidth"), "{out}");
    assert!(out.contains("% copy"), "{out}");
    assert!(out.contains("reference.softmax"), "{out}");
}

#[test]
fn bench_all_times_every_kernel_for_the_device() {
    // Every kernel for the device, in its default configuration and in each of its tactics.
    let list = run(&["list", "--op", "softmax", "--json"]);
    let cpu_kernels: Vec<String> = json(&list)["kernels"]
        .as_array()
        .expect("kernels is an array")
        .iter()
        .filter(|k| k["device"] == "cpu")
        .flat_map(|k| {
            let name = k["name"].as_str().unwrap().to_string();
            let tactics: Vec<String> = k["tactics"]
                .as_array()
                .expect("tactics is an array")
                .iter()
                .map(|t| format!("{name}@{}", t.as_str().unwrap()))
                .collect();
            std::iter::once(name).chain(tactics)
        })
        .collect();
    assert!(cpu_kernels.contains(&"reference.softmax@serial".to_string()));
    assert!(!cpu_kernels.is_empty());
    let o = bench_on_cpu("softmax", "rows=2,cols=8", "f32", &["--all", "--json"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    let mut timed: Vec<String> = json_lines(&o)[1..]
        .iter()
        .map(|r| r["impl"].as_str().unwrap().to_string())
        .collect();
    timed.sort();
    let mut want = cpu_kernels.clone();
    want.sort();
    assert_eq!(timed, want, "{}", all(&o));
}

#[test]
fn bench_unknown_kernel_exits_2_and_lists_known_ones() {
    let o = bench_on_cpu(
        "softmax",
        "rows=2,cols=8",
        "f32",
        &["--kernel", "reference.nope"],
    );
    assert_eq!(code(&o), 2, "{}", all(&o));
    let err = stderr(&o);
    assert!(err.contains("unknown kernel `reference.nope`"), "{err}");
    assert!(err.contains("reference.softmax"), "{err}");
    assert!(stdout(&o).is_empty(), "{}", all(&o));
    // Selection fails before any work: no inputs were generated.
    assert!(!err.contains("generating"), "{err}");
}

#[test]
fn bench_kernel_of_another_op_exits_2() {
    let o = bench_on_cpu(
        "softmax",
        "rows=2,cols=8",
        "f32",
        &["--kernel", "reference.gemm"],
    );
    assert_eq!(code(&o), 2, "{}", all(&o));
    assert!(stderr(&o).contains("not `softmax`"), "{}", all(&o));
}

#[test]
fn bench_usage_errors_exit_2() {
    let both = bench_on_cpu(
        "softmax",
        "rows=2,cols=8",
        "f32",
        &["--all", "--kernel", "reference.softmax"],
    );
    assert_eq!(code(&both), 2, "{}", all(&both));
    let o = run(&[
        "bench",
        "softmax",
        "--device",
        "cuda:3",
        "--problem",
        "rows=2,cols=8",
        "--dtype",
        "f32",
    ]);
    assert_eq!(code(&o), 2, "{}", all(&o));
    assert!(stderr(&o).contains("cuda:3"), "{}", all(&o));
    let scalars = bench_on_cpu("softmax", "rows=2,cols=8", "f32", &["--scalars", "eps=1"]);
    assert_eq!(code(&scalars), 2, "{}", all(&scalars));
    assert!(
        stderr(&scalars).contains("not a scalar of softmax"),
        "{}",
        all(&scalars)
    );
    let iters = run(&[
        "bench",
        "softmax",
        "--device",
        "cpu",
        "--problem",
        "rows=2,cols=8",
        "--dtype",
        "f32",
        "--iters",
        "0",
    ]);
    assert_eq!(code(&iters), 2, "{}", all(&iters));
}
