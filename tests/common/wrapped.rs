//! A model seen through the tests' lens: the same network at another input size (so that a
//! smoke test can run a 224x224 architecture at 64x64), or held at a gate so that a test
//! decides when a forward pass may go on (a busy server without timing races).

use std::sync::{Arc, Condvar, Mutex};

use burn::tensor::Tensor;
use gradcam::Result;
use gradcam::model::{BiasProbe, CamModel, Cut, CutContext, Forward, Layer, Preprocess};

/// A gate that forward passes wait at until [`Gate::open`]; it stays open afterwards.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    /// Forward passes that reached the gate.
    arrived: Mutex<usize>,
    arrival: Condvar,
}

impl Gate {
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    /// Blocks until `n` forward passes have reached the gate.
    pub fn wait_for_arrivals(&self, n: usize) {
        let mut arrived = self.arrived.lock().unwrap();
        while *arrived < n {
            arrived = self.arrival.wait(arrived).unwrap();
        }
    }

    fn pass(&self) {
        *self.arrived.lock().unwrap() += 1;
        self.arrival.notify_all();
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }
}

/// `inner` with another input size and/or a gate before every run of its stages.
pub struct Wrapped {
    pub inner: Arc<dyn CamModel>,
    /// The input (height, width) to preprocess to, instead of the inner model's.
    pub size: Option<(usize, usize)>,
    pub gate: Option<Arc<Gate>>,
}

impl Wrapped {
    /// `inner` explained at `size` instead of its own input size.
    pub fn at_size(inner: impl CamModel + 'static, size: (usize, usize)) -> Self {
        Wrapped {
            inner: Arc::new(inner),
            size: Some(size),
            gate: None,
        }
    }

    /// `inner`, whose forward passes wait at `gate`.
    pub fn gated(inner: Arc<dyn CamModel>, gate: Arc<Gate>) -> Self {
        Wrapped {
            inner,
            size: None,
            gate: Some(gate),
        }
    }
}

impl Wrapped {
    fn pass(&self) {
        if let Some(gate) = &self.gate {
            gate.pass();
        }
    }
}

// Every pass (body, head or whole network) waits at the gate.
impl Forward for Wrapped {
    fn forward(&self, x: Tensor<4>) -> Result<Tensor<2>> {
        self.pass();
        self.inner.forward(x)
    }
    fn forward_to(&self, x: Tensor<4>, layer: usize) -> Result<Cut> {
        self.pass();
        self.inner.forward_to(x, layer)
    }
    fn forward_from(
        &self,
        activations: Tensor<4>,
        context: &CutContext,
        rows: Option<&[usize]>,
    ) -> Result<Tensor<2>> {
        self.pass();
        self.inner.forward_from(activations, context, rows)
    }
    fn forward_pooled(
        &self,
        activations: Tensor<4>,
        context: &CutContext,
        until: usize,
    ) -> Result<Tensor<2>> {
        self.pass();
        self.inner.forward_pooled(activations, context, until)
    }
}

impl CamModel for Wrapped {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn layers(&self) -> &[Layer] {
        self.inner.layers()
    }
    fn default_layer(&self) -> &str {
        self.inner.default_layer()
    }
    fn default_batch_size(&self) -> usize {
        self.inner.default_batch_size()
    }
    fn preprocess(&self) -> Preprocess {
        let mut p = self.inner.preprocess();
        p.size = self.size.unwrap_or(p.size);
        p
    }
    fn num_classes(&self) -> usize {
        self.inner.num_classes()
    }
    fn alias(&self, name: &str) -> Option<&str> {
        self.inner.alias(name)
    }
    fn linear_classifier(&self, layer: usize) -> Option<Tensor<2>> {
        self.inner.linear_classifier(layer)
    }
    fn forward_with_bias_probes(&self, x: Tensor<4>) -> Result<(Tensor<2>, Vec<BiasProbe>)> {
        self.inner.forward_with_bias_probes(x)
    }
}
