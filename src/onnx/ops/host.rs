//! Integer tensors on the host: the shape arithmetic that exporters emit (Shape, Gather, Slice,
//! Concat, arithmetic, ...) runs here on a few numbers instead of on the backend.

use crate::onnx::error::{OpResult, op_bail};
use crate::onnx::value::{Ints, broadcast_shape};

/// Row-major strides of `shape`.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Strides of `shape` seen as broadcast to `out` (0 along broadcast dimensions).
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let own = strides(shape);
    let offset = out.len() - shape.len();
    (0..out.len())
        .map(|i| match i.checked_sub(offset) {
            Some(j) if shape[j] != 1 => own[j],
            _ => 0,
        })
        .collect()
}

/// Calls `f` with each multi-index of `shape`, row-major, and its flat position in a tensor
/// with `src_strides`.
fn for_each_index(shape: &[usize], src_strides: &[usize], mut f: impl FnMut(usize)) {
    let count: usize = shape.iter().product();
    let mut index = vec![0usize; shape.len()];
    for _ in 0..count {
        f(index.iter().zip(src_strides).map(|(i, s)| i * s).sum());
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
}

/// `f(a, b)` elementwise with numpy broadcasting.
pub(crate) fn binary(a: &Ints, b: &Ints, f: impl Fn(i64, i64) -> OpResult<i64>) -> OpResult<Ints> {
    let shape = broadcast_shape(&a.shape, &b.shape)?;
    let (sa, sb) = (
        broadcast_strides(&a.shape, &shape),
        broadcast_strides(&b.shape, &shape),
    );
    let mut ia = Vec::new();
    for_each_index(&shape, &sa, |i| ia.push(i));
    let mut data = Vec::with_capacity(ia.len());
    let mut k = 0;
    let mut err = None;
    for_each_index(&shape, &sb, |j| {
        match f(a.data[ia[k]], b.data[j]) {
            Ok(v) => data.push(v),
            Err(e) => err = Some(e),
        }
        k += 1;
    });
    match err {
        Some(e) => Err(e),
        None => Ints::new(data, shape),
    }
}

/// `x` broadcast to `shape` (ONNX Expand: the result shape is the broadcast of both).
pub(crate) fn expand(x: &Ints, shape: &[usize]) -> OpResult<Ints> {
    let out = broadcast_shape(&x.shape, shape)?;
    let s = broadcast_strides(&x.shape, &out);
    let mut data = Vec::new();
    for_each_index(&out, &s, |i| data.push(x.data[i]));
    Ints::new(data, out)
}

/// Axes permuted.
pub(crate) fn transpose(x: &Ints, perm: &[usize]) -> OpResult<Ints> {
    let own = strides(&x.shape);
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let s: Vec<usize> = perm.iter().map(|&p| own[p]).collect();
    let mut data = Vec::new();
    for_each_index(&shape, &s, |i| data.push(x.data[i]));
    Ints::new(data, shape)
}

/// Elements along `axis` at `indices` (already non-negative); the result's shape replaces
/// `axis` by `index_shape`.
pub(crate) fn gather(
    x: &Ints,
    axis: usize,
    indices: &[usize],
    index_shape: &[usize],
) -> OpResult<Ints> {
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product();
    let n = x.shape[axis];
    let mut data = Vec::with_capacity(outer * indices.len() * inner);
    for o in 0..outer {
        for &i in indices {
            let start = (o * n + i) * inner;
            data.extend_from_slice(&x.data[start..start + inner]);
        }
    }
    let shape = [&x.shape[..axis], index_shape, &x.shape[axis + 1..]].concat();
    Ints::new(data, shape)
}

/// Concatenation along `axis`.
pub(crate) fn concat(parts: &[&Ints], axis: usize) -> OpResult<Ints> {
    let first = parts[0];
    let outer: usize = first.shape[..axis].iter().product();
    let mut shape = first.shape.clone();
    shape[axis] = 0;
    for p in parts {
        if p.shape.len() != first.shape.len()
            || p.shape[..axis] != first.shape[..axis]
            || p.shape[axis + 1..] != first.shape[axis + 1..]
        {
            op_bail!(
                "cannot concatenate shapes {:?} and {:?} on axis {axis}",
                first.shape,
                p.shape
            );
        }
        shape[axis] += p.shape[axis];
    }
    let mut data = Vec::with_capacity(shape.iter().product());
    for o in 0..outer {
        for p in parts {
            let chunk = p.data.len() / outer.max(1);
            data.extend_from_slice(&p.data[o * chunk..(o + 1) * chunk]);
        }
    }
    Ints::new(data, shape)
}

/// `x[starts[i]..ends[i]; steps[i]]` along each axis (bounds already clamped, as `Slice`).
pub(crate) fn slice(x: &Ints, ranges: &[(usize, Vec<usize>)]) -> OpResult<Ints> {
    // `ranges`: per axis, the chosen source positions along it.
    let mut picks: Vec<Vec<usize>> = x.shape.iter().map(|&n| (0..n).collect()).collect();
    for (axis, positions) in ranges {
        picks[*axis] = positions.clone();
    }
    let shape: Vec<usize> = picks.iter().map(Vec::len).collect();
    let own = strides(&x.shape);
    let mut data = Vec::with_capacity(shape.iter().product());
    let mut index = vec![0usize; shape.len()];
    for _ in 0..shape.iter().product::<usize>() {
        let flat: usize = (0..shape.len()).map(|d| picks[d][index[d]] * own[d]).sum();
        data.push(x.data[flat]);
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ints::new(data, shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(data: &[i64], shape: &[usize]) -> Ints {
        Ints::new(data.to_vec(), shape.to_vec()).unwrap()
    }

    #[test]
    fn host_ops_follow_numpy() {
        let a = ints(&[1, 2, 3, 4, 5, 6], &[2, 3]);
        let b = ints(&[10, 20, 30], &[3]);
        assert_eq!(
            binary(&a, &b, |x, y| Ok(x + y)).unwrap().data,
            [11, 22, 33, 14, 25, 36]
        );
        assert_eq!(
            transpose(&a, &[1, 0]).unwrap(),
            ints(&[1, 4, 2, 5, 3, 6], &[3, 2])
        );
        assert_eq!(
            gather(&a, 1, &[2, 0], &[2]).unwrap(),
            ints(&[3, 1, 6, 4], &[2, 2])
        );
        assert_eq!(gather(&b, 0, &[1], &[]).unwrap(), ints(&[20], &[]));
        assert_eq!(concat(&[&a, &a], 0).unwrap().shape, [4, 3]);
        assert_eq!(
            concat(&[&a, &ints(&[7, 8], &[2, 1])], 1).unwrap().data,
            [1, 2, 3, 7, 4, 5, 6, 8]
        );
        assert_eq!(
            slice(&a, &[(1, vec![2, 1])]).unwrap(),
            ints(&[3, 2, 6, 5], &[2, 2])
        );
        assert_eq!(expand(&b, &[2, 1]).unwrap().shape, [2, 3]);
    }
}
