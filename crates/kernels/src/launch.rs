//! What a launch is made of, independent of the runtime that performs it: the shape
//! ([`Dims`]), the parameter list ([`params!`](crate::params)) and the backend that performs it
//! ([`Launch`]).
//!
//! Responsibility: the plans of this crate produce [`Dims`]; the shared launch sequences (each
//! op module's `launch`) choose the entry point and build its parameter list, and call
//! [`Launch::launch`], upholding its contract; each backend's implementation passes them to its
//! driver (`cuLaunchKernel`, `hipModuleLaunchKernel`), compiling and loading the module on first
//! use, and turns failures into its own errors.

use std::ffi::c_void;

use kernelyard_core::{Error, Reason, Stream};

use crate::source::KernelSource;

/// What a GPU backend provides to run the shared launch sequences.
pub trait Launch {
    /// Launches `symbol` of `source` on `stream` with `dims`; `params` is usually
    /// [`params!`](crate::params)`[...]`.
    ///
    /// # Safety
    /// `params` must point at values whose number and types match the entry point's
    /// parameters, and every device pointer among them must be valid for what the kernel reads
    /// and writes for these parameters, on the stream's device, until the work completes.
    unsafe fn launch(
        &self,
        stream: &Stream,
        source: &'static KernelSource,
        symbol: &'static str,
        dims: Dims,
        params: &mut [*mut c_void],
    ) -> Result<(), Error>;
}

/// A launch shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Blocks in x, y, z.
    pub grid: (u32, u32, u32),
    /// Threads per block in x, y, z.
    pub block: (u32, u32, u32),
    /// Dynamic shared memory per block, bytes.
    pub shared_bytes: u32,
}

/// Pushes a [`Reason::ShapeUnsupported`] unless a tensor of `dims` (named `what`) has at most
/// `i64::MAX` elements: the kernels take sizes and compute offsets as `long long`. Core's
/// problem check keeps every valid problem far below that (its bytes fit in `isize`); this
/// keeps a kernel's check from passing any other problem on, computed without overflow.
pub fn check_elements(what: &str, dims: &[usize], reasons: &mut Vec<Reason>) {
    let elems = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if !matches!(elems, Some(n) if n <= i64::MAX as usize) {
        reasons.push(Reason::ShapeUnsupported {
            what: format!("{what} of shape {dims:?} (at most 2^63 - 1 elements: 64-bit indices)"),
        });
    }
}

/// Pointers to kernel parameters for a backend's `launch`: `params![a, b, c]` is
/// `[*mut c_void; 3]` pointing at `a`, `b` and `c`, which must live until the launch returns
/// (locals, or expressions of the same statement) and have exactly the types of the entry
/// point's parameters (`i64` for `long long`, `f32` for `float`, `*const c_void` for
/// pointers).
#[macro_export]
macro_rules! params {
    ($($arg:expr),* $(,)?) => {
        [$((&$arg) as *const _ as *mut ::std::ffi::c_void),*]
    };
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::RefCell;
    use std::ffi::c_void;

    use kernelyard_core::{Error, Stream};

    use super::{Dims, Launch};
    use crate::source::KernelSource;

    /// One launch a [`Recorder`] saw.
    #[derive(Debug, PartialEq)]
    pub(crate) struct Call {
        pub(crate) file: &'static str,
        pub(crate) symbol: &'static str,
        pub(crate) dims: Dims,
        /// The number of parameters.
        pub(crate) params: usize,
        /// The first parameter, a pointer in every entry point of this crate.
        pub(crate) first: *const c_void,
    }

    /// A [`Launch`] that runs nothing and records each launch, for the launch sequences' tests.
    #[derive(Default)]
    pub(crate) struct Recorder(pub(crate) RefCell<Vec<Call>>);

    impl Launch for Recorder {
        unsafe fn launch(
            &self,
            _stream: &Stream,
            source: &'static KernelSource,
            symbol: &'static str,
            dims: Dims,
            params: &mut [*mut c_void],
        ) -> Result<(), Error> {
            assert!(
                source.lists(symbol),
                "{symbol} is not listed in {}",
                source.file
            );
            // SAFETY: the caller's contract: the parameters match the entry point's, whose
            // first is a pointer.
            let first = unsafe { *(params[0] as *const *const c_void) };
            self.0.borrow_mut().push(Call {
                file: source.file,
                symbol,
                dims,
                params: params.len(),
                first,
            });
            Ok(())
        }
    }

    #[test]
    fn params_point_at_their_arguments() {
        let (a, b) = (7i64, 2.5f32);
        let p: [*mut c_void; 2] = crate::params![a, b];
        assert_eq!(p[0] as *const i64, &a as *const i64);
        assert_eq!(p[1] as *const f32, &b as *const f32);
        let none: [*mut c_void; 0] = crate::params![];
        assert!(none.is_empty());
    }
}

/// Device memory a launch sequence passes partial results through (the backend's: the CUDA
/// stream workspace, or a ROCm allocation), for the split paths of `token_logprobs` and
/// `attention_decode`. The backend keeps it alive, and other work off it, until the sequence
/// has run.
#[derive(Clone, Copy, Debug)]
pub struct Scratch {
    /// The buffer (null for a problem that needs none).
    pub ptr: *mut c_void,
    /// Its size in bytes.
    pub bytes: usize,
}

impl Scratch {
    /// No scratch: for problems that need none (their `scratch_bytes` is 0).
    pub const NONE: Scratch = Scratch {
        ptr: std::ptr::null_mut(),
        bytes: 0,
    };
}

/// Arrival counters (`u32`, [`Counters::len`] of them) for a kernel whose CTAs count
/// themselves in, the last to arrive finishing the work (the split path of `token_logprobs`).
/// The backend's device memory, under three rules every user keeps: no other kernel writes it;
/// it is all zero when such a kernel starts; and each such kernel leaves every counter it
/// touched at zero when it ends. So it is zeroed once, when allocated, never per launch.
#[derive(Clone, Copy, Debug)]
pub struct Counters {
    /// The counters (null for a problem that needs none).
    pub ptr: *mut c_void,
    /// How many `u32` counters it holds.
    pub len: usize,
}

impl Counters {
    /// No counters: for problems that need none.
    pub const NONE: Counters = Counters {
        ptr: std::ptr::null_mut(),
        len: 0,
    };
}
