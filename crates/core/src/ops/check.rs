//! Validation helpers shared by the operator files: one place for the checks every tensor gets.

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
        if v.addr() % size != 0 {
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
        // ignored; for the others the span check above bounds `s * size` by `isize::MAX`.
        for (&d, &s) in shape.iter().zip(v.strides()).take(rank.saturating_sub(1)) {
            if d > 1 {
                self.align = self.align.min(align_of(s as usize * size));
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
