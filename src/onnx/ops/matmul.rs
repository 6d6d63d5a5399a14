//! `MatMul` (numpy semantics, batch dimensions broadcast) and `Gemm`.

use super::{Op, float_input, optional};
use crate::onnx::attrs::Attributes;
use crate::onnx::error::{OpResult, op_bail};
use crate::onnx::value::{Float, Value, broadcast_shape};
use burn::tensor::Tensor;

/// `a @ b` with numpy's rules: a 1-D operand gains an axis that the result drops.
pub(super) fn matmul_floats(a: &Float, b: &Float) -> OpResult<Float> {
    let (a2, drop_row) = if a.rank() == 1 {
        (a.reshape(vec![1, a.len()])?, true)
    } else {
        (a.clone(), false)
    };
    let (b2, drop_col) = if b.rank() == 1 {
        (b.reshape(vec![b.len(), 1])?, true)
    } else {
        (b.clone(), false)
    };
    let (sa, sb) = (a2.shape(), b2.shape());
    let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (k2, n) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    if k != k2 {
        op_bail!(
            "MatMul of {:?} and {:?}: inner dimensions differ",
            a.shape(),
            b.shape()
        );
    }
    let batch = broadcast_shape(&sa[..sa.len() - 2], &sb[..sb.len() - 2])?;
    let mut shape = batch.clone();
    shape.extend([m, n]);
    // burn's matmul broadcasts batch dimensions of equal rank, which the padding gives.
    let expand = |f: &Float, rows: usize, cols: usize| -> OpResult<burn::tensor::Tensor<6>> {
        let mut s = batch.clone();
        s.extend([rows, cols]);
        Ok(f.padded().clone().expand(crate::onnx::value::padded(&s)?))
    };
    let t = expand(&a2, m, k)?.matmul(expand(&b2, k, n)?);
    let mut out = Float::wrap(t, shape.clone());
    if drop_row || drop_col {
        let mut s = batch;
        if !drop_row {
            s.push(m);
        }
        if !drop_col {
            s.push(n);
        }
        out = out.reshape(s)?;
    }
    Ok(out)
}

#[derive(Debug)]
struct MatMulOp;

impl Op for MatMulOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let (a, b) = (float_input(inputs, 0)?, float_input(inputs, 1)?);
        Ok(vec![Value::Float(matmul_floats(&a, &b)?)])
    }
}

pub(super) fn matmul(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(MatMulOp))
}

/// `alpha * op(A) @ op(B) + beta * C`, A and B 2-D.
#[derive(Debug, Clone)]
struct GemmOp {
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
    /// A constant B already transposed into a contiguous tensor (`transB` applied) at load:
    /// otherwise every pass multiplies by a strided view, which copies it (8 MB for ResNet-50's
    /// classifier).
    b_prepared: Option<Tensor<2>>,
}

impl Op for GemmOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let a = float_input(inputs, 0)?;
        if let Some(b) = &self.b_prepared {
            return self.finish(a.to_tensor::<2>()?, b.clone(), inputs);
        }
        let b = float_input(inputs, 1)?;
        if a.rank() != 2 || b.rank() != 2 {
            op_bail!(
                "Gemm needs 2-D inputs, got {:?} and {:?}",
                a.shape(),
                b.shape()
            );
        }
        let (ta, mut tb) = (a.to_tensor::<2>()?, b.to_tensor::<2>()?);
        if self.trans_b {
            tb = tb.transpose();
        }
        self.finish(ta, tb, inputs)
    }

    fn specialize(&self, constants: &[Option<&Value>]) -> Option<Box<dyn Op>> {
        let b = constants.get(1).copied().flatten()?.to_float().ok()?;
        let mut tb = b.to_tensor::<2>().ok()?;
        if self.trans_b {
            tb = Tensor::from_data(tb.transpose().into_data(), &crate::onnx::value::device());
        }
        Some(Box::new(GemmOp {
            trans_b: false,
            b_prepared: Some(tb),
            ..self.clone()
        }))
    }
}

impl GemmOp {
    /// `alpha * op(a) @ b + beta * C`, `b` already transposed if `transB`.
    fn finish(
        &self,
        mut ta: Tensor<2>,
        tb: Tensor<2>,
        inputs: &[Option<&Value>],
    ) -> OpResult<Vec<Value>> {
        if self.trans_a {
            ta = ta.transpose();
        }
        let [m, k] = ta.dims();
        let [k2, n] = tb.dims();
        if k != k2 {
            op_bail!(
                "Gemm of ({m}, {k}) and ({k2}, {n}) (transposes applied): inner dimensions differ"
            );
        }
        let mut y = ta.matmul(tb);
        if self.alpha != 1.0 {
            y = y * self.alpha;
        }
        let mut out = Float::from_tensor(y);
        if let Some(c) = optional(inputs, 2) {
            let c = c.to_float()?;
            let shape = broadcast_shape(&[m, n], c.shape())?;
            if shape != [m, n] {
                op_bail!("Gemm's C {:?} does not broadcast to ({m}, {n})", c.shape());
            }
            let c = if self.beta != 1.0 {
                c.map(|t| t * self.beta)
            } else {
                c
            };
            out = Float::wrap(out.into_padded() + c.into_padded(), shape);
        }
        Ok(vec![Value::Float(out)])
    }
}

pub(super) fn gemm(a: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(GemmOp {
        alpha: a.float_or("alpha", 1.0)?,
        beta: a.float_or("beta", 1.0)?,
        trans_a: a.int_or("transA", 0)? != 0,
        trans_b: a.int_or("transB", 0)? != 0,
        b_prepared: None,
    }))
}
