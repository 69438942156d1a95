//! The disk cache on a real device: a fresh process's first load compiles, the next loads the
//! cubin from disk in milliseconds; entries are private, carry the verified header, and a
//! tampered one is recompiled, never loaded. (Its own test binary: it sets
//! `KERNELYARD_CACHE_DIR`.)

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
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("cache dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), source::all().len());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode(&dir) & 0o777, 0o700);
        for f in &files {
            assert_eq!(mode(f) & 0o777, 0o600, "{}", f.display());
            let bytes = std::fs::read(f).unwrap();
            assert_eq!(&bytes[..8], b"KYKCACHE", "{}", f.display());
        }
    }
    // A tampered entry (one byte of the cubin flipped) is rejected, deleted and recompiled.
    let first = source::all()[0].source;
    let path = files
        .iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{}-", first.file.trim_end_matches(".cu")))
        })
        .expect("the first source's entry");
    let mut bytes = std::fs::read(path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(path, &bytes).unwrap();
    let again = device::load_report(DeviceId::cuda(0), first).expect("after tampering");
    assert_eq!(again.origin, Origin::Compiled);
    let warm = device::load_report(DeviceId::cuda(0), first).expect("warm again");
    assert_eq!(warm.origin, Origin::Disk);
    assert!(kernelyard_kernels::cache::notes()
        .iter()
        .any(|n| n.to_string().contains("SHA-256 does not match")));
    let _ = std::fs::remove_dir_all(&dir);
}
