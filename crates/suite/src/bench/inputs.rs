//! A benchmark's inputs: generated once on the host by the op's driver, converted once to
//! their dtypes, then uploaded as many times as the rotation needs.

use kernelyard::{DeviceId, Problem, Runtime};

use crate::cases::Scalars;
use crate::data::{checked_bytes, Init, Instance};
use crate::exec::{upload_encoded, DeviceTensor, Encoded};
use crate::ops::{instance, Driver};
use crate::rng::Rng;

use super::{BenchError, MAX_SETS, MIN_SETS, ROTATION_BYTES};

/// One instance's tensors on the host, in their dtypes' storage.
pub(super) struct HostSet {
    /// The instance, its inputs' `f64` values dropped (the drivers' `args` read only shapes
    /// and scalars).
    pub inst: Instance,
    /// Each input in its dtype, in the order of `inst.inputs`.
    inputs: Vec<Encoded>,
    /// Inputs that only seed an in/out output (the ssu state, in-place rope's `x`, C when
    /// accumulating): uploaded as that output, since the launch never reads the input copy.
    seeds: Vec<usize>,
    /// Bytes on the device of one set: the inputs the launch reads and every output.
    pub bytes: usize,
}

/// The bytes of a tensor; the bench has checked them (`Footprint`) before generating.
fn bytes(name: &str, dtype: kernelyard::DType, shape: &[usize]) -> Result<usize, String> {
    checked_bytes(dtype, shape).ok_or_else(|| format!("the bytes of `{name}` {shape:?} overflow"))
}

impl HostSet {
    /// Generates `problem`'s inputs with `driver` from `seed`.
    pub fn generate(
        driver: &dyn Driver,
        problem: &Problem,
        scalars: Scalars,
        seed: u64,
    ) -> Result<HostSet, String> {
        let op = problem.op();
        let mut rng = Rng::derived(seed, &["bench", op.name(), problem.dtype().name()]);
        let mut inst = instance(driver, problem.clone(), scalars, &mut rng)?;
        let seeds: Vec<usize> = inst
            .outputs
            .iter()
            .filter_map(|o| match o.init {
                Init::FromInput(i) => Some(i),
                Init::Poison => None,
            })
            .collect();
        if let Some(&i) = seeds.iter().find(|&&i| i >= inst.inputs.len()) {
            return Err(format!(
                "an output starts from input {i}, which does not exist"
            ));
        }
        let inputs = inst
            .inputs
            .iter()
            .map(|t| Encoded::new(t.dtype, &t.data))
            .collect();
        for t in &mut inst.inputs {
            t.data = Vec::new();
        }
        let mut total = 0usize;
        let read = inst
            .inputs
            .iter()
            .enumerate()
            .filter(|(i, _)| !seeds.contains(i))
            .map(|(_, t)| (t.name, t.dtype, &t.shape));
        let written = inst.outputs.iter().map(|o| (o.name, o.dtype, &o.shape));
        for (name, dtype, shape) in read.chain(written) {
            total = total
                .checked_add(bytes(name, dtype, shape)?)
                .ok_or("the bytes of a set overflow")?;
        }
        let bytes = total.max(1);
        Ok(HostSet {
            inst,
            inputs,
            seeds,
            bytes,
        })
    }

    /// How many sets to upload: [`sets_for`] this set's bytes.
    pub fn sets_wanted(&self, memory: usize) -> usize {
        sets_for(self.bytes, memory)
    }

    /// Uploads set number `index` to `device`: the inputs the launch reads, and the outputs
    /// (in/out ones with their initial values, the others uninitialised: every kernel writes
    /// them whole).
    pub fn upload(&self, rt: &Runtime, device: DeviceId, index: usize) -> Result<Set, BenchError> {
        let failed = |what: String| move |source| BenchError::Device { what, source };
        let mut ins = Vec::new();
        for (i, (t, data)) in self.inst.inputs.iter().zip(&self.inputs).enumerate() {
            if !self.seeds.contains(&i) {
                ins.push(
                    upload_encoded(rt, device, t.name, t.dtype, &t.shape, data)
                        .map_err(failed(format!("uploading `{}` of set {index}", t.name)))?,
                );
            }
        }
        let mut outs = Vec::new();
        for o in &self.inst.outputs {
            let what = format!("allocating `{}` of set {index}", o.name);
            let size = bytes(o.name, o.dtype, &o.shape).map_err(BenchError::Harness)?;
            outs.push(match o.init {
                Init::FromInput(i) => {
                    upload_encoded(rt, device, o.name, o.dtype, &o.shape, &self.inputs[i])
                        .map_err(failed(what))?
                }
                Init::Poison => DeviceTensor {
                    name: o.name,
                    dtype: o.dtype,
                    shape: o.shape.clone(),
                    buf: rt
                        .alloc(device, size.max(o.dtype.size()))
                        .map_err(failed(what))?,
                },
            });
        }
        Ok(Set { ins, outs })
    }
}

/// One set of device tensors: the inputs the launch reads and the outputs it writes.
pub(super) struct Set {
    /// The inputs, named as the instance's.
    pub ins: Vec<DeviceTensor>,
    /// The outputs, named as the instance's.
    pub outs: Vec<DeviceTensor>,
}

/// How many sets of `set_bytes` to upload: enough to exceed [`ROTATION_BYTES`], at least
/// [`MIN_SETS`] and at most [`MAX_SETS`], and at most half of `memory` (0: unknown) in all, but
/// at least one.
pub fn sets_for(set_bytes: usize, memory: usize) -> usize {
    let set_bytes = set_bytes.max(1);
    let mut n = ROTATION_BYTES.div_ceil(set_bytes).clamp(MIN_SETS, MAX_SETS);
    if memory > 0 {
        // Leave half the device's memory to the kernels' workspaces and everyone else.
        n = n.min((memory / 2 / set_bytes).max(1));
    }
    n
}
