//! `ScatterND` with host-integer indices (the legacy exporter's `x[a:b, c:d] = v`, e.g. the
//! attention mask of Swin's shifted windows).
//!
//! On floats the result is one gather from `[data, updates]` flattened: every output element
//! names its source, so autodiff sends the gradient to the data elements that were kept and to
//! the updates, and nothing to the overwritten elements.

use super::{Op, input, ints_input};
use crate::onnx::attrs::Attributes;
use crate::onnx::error::{OpResult, op_bail};
use crate::onnx::value::{Float, Ints, MAX_RANK, Value};
use burn::tensor::Tensor;

#[derive(Debug)]
struct ScatterNdOp;

/// For each element of the output (row-major over `data`'s shape), where it comes from: its
/// own position below `data`'s length, or `data`'s length plus a position in `updates`.
fn sources(data: &[usize], indices: &Ints, updates: &[usize]) -> OpResult<Vec<usize>> {
    let Some((&k, batch)) = indices.shape.split_last() else {
        op_bail!("ScatterND indices must have rank 1 or more");
    };
    if k > data.len() {
        op_bail!(
            "ScatterND index tuples of {k} for data of rank {}",
            data.len()
        );
    }
    let want = [batch, &data[k..]].concat();
    if updates != want.as_slice() {
        op_bail!(
            "ScatterND updates {updates:?}: expected {want:?} for data {data:?} and indices {:?}",
            indices.shape
        );
    }
    let slice: usize = data[k..].iter().product();
    let total: usize = data.iter().product();
    let strides = super::host::strides(data);
    let mut src: Vec<usize> = (0..total).collect();
    for (j, tuple) in indices
        .data
        .chunks(k.max(1))
        .take(batch.iter().product())
        .enumerate()
    {
        let mut base = 0;
        for (d, &i) in tuple.iter().take(k).enumerate() {
            let n = data[d] as i64;
            let i = if i < 0 { i + n } else { i };
            if !(0..n).contains(&i) {
                op_bail!("ScatterND index {i} out of range for axis {d} of {data:?}");
            }
            base += i as usize * strides[d];
        }
        for e in 0..slice {
            src[base + e] = total + j * slice + e;
        }
    }
    Ok(src)
}

impl Op for ScatterNdOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let data = input(inputs, 0)?;
        let indices = ints_input(inputs, 1)?;
        let updates = input(inputs, 2)?;
        let src = sources(data.shape(), indices, updates.shape())?;
        Ok(vec![match (data, updates) {
            (Value::Int(d), Value::Int(u)) => {
                let all = [&d.data[..], &u.data[..]].concat();
                Value::Int(Ints::new(
                    src.iter().map(|&s| all[s]).collect(),
                    d.shape.clone(),
                )?)
            }
            _ => {
                let (d, u) = (data.to_float()?, updates.to_float()?);
                let flat = |f: &Float| f.reshape(vec![f.len()]).map(Float::into_padded);
                let both = Tensor::cat(vec![flat(&d)?, flat(&u)?], MAX_RANK - 1);
                let index = Ints::vector(src.iter().map(|&s| s as i64).collect());
                let t = both.select(MAX_RANK - 1, index.to_index_tensor());
                Value::Float(Float::wrap(t, vec![d.len()]).reshape(d.shape().to_vec())?)
            }
        }])
    }
}

pub(super) fn scatter_nd(a: &Attributes) -> OpResult<Box<dyn Op>> {
    match a.string_or("reduction", "none")?.as_str() {
        "none" => Ok(Box::new(ScatterNdOp)),
        other => op_bail!("ScatterND reduction `{other}` is not supported (only `none`)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the ONNX operator's documentation (rank-3 data, slices of rank 2).
    #[test]
    fn scatters_slices_as_the_onnx_example() {
        let data: Vec<i64> = (0..64)
            .map(|v| [1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2, 1][v % 16])
            .collect();
        let data = Value::Int(Ints::new(data, vec![4, 4, 4]).unwrap());
        let indices = Value::Int(Ints::new(vec![0, 2], vec![2, 1]).unwrap());
        let updates = Value::Int(
            Ints::new((0..32).map(|v| 5 + v / 16 * 3).collect(), vec![2, 4, 4]).unwrap(),
        );
        let op = scatter_nd(&Attributes::default()).unwrap();
        let out = op
            .run(&[Some(&data), Some(&indices), Some(&updates)])
            .unwrap()
            .remove(0);
        let out = out.ints().unwrap();
        assert_eq!(out.data[..16], [5; 16]);
        assert_eq!(out.data[16..20], [1, 2, 3, 4]);
        assert_eq!(out.data[32..48], [8; 16]);
        // The same on floats.
        let fl = |v: &Value| Value::Float(v.to_float().unwrap());
        let f = op
            .run(&[Some(&fl(&data)), Some(&indices), Some(&fl(&updates))])
            .unwrap()
            .remove(0);
        let want: Vec<f32> = out.data.iter().map(|&v| v as f32).collect();
        assert_eq!(f.float().unwrap().to_vec(), want);

        let bad = Value::Int(Ints::new(vec![4, 0], vec![2, 1]).unwrap());
        let e = op
            .run(&[Some(&data), Some(&bad), Some(&updates)])
            .unwrap_err();
        assert!(e.to_string().contains("index 4 out of range"), "{e}");
    }
}
