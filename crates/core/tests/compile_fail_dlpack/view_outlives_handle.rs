// An imported view borrows the managed tensor: it cannot outlive it (the deleter runs on drop).
use kernelyard_core::dlpack::{export_owning, import_view};
use kernelyard_core::TensorView;

fn main() {
    let view = {
        let managed = export_owning(vec![0f32; 4], |v| TensorView::from_slice(v, &[4]))
            .unwrap()
            .into_managed();
        // SAFETY: the export owns its data.
        unsafe { import_view(&managed) }.unwrap()
    };
    println!("{:?}", view.shape());
}
