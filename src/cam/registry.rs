//! The one table of methods. Every list of methods a user sees (`--method`'s help and its
//! error, `gradcam models`, `/v1/models`, the web page) reads [`METHODS`]; adding a method is
//! one row here and one file beside this one.

use super::{
    AblationCam, ClassActivationMap, DeepFeatureFactorization, EigenCam, EigenGradCam, Fem,
    FinerCam, FullGrad, GradCam, GradCamElementWise, GradCamPlusPlus, HiResCam, IsCam, KpcaCam,
    LayerCam, LeGrad, Method, RandomCam, RefineCam, ScoreCam, SegEigenCam, Sess, ShapleyCam,
    SmoothGradCamPlusPlus, SsCam, XGradCam,
};
use crate::error::{Error, Result};

/// An input-gradient image that a method adds to its map (the guided methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputGradient {
    /// Guided backpropagation's gradient (`guided-backprop`).
    GuidedBackprop,
    /// The same times the Grad-CAM map (`guided-gradcam`, the paper's Guided Grad-CAM).
    GuidedGradCam,
}

/// One method: its names, what it costs and what it outputs.
pub struct MethodInfo {
    /// The name `--method` takes: pytorch-grad-cam's class name in lower case.
    pub name: &'static str,
    /// Other names users know it by (torchcam's, the class name spelled out).
    pub aliases: &'static [&'static str],
    /// One line for help texts.
    pub summary: &'static str,
    /// For the guided methods: the input-gradient image added to the (Grad-CAM) map.
    pub input_gradient: Option<InputGradient>,
    build: fn() -> Box<dyn Method>,
}

impl MethodInfo {
    /// The map-making rule (for the guided methods, the Grad-CAM that localizes them).
    pub fn build(&self) -> Box<dyn Method> {
        (self.build)()
    }

    /// Whether the method needs `d score / d A` (a backward pass through the head).
    pub fn uses_gradients(&self) -> bool {
        self.input_gradient.is_some() || self.build().uses_gradients()
    }

    /// Whether the method finds concepts instead of a map per class (DFF): run it with
    /// [`super::deep_feature_factorization`], not [`super::Cam`].
    pub fn finds_concepts(&self) -> bool {
        self.build().finds_concepts()
    }

    /// Whether `name` is this method's name or one of its aliases (case-insensitive).
    pub fn is_called(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    }
}

impl PartialEq for MethodInfo {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl std::fmt::Debug for MethodInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// What `gradcam models --json` and `/v1/models` say of a method.
impl serde::Serialize for MethodInfo {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("MethodInfo", 6)?;
        s.serialize_field("name", self.name)?;
        s.serialize_field("aliases", self.aliases)?;
        s.serialize_field("summary", self.summary)?;
        s.serialize_field("uses_gradients", &self.uses_gradients())?;
        s.serialize_field("input_gradient", &self.input_gradient.is_some())?;
        s.serialize_field("concepts", &self.finds_concepts())?;
        s.end()
    }
}

fn boxed<M: Method + Default + 'static>() -> Box<dyn Method> {
    Box::new(M::default())
}

/// Every method, in the order help texts list them.
#[rustfmt::skip]
pub static METHODS: &[MethodInfo] = &[
    MethodInfo { name: "gradcam", aliases: &["grad-cam"], summary: "Grad-CAM: channels weighted by the spatial mean of the gradient", input_gradient: None, build: boxed::<GradCam> },
    MethodInfo { name: "gradcam++", aliases: &["gradcamplusplus", "gradcampp"], summary: "Grad-CAM++: second-order weights of the positive gradients", input_gradient: None, build: boxed::<GradCamPlusPlus> },
    MethodInfo { name: "xgradcam", aliases: &["xgrad-cam"], summary: "XGrad-CAM: gradients weighted by the normalised activations", input_gradient: None, build: boxed::<XGradCam> },
    MethodInfo { name: "hirescam", aliases: &["hires-cam"], summary: "HiResCAM: gradient times activation, element-wise, summed over channels", input_gradient: None, build: boxed::<HiResCam> },
    MethodInfo { name: "gradcam-elementwise", aliases: &["gradcamelementwise"], summary: "Grad-CAM element-wise: ReLU of gradient times activation, summed over channels", input_gradient: None, build: boxed::<GradCamElementWise> },
    MethodInfo { name: "layercam", aliases: &["layer-cam"], summary: "LayerCAM: positive gradients times activations, element-wise", input_gradient: None, build: boxed::<LayerCam> },
    MethodInfo { name: "eigencam", aliases: &["eigen-cam"], summary: "Eigen-CAM: first principal component of the activations (no gradient)", input_gradient: None, build: boxed::<EigenCam> },
    MethodInfo { name: "eigengradcam", aliases: &["eigengrad-cam"], summary: "EigenGrad-CAM: first principal component of gradient times activation", input_gradient: None, build: boxed::<EigenGradCam> },
    MethodInfo { name: "segeigencam", aliases: &["seg-eigen-cam"], summary: "Seg-Eigen-CAM: first principal component of |gradient| times activation, sign by Eq. 13", input_gradient: None, build: boxed::<SegEigenCam> },
    MethodInfo { name: "scorecam", aliases: &["score-cam"], summary: "Score-CAM: channels weighted by the score of the input they mask (one forward per channel)", input_gradient: None, build: boxed::<ScoreCam> },
    MethodInfo { name: "ablationcam", aliases: &["ablation-cam"], summary: "Ablation-CAM: channels weighted by the score drop when each is removed (head passes only)", input_gradient: None, build: boxed::<AblationCam> },
    MethodInfo { name: "fem", aliases: &["feature-explanation-method"], summary: "FEM: channels weighted by how many positions exceed their mean + 2 std (no gradient)", input_gradient: None, build: boxed::<Fem> },
    MethodInfo { name: "randomcam", aliases: &["random-cam"], summary: "Random-CAM: a baseline, channels weighted uniformly in [-1, 1) (seeded; no gradient)", input_gradient: None, build: boxed::<RandomCam> },
    MethodInfo { name: "kpcacam", aliases: &["kpca-cam", "kpca_cam"], summary: "KPCA-CAM: first kernel principal component (sigmoid kernel) of the activations (no gradient)", input_gradient: None, build: boxed::<KpcaCam> },
    MethodInfo { name: "cam", aliases: &["zhou-cam", "class-activation-map"], summary: "CAM (Zhou et al.): channels weighted by the classifier's weights (GAP + linear heads only; no gradient)", input_gradient: None, build: boxed::<ClassActivationMap> },
    MethodInfo { name: "smoothgradcam++", aliases: &["smoothgradcampp", "smooth-gradcam++"], summary: "Smooth Grad-CAM++ (torchcam): Grad-CAM++ weights from the gradients of 4 noisy inputs (4 full backward passes)", input_gradient: None, build: boxed::<SmoothGradCamPlusPlus> },
    MethodInfo { name: "sscam", aliases: &["ss-cam"], summary: "SS-CAM (torchcam): Score-CAM with noisy masks, 35 samples (35 forwards per channel)", input_gradient: None, build: boxed::<SsCam> },
    MethodInfo { name: "iscam", aliases: &["is-cam"], summary: "IS-CAM (torchcam): Score-CAM integrated over 10 scaled masked inputs (10 forwards per channel)", input_gradient: None, build: boxed::<IsCam> },
    MethodInfo { name: "finercam", aliases: &["finer-cam"], summary: "Finer-CAM: Grad-CAM of the class's margin over the 3 classes with the closest logits", input_gradient: None, build: boxed::<FinerCam> },
    MethodInfo { name: "shapleycam", aliases: &["shapley-cam"], summary: "ShapleyCAM: gradient minus half the Hessian-vector product, of the ReST score (logit minus cross-entropy)", input_gradient: None, build: boxed::<ShapleyCam> },
    MethodInfo { name: "refinecam", aliases: &["refine-cam"], summary: "RefineCAM: product of the Grad-CAM++ maps of several layers (give --layer more than once)", input_gradient: None, build: boxed::<RefineCam> },
    MethodInfo { name: "sess", aliases: &["sess-gradcam"], summary: "SESS: Grad-CAM of windows slid over 12 enlarged copies of the input, fused and smoothed (a forward and a base pass per window: 122 at 224x224)", input_gradient: None, build: boxed::<Sess> },
    MethodInfo { name: "fullgrad", aliases: &["full-grad"], summary: "FullGrad: input gradient times input plus the bias gradients of every layer (one backward through the whole network)", input_gradient: None, build: boxed::<FullGrad> },
    MethodInfo { name: "deepfeaturefactorization", aliases: &["dff", "deep-feature-factorization"], summary: "Deep Feature Factorization: NMF of the activations into --concepts concepts (default 4), each with its map and top classes (no gradient)", input_gradient: None, build: boxed::<DeepFeatureFactorization> },
    MethodInfo { name: "legrad", aliases: &["le-grad"], summary: "LeGrad (torchcam): positive gradients of each transformer block's own class score w.r.t. its attention, averaged (ONNX vision transformers; --layer picks blocks, default the last 4; one forward and one backward)", input_gradient: None, build: boxed::<LeGrad> },
    MethodInfo { name: "guided-backprop", aliases: &["guidedbackprop"], summary: "guided backpropagation: the input gradient through ReLUs that pass only positive signal", input_gradient: Some(InputGradient::GuidedBackprop), build: boxed::<GradCam> },
    MethodInfo { name: "guided-gradcam", aliases: &["guidedgradcam"], summary: "Guided Grad-CAM: guided backpropagation times the Grad-CAM map", input_gradient: Some(InputGradient::GuidedGradCam), build: boxed::<GradCam> },
];

/// The method called `name` (or one of its aliases); an unknown name lists every valid one.
pub fn method_info(name: &str) -> Result<&'static MethodInfo> {
    METHODS
        .iter()
        .find(|m| m.is_called(name))
        .ok_or_else(|| Error::UnknownMethod {
            name: name.to_string(),
            valid: method_names().map(str::to_string).collect(),
        })
}

/// The methods' names, in table order.
pub fn method_names() -> impl Iterator<Item = &'static str> {
    METHODS.iter().map(|m| m.name)
}

/// The map-making rule of the method called `name`.
///
/// ```
/// let m = gradcam::cam::method("gradcam++").unwrap();
/// assert_eq!(m.name(), "gradcam++");
/// assert!(gradcam::cam::method("magiccam").is_err());
/// ```
pub fn method(name: &str) -> Result<Box<dyn Method>> {
    method_info(name).map(MethodInfo::build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_are_unique_and_resolve_to_their_row() {
        let mut seen = std::collections::HashSet::new();
        for m in METHODS {
            for name in std::iter::once(&m.name).chain(m.aliases) {
                assert!(seen.insert(name.to_ascii_lowercase()), "{name} twice");
                assert_eq!(method_info(name).unwrap().name, m.name);
            }
        }
    }

    #[test]
    fn each_row_builds_the_method_it_names() {
        for m in METHODS.iter().filter(|m| m.input_gradient.is_none()) {
            assert_eq!(m.build().name(), m.name);
        }
        let guided = method_info("guided-gradcam").unwrap();
        assert_eq!(guided.build().name(), "gradcam");
        assert!(guided.uses_gradients());
        assert!(!method_info("scorecam").unwrap().uses_gradients());
    }

    #[test]
    fn an_unknown_name_lists_every_method() {
        let err = method_info("magiccam").unwrap_err().to_string();
        assert!(err.contains("unknown method `magiccam`"), "{err}");
        assert!(
            err.contains("gradcam++") && err.contains("guided-gradcam"),
            "{err}"
        );
    }
}
