// Out-of-place rope arguments whose `x` and `out` view one buffer: `x` borrows it shared and
// `out` mutably, so this must not compile (in place is `RopeArgs::in_place`, one view).
use kernelyard_core::ops::rope::RopeArgs;
use kernelyard_core::{TensorView, TensorViewMut};

fn main() {
    let mut buf = vec![0.5f32; 2 * 3 * 4];
    let positions = vec![0i64, 1];
    let x = TensorView::from_slice(&buf, &[2, 3, 4]).unwrap();
    let out = TensorViewMut::from_slice(&mut buf, &[2, 3, 4]).unwrap();
    let args = RopeArgs::new(x, TensorView::from_slice(&positions, &[2]).unwrap(), out);
    let _ = args.validate();
}
