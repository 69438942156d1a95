//! Kernels: a static that holds its metadata and its code together.
//!
//! A backend declares each kernel as a `static` implementing [`Kernel`] and registers it with
//! `inventory::submit! { KernelEntry(&MY_KERNEL) }`. Its [`KernelMeta`] is plain data, read
//! without running anything; its requirements (device kind, arch range, dtypes, features,
//! alignment) are compared with a device's [`Capabilities`] by [`KernelMeta::check_static`],
//! and anything problem-specific (shapes, shared memory) by [`Kernel::check_problem`].

use serde::Serialize;

use crate::caps::{ArchReq, Capabilities, Feature};
use crate::device::DeviceKind;
use crate::dtype::DType;
use crate::error::Error;
use crate::ops::{Args, OpKind, Problem};
use crate::reason::Reason;
use crate::stream::Stream;

/// A kernel's static metadata.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct KernelMeta {
    /// `backend.op[.variant]`, unique in the registry.
    pub name: &'static str,
    /// The operator it implements.
    pub op: OpKind,
    /// The backend that provides it.
    pub backend: &'static str,
    /// The kind of device it runs on.
    pub device: DeviceKind,
    /// Implementation version (bump when numerics change).
    pub version: u32,
    /// Repeated runs on the same inputs give bitwise-identical outputs.
    pub deterministic: bool,
    /// A row's output is bitwise identical whatever batch it rides in.
    pub batch_invariant: bool,
    /// Supported primary dtypes (see [`Problem::dtype`]).
    pub dtypes: &'static [DType],
    /// Supported architectures.
    pub arch: ArchReq,
    /// Device features required.
    pub features: &'static [Feature],
    /// Alignment in bytes every tensor pointer and row stride needs (1 = element alignment).
    pub align: usize,
    /// Preference among runnable kernels: higher is tried first.
    pub priority: i32,
    /// Where it is declared (`module_path!()`), for registration errors.
    pub source: &'static str,
    /// One line on what it is.
    pub summary: &'static str,
}

impl KernelMeta {
    /// Compares the metadata's requirements with a device and a problem, pushing a reason for
    /// each one not met.
    pub fn check_static(&self, caps: &Capabilities, problem: &Problem, reasons: &mut Vec<Reason>) {
        let kind = caps.arch.kind();
        if kind != self.device {
            reasons.push(Reason::WrongDeviceKind {
                have: kind,
                need: self.device,
            });
            return;
        }
        self.arch.check(&caps.arch, reasons);
        if !self.dtypes.contains(&problem.dtype()) {
            reasons.push(Reason::DtypeUnsupported {
                arg: "input",
                dtype: problem.dtype(),
                supported: self.dtypes.to_vec(),
            });
        }
        for &feature in self.features {
            if !caps.has(feature) {
                reasons.push(Reason::MissingFeature { feature });
            }
        }
        if problem.align() < self.align {
            reasons.push(Reason::Alignment {
                arg: "every tensor",
                need: self.align,
                have: problem.align(),
            });
        }
    }
}

/// A kernel: metadata, problem-specific checks, an optional heuristic score, and the launch.
pub trait Kernel: Send + Sync + 'static {
    /// The static metadata.
    fn meta(&self) -> &KernelMeta;

    /// Problem-specific requirements beyond the metadata (shapes, shared memory per problem):
    /// push a reason for each one not met. The default has none.
    ///
    /// Called whenever the device is of the kernel's kind, even if a static requirement (arch,
    /// dtype, alignment) already failed, so that every reason is reported: it must not assume
    /// the problem's dtype is one the kernel supports.
    fn check_problem(&self, caps: &Capabilities, problem: &Problem, reasons: &mut Vec<Reason>) {
        let _ = (caps, problem, reasons);
    }

    /// Every reason this kernel cannot run `problem` on the device, or `Ok`.
    fn check(&self, caps: &Capabilities, problem: &Problem) -> Result<(), Vec<Reason>> {
        let mut reasons = Vec::new();
        self.meta().check_static(caps, problem, &mut reasons);
        if caps.arch.kind() == self.meta().device {
            self.check_problem(caps, problem, &mut reasons);
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }

    /// A heuristic preference for this problem on this device among kernels of equal
    /// priority (higher first). The default is 0.
    fn score(&self, caps: &Capabilities, problem: &Problem) -> i32 {
        let _ = (caps, problem);
        0
    }

    /// Runs the kernel on `stream`. Core has validated `args` into `problem` and checked the
    /// kernel can run it on the stream's device; the kernel reports only device faults and
    /// data-dependent errors (e.g. checked out-of-range targets).
    fn launch(&self, stream: &Stream, args: &mut Args<'_>, problem: &Problem) -> Result<(), Error>;
}

/// The registration a backend submits for each kernel with `inventory::submit!`.
pub struct KernelEntry(pub &'static dyn Kernel);

inventory::collect!(KernelEntry);
