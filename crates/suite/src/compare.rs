//! Comparisons: a kernel's output against the oracle (within the tolerance contract), and two
//! runs' outputs bit for bit.

use crate::data::{unravel, OutputSpec};
use crate::tolerance::{Tolerance, TINY_NORM};

/// The errors of one output against the oracle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Metrics {
    /// `||got - want|| / ||want||` over finite expected elements (0 when `||want||` is tiny).
    pub rel_l2: f64,
    /// `max |got - want| / max(1, max |want|)` over finite expected elements.
    pub max_abs: f64,
}

/// A value for messages: exact (shortest round-trip), in exponent form when very small or
/// large.
pub(crate) fn num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || (1e-4..1e6).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// Formats a multi-index `[i, j, k]`.
fn at(i: usize, shape: &[usize]) -> String {
    format!("{:?}", unravel(i, shape))
}

/// Compares one output with the oracle's values under `tol`.
///
/// Fails on: a length mismatch; NaN or an infinity where the oracle is finite (an unwritten,
/// still-poisoned element shows as NaN); a finite value where the oracle expects NaN or an
/// infinity; or either bound of `tol` exceeded.
pub(crate) fn against_oracle(
    spec: &OutputSpec,
    got: &[f64],
    want: &[f64],
    tol: &Tolerance,
) -> Result<Metrics, String> {
    let name = spec.name;
    if got.len() != want.len() {
        return Err(format!(
            "`{name}` has {} elements, the oracle {}",
            got.len(),
            want.len()
        ));
    }
    let mut bad_special: Option<(usize, usize)> = None; // (count, first index)
    let (mut diff2, mut want2, mut max_abs, mut max_want) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut worst = 0usize;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            g.is_finite()
        };
        if !ok {
            let (count, first) = bad_special.unwrap_or((0, i));
            bad_special = Some((count + 1, first));
            continue;
        }
        if !w.is_finite() {
            continue;
        }
        let d = (g - w).abs();
        diff2 += d * d;
        want2 += w * w;
        max_want = max_want.max(w.abs());
        if d > max_abs {
            max_abs = d;
            worst = i;
        }
    }
    if let Some((count, first)) = bad_special {
        let (g, w) = (got[first], want[first]);
        let hint = if g.is_nan() && w.is_finite() {
            " (an element left unwritten keeps the NaN poison)"
        } else if w.is_nan() {
            " (the oracle's NaN marks an out-of-range input)"
        } else {
            ""
        };
        return Err(format!(
            "`{name}` has {count} element(s) that should be {}, first at {}: got {}, want {}{hint}",
            if w.is_finite() {
                "finite"
            } else {
                "exactly the oracle's NaN or infinity"
            },
            at(first, &spec.shape),
            num(g),
            num(w)
        ));
    }
    let norm_want = want2.sqrt();
    let rel_l2 = if norm_want < TINY_NORM {
        0.0
    } else {
        diff2.sqrt() / norm_want
    };
    let scaled = max_abs / max_want.max(1.0);
    if rel_l2 > tol.rel_l2 || scaled > tol.max_abs {
        return Err(format!(
            "`{name}` is off: rel_l2 {rel_l2:.3e} (bound {:e}), max_abs {scaled:.3e} (bound {:e}); worst element {}: got {}, want {}",
            tol.rel_l2,
            tol.max_abs,
            at(worst, &spec.shape),
            num(got[worst]),
            num(want[worst])
        ));
    }
    Ok(Metrics {
        rel_l2,
        max_abs: scaled,
    })
}

/// Where two outputs' bit patterns differ: the first element and how many do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BitDiff {
    /// The first differing element (flat index), or the shorter length when lengths differ.
    pub first: usize,
    /// How many elements differ (or the length difference).
    pub count: usize,
}

/// Compares two bit patterns element by element.
pub(crate) fn bit_difference(a: &[u64], b: &[u64]) -> Option<BitDiff> {
    if a.len() != b.len() {
        return Some(BitDiff {
            first: a.len().min(b.len()),
            count: a.len().abs_diff(b.len()),
        });
    }
    let first = a.iter().zip(b).position(|(x, y)| x != y)?;
    let count = a.iter().zip(b).filter(|(x, y)| x != y).count();
    Some(BitDiff { first, count })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Init;
    use kernelyard::{DType, OpKind};

    fn spec(n: usize) -> OutputSpec {
        OutputSpec {
            name: "out",
            dtype: DType::F32,
            shape: vec![n],
            batch_axis: Some(0),
            init: Init::Poison,
        }
    }

    fn tol() -> Tolerance {
        Tolerance {
            op: OpKind::Softmax,
            dtype: DType::F32,
            rel_l2: 1e-3,
            max_abs: 1e-3,
            why: "",
        }
    }

    #[test]
    fn nan_where_finite_fails_and_names_the_element() {
        let err =
            against_oracle(&spec(3), &[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0], &tol()).unwrap_err();
        assert!(err.contains("[1]") && err.contains("unwritten"), "{err}");
    }

    #[test]
    fn expected_specials_must_match() {
        let want = [f64::NAN, f64::NEG_INFINITY, 1.0];
        assert!(
            against_oracle(&spec(3), &[f64::NAN, f64::NEG_INFINITY, 1.0], &want, &tol()).is_ok()
        );
        assert!(against_oracle(&spec(3), &[0.0, f64::NEG_INFINITY, 1.0], &want, &tol()).is_err());
        assert!(against_oracle(&spec(3), &[f64::NAN, -1e30, 1.0], &want, &tol()).is_err());
    }

    #[test]
    fn bounds_are_scaled_and_tiny_norms_use_max_abs() {
        // Error 0.05 on values of 100: max_abs scaled to 5e-4, rel_l2 ~3e-4.
        let m = against_oracle(&spec(2), &[100.05, 100.0], &[100.0, 100.0], &tol()).unwrap();
        assert!((m.max_abs - 5e-4).abs() < 1e-9);
        // All-zero oracle: rel_l2 is not computed.
        let m = against_oracle(&spec(2), &[1e-4, 0.0], &[0.0, 0.0], &tol()).unwrap();
        assert_eq!(m.rel_l2, 0.0);
        assert!(against_oracle(&spec(2), &[1e-2, 0.0], &[0.0, 0.0], &tol()).is_err());
    }

    #[test]
    fn bit_differences() {
        assert!(bit_difference(&[1, 2], &[1, 2]).is_none());
        assert_eq!(
            bit_difference(&[1, 2, 3], &[1, 5, 4]),
            Some(BitDiff { first: 1, count: 2 })
        );
        assert_eq!(
            bit_difference(&[1], &[1, 2]),
            Some(BitDiff { first: 1, count: 1 })
        );
    }
}
