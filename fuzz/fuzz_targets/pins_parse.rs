//! `KERNELYARD_KERNELS` text -> `Pins::parse`, against the registry with every backend linked.
//!
//! Whatever the text, parsing returns pins or a typed error. Accepted pins hold only kernels of
//! their op and device kind, and a runtime built with them selects, for each pinned op's example
//! problem on a device of the pin's kind, the pinned kernel or an error: never another kernel
//! (a pin fails rather than substitutes).

#![no_main]

use kernelyard::{DeviceKind, OpKind, Params, Pins, Policy, Problem, Runtime};
use kernelyard_fuzz::{check_plan, devices, registry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = std::str::from_utf8(data) else {
        return;
    };
    let pins = match Pins::parse(spec, registry()) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let mut pinned = Vec::new();
    for op in OpKind::ALL {
        for kind in [DeviceKind::Cpu, DeviceKind::Cuda, DeviceKind::Rocm] {
            if let Some(k) = pins.get(op, kind) {
                assert_eq!(k.meta().op, op, "{}", k.meta().name);
                assert_eq!(k.meta().device, kind, "{}", k.meta().name);
                pinned.push((op, kind, k.meta().name));
            }
        }
    }
    if pinned.is_empty() {
        return;
    }
    // The same text through the runtime builder (as `KERNELYARD_KERNELS` is read).
    let mut b = Runtime::builder().no_probe().pins(spec);
    for caps in devices() {
        b = b.simulated_device(caps.clone());
    }
    let rt = b.build().expect("pins that parse build a runtime");
    for (op, kind, name) in pinned {
        let example = op.example();
        let params = Params::parse(op, example.params).expect("the example parses");
        let problem = Problem::from_params(op, &params, example.dtype).expect("the example");
        for caps in devices().iter().filter(|c| c.device.kind == kind) {
            let policy = Policy::auto();
            if let Ok(plan) = rt.select(caps.device, &problem, &policy) {
                check_plan(&plan, caps, &problem, &policy);
                assert_eq!(plan.kernel_name(), name, "a pin was substituted");
            }
        }
    }
});
