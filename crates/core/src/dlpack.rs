//! DLPack: tensors handed between kernelyard and any framework (PyTorch, JAX, CuPy, candle, a C
//! caller) without a copy. Built on the [`dlpark`] crate (DLPack 1.x
//! `DLManagedTensorVersioned`; the legacy `DLManagedTensor` is taken on import too). Behind
//! the `dlpack` cargo feature.
//!
//! # Who owns the memory
//! - **Import.** The producer owns the memory. A [`Managed`] handle (dlpark's owner of one
//!   managed tensor, versioned or legacy) calls the producer's deleter exactly once, when it is
//!   dropped. [`import_view`] and [`import_view_mut`] return views that *borrow* the handle, so
//!   the borrow checker keeps every view inside the handle's life: the deleter cannot run while
//!   a view lives, and a writable view borrows the handle exclusively. Kernelyard never frees
//!   or copies the data. The import functions are `unsafe` because DLPack carries no
//!   allocation bounds and the producer may still hold its own tensor: the caller vouches for
//!   the data (the contract on [`import_view`], the one of [`TensorView::from_raw_parts`]).
//! - **Export.** [`export`] / [`export_mut`] wrap a view into a managed tensor that *borrows*
//!   the view's memory: the result, an [`Exported<'a>`], carries the view's lifetime, so in
//!   Rust it cannot outlive the memory. Shape and strides are copied into the managed tensor's
//!   own allocation; the deleter frees that allocation and nothing else. Handing it to code the
//!   borrow checker cannot see (a C consumer, a Python capsule) goes through the `unsafe`
//!   [`Exported::into_raw`], whose contract is that the consumer is done before `'a` ends.
//!   [`export_owning`] / [`export_owning_mut`] instead move the memory's owner (a `Vec`, a
//!   device buffer) into the managed tensor; the deleter drops it; the result is
//!   `Exported<'static>`, which [`Exported::into_managed`] hands over safely.
//!
//! # What is taken, what is refused (a typed [`DlpackError`] each)
//! - Devices: `kDLCPU` is [`DeviceId::CPU`] (its `device_id` is ignored: there is one host);
//!   `kDLCUDA` is `cuda:<device_id>`, `kDLROCM` is `rocm:<device_id>`. Everything else is
//!   refused with [`DlpackError::UnsupportedDevice`], naming the device type: pinned host memory
//!   (`kDLCUDAHost`, `kDLROCMHost`), OpenCL, Vulkan, Metal, oneAPI, WebGPU, ... and
//!   `kDLCUDAManaged`: unified memory names no device (its `device_id` is 0 by convention), and
//!   kernelyard never picks a device for the caller; a caller who knows where the kernels run
//!   views it with [`TensorView::from_raw_parts`] and that device.
//! - Dtypes: the inverse of [`DType::dlpack`]: float32, float16, bfloat16, int32, int64, and
//!   DLPack 1.1's `kDLFloat8_e4m3fn` (code 10) and `kDLFloat8_e5m2` (code 12), 8 bits, as
//!   [`DType::F8E4M3`] and [`DType::F8E5M2`]; `kDLFloat8_e8m0fnu` (code 14), 8 bits, as
//!   [`DType::F8E8M0`]; all one lane. `kDLFloat4_e2m1fn` (code 17) is taken as PyTorch exports
//!   its `float4_e2m1fn_x2`: 4 bits, **2 lanes**, as [`DType::F4E2M1X2`] (one element per byte,
//!   the shape counting bytes; the first value in the low nibble). dlpark 0.10 names these codes
//!   (`DLDataTypeCode::FLOAT8_E4M3FN`, `FLOAT8_E5M2`, `FLOAT8_E8M0FNU`, `FLOAT4_E2M1FN`); the
//!   mapping goes through the raw code, as for every dtype. Anything else (float64, int8,
//!   uint*, bool, complex, other lane counts, a one-lane fp4 (unpacked nibbles have no
//!   producer we know of), and the other 8/6-bit codes: `kDLFloat8_e4m3` (8, the IEEE-like e4m3
//!   with infinities, which dlpark's candle interop uses for candle's `F8E4M3`), the `fnuz`
//!   variants, e3m4, fp6) is [`DlpackError::UnsupportedDType`].
//! - Layout: the byte offset is added to the data pointer; strides are in elements; NULL
//!   strides mean row-major contiguous (legacy and pre-1.2 producers; DLPack 1.2 forbids them
//!   for `ndim > 0`, and they are still taken, since they can mean nothing else). Negative
//!   dimensions, a negative `ndim`, NULL shape, or sizes that overflow are
//!   [`DlpackError::Descriptor`]; more than [`MAX_RANK`] dimensions, or strides whose byte span
//!   overflows, are core's own [`ValidationError`]s. Negative strides are imported as they are
//!   (a [`TensorView`] can describe them) and refused, like any other layout an operator does
//!   not take, by the operator's validation.
//! - The read-only flag (`DLPACK_FLAG_BITMASK_READ_ONLY`, versioned tensors only) refuses
//!   [`import_view_mut`] with [`DlpackError::ReadOnly`]; [`import_view`] takes it.
//!   [`export`] sets it (a [`TensorView`] is a shared borrow); [`export_mut`] does not.
//!
//! # Streams
//! DLPack's Python protocol synchronises in `__dlpack__(stream=...)`, before a managed tensor
//! exists; this module works after that point. As for any view, the caller makes the data ready
//! on the stream kernelyard launches on (e.g. passes the consumer stream to `__dlpack__`, or
//! launches on the producer's stream) and keeps it alive until that work is done.

use std::ffi::c_void;
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::ptr::NonNull;

pub use dlpark;
use dlpark::ffi::{
    DLDataType, DLDataTypeCode, DLDevice, DLDeviceType, DLManagedTensorVersioned, DLTensor,
};
use dlpark::metadata::Dynamic;
use dlpark::tensor::TensorRef;
use dlpark::{DlpackFlags, Managed, ManagedTensorBase, OpaqueContext};

use crate::device::{DeviceId, DeviceKind};
use crate::dtype::DType;
use crate::error::ValidationError;
use crate::tensor::{TensorView, TensorViewMut, MAX_RANK};

/// A managed tensor of DLPack 1.x (`DLManagedTensorVersioned`), owned: drops call its deleter.
pub type ManagedVersioned = Managed<DLManagedTensorVersioned>;
/// A managed tensor of the legacy ABI (`DLManagedTensor`), owned: drops call its deleter.
pub type ManagedLegacy = Managed<dlpark::ffi::DLManagedTensor>;

/// Why a DLPack tensor cannot be imported or a view cannot be exported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DlpackError {
    /// The tensor lives on a device kernelyard does not run on.
    #[error("DLPack device {} (DLDeviceType {device_type}, device_id {device_id}) is not one kernelyard takes: {}", device_type_name(*device_type), device_hint(*device_type))]
    UnsupportedDevice {
        /// The `DLDeviceType` code.
        device_type: u32,
        /// The `device_id`.
        device_id: i32,
    },
    /// A GPU tensor's `device_id` is negative.
    #[error("DLPack device {} has device_id {device_id}; a GPU ordinal is 0 or more (the producer broke the DLPack contract)", device_type_name(*device_type))]
    DeviceId {
        /// The `DLDeviceType` code.
        device_type: u32,
        /// The `device_id`.
        device_id: i32,
    },
    /// A view's device index does not fit DLPack's `int32_t device_id`.
    #[error("{device} cannot be exported: DLPack's device_id is an int32")]
    ExportDevice {
        /// The view's device.
        device: DeviceId,
    },
    /// The element type is not one of kernelyard's.
    #[error("DLPack dtype {} (code {code}, {bits} bits, {lanes} lanes) is not one kernelyard takes; it takes {}: convert the tensor first", dtype_name(*code, *bits, *lanes), supported_dtypes())]
    UnsupportedDType {
        /// The `DLDataTypeCode`.
        code: u8,
        /// Bits per lane.
        bits: u8,
        /// Lanes per element.
        lanes: u16,
    },
    /// A writable view was asked of a tensor the producer marked read-only.
    #[error("the DLPack tensor is read-only (DLPACK_FLAG_BITMASK_READ_ONLY): import it with `import_view`, or have the producer export a writable tensor")]
    ReadOnly,
    /// The data pointer plus the byte offset leaves the address space.
    #[error("DLPack data pointer {data:#x} plus byte_offset {byte_offset} overflows the address space (the producer broke the DLPack contract)")]
    ByteOffset {
        /// The base data pointer.
        data: usize,
        /// The byte offset.
        byte_offset: u64,
    },
    /// The descriptor is malformed: negative `ndim` or dimension, NULL shape, an element count
    /// that overflows, a non-empty tensor with a NULL data pointer.
    #[error("malformed DLPack tensor: {0} (the producer broke the DLPack contract)")]
    Descriptor(#[from] dlpark::tensor::Error),
    /// A view's shape or strides do not fit DLPack's `int64_t` (export).
    #[error("the view cannot be exported: {0}")]
    Metadata(#[from] dlpark::metadata::Error),
    /// Core's view validation refused the layout (more than [`MAX_RANK`] dimensions, a byte
    /// span that overflows).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

/// DLPack's name for a `DLDeviceType` code.
pub fn device_type_name(code: u32) -> &'static str {
    match code {
        1 => "kDLCPU",
        2 => "kDLCUDA",
        3 => "kDLCUDAHost",
        4 => "kDLOpenCL",
        7 => "kDLVulkan",
        8 => "kDLMetal",
        9 => "kDLVPI",
        10 => "kDLROCM",
        11 => "kDLROCMHost",
        12 => "kDLExtDev",
        13 => "kDLCUDAManaged",
        14 => "kDLOneAPI",
        15 => "kDLWebGPU",
        16 => "kDLHexagon",
        17 => "kDLMAIA",
        18 => "kDLTrn",
        _ => "unknown to DLPack 1.3",
    }
}

fn device_hint(code: u32) -> &'static str {
    match code {
        3 | 11 => "pinned host memory is refused rather than guessed as cpu or as a GPU; copy it to a CPU or GPU tensor, or view it with TensorView::from_raw_parts naming the device that reads it",
        13 => "CUDA unified memory names no device, and kernelyard does not pick one; export it as kDLCUDA of the device the kernels run on, or view it with TensorView::from_raw_parts and DeviceId::cuda(n)",
        _ => "kernelyard runs on kDLCPU, kDLCUDA and kDLROCM tensors; copy it to one of those first",
    }
}

/// DLPack's name for a dtype (`float64`, `uint8`, `bool`, `float8_e4m3fn`, `float32x4`).
pub fn dtype_name(code: u8, bits: u8, lanes: u16) -> String {
    let mut s = match code {
        0 => format!("int{bits}"),
        1 => format!("uint{bits}"),
        2 => format!("float{bits}"),
        3 => format!("opaque_handle{bits}"),
        4 => format!("bfloat{bits}"),
        5 => format!("complex{bits}"),
        6 if bits == 8 => "bool".to_string(),
        6 => format!("bool{bits}"),
        7 => "float8_e3m4".to_string(),
        8 => "float8_e4m3".to_string(),
        9 => "float8_e4m3b11fnuz".to_string(),
        10 => "float8_e4m3fn".to_string(),
        11 => "float8_e4m3fnuz".to_string(),
        12 => "float8_e5m2".to_string(),
        13 => "float8_e5m2fnuz".to_string(),
        14 => "float8_e8m0fnu".to_string(),
        15 => "float6_e2m3fn".to_string(),
        16 => "float6_e3m2fn".to_string(),
        17 => "float4_e2m1fn".to_string(),
        _ => format!("code{code}_{bits}bit"),
    };
    if lanes != 1 {
        let _ = write!(s, "x{lanes}");
    }
    s
}

fn supported_dtypes() -> String {
    DType::ALL
        .iter()
        .map(|d| {
            let (code, bits, lanes) = d.dlpack();
            dtype_name(code, bits, lanes)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The kernelyard dtype of a DLPack dtype: the inverse of [`DType::dlpack`].
pub fn dtype_from_dlpack(dtype: DLDataType) -> Result<DType, DlpackError> {
    DType::ALL
        .into_iter()
        .find(|d| d.dlpack() == (dtype.code.0, dtype.bits, dtype.lanes))
        .ok_or(DlpackError::UnsupportedDType {
            code: dtype.code.0,
            bits: dtype.bits,
            lanes: dtype.lanes,
        })
}

/// The DLPack dtype of a kernelyard dtype.
pub fn dtype_to_dlpack(dtype: DType) -> DLDataType {
    let (code, bits, lanes) = dtype.dlpack();
    DLDataType::new(DLDataTypeCode(code), bits, lanes)
}

/// The kernelyard device of a DLPack device: the inverse of [`DeviceKind::dlpack`] (see the
/// module docs for what is refused).
pub fn device_from_dlpack(device: DLDevice) -> Result<DeviceId, DlpackError> {
    let (device_type, device_id) = (device.device_type.0, device.device_id);
    let kind = DeviceKind::ALL
        .into_iter()
        .find(|k| u32::try_from(k.dlpack()) == Ok(device_type))
        .ok_or(DlpackError::UnsupportedDevice {
            device_type,
            device_id,
        })?;
    if kind == DeviceKind::Cpu {
        return Ok(DeviceId::CPU);
    }
    let index = u32::try_from(device_id).map_err(|_| DlpackError::DeviceId {
        device_type,
        device_id,
    })?;
    Ok(DeviceId::new(kind, index))
}

/// The DLPack device of a kernelyard device.
pub fn device_to_dlpack(device: DeviceId) -> Result<DLDevice, DlpackError> {
    let device_id =
        i32::try_from(device.index).map_err(|_| DlpackError::ExportDevice { device })?;
    let device_type =
        u32::try_from(device.kind.dlpack()).map_err(|_| DlpackError::ExportDevice { device })?;
    Ok(DLDevice {
        device_type: DLDeviceType(device_type),
        device_id,
    })
}

/// What an import reads from a descriptor, checked.
struct Imported {
    ptr: *mut u8,
    dtype: DType,
    device: DeviceId,
    rank: usize,
    shape: [usize; MAX_RANK],
    strides: [isize; MAX_RANK],
    explicit_strides: bool,
}

fn read<M: ManagedTensorBase>(managed: &Managed<M>) -> Result<Imported, DlpackError> {
    // SAFETY: a `Managed` keeps its descriptor, and the shape and strides arrays it points to,
    // readable and unchanged while it lives (the contract of `Managed::from_raw`, or of
    // `finish` for a local producer); `managed` is borrowed for the whole use of `raw`.
    let raw: &DLTensor = unsafe { managed.tensor() };
    // Device and dtype first: they need no pointer and give the most useful error.
    let device = device_from_dlpack(raw.device)?;
    let dtype = dtype_from_dlpack(raw.dtype)?;
    let rank = usize::try_from(raw.ndim)
        .map_err(|_| dlpark::tensor::Error::NegativeNdim { ndim: raw.ndim })?;
    if rank > MAX_RANK {
        return Err(ValidationError::RankTooHigh {
            got: rank,
            max: MAX_RANK,
        }
        .into());
    }
    // SAFETY: as above: the descriptor and its arrays stay readable while `managed` is
    // borrowed; `from_raw` checks NULL shape, negative dimensions and overflowing sizes.
    let t = unsafe { TensorRef::from_raw(raw) }?;
    let mut shape = [0usize; MAX_RANK];
    for (d, &s) in shape.iter_mut().zip(t.shape()) {
        // `from_raw` refused negative dimensions and element counts above `usize::MAX`.
        *d = usize::try_from(s).map_err(|_| dlpark::tensor::Error::NumElementsOverflow)?;
    }
    let mut strides = [0isize; MAX_RANK];
    let explicit_strides = match t.strides() {
        Some(given) => {
            for (d, &s) in strides.iter_mut().zip(given) {
                *d = isize::try_from(s).map_err(|_| ValidationError::Overflow {
                    arg: "dlpack",
                    what: format!("stride {s}"),
                })?;
            }
            true
        }
        None => false,
    };
    let base = raw.data.cast::<u8>();
    let ptr = if base.is_null() {
        if t.num_elements() != 0 {
            return Err(dlpark::tensor::Error::NullData.into());
        }
        base
    } else {
        let offset = usize::try_from(raw.byte_offset)
            .ok()
            .filter(|&o| base.addr().checked_add(o).is_some())
            .ok_or(DlpackError::ByteOffset {
                data: base.addr(),
                byte_offset: raw.byte_offset,
            })?;
        // `wrapping_add` keeps the pointer's provenance and is never undefined; the checked
        // sum above means it does not wrap.
        base.wrapping_add(offset)
    };
    Ok(Imported {
        ptr,
        dtype,
        device,
        rank,
        shape,
        strides,
        explicit_strides,
    })
}

impl Imported {
    fn strides(&self) -> Option<&[isize]> {
        self.explicit_strides.then_some(&self.strides[..self.rank])
    }
}

fn spans(view: &TensorView<'_>) -> Result<(), DlpackError> {
    match view.byte_span() {
        Some(_) => Ok(()),
        None => Err(ValidationError::Overflow {
            arg: "dlpack",
            what: format!(
                "the byte span of shape {:?} with strides {:?}",
                view.shape(),
                view.strides()
            ),
        }
        .into()),
    }
}

/// A read-only view of a DLPack tensor, borrowing its handle (versioned or legacy).
///
/// The view cannot outlive `managed`, whose drop runs the producer's deleter. Read-only
/// tensors are taken. See the module docs for the device, dtype and layout mapping.
///
/// # Safety
/// The producer's DLPack promise, which the handle cannot check: every element the shape,
/// strides and byte offset address lies in one live allocation on the tensor's device and
/// holds values of its dtype, until the deleter runs. And, as for
/// [`TensorView::from_raw_parts`]: nobody writes those elements while a kernel reads them
/// (work queued on other streams included), and for host memory nobody writes them at all
/// while the view lives (the producer's own tensor included), since
/// [`TensorView::as_slice`] hands out `&[T]`.
pub unsafe fn import_view<M: ManagedTensorBase>(
    managed: &Managed<M>,
) -> Result<TensorView<'_>, DlpackError> {
    let t = read(managed)?;
    // SAFETY: the caller's promise above is `from_raw_parts`' for the lifetime of the borrow
    // of `managed` (the deleter cannot run before it ends); shape and strides were read from
    // the descriptor and checked.
    let view = unsafe {
        TensorView::from_raw_parts(
            t.ptr.cast_const().cast(),
            t.dtype,
            &t.shape[..t.rank],
            t.strides(),
            t.device,
        )
    }?;
    spans(&view)?;
    Ok(view)
}

/// A writable view of a DLPack tensor, borrowing its handle exclusively.
///
/// Refused with [`DlpackError::ReadOnly`] if the producer set `DLPACK_FLAG_BITMASK_READ_ONLY`
/// (legacy tensors carry no flags and are taken).
///
/// # Safety
/// As for [`import_view`], and as for [`TensorViewMut::from_raw_parts`]: nobody else reads or
/// writes the addressed elements while a kernel writes them, and for host memory nobody else
/// touches them at all while the view lives (no other view, slice, reference, another import
/// of the same tensor, or the producer's own tensor), since [`TensorViewMut::as_mut_slice`]
/// hands out `&mut [T]`.
pub unsafe fn import_view_mut<M: ManagedTensorBase>(
    managed: &mut Managed<M>,
) -> Result<TensorViewMut<'_>, DlpackError> {
    if managed.flags().contains(DlpackFlags::READ_ONLY) {
        return Err(DlpackError::ReadOnly);
    }
    let t = read(managed)?;
    // SAFETY: the caller's promise above is `from_raw_parts`' for the lifetime of the
    // exclusive borrow of `managed`; the producer did not mark the tensor read-only.
    let view = unsafe {
        TensorViewMut::from_raw_parts(
            t.ptr.cast(),
            t.dtype,
            &t.shape[..t.rank],
            t.strides(),
            t.device,
        )
    }?;
    spans(&view.as_view())?;
    Ok(view)
}

/// A DLPack 1.x managed tensor made from a kernelyard view, valid for `'a`.
///
/// Dropping it calls its deleter (which frees the copied shape and strides, and for
/// [`export_owning`] drops the owner). [`Exported::managed`] lends it to Rust consumers;
/// [`Exported::into_raw`] hands it to C or Python.
pub struct Exported<'a> {
    managed: ManagedVersioned,
    _borrow: PhantomData<&'a [u8]>,
}

impl<'a> Exported<'a> {
    /// The managed tensor, borrowed: a Rust consumer reads it (or imports it with
    /// [`import_view`]) for no longer than this export lives.
    pub fn managed(&self) -> &ManagedVersioned {
        &self.managed
    }

    /// The `DLManagedTensorVersioned`, still owned by this export.
    pub fn as_ptr(&self) -> *mut DLManagedTensorVersioned {
        self.managed.as_ptr()
    }

    /// True if the export carries `DLPACK_FLAG_BITMASK_READ_ONLY`.
    pub fn is_read_only(&self) -> bool {
        self.managed.flags().contains(DlpackFlags::READ_ONLY)
    }

    /// Hands the managed tensor to a consumer the borrow checker cannot see (C, a Python
    /// capsule), which then owns it and must call its deleter exactly once.
    ///
    /// # Safety
    /// The consumer stops using the data before `'a` ends (the memory's owner outlives every
    /// use, deleter call or not). For `Exported<'static>` this holds by itself; prefer
    /// [`Exported::into_managed`] then. The deleter may be called from any thread.
    pub unsafe fn into_raw(self) -> *mut DLManagedTensorVersioned {
        self.managed.into_raw()
    }
}

impl Exported<'static> {
    /// The owned managed tensor of an export that borrows nothing ([`export_owning`], or a
    /// view of `'static` memory), e.g. for dlpark's Python capsule support.
    pub fn into_managed(self) -> ManagedVersioned {
        self.managed
    }
}

impl std::fmt::Debug for Exported<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SAFETY: the descriptor was written by `build` and stays unchanged while `self` lives.
        let t = unsafe { self.managed.tensor() };
        f.debug_struct("Exported")
            .field("data", &t.data)
            .field("device", &t.device)
            .field("dtype", &t.dtype)
            .field("ndim", &t.ndim)
            .field("flags", &self.managed.flags())
            .finish()
    }
}

/// The owner of exported memory: a leaked box, freed when this drops, or by the managed
/// tensor's deleter once [`OpaqueContext::into_raw`] handed it over.
///
/// A raw pointer rather than a `Box`, so that views made from a borrow of the owner stay
/// valid when the handle moves into the managed tensor.
struct Owner<O>(NonNull<O>);

impl<O> Owner<O> {
    fn new(owner: O) -> Self {
        Owner(NonNull::from(Box::leak(Box::new(owner))))
    }
}

impl<O> Drop for Owner<O> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::leak` in `new`, and `into_raw` forgets `self`,
        // so this runs once and only while no managed tensor holds the box.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

// SAFETY: `into_raw` gives the pointer of a `Box<O>` (forgetting `self`, so it is not freed
// twice) and `drop_raw` rebuilds and drops that box once; `O: Send`, so dropping it on another
// thread (the deleter's) is allowed. A panic in `O`'s drop aborts (the deleter is
// `extern "C"`), it never unwinds into C.
unsafe impl<O: Send> OpaqueContext for Owner<O> {
    fn into_raw(self) -> *mut c_void {
        let raw = self.0.as_ptr().cast();
        std::mem::forget(self);
        raw
    }

    unsafe fn drop_raw(raw: *mut c_void) {
        if !raw.is_null() {
            // SAFETY: `raw` came from `into_raw`, i.e. from `Box::leak` in `new`, and the
            // deleter calls this once.
            drop(unsafe { Box::from_raw(raw.cast::<O>()) });
        }
    }
}

/// Makes the managed tensor. Nothing fails once `ctx` is installed: an error drops `ctx` as a
/// value (freeing an [`Owner`]), never through the deleter.
fn build<C: OpaqueContext>(
    ctx: C,
    data: *mut c_void,
    dtype: DType,
    shape: &[usize],
    strides: &[isize],
    device: DeviceId,
    read_only: bool,
) -> Result<ManagedVersioned, DlpackError> {
    let device = device_to_dlpack(device)?;
    let prepared = Dynamic::new(shape, strides).prepare()?;
    let mut init = prepared.initialize(ctx);
    init.set_data(data)
        .set_device(device)
        .set_dtype(dtype_to_dlpack(dtype))
        .set_byte_offset(0);
    if read_only {
        // SAFETY: READ_ONLY only restricts what the consumer may do; `IS_COPIED` (a claim
        // that the data is the consumer's alone) is not set.
        unsafe { init.set_flags_unchecked(DlpackFlags::READ_ONLY) };
    }
    // SAFETY: shape and strides are copied into the managed allocation (explicit strides, as
    // DLPack 1.2 wants); `data` stays valid for what the resulting `Exported<'a>` allows (the
    // view's borrow for `'a`, or the owner held by `ctx`, which the deleter drops); READ_ONLY
    // is set for shared views and unset only for exclusive ones; `IS_COPIED` is never set.
    Ok(unsafe { init.finish() })
}

/// A read-only DLPack tensor borrowing `view`'s memory for `'a` (`DLPACK_FLAG_BITMASK_READ_ONLY`
/// set, byte offset 0, explicit strides, version 1.x).
pub fn export(view: TensorView<'_>) -> Result<Exported<'_>, DlpackError> {
    let managed = build(
        Box::new(()),
        view.as_ptr().cast_mut(),
        view.dtype(),
        view.shape(),
        view.strides(),
        view.device(),
        true,
    )?;
    Ok(Exported {
        managed,
        _borrow: PhantomData,
    })
}

/// A writable DLPack tensor borrowing `view`'s memory (exclusively) for `'a`.
pub fn export_mut(mut view: TensorViewMut<'_>) -> Result<Exported<'_>, DlpackError> {
    let managed = build(
        Box::new(()),
        view.as_mut_ptr(),
        view.dtype(),
        view.shape(),
        view.strides(),
        view.device(),
        false,
    )?;
    Ok(Exported {
        managed,
        _borrow: PhantomData,
    })
}

/// What an export copies out of a view.
struct Parts {
    data: *mut c_void,
    dtype: DType,
    shape: Vec<usize>,
    strides: Vec<isize>,
    device: DeviceId,
}

impl Parts {
    fn of(view: &TensorView<'_>) -> Self {
        Parts {
            data: view.as_ptr().cast_mut(),
            dtype: view.dtype(),
            shape: view.shape().to_vec(),
            strides: view.strides().to_vec(),
            device: view.device(),
        }
    }

    fn build<O: Send>(
        self,
        owner: Owner<O>,
        read_only: bool,
    ) -> Result<Exported<'static>, DlpackError> {
        let managed = build(
            owner,
            self.data,
            self.dtype,
            &self.shape,
            &self.strides,
            self.device,
            read_only,
        )?;
        Ok(Exported {
            managed,
            _borrow: PhantomData,
        })
    }
}

/// A read-only DLPack tensor that owns its memory: `owner` (a `Vec`, a device buffer) moves
/// into the managed tensor and is dropped by its deleter; `view` describes the memory from a
/// borrow of the owner.
///
/// ```
/// use kernelyard_core::dlpack::export_owning;
/// use kernelyard_core::TensorView;
///
/// let exported = export_owning(vec![1.0f32; 6], |v| TensorView::from_slice(v, &[2, 3])).unwrap();
/// let managed = exported.into_managed(); // owns the Vec; a consumer calls the deleter
/// drop(managed);
/// ```
pub fn export_owning<O, F>(owner: O, view: F) -> Result<Exported<'static>, DlpackError>
where
    O: Send + 'static,
    F: for<'o> FnOnce(&'o O) -> Result<TensorView<'o>, ValidationError>,
{
    let owner = Owner::new(owner);
    // SAFETY: the box lives until `owner` drops or its deleter runs, both after this borrow
    // ends (the view is copied into `Parts` inside it); nothing writes it meanwhile.
    let parts = view(unsafe { owner.0.as_ref() }).map(|v| Parts::of(&v))?;
    parts.build(owner, true)
}

/// A writable DLPack tensor that owns its memory (see [`export_owning`]).
pub fn export_owning_mut<O, F>(owner: O, view: F) -> Result<Exported<'static>, DlpackError>
where
    O: Send + 'static,
    F: for<'o> FnOnce(&'o mut O) -> Result<TensorViewMut<'o>, ValidationError>,
{
    let mut owner = Owner::new(owner);
    // SAFETY: the box lives until `owner` drops or its deleter runs, both after this borrow
    // ends; nothing else reaches the box during it.
    let parts = view(unsafe { owner.0.as_mut() }).map(|mut v| {
        let mut p = Parts::of(&v.as_view());
        p.data = v.as_mut_ptr();
        p
    })?;
    parts.build(owner, false)
}
