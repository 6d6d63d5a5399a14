//! The values that flow between nodes: float tensors on burn (with or without autodiff) and
//! small integer tensors kept on the host for shape arithmetic.
//!
//! A float tensor of any rank up to [`MAX_RANK`] is stored as a burn `Tensor<MAX_RANK>` whose
//! leading dimensions are 1, next to its logical shape. ONNX broadcasting aligns shapes on the
//! right, so two padded tensors broadcast exactly as their logical shapes do, and one code path
//! serves every rank.

use super::error::{OpResult, op_bail};
use burn::tensor::{Device, Int, Tensor, TensorData};

/// The highest tensor rank the interpreter handles (Swin's window partition needs 6).
pub const MAX_RANK: usize = 6;

/// The device every tensor of the interpreter lives on.
pub fn device() -> Device {
    Device::flex()
}

/// A float tensor with its logical shape.
#[derive(Clone, Debug)]
pub struct Float {
    tensor: Tensor<MAX_RANK>,
    shape: Vec<usize>,
}

impl Float {
    /// Wraps a burn tensor of rank `D`.
    pub fn from_tensor<const D: usize>(tensor: Tensor<D>) -> Self {
        let shape = tensor.dims().to_vec();
        let padded = padded(&shape).expect("rank checked by the const generic");
        Float {
            tensor: tensor.reshape(padded),
            shape,
        }
    }

    /// A tensor from row-major values.
    pub fn from_vec(values: Vec<f32>, shape: Vec<usize>) -> OpResult<Self> {
        if values.len() != shape.iter().product::<usize>() {
            op_bail!("{} values for shape {shape:?}", values.len());
        }
        let tensor = Tensor::from_data(TensorData::new(values, padded(&shape)?), &device());
        Ok(Float { tensor, shape })
    }

    /// A padded tensor (rank [`MAX_RANK`], leading dimensions 1) with its logical shape.
    pub fn from_padded(tensor: Tensor<MAX_RANK>, shape: Vec<usize>) -> OpResult<Self> {
        if padded(&shape)? != tensor.dims() {
            op_bail!("tensor {:?} is not shape {shape:?} padded", tensor.dims());
        }
        Ok(Float { tensor, shape })
    }

    /// [`Float::from_padded`] for shapes the caller computed.
    pub(crate) fn wrap(tensor: Tensor<MAX_RANK>, shape: Vec<usize>) -> Self {
        debug_assert_eq!(tensor.dims()[MAX_RANK - shape.len()..], shape[..]);
        Float { tensor, shape }
    }

    /// The logical shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The logical rank.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The padded burn tensor.
    pub fn padded(&self) -> &Tensor<MAX_RANK> {
        &self.tensor
    }

    /// The padded burn tensor, by value.
    pub fn into_padded(self) -> Tensor<MAX_RANK> {
        self.tensor
    }

    /// The tensor as a burn tensor of rank `D` (which must be its logical rank).
    pub fn to_tensor<const D: usize>(&self) -> OpResult<Tensor<D>> {
        if self.rank() != D {
            op_bail!("expected a rank-{D} tensor, got shape {:?}", self.shape);
        }
        let dims: [usize; D] = self.shape.clone().try_into().expect("length checked");
        Ok(self.tensor.clone().reshape(dims))
    }

    /// [`Float::to_tensor`] by value: the tensor's buffer stays unshared when it was.
    pub fn into_tensor<const D: usize>(self) -> OpResult<Tensor<D>> {
        if self.rank() != D {
            op_bail!("expected a rank-{D} tensor, got shape {:?}", self.shape);
        }
        let dims: [usize; D] = self.shape.try_into().expect("length checked");
        Ok(self.tensor.reshape(dims))
    }

    /// The same values with another shape of as many elements.
    pub fn reshape(&self, shape: Vec<usize>) -> OpResult<Float> {
        if shape.iter().product::<usize>() != self.len() {
            op_bail!("cannot reshape {:?} to {shape:?}", self.shape);
        }
        Ok(Float {
            tensor: self.tensor.clone().reshape(padded(&shape)?),
            shape,
        })
    }

    /// Applies a shape-preserving tensor function.
    pub fn map(&self, f: impl FnOnce(Tensor<MAX_RANK>) -> Tensor<MAX_RANK>) -> Float {
        Float {
            tensor: f(self.tensor.clone()),
            shape: self.shape.clone(),
        }
    }

    /// The padded dimension that holds logical axis `axis` (already normalised).
    pub fn padded_axis(&self, axis: usize) -> usize {
        axis + MAX_RANK - self.rank()
    }

    /// Normalises an ONNX axis (negative counts from the end) against this tensor's rank.
    pub fn axis(&self, axis: i64) -> OpResult<usize> {
        normalize_axis(axis, self.rank())
    }

    /// The values, row-major (reads the tensor back from the backend).
    pub fn to_vec(&self) -> Vec<f32> {
        self.tensor
            .clone()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("converted to f32")
    }

    /// The tensor detached from any autodiff graph.
    pub fn detach(&self) -> Float {
        self.map(|t| t.detach())
    }
}

/// An integer tensor on the host: shapes, indices, axes, booleans (as 0 / 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ints {
    /// The logical shape.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<i64>,
}

impl Ints {
    /// A tensor from row-major values.
    pub fn new(data: Vec<i64>, shape: Vec<usize>) -> OpResult<Self> {
        if data.len() != shape.iter().product::<usize>() {
            op_bail!("{} values for shape {shape:?}", data.len());
        }
        Ok(Ints { shape, data })
    }

    /// A one-dimensional tensor.
    pub fn vector(data: Vec<i64>) -> Self {
        Ints {
            shape: vec![data.len()],
            data,
        }
    }

    /// A rank-0 tensor.
    pub fn scalar(value: i64) -> Self {
        Ints {
            shape: vec![],
            data: vec![value],
        }
    }

    /// The values as a float tensor.
    pub fn to_float(&self) -> OpResult<Float> {
        Float::from_vec(
            self.data.iter().map(|&v| v as f32).collect(),
            self.shape.clone(),
        )
    }

    /// The values as a burn integer vector (indices for `select`).
    pub fn to_index_tensor(&self) -> Tensor<1, Int> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), [self.data.len()]),
            &device(),
        )
    }
}

/// A value of the graph.
// Float is the common case and small shapes are cheap: boxing would cost an allocation per value.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Value {
    /// A float tensor on burn.
    Float(Float),
    /// An integer or boolean tensor on the host.
    Int(Ints),
}

impl Value {
    /// The logical shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::Float(f) => f.shape(),
            Value::Int(i) => &i.shape,
        }
    }

    /// The float tensor, or an error for an integer one.
    pub fn float(&self) -> OpResult<&Float> {
        match self {
            Value::Float(f) => Ok(f),
            Value::Int(i) => op_bail!(
                "expected a float tensor, got integers of shape {:?}",
                i.shape
            ),
        }
    }

    /// The integer tensor, or an error for a float one that depends on the input.
    pub fn ints(&self) -> OpResult<&Ints> {
        match self {
            Value::Int(i) => Ok(i),
            Value::Float(f) => op_bail!(
                "expected integers (a shape, axes, indices), got a float tensor of shape {:?}",
                f.shape()
            ),
        }
    }

    /// The value as a float tensor (integers converted).
    pub fn to_float(&self) -> OpResult<Float> {
        match self {
            Value::Float(f) => Ok(f.clone()),
            Value::Int(i) => i.to_float(),
        }
    }
}

/// `shape` with leading ones up to [`MAX_RANK`].
pub fn padded(shape: &[usize]) -> OpResult<[usize; MAX_RANK]> {
    if shape.len() > MAX_RANK {
        op_bail!(
            "rank {} (shape {shape:?}) is above the supported {MAX_RANK}",
            shape.len()
        );
    }
    let mut out = [1; MAX_RANK];
    out[MAX_RANK - shape.len()..].copy_from_slice(shape);
    Ok(out)
}

/// An ONNX axis (negative counts from the end) as an index below `rank`.
pub fn normalize_axis(axis: i64, rank: usize) -> OpResult<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a >= rank as i64 {
        op_bail!("axis {axis} is out of range for rank {rank}");
    }
    Ok(a as usize)
}

/// The shape two shapes broadcast to (numpy rules).
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> OpResult<Vec<usize>> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| (i + s.len()).checked_sub(rank).map_or(1, |j| s[j]);
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => op_bail!("shapes {a:?} and {b:?} do not broadcast"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy() {
        assert_eq!(broadcast_shape(&[2, 1, 4], &[3, 1]).unwrap(), [2, 3, 4]);
        assert_eq!(broadcast_shape(&[], &[5]).unwrap(), [5]);
        assert!(broadcast_shape(&[2, 3], &[4, 3]).is_err());
    }

    #[test]
    fn floats_keep_their_logical_shape() {
        let f = Float::from_vec((0..6).map(|v| v as f32).collect(), vec![2, 3]).unwrap();
        assert_eq!(f.padded().dims(), [1, 1, 1, 1, 2, 3]);
        assert_eq!(f.padded_axis(1), 5);
        let t = f.to_tensor::<2>().unwrap();
        assert_eq!(t.dims(), [2, 3]);
        assert!(f.to_tensor::<3>().is_err());
        assert_eq!(
            f.reshape(vec![3, 2]).unwrap().to_vec(),
            [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        );
        assert!(normalize_axis(-3, 2).is_err());
        assert_eq!(normalize_axis(-1, 2).unwrap(), 1);
    }
}
