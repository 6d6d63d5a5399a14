//! The residual a convolution adds in its epilogue (`act(conv(x) + residual)`), taken as the
//! buffer its output is written into: a ResNet block's sum and an inverted residual block's
//! then need neither a tensor of their own nor a pass over the activations.

use burn::backend::DType;
use burn::backend::flex::FlexTensor;

use super::im2col::ConvGeometry;

/// Whether `residual` is a float32 tensor of exactly the convolution's output shape (a
/// broadcast residual goes through flex's add instead).
pub(super) fn fits(g: &ConvGeometry, residual: &FlexTensor) -> bool {
    let [oh, ow] = g.out_size;
    residual.dtype() == DType::F32
        && residual.layout().shape().to_vec() == [g.batch, g.out_channels, oh, ow]
}

/// The residual's values in row-major order: its own buffer when this tensor is its only
/// owner and holds it contiguous from the start, a copy otherwise (as when the caller keeps
/// the block's input for later).
pub(super) fn into_output(residual: FlexTensor) -> Vec<f32> {
    residual
        .into_data()
        .try_into_vec::<f32>()
        .expect("a float32 tensor, checked by `fits`")
}

#[cfg(test)]
mod tests {
    use burn::backend::TensorData;

    use super::*;

    #[test]
    fn an_owned_buffer_is_taken_a_shared_one_copied() {
        let values: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let owned = FlexTensor::from_data(TensorData::new(values.clone(), [1, 2, 3, 4]));
        let address = owned.storage::<f32>().as_ptr();
        let taken = into_output(owned);
        assert_eq!((taken.as_ptr(), &taken), (address, &values));

        let shared = FlexTensor::from_data(TensorData::new(values.clone(), [1, 2, 3, 4]));
        let keeper = shared.clone();
        let copied = into_output(shared);
        assert_ne!(copied.as_ptr(), keeper.storage::<f32>().as_ptr());
        assert_eq!(copied, values);
        // A transposed view comes back in its own (logical) order.
        let t = keeper.transpose(2, 3);
        let expected: Vec<f32> = (0..2)
            .flat_map(|c| {
                (0..4).flat_map(move |x| (0..3).map(move |y| (c * 12 + y * 4 + x) as f32))
            })
            .collect();
        assert_eq!(into_output(t), expected);
    }
}
