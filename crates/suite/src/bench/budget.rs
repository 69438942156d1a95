//! What a benchmark run needs, computed in checked arithmetic before anything is generated or
//! allocated, and the bounds it must stay within. Beyond them the bench is refused
//! ([`Refused`]; `kernelyard bench` exits 2 with the reason):
//!
//! - **Runs**: at most [`MAX_RUNS`] timed runs and at most [`MAX_RUNS`] warm-up runs.
//! - **Sizes**: every tensor's bytes, and their sums, must fit in `usize`.
//! - **Device memory**: one set of inputs and outputs (what one run reads and writes) must fit
//!   in the device's memory ([`Capabilities::memory_bytes`](kernelyard::Capabilities), when the
//!   backend knows it; the CPU's is the host's total memory).
//! - **Host memory**: the inputs are generated on the host as `f64` values and converted to their
//!   dtypes while those still exist; on the CPU the sets live in host memory as well. Together
//!   that must fit in the memory the OS says is available (`MemAvailable` in `/proc/meminfo` on
//!   Linux). Where that cannot be read, no host bound is applied (sizes are still checked for
//!   overflow and against the device's memory).
//!
//! The bounds are a guard against asking for what cannot work, not a promise that what passes
//! fits: other processes, the copy-bandwidth buffers and the kernels' workspaces also need
//! memory, and an allocation that fails later is a run failure.

use std::fmt;

use kernelyard::{DeviceId, DeviceKind, Problem};

use crate::data::{checked_bytes, checked_numel, Init};
use crate::ops::Driver;

use super::report::human_bytes;

/// The most timed runs, and the most warm-up runs, per kernel.
pub const MAX_RUNS: usize = 1_000_000;

/// Why a benchmark is refused before it starts: it would exceed a bound (module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refused {
    /// More runs than [`MAX_RUNS`].
    TooManyRuns {
        /// `iters` or `warmup`.
        what: &'static str,
        /// The number asked for.
        given: usize,
        /// [`MAX_RUNS`].
        max: usize,
    },
    /// A tensor's bytes, or their sum, overflow `usize`.
    SizeOverflow {
        /// Which size.
        what: String,
    },
    /// One set of inputs and outputs is larger than the device's memory.
    DeviceMemory {
        /// The device.
        device: DeviceId,
        /// Bytes of one set.
        need: usize,
        /// Bytes of device memory.
        have: u64,
    },
    /// Generating the inputs (and on the CPU holding one set) needs more host memory than is
    /// available.
    HostMemory {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        available: u64,
    },
}

fn human(n: u64) -> String {
    human_bytes(usize::try_from(n).unwrap_or(usize::MAX))
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::TooManyRuns { what, given, max } => write!(
                f,
                "`{what}` = {given} is more than the bound of {max} runs per kernel; ask for fewer"
            ),
            Refused::SizeOverflow { what } => write!(
                f,
                "the problem is too large: {what} overflow the address space; use a smaller \
                 problem"
            ),
            Refused::DeviceMemory { device, need, have } => write!(
                f,
                "one set of inputs and outputs needs {} but {device} has {} of memory; use a \
                 smaller problem",
                human_bytes(*need),
                human(*have)
            ),
            Refused::HostMemory { need, available } => write!(
                f,
                "generating the inputs needs {} of host memory (each input as f64 values and in \
                 its dtype, and on the CPU one set of inputs and outputs) but {} is available \
                 (MemAvailable in /proc/meminfo); use a smaller problem",
                human_bytes(*need),
                human(*available)
            ),
        }
    }
}

impl std::error::Error for Refused {}

/// Refuses more than [`MAX_RUNS`] warm-up or timed runs.
pub(super) fn check_runs(warmup: usize, iters: usize) -> Result<(), Refused> {
    for (what, given) in [("warmup", warmup), ("iters", iters)] {
        if given > MAX_RUNS {
            return Err(Refused::TooManyRuns {
                what,
                given,
                max: MAX_RUNS,
            });
        }
    }
    Ok(())
}

/// The memory one benchmark of a problem needs, from the shapes alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Footprint {
    /// Bytes of one set on the device: the inputs the launch reads and every output.
    pub set_bytes: usize,
    /// Host bytes while the inputs are generated: each input as `f64` values and in its dtype.
    pub generate_bytes: usize,
}

fn overflow(what: String) -> Refused {
    Refused::SizeOverflow { what }
}

fn add(a: usize, b: usize, what: &str) -> Result<usize, Refused> {
    a.checked_add(b)
        .ok_or_else(|| overflow(format!("the bytes of {what} together")))
}

impl Footprint {
    /// What benchmarking `problem` with `driver` needs. Nothing is generated: the shapes come
    /// from [`Driver::input_shapes`] and [`Driver::outputs`]. `Err(Ok(refused))` for a size
    /// that overflows; `Err(Err(text))` for a harness bug.
    pub fn of(
        driver: &dyn Driver,
        problem: &Problem,
    ) -> Result<Footprint, Result<Refused, String>> {
        // `input_shapes` fails only on sizes that overflow (its op is the problem's).
        let inputs = driver
            .input_shapes(problem)
            .map_err(|what| Ok(overflow(what)))?;
        let outputs = driver.outputs(problem, &inputs).map_err(Err)?;
        let seeds: Vec<usize> = outputs
            .iter()
            .filter_map(|o| match o.init {
                Init::FromInput(i) => Some(i),
                Init::Poison => None,
            })
            .collect();
        let tensor_bytes = |name: &str, dtype: kernelyard::DType, shape: &[usize]| {
            checked_bytes(dtype, shape)
                .ok_or_else(|| overflow(format!("the bytes of `{name}` {shape:?} in {dtype}")))
        };
        let mut set_bytes = 0usize;
        let mut generate_bytes = 0usize;
        for (i, t) in inputs.iter().enumerate() {
            let bytes = tensor_bytes(t.name, t.dtype, &t.shape).map_err(Ok)?;
            let as_f64 = checked_numel(&t.shape)
                .and_then(|n| n.checked_mul(std::mem::size_of::<f64>()))
                .ok_or_else(|| {
                    Ok(overflow(format!(
                        "the bytes of `{}` {:?} as f64",
                        t.name, t.shape
                    )))
                })?;
            generate_bytes = add(generate_bytes, bytes, "the inputs")
                .and_then(|g| add(g, as_f64, "the inputs"))
                .map_err(Ok)?;
            if !seeds.contains(&i) {
                set_bytes = add(set_bytes, bytes, "the inputs and outputs").map_err(Ok)?;
            }
        }
        for o in &outputs {
            let bytes = tensor_bytes(o.name, o.dtype, &o.shape).map_err(Ok)?;
            set_bytes = add(set_bytes, bytes, "the inputs and outputs").map_err(Ok)?;
        }
        Ok(Footprint {
            set_bytes,
            generate_bytes,
        })
    }

    /// Host bytes the bench needs on `device`: generating, plus one set on the CPU.
    pub fn host_bytes(&self, device: DeviceId) -> Result<usize, Refused> {
        match device.kind {
            DeviceKind::Cpu => add(
                self.generate_bytes,
                self.set_bytes,
                "the inputs and one set",
            ),
            _ => Ok(self.generate_bytes),
        }
    }

    /// Refuses the footprint on `device` with `device_memory` bytes (0: unknown) and
    /// `host_available` bytes of host memory (`None`: unknown).
    pub fn check(
        &self,
        device: DeviceId,
        device_memory: u64,
        host_available: Option<u64>,
    ) -> Result<(), Refused> {
        if device_memory > 0 && self.set_bytes as u64 > device_memory {
            return Err(Refused::DeviceMemory {
                device,
                need: self.set_bytes,
                have: device_memory,
            });
        }
        let need = self.host_bytes(device)?;
        match host_available {
            Some(available) if need as u64 > available => {
                Err(Refused::HostMemory { need, available })
            }
            _ => Ok(()),
        }
    }
}

/// The host memory available now: `MemAvailable` in `/proc/meminfo` (Linux), else `None`.
pub(super) fn host_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib = line.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard::ops::softmax::{RowsProblem, Softmax};
    use kernelyard::ops::Listed;
    use kernelyard::{DType, OpKind, Params};

    use crate::ops::driver;

    fn problem(op: OpKind, params: &str, dtype: DType) -> Problem {
        Problem::from_params(op, &Params::parse(op, params).unwrap(), dtype).unwrap()
    }

    fn footprint(op: OpKind, params: &str, dtype: DType) -> Footprint {
        Footprint::of(driver(op).unwrap(), &problem(op, params, dtype)).unwrap()
    }

    #[test]
    fn runs_are_bounded() {
        assert_eq!(check_runs(MAX_RUNS, MAX_RUNS), Ok(()));
        assert_eq!(check_runs(0, 1), Ok(()));
        let err = check_runs(usize::MAX, 1).unwrap_err();
        assert_eq!(
            err,
            Refused::TooManyRuns {
                what: "warmup",
                given: usize::MAX,
                max: MAX_RUNS
            }
        );
        assert_eq!(
            err.to_string(),
            "`warmup` = 18446744073709551615 is more than the bound of 1000000 runs per \
             kernel; ask for fewer"
        );
        assert!(matches!(
            check_runs(10, MAX_RUNS + 1),
            Err(Refused::TooManyRuns { what: "iters", .. })
        ));
    }

    #[test]
    fn footprints_count_inputs_outputs_and_f64_copies() {
        // softmax 4 x 8 f32: x and out of 128 B each; x generated as f64 (256 B) and f32.
        let fp = footprint(OpKind::Softmax, "rows=4,cols=8", DType::F32);
        assert_eq!(
            fp,
            Footprint {
                set_bytes: 256,
                generate_bytes: 128 + 256
            }
        );
        assert_eq!(fp.host_bytes(DeviceId::CPU), Ok(256 + 384));
        // Accumulating gemm (C in bf16 too): C is uploaded once, as the output it seeds.
        let fp = footprint(OpKind::Gemm, "m=2,n=4,k=8,accumulate=1", DType::BF16);
        let (a, b, c) = (2 * 8 * 2, 8 * 4 * 2, 2 * 4 * 2);
        assert_eq!(fp.set_bytes, a + b + c);
        assert_eq!(fp.generate_bytes, (a + b + c) + (16 + 32 + 8) * 8);
    }

    #[test]
    fn sizes_beyond_memory_are_refused() {
        let fp = Footprint {
            set_bytes: 64 << 30,
            generate_bytes: 200 << 30,
        };
        let gpu = DeviceId {
            kind: DeviceKind::Cuda,
            index: 0,
        };
        assert_eq!(
            fp.check(gpu, 32 << 30, None),
            Err(Refused::DeviceMemory {
                device: gpu,
                need: 64 << 30,
                have: 32 << 30
            })
        );
        let text = fp.check(gpu, 32 << 30, None).unwrap_err().to_string();
        assert!(
            text.contains("needs 64 GiB but cuda:0 has 32 GiB"),
            "{text}"
        );
        // Unknown device memory, unknown host memory: nothing to compare with.
        assert_eq!(fp.check(gpu, 0, None), Ok(()));
        assert_eq!(fp.check(gpu, 80 << 30, Some(256 << 30)), Ok(()));
        assert_eq!(
            fp.check(gpu, 80 << 30, Some(100 << 30)),
            Err(Refused::HostMemory {
                need: 200 << 30,
                available: 100 << 30
            })
        );
        // On the CPU one set lives in host memory too.
        assert_eq!(
            fp.check(DeviceId::CPU, 1 << 40, Some(250 << 30)),
            Err(Refused::HostMemory {
                need: 264 << 30,
                available: 250 << 30
            })
        );
    }

    #[test]
    fn overflowing_sizes_are_refused() {
        let fp = Footprint {
            set_bytes: usize::MAX,
            generate_bytes: 1,
        };
        assert!(matches!(
            fp.host_bytes(DeviceId::CPU),
            Err(Refused::SizeOverflow { .. })
        ));
        // 2^40 x 2^40 elements overflow (built directly: problem validation may refuse it).
        let p = Softmax::wrap(RowsProblem {
            rows: 1 << 40,
            cols: 1 << 40,
            dtype: DType::F32,
            align: 16,
        });
        let err = Footprint::of(driver(OpKind::Softmax).unwrap(), &p).unwrap_err();
        assert_eq!(
            err,
            Ok(Refused::SizeOverflow {
                what: "the bytes of `x` [1099511627776, 1099511627776] in f32".into()
            })
        );
    }

    #[test]
    fn host_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(host_available().is_some_and(|b| b > 0));
        } else {
            assert_eq!(host_available(), None);
        }
    }
}
