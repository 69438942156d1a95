//! The GPU kernel of `selective_state_update` (`crates/kernels/kernels/selective_state_update.cu`)
//! through the whole equivalence suite, on the CPU emulator (`crates/kernels/tests/emu/`): its
//! exact source, its real launch sequence (`kernelyard_kernels::selective_state_update::launch`),
//! every suite case of the op (state cache and indices, pad slots, groups, state dtypes, N = 128
//! and 256, Mamba-2 2.7B's shape), judged as on a GPU: the oracle within tolerance with outputs
//! poisoned, two runs bitwise equal, and each row's bits the same in sub-batches and in a padded
//! batch.
//!
//! What this does not prove: speed, the GPU's memory model (races, coalescing), or bits equal
//! to a GPU's where the compiler fuses differently (docs/SSU.md). The GPU proof is the `ssu`
//! stage of scripts/gpu_proof.sh.

#[path = "../../kernels/tests/emu/mod.rs"]
mod emu;

use kernelyard::ops::selective_state_update::{
    SelectiveStateUpdate, SelectiveStateUpdateArgs, SelectiveStateUpdateProblem,
};
use kernelyard::{
    ArchReq, DeviceId, DeviceKind, Error, Kernel, KernelDef, KernelMeta, LaunchCtx, OpKind,
    Registry, Runtime,
};
use kernelyard_kernels::selective_state_update as ssu;
use kernelyard_suite::{run_suite, Outcome, SuiteOptions, DEFAULT_SEED};

fn launch(
    ctx: &LaunchCtx<'_>,
    a: &mut SelectiveStateUpdateArgs<'_>,
    p: &SelectiveStateUpdateProblem,
) -> Result<(), Error> {
    let emulator = emu::Emulator::shared(&ssu::SOURCE).map_err(|e| Error::Device {
        backend: "emulator",
        source: e.into(),
    })?;
    ssu::launch(emulator, ctx.stream, ctx.caps, a, p)
}

/// The GPU kernel, registered for the CPU with the CUDA kernel's check and metadata.
static EMULATED: KernelDef<SelectiveStateUpdate> = KernelDef::<SelectiveStateUpdate>::new(
    KernelMeta::new::<SelectiveStateUpdate>(
        "emu.selective_state_update",
        "emu",
        DeviceKind::Cpu,
        ArchReq::Any,
        module_path!(),
        "crates/kernels/kernels/selective_state_update.cu on the CPU emulator",
    ),
    launch,
)
.with_check(ssu::check);

#[test]
fn the_gpu_kernel_passes_the_suite_on_the_emulator() {
    let kernels: Vec<&'static dyn Kernel> = Registry::global()
        .unwrap()
        .all()
        .iter()
        .copied()
        .filter(|k| k.meta().op == OpKind::SelectiveStateUpdate)
        .chain([&EMULATED as &'static dyn Kernel])
        .collect();
    let registry: &'static Registry = Box::leak(Box::new(Registry::from_kernels(kernels).unwrap()));
    let rt = Runtime::builder().registry(registry).build().unwrap();
    let opts = SuiteOptions {
        op: Some(OpKind::SelectiveStateUpdate),
        device: Some(DeviceId::CPU),
        seed: DEFAULT_SEED,
    };
    let report = run_suite(&rt, &opts, &mut |r| {
        if r.kernel == "emu.selective_state_update" {
            eprintln!("{} {} {}: {:?}", r.kernel, r.dtype, r.case, r.outcome)
        }
    });
    let ours: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.kernel == "emu.selective_state_update")
        .collect();
    assert!(ours.len() >= 40, "{} results", ours.len());
    let mut failed = Vec::new();
    for r in &ours {
        match &r.outcome {
            Outcome::Pass { checks, .. } => {
                assert_eq!(
                    checks,
                    &["oracle", "deterministic", "batch_invariant"],
                    "{} {}",
                    r.case,
                    r.dtype
                );
            }
            other => failed.push(format!("{} {}: {other:?}", r.case, r.dtype)),
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
