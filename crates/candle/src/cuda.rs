//! The CUDA path: candle's `CudaStorage` viewed in place, run by kernelyard's CUDA backend on
//! candle's own stream.
//!
//! - **Zero-copy.** Each operand's view points into its `CudaSlice` (the layout's start offset
//!   applied); the output is allocated with the operand's `CudaDevice` (uninitialised: every
//!   kernelyard kernel writes every element of its output) and handed to candle as a new
//!   `CudaStorage`.
//! - **Candle's stream.** The launch goes to `CudaDevice::cuda_stream()`, borrowed with
//!   [`Stream::from_raw`]: the stream candle queues this device's work on (for
//!   `Device::new_cuda`, the calling thread's per-thread default stream), so the launch is
//!   ordered after the work that produced the operands and before the work that reads the
//!   result, with no synchronisation.
//! - **cudarc's stream tracking.** The device pointers come from cudarc's `device_ptr` /
//!   `device_ptr_mut`, which make the stream wait for pending writes (and, for the output,
//!   reads) of the slice on other streams, and return a guard that records the slice's
//!   read/write event when dropped. The guards are held until the launch is queued, then
//!   dropped: events are recorded after the kernel, exactly as for candle's own kernels. None of
//!   this waits on the host.
//! - **No fallback.** A kernelyard error (no CUDA kernel can run the problem, with the
//!   selection report; the backend unavailable) is returned as the call's error; the tensors
//!   are never moved to the CPU.

use std::ffi::c_void;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr, SyncOnDrop,
};
use candle_core::cuda_backend::CudaStorageSlice;
use candle_core::{CudaDevice, CudaStorage, Layout, Shape};
use kernelyard::{DType, DeviceId, Stream};

use crate::error::Error;
use crate::operand::{self, Base, Input, ViewSpec};
use crate::ops::{KyInplace2, KyOp};

/// A device pointer of an operand with cudarc's guard (keep it until the launch is queued).
struct Ptr<'a> {
    base: Base,
    _guard: SyncOnDrop<'a>,
}

fn ptr_of<'a, T>(s: &'a CudaSlice<T>, stream: &'a CudaStream, device: DeviceId) -> Ptr<'a> {
    let (addr, guard) = s.device_ptr(stream);
    Ptr {
        base: Base {
            addr,
            len: s.len(),
            elem: std::mem::size_of::<T>(),
            device,
        },
        _guard: guard,
    }
}

fn ptr_of_mut<'a, T>(s: &'a mut CudaSlice<T>, stream: &'a CudaStream, device: DeviceId) -> Ptr<'a> {
    let len = s.len();
    let (addr, guard) = s.device_ptr_mut(stream);
    Ptr {
        base: Base {
            addr,
            len,
            elem: std::mem::size_of::<T>(),
            device,
        },
        _guard: guard,
    }
}

/// The device pointer of a storage, for reading, ordered on `stream`.
fn read_ptr<'a>(s: &'a CudaStorage, stream: &'a CudaStream, device: DeviceId) -> Ptr<'a> {
    match &s.slice {
        CudaStorageSlice::U8(v)
        | CudaStorageSlice::F6E2M3(v)
        | CudaStorageSlice::F6E3M2(v)
        | CudaStorageSlice::F4(v)
        | CudaStorageSlice::F8E8M0(v) => ptr_of(v, stream, device),
        CudaStorageSlice::U32(v) => ptr_of(v, stream, device),
        CudaStorageSlice::I16(v) => ptr_of(v, stream, device),
        CudaStorageSlice::I32(v) => ptr_of(v, stream, device),
        CudaStorageSlice::I64(v) => ptr_of(v, stream, device),
        CudaStorageSlice::BF16(v) => ptr_of(v, stream, device),
        CudaStorageSlice::F16(v) => ptr_of(v, stream, device),
        CudaStorageSlice::F32(v) => ptr_of(v, stream, device),
        CudaStorageSlice::F64(v) => ptr_of(v, stream, device),
        CudaStorageSlice::F8E4M3(v) => ptr_of(v, stream, device),
    }
}

/// The device pointer of a storage, for writing, ordered on `stream`.
fn write_ptr<'a>(s: &'a mut CudaStorageSlice, stream: &'a CudaStream, device: DeviceId) -> Ptr<'a> {
    match s {
        CudaStorageSlice::U8(v)
        | CudaStorageSlice::F6E2M3(v)
        | CudaStorageSlice::F6E3M2(v)
        | CudaStorageSlice::F4(v)
        | CudaStorageSlice::F8E8M0(v) => ptr_of_mut(v, stream, device),
        CudaStorageSlice::U32(v) => ptr_of_mut(v, stream, device),
        CudaStorageSlice::I16(v) => ptr_of_mut(v, stream, device),
        CudaStorageSlice::I32(v) => ptr_of_mut(v, stream, device),
        CudaStorageSlice::I64(v) => ptr_of_mut(v, stream, device),
        CudaStorageSlice::BF16(v) => ptr_of_mut(v, stream, device),
        CudaStorageSlice::F16(v) => ptr_of_mut(v, stream, device),
        CudaStorageSlice::F32(v) => ptr_of_mut(v, stream, device),
        CudaStorageSlice::F64(v) => ptr_of_mut(v, stream, device),
        CudaStorageSlice::F8E4M3(v) => ptr_of_mut(v, stream, device),
    }
}

/// `n` uninitialised elements on `dev`'s stream, for an output.
fn uninit<T: DeviceRepr>(dev: &CudaDevice, n: usize) -> candle_core::Result<CudaSlice<T>> {
    // SAFETY: the memory is uninitialised; it is only handed to candle after the kernelyard
    // kernel, queued on this stream before any later work, has written every element (every
    // kernelyard operator writes all of its output), or dropped unread if the launch fails.
    unsafe { dev.alloc::<T>(n) }
}

/// A new, uninitialised output of `n` elements of a float dtype on `dev`.
fn alloc(
    op: &'static str,
    dev: &CudaDevice,
    dtype: DType,
    n: usize,
) -> candle_core::Result<CudaStorageSlice> {
    Ok(match dtype {
        DType::F32 => CudaStorageSlice::F32(uninit(dev, n)?),
        DType::F16 => CudaStorageSlice::F16(uninit(dev, n)?),
        DType::BF16 => CudaStorageSlice::BF16(uninit(dev, n)?),
        other => {
            return Err(Error::Shape {
                op,
                arg: "out",
                shape: vec![n],
                need: format!("an output of dtype {other} (kernelyard-candle writes floats)"),
            }
            .into_candle())
        }
    })
}

/// Candle's stream of `dev` as a kernelyard stream, and kernelyard's id of the device.
fn stream_of(stream: &CudaStream) -> (DeviceId, Stream) {
    let device = DeviceId::cuda(stream.context().ordinal() as u32);
    // SAFETY: `cu_stream()` is a live stream (or the per-thread / legacy default stream) of
    // the device's primary context, the context kernelyard binds for `device`; the caller
    // holds an `Arc` of the `CudaStream` for as long as kernelyard launches on it, and
    // kernelyard never destroys a borrowed stream.
    let s = unsafe { Stream::from_raw(device, stream.cu_stream() as *mut c_void) };
    (device, s)
}

/// Runs `op` on CUDA operands into a new storage, on the first operand's device stream.
pub(crate) fn run<const N: usize, O: KyOp<N>>(
    op: &O,
    ins: [(&CudaStorage, &Layout); N],
) -> candle_core::Result<(CudaStorage, Shape)> {
    let inputs = ins.map(|(s, l)| Input {
        dtype: s.dtype(),
        layout: l,
    });
    let plan = op.plan(inputs)?;
    let dev = &ins[0].0.device;
    let cu = dev.cuda_stream();
    let (device, stream) = stream_of(&cu);
    let mut out = alloc(O::NAME, dev, plan.out.dtype, plan.out.shape.elem_count())?;
    {
        let ptrs = ins.map(|(s, _)| read_ptr(s, &cu, device));
        let out_ptr = write_ptr(&mut out, &cu, device);
        let views = std::array::from_fn(|i| {
            // SAFETY: the storage is borrowed for this call; reads are ordered on `cu` after
            // its pending writes (`device_ptr`), and nothing else is queued on `cu` before
            // this launch.
            unsafe { operand::view(O::NAME, ptrs[i].base, ins[i].1, &plan.inputs[i]) }
        });
        let spec = ViewSpec::contiguous("out", plan.out.dtype, plan.out.view.clone());
        // SAFETY: `out` is a fresh allocation only this view addresses until it is handed to
        // candle below.
        let out_view = unsafe { operand::view_mut(O::NAME, out_ptr.base, 0, &spec) }?;
        let mut args = op.args(&plan, views, out_view)?;
        crate::launch(O::NAME, op.policy(), &stream, &mut args)?;
        // `args`, then the guards (`ptrs`, `out_ptr`) drop here, after the launch is queued:
        // the slices' events record the kernel.
    }
    let storage = CudaStorage {
        slice: out,
        device: dev.clone(),
    };
    Ok((storage, plan.out.shape))
}

/// Runs the in-place `op` on the CUDA operand `dst` (read and written) with `src`.
pub(crate) fn run_inplace2<O: KyInplace2>(
    op: &O,
    dst: (&mut CudaStorage, &Layout),
    src: (&CudaStorage, &Layout),
) -> candle_core::Result<()> {
    let (dst, dst_l) = dst;
    let (src, src_l) = src;
    let [dst_spec, src_spec] = op.plan([
        Input {
            dtype: dst.dtype(),
            layout: dst_l,
        },
        Input {
            dtype: src.dtype(),
            layout: src_l,
        },
    ])?;
    let cu = dst.device.cuda_stream();
    let (device, stream) = stream_of(&cu);
    let src_ptr = read_ptr(src, &cu, device);
    let dst_ptr = write_ptr(&mut dst.slice, &cu, device);
    // SAFETY: `dst` is borrowed mutably for this call; the stream waits for its pending reads
    // and writes (`device_ptr_mut`).
    let dst_view =
        unsafe { operand::view_mut(O::NAME, dst_ptr.base, dst_l.start_offset(), &dst_spec) }?;
    // SAFETY: `src` is borrowed for this call (candle checked it is not `dst`'s storage);
    // reads are ordered after its pending writes.
    let src_view = unsafe { operand::view(O::NAME, src_ptr.base, src_l, &src_spec) };
    let mut args = op.args(dst_view, src_view)?;
    crate::launch(O::NAME, op.policy(), &stream, &mut args)
}

/// Releases what kernelyard keeps for `dev`'s stream (today the workspace of
/// `cuda.gemm.cublaslt` and of token_logprobs' split rows, 32 MiB, kept per stream for the life
/// of the process). Call it before dropping the last handle of a device made with `candle_core::CudaDevice::new_with_stream`
/// on which `ky_matmul` ran, if the program makes many such devices. candle's default devices
/// (`Device::new_cuda`) use the calling thread's per-thread default stream: call it from a
/// thread that is about to end, if the program starts many short-lived threads that multiply.
pub fn release_stream(dev: &CudaDevice) -> Result<(), Error> {
    let cu = dev.cuda_stream();
    let (_, stream) = stream_of(&cu);
    // SAFETY: `cu` (an `Arc` held until the end of this function) keeps the stream alive.
    unsafe { kernelyard::cuda::release_stream(&stream) }.map_err(|source| Error::Kernelyard {
        op: "release_stream",
        source,
    })
}
