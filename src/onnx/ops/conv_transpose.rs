//! `ConvTranspose` (two-dimensional) on burn's transposed convolution.
//!
//! burn pads symmetrically; ONNX pads may differ at the two ends (and `output_shape` or
//! `auto_pad` decide them), so an uneven case runs unpadded and crops the full result.

use super::conv::{AutoPad, pads4, pair};
use super::{Op, float_input, optional};
use crate::onnx::attrs::Attributes;
use crate::onnx::error::{OpResult, op_bail};
use crate::onnx::value::{Float, Value};
use burn::tensor::Tensor;
use burn::tensor::module::conv_transpose2d;
use burn::tensor::ops::ConvTransposeOptions;

#[derive(Debug)]
struct ConvTransposeOp {
    auto_pad: AutoPad,
    pads: [usize; 4],
    stride: [usize; 2],
    dilation: [usize; 2],
    output_padding: [usize; 2],
    output_shape: Option<[usize; 2]>,
    groups: usize,
}

impl ConvTransposeOp {
    /// `(begin, end)` padding per spatial axis; `full[i]` is the unpadded output length.
    fn padding(&self, input: [usize; 2], full: [usize; 2]) -> OpResult<[(usize, usize); 2]> {
        let target = match (self.output_shape, self.auto_pad) {
            (Some(shape), _) => Some(shape),
            (None, AutoPad::Same { .. }) => {
                Some([input[0] * self.stride[0], input[1] * self.stride[1]])
            }
            (None, _) => None,
        };
        // As onnxruntime: the odd pixel at the start unless SAME_UPPER (NOTSET included).
        let upper = matches!(self.auto_pad, AutoPad::Same { upper: true });
        Ok(match (target, self.auto_pad) {
            (None, AutoPad::Valid) => [(0, 0); 2],
            (None, _) => [(self.pads[0], self.pads[2]), (self.pads[1], self.pads[3])],
            (Some(shape), _) => {
                let mut out = [(0, 0); 2];
                for i in 0..2 {
                    let Some(total) = (full[i] + self.output_padding[i]).checked_sub(shape[i])
                    else {
                        op_bail!("ConvTranspose output_shape {shape:?} is larger than {full:?}");
                    };
                    let half = total / 2;
                    out[i] = if upper {
                        (half, total - half)
                    } else {
                        (total - half, half)
                    };
                }
                out
            }
        })
    }
}

impl Op for ConvTransposeOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        let w = float_input(inputs, 1)?;
        if x.rank() != 4 || w.rank() != 4 {
            op_bail!(
                "only 2-D transposed convolutions are supported (input {:?}, weight {:?})",
                x.shape(),
                w.shape()
            );
        }
        let (xs, ws) = (x.shape().to_vec(), w.shape().to_vec());
        if xs[1] != ws[0] || ws[0] % self.groups != 0 {
            op_bail!(
                "input {xs:?} does not fit weight {ws:?} in {} groups",
                self.groups
            );
        }
        let full: [usize; 2] = std::array::from_fn(|i| {
            (xs[2 + i] - 1) * self.stride[i] + (ws[2 + i] - 1) * self.dilation[i] + 1
        });
        let padding = self.padding([xs[2], xs[3]], full)?;
        let bias = optional(inputs, 2)
            .map(|b| b.to_float()?.to_tensor::<1>())
            .transpose()?;
        let even = padding.iter().all(|&(b, e)| b == e);
        let options = |pad: [usize; 2], out: [usize; 2]| {
            ConvTransposeOptions::new(self.stride, pad, out, self.dilation, self.groups)
        };
        let (x, w) = (x.to_tensor::<4>()?, w.to_tensor::<4>()?);
        for i in 0..2 {
            if full[i] + self.output_padding[i] <= padding[i].0 + padding[i].1 {
                op_bail!("ConvTranspose pads {padding:?} leave an empty output for input {xs:?}");
            }
        }
        if even {
            let pad = [padding[0].0, padding[1].0];
            let y = conv_transpose2d(x, w, bias, options(pad, self.output_padding));
            return Ok(vec![Value::Float(Float::from_tensor(y))]);
        }
        // Uneven: the full output, zeros for the output padding past its end, then the crop.
        let mut y = conv_transpose2d(x, w, None, options([0, 0], [0, 0]));
        for i in 0..2 {
            let (begin, end) = padding[i];
            let length = full[i] + self.output_padding[i] - begin - end;
            let extra = (begin + length).saturating_sub(full[i]);
            if extra > 0 {
                let mut dims = y.dims();
                dims[2 + i] = extra;
                y = Tensor::cat(vec![y.clone(), Tensor::zeros(dims, &y.device())], 2 + i);
            }
            y = y.narrow(2 + i, begin, length);
        }
        if let Some(b) = bias {
            let c = b.dims()[0];
            y = y + b.reshape([1, c, 1, 1]);
        }
        Ok(vec![Value::Float(Float::from_tensor(y))])
    }
}

pub(super) fn conv_transpose(a: &Attributes) -> OpResult<Box<dyn Op>> {
    let groups = a.int_or("group", 1)?;
    if groups < 1 {
        op_bail!("group {groups} must be positive");
    }
    if let Some(k) = a.ints("kernel_shape")?
        && k.len() != 2
    {
        op_bail!("kernel_shape {k:?}: only 2-D transposed convolutions are supported");
    }
    let output_padding = match a.ints("output_padding")?.as_deref() {
        None => [0, 0],
        Some(&[h, w]) if h >= 0 && w >= 0 => [h as usize, w as usize],
        Some(v) => op_bail!("output_padding {v:?}: only two non-negative values are supported"),
    };
    let output_shape = match a.ints("output_shape")?.as_deref() {
        None => None,
        Some(&[h, w]) if h > 0 && w > 0 => Some([h as usize, w as usize]),
        Some(v) => op_bail!("output_shape {v:?}: only two positive (spatial) values are supported"),
    };
    Ok(Box::new(ConvTransposeOp {
        auto_pad: AutoPad::parse(a)?,
        pads: pads4(a)?,
        stride: pair(a, "strides", 1)?,
        dilation: pair(a, "dilations", 1)?,
        output_padding,
        output_shape,
        groups: groups as usize,
    }))
}
