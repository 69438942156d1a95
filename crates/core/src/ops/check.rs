//! Validation helpers shared by the operator files: one place for the checks every tensor gets.
//!
//! Two sides of one set of rules: [`Checker`] checks the views of a call (what `validate`
//! sees), [`Implied`] checks the tensors a problem describes (what `from_params` builds and what
//! a caller may construct directly; each operator's `check` lists them). Sizes, strides and
//! byte spans are computed in checked arithmetic on both sides.

use crate::device::DeviceId;
use crate::dtype::DType;
use crate::error::ValidationError;
use crate::tensor::{require_contiguous, TensorView, TensorViewMut};

/// The most alignment a problem records; kernels never need more than 16-byte vectors.
pub const MAX_ALIGN: usize = 16;

/// What validation reads from a view, mutable or not.
pub trait ViewMeta {
    /// The element type.
    fn dtype(&self) -> DType;
    /// The shape.
    fn shape(&self) -> &[usize];
    /// The strides, in elements.
    fn strides(&self) -> &[isize];
    /// The device.
    fn device(&self) -> DeviceId;
    /// The data address.
    fn addr(&self) -> usize;
    /// The byte range the view can touch.
    fn byte_span(&self) -> Option<(usize, usize)>;
}

macro_rules! impl_view_meta {
    ($t:ty) => {
        impl ViewMeta for $t {
            fn dtype(&self) -> DType {
                <$t>::dtype(self)
            }
            fn shape(&self) -> &[usize] {
                <$t>::shape(self)
            }
            fn strides(&self) -> &[isize] {
                <$t>::strides(self)
            }
            fn device(&self) -> DeviceId {
                <$t>::device(self)
            }
            fn addr(&self) -> usize {
                <$t>::addr(self)
            }
            fn byte_span(&self) -> Option<(usize, usize)> {
                <$t>::byte_span(self)
            }
        }
    };
}

impl_view_meta!(TensorView<'_>);
impl_view_meta!(TensorViewMut<'_>);

/// Runs the per-tensor checks of one call and accumulates what the problem records.
pub struct Checker {
    first: Option<(&'static str, DeviceId)>,
    align: usize,
}

impl Default for Checker {
    fn default() -> Self {
        Self::new()
    }
}

/// The largest power of two (capped at [`MAX_ALIGN`]) dividing `x`.
fn align_of(x: usize) -> usize {
    if x == 0 {
        MAX_ALIGN
    } else {
        (1usize << x.trailing_zeros()).min(MAX_ALIGN)
    }
}

impl Checker {
    /// A checker for a new call.
    pub fn new() -> Self {
        Checker {
            first: None,
            align: MAX_ALIGN,
        }
    }

    /// The least alignment (bytes, capped at 16) of every pointer and row stride seen.
    pub fn align(&self) -> usize {
        self.align
    }

    /// Counts a byte offset inside a checked tensor that a kernel uses as a pointer of its own
    /// (e.g. the second half of a row) in the least alignment.
    pub fn offset(&mut self, bytes: usize) {
        self.align = self.align.min(align_of(bytes));
    }

    /// The device of the first tensor checked.
    pub fn device(&self) -> DeviceId {
        self.first.map(|(_, d)| d).unwrap_or(DeviceId::CPU)
    }

    /// Checks one tensor: rank, non-null, element alignment, one device for all, no zero-sized
    /// dimension, byte size within `isize`, and the allowed dtypes. Returns its shape.
    pub fn tensor<'v>(
        &mut self,
        arg: &'static str,
        v: &'v dyn ViewMeta,
        rank: usize,
        layout: &'static str,
        allowed: &'static [DType],
    ) -> Result<&'v [usize], ValidationError> {
        let shape = v.shape();
        if shape.len() != rank {
            return Err(ValidationError::Rank {
                arg,
                expected: rank,
                layout,
                got: shape.to_vec(),
            });
        }
        if !allowed.contains(&v.dtype()) {
            return Err(ValidationError::DtypeNotAllowed {
                arg,
                got: v.dtype(),
                allowed,
            });
        }
        match self.first {
            None => self.first = Some((arg, v.device())),
            Some((first, expected)) if expected != v.device() => {
                return Err(ValidationError::DeviceMismatch {
                    arg,
                    first,
                    expected,
                    got: v.device(),
                })
            }
            Some(_) => {}
        }
        if v.addr() == 0 {
            return Err(ValidationError::NullPointer { arg });
        }
        let size = v.dtype().size();
        if !v.addr().is_multiple_of(size) {
            return Err(ValidationError::Misaligned {
                arg,
                align: size,
                addr: v.addr(),
            });
        }
        if shape.contains(&0) {
            return Err(ValidationError::ZeroSized {
                arg,
                shape: shape.to_vec(),
            });
        }
        let bytes = shape
            .iter()
            .try_fold(size, |acc, &d| acc.checked_mul(d))
            .filter(|&b| b <= isize::MAX as usize);
        if bytes.is_none() || v.byte_span().is_none() {
            return Err(ValidationError::Overflow {
                arg,
                what: format!("the byte size of shape {shape:?}"),
            });
        }
        if v.strides().iter().any(|&s| s < 0) {
            return Err(ValidationError::Strides {
                arg,
                shape: shape.to_vec(),
                strides: v.strides().to_vec(),
                need: "negative strides are not supported",
            });
        }
        self.align = self.align.min(align_of(v.addr()));
        // Row strides (all but the innermost) also bound vector widths. A dimension of size 1
        // never steps by its stride (frameworks give such strides arbitrary values), so it is
        // ignored; for the others the span check above bounds `s * size` by `isize::MAX` (and
        // the alignment is taken from the factors, without multiplying them).
        for (&d, &s) in shape.iter().zip(v.strides()).take(rank.saturating_sub(1)) {
            if d > 1 {
                self.align = self.align.min(align_of_bytes(s as usize, size));
            }
        }
        Ok(shape)
    }

    /// [`Checker::tensor`] plus row-major contiguity.
    pub fn contiguous<'v>(
        &mut self,
        arg: &'static str,
        v: &'v dyn ViewMeta,
        rank: usize,
        layout: &'static str,
        allowed: &'static [DType],
    ) -> Result<&'v [usize], ValidationError> {
        let shape = self.tensor(arg, v, rank, layout, allowed)?;
        require_contiguous(arg, shape, v.strides())?;
        Ok(shape)
    }
}

/// Fails unless `got == expected` for dimension `dim` of `arg`.
pub fn dim(
    arg: &'static str,
    dim: &'static str,
    got: usize,
    expected: usize,
    rule: &'static str,
) -> Result<(), ValidationError> {
    if got == expected {
        Ok(())
    } else {
        Err(ValidationError::Dim {
            arg,
            dim,
            expected,
            got,
            rule,
        })
    }
}

/// Fails unless `arg`'s dtype is `expected`.
pub fn same_dtype(
    arg: &'static str,
    v: &dyn ViewMeta,
    expected: DType,
) -> Result<(), ValidationError> {
    if v.dtype() == expected {
        Ok(())
    } else {
        Err(ValidationError::DtypeMismatch {
            arg,
            expected,
            got: v.dtype(),
        })
    }
}

/// True if two views touch a common byte.
pub fn overlaps(a: &dyn ViewMeta, b: &dyn ViewMeta) -> bool {
    match (a.byte_span(), b.byte_span()) {
        (Some((a0, a1)), Some((b0, b1))) => a0 < b1 && b0 < a1,
        _ => true,
    }
}

/// True if two views are the same tensor: same address, dtype, shape and strides.
pub fn same_tensor(a: &dyn ViewMeta, b: &dyn ViewMeta) -> bool {
    a.addr() == b.addr()
        && a.dtype() == b.dtype()
        && a.shape() == b.shape()
        && a.strides() == b.strides()
}

/// Fails if output `out` overlaps input `input` in memory.
pub fn no_alias(
    output: &'static str,
    out: &dyn ViewMeta,
    input: &'static str,
    inp: &dyn ViewMeta,
) -> Result<(), ValidationError> {
    if out.device() == inp.device() && overlaps(out, inp) {
        Err(ValidationError::Aliasing {
            output,
            input,
            allowed:
                "outputs must not overlap inputs for this operator; write to a separate buffer",
        })
    } else {
        Ok(())
    }
}

/// Fails unless a scalar is finite (and, with `positive`, greater than zero).
pub fn finite(param: &'static str, v: f32, positive: bool) -> Result<(), ValidationError> {
    if !v.is_finite() {
        return Err(ValidationError::Param {
            param,
            value: v.to_string(),
            why: "must be finite",
        });
    }
    if positive && v <= 0.0 {
        return Err(ValidationError::Param {
            param,
            value: v.to_string(),
            why: "must be greater than zero",
        });
    }
    Ok(())
}

/// The alignment (a power of two, capped at [`MAX_ALIGN`]) of `elems * size` bytes, from the
/// factors' trailing zeros: no multiplication, so no overflow.
fn align_of_bytes(elems: usize, size: usize) -> usize {
    if elems == 0 || size == 0 {
        return MAX_ALIGN;
    }
    let zeros = elems.trailing_zeros() + size.trailing_zeros();
    if zeros >= MAX_ALIGN.trailing_zeros() {
        MAX_ALIGN
    } else {
        1 << zeros
    }
}

/// The tensors a problem implies, measured in checked arithmetic: the same rules
/// [`Checker::tensor`] applies to views, applied to the shapes and strides a problem describes
/// (each operator's `check` lists its tensors; see [`Op::check_problem`](crate::ops::Op)).
///
/// Each tensor must be non-empty, its element count times its element size (its byte size)
/// and its byte span (what its strides reach) must fit in `isize`, and the byte spans of all
/// the problem's tensors together must fit in `isize` too: arguments live in one address space
/// (a problem past that could not be given as arguments). Tensors that count in the problem's
/// `align` add their row strides (all but the innermost dimension, for extents above 1) to the
/// least stride alignment and their element size to the least element size.
#[derive(Clone, Debug)]
pub struct Implied {
    total: usize,
    stride_align: usize,
    min_size: usize,
}

impl Default for Implied {
    fn default() -> Self {
        Self::new()
    }
}

impl Implied {
    /// No tensors yet.
    pub fn new() -> Self {
        Implied {
            total: 0,
            stride_align: MAX_ALIGN,
            min_size: MAX_ALIGN,
        }
    }

    /// A row-major contiguous tensor whose pointer and row strides count in `align`.
    pub fn contiguous(
        &mut self,
        arg: &'static str,
        dtype: DType,
        shape: &[usize],
    ) -> Result<(), ValidationError> {
        self.add(arg, dtype, shape, None, true)
    }

    /// A contiguous tensor that does not count in `align` (attention's `lse`, written one
    /// element at a time by every kernel).
    pub fn contiguous_uncounted(
        &mut self,
        arg: &'static str,
        dtype: DType,
        shape: &[usize],
    ) -> Result<(), ValidationError> {
        self.add(arg, dtype, shape, None, false)
    }

    /// A tensor of `shape` with `strides` (elements, outermost first) whose pointer and row
    /// strides count in `align`.
    pub fn strided(
        &mut self,
        arg: &'static str,
        dtype: DType,
        shape: &[usize],
        strides: &[usize],
    ) -> Result<(), ValidationError> {
        self.add(arg, dtype, shape, Some(strides), true)
    }

    /// Counts a byte offset of `elems` elements of `size` bytes that a kernel uses as a
    /// pointer of its own (silu_mul's fused `up`), like [`Checker::offset`].
    pub fn offset(&mut self, elems: usize, size: usize) {
        self.stride_align = self.stride_align.min(align_of_bytes(elems, size));
    }

    /// The least alignment the row strides and offsets allow (at most [`MAX_ALIGN`]).
    pub fn stride_align(&self) -> usize {
        self.stride_align
    }

    /// The smallest element size of the tensors that count in `align`.
    pub fn min_size(&self) -> usize {
        self.min_size
    }

    /// The byte spans of every tensor, added up.
    pub fn total_bytes(&self) -> usize {
        self.total
    }

    fn add(
        &mut self,
        arg: &'static str,
        dtype: DType,
        shape: &[usize],
        strides: Option<&[usize]>,
        counted: bool,
    ) -> Result<(), ValidationError> {
        if shape.contains(&0) {
            return Err(ValidationError::ZeroSized {
                arg,
                shape: shape.to_vec(),
            });
        }
        let size = dtype.size();
        let fits = |b: Option<usize>| b.filter(|&b| b <= isize::MAX as usize);
        let bytes = fits(shape.iter().try_fold(size, |acc, &d| acc.checked_mul(d)));
        let Some(bytes) = bytes else {
            return Err(ValidationError::Overflow {
                arg,
                what: format!("the byte size of shape {shape:?}"),
            });
        };
        // Contiguous: the span is the byte size, and every suffix product (a stride) is at
        // most the element count, so none overflows.
        let span = match strides {
            None => bytes,
            Some(strides) => {
                let reach = shape.iter().zip(strides).try_fold(1usize, |acc, (&d, &s)| {
                    (d - 1).checked_mul(s).and_then(|r| acc.checked_add(r))
                });
                fits(reach.and_then(|r| r.checked_mul(size))).ok_or_else(|| {
                    ValidationError::Overflow {
                        arg,
                        what: format!("the byte span of shape {shape:?} with strides {strides:?}"),
                    }
                })?
            }
        };
        self.total =
            fits(self.total.checked_add(span)).ok_or_else(|| ValidationError::Overflow {
                arg,
                what: "the byte size of the problem's tensors together (up to this one)".to_owned(),
            })?;
        if counted {
            self.min_size = self.min_size.min(size);
            let rank = shape.len();
            let mut stride = 1usize;
            for i in (0..rank).rev() {
                let s = strides.and_then(|s| s.get(i).copied()).unwrap_or(stride);
                if i + 1 < rank && shape[i] > 1 {
                    self.stride_align = self.stride_align.min(align_of_bytes(s, size));
                }
                // Bounded by the element count, checked above.
                stride = stride.saturating_mul(shape[i]);
            }
        }
        Ok(())
    }

    /// Checks a problem's `align` against its tensors, as validation records it: a power of
    /// two of at most [`MAX_ALIGN`], at least the smallest element size (every pointer is
    /// aligned to its dtype) and at most what the row strides allow (they count in it).
    pub fn check_align(&self, align: usize) -> Result<(), ValidationError> {
        let bad = |why| ValidationError::Param {
            param: "align",
            value: align.to_string(),
            why,
        };
        if !align.is_power_of_two() || align > MAX_ALIGN {
            return Err(bad("must be a power of two of at most 16 bytes"));
        }
        if align < self.min_size {
            return Err(bad(
                "must be at least the element size of the problem's smallest-element tensor \
                 (every pointer is aligned to its dtype)",
            ));
        }
        if align > self.stride_align {
            return Err(bad(
                "must divide every row stride in bytes: validation counts row strides in the \
                 least alignment",
            ));
        }
        Ok(())
    }

    /// The `align` a problem built from `--problem align=<requested>` records: the pointers'
    /// alignment `requested` (a power of two, at least the smallest element size; capped at
    /// [`MAX_ALIGN`]), lowered to what the row strides of its contiguous tensors allow, as
    /// validation of such tensors would record it.
    pub fn align_param(&self, requested: usize) -> Result<usize, ValidationError> {
        let bad = |why| ValidationError::Param {
            param: "align",
            value: requested.to_string(),
            why,
        };
        if !requested.is_power_of_two() {
            return Err(bad(
                "must be a power of two (the pointers' alignment in bytes)",
            ));
        }
        if requested < self.min_size {
            return Err(bad(
                "must be at least the element size of the problem's smallest-element tensor \
                 (every pointer is aligned to its dtype)",
            ));
        }
        Ok(requested.min(MAX_ALIGN).min(self.stride_align))
    }
}

/// Fails with [`ValidationError::ZeroSized`] if any of a problem's sizes is zero.
pub fn nonzero(sizes: &[usize]) -> Result<(), ValidationError> {
    if sizes.contains(&0) {
        return Err(ValidationError::ZeroSized {
            arg: "problem",
            shape: sizes.to_vec(),
        });
    }
    Ok(())
}

/// Fails with [`ValidationError::DtypeNotAllowed`] unless `got` is in `allowed`.
pub fn dtype_in(
    arg: &'static str,
    got: DType,
    allowed: &'static [DType],
) -> Result<(), ValidationError> {
    if allowed.contains(&got) {
        Ok(())
    } else {
        Err(ValidationError::DtypeNotAllowed { arg, got, allowed })
    }
}
