//! Max, average and global pooling over two spatial dimensions.

use super::conv::{AutoPad, pads4, pair};
use super::{Op, float_input, kernels};
use crate::onnx::attrs::Attributes;
use crate::onnx::error::{OpResult, op_bail};
use crate::onnx::value::{Float, Value};
use burn::tensor::module;
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};

/// The window attributes shared by `MaxPool` and `AveragePool`.
#[derive(Debug)]
struct Window {
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    auto_pad: AutoPad,
    pads: [usize; 4],
    ceil_mode: bool,
}

impl Window {
    fn parse(a: &Attributes) -> OpResult<Self> {
        let Some(kernel) = a.ints("kernel_shape")? else {
            op_bail!("kernel_shape is required");
        };
        let kernel = match kernel[..] {
            [h, w] if h > 0 && w > 0 => [h as usize, w as usize],
            _ => op_bail!("kernel_shape {kernel:?}: only 2-D pooling is supported"),
        };
        Ok(Window {
            kernel,
            stride: pair(a, "strides", 1)?,
            dilation: pair(a, "dilations", 1)?,
            auto_pad: AutoPad::parse(a)?,
            pads: pads4(a)?,
            ceil_mode: a.int_or("ceil_mode", 0)? != 0,
        })
    }

    fn padding(&self, x: &Float) -> [(usize, usize); 2] {
        let s = x.shape();
        self.auto_pad.pads(
            &self.pads,
            [s[2], s[3]],
            self.kernel,
            self.stride,
            self.dilation,
        )
    }
}

fn four_d(x: &Float) -> OpResult<()> {
    if x.rank() != 4 {
        op_bail!(
            "only 2-D pooling of (N, C, H, W) is supported, got {:?}",
            x.shape()
        );
    }
    Ok(())
}

#[derive(Debug)]
struct MaxPoolOp(Window);

impl Op for MaxPoolOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        four_d(&x)?;
        let w = &self.0;
        let padding = w.padding(&x);
        let t = x.to_tensor::<4>()?;
        let y = if padding.iter().all(|(b, e)| b == e) && w.dilation == [1, 1] && !w.ceil_mode {
            kernels::max_pool2d(t, w.kernel, w.stride, [padding[0].0, padding[1].0])
        } else {
            let options = MaxPoolOptions::new(w.kernel)
                .with_stride(w.stride)
                .with_padding_pairs(padding)
                .with_dilation(w.dilation)
                .with_ceil_mode(w.ceil_mode);
            module::max_pool2d(t, options)
        };
        Ok(vec![Value::Float(Float::from_tensor(y))])
    }
}

pub(super) fn max_pool(a: &Attributes) -> OpResult<Box<dyn Op>> {
    if a.int_or("storage_order", 0)? != 0 {
        op_bail!("MaxPool storage_order=1 is not supported");
    }
    Ok(Box::new(MaxPoolOp(Window::parse(a)?)))
}

#[derive(Debug)]
struct AvgPoolOp {
    window: Window,
    count_include_pad: bool,
}

impl Op for AvgPoolOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        four_d(&x)?;
        let w = &self.window;
        let options = AvgPoolOptions::new(w.kernel)
            .with_stride(w.stride)
            .with_padding_pairs(w.padding(&x))
            .with_count_include_pad(self.count_include_pad)
            .with_ceil_mode(w.ceil_mode);
        let y = module::avg_pool2d(x.to_tensor::<4>()?, options);
        Ok(vec![Value::Float(Float::from_tensor(y))])
    }
}

pub(super) fn average_pool(a: &Attributes) -> OpResult<Box<dyn Op>> {
    let window = Window::parse(a)?;
    if window.dilation != [1, 1] {
        op_bail!("AveragePool with dilations is not supported");
    }
    Ok(Box::new(AvgPoolOp {
        window,
        count_include_pad: a.int_or("count_include_pad", 0)? != 0,
    }))
}

/// Mean or maximum over every axis after the channels, kept as size-1 axes.
#[derive(Debug)]
struct GlobalPool {
    max: bool,
}

impl Op for GlobalPool {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        if x.rank() < 3 {
            op_bail!(
                "global pooling needs (N, C, spatial...), got {:?}",
                x.shape()
            );
        }
        let mut shape = x.shape().to_vec();
        let mut t = x.padded().clone();
        for (axis, dim) in shape.iter_mut().enumerate().skip(2) {
            let d = x.padded_axis(axis);
            t = if self.max {
                t.max_dim(d)
            } else {
                t.mean_dim(d)
            };
            *dim = 1;
        }
        Ok(vec![Value::Float(Float::wrap(t, shape))])
    }
}

pub(super) fn global_average_pool(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(GlobalPool { max: false }))
}
pub(super) fn global_max_pool(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(GlobalPool { max: true }))
}
