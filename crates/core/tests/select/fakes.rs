//! Fakes for selection tests and the selection benchmark: kernels that run nothing, custom
//! registries, and simulated devices with the properties of real GPUs (T4, A100, H100,
//! RTX 5090, MI250X) and a host.
//!
//! Nothing here registers with `inventory` (that would change the global registry of the binary
//! that includes it); every registry is built with `Registry::from_kernels` and leaked to get
//! the `'static` lifetime a runtime needs.

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};

use kernelyard_core::ops::gemm::GemmArgs;
use kernelyard_core::{
    Arch, ArchReq, Args, Capabilities, DType, DeviceId, DeviceKind, Error, Feature, Gfx, Kernel,
    KernelMeta, LaunchCtx, OpKind, Params, Problem, Reason, Registry, Runtime, SelectError,
    SelectionReport, Sm, TensorView, TensorViewMut, Verdict, Version,
};

/// A kernel that runs nothing: its metadata, an optional shared-memory need checked per device,
/// a fixed heuristic score, and a launch counter.
pub struct Fake {
    pub meta: KernelMeta,
    pub smem: u64,
    pub score: i32,
    pub launches: AtomicUsize,
    /// The tactic of the last launch.
    pub last_tactic: std::sync::Mutex<Option<&'static str>>,
}

impl Fake {
    pub fn new(meta: KernelMeta) -> Fake {
        Fake {
            meta,
            smem: 0,
            score: 0,
            launches: AtomicUsize::new(0),
            last_tactic: std::sync::Mutex::new(None),
        }
    }
    pub fn score(self, score: i32) -> Fake {
        Fake { score, ..self }
    }
    pub fn smem(self, smem: u64) -> Fake {
        Fake { smem, ..self }
    }
    pub fn leak(self) -> &'static Fake {
        Box::leak(Box::new(self))
    }
}

impl Kernel for Fake {
    fn meta(&self) -> &KernelMeta {
        &self.meta
    }
    fn check_problem(&self, caps: &Capabilities, _: &Problem, reasons: &mut Vec<Reason>) {
        if self.smem > caps.shared_mem_per_block_optin {
            reasons.push(Reason::SharedMemory {
                need: self.smem,
                have: caps.shared_mem_per_block_optin,
            });
        }
    }
    fn score(&self, _: &Capabilities, _: &Problem) -> i32 {
        self.score
    }
    fn launch(&self, ctx: &LaunchCtx<'_>, args: &mut Args<'_>, _: &Problem) -> Result<(), Error> {
        *self.last_tactic.lock().unwrap() = ctx.tactic;
        if args.op() != self.meta.op {
            return Err(Error::WrongOp {
                kernel: self.meta.name,
                op: self.meta.op,
                got: args.op(),
            });
        }
        self.launches.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Metadata with permissive defaults; the backend is the name's first component.
pub fn meta(name: &'static str, op: OpKind, device: DeviceKind) -> KernelMeta {
    KernelMeta {
        name,
        op,
        backend: name.split('.').next().unwrap_or(name),
        device,
        version: 1,
        deterministic: false,
        batch_invariant: false,
        dtypes: DType::FLOATS,
        arch: ArchReq::Any,
        features: &[],
        align: 1,
        priority: 0,
        source: "tests/select.rs",
        summary: "a fake kernel for selection tests",
        tactics: &[],
    }
}

pub fn cuda_gemm(name: &'static str) -> KernelMeta {
    meta(name, OpKind::Gemm, DeviceKind::Cuda)
}

pub fn fake(meta: KernelMeta) -> &'static Fake {
    Fake::new(meta).leak()
}

pub fn cuda_range(min: (u8, u8), max: Option<(u8, u8)>) -> ArchReq {
    ArchReq::Cuda {
        min: Sm::new(min.0, min.1),
        max: max.map(|(a, b)| Sm::new(a, b)),
        arch_specific: false,
    }
}

pub fn registry(kernels: &[&'static Fake]) -> &'static Registry {
    let r = Registry::from_kernels(kernels.iter().map(|&k| k as &'static dyn Kernel))
        .expect("test registry builds");
    Box::leak(Box::new(r))
}

/// A simulated CUDA device with the properties of a real GPU of that compute capability.
pub fn cuda(index: u32, major: u8, minor: u8) -> Capabilities {
    use Feature::*;
    let (name, sms, optin, gib, features): (&str, u32, u64, u64, &[Feature]) = match (major, minor)
    {
        (7, 5) => ("Tesla T4", 40, 64 * 1024, 16, &[TensorCores]),
        (8, 0) => ("A100-SXM4-80GB", 108, 163 * 1024, 80, &[TensorCores, Bf16]),
        (9, 0) => (
            "H100 80GB HBM3",
            132,
            227 * 1024,
            80,
            &[TensorCores, Bf16, Fp8, Wgmma, Tma],
        ),
        (12, 0) => (
            "GeForce RTX 5090",
            170,
            99 * 1024,
            32,
            &[TensorCores, Bf16, Fp8],
        ),
        _ => panic!("no simulated device for sm_{major}{minor}"),
    };
    Capabilities {
        device: DeviceId::cuda(index),
        name: format!("simulated NVIDIA {name}"),
        arch: Arch::Cuda {
            sm: Sm::new(major, minor),
        },
        multiprocessors: sms,
        shared_mem_per_block: 48 * 1024,
        shared_mem_per_block_optin: optin,
        memory_bytes: gib << 30,
        driver_version: Some(Version::new(12, 8, 0)),
        compiler_version: Some(Version::new(12, 8, 61)),
        features: features.iter().copied().collect(),
    }
}

/// A simulated MI250X (gfx90a, wave64).
pub fn rocm(index: u32) -> Capabilities {
    Capabilities {
        device: DeviceId::rocm(index),
        name: "simulated AMD Instinct MI250X".into(),
        arch: Arch::Rocm {
            gfx: Gfx::new(9, 0, 0xa),
            wavefront: 64,
        },
        multiprocessors: 110,
        shared_mem_per_block: 64 * 1024,
        shared_mem_per_block_optin: 64 * 1024,
        memory_bytes: 64 << 30,
        driver_version: Some(Version::new(6, 2, 0)),
        compiler_version: Some(Version::new(6, 2, 0)),
        features: [Feature::TensorCores, Feature::Bf16].into_iter().collect(),
    }
}

/// A simulated 16-thread x86_64 host.
pub fn cpu() -> Capabilities {
    Capabilities {
        device: DeviceId::CPU,
        name: "simulated x86_64 host".into(),
        arch: Arch::Cpu {
            isa: "x86_64".into(),
        },
        multiprocessors: 16,
        shared_mem_per_block: 0,
        shared_mem_per_block_optin: 0,
        memory_bytes: 64 << 30,
        driver_version: None,
        compiler_version: None,
        features: [Feature::Avx2, Feature::Fma].into_iter().collect(),
    }
}

pub fn runtime_with_pins(
    r: &'static Registry,
    pins: &str,
    devices: Vec<Capabilities>,
) -> Result<Runtime, Error> {
    devices
        .into_iter()
        .fold(
            Runtime::builder().registry(r).pins(pins).no_probe(),
            |b, caps| b.simulated_device(caps),
        )
        .build()
}

pub fn runtime(r: &'static Registry, devices: Vec<Capabilities>) -> Runtime {
    runtime_with_pins(r, "", devices).expect("runtime builds")
}

pub fn problem(op: OpKind, spec: &str, dtype: DType) -> Problem {
    Problem::from_params(op, &Params::parse(op, spec).unwrap(), dtype).unwrap()
}

pub fn gemm_problem() -> Problem {
    problem(OpKind::Gemm, "m=128,n=256,k=64", DType::BF16)
}

pub fn softmax_problem() -> Problem {
    problem(OpKind::Softmax, "rows=32,cols=4096", DType::BF16)
}

pub const GPU0: DeviceId = DeviceId::cuda(0);
pub const GPU1: DeviceId = DeviceId::cuda(1);
pub const GPU2: DeviceId = DeviceId::cuda(2);

/// Each candidate's name and verdict, in report order.
pub fn verdicts(report: &SelectionReport) -> Vec<(&'static str, Verdict)> {
    report
        .candidates
        .iter()
        .map(|c| (c.kernel, c.verdict.clone()))
        .collect()
}

pub fn rejected(reasons: Vec<Reason>) -> Verdict {
    Verdict::Rejected { reasons }
}

pub fn all_rejected(e: SelectError) -> SelectionReport {
    match e {
        SelectError::AllRejected { report } => *report,
        other => panic!("expected AllRejected, got {other:?}"),
    }
}

pub fn kernel_rejected(e: SelectError) -> (&'static str, SelectionReport) {
    match e {
        SelectError::KernelRejected { name, report } => (name, *report),
        other => panic!("expected KernelRejected, got {other:?}"),
    }
}

/// A view over a fake device address; validation never dereferences it.
pub fn fake_view(
    addr: usize,
    dtype: DType,
    shape: &[usize],
    device: DeviceId,
) -> TensorView<'static> {
    // SAFETY: only validated and handed to a fake kernel that never reads it.
    unsafe { TensorView::from_raw_parts(addr as *const c_void, dtype, shape, None, device) }
        .unwrap()
}

pub fn fake_view_mut(
    addr: usize,
    dtype: DType,
    shape: &[usize],
    device: DeviceId,
) -> TensorViewMut<'static> {
    // SAFETY: as in `fake_view`; nothing writes through it.
    unsafe { TensorViewMut::from_raw_parts(addr as *mut c_void, dtype, shape, None, device) }
        .unwrap()
}

pub fn gemm_args(m: usize, n: usize, k: usize, device: DeviceId) -> Args<'static> {
    Args::Gemm(GemmArgs::new(
        fake_view(1 << 28, DType::F32, &[m, k], device),
        fake_view(2 << 28, DType::F32, &[k, n], device),
        fake_view_mut(3 << 28, DType::F32, &[m, n], device),
    ))
}

/// A realistic set of four attention kernels on CUDA (shared by the selection benchmark and the
/// plan-cache memory test): an sm_90a kernel needing 200 KiB of shared memory, an sm_80+ kernel
/// needing 100 KiB, a split-KV kernel with a heuristic score of 1, and a deterministic,
/// batch-invariant fallback.
// Used by the benchmark and the plan-cache memory test, not by every binary that includes this file.
#[allow(dead_code)]
pub fn attention_set() -> Vec<&'static Fake> {
    let attention = |name| meta(name, OpKind::Attention, DeviceKind::Cuda);
    vec![
        Fake::new(KernelMeta {
            priority: 20,
            arch: ArchReq::Cuda {
                min: Sm::new(9, 0),
                max: Some(Sm::new(9, 0)),
                arch_specific: true,
            },
            features: &[Feature::Wgmma, Feature::Tma],
            dtypes: &[DType::BF16, DType::F16],
            align: 16,
            ..attention("cuda.attention.sm90a")
        })
        .smem(200 * 1024)
        .leak(),
        Fake::new(KernelMeta {
            priority: 10,
            arch: cuda_range((8, 0), None),
            dtypes: &[DType::BF16, DType::F16],
            align: 16,
            ..attention("cuda.attention.sm80")
        })
        .smem(100 * 1024)
        .leak(),
        Fake::new(KernelMeta {
            priority: 10,
            ..attention("cuda.attention.split_kv")
        })
        .score(1)
        .leak(),
        fake(KernelMeta {
            deterministic: true,
            batch_invariant: true,
            ..attention("cuda.attention.naive")
        }),
    ]
}
