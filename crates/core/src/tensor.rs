//! Tensor views: dtype, shape, strides, device and a pointer, owning nothing.
//!
//! The layout is DLPack's: a data pointer, a dtype, a shape and strides counted in elements.
//! Views made from host slices are safe; views made from raw pointers (a framework's own device
//! memory) are `unsafe` to construct and carry the caller's promise described on
//! [`TensorView::from_raw_parts`].
//!
//! # Aliasing
//! A [`TensorView<'a>`] is a shared borrow of its elements for `'a`, like `&'a [T]`; a
//! [`TensorViewMut<'a>`] is an exclusive borrow for `'a`, like `&'a mut [T]`. Every safe way to
//! make one keeps that true: [`TensorView::from_slice`] takes `&'a [T]`,
//! [`TensorViewMut::from_slice`] takes `&'a mut [T]` (so the slice cannot be used, or viewed
//! again, while the view lives), and [`TensorViewMut::as_view`] / [`TensorViewMut::reborrow`]
//! borrow the writable view for as long as the new one lives. No safe function returns a
//! `TensorView` of memory a live `TensorViewMut` covers. Hence [`TensorView::as_slice`]
//! (`&'a [T]`) and [`TensorViewMut::as_mut_slice`] (`&mut [T]`, borrowing the view mutably)
//! can never give a `&[T]` and a `&mut [T]` of the same element at once in safe code.
//! Operators that read and write one tensor (rope in place, the state of
//! `selective_state_update`, C of `gemm` with `beta != 0`) take it as one `TensorViewMut`,
//! never as a view pair.

use std::ffi::c_void;
use std::fmt;
use std::marker::PhantomData;

use crate::device::DeviceId;
use crate::dtype::{DType, Storage};
use crate::error::ValidationError;

/// The most dimensions a view may have.
pub const MAX_RANK: usize = 6;

/// Shape and strides (in elements) of a view, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Layout {
    rank: u8,
    dims: [usize; MAX_RANK],
    strides: [isize; MAX_RANK],
}

impl Layout {
    fn new(shape: &[usize], strides: Option<&[isize]>) -> Result<Self, ValidationError> {
        if shape.len() > MAX_RANK {
            return Err(ValidationError::RankTooHigh {
                got: shape.len(),
                max: MAX_RANK,
            });
        }
        let mut l = Layout {
            rank: shape.len() as u8,
            dims: [0; MAX_RANK],
            strides: [0; MAX_RANK],
        };
        l.dims[..shape.len()].copy_from_slice(shape);
        match strides {
            Some(s) if s.len() != shape.len() => {
                return Err(ValidationError::Strides {
                    arg: "view",
                    shape: shape.to_vec(),
                    strides: s.to_vec(),
                    need: "one stride per dimension",
                })
            }
            Some(s) => l.strides[..s.len()].copy_from_slice(s),
            None => {
                let mut acc: isize = 1;
                for i in (0..shape.len()).rev() {
                    l.strides[i] = acc;
                    acc = acc.saturating_mul(shape[i].max(1) as isize);
                }
            }
        }
        Ok(l)
    }

    fn dims(&self) -> &[usize] {
        &self.dims[..self.rank as usize]
    }

    fn strides(&self) -> &[isize] {
        &self.strides[..self.rank as usize]
    }
}

/// Number of elements of a shape, or `None` on overflow.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

fn contiguous(shape: &[usize], strides: &[isize]) -> bool {
    let mut acc: isize = 1;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d != 1 && s != acc {
            return false;
        }
        acc = acc.saturating_mul(d as isize);
    }
    true
}

/// The byte range `[start, end)` a view can touch, or `None` if it cannot be computed.
fn span(ptr: usize, dtype: DType, l: &Layout) -> Option<(usize, usize)> {
    let (mut lo, mut hi) = (0isize, 0isize);
    for (&d, &s) in l.dims().iter().zip(l.strides()) {
        if d == 0 {
            return Some((ptr, ptr));
        }
        let reach = s.checked_mul(isize::try_from(d - 1).ok()?)?;
        if reach < 0 {
            lo = lo.checked_add(reach)?;
        } else {
            hi = hi.checked_add(reach)?;
        }
    }
    let size = dtype.size() as isize;
    let start = (ptr as isize).checked_add(lo.checked_mul(size)?)?;
    let end = (ptr as isize)
        .checked_add(hi.checked_mul(size)?)?
        .checked_add(size)?;
    Some((start as usize, end as usize))
}

macro_rules! view_accessors {
    () => {
        /// The element type.
        pub fn dtype(&self) -> DType {
            self.dtype
        }
        /// The shape.
        pub fn shape(&self) -> &[usize] {
            self.layout.dims()
        }
        /// The strides, in elements.
        pub fn strides(&self) -> &[isize] {
            self.layout.strides()
        }
        /// Number of dimensions.
        pub fn rank(&self) -> usize {
            self.layout.rank as usize
        }
        /// The device the memory lives on.
        pub fn device(&self) -> DeviceId {
            self.device
        }
        /// The data pointer's address.
        pub fn addr(&self) -> usize {
            self.ptr as usize
        }
        /// Number of elements, or `None` if it overflows `usize`.
        pub fn numel(&self) -> Option<usize> {
            checked_numel(self.shape())
        }
        /// True if the view is row-major contiguous.
        pub fn is_contiguous(&self) -> bool {
            contiguous(self.shape(), self.strides())
        }
        /// The byte range `[start, end)` the view can touch, or `None` on overflow.
        pub fn byte_span(&self) -> Option<(usize, usize)> {
            span(self.ptr as usize, self.dtype, &self.layout)
        }
    };
}

/// A read-only view of a tensor that does not own its memory.
///
/// `Copy`, like `&'a [T]`, and for the same reason sound: a copy is one more shared borrow of
/// memory that nobody may write for `'a` (see the module's "Aliasing": no safe constructor
/// makes a `TensorView<'a>` of memory that a live [`TensorViewMut`] covers, and one made from a
/// `TensorViewMut` borrows it). So [`TensorView::as_slice`] may return `&'a [T]` from any copy.
#[derive(Clone, Copy)]
pub struct TensorView<'a> {
    ptr: *const u8,
    dtype: DType,
    layout: Layout,
    device: DeviceId,
    _borrow: PhantomData<&'a [u8]>,
}

// SAFETY: a `TensorView` is a shared borrow of memory (like `&[T]` for host memory, or a device
// pointer that is only read); sharing or sending it across threads is as safe as for `&[T]`.
unsafe impl Send for TensorView<'_> {}
// SAFETY: see `Send`; the view never writes through its pointer.
unsafe impl Sync for TensorView<'_> {}

impl<'a> TensorView<'a> {
    /// A contiguous view of a host slice with the given shape.
    pub fn from_slice<T: Storage>(data: &'a [T], shape: &[usize]) -> Result<Self, ValidationError> {
        let expected = checked_numel(shape).ok_or_else(|| ValidationError::Overflow {
            arg: "view",
            what: format!("the element count of shape {shape:?}"),
        })?;
        if expected != data.len() {
            return Err(ValidationError::Length {
                len: data.len(),
                shape: shape.to_vec(),
                expected,
            });
        }
        Ok(TensorView {
            ptr: data.as_ptr().cast(),
            dtype: T::DTYPE,
            layout: Layout::new(shape, None)?,
            device: DeviceId::CPU,
            _borrow: PhantomData,
        })
    }

    /// A view of memory kernelyard does not own, e.g. a framework's device tensor.
    ///
    /// `strides` are in elements (`None` means row-major contiguous). Nothing is read here;
    /// shapes, strides and alignment are validated when the view is used in an operator call.
    ///
    /// # Safety
    /// For the lifetime `'a`, every element the shape and strides address must lie in one live
    /// allocation on `device`, hold values of `dtype`, and not be written by anyone else while
    /// a kernel reads it (including work queued on other streams). kernelyard never frees it.
    /// Host memory (`device` is the CPU) must in addition not be written at all during `'a`,
    /// nor be covered by a live [`TensorViewMut`] or `&mut`, since [`TensorView::as_slice`]
    /// hands out `&'a [T]`: the promise of [`std::slice::from_raw_parts`].
    pub unsafe fn from_raw_parts(
        ptr: *const c_void,
        dtype: DType,
        shape: &[usize],
        strides: Option<&[isize]>,
        device: DeviceId,
    ) -> Result<Self, ValidationError> {
        Ok(TensorView {
            ptr: ptr.cast(),
            dtype,
            layout: Layout::new(shape, strides)?,
            device,
            _borrow: PhantomData,
        })
    }

    view_accessors!();

    /// The data pointer, for backends.
    pub fn as_ptr(&self) -> *const c_void {
        self.ptr.cast()
    }

    /// The elements as a host slice, if the view is host memory of `T`, contiguous and aligned.
    ///
    /// The slice lives for `'a`, as `&'a [T]` copied out of a `&&'a [T]` would: the view is a
    /// shared borrow for `'a` (see the module's "Aliasing").
    pub fn as_slice<T: Storage>(&self, arg: &'static str) -> Result<&'a [T], ValidationError> {
        host_check::<T>(arg, self.dtype, self.device, self.ptr as usize)?;
        require_contiguous(arg, self.shape(), self.strides())?;
        let len = self.numel().unwrap_or(0);
        // SAFETY: the view was made from a `&'a [T]` of this length (safe constructor) or under
        // `from_raw_parts`' contract (live, `dtype`-typed host memory for `'a`); the dtype, device,
        // alignment and contiguity were checked above.
        Ok(unsafe { std::slice::from_raw_parts(self.ptr.cast::<T>(), len) })
    }
}

/// A writable view of a tensor that does not own its memory.
pub struct TensorViewMut<'a> {
    ptr: *mut u8,
    dtype: DType,
    layout: Layout,
    device: DeviceId,
    _borrow: PhantomData<&'a mut [u8]>,
}

// SAFETY: a `TensorViewMut` is an exclusive borrow of memory, like `&mut [T]`, which is `Send`.
unsafe impl Send for TensorViewMut<'_> {}
// SAFETY: shared access to a `TensorViewMut` only reads its metadata or yields read-only views.
unsafe impl Sync for TensorViewMut<'_> {}

impl<'a> TensorViewMut<'a> {
    /// A contiguous writable view of a host slice with the given shape.
    pub fn from_slice<T: Storage>(
        data: &'a mut [T],
        shape: &[usize],
    ) -> Result<Self, ValidationError> {
        let (dtype, layout) = {
            let view = TensorView::from_slice(&*data, shape)?;
            (view.dtype, view.layout)
        };
        Ok(TensorViewMut {
            ptr: data.as_mut_ptr().cast(),
            dtype,
            layout,
            device: DeviceId::CPU,
            _borrow: PhantomData,
        })
    }

    /// A writable view of memory kernelyard does not own.
    ///
    /// # Safety
    /// As for [`TensorView::from_raw_parts`] (writes through this view excepted), and in
    /// addition nobody else may read or write the addressed elements while a kernel writes
    /// them. For host memory, nothing else may read or
    /// write them during `'a` (no other view, slice or reference overlaps them), since
    /// [`TensorViewMut::as_mut_slice`] hands out `&mut [T]`: the promise of
    /// [`std::slice::from_raw_parts_mut`]. Two views of one tensor (one to read, one to write)
    /// break this; operators that update a tensor take it as one `TensorViewMut`.
    pub unsafe fn from_raw_parts(
        ptr: *mut c_void,
        dtype: DType,
        shape: &[usize],
        strides: Option<&[isize]>,
        device: DeviceId,
    ) -> Result<Self, ValidationError> {
        Ok(TensorViewMut {
            ptr: ptr.cast(),
            dtype,
            layout: Layout::new(shape, strides)?,
            device,
            _borrow: PhantomData,
        })
    }

    view_accessors!();

    /// The data pointer, for backends.
    pub fn as_mut_ptr(&mut self) -> *mut c_void {
        self.ptr.cast()
    }

    /// A read-only view of the same memory, borrowing this one (shared) for as long as the
    /// returned view lives, so no `&mut [T]` can be made from `self` meanwhile.
    pub fn as_view(&self) -> TensorView<'_> {
        TensorView {
            ptr: self.ptr,
            dtype: self.dtype,
            layout: self.layout,
            device: self.device,
            _borrow: PhantomData,
        }
    }

    /// A shorter-lived writable view of the same memory.
    pub fn reborrow(&mut self) -> TensorViewMut<'_> {
        TensorViewMut {
            ptr: self.ptr,
            dtype: self.dtype,
            layout: self.layout,
            device: self.device,
            _borrow: PhantomData,
        }
    }

    /// The elements as a mutable host slice, if host memory of `T`, contiguous and aligned.
    ///
    /// The slice borrows the view mutably: no other slice or view of it exists meanwhile.
    pub fn as_mut_slice<T: Storage>(
        &mut self,
        arg: &'static str,
    ) -> Result<&mut [T], ValidationError> {
        host_check::<T>(arg, self.dtype, self.device, self.ptr as usize)?;
        require_contiguous(arg, self.shape(), self.strides())?;
        let len = self.numel().unwrap_or(0);
        // SAFETY: as in `TensorView::as_slice`, and the view is an exclusive borrow, so no other
        // reference to these elements exists while the returned one lives.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.ptr.cast::<T>(), len) })
    }
}

fn host_check<T: Storage>(
    arg: &'static str,
    dtype: DType,
    device: DeviceId,
    addr: usize,
) -> Result<(), ValidationError> {
    if dtype != T::DTYPE || device != DeviceId::CPU {
        return Err(ValidationError::NotHostSlice {
            arg,
            have: dtype,
            device,
            want: T::DTYPE,
        });
    }
    if addr == 0 {
        return Err(ValidationError::NullPointer { arg });
    }
    if !addr.is_multiple_of(std::mem::align_of::<T>()) {
        return Err(ValidationError::Misaligned {
            arg,
            align: std::mem::align_of::<T>(),
            addr,
        });
    }
    Ok(())
}

/// Fails unless the shape and strides are row-major contiguous.
pub fn require_contiguous(
    arg: &'static str,
    shape: &[usize],
    strides: &[isize],
) -> Result<(), ValidationError> {
    if contiguous(shape, strides) {
        Ok(())
    } else {
        Err(ValidationError::Strides {
            arg,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            need: "the operator needs a row-major contiguous tensor",
        })
    }
}

impl fmt::Debug for TensorView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TensorView({} {:?} strides {:?} on {} at {:#x})",
            self.dtype,
            self.shape(),
            self.strides(),
            self.device,
            self.addr()
        )
    }
}

impl fmt::Debug for TensorViewMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TensorViewMut({} {:?} strides {:?} on {} at {:#x})",
            self.dtype,
            self.shape(),
            self.strides(),
            self.device,
            self.addr()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_and_spans() {
        let data = vec![1.0f32; 12];
        let v = TensorView::from_slice(&data, &[3, 4]).unwrap();
        assert_eq!(v.strides(), &[4, 1]);
        assert!(v.is_contiguous());
        let (s, e) = v.byte_span().unwrap();
        assert_eq!(e - s, 48);
        assert_eq!(v.as_slice::<f32>("x").unwrap().len(), 12);
        assert!(v.as_slice::<i32>("x").is_err());
        assert!(matches!(
            TensorView::from_slice(&data, &[5, 4]),
            Err(ValidationError::Length { .. })
        ));
        assert!(matches!(
            TensorView::from_slice(&data, &[1, 1, 1, 1, 1, 1, 12]),
            Err(ValidationError::RankTooHigh { .. })
        ));
    }

    #[test]
    fn transposed_is_not_contiguous() {
        let data = [0.5f32; 6];
        // SAFETY: the strides address elements 0..6 of `data`, which outlives the view.
        let v = unsafe {
            TensorView::from_raw_parts(
                data.as_ptr().cast(),
                DType::F32,
                &[3, 2],
                Some(&[1, 3]),
                DeviceId::CPU,
            )
        }
        .unwrap();
        assert!(!v.is_contiguous());
        assert!(matches!(
            v.as_slice::<f32>("x"),
            Err(ValidationError::Strides { .. })
        ));
    }
}
