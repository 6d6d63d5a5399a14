//! `Conv` (two-dimensional) on the crate's fast kernels.

use super::{Activation, Op, float_input, kernels, optional};
use crate::onnx::attrs::Attributes;
use crate::onnx::error::{OpResult, op_bail};
use crate::onnx::value::{Float, Value};
use burn::tensor::Tensor;
use burn::tensor::ops::ConvOptions;

/// How the padding is decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum AutoPad {
    /// The `pads` attribute.
    NotSet,
    /// No padding.
    Valid,
    /// TensorFlow's "SAME": output = ceil(input / stride), the odd pixel at the end (upper) or
    /// the start (lower).
    Same { upper: bool },
}

impl AutoPad {
    pub(super) fn parse(a: &Attributes) -> OpResult<Self> {
        Ok(match a.string_or("auto_pad", "NOTSET")?.as_str() {
            "NOTSET" => AutoPad::NotSet,
            "VALID" => AutoPad::Valid,
            "SAME_UPPER" => AutoPad::Same { upper: true },
            "SAME_LOWER" => AutoPad::Same { upper: false },
            other => op_bail!("auto_pad `{other}` is not supported"),
        })
    }

    /// `(begin, end)` padding per spatial axis.
    pub(super) fn pads(
        self,
        pads: &[usize; 4],
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
    ) -> [(usize, usize); 2] {
        match self {
            AutoPad::NotSet => [(pads[0], pads[2]), (pads[1], pads[3])],
            AutoPad::Valid => [(0, 0); 2],
            AutoPad::Same { upper } => std::array::from_fn(|i| {
                let out = input[i].div_ceil(stride[i]);
                let span = (kernel[i] - 1) * dilation[i] + 1;
                let total = ((out - 1) * stride[i] + span).saturating_sub(input[i]);
                let small = total / 2;
                if upper {
                    (small, total - small)
                } else {
                    (total - small, small)
                }
            }),
        }
    }
}

/// Two spatial values of an attribute (`strides`, `dilations`), or `default`.
pub(super) fn pair(a: &Attributes, name: &str, default: usize) -> OpResult<[usize; 2]> {
    match a.ints(name)?.as_deref() {
        None => Ok([default; 2]),
        Some(&[h, w]) if h > 0 && w > 0 => Ok([h as usize, w as usize]),
        Some(v) => op_bail!("`{name}` {v:?}: only two-dimensional (positive) values are supported"),
    }
}

/// `pads` as [top, left, bottom, right].
pub(super) fn pads4(a: &Attributes) -> OpResult<[usize; 4]> {
    match a.ints("pads")?.as_deref() {
        None => Ok([0; 4]),
        Some(&[t, l, b, r]) if t >= 0 && l >= 0 && b >= 0 && r >= 0 => {
            Ok([t as usize, l as usize, b as usize, r as usize])
        }
        Some(v) => op_bail!("`pads` {v:?}: only two-dimensional non-negative padding is supported"),
    }
}

/// A convolution's input, weight, bias and options.
type Operands = (Tensor<4>, Tensor<4>, Option<Tensor<1>>, ConvOptions<2>);

#[derive(Debug)]
struct ConvOp {
    auto_pad: AutoPad,
    pads: [usize; 4],
    stride: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
    /// A constant-mode `Pad` absorbed at load (inputs 3.. are its pads, value, axes): zero
    /// padding of the spatial axes becomes the convolution's own, saving a padded copy.
    pre_pad: Option<Box<dyn Op>>,
}

impl ConvOp {
    /// The input and the extra spatial padding the absorbed `Pad` asks for.
    fn padded_input(&self, inputs: &[Option<&Value>]) -> OpResult<(Float, [(usize, usize); 2])> {
        let x = float_input(inputs, 0)?;
        let Some(pad) = &self.pre_pad else {
            return Ok((x, [(0, 0); 2]));
        };
        let pads = &super::ints_input(inputs, 3)?.data;
        let zero = optional(inputs, 4)
            .map(super::scalar)
            .transpose()?
            .is_none_or(|v| v == 0.0);
        let spatial_only = pads.len() == 8 && [0, 1, 4, 5].iter().all(|&i| pads[i] == 0);
        if x.rank() == 4
            && zero
            && spatial_only
            && optional(inputs, 5).is_none()
            && pads.iter().all(|&p| p >= 0)
        {
            let p = |i: usize| pads[i] as usize;
            return Ok((x, [(p(2), p(6)), (p(3), p(7))]));
        }
        let pad_inputs: Vec<Option<&Value>> = [0, 3, 4, 5]
            .iter()
            .map(|&i| inputs.get(i).copied().flatten())
            .collect();
        Ok((pad.run(&pad_inputs)?.remove(0).to_float()?, [(0, 0); 2]))
    }

    /// The input, weight and bias as tensors, and the options, checked against each other.
    fn operands(&self, inputs: &[Option<&Value>]) -> OpResult<Operands> {
        let (x, extra) = self.padded_input(inputs)?;
        let w = float_input(inputs, 1)?;
        if x.rank() != 4 || w.rank() != 4 {
            op_bail!(
                "only 2-D convolutions are supported (input {:?}, weight {:?})",
                x.shape(),
                w.shape()
            );
        }
        let (xs, ws) = (x.shape(), w.shape());
        if xs[1] != ws[1] * self.groups || ws[0] % self.groups != 0 {
            op_bail!(
                "input {xs:?} does not fit weight {ws:?} in {} groups",
                self.groups
            );
        }
        let kernel = [ws[2], ws[3]];
        let mut padding = self.auto_pad.pads(
            &self.pads,
            [xs[2], xs[3]],
            kernel,
            self.stride,
            self.dilation,
        );
        for (p, e) in padding.iter_mut().zip(extra) {
            *p = (p.0 + e.0, p.1 + e.1);
        }
        for i in 0..2 {
            let span = (kernel[i] - 1) * self.dilation[i] + 1;
            if xs[2 + i] + padding[i].0 + padding[i].1 < span {
                op_bail!("input {xs:?} is smaller than the kernel {kernel:?}");
            }
        }
        let bias = optional(inputs, 2)
            .map(|b| b.to_float()?.to_tensor::<1>())
            .transpose()?;
        let options =
            ConvOptions::new_with_padding(self.stride, padding, self.dilation, self.groups);
        Ok((x.to_tensor::<4>()?, w.to_tensor::<4>()?, bias, options))
    }
}

impl Op for ConvOp {
    fn absorb_pad(&self, pad: Box<dyn Op>) -> Result<Box<dyn Op>, Box<dyn Op>> {
        if self.pre_pad.is_some() || self.auto_pad != AutoPad::NotSet {
            return Err(pad);
        }
        Ok(Box::new(ConvOp {
            auto_pad: self.auto_pad,
            pads: self.pads,
            stride: self.stride,
            dilation: self.dilation,
            groups: self.groups,
            pre_pad: Some(pad),
        }))
    }

    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let (x, w, bias, options) = self.operands(inputs)?;
        let y = kernels::conv2d(x, w, bias, options);
        Ok(vec![Value::Float(Float::from_tensor(y))])
    }

    fn run_with_epilogue(
        &self,
        inputs: &[Option<&Value>],
        residual: Option<Tensor<4>>,
        act: Activation,
    ) -> Option<OpResult<Vec<Value>>> {
        Some(self.operands(inputs).map(|(x, w, bias, options)| {
            let y = match residual {
                Some(residual) => kernels::conv2d_add_act(x, w, bias, residual, options, act),
                None => kernels::conv2d_act(x, w, bias, options, act),
            };
            vec![Value::Float(Float::from_tensor(y))]
        }))
    }
}

pub(super) fn conv(a: &Attributes) -> OpResult<Box<dyn Op>> {
    let groups = a.int_or("group", 1)?;
    if groups < 1 {
        op_bail!("group {groups} must be positive");
    }
    if let Some(k) = a.ints("kernel_shape")?
        && k.len() != 2
    {
        op_bail!("kernel_shape {k:?}: only 2-D convolutions are supported");
    }
    Ok(Box::new(ConvOp {
        auto_pad: AutoPad::parse(a)?,
        pads: pads4(a)?,
        stride: pair(a, "strides", 1)?,
        dilation: pair(a, "dilations", 1)?,
        groups: groups as usize,
        pre_pad: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_puts_the_odd_pixel_last_for_upper() {
        let same = AutoPad::Same { upper: true };
        // 17 wide, kernel 3, stride 2: out 9, total padding 2.
        assert_eq!(
            same.pads(&[0; 4], [17, 16], [3, 3], [2, 2], [1, 1]),
            [(1, 1), (0, 1)]
        );
        let lower = AutoPad::Same { upper: false };
        assert_eq!(
            lower.pads(&[0; 4], [16, 16], [3, 3], [2, 2], [1, 1]),
            [(1, 0), (1, 0)]
        );
        assert_eq!(
            AutoPad::NotSet.pads(&[1, 2, 3, 4], [8, 8], [3, 3], [1, 1], [1, 1]),
            [(1, 3), (2, 4)]
        );
    }

    /// A `Pad` absorbed into a `Conv` gives what the two nodes give, for zero spatial padding
    /// (taken into the convolution) and for negative pads and a non-zero value (run as a Pad).
    #[test]
    fn an_absorbed_pad_equals_pad_then_conv() {
        use crate::onnx::value::Ints;
        let none = Attributes::default();
        let x = Value::Float(
            Float::from_vec(
                (0..2 * 2 * 5 * 6)
                    .map(|v| (v as f32 * 0.37).sin())
                    .collect(),
                vec![2, 2, 5, 6],
            )
            .unwrap(),
        );
        let w = Value::Float(
            Float::from_vec(
                (0..3 * 2 * 3 * 2)
                    .map(|v| (v as f32 * 0.11).cos())
                    .collect(),
                vec![3, 2, 3, 2],
            )
            .unwrap(),
        );
        let pad = super::super::shape::pad(&none).unwrap();
        let conv = conv(&none).unwrap();
        let fused = conv
            .absorb_pad(super::super::shape::pad(&none).unwrap())
            .unwrap();
        let zero = Value::Float(Float::from_vec(vec![0.0], vec![]).unwrap());
        let half = Value::Float(Float::from_vec(vec![0.5], vec![]).unwrap());
        for (pads, value) in [
            ([0, 0, 1, 0, 0, 0, 2, 1], &zero),
            ([0, 0, -1, 2, 0, 0, 1, -2], &zero),
            ([0, 0, 1, 1, 0, 0, 0, 1], &half),
        ] {
            let pads = Value::Int(Ints::vector(pads.to_vec()));
            let padded = pad
                .run(&[Some(&x), Some(&pads), Some(value)])
                .unwrap()
                .remove(0);
            let want = conv
                .run(&[Some(&padded), Some(&w)])
                .unwrap()
                .remove(0)
                .to_float()
                .unwrap();
            let got = fused
                .run(&[Some(&x), Some(&w), None, Some(&pads), Some(value)])
                .unwrap()
                .remove(0)
                .to_float()
                .unwrap();
            assert_eq!(got.shape(), want.shape());
            let d = got
                .to_vec()
                .iter()
                .zip(want.to_vec())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(d < 1e-6, "{pads:?}: {d}");
        }
    }
}
