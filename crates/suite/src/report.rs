//! Results: one [`CaseResult`] per (device, kernel, case, dtype), and the [`SuiteReport`] that
//! counts them and prints the summary (per kernel: passed / failed / skipped, then every failure
//! and every skip with its reasons). Everything serializes for `kernelyard verify --json`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use kernelyard::{DType, DeviceId, OpKind};

/// What happened to one case.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Every check passed.
    Pass {
        /// The worst `rel_l2` over the outputs (see `docs/TOLERANCES.md`).
        rel_l2: f64,
        /// The worst scaled `max_abs` over the outputs (see `docs/TOLERANCES.md`).
        max_abs: f64,
        /// The checks that ran: `oracle`, `deterministic`, `batch_invariant`, or
        /// `expected_error` for a case whose launch must fail.
        checks: Vec<&'static str>,
    },
    /// A check failed; `why` starts with the check's name (`oracle: ...`).
    Fail {
        /// What went wrong, with the element, the values and the bound.
        why: String,
    },
    /// The kernel did not run the case: selection rejected it (each reason's text), or the
    /// case is a listed known difference.
    Skip {
        /// Why.
        reasons: Vec<String>,
    },
}

impl Outcome {
    /// True for [`Outcome::Pass`].
    pub fn is_pass(&self) -> bool {
        matches!(self, Outcome::Pass { .. })
    }

    /// True for [`Outcome::Fail`].
    pub fn is_fail(&self) -> bool {
        matches!(self, Outcome::Fail { .. })
    }

    /// True for [`Outcome::Skip`].
    pub fn is_skip(&self) -> bool {
        matches!(self, Outcome::Skip { .. })
    }
}

/// The result of one kernel on one case and dtype on one device.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaseResult {
    /// The device.
    pub device: DeviceId,
    /// The kernel's name.
    pub kernel: &'static str,
    /// The operator.
    pub op: OpKind,
    /// The case's name in `crates/suite/cases/<op>.json`.
    pub case: String,
    /// The problem's primary dtype.
    pub dtype: DType,
    /// What happened.
    pub outcome: Outcome,
}

impl fmt::Display for CaseResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = format!(
            "{} {} {}/{} {}",
            self.device, self.kernel, self.op, self.case, self.dtype
        );
        match &self.outcome {
            Outcome::Pass {
                rel_l2,
                max_abs,
                checks,
            } => write!(
                f,
                "PASS {what}: rel_l2 {rel_l2:.2e}, max_abs {max_abs:.2e} [{}]",
                checks.join(", ")
            ),
            Outcome::Fail { why } => write!(f, "FAIL {what}: {why}"),
            Outcome::Skip { reasons } => write!(f, "SKIP {what}: {}", reasons.join("; ")),
        }
    }
}

/// Every result of one run of the suite.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SuiteReport {
    /// The seed the inputs were generated from (rerun with it to reproduce).
    pub seed: u64,
    /// The results, in the order they ran.
    pub results: Vec<CaseResult>,
}

/// Passed, failed and skipped counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases that were skipped.
    pub skipped: usize,
}

impl Tally {
    fn add(&mut self, o: &Outcome) {
        match o {
            Outcome::Pass { .. } => self.passed += 1,
            Outcome::Fail { .. } => self.failed += 1,
            Outcome::Skip { .. } => self.skipped += 1,
        }
    }
}

impl SuiteReport {
    /// Cases that passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.outcome.is_pass()).count()
    }

    /// Cases that failed.
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|r| r.outcome.is_fail()).count()
    }

    /// Cases that were skipped.
    pub fn skipped(&self) -> usize {
        self.results.iter().filter(|r| r.outcome.is_skip()).count()
    }

    /// Counts per (device, kernel), ordered by device then kernel name.
    pub fn per_kernel(&self) -> BTreeMap<(DeviceId, &'static str), Tally> {
        let mut m: BTreeMap<(DeviceId, &'static str), Tally> = BTreeMap::new();
        for r in &self.results {
            m.entry((r.device, r.kernel)).or_default().add(&r.outcome);
        }
        m
    }

    /// The results of one operator, as a report of their own.
    pub fn for_op(&self, op: OpKind) -> SuiteReport {
        SuiteReport {
            seed: self.seed,
            results: self
                .results
                .iter()
                .filter(|r| r.op == op)
                .cloned()
                .collect(),
        }
    }
}

impl fmt::Display for SuiteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per = self.per_kernel();
        let width = per
            .keys()
            .map(|(d, k)| d.to_string().len() + 1 + k.len())
            .max()
            .unwrap_or(0)
            .max("kernel".len());
        writeln!(
            f,
            "equivalence suite, seed {} ({:#x})",
            self.seed, self.seed
        )?;
        writeln!(
            f,
            "{:<width$}  {:>6}  {:>6}  {:>7}",
            "kernel", "passed", "failed", "skipped"
        )?;
        for ((device, kernel), t) in &per {
            writeln!(
                f,
                "{:<width$}  {:>6}  {:>6}  {:>7}",
                format!("{device} {kernel}"),
                t.passed,
                t.failed,
                t.skipped
            )?;
        }
        writeln!(
            f,
            "{:<width$}  {:>6}  {:>6}  {:>7}",
            "total",
            self.passed(),
            self.failed(),
            self.skipped()
        )?;
        let failures: Vec<&CaseResult> = self
            .results
            .iter()
            .filter(|r| r.outcome.is_fail())
            .collect();
        if !failures.is_empty() {
            writeln!(f, "\nfailures ({}):", failures.len())?;
            for r in failures {
                writeln!(f, "  {r}")?;
            }
        }
        let skips: Vec<&CaseResult> = self
            .results
            .iter()
            .filter(|r| r.outcome.is_skip())
            .collect();
        if !skips.is_empty() {
            writeln!(f, "\nskips ({}):", skips.len())?;
            for r in skips {
                writeln!(f, "  {r}")?;
            }
        }
        Ok(())
    }
}

/// The summary the CLI prints: the per-kernel table, then every failure and skip.
pub fn summary_table(report: &SuiteReport) -> String {
    report.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(kernel: &'static str, outcome: Outcome) -> CaseResult {
        CaseResult {
            device: DeviceId::CPU,
            kernel,
            op: OpKind::Softmax,
            case: "odd".into(),
            dtype: DType::BF16,
            outcome,
        }
    }

    #[test]
    fn counts_table_and_json() {
        let report = SuiteReport {
            seed: 5,
            results: vec![
                result(
                    "reference.softmax",
                    Outcome::Pass {
                        rel_l2: 1e-3,
                        max_abs: 2e-3,
                        checks: vec!["oracle"],
                    },
                ),
                result(
                    "cuda.softmax",
                    Outcome::Fail {
                        why: "oracle: bad".into(),
                    },
                ),
                result(
                    "cuda.softmax",
                    Outcome::Skip {
                        reasons: vec!["too wide".into()],
                    },
                ),
            ],
        };
        assert_eq!(
            (report.passed(), report.failed(), report.skipped()),
            (1, 1, 1)
        );
        let text = summary_table(&report);
        assert!(text.contains("cpu cuda.softmax"), "{text}");
        assert!(
            text.contains("FAIL cpu cuda.softmax softmax/odd bf16: oracle: bad"),
            "{text}"
        );
        assert!(
            text.contains("SKIP cpu cuda.softmax softmax/odd bf16: too wide"),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["results"][1]["outcome"]["status"], "fail");
        assert_eq!(json["results"][0]["device"], "cpu");
    }
}
