//! `DeviceBuffer::download(len)` checks `len` against the buffer before it allocates the host
//! vector (issue 13: a huge `len` used to abort on the allocation, or panic with "capacity
//! overflow", before the check).

use kernelyard::{DeviceId, Error, Runtime, ValidationError};

fn runtime() -> Runtime {
    kernelyard_reference::link();
    Runtime::builder().pins("").build().unwrap()
}

#[test]
fn download_checks_len_before_allocating() {
    let rt = runtime();
    let mut buf = rt.alloc(DeviceId::CPU, 16).unwrap();
    buf.upload(&[1.0f32, 2.0, 3.0, 4.0]).unwrap();
    assert_eq!(buf.download::<f32>(4).unwrap(), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(buf.download::<f32>(2).unwrap(), [1.0, 2.0]);
    for len in [5, usize::MAX / 4, usize::MAX / 4 + 1, usize::MAX] {
        match buf.download::<f32>(len) {
            Err(Error::Validation(ValidationError::Length {
                len: have,
                expected,
                ..
            })) => {
                assert_eq!((have, expected), (4, len));
            }
            other => panic!("download({len}): {other:?}"),
        }
    }
}
