//! `Einsum` of one or two operands without ellipses or repeated indices (MaxViT's relative
//! position terms, `nixw,jyw->nijxy`), as one batched matrix product: each operand is permuted
//! to (batch, own, contracted) indices and reshaped to three dimensions.

use super::{Op, float_input};
use crate::onnx::attrs::Attributes;
use crate::onnx::error::{OpResult, op_bail};
use crate::onnx::value::{Float, MAX_RANK, Value};
use burn::tensor::Tensor;

#[derive(Debug)]
struct EinsumOp {
    terms: Vec<Vec<char>>,
    output: Vec<char>,
}

/// `x` with its logical axes in the order `order` (indices into its current axes).
fn permuted(x: &Float, order: &[usize]) -> Float {
    let off = MAX_RANK - x.rank();
    let mut axes: [usize; MAX_RANK] = std::array::from_fn(|i| i);
    for (i, &p) in order.iter().enumerate() {
        axes[off + i] = off + p;
    }
    let shape = order.iter().map(|&p| x.shape()[p]).collect();
    Float::wrap(x.padded().clone().permute(axes), shape)
}

/// `x` summed over the axes whose index is not in `keep`; returns the tensor and its indices.
fn sum_out(x: Float, term: &[char], keep: impl Fn(char) -> bool) -> OpResult<(Float, Vec<char>)> {
    let mut t = x.padded().clone();
    let (mut shape, mut kept) = (vec![], vec![]);
    for (axis, &c) in term.iter().enumerate() {
        if keep(c) {
            shape.push(x.shape()[axis]);
            kept.push(c);
        } else {
            // burn keeps the summed axis, with length 1.
            t = t.sum_dim(x.padded_axis(axis));
        }
    }
    let ones: Vec<usize> = term
        .iter()
        .zip(x.shape())
        .map(|(&c, &d)| if keep(c) { d } else { 1 })
        .collect();
    Ok((Float::wrap(t, ones).reshape(shape)?, kept))
}

impl EinsumOp {
    fn size_of(&self, c: char, operands: &[(&Float, &[char])]) -> OpResult<usize> {
        let mut size = None;
        for (x, term) in operands {
            for (axis, &t) in term.iter().enumerate() {
                if t == c {
                    match size {
                        Some(s) if s != x.shape()[axis] => {
                            op_bail!("Einsum index `{c}` has sizes {s} and {}", x.shape()[axis])
                        }
                        _ => size = Some(x.shape()[axis]),
                    }
                }
            }
        }
        size.ok_or_else(|| crate::onnx::error::OpError::new(format!("Einsum index `{c}` unused")))
    }
}

impl Op for EinsumOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let operands: Vec<Float> = (0..self.terms.len())
            .map(|i| float_input(inputs, i))
            .collect::<OpResult<_>>()?;
        for (x, term) in operands.iter().zip(&self.terms) {
            if x.rank() != term.len() {
                op_bail!(
                    "Einsum term `{}` for shape {:?}",
                    term.iter().collect::<String>(),
                    x.shape()
                );
            }
        }
        let out = &self.output;
        if operands.len() == 1 {
            let (x, term) = sum_out(operands[0].clone(), &self.terms[0], |c| out.contains(&c))?;
            let order: Vec<usize> = out
                .iter()
                .map(|c| term.iter().position(|t| t == c).expect("kept"))
                .collect();
            return Ok(vec![Value::Float(permuted(&x, &order))]);
        }
        let (ta, tb) = (&self.terms[0], &self.terms[1]);
        for &c in out {
            self.size_of(c, &[(&operands[0], ta), (&operands[1], tb)])?;
        }
        // Indices of one operand only, not in the output, are summed first.
        let (a, ta) = sum_out(operands[0].clone(), ta, |c| {
            out.contains(&c) || tb.contains(&c)
        })?;
        let (b, tb) = sum_out(operands[1].clone(), tb, |c| {
            out.contains(&c) || ta.contains(&c)
        })?;
        let batch: Vec<char> = ta
            .iter()
            .copied()
            .filter(|c| tb.contains(c) && out.contains(c))
            .collect();
        let contracted: Vec<char> = ta
            .iter()
            .copied()
            .filter(|c| tb.contains(c) && !out.contains(c))
            .collect();
        let left: Vec<char> = ta.iter().copied().filter(|c| !tb.contains(c)).collect();
        let right: Vec<char> = tb.iter().copied().filter(|c| !ta.contains(c)).collect();
        let size = |x: &Float, term: &[char], c: char| {
            x.shape()[term.iter().position(|&t| t == c).expect("in term")]
        };
        let product = |x: &Float, term: &[char], cs: &[char]| {
            cs.iter().map(|&c| size(x, term, c)).product::<usize>()
        };
        let position = |term: &[char], cs: &[char]| -> Vec<usize> {
            cs.iter()
                .map(|c| term.iter().position(|t| t == c).expect("in term"))
                .collect()
        };
        let (nb, nk) = (product(&a, &ta, &batch), product(&a, &ta, &contracted));
        let (nl, nr) = (product(&a, &ta, &left), product(&b, &tb, &right));
        let a3: Tensor<3> = permuted(
            &a,
            &[
                position(&ta, &batch),
                position(&ta, &left),
                position(&ta, &contracted),
            ]
            .concat(),
        )
        .reshape(vec![nb, nl, nk])?
        .to_tensor::<3>()?;
        let b3: Tensor<3> = permuted(
            &b,
            &[
                position(&tb, &batch),
                position(&tb, &contracted),
                position(&tb, &right),
            ]
            .concat(),
        )
        .reshape(vec![nb, nk, nr])?
        .to_tensor::<3>()?;
        let y = Float::from_tensor(a3.matmul(b3));
        let order: Vec<char> = [batch.clone(), left.clone(), right.clone()].concat();
        let shape: Vec<usize> = batch
            .iter()
            .map(|&c| size(&a, &ta, c))
            .chain(left.iter().map(|&c| size(&a, &ta, c)))
            .chain(right.iter().map(|&c| size(&b, &tb, c)))
            .collect();
        let y = y.reshape(shape)?;
        Ok(vec![Value::Float(permuted(&y, &position(&order, out)))])
    }
}

pub(super) fn einsum(a: &Attributes) -> OpResult<Box<dyn Op>> {
    let equation: String = a
        .string_or("equation", "")?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if equation.contains("...") {
        op_bail!("Einsum `{equation}`: ellipses are not supported");
    }
    let (lhs, rhs) = match equation.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (equation.clone(), None),
    };
    let terms: Vec<Vec<char>> = lhs.split(',').map(|t| t.chars().collect()).collect();
    let letters = |t: &[char]| t.iter().all(|c| c.is_ascii_alphabetic());
    if terms.is_empty() || terms.len() > 2 || !terms.iter().all(|t| letters(t)) {
        op_bail!("Einsum `{equation}`: only one or two operands of letter indices are supported");
    }
    for t in &terms {
        let mut sorted = t.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != t.len() {
            op_bail!("Einsum `{equation}`: repeated indices in one operand are not supported");
        }
    }
    let output: Vec<char> = match rhs {
        Some(r) => r.chars().collect(),
        // Implicit output: the indices that appear once, sorted.
        None => {
            let all: Vec<char> = terms.concat();
            let mut once: Vec<char> = all
                .iter()
                .copied()
                .filter(|c| all.iter().filter(|d| *d == c).count() == 1)
                .collect();
            once.sort_unstable();
            once
        }
    };
    if !letters(&output) || output.iter().any(|c| !terms.iter().any(|t| t.contains(c))) {
        op_bail!("Einsum `{equation}`: an output index is not in any operand");
    }
    Ok(Box::new(EinsumOp { terms, output }))
}
