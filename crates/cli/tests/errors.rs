//! Golden tests of the CLI's error contract: per command and error class, the exit code
//! (0 ok, 1 a verify or bench run failure, 2 usage and selection errors), the human text on
//! stderr and, with `--json`, one JSON object on stdout with
//! `"error": {"class", "message", "exit_code"}`.
//!
//! The `verify` failure class (exit 1) cannot be produced through the binary on purpose
//! (every registered CPU kernel passes); its golden test is the unit test
//! `verify::tests::a_failing_case_is_a_verify_error_with_exit_code_1`.

mod common;

use std::process::{Command, Output};

use serde_json::Value;

use common::{all, code, json, run, run_env, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_kernelyard");

/// Asserts the contract for an error of `class` with exit code `exit`: that exit code, a
/// JSON object on stdout whose `error` is exactly `{class, message, exit_code}` with a
/// message containing `needle`, and the message on stderr. Returns stdout's JSON.
#[track_caller]
fn golden(o: &Output, exit: i32, class: &str, needle: &str) -> Value {
    assert_eq!(code(o), exit, "{}", all(o));
    let v = json(o);
    let error = v["error"]
        .as_object()
        .unwrap_or_else(|| panic!("no error object:\n{}", all(o)));
    let mut keys: Vec<&str> = error.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["class", "exit_code", "message"], "{}", all(o));
    assert_eq!(error["class"], class, "{}", all(o));
    assert_eq!(error["exit_code"], exit, "{}", all(o));
    let message = error["message"].as_str().expect("message is a string");
    assert!(message.contains(needle), "`{needle}` not in {message:?}");
    // The same text for a person, on stderr (clap's own wording for usage errors).
    let first = message.lines().next().unwrap_or("");
    assert!(stderr(o).contains(first), "{}", all(o));
    assert!(stderr(o).contains("error: "), "{}", all(o));
    v
}

/// [`golden`] for a command whose whole stdout is the error line `{"error": {...}}`.
#[track_caller]
fn golden_line(o: &Output, exit: i32, class: &str, needle: &str) {
    let v = golden(o, exit, class, needle);
    assert_eq!(v.as_object().map(|m| m.len()), Some(1), "{v}");
    assert_eq!(stdout(o).lines().count(), 1, "{}", all(o));
}

/// `explain softmax --device cpu --problem rows=2,cols=8 --dtype f32`.
fn explain() -> Vec<&'static str> {
    vec![
        "explain",
        "softmax",
        "--device",
        "cpu",
        "--problem",
        "rows=2,cols=8",
        "--dtype",
        "f32",
    ]
}

fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    [base, extra].concat()
}

/// `bench softmax` on the CPU, 3 timed runs and 1 warm-up, plus `extra` (later flags win
/// where clap allows, so `extra` may override).
fn bench(problem: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "bench",
        "softmax",
        "--device",
        "cpu",
        "--problem",
        problem,
        "--dtype",
        "f32",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    if !extra.contains(&"--iters") {
        v.extend(["--iters".to_string(), "3".to_string()]);
    }
    if !extra.contains(&"--warmup") {
        v.extend(["--warmup".to_string(), "1".to_string()]);
    }
    v
}

fn run_strings(args: &[String]) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args)
}

// ---------------------------------------------------------------- no command, help

#[test]
fn no_command_is_a_usage_error() {
    let o = run(&["--json"]);
    golden_line(&o, 2, "usage", "Usage: kernelyard <COMMAND>");
    let o = run(&[]);
    assert_eq!(code(&o), 2, "{}", all(&o));
    assert!(stdout(&o).is_empty(), "{}", all(&o));
}

#[test]
fn help_and_version_exit_0_even_with_json() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["bench", "--help", "--json"],
    ] {
        let o = run(args);
        assert_eq!(code(&o), 0, "{args:?}: {}", all(&o));
        assert!(!stdout(&o).is_empty(), "{args:?}");
        assert!(
            serde_json::from_slice::<Value>(&o.stdout).is_err(),
            "{args:?}"
        );
    }
}

// ---------------------------------------------------------------- doctor

#[test]
fn doctor_ok_has_no_error() {
    let o = run(&["doctor", "--json"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    let v = json(&o);
    assert!(v.get("error").is_none(), "{v}");
    assert!(v["ops"].is_array());
}

#[test]
fn doctor_usage_error() {
    golden_line(
        &run(&["doctor", "--bogus", "--json"]),
        2,
        "usage",
        "unexpected argument '--bogus'",
    );
}

#[test]
fn doctor_bad_pins() {
    let o = run_env(&[("KERNELYARD_KERNELS", "bogus=x")], &["doctor", "--json"]);
    let v = golden(&o, 2, "pins", "unknown op `bogus`");
    // Doctor still reports everything else, checked without pins.
    assert_eq!(v["pins"]["value"], "bogus=x");
    assert!(v["ops"].as_array().is_some_and(|ops| !ops.is_empty()));
    // Without --json: the report on stdout, the error on stderr, exit 2.
    let o = run_env(&[("KERNELYARD_KERNELS", "bogus=x")], &["doctor"]);
    assert_eq!(code(&o), 2, "{}", all(&o));
    assert!(stdout(&o).contains("reference: available"), "{}", all(&o));
    assert!(stderr(&o).contains("error: KERNELYARD_KERNELS entry `bogus=x`"));
}

// ---------------------------------------------------------------- list

#[test]
fn list_usage_error() {
    let o = run(&["list", "--op", "convolution", "--json"]);
    golden_line(&o, 2, "usage", "unknown operator `convolution`");
    // Without --json nothing goes to stdout.
    let o = run(&["list", "--op", "convolution"]);
    assert_eq!(code(&o), 2, "{}", all(&o));
    assert!(stdout(&o).is_empty(), "{}", all(&o));
}

#[test]
fn list_ok_has_no_error() {
    let o = run(&["list", "--json"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    assert!(json(&o).get("error").is_none());
}

// ---------------------------------------------------------------- explain

#[test]
fn explain_usage_errors() {
    let base = explain();
    let mut args = base.clone();
    args[7] = "f8";
    args.push("--json");
    golden_line(&run(&args), 2, "usage", "unknown dtype `f8`");
    let mut args = base.clone();
    args[3] = "tpu:0";
    args.push("--json");
    golden_line(&run(&args), 2, "usage", "invalid device `tpu:0`");
    golden_line(
        &run(&with(&base, &["--kernel", "x", "--backend", "y", "--json"])),
        2,
        "usage",
        "cannot be used with",
    );
}

#[test]
fn explain_bad_problem() {
    let mut args = explain();
    args[5] = "rows=2,columns=8";
    args.push("--json");
    golden_line(&run(&args), 2, "problem", "unknown key `columns`");
    // Without --json: stderr only.
    args.pop();
    let o = run(&args);
    assert_eq!(code(&o), 2, "{}", all(&o));
    assert!(stdout(&o).is_empty(), "{}", all(&o));
    assert!(stderr(&o).contains("unknown key `columns`"), "{}", all(&o));
}

#[test]
fn explain_bad_pins() {
    let o = run_env(
        &[("KERNELYARD_KERNELS", "bogus=x")],
        &with(&explain(), &["--json"]),
    );
    golden_line(&o, 2, "pins", "KERNELYARD_KERNELS entry `bogus=x`");
}

#[test]
fn explain_absent_device() {
    let mut args = explain();
    args[3] = "rocm:7";
    args.push("--json");
    let v = golden(&run(&args), 2, "device", "rocm:7");
    assert!(v["selected"].is_null());
}

#[test]
fn explain_unknown_or_foreign_kernel_or_backend() {
    let base = explain();
    for (extra, needle) in [
        (
            &["--kernel", "reference.nope"][..],
            "unknown kernel `reference.nope`",
        ),
        (
            &["--kernel", "reference.gemm"],
            "implements `gemm`, not `softmax`",
        ),
        (&["--backend", "nope"], "unknown backend `nope`"),
    ] {
        let o = run(&with(&base, &with(extra, &["--json"])));
        let v = golden(&o, 2, "kernel", needle);
        assert!(v["selected"].is_null());
        // Without --json: stderr only, exit 2.
        let o = run(&with(&base, extra));
        assert_eq!(code(&o), 2, "{}", all(&o));
        assert!(stdout(&o).is_empty(), "{}", all(&o));
        assert!(stderr(&o).contains(needle), "{}", all(&o));
    }
}

#[test]
fn explain_nothing_selectable() {
    let o = run(&with(&explain(), &["--backend", "cuda", "--json"]));
    let v = golden(
        &o,
        2,
        "selection",
        "no kernel can run this `softmax` problem",
    );
    assert!(v["selected"].is_null());
    assert!(v["report"]["candidates"].is_array(), "{v}");
    let o = run(&with(&explain(), &["--kernel", "cuda.softmax", "--json"]));
    golden(
        &o,
        2,
        "selection",
        "kernel runs on cuda devices, the device is cpu",
    );
}

#[test]
fn explain_ok_has_a_null_error() {
    let o = run(&with(&explain(), &["--json"]));
    assert_eq!(code(&o), 0, "{}", all(&o));
    let v = json(&o);
    assert!(v["error"].is_null(), "{v}");
    assert_eq!(v["selected"], "reference.softmax");
}

// ---------------------------------------------------------------- verify

#[test]
fn verify_usage_errors() {
    golden_line(
        &run(&["verify", "--seed", "banana", "--json"]),
        2,
        "usage",
        "`banana` is not a decimal or 0x-hex u64",
    );
    let o = run_env(
        &[("KERNELYARD_SEED", "banana")],
        &["verify", "--op", "softmax", "--json"],
    );
    golden_line(&o, 2, "usage", "KERNELYARD_SEED");
}

#[test]
fn verify_bad_pins() {
    let o = run_env(
        &[("KERNELYARD_KERNELS", "softmax=reference.gemm")],
        &["verify", "--op", "softmax", "--json"],
    );
    golden_line(&o, 2, "pins", "KERNELYARD_KERNELS");
}

#[test]
fn verify_absent_device() {
    golden_line(
        &run(&["verify", "--device", "rocm:3", "--json"]),
        2,
        "device",
        "rocm:3",
    );
}

#[test]
fn verify_ok_has_no_error() {
    let o = run(&["verify", "--op", "silu_mul", "--device", "cpu", "--json"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    let v = json(&o);
    assert!(v.get("error").is_none(), "{v}");
    assert_eq!(v["failed"], 0);
    assert!(v["passed"].as_u64().is_some_and(|n| n > 0), "{v}");
}

// ---------------------------------------------------------------- bench

#[test]
fn bench_usage_errors() {
    for (extra, needle) in [
        (&["--iters", "0"][..], "is not a whole number of at least 1"),
        (&["--iters", "-1"], "-1"),
        (&["--warmup", "lots"], "lots"),
        (
            &["--all", "--kernel", "reference.softmax"],
            "cannot be used with",
        ),
    ] {
        let o = run_strings(&bench("rows=2,cols=8", extra));
        golden_line(&o, 2, "usage", needle);
    }
}

#[test]
fn bench_bad_problem_or_scalars() {
    for (problem, extra, needle) in [
        ("rows=2,columns=8", &[][..], "unknown key `columns`"),
        (
            "rows=2,cols=8",
            &["--scalars", "eps=1"],
            "not a scalar of softmax",
        ),
        ("rows=2,cols=8", &["--scalars", "nope"], "bad --scalars"),
    ] {
        let o = run_strings(&bench(problem, extra));
        golden_line(&o, 2, "problem", needle);
        assert!(!stderr(&o).contains("generating"), "{}", all(&o));
    }
    // A value finite in f64 but not in the f32 the call carries (issue 13).
    let o = run(&[
        "bench",
        "gemm",
        "--device",
        "cpu",
        "--problem",
        "m=4,n=4,k=4",
        "--dtype",
        "f32",
        "--scalars",
        "alpha=1e40",
        "--json",
    ]);
    golden_line(&o, 2, "problem", "`alpha` = 1");
    assert!(stderr(&o).contains("does not fit in f32"), "{}", all(&o));
}

/// Issue 13: problems that no arguments could describe are problem errors (exit 2), in
/// `explain` (which used to select a kernel for them) and `bench` (which used to call them a
/// harness bug, exit 1), before anything is generated.
#[test]
fn invalid_problems_are_problem_errors() {
    for cmd in ["explain", "bench"] {
        let o = run(&[
            cmd,
            "gemm",
            "--device",
            "cpu",
            "--problem",
            "m=4,n=4,k=4,c_dtype=i32",
            "--dtype",
            "f32",
            "--json",
        ]);
        golden_line(&o, 2, "problem", "`c` dtype i32 is not allowed");
        let o = run(&[
            cmd,
            "selective_state_update",
            "--device",
            "cpu",
            "--problem",
            "batch=18446744073709551615,heads=2,head_dim=4,state_dim=8",
            "--dtype",
            "f32",
            "--json",
        ]);
        golden_line(&o, 2, "problem", "overflows");
        assert!(!stderr(&o).contains("generating"), "{}", all(&o));
    }
}

#[test]
fn bench_bad_pins() {
    let o = run_env(
        &[("KERNELYARD_KERNELS", "bogus=x")],
        &bench("rows=2,cols=8", &[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    golden_line(&o, 2, "pins", "unknown op `bogus`");
}

#[test]
fn bench_absent_device() {
    let mut args = bench("rows=2,cols=8", &[]);
    args[3] = "cuda:3".into();
    golden_line(&run_strings(&args), 2, "device", "cuda:3");
}

#[test]
fn bench_unknown_kernel() {
    let o = run_strings(&bench("rows=2,cols=8", &["--kernel", "reference.nope"]));
    golden_line(&o, 2, "kernel", "unknown kernel `reference.nope`");
    assert!(!stderr(&o).contains("generating"), "{}", all(&o));
}

#[test]
fn bench_nothing_selectable() {
    let o = run_strings(&bench("rows=2,cols=8", &["--kernel", "cuda.softmax"]));
    golden_line(
        &o,
        2,
        "selection",
        "kernel `cuda.softmax` was asked for and cannot run this problem on cpu",
    );
}

/// Issue 13's reproductions: each refused at once, before anything is generated or
/// allocated (they used to panic, abort or hang).
#[test]
fn bench_beyond_its_bounds_is_refused() {
    let max = "18446744073709551615";
    for (op, problem, extra, needle) in [
        (
            "softmax",
            "rows=2,cols=8",
            &["--iters", max][..],
            "`iters` = 18446744073709551615 is more than the bound of 1000000 runs",
        ),
        (
            "softmax",
            "rows=2,cols=8",
            &["--warmup", max],
            "`warmup` = 18446744073709551615 is more than the bound of 1000000 runs",
        ),
        (
            "softmax",
            "rows=2,cols=8",
            &["--iters", "1000001"],
            "bound of 1000000 runs",
        ),
        // 2^24 x 2^24 f32: 64 TiB a tensor, beyond any machine's memory.
        (
            "softmax",
            "rows=16777216,cols=16777216",
            &[],
            "use a smaller problem",
        ),
    ] {
        let mut args = bench(problem, extra);
        args[1] = op.into();
        let o = run_strings(&args);
        golden_line(&o, 2, "resources", needle);
        let err = stderr(&o);
        assert!(!err.contains("generating"), "{}", all(&o));
        assert!(!err.contains("measuring"), "{}", all(&o));
    }
}

/// Counts within the bounds run as asked.
#[test]
fn bench_within_its_bounds_runs() {
    let o = run_strings(&bench("rows=2,cols=8", &["--warmup", "1000"]));
    assert_eq!(code(&o), 0, "{}", all(&o));
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[1]["iters"], 3, "{}", all(&o));
    assert!(
        stderr(&o).contains("timing reference.softmax: 1000 warm-up runs, then 3 timed runs"),
        "{}",
        all(&o)
    );
}

/// A bench run that fails (here the first allocation, under an address-space limit) exits 1
/// with a `run` error.
#[cfg(target_os = "linux")]
#[test]
fn bench_run_failure_exits_1() {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v 150000 && exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(bench("rows=2,cols=8", &[]))
        .env_remove("KERNELYARD_KERNELS");
    let o = cmd.output().expect("sh runs");
    golden_line(&o, 1, "run", "allocation of 268435456 bytes failed");
    // Without --json the same exit code and nothing on stdout.
    let mut cmd = Command::new("sh");
    let args: Vec<String> = bench("rows=2,cols=8", &[])
        .into_iter()
        .filter(|a| a != "--json")
        .collect();
    cmd.arg("-c")
        .arg("ulimit -v 150000 && exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(&args)
        .env_remove("KERNELYARD_KERNELS");
    let o = cmd.output().expect("sh runs");
    assert_eq!(code(&o), 1, "{}", all(&o));
    assert!(stdout(&o).is_empty(), "{}", all(&o));
    assert!(
        stderr(&o).contains("error: measuring the copy bandwidth"),
        "{}",
        all(&o)
    );
}

#[test]
fn bench_help_documents_the_bounds() {
    let o = run(&["bench", "--help"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    let out = stdout(&o);
    for needle in [
        "Timed runs per kernel, 1 to 1000000",
        "Untimed warm-up runs per kernel, 0 to 1000000",
        "at most 1,000,000 timed runs and 1,000,000 warm-up runs",
        "one set of inputs and outputs must fit in the device's memory",
        "MemAvailable",
    ] {
        assert!(out.contains(needle), "`{needle}` missing from:\n{out}");
    }
}
