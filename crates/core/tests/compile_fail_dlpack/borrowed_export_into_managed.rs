// Only an export that borrows nothing hands out an owned managed tensor safely.
use kernelyard_core::dlpack::export;
use kernelyard_core::TensorView;

fn main() {
    let data = vec![0f32; 4];
    let exported = export(TensorView::from_slice(&data, &[4]).unwrap()).unwrap();
    let managed = exported.into_managed();
    drop(data);
    drop(managed);
}
