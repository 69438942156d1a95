//! Known differences: specific (kernel, case, dtype) failures that are understood and accepted
//! for now, each with the reason. The list is empty; keep it short.
//!
//! An entry turns that case's failure into a skip whose reason is the entry's comment (plus the
//! failure text), so it is still counted and shown, never as a pass. An entry whose case
//! *passes* is reported as a failure ("remove the entry"), so the list cannot go stale. A skip
//! (the kernel was rejected) stays a skip.
//!
//! To add one: name the kernel and the case exactly as the report prints them, pick the dtype
//! (or `None` for every dtype of the case), and say why the difference is acceptable and what
//! would remove it (an issue link, the kernel version that fixes it).

use kernelyard::DType;

use crate::report::Outcome;

/// One accepted difference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownDifference {
    /// The kernel, e.g. `cuda.attention_fa2`.
    pub kernel: &'static str,
    /// The case name in its op's file.
    pub case: &'static str,
    /// The dtype, or `None` for every dtype the case runs.
    pub dtype: Option<DType>,
    /// Why the difference is accepted, and what would remove it.
    pub reason: &'static str,
}

/// The accepted differences (none yet).
pub const KNOWN_DIFFERENCES: &[KnownDifference] = &[];

/// The entry for (kernel, case, dtype) in `list`, if any.
pub fn lookup<'l>(
    list: &'l [KnownDifference],
    kernel: &str,
    case: &str,
    dtype: DType,
) -> Option<&'l KnownDifference> {
    list.iter()
        .find(|k| k.kernel == kernel && k.case == case && k.dtype.is_none_or(|d| d == dtype))
}

/// Applies a known difference to an outcome: a failure becomes a skip with the entry's reason;
/// a pass becomes a failure asking to remove the stale entry; a skip stays.
pub fn apply(known: Option<&KnownDifference>, outcome: Outcome) -> Outcome {
    let Some(k) = known else {
        return outcome;
    };
    match outcome {
        Outcome::Fail { why } => Outcome::Skip {
            reasons: vec![format!(
                "known difference (crates/suite/src/known.rs): {}; the failure was: {why}",
                k.reason
            )],
        },
        Outcome::Pass { .. } => Outcome::Fail {
            why: format!(
                "known difference: this case is listed in crates/suite/src/known.rs ({}) but passes; remove the entry",
                k.reason
            ),
        },
        skip @ Outcome::Skip { .. } => skip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &[KnownDifference] = &[KnownDifference {
        kernel: "cuda.softmax",
        case: "long",
        dtype: Some(DType::F16),
        reason: "f16 subnormals flushed to zero",
    }];

    #[test]
    fn turns_failures_into_skips_and_stale_entries_into_failures() {
        let k = lookup(LIST, "cuda.softmax", "long", DType::F16);
        assert!(k.is_some());
        assert!(lookup(LIST, "cuda.softmax", "long", DType::BF16).is_none());
        assert!(lookup(LIST, "cuda.softmax", "odd", DType::F16).is_none());
        let skipped = apply(
            k,
            Outcome::Fail {
                why: "oracle: x".into(),
            },
        );
        assert!(matches!(&skipped, Outcome::Skip { reasons } if reasons[0].contains("flushed")));
        let stale = apply(
            k,
            Outcome::Pass {
                rel_l2: 0.0,
                max_abs: 0.0,
                checks: vec![],
            },
        );
        assert!(stale.is_fail());
        assert!(KNOWN_DIFFERENCES.is_empty());
    }
}
