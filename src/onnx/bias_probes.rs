//! FullGrad's view of a graph: a zero "probe" added to the output of every 2-D `Conv` with a
//! bias and every `BatchNormalization` (pytorch-grad-cam's FullGrad hooks each `Conv2d` with
//! a bias and each `BatchNorm2d`), so that one backward pass gives the gradient at each of
//! those outputs, the probe's gradient.

use burn::tensor::Tensor;

use super::error::{OnnxError, Result};
use super::graph::Graph;
use super::split::{output, single_input};
use super::value::{Float, Value};

/// A biased node of a run: the per-channel bias `[channels]` it adds, and the zeros
/// `[batch, channels, h, w]` (requiring grad) added to its output.
pub type BiasProbe = (Tensor<1>, Tensor<4>);

impl Graph {
    /// Runs the graph on `input` (an autodiff tensor, for the gradients to reach the probes)
    /// with a probe after every biased node, in forward order; returns the outputs and the
    /// probes.
    pub fn run_with_bias_probes(&self, input: Float) -> Result<(Vec<Float>, Vec<BiasProbe>)> {
        single_input(self)?;
        let mut probes = vec![];
        let mut after = |n: usize, env: &mut [Option<Value>]| -> Result<()> {
            let Some(bias) = self.node_bias(n, env)? else {
                return Ok(());
            };
            let Some(id) = self.nodes[n].outputs.first().copied().flatten() else {
                return Ok(());
            };
            let y = match &env[id] {
                Some(Value::Float(y)) if y.rank() == 4 => y.to_tensor::<4>(),
                _ => return Ok(()),
            }
            .map_err(|e| OnnxError::Invalid(e.0))?;
            let probe = Tensor::<4>::zeros(y.dims(), &y.device())
                .autodiff()
                .require_grad();
            env[id] = Some(Value::Float(Float::from_tensor(y + probe.clone())));
            probes.push((bias, probe));
            Ok(())
        };
        let mut env = vec![None; self.names.len()];
        env[self.inputs[0].id] = Some(Value::Float(input));
        self.full_plan().run_observed(self, &mut env, &mut after)?;
        let outputs = self
            .outputs
            .iter()
            .map(|&o| output(self, &mut env, o))
            .collect::<Result<_>>()?;
        Ok((outputs, probes))
    }

    /// The per-channel bias node `n` adds: a `Conv`'s bias input, or a `BatchNormalization`'s
    /// `B - mean * scale / sqrt(var + epsilon)`; `None` for any other node.
    fn node_bias(&self, n: usize, env: &[Option<Value>]) -> Result<Option<Tensor<1>>> {
        let node = &self.nodes[n];
        let input = |i: usize| -> Result<Option<Tensor<1>>> {
            let Some(id) = node.inputs.get(i).copied().flatten() else {
                return Ok(None);
            };
            match env[id].as_ref().or(self.constants[id].as_ref()) {
                Some(Value::Float(f)) => Ok(Some(
                    f.reshape(vec![f.len()])
                        .and_then(|f| f.to_tensor::<1>())
                        .map_err(|e| OnnxError::Invalid(e.0))?
                        .without_autodiff(),
                )),
                _ => Err(OnnxError::Invalid(format!(
                    "input {i} of node `{}` is not a float tensor",
                    node.name
                ))),
            }
        };
        Ok(match node.op_type.as_str() {
            "Conv" => input(2)?,
            "BatchNormalization" => {
                let epsilon = node
                    .attrs
                    .float_or("epsilon", 1e-5)
                    .map_err(|e| OnnxError::Invalid(e.0))?;
                match (input(1)?, input(2)?, input(3)?, input(4)?) {
                    (Some(scale), Some(shift), Some(mean), Some(var)) => {
                        Some(shift - mean * scale / (var + epsilon).sqrt())
                    }
                    _ => None,
                }
            }
            _ => None,
        })
    }
}
