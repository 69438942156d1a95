//! End-to-end tests of the `kernelyard` binary: exit codes, and that every error says what is
//! wrong and what exists instead.

use std::process::{Command, Output};

use serde_json::Value;

/// Runs the binary with `args` and no `KERNELYARD_KERNELS`, or with `pins` as its value.
fn run_with(pins: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kernelyard"));
    cmd.args(args).env_remove("KERNELYARD_KERNELS");
    if let Some(pins) = pins {
        cmd.env("KERNELYARD_KERNELS", pins);
    }
    cmd.output().expect("the kernelyard binary runs")
}

fn run(args: &[&str]) -> Output {
    run_with(None, args)
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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// stdout and stderr together, for messages whichever stream they are on.
fn all(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("the process exited normally")
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", all(o)))
}

#[test]
fn doctor_reports_backends() {
    let o = run(&["doctor"]);
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{}", all(&o));
    assert!(out.contains("reference: available"), "{out}");
    assert!(
        out.contains("cuda: not compiled in (rebuild with `--features cuda`)"),
        "{out}"
    );
    assert!(out.contains("rocm: not compiled in"), "{out}");
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
    assert_eq!(cuda["state"]["state"], "not_compiled_in");
    assert!(v["devices"]
        .as_array()
        .expect("devices is an array")
        .iter()
        .any(|d| d["device"] == "cpu"));
    let ops = v["ops"].as_array().expect("ops is an array");
    assert_eq!(ops.len(), 8);
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

#[test]
fn explain_on_cuda_says_not_compiled_in() {
    let args = [
        "explain",
        "gemm",
        "--device",
        "cuda:0",
        "--problem",
        "m=128,n=128,k=64",
        "--dtype",
        "bf16",
    ];
    let o = run(&args);
    assert_eq!(code(&o), 2, "{}", all(&o));
    assert!(stderr(&o).contains("not compiled in"), "{}", all(&o));
    assert!(stderr(&o).contains("--features cuda"), "{}", all(&o));

    let o = run(&[&args[..], &["--json"]].concat());
    assert_eq!(code(&o), 2, "{}", all(&o));
    let v = json(&o);
    assert!(v["selected"].is_null());
    assert!(v["error"]
        .as_str()
        .expect("error is a string")
        .contains("not compiled in"));
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
    let o = run(&["verify", "--device", "cuda:3"]);
    assert_eq!(code(&o), 2, "{}", all(&o));
    assert!(stderr(&o).contains("cuda:3"), "{}", all(&o));
    assert!(stderr(&o).contains("not compiled in"), "{}", all(&o));
}

#[test]
fn verify_softmax_passes() {
    let o = run(&["verify", "--op", "softmax"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    assert!(stdout(&o).contains("passed"), "{}", all(&o));
    assert!(stderr(&o).contains("reference.softmax"), "{}", all(&o));
}
