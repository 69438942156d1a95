//! `kernelyard verify`: the equivalence suite of `kernelyard-suite`, every registered kernel
//! against the reference backend on the cases in its data files.
//!
//! The suite decides pass, fail and skip; this module only names the scope, prints progress
//! and the summary, and turns failures into exit code 1. A case a kernel cannot run is a skip
//! with its reasons and is counted as one, never as a pass.

use std::process::ExitCode;

use clap::Args;
use kernelyard::{DeviceId, OpKind};
use kernelyard_suite::{
    seed_from_env, CaseResult, Outcome, SuiteOptions, SuiteReport, DEFAULT_SEED,
};
use serde::Serialize;

use crate::error::{self, Class, CliError, ErrorJson};

/// Arguments of `kernelyard verify`.
#[derive(Args)]
pub struct VerifyArgs {
    // Only cases of this operator; the help lists the catalog's.
    #[arg(long, value_name = "OP",
          help = format!(
              "Only cases of this operator ({}). Default: every operator.",
              crate::op_names()
          ))]
    op: Option<OpKind>,
    /// Only kernels on this device (`cpu`, `cuda:N`, `rocm:N`); it must be present. Default:
    /// every device present.
    #[arg(long, value_name = "DEV")]
    device: Option<DeviceId>,
    /// Seed of the generated inputs (decimal or 0x hex); the same seed gives the same inputs
    /// on every device. Default: $KERNELYARD_SEED if set, else the suite's fixed default seed.
    #[arg(long, value_name = "S", value_parser = parse_seed)]
    seed: Option<u64>,
    /// Print the summary as one JSON object (counts and every result) instead of a table; when
    /// a case failed it also has `"error": {"class": "verify", "message", "exit_code": 1}`.
    /// Progress still goes to stderr.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct VerifyJson<'a> {
    passed: usize,
    failed: usize,
    skipped: usize,
    #[serde(flatten)]
    report: &'a SuiteReport,
    /// Present when a case failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorJson>,
}

/// Runs `kernelyard verify`.
pub fn run(args: &VerifyArgs) -> error::Result<ExitCode> {
    let rt = crate::runtime()?;
    if let Some(device) = args.device {
        // A device that is not present is an error naming why, not an empty (passing) run.
        rt.capabilities(device).map_err(CliError::select)?;
    }
    let opts = SuiteOptions {
        op: args.op,
        device: args.device,
        seed: seed(args)?,
    };
    let mut done = 0usize;
    let report = kernelyard_suite::run_suite(&rt, &opts, &mut |case: &CaseResult| {
        done += 1;
        crate::output::error(&progress_line(done, case));
    });
    let error = failures(&report);
    let (code, message) = match &error {
        Some(e) => (
            ExitCode::from(e.exit_code),
            Some(format!("error: {}", e.message)),
        ),
        None => (ExitCode::SUCCESS, None),
    };
    if args.json {
        crate::output::print_json(&verify_json(&report, error))?;
    } else {
        crate::output::print(&report.to_string())?;
    }
    if let Some(message) = message {
        crate::output::error(&message);
    }
    Ok(code)
}

/// The [`Class::Verify`] error of a report with failing cases, `None` if none failed.
fn failures(report: &SuiteReport) -> Option<ErrorJson> {
    let failed = report.failed();
    (failed > 0).then(|| {
        ErrorJson::new(
            Class::Verify,
            format!(
                "{failed} of {} case(s) failed (seed {}); every failure is in `results`",
                report.results.len(),
                report.seed
            ),
        )
    })
}

fn verify_json(report: &SuiteReport, error: Option<ErrorJson>) -> VerifyJson<'_> {
    VerifyJson {
        passed: report.passed(),
        failed: report.failed(),
        skipped: report.skipped(),
        report,
        error,
    }
}

/// `[12] reference.gemm bf16 square_17 on cpu ... pass (rel_l2 3.1e-4, max_abs 2.0e-3)`.
fn progress_line(n: usize, case: &CaseResult) -> String {
    let outcome = match &case.outcome {
        Outcome::Pass {
            rel_l2, max_abs, ..
        } => format!("pass (rel_l2 {rel_l2:.1e}, max_abs {max_abs:.1e})"),
        Outcome::Fail { why } => format!("FAIL: {why}"),
        Outcome::Skip { reasons } => format!("skip ({})", reasons.join("; ")),
    };
    format!(
        "[{n}] {} {} {} on {} ... {outcome}",
        case.kernel, case.dtype, case.case, case.device
    )
}

fn parse_seed(s: &str) -> Result<u64, String> {
    let t = s.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse(),
    }
    .map_err(|_| format!("`{s}` is not a decimal or 0x-hex u64"))
}

/// `--seed`, else `KERNELYARD_SEED` (a bad value is a usage error), else the suite's default.
fn seed(args: &VerifyArgs) -> error::Result<u64> {
    if let Some(seed) = args.seed {
        return Ok(seed);
    }
    let from_env =
        seed_from_env().map_err(|e| CliError::new(Class::Usage, anyhow::Error::msg(e)))?;
    Ok(from_env.unwrap_or(DEFAULT_SEED))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard::DType;

    fn result(kernel: &'static str, outcome: Outcome) -> CaseResult {
        CaseResult {
            device: DeviceId::CPU,
            kernel,
            op: OpKind::Softmax,
            case: "square".into(),
            dtype: DType::F32,
            outcome,
        }
    }

    /// The golden shape of a failing verify (a failure cannot be produced on purpose through
    /// the binary: every registered CPU kernel passes): exit code 1 and, with `--json`, the
    /// report with `"error": {"class": "verify", "message", "exit_code": 1}`.
    #[test]
    fn a_failing_case_is_a_verify_error_with_exit_code_1() {
        let report = SuiteReport {
            seed: 7,
            results: vec![
                result(
                    "reference.softmax",
                    Outcome::Pass {
                        rel_l2: 0.0,
                        max_abs: 0.0,
                        checks: vec!["oracle"],
                    },
                ),
                result(
                    "broken.softmax",
                    Outcome::Fail {
                        why: "oracle: element 3 is NaN".into(),
                    },
                ),
            ],
        };
        let error = failures(&report).expect("a failure is an error");
        assert_eq!(error.exit_code, 1);
        let v = serde_json::to_value(verify_json(&report, Some(error))).unwrap();
        assert_eq!(
            v["error"],
            serde_json::json!({
                "class": "verify",
                "message": "1 of 2 case(s) failed (seed 7); every failure is in `results`",
                "exit_code": 1
            })
        );
        assert_eq!(v["failed"], 1);
        assert_eq!(v["passed"], 1);
        assert_eq!(v["results"][1]["outcome"]["status"], "fail");

        // A passing report has no `error` key and exits 0.
        let passing = SuiteReport {
            seed: 7,
            results: report.results[..1].to_vec(),
        };
        assert_eq!(failures(&passing), None);
        let v = serde_json::to_value(verify_json(&passing, None)).unwrap();
        assert!(v.get("error").is_none(), "{v}");
    }
}
