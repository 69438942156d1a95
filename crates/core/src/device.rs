//! Devices: their kind and their id (`cpu`, `cuda:0`, `rocm:1`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The kind of device a kernel runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// The host CPU.
    Cpu,
    /// An NVIDIA GPU driven through the CUDA driver API.
    Cuda,
    /// An AMD GPU driven through HIP.
    Rocm,
}

impl DeviceKind {
    /// Every device kind.
    pub const ALL: [DeviceKind; 3] = [DeviceKind::Cpu, DeviceKind::Cuda, DeviceKind::Rocm];

    /// The lowercase name (`cpu`, `cuda`, `rocm`).
    pub const fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
            DeviceKind::Rocm => "rocm",
        }
    }

    /// DLPack's `DLDeviceType` code (`kDLCPU` = 1, `kDLCUDA` = 2, `kDLROCM` = 10).
    pub const fn dlpack(self) -> i32 {
        match self {
            DeviceKind::Cpu => 1,
            DeviceKind::Cuda => 2,
            DeviceKind::Rocm => 10,
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One device: its kind and its ordinal among devices of that kind.
///
/// Parses from and prints as `cpu`, `cuda:0`, `rocm:1`. `cuda` alone means `cuda:0`; the host
/// CPU is always `cpu` (index 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId {
    /// The device kind.
    pub kind: DeviceKind,
    /// The ordinal among devices of that kind.
    pub index: u32,
}

impl DeviceId {
    /// The host CPU.
    pub const CPU: DeviceId = DeviceId {
        kind: DeviceKind::Cpu,
        index: 0,
    };

    /// A device id from its parts.
    pub const fn new(kind: DeviceKind, index: u32) -> Self {
        DeviceId { kind, index }
    }

    /// CUDA device `index`.
    pub const fn cuda(index: u32) -> Self {
        DeviceId::new(DeviceKind::Cuda, index)
    }

    /// ROCm device `index`.
    pub const fn rocm(index: u32) -> Self {
        DeviceId::new(DeviceKind::Rocm, index)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            DeviceKind::Cpu if self.index == 0 => f.write_str("cpu"),
            kind => write!(f, "{}:{}", kind, self.index),
        }
    }
}

impl FromStr for DeviceId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: &'static str| Error::InvalidDevice {
            input: s.to_string(),
            why,
        };
        let (kind, index) = match s.trim().split_once(':') {
            Some((k, i)) => (k, Some(i)),
            None => (s.trim(), None),
        };
        let kind = match kind.to_ascii_lowercase().as_str() {
            "cpu" => DeviceKind::Cpu,
            "cuda" | "gpu" => DeviceKind::Cuda,
            "rocm" | "hip" => DeviceKind::Rocm,
            _ => return Err(bad("the kind must be `cpu`, `cuda` or `rocm`")),
        };
        let index = match index {
            None => 0,
            Some(i) => i
                .parse::<u32>()
                .map_err(|_| bad("the index after `:` must be a non-negative integer"))?,
        };
        if kind == DeviceKind::Cpu && index != 0 {
            return Err(bad("there is one CPU device: write `cpu`"));
        }
        Ok(DeviceId { kind, index })
    }
}

impl TryFrom<String> for DeviceId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<DeviceId> for String {
    fn from(d: DeviceId) -> String {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        for s in ["cpu", "cuda:0", "rocm:1", "cuda:7"] {
            assert_eq!(s.parse::<DeviceId>().unwrap().to_string(), s);
        }
        assert_eq!("cuda".parse::<DeviceId>().unwrap(), DeviceId::cuda(0));
        assert_eq!("CPU".parse::<DeviceId>().unwrap(), DeviceId::CPU);
        for bad in ["tpu:0", "cuda:-1", "cuda:x", "cpu:1", ""] {
            assert!(matches!(
                bad.parse::<DeviceId>(),
                Err(Error::InvalidDevice { .. })
            ));
        }
    }
}
