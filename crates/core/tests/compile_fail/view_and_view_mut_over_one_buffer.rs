// A `TensorViewMut` borrows its buffer mutably for its whole life: a `TensorView` of the same
// buffer cannot be made meanwhile, so `as_slice` and `as_mut_slice` never see one buffer.
use kernelyard_core::{TensorView, TensorViewMut};

fn main() {
    let mut buf = vec![0.5f32; 4];
    let mut w = TensorViewMut::from_slice(&mut buf, &[4]).unwrap();
    let r = TensorView::from_slice(&buf, &[4]).unwrap();
    let read = r.as_slice::<f32>("r").unwrap();
    let write = w.as_mut_slice::<f32>("w").unwrap();
    write[0] = read[0] + 1.0;
}
