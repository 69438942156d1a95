// An export borrows the view's memory: it cannot outlive it.
use kernelyard_core::dlpack::export;
use kernelyard_core::TensorView;

fn main() {
    let exported = {
        let data = vec![0f32; 4];
        export(TensorView::from_slice(&data, &[4]).unwrap()).unwrap()
    };
    println!("{}", exported.is_read_only());
}
