//! `rocm.token_logprobs`: log p(target) (and the entropy) per row of logits, from the CUDA
//! backend's source and launch sequence (`kernelyard_kernels::token_logprobs`). What is ROCm's
//! own is device memory per launch: the checked mode's slot (eight bytes where the check kernel
//! records the first row whose target is out of range), and for split rows the partial states
//! and the rows' arrival counters (zeroed at allocation; the split kernel's last CTA of each row
//! sets its counter back to zero, which matters between passes).

use kernelyard_core::ops::token_logprobs::{TokenLogprobs, TokenLogprobsProblem};
use kernelyard_core::{Capabilities, KernelDef, Reason};

use super::{checked, rocm_meta, ANY_GFX};

/// The `rocm.token_logprobs` kernel.
pub static TOKEN_LOGPROBS: KernelDef<TokenLogprobs> = KernelDef::<TokenLogprobs>::new(
    rocm_meta::<TokenLogprobs>(
        "rocm.token_logprobs",
        ANY_GFX,
        module_path!(),
        "log-probability of each row's target and the entropy, one pass over the logits \
         (kernels/token_logprobs.cu via hiprtc)",
    ),
    slot::launch,
)
.with_check(check);
kernelyard_core::register!(TOKEN_LOGPROBS);

fn check(caps: &Capabilities, p: &TokenLogprobsProblem, reasons: &mut Vec<Reason>) {
    checked(caps, p, reasons, kernelyard_kernels::token_logprobs::check);
}

/// Without the `hip` feature there is no device memory for the slot, and nothing launches.
#[cfg(not(feature = "hip"))]
mod slot {
    use kernelyard_core::ops::token_logprobs::{TokenLogprobsArgs, TokenLogprobsProblem};
    use kernelyard_core::{Error, LaunchCtx};

    pub(super) fn launch(
        ctx: &LaunchCtx<'_>,
        _: &mut TokenLogprobsArgs<'_>,
        _: &TokenLogprobsProblem,
    ) -> Result<(), Error> {
        Err(super::super::not_compiled_in(ctx))
    }
}

/// The checked mode's slot, and the launch.
#[cfg(feature = "hip")]
mod slot {
    use std::ffi::c_void;

    use hip_sys::hiprt::hipStream_t;
    use kernelyard_core::ops::token_logprobs::{TokenLogprobsArgs, TokenLogprobsProblem};
    use kernelyard_core::{DType, DeviceId, Error, LaunchCtx, Stream};

    use crate::device::{bind, hip_api};
    use crate::error::check;
    use crate::hip::{self, Hip};
    use crate::launch::HipLauncher;
    use kernelyard_kernels::token_logprobs;

    /// The most scratch a launch allocates for the split path's partial states (rows beyond
    /// it run in passes), as the CUDA backend's stream workspace.
    const MAX_SCRATCH_BYTES: usize = 32 << 20;

    /// The most arrival counters a launch allocates for the split path (rows beyond them run
    /// in passes), as the CUDA backend's per stream.
    const MAX_COUNTERS: usize = 1 << 16;

    /// Device memory of one launch: the checked mode's slot for the first bad row (8 bytes), or
    /// the split path's partial states or arrival counters; freed on drop after the stream has
    /// finished with it.
    struct DeviceBuf {
        hip: &'static Hip,
        device: DeviceId,
        stream: hipStream_t,
        ptr: *mut c_void,
    }

    impl DeviceBuf {
        /// Allocates `bytes` (at least 1) and, with `fill`, queues setting every byte to it.
        fn new(stream: &Stream, bytes: usize, fill: Option<u8>) -> Result<Self, Error> {
            let device = stream.device();
            bind(device)?;
            let h = hip_api()?;
            let bytes = bytes.max(1);
            let mut ptr: *mut c_void = std::ptr::null_mut();
            // SAFETY: valid out-pointer; the device is current.
            check(h, "hipMalloc", unsafe {
                (h.api.hipMalloc)(&mut ptr, bytes)
            })?;
            let buf = DeviceBuf {
                hip: h,
                device,
                stream: stream.raw() as hipStream_t,
                ptr,
            };
            if let Some(fill) = fill {
                // SAFETY: `ptr` holds `bytes` bytes; the stream is a live stream of the device.
                check(h, "hipMemsetAsync", unsafe {
                    (h.api.hipMemsetAsync)(buf.ptr, i32::from(fill), bytes, buf.stream)
                })?;
            }
            Ok(buf)
        }

        /// The checked mode's slot, set to `u64::MAX` ("no bad row").
        fn slot(stream: &Stream) -> Result<Self, Error> {
            DeviceBuf::new(stream, 8, Some(0xff))
        }

        /// Waits for the stream and reads the slot: the first bad row, if any.
        fn read(&self) -> Result<Option<usize>, Error> {
            bind(self.device)?;
            let h = self.hip;
            // SAFETY: the stream is a live stream of the bound device.
            check(h, "hipStreamSynchronize", unsafe {
                (h.api.hipStreamSynchronize)(self.stream)
            })?;
            let row = read_u64(h, self.ptr)?;
            Ok((row != u64::MAX).then_some(row as usize))
        }
    }

    impl Drop for DeviceBuf {
        fn drop(&mut self) {
            if bind(self.device).is_ok() {
                // SAFETY: once the stream has drained no kernel uses the buffer, which was
                // allocated by `new` and is freed once. On failure it leaks.
                unsafe {
                    let _ = (self.hip.api.hipStreamSynchronize)(self.stream);
                    let _ = (self.hip.api.hipFree)(self.ptr);
                }
            }
        }
    }

    /// Reads 8 bytes of device memory at `at` (synchronously).
    fn read_u64(h: &Hip, at: *const c_void) -> Result<u64, Error> {
        let mut v = [0u8; 8];
        // SAFETY: the caller guarantees 8 readable bytes of device memory at `at`, no longer
        // written by queued work.
        check(h, "hipMemcpy(DtoH)", unsafe {
            (h.api.hipMemcpy)(v.as_mut_ptr().cast(), at, 8, hip::MEMCPY_DTOH)
        })?;
        Ok(u64::from_le_bytes(v))
    }

    /// Reads target `row` (the value the error reports).
    fn read_target(
        h: &Hip,
        targets: *const c_void,
        dtype: DType,
        row: usize,
    ) -> Result<i64, Error> {
        let size = dtype.size();
        let mut v = [0u8; 8];
        // SAFETY: `row < tokens` (the kernel only records rows it read) and core validated the
        // targets view: `[tokens]` contiguous elements of `dtype` (4 or 8 bytes) on the bound
        // device.
        check(h, "hipMemcpy(DtoH)", unsafe {
            (h.api.hipMemcpy)(
                v.as_mut_ptr().cast(),
                targets.cast::<u8>().wrapping_add(row * size).cast(),
                size,
                hip::MEMCPY_DTOH,
            )
        })?;
        Ok(if dtype == DType::I32 {
            i64::from(i32::from_le_bytes([v[0], v[1], v[2], v[3]]))
        } else {
            i64::from_le_bytes(v)
        })
    }

    pub(super) fn launch(
        ctx: &LaunchCtx<'_>,
        a: &mut TokenLogprobsArgs<'_>,
        p: &TokenLogprobsProblem,
    ) -> Result<(), Error> {
        let slot = if a.checked {
            Some(DeviceBuf::slot(ctx.stream)?)
        } else {
            None
        };
        let bad = slot.as_ref().map_or(std::ptr::null_mut(), |s| s.ptr);
        // The split path's partial states: allocated per launch (and waited for when dropped,
        // so this path synchronises the stream; the CUDA backend keeps a workspace per stream).
        let bytes = token_logprobs::scratch_bytes(p).min(MAX_SCRATCH_BYTES);
        let part = (bytes > 0)
            .then(|| DeviceBuf::new(ctx.stream, bytes, None))
            .transpose()?;
        // The rows' arrival counters, zeroed before the kernel on the stream (the split kernel
        // leaves them at zero, so one memset serves every pass).
        let ncount = token_logprobs::counters_needed(p).min(MAX_COUNTERS);
        let count = (ncount > 0)
            .then(|| DeviceBuf::new(ctx.stream, ncount * 4, Some(0)))
            .transpose()?;
        let mem = match (&part, &count) {
            (Some(part), Some(count)) => token_logprobs::SplitMem {
                scratch: token_logprobs::Scratch {
                    ptr: part.ptr,
                    bytes,
                },
                counters: token_logprobs::Counters {
                    ptr: count.ptr,
                    len: ncount,
                },
            },
            _ => token_logprobs::SplitMem::NONE,
        };
        let targets = a.targets.as_ptr();
        let gpu = HipLauncher::new(ctx.caps);
        // SAFETY: `bad` is null or the slot's 8 bytes of device memory on the stream's device,
        // and `mem` none or `bytes` bytes of it and `ncount` counters, zeroed on the stream
        // before the launch, which live until `slot`, `part` and `count` drop after the stream
        // has drained; nothing else uses them.
        unsafe { token_logprobs::launch(&gpu, ctx.stream, ctx.caps, a, p, bad, mem)? };
        if let Some(slot) = slot {
            if let Some(row) = slot.read()? {
                let target = read_target(slot.hip, targets, p.target_dtype, row)?;
                return Err(Error::TargetOutOfRange {
                    row,
                    target,
                    vocab: p.vocab,
                });
            }
        }
        Ok(())
    }
}
