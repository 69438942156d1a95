// A read-only view made from a writable one borrows it: its slice cannot be held while the
// writable view gives out a mutable slice of the same buffer.
use kernelyard_core::TensorViewMut;

fn main() {
    let mut buf = vec![0.5f32; 4];
    let mut w = TensorViewMut::from_slice(&mut buf, &[4]).unwrap();
    let r = w.as_view();
    let read = r.as_slice::<f32>("r").unwrap();
    let write = w.as_mut_slice::<f32>("w").unwrap();
    write[0] = read[0] + 1.0;
}
