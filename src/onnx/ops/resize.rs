//! `Resize` (nearest, linear and cubic; every coordinate mode but `tf_crop_and_resize`), as
//! onnxruntime computes it: each resized axis is a weighted sum of a few rows of the input
//! picked with `select`, so autodiff gives the gradient without a kernel of its own.

use super::{Op, input, optional};
use crate::onnx::attrs::Attributes;
use crate::onnx::error::{OpResult, op_bail};
use crate::onnx::value::{Float, Ints, MAX_RANK, Value, normalize_axis};
use burn::tensor::{Tensor, TensorData};

/// How an output coordinate maps to an input one (`coordinate_transformation_mode`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Coordinates {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    TfHalfPixelForNn,
    AlignCorners,
    Asymmetric,
}

/// How a fractional coordinate picks a pixel in nearest mode (`nearest_mode`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Nearest {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Nearest(Nearest),
    Linear,
    /// Keys' cubic convolution with coefficient `a`; `exclude_outside` drops (and renormalises
    /// away) the taps outside the input.
    Cubic {
        a: f32,
        exclude_outside: bool,
    },
}

#[derive(Debug)]
struct ResizeOp {
    mode: Mode,
    coordinates: Coordinates,
    antialias: bool,
    axes: Option<Vec<i64>>,
}

/// One resized axis: `taps[t]` holds, per output position, the input position and weight of
/// tap `t`.
type Taps = Vec<(Vec<usize>, Vec<f32>)>;

impl ResizeOp {
    /// The input coordinate of output position `x` (onnxruntime's float arithmetic).
    fn source(&self, x: usize, scale: f32, out: usize, len: usize) -> f32 {
        let (x, out_f, len_f) = (x as f32, out as f32, len as f32);
        match self.coordinates {
            Coordinates::HalfPixel => (x + 0.5) / scale - 0.5,
            Coordinates::HalfPixelSymmetric => {
                let adjustment = out_f / (scale * len_f);
                let offset = len_f / 2.0 * (1.0 - adjustment);
                offset + (x + 0.5) / scale - 0.5
            }
            Coordinates::PytorchHalfPixel if out > 1 => (x + 0.5) / scale - 0.5,
            Coordinates::PytorchHalfPixel => 0.0,
            Coordinates::TfHalfPixelForNn => (x + 0.5) / scale,
            Coordinates::AlignCorners if out == 1 => 0.0,
            Coordinates::AlignCorners => x * (len_f - 1.0) / (out_f - 1.0),
            Coordinates::Asymmetric => x / scale,
        }
    }

    /// The taps of an axis of length `len` resized to `out` with scale `scale`.
    fn taps(&self, len: usize, out: usize, scale: f32) -> Taps {
        let last = len as i64 - 1;
        let clamp = |i: i64| i.clamp(0, last) as usize;
        let count = match self.mode {
            Mode::Nearest(_) => 1,
            Mode::Linear => 2,
            Mode::Cubic { .. } => 4,
        };
        let mut taps: Taps = vec![(Vec::with_capacity(out), Vec::with_capacity(out)); count];
        for x in 0..out {
            let s = self.source(x, scale, out, len);
            let picked: Vec<(usize, f32)> = match self.mode {
                Mode::Nearest(rule) => {
                    let floor = s.floor();
                    let tie = s == floor + 0.5;
                    let i = match rule {
                        Nearest::RoundPreferFloor if tie => floor,
                        Nearest::RoundPreferCeil if tie => s.ceil(),
                        Nearest::RoundPreferFloor | Nearest::RoundPreferCeil => s.round(),
                        Nearest::Floor => floor,
                        Nearest::Ceil => s.ceil(),
                    };
                    vec![(clamp(i as i64), 1.0)]
                }
                Mode::Linear => {
                    let s = s.clamp(0.0, last as f32);
                    let i1 = (s as i64).min(last);
                    let i2 = (i1 + 1).min(last);
                    let (d1, d2) = if i1 == i2 {
                        (0.5, 0.5)
                    } else {
                        ((s - i1 as f32).abs(), (s - i2 as f32).abs())
                    };
                    vec![(i1 as usize, d2), (i2 as usize, d1)]
                }
                Mode::Cubic { a, exclude_outside } => {
                    let base = s.floor();
                    let t = s - base;
                    let w = [t + 1.0, t, 1.0 - t, 2.0 - t].map(|d| {
                        if d <= 1.0 {
                            ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
                        } else {
                            ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
                        }
                    });
                    let at = |k: usize| base as i64 - 1 + k as i64;
                    let inside = |k: usize| (0..=last).contains(&at(k));
                    let kept: f32 = (0..4).filter(|&k| inside(k)).map(|k| w[k]).sum();
                    (0..4)
                        .map(|k| match exclude_outside {
                            true if !inside(k) => (clamp(at(k)), 0.0),
                            true => (clamp(at(k)), w[k] / kept),
                            false => (clamp(at(k)), w[k]),
                        })
                        .collect()
                }
            };
            for (tap, (i, w)) in taps.iter_mut().zip(picked) {
                tap.0.push(i);
                tap.1.push(w);
            }
        }
        taps
    }

    /// The output length and scale of every axis, from `scales` or `sizes`.
    fn plan(&self, shape: &[usize], inputs: &[Option<&Value>]) -> OpResult<Vec<(usize, f32)>> {
        let rank = shape.len();
        let axes: Vec<usize> = match &self.axes {
            Some(a) => a
                .iter()
                .map(|&v| normalize_axis(v, rank))
                .collect::<OpResult<_>>()?,
            None => (0..rank).collect(),
        };
        let present = |i: usize| optional(inputs, i).filter(|v| !v.shape().contains(&0));
        let mut plan: Vec<(usize, f32)> = shape.iter().map(|&d| (d, 1.0)).collect();
        match (present(2), present(3)) {
            (Some(scales), None) => {
                let scales = scales.to_float()?.to_vec();
                if scales.len() != axes.len() || scales.iter().any(|&s| s <= 0.0) {
                    op_bail!("Resize scales {scales:?} for input {shape:?}");
                }
                for (&a, s) in axes.iter().zip(scales) {
                    plan[a] = (((shape[a] as f32) * s) as usize, s);
                }
            }
            (None, Some(sizes)) => {
                let sizes = &sizes.ints()?.data;
                if sizes.len() != axes.len() || sizes.iter().any(|&s| s <= 0) {
                    op_bail!("Resize sizes {sizes:?} for input {shape:?}");
                }
                for (&a, &s) in axes.iter().zip(sizes) {
                    plan[a] = (s as usize, s as f32 / shape[a] as f32);
                }
            }
            _ => op_bail!("Resize needs exactly one of scales and sizes"),
        }
        if plan.iter().any(|&(out, _)| out == 0) {
            op_bail!("Resize of {shape:?} to an empty tensor");
        }
        Ok(plan)
    }
}

/// `x` resized along logical axis `axis` by the taps.
fn resize_axis(x: Float, axis: usize, taps: Taps) -> OpResult<Float> {
    let d = x.padded_axis(axis);
    let mut shape = x.shape().to_vec();
    shape[axis] = taps[0].0.len();
    let mut weight_shape = [1; MAX_RANK];
    weight_shape[d] = shape[axis];
    let mut sum: Option<Tensor<MAX_RANK>> = None;
    for (index, weights) in taps {
        let picked = x.padded().clone().select(
            d,
            Ints::vector(index.iter().map(|&i| i as i64).collect()).to_index_tensor(),
        );
        let term = if weights.iter().all(|&w| w == 1.0) {
            picked
        } else if weights.iter().all(|&w| w == 0.0) {
            continue;
        } else {
            let w = Tensor::from_data(TensorData::new(weights, weight_shape), &picked.device());
            picked * w
        };
        sum = Some(match sum {
            Some(s) => s + term,
            None => term,
        });
    }
    match sum {
        Some(t) => Float::from_padded(t, shape),
        None => op_bail!("Resize with all-zero weights"),
    }
}

impl Op for ResizeOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = input(inputs, 0)?.to_float()?;
        let shape = x.shape().to_vec();
        let plan = self.plan(&shape, inputs)?;
        let mut y = x;
        for (axis, (&len, &(out, scale))) in shape.iter().zip(&plan).enumerate() {
            if out == len && scale == 1.0 {
                continue;
            }
            if self.antialias && out < len && !matches!(self.mode, Mode::Nearest(_)) {
                op_bail!("Resize with antialias when downscaling is not supported");
            }
            y = resize_axis(y, axis, self.taps(len, out, scale))?;
        }
        Ok(vec![Value::Float(y)])
    }
}

pub(super) fn resize(a: &Attributes) -> OpResult<Box<dyn Op>> {
    let coordinates = match a
        .string_or("coordinate_transformation_mode", "half_pixel")?
        .as_str()
    {
        "half_pixel" => Coordinates::HalfPixel,
        "half_pixel_symmetric" => Coordinates::HalfPixelSymmetric,
        "pytorch_half_pixel" => Coordinates::PytorchHalfPixel,
        "tf_half_pixel_for_nn" => Coordinates::TfHalfPixelForNn,
        "align_corners" => Coordinates::AlignCorners,
        "asymmetric" => Coordinates::Asymmetric,
        other => op_bail!("Resize coordinate_transformation_mode `{other}` is not supported"),
    };
    let mode = match a.string_or("mode", "nearest")?.as_str() {
        "nearest" => Mode::Nearest(
            match a.string_or("nearest_mode", "round_prefer_floor")?.as_str() {
                "round_prefer_floor" => Nearest::RoundPreferFloor,
                "round_prefer_ceil" => Nearest::RoundPreferCeil,
                "floor" => Nearest::Floor,
                "ceil" => Nearest::Ceil,
                other => op_bail!("Resize nearest_mode `{other}` is not supported"),
            },
        ),
        "linear" => Mode::Linear,
        "cubic" => Mode::Cubic {
            a: a.float_or("cubic_coeff_a", -0.75)?,
            exclude_outside: a.int_or("exclude_outside", 0)? != 0,
        },
        other => op_bail!("Resize mode `{other}` is not supported"),
    };
    let policy = a.string_or("keep_aspect_ratio_policy", "stretch")?;
    if policy != "stretch" {
        op_bail!("Resize keep_aspect_ratio_policy `{policy}` is not supported (only `stretch`)");
    }
    Ok(Box::new(ResizeOp {
        mode,
        coordinates,
        antialias: a.int_or("antialias", 0)? != 0,
        axes: a.ints("axes")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(mode: &str, coordinates: &str) -> ResizeOp {
        ResizeOp {
            mode: match mode {
                "linear" => Mode::Linear,
                _ => Mode::Nearest(Nearest::Floor),
            },
            coordinates: match coordinates {
                "align_corners" => Coordinates::AlignCorners,
                "half_pixel" => Coordinates::HalfPixel,
                _ => Coordinates::Asymmetric,
            },
            antialias: false,
            axes: None,
        }
    }

    /// Worked by hand: 2 -> 4 linear, half-pixel: sources -0.25 (clamped to 0), 0.25, 0.75,
    /// 1.25 (clamped to 1).
    #[test]
    fn linear_half_pixel_taps_by_hand() {
        let taps = op("linear", "half_pixel").taps(2, 4, 2.0);
        assert_eq!(taps[0].0, [0, 0, 0, 1]);
        assert_eq!(taps[1].0, [1, 1, 1, 1]);
        assert_eq!(taps[0].1, [1.0, 0.75, 0.25, 0.5]);
        assert_eq!(taps[1].1, [0.0, 0.25, 0.75, 0.5]);
        // align_corners: 3 -> 5 lands on 0, 0.5, 1, 1.5, 2.
        let taps = op("linear", "align_corners").taps(3, 5, 5.0 / 3.0);
        assert_eq!(taps[0].0, [0, 0, 1, 1, 2]);
        assert_eq!(taps[1].1, [0.0, 0.5, 0.0, 0.5, 0.5]);
        // nearest, asymmetric, floor: 3 -> 7 (scale 7/3) reads 0,0,0,1,1,2,2.
        let taps = op("nearest", "asymmetric").taps(3, 7, 7.0 / 3.0);
        assert_eq!(taps[0].0, [0, 0, 0, 1, 1, 2, 2]);
    }
}
