//! `explain --simulate NAME` and `doctor --simulate NAME`: selection against a simulated
//! device (no GPU needed), labelled as simulated in text and JSON; bad names and a second
//! device are usage errors (exit 2) that list the valid names.
//!
//! The ROCm questions have two right answers: in the default build the ROCm backend is a stub,
//! so its kernels say "not compiled in" (a simulation answers for this build); built with
//! `--features rocm` (as CI also tests the CLI) they are checked against the simulated AMD
//! device like any other.

mod common;

use std::process::Output;

use serde_json::Value;

use common::{all, code, json, run, run_env, stderr, stdout};

/// `explain attention` of 1024 query rows, 16 heads of 128, bf16, plus `extra`.
fn explain_attention(extra: &[&str]) -> Output {
    let args = [
        "explain",
        "attention",
        "--problem",
        "seq_q=1024,heads_q=16,head_dim=128",
        "--dtype",
        "bf16",
    ];
    run(&[&args[..], extra].concat())
}

/// `explain gemm --batch-invariant` of 128x128x64 bf16, plus `extra`.
fn explain_gemm_bi(extra: &[&str]) -> Output {
    let args = [
        "explain",
        "gemm",
        "--problem",
        "m=128,n=128,k=64",
        "--dtype",
        "bf16",
        "--batch-invariant",
    ];
    run(&[&args[..], extra].concat())
}

/// The candidate `kernel` of a JSON selection report.
fn candidate<'a>(report: &'a Value, kernel: &str) -> &'a Value {
    report["candidates"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["kernel"] == kernel))
        .unwrap_or_else(|| panic!("no candidate {kernel} in {report}"))
}

/// A rejected candidate's reasons (typed data).
fn reasons(candidate: &Value) -> &Value {
    assert_eq!(candidate["verdict"]["verdict"], "rejected", "{candidate}");
    &candidate["verdict"]["reasons"]
}

const H100: &str =
    "simulated h100 (NVIDIA H100 SXM5 80GB: sm_90, 132 SMs, 227 KiB smem/block, 80 GiB)";
const A100: &str =
    "simulated a100 (NVIDIA A100 SXM4 80GB: sm_80, 108 SMs, 163 KiB smem/block, 80 GiB)";
const MI300X: &str = "simulated mi300x (AMD Instinct MI300X: gfx942, wave64, 304 CUs, 64 KiB \
                      LDS/block, 192 GiB)";

#[test]
fn explain_on_a_simulated_h100_selects_the_sm90_attention_kernel() {
    let o = explain_attention(&["--simulate", "h100"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some(
            format!("SIMULATED device cuda:0: {H100}; selection only, nothing probed or launched")
                .as_str()
        ),
        "{out}"
    );
    assert_eq!(lines.next(), Some("selected cuda.attention.sm90"), "{out}");
    assert!(
        out.contains("  * cuda.attention.sm90 (priority 11, score 0): selected"),
        "{out}"
    );
    assert!(
        out.contains("  + cuda.attention (priority 10, score 0): runnable, ranked lower"),
        "{out}"
    );
    // The preset's name is case-insensitive; a bare architecture answers the same.
    for name in ["H100", "h200", "sm_90", "sm_90a"] {
        let o = explain_attention(&["--simulate", name]);
        assert_eq!(code(&o), 0, "{name}: {}", all(&o));
        assert!(
            stdout(&o).contains("\nselected cuda.attention.sm90\n"),
            "{name}: {}",
            all(&o)
        );
    }
}

#[test]
fn explain_on_a_simulated_a100_says_why_not_sm90() {
    let o = explain_attention(&["--simulate", "a100"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with(&format!("SIMULATED device cuda:0: {A100};")),
        "{out}"
    );
    assert!(out.contains("\nselected cuda.attention\n"), "{out}");
    assert!(
        out.contains(
            "  - cuda.attention.sm90: rejected\n      architecture sm_80 is too old (kernel \
             supports sm_90a only)\n      the device lacks the `wgmma` feature\n      the \
             device lacks the `tma` feature\n"
        ),
        "{out}"
    );
    // Blackwell is newer than the sm_90a kernel's only architecture.
    let o = explain_attention(&["--simulate", "b200"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    let out = stdout(&o);
    assert!(out.contains("\nselected cuda.attention\n"), "{out}");
    assert!(
        out.contains("architecture sm_100 is newer than the kernel's newest supported sm_90"),
        "{out}"
    );
}

#[test]
fn explain_json_carries_the_simulated_device() {
    let o = explain_attention(&["--simulate", "h100", "--json"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    let v = json(&o);
    assert_eq!(v["selected"], "cuda.attention.sm90", "{v}");
    assert!(v["error"].is_null(), "{v}");
    let sim = &v["simulated"];
    assert_eq!(sim["name"], "h100", "{v}");
    assert_eq!(sim["device"], "cuda:0", "{v}");
    assert_eq!(sim["description"], H100, "{v}");
    assert_eq!(sim["capabilities"]["name"], H100, "{v}");
    assert_eq!(sim["capabilities"]["arch"]["kind"], "cuda", "{v}");
    assert_eq!(sim["capabilities"]["multiprocessors"], 132, "{v}");
    assert_eq!(
        sim["capabilities"]["shared_mem_per_block_optin"], 232_448,
        "{v}"
    );
    assert_eq!(
        sim["capabilities"]["driver_version"],
        serde_json::json!({"major": 13, "minor": 0, "patch": 0})
    );
    assert_eq!(v["report"]["device"], "cuda:0", "{v}");

    let o = explain_attention(&["--simulate", "a100", "--json"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    let v = json(&o);
    assert_eq!(v["selected"], "cuda.attention", "{v}");
    assert_eq!(v["simulated"]["description"], A100, "{v}");
    assert_eq!(
        reasons(candidate(&v["report"], "cuda.attention.sm90")),
        &serde_json::json!([
            {"reason": "arch_too_old", "have": "sm_80", "need": "sm_90a only"},
            {"reason": "missing_feature", "feature": "wgmma"},
            {"reason": "missing_feature", "feature": "tma"},
        ])
    );

    // Without --simulate there is no such key.
    let o = run(&[
        "explain",
        "softmax",
        "--device",
        "cpu",
        "--problem",
        "rows=2,cols=8",
        "--dtype",
        "f32",
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    assert!(json(&o).get("simulated").is_none(), "{}", all(&o));
}

#[test]
fn explain_on_a_simulated_mi300x_answers_for_amd() {
    let o = explain_gemm_bi(&["--simulate", "mi300x"]);
    let out = stdout(&o);
    assert!(
        out.starts_with(&format!("SIMULATED device rocm:0: {MI300X};")),
        "{}",
        all(&o)
    );
    // The MFMA kernel stops at gfx90a, in either build.
    let too_new = "architecture gfx942 is newer than the kernel's newest supported gfx90a";
    if cfg!(feature = "rocm") {
        assert_eq!(code(&o), 0, "{}", all(&o));
        assert!(
            out.contains("\nselected rocm.gemm.batch_invariant\n"),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "  - rocm.gemm.batch_invariant.mfma: rejected\n      {too_new}\n"
            )),
            "{out}"
        );
    } else {
        assert_eq!(code(&o), 2, "{}", all(&o));
        let err = stderr(&o);
        assert!(
            err.contains("error: no kernel can run this `gemm` problem on rocm:0"),
            "{err}"
        );
        assert!(err.contains(too_new), "{err}");
        assert_eq!(
            err.matches("backend `rocm` is not compiled in: rebuild with `--features rocm`")
                .count(),
            2,
            "{err}"
        );
    }

    // mi250x is gfx90a: the MFMA kernel's architecture.
    let o = explain_gemm_bi(&["--simulate", "mi250x", "--json"]);
    let v = json(&o);
    assert_eq!(v["simulated"]["device"], "rocm:0", "{v}");
    assert_eq!(
        v["simulated"]["capabilities"]["arch"]["wavefront"], 64,
        "{v}"
    );
    if cfg!(feature = "rocm") {
        assert_eq!(code(&o), 0, "{}", all(&o));
        assert_eq!(v["selected"], "rocm.gemm.batch_invariant.mfma", "{v}");
    } else {
        assert_eq!(code(&o), 2, "{}", all(&o));
        assert!(v["selected"].is_null(), "{v}");
        assert_eq!(v["error"]["class"], "selection", "{v}");
        // Nothing but the rebuild: gfx90a is the kernel's architecture.
        assert_eq!(
            reasons(candidate(&v["report"], "rocm.gemm.batch_invariant.mfma")),
            &serde_json::json!([
                {"reason": "not_compiled_in", "backend": "rocm", "feature": "rocm"},
            ])
        );
    }
}

#[test]
fn pins_apply_to_a_simulated_device() {
    let args = [
        "explain",
        "attention",
        "--problem",
        "seq_q=1024,heads_q=16,head_dim=128",
        "--dtype",
        "bf16",
        "--simulate",
        "h100",
    ];
    let o = run_env(&[("KERNELYARD_KERNELS", "attention=cuda.attention")], &args);
    assert_eq!(code(&o), 0, "{}", all(&o));
    assert!(
        stdout(&o).contains("\nselected cuda.attention\n"),
        "{}",
        all(&o)
    );
}

/// A usage error: exit 2, `{"error": {"class": "usage", ...}}` on stdout with `--json`, the
/// message containing `needle`, also on stderr.
#[track_caller]
fn usage_error(o: &Output, needle: &str) {
    assert_eq!(code(o), 2, "{}", all(o));
    let v = json(o);
    assert_eq!(v["error"]["class"], "usage", "{v}");
    assert_eq!(v["error"]["exit_code"], 2, "{v}");
    let message = v["error"]["message"].as_str().expect("a message");
    assert!(message.contains(needle), "`{needle}` not in {message}");
    assert!(stderr(o).contains(needle), "{}", all(o));
}

#[test]
fn an_unknown_name_is_a_usage_error_that_lists_the_presets() {
    let list = "use a preset (a100, l40s, rtx4090, h100, h200, b200, gb200, mi250x, mi300x, \
                rx7900xtx) or an architecture: sm_XY or sm_XYa (e.g. sm_80, sm_89, sm_90a, \
                sm_100) or gfxNNN (e.g. gfx90a, gfx942, gfx1100)";
    for (name, why) in [
        (
            "h800",
            "cannot simulate `h800`: it is neither a preset nor an architecture",
        ),
        (
            "sm_91",
            "cannot simulate `sm_91`: sm_91 is not the compute capability of any NVIDIA GPU",
        ),
        ("sm_80a", "sm_80 has no arch-specific `a` variant"),
        (
            "gfx803",
            "gfx803 is not an AMD architecture the ROCm backend uses",
        ),
    ] {
        let o = explain_attention(&["--simulate", name, "--json"]);
        usage_error(&o, why);
        usage_error(&o, list);
        let o = run(&["doctor", "--simulate", name, "--json"]);
        usage_error(&o, why);
        usage_error(&o, list);
    }
}

#[test]
fn simulate_and_device_are_one_choice() {
    let o = explain_attention(&["--simulate", "h100", "--device", "cuda:0", "--json"]);
    usage_error(
        &o,
        "the argument '--simulate <NAME>' cannot be used with '--device <DEV>'",
    );
    let o = explain_attention(&["--json"]);
    usage_error(&o, "<--device <DEV>|--simulate <NAME>>");
}

#[test]
fn help_lists_the_presets() {
    for cmd in ["explain", "doctor"] {
        let o = run(&[cmd, "--help"]);
        assert_eq!(code(&o), 0, "{}", all(&o));
        let out = stdout(&o).split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            out.contains(
                "--simulate <NAME> Answer for a simulated device instead of this machine's: a \
                 preset (a100, l40s, rtx4090, h100, h200, b200, gb200, mi250x, mi300x, \
                 rx7900xtx)"
            ),
            "{cmd}: {out}"
        );
    }
}

#[test]
fn doctor_on_a_simulated_device_checks_its_kernels_there() {
    let o = run(&["doctor", "--simulate", "a100"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with(&format!("SIMULATED device cuda:0: {A100};")),
        "{out}"
    );
    assert!(
        out.contains(&format!("devices:\n  cuda:0: {A100}\n")),
        "{out}"
    );
    assert!(out.contains("    features: tensor_cores, bf16\n"), "{out}");
    assert!(
        out.contains("backends (not probed: the device is simulated):"),
        "{out}"
    );
    assert!(
        out.contains(
            "    cuda.attention.sm90 (cuda, cuda)\n      cuda:0 (simulated): no\n        \
             architecture sm_80 is too old (kernel supports sm_90a only)\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("    cuda.attention (cuda, cuda)\n      cuda:0 (simulated): yes\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "    reference.attention (reference, cpu)\n      not checked: the only device is \
             the simulated cuda:0\n"
        ),
        "{out}"
    );

    let o = run(&["doctor", "--simulate", "h100", "--json"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    let v = json(&o);
    assert_eq!(v["simulated"]["name"], "h100", "{v}");
    assert_eq!(v["simulated"]["description"], H100, "{v}");
    assert_eq!(v["devices"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["devices"][0]["name"], H100, "{v}");
    let sm90 = v["ops"]
        .as_array()
        .and_then(|ops| ops.iter().find(|o| o["op"] == "attention"))
        .and_then(|o| o["kernels"].as_array())
        .and_then(|k| k.iter().find(|k| k["name"] == "cuda.attention.sm90"))
        .unwrap_or_else(|| panic!("no cuda.attention.sm90 in {v}"));
    assert_eq!(
        sm90["checks"],
        serde_json::json!([{"device": "cuda:0", "runnable": true, "reasons": []}])
    );

    // A probed doctor has no such key.
    let o = run(&["doctor", "--json"]);
    assert_eq!(code(&o), 0, "{}", all(&o));
    assert!(json(&o).get("simulated").is_none(), "{}", all(&o));
}
