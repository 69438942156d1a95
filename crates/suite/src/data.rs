//! Host-side test data: dense tensors in logical order as `f64`, output descriptions, one
//! instance of a problem with its inputs, and the row selections the batch-invariance check
//! needs.

use kernelyard::{DType, Problem};
use kernelyard_reference::host::round_to;

use crate::cases::Scalars;
use crate::rng::Rng;

/// A dense input tensor in logical (row-major) order; every value is exactly representable in
/// `dtype` (integers for index tensors).
#[derive(Clone, Debug)]
pub(crate) struct HostTensor {
    pub name: &'static str,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
    /// The axis of the op's independent rows (batch entries, tokens, rows of M), or `None` for
    /// a tensor every row shares (weights, per-head parameters).
    pub batch_axis: Option<usize>,
}

impl HostTensor {
    /// Random values uniform in `[lo, hi)`, rounded to `dtype`, never exactly zero.
    pub fn uniform(
        name: &'static str,
        dtype: DType,
        shape: Vec<usize>,
        batch_axis: Option<usize>,
        rng: &mut Rng,
        lo: f64,
        hi: f64,
    ) -> Self {
        let n = shape.iter().product();
        let data = if n >= PARALLEL_MIN {
            let base = rng.next_u64();
            let mut data = vec![0.0; n];
            par_chunks(&mut data, CHUNK, |i, chunk| {
                let mut rng = Rng::stream(base, i as u64);
                for v in chunk {
                    *v = nonzero(&mut rng, dtype, lo, hi);
                }
            });
            data
        } else {
            (0..n).map(|_| nonzero(rng, dtype, lo, hi)).collect()
        };
        HostTensor {
            name,
            dtype,
            shape,
            data,
            batch_axis,
        }
    }

    /// A tensor's description without values (`data` empty): what
    /// [`Driver::input_shapes`](crate::ops::Driver::input_shapes) returns, so that sizes are
    /// known before anything is generated.
    pub fn shape_only(
        name: &'static str,
        dtype: DType,
        shape: Vec<usize>,
        batch_axis: Option<usize>,
    ) -> Self {
        HostTensor::of(name, dtype, shape, batch_axis, Vec::new())
    }

    /// A tensor of given values (already representable in `dtype`).
    pub fn of(
        name: &'static str,
        dtype: DType,
        shape: Vec<usize>,
        batch_axis: Option<usize>,
        data: Vec<f64>,
    ) -> Self {
        HostTensor {
            name,
            dtype,
            shape,
            data,
            batch_axis,
        }
    }
}

/// The number of elements of a dense tensor of `shape`, or `None` if it overflows `usize`.
pub(crate) fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// The bytes of a dense tensor of logical `shape` in `dtype`, or `None` if they overflow
/// `usize`.
pub(crate) fn checked_bytes(dtype: DType, shape: &[usize]) -> Option<usize> {
    // A logical shape counts values; packed FP4 holds two a byte (`DType::lanes`).
    checked_numel(shape)?
        .div_ceil(dtype.lanes())
        .checked_mul(dtype.size())
}

/// Tensors of at least this many elements are generated (and converted to their dtype) on
/// every core, in chunks of [`CHUNK`] elements each with its own [`Rng::stream`], so their values
/// do not depend on the number of cores. Smaller ones (every case of the suite) come from one
/// sequential stream. Benchmarks need the large ones: 4096 x 151936 logits are 622M values.
pub(crate) const PARALLEL_MIN: usize = 1 << 22;

/// Elements per chunk of a parallel fill.
pub(crate) const CHUNK: usize = 1 << 16;

/// Runs `f(i, chunk)` for every `chunk_len`-element chunk of `out` (the `i`-th), spread over
/// the available cores.
pub(crate) fn par_chunks<T: Send>(
    out: &mut [T],
    chunk_len: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let mut chunks: Vec<(usize, &mut [T])> = out.chunks_mut(chunk_len.max(1)).enumerate().collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, chunks.len().max(1));
    let per_thread = chunks.len().div_ceil(threads).max(1);
    let f = &f;
    std::thread::scope(|s| {
        for group in chunks.chunks_mut(per_thread) {
            s.spawn(move || {
                for (i, chunk) in group.iter_mut() {
                    f(*i, chunk);
                }
            });
        }
    });
}

/// `values` mapped through `f`, in parallel when there are at least [`PARALLEL_MIN`].
pub(crate) fn par_map<T: Copy + Default + Send>(
    values: &[f64],
    f: impl Fn(f64) -> T + Sync,
) -> Vec<T> {
    if values.len() < PARALLEL_MIN {
        return values.iter().map(|&v| f(v)).collect();
    }
    let mut out = vec![T::default(); values.len()];
    par_chunks(&mut out, CHUNK, |i, chunk| {
        for (o, &v) in chunk.iter_mut().zip(&values[i * CHUNK..]) {
            *o = f(v);
        }
    });
    out
}

/// One value uniform in `[lo, hi)` rounded to `dtype`, redrawn while it rounds to zero (a zero
/// input hides kernels that never read it).
pub(crate) fn nonzero(rng: &mut Rng, dtype: DType, lo: f64, hi: f64) -> f64 {
    for _ in 0..64 {
        let v = round_to(dtype, rng.uniform(lo, hi));
        if v != 0.0 {
            return v;
        }
    }
    // Only a range of (nearly) zero width around 0 gets here.
    round_to(dtype, if hi > 0.0 { hi } else { lo })
}

/// What an output buffer holds before the launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Init {
    /// NaN everywhere, so an element the kernel does not write shows as NaN.
    Poison,
    /// The values of input `n` (in/out tensors: the ssu state, C when accumulating, in-place
    /// rope's `x`).
    FromInput(usize),
}

/// An output tensor of an instance.
#[derive(Clone, Debug)]
pub(crate) struct OutputSpec {
    pub name: &'static str,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub batch_axis: Option<usize>,
    pub init: Init,
}

/// One problem with its inputs: what a kernel runs and the oracle sees.
#[derive(Clone, Debug)]
pub(crate) struct Instance {
    /// The problem as the case describes it (its `align` may differ from the launch's).
    pub problem: Problem,
    pub scalars: Scalars,
    pub inputs: Vec<HostTensor>,
    pub outputs: Vec<OutputSpec>,
}

impl Instance {
    /// The input called `name`.
    pub fn input(&self, name: &str) -> Result<&HostTensor, String> {
        self.inputs
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| format!("harness bug: no input `{name}`"))
    }

    /// The input called `name`, if the instance has one.
    pub fn optional(&self, name: &str) -> Option<&[f64]> {
        self.inputs
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.data.as_slice())
    }

    /// The index of the input called `name`.
    pub fn input_index(inputs: &[HostTensor], name: &str) -> Result<usize, String> {
        inputs
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| format!("harness bug: no input `{name}`"))
    }
}

/// `(outer, n, inner)` of a shape around `axis`.
fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// The entries `rows` (in that order) of `axis` of a dense tensor.
pub(crate) fn select_rows<T: Copy>(
    data: &[T],
    shape: &[usize],
    axis: usize,
    rows: &[usize],
) -> Vec<T> {
    if axis >= shape.len() {
        return Vec::new();
    }
    let (outer, n, inner) = split(shape, axis);
    let mut out = Vec::with_capacity(outer * rows.len() * inner);
    for o in 0..outer {
        for &r in rows {
            let start = (o * n + r) * inner;
            if let Some(chunk) = data.get(start..start + inner) {
                out.extend_from_slice(chunk);
            }
        }
    }
    out
}

/// `a` followed by `b` along `axis` (shapes equal elsewhere).
pub(crate) fn concat_rows<T: Copy>(
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    axis: usize,
) -> Vec<T> {
    if axis >= a_shape.len() || axis >= b_shape.len() {
        return Vec::new();
    }
    let (outer, na, inner) = split(a_shape, axis);
    let nb = b_shape[axis];
    let mut out = Vec::with_capacity(a.len() + b.len());
    for o in 0..outer {
        if let Some(chunk) = a.get(o * na * inner..(o + 1) * na * inner) {
            out.extend_from_slice(chunk);
        }
        if let Some(chunk) = b.get(o * nb * inner..(o + 1) * nb * inner) {
            out.extend_from_slice(chunk);
        }
    }
    out
}

/// The logical index of flat element `i` of a dense tensor.
pub(crate) fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (slot, &d) in idx.iter_mut().zip(shape).rev() {
        if d > 0 {
            *slot = i % d;
            i /= d;
        }
    }
    idx
}

/// The shape with `axis` set to `n`.
pub(crate) fn with_axis(shape: &[usize], axis: usize, n: usize) -> Vec<usize> {
    let mut s = shape.to_vec();
    if let Some(d) = s.get_mut(axis) {
        *d = n;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_and_concat_along_an_inner_axis() {
        // [2, 3, 2]: select rows 2, 0 of axis 1.
        let data: Vec<u32> = (0..12).collect();
        let s = select_rows(&data, &[2, 3, 2], 1, &[2, 0]);
        assert_eq!(s, vec![4, 5, 0, 1, 10, 11, 6, 7]);
        let c = concat_rows(&data, &[2, 3, 2], &[100u32, 101, 102, 103], &[2, 1, 2], 1);
        assert_eq!(
            c,
            vec![0, 1, 2, 3, 4, 5, 100, 101, 6, 7, 8, 9, 10, 11, 102, 103]
        );
        assert_eq!(unravel(7, &[2, 3, 2]), vec![1, 0, 1]);
        assert_eq!(with_axis(&[2, 3, 2], 1, 5), vec![2, 5, 2]);
    }

    #[test]
    fn parallel_fills_do_not_depend_on_the_cores() {
        let n = PARALLEL_MIN + 3;
        let a = HostTensor::uniform("a", DType::BF16, vec![n], None, &mut Rng::new(5), -1.0, 1.0);
        let b = HostTensor::uniform("b", DType::BF16, vec![n], None, &mut Rng::new(5), -1.0, 1.0);
        assert_eq!(a.data, b.data);
        assert!(a
            .data
            .iter()
            .all(|&v| v != 0.0 && round_to(DType::BF16, v) == v));
        // Chunks get distinct streams.
        assert_ne!(a.data[..CHUNK], a.data[CHUNK..2 * CHUNK]);
        let doubled = par_map(&a.data, |v| 2.0 * v);
        assert!(doubled.iter().zip(&a.data).all(|(d, v)| *d == 2.0 * v));
    }

    #[test]
    fn nonzero_values_are_rounded() {
        let mut rng = Rng::new(3);
        for _ in 0..100 {
            let v = nonzero(&mut rng, DType::BF16, -1.0, 1.0);
            assert!(v != 0.0 && round_to(DType::BF16, v) == v);
        }
    }
}
