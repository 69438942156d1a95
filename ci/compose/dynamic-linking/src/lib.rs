//! Next to candle-core 0.11 with its `cuda` feature: cudarc with candle's exact features
//! (`dynamic-linking`: the libraries are linked in, and cudarc's `is_culib_present` does not exist).

/// The bindings cudarc was built with, as kernelyard-cuda reads them.
pub const BINDINGS: kernelyard::Version = kernelyard::cuda::libs::BINDINGS;

/// One cudarc in the graph: a framework's `CUstream` is the type kernelyard borrows.
///
/// # Safety
/// As [`kernelyard::Stream::from_raw`].
pub unsafe fn borrow(stream: cudarc::driver::sys::CUstream) -> kernelyard::Stream {
    // SAFETY: the caller's promise.
    unsafe { kernelyard::Stream::from_raw(kernelyard::DeviceId::cuda(0), stream.cast()) }
}
