//! The kernel registry: every kernel linked into the binary, keyed by (device kind, op).

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::caps::ArchReq;
use crate::device::DeviceKind;
use crate::error::Error;
use crate::kernel::{Kernel, KernelEntry};
use crate::ops::OpKind;

/// Kernels by name and by (device kind, op), each list ordered by priority (highest first),
/// then name.
pub struct Registry {
    by_name: HashMap<&'static str, &'static dyn Kernel>,
    by_key: HashMap<(DeviceKind, OpKind), Vec<&'static dyn Kernel>>,
    all: Vec<&'static dyn Kernel>,
}

impl Registry {
    /// Builds a registry from kernels; two kernels with one name are an error naming both.
    pub fn from_kernels(
        kernels: impl IntoIterator<Item = &'static dyn Kernel>,
    ) -> Result<Registry, Error> {
        let mut by_name: HashMap<&'static str, &'static dyn Kernel> = HashMap::new();
        let mut by_key: HashMap<(DeviceKind, OpKind), Vec<&'static dyn Kernel>> = HashMap::new();
        let mut all = Vec::new();
        for k in kernels {
            let m = k.meta();
            if !m.name.starts_with(m.backend) || !m.name[m.backend.len()..].starts_with('.') {
                return Err(Error::BadKernelMeta {
                    name: m.name,
                    why: "the name must start with `<backend>.`",
                });
            }
            let arch_kind = match m.arch {
                ArchReq::Any => m.device,
                ArchReq::Cuda { .. } => DeviceKind::Cuda,
                ArchReq::Rocm { .. } => DeviceKind::Rocm,
            };
            if arch_kind != m.device {
                return Err(Error::BadKernelMeta {
                    name: m.name,
                    why: "its arch range is for another device kind than the kernel's",
                });
            }
            if let Some(prev) = by_name.insert(m.name, k) {
                return Err(Error::DuplicateKernel {
                    name: m.name,
                    first: prev.meta().source,
                    second: m.source,
                });
            }
            by_key.entry((m.device, m.op)).or_default().push(k);
            all.push(k);
        }
        let order = |a: &&'static dyn Kernel, b: &&'static dyn Kernel| {
            let (a, b) = (a.meta(), b.meta());
            b.priority.cmp(&a.priority).then(a.name.cmp(b.name))
        };
        for list in by_key.values_mut() {
            list.sort_by(order);
        }
        all.sort_by(|a, b| {
            let (ma, mb) = (a.meta(), b.meta());
            (ma.op, ma.device, -ma.priority, ma.name).cmp(&(
                mb.op,
                mb.device,
                -mb.priority,
                mb.name,
            ))
        });
        Ok(Registry {
            by_name,
            by_key,
            all,
        })
    }

    /// The registry of every kernel submitted with `inventory` in this binary, built once.
    pub fn global() -> Result<&'static Registry, Error> {
        static GLOBAL: OnceLock<Result<Registry, Error>> = OnceLock::new();
        let built = GLOBAL.get_or_init(|| {
            Registry::from_kernels(inventory::iter::<KernelEntry>.into_iter().map(|e| e.0))
        });
        match built {
            Ok(r) => Ok(r),
            // Registration errors hold only static strings, so they are rebuilt exactly.
            Err(Error::DuplicateKernel {
                name,
                first,
                second,
            }) => Err(Error::DuplicateKernel {
                name,
                first,
                second,
            }),
            Err(Error::BadKernelMeta { name, why }) => Err(Error::BadKernelMeta { name, why }),
            Err(_) => Err(Error::BadKernelMeta {
                name: "registry",
                why: "the registry could not be built",
            }),
        }
    }

    /// A kernel by name.
    pub fn get(&self, name: &str) -> Option<&'static dyn Kernel> {
        self.by_name.get(name).copied()
    }

    /// Kernels for an op on a device kind, highest priority first.
    pub fn candidates(&self, kind: DeviceKind, op: OpKind) -> &[&'static dyn Kernel] {
        self.by_key
            .get(&(kind, op))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Every kernel, ordered by op, device kind, priority and name.
    pub fn all(&self) -> &[&'static dyn Kernel] {
        &self.all
    }

    /// Names of the kernels for an op, on any device.
    pub fn names_for(&self, op: OpKind) -> Vec<&'static str> {
        self.all
            .iter()
            .filter(|k| k.meta().op == op)
            .map(|k| k.meta().name)
            .collect()
    }

    /// Device kinds with at least one kernel for `op`.
    pub fn kinds_for(&self, op: OpKind) -> Vec<DeviceKind> {
        DeviceKind::ALL
            .into_iter()
            .filter(|&k| !self.candidates(k, op).is_empty())
            .collect()
    }
}
