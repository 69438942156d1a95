// In place, the tensor read is borrowed from the one writable view: a slice of it cannot be
// held while a mutable slice of the output is made.
use kernelyard_core::ops::rope::RopeArgs;
use kernelyard_core::{TensorView, TensorViewMut};

fn main() {
    let mut buf = vec![0.5f32; 2 * 3 * 4];
    let positions = vec![0i64, 1];
    let mut args = RopeArgs::in_place(
        TensorViewMut::from_slice(&mut buf, &[2, 3, 4]).unwrap(),
        TensorView::from_slice(&positions, &[2]).unwrap(),
    );
    let x = args.input.x();
    let read = x.as_slice::<f32>("x").unwrap();
    let write = args.input.out_mut().as_mut_slice::<f32>("out").unwrap();
    write[0] = read[0] + 1.0;
}
