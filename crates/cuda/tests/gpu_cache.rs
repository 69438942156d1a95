//! The disk cache on a real device: a fresh process's first load compiles, the next loads the
//! cubin from disk in milliseconds. (Its own test binary: it sets `KERNELYARD_CACHE_DIR`.)

use kernelyard_core::{DeviceId, Runtime};
use kernelyard_cuda::module::Origin;
use kernelyard_cuda::{device, source};

#[test]
#[ignore = "requires a CUDA device"]
fn a_warm_start_loads_from_disk_in_milliseconds() {
    let dir = std::env::temp_dir().join(format!("kernelyard-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::env::set_var("KERNELYARD_CACHE_DIR", &dir);
    kernelyard_cuda::link();
    let _rt = Runtime::new().expect("runtime");
    for entry in source::all() {
        let cold = device::load_report(DeviceId::cuda(0), entry.source).expect("cold");
        let warm = device::load_report(DeviceId::cuda(0), entry.source).expect("warm");
        println!(
            "kernels/{}: cold {:?} {:.1} ms, warm {:?} {:.2} ms",
            entry.source.file, cold.origin, cold.ms, warm.origin, warm.ms
        );
        assert_eq!(cold.origin, Origin::Compiled);
        assert_eq!(warm.origin, Origin::Disk);
        assert!(warm.ms < 20.0, "warm load took {} ms", warm.ms);
    }
    let files = std::fs::read_dir(&dir).expect("cache dir").count();
    assert_eq!(files, source::all().len());
    let _ = std::fs::remove_dir_all(&dir);
}
