//! `--simulate NAME` of `explain` and `doctor`: a simulated device instead of the probed ones.
//!
//! The name is a preset or a bare architecture (core's `presets::simulate`; a bad one is a
//! usage error, exit 2, whose message lists the valid names). The runtime then has exactly one
//! device, the simulated one (`cuda:0` or `rocm:0`), and no backend is probed: the answer
//! is about that device only, whatever this machine has. Selection is the same call as on a
//! probed device, against the capabilities a probe of that device would return; nothing is
//! allocated or launched. A backend not compiled into this build stays not compiled in (its
//! kernels say so), so ask about AMD devices with a build that has `--features rocm`.
//!
//! `explain --simulate` and `--device` conflict (a usage error): the simulated device is the
//! one answered for, and its id is printed with it.

use kernelyard::presets::{self, PresetError};
use kernelyard::{Capabilities, Runtime, RuntimeBuilder};
use serde::Serialize;

/// A device to simulate, as named on the command line.
#[derive(Clone, Debug)]
pub struct Simulated {
    /// The name given, as typed (`h100`, `sm_89`).
    pub name: String,
    /// Its capabilities (`caps.name` is the `simulated h100 (...)` description).
    pub caps: Capabilities,
}

/// Parses `--simulate NAME` (clap's value parser).
pub fn parse(name: &str) -> Result<Simulated, PresetError> {
    Ok(Simulated {
        name: name.to_string(),
        caps: presets::simulate(name)?,
    })
}

/// The `--simulate` flag's help: the presets come from core's table.
pub fn help() -> String {
    format!(
        "Answer for a simulated device instead of this machine's: a preset ({}) or an \
         architecture (sm_XY, sm_XYa, gfxNNN: e.g. sm_89, sm_90a, gfx942). The simulated device \
         is cuda:0 or rocm:0 and is the only device; nothing is probed or launched. \
         docs/SIMULATE.md lists the presets' numbers",
        presets::preset_names().join(", ")
    )
}

/// A runtime whose only device is `sim`'s, with no backend probed; `pins` replaces
/// `KERNELYARD_KERNELS` when given.
pub fn builder(sim: &Simulated, pins: Option<&str>) -> RuntimeBuilder {
    let b = Runtime::builder()
        .no_probe()
        .simulated_device(sim.caps.clone());
    match pins {
        Some(p) => b.pins(p),
        None => b,
    }
}

/// The first line of a simulated answer:
/// `SIMULATED device cuda:0: simulated h100 (...); selection only, nothing probed or launched`.
pub fn banner(sim: &Simulated) -> String {
    format!(
        "SIMULATED device {}: {}; selection only, nothing probed or launched\n",
        sim.caps.device, sim.caps.name
    )
}

/// `"simulated": {"name", "device", "description", "capabilities"}` in `--json` output.
#[derive(Serialize)]
pub struct SimulatedJson<'a> {
    /// The name given (`h100`).
    name: &'a str,
    /// The simulated device's id (`cuda:0`).
    device: kernelyard::DeviceId,
    /// `simulated h100 (NVIDIA H100 SXM5 80GB: sm_90, ...)`.
    description: &'a str,
    /// Its capabilities, as `doctor --json` prints a probed device's.
    capabilities: &'a Capabilities,
    /// What it was made from, for the text output.
    #[serde(skip)]
    pub simulated: &'a Simulated,
}

impl<'a> SimulatedJson<'a> {
    /// The JSON form of `sim`.
    pub fn new(sim: &'a Simulated) -> Self {
        SimulatedJson {
            name: &sim.name,
            device: sim.caps.device,
            description: &sim.caps.name,
            capabilities: &sim.caps,
            simulated: sim,
        }
    }
}
