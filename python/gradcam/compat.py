"""pytorch-grad-cam's call shape, for code written against it: change the import and keep the calls.

>>> from gradcam.compat import GradCAM, ClassifierOutputTarget      # doctest: +SKIP
>>> cam = GradCAM(model="efficientnet_lite0", target_layers=["head"])  # doctest: +SKIP
>>> grayscale = cam(input_tensor=x, targets=[ClassifierOutputTarget(281)])  # doctest: +SKIP

``model`` is anything :class:`gradcam.Explainer` takes (a built-in name, a model file) or an
``Explainer``; ``target_layers`` are layer names. ``input_tensor`` is a float32 numpy array
``(B, 3, H, W)``, already normalised; the result is float32 ``(B, H, W)`` in [0, 1].

One class per method of the library's table (:func:`gradcam.methods`), named as pytorch-grad-cam
names it: the classes are generated from the table, so a method added to the library appears here.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, Union

import numpy as np

from . import _gradcam
from ._explainer import Explainer
from ._gradcam import GradcamError
from ._images import floats

# --- targets (pytorch_grad_cam.utils.model_targets) --------------------------------------------


class ClassifierOutputTarget:
    """The raw score (logit) of a class; the default target (with the top-1 class)."""

    def __init__(self, category: int) -> None:
        self.category = int(category)

    def __call__(self, model_output: np.ndarray) -> np.ndarray:
        output = np.asarray(model_output)
        return output[..., self.category]

    def _describe(self) -> Tuple[str, Any]:
        return ("logit", self.category)


class ClassifierOutputSoftmaxTarget(ClassifierOutputTarget):
    """The softmax probability of a class."""

    def __call__(self, model_output: np.ndarray) -> np.ndarray:
        output = np.asarray(model_output, dtype=np.float64)
        e = np.exp(output - output.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True))[..., self.category]

    def _describe(self) -> Tuple[str, Any]:
        return ("softmax", self.category)


class SimilarityToConceptTarget:
    """The cosine similarity of the model's output with a concept's feature vector."""

    def __init__(self, concept_features: Any) -> None:
        self.features = np.asarray(concept_features, dtype=np.float32).ravel()

    def __call__(self, model_output: np.ndarray) -> float:
        output = np.asarray(model_output, dtype=np.float64).ravel()
        norms = max(np.linalg.norm(output) * np.linalg.norm(self.features), 1e-8)
        return float(output @ self.features / norms)

    def _describe(self) -> Tuple[str, Any]:
        return ("cosine", self.features.tolist())


def _target(t: Any) -> Tuple[str, Any]:
    """A target for the native side: an int is ``ClassifierOutputTarget(int)``."""
    if isinstance(t, (int, np.integer)):
        return ("logit", int(t))
    describe = getattr(t, "_describe", None)
    if describe is None:
        raise TypeError(
            f"unsupported target {t!r}: give a class index, ClassifierOutputTarget, "
            "ClassifierOutputSoftmaxTarget or SimilarityToConceptTarget (gradcam.compat)"
        )
    return describe()


# --- the CAM classes ---------------------------------------------------------------------------


def _explainer(model: Any) -> Explainer:
    if isinstance(model, Explainer):
        return model
    if isinstance(model, (str, os.PathLike)):
        return Explainer(model)
    raise TypeError(
        f"model must be a model name, a model file or a gradcam.Explainer, not {type(model).__name__} "
        "(gradcam runs without torch: export the network to ONNX, or use a built-in name)"
    )


def _layer_names(target_layers: Sequence[Any]) -> List[str]:
    if isinstance(target_layers, str):
        return [target_layers]
    names = []
    for layer in target_layers:
        if not isinstance(layer, str):
            raise TypeError(f"target_layers are layer names (see Explainer.layers), got {layer!r}")
        names.append(layer)
    return names


class BaseCAM:
    """pytorch-grad-cam's ``BaseCAM`` call shape over the library's runner (one subclass per
    method; ``method`` names the library's method)."""

    method: str = "gradcam"
    guided: bool = False

    def __init__(
        self,
        model: Any,
        target_layers: Sequence[Any] = (),
        reshape_transform: Any = None,
        *,
        batch_size: Optional[int] = None,
    ) -> None:
        if reshape_transform is not None:
            raise GradcamError(
                "reshape_transform is not supported: gradcam cuts models at layers whose output "
                "is already (B, C, H, W)"
            )
        self.explainer = _explainer(model)
        self.target_layers = _layer_names(target_layers)
        self.batch_size = batch_size

    def __call__(
        self,
        input_tensor: Any,
        targets: Optional[Sequence[Any]] = None,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
        *,
        counterfactual: bool = False,
    ) -> np.ndarray:
        """The maps of ``input_tensor`` (B, 3, H, W), float32 (B, H, W) in [0, 1]; ``targets``:
        one per image (class indices or target objects), default the top-1 class.
        ``counterfactual`` (not pytorch-grad-cam's) explains the negated scores."""
        x = np.ascontiguousarray(np.asarray(input_tensor), dtype=np.float32)
        if x.ndim != 4:
            raise GradcamError(
                f"input_tensor must have shape (batch, 3, height, width), got {x.shape}"
            )
        described = None if targets is None else [_target(t) for t in targets]
        if described is not None and len(described) != len(x):
            raise GradcamError(f"{len(described)} targets given for a batch of {len(x)} images")
        options = {
            "aug_smooth": aug_smooth,
            "eigen_smooth": eigen_smooth,
            "counterfactual": counterfactual,
        }
        size = self.batch_size or self.explainer.default_batch_size
        run = _gradcam.run_guided if self.guided else _gradcam.run_cam
        key = "guided" if self.guided else "maps"
        parts = []
        for i in range(0, len(x), size):
            part = None if described is None else described[i : i + size]
            out = run(
                self.explainer._model, x[i : i + size], self.method, self.target_layers, part, options
            )
            parts.append(floats(out[key], out["shape"]))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    forward = __call__

    def __enter__(self) -> "BaseCAM":
        return self

    def __exit__(self, *exc: Any) -> bool:
        return False


class GuidedBackpropReLUModel:
    """pytorch-grad-cam's guided backpropagation: ``gb(input_img, target_category=None)`` gives
    the (H, W, 3) input gradient of the first image through ReLUs that pass positive signal only."""

    def __init__(self, model: Any, device: Any = None) -> None:
        self.explainer = _explainer(model)

    def __call__(self, input_img: Any, target_category: Optional[int] = None) -> np.ndarray:
        targets = None if target_category is None else [target_category] * len(input_img)
        cam = _GUIDED_BACKPROP(self.explainer)
        return cam(input_img, targets)[0]

    forward = __call__


#: pytorch-grad-cam's spelling of each class; rows of the table with no upstream class get a
#: name made by :func:`_camel` instead.
_UPSTREAM_NAMES = (
    "GradCAM",
    "GradCAMPlusPlus",
    "XGradCAM",
    "HiResCAM",
    "GradCAMElementWise",
    "LayerCAM",
    "EigenCAM",
    "EigenGradCAM",
    "SegEigenCAM",
    "ScoreCAM",
    "AblationCAM",
    "FEM",
    "RandomCAM",
    "FinerCAM",
    "ShapleyCAM",
    "RefineCAM",
    "SESS",
    "LeGrad",  # torchcam's
    "FullGrad",
)

#: Other upstream spellings of a row's class, bound to the same class: pytorch-grad-cam's
#: ``KPCA_CAM`` and torchcam's ``SmoothGradCAMpp``, ``SSCAM``, ``ISCAM``.
_UPSTREAM_ALIASES = ("KPCA_CAM", "SmoothGradCAMpp", "SSCAM", "ISCAM")


def _camel(name: str) -> str:
    """``guided-gradcam`` -> ``GuidedGradCAM``: words capitalised, ``cam`` as ``CAM``."""
    words = name.replace("++", "-plus-plus").split("-")
    out = []
    for w in words:
        w = w.capitalize()
        out.append(w[:-3] + "CAM" if w.lower().endswith("cam") else w)
    return "".join(out)


def _class_name(row: Dict[str, Any]) -> str:
    spellings = _spellings(row)
    for upstream in _UPSTREAM_NAMES:
        if upstream.lower() in spellings:
            return upstream
    return _camel(row["name"])


def _spellings(row: Dict[str, Any]) -> set:
    return {n.replace("-", "").lower() for n in [row["name"], *row["aliases"]]}


def _make_classes() -> Dict[str, Type[BaseCAM]]:
    classes: Dict[str, Type[BaseCAM]] = {}
    for row in _gradcam.methods():
        # Concept methods (DFF) have their own call shape: DeepFeatureFactorization below.
        if row.get("concepts"):
            continue
        name = _class_name(row)
        doc = (
            f"{row['summary']}.\n\nThe library's ``{row['name']}``, with pytorch-grad-cam's "
            "call shape: ``cam(input_tensor=x, targets=[...])``."
        )
        if row["input_gradient"]:
            doc += " Returns the input-gradient images, float32 (B, H, W, 3)."
        classes[name] = type(
            name,
            (BaseCAM,),
            {"__doc__": doc, "method": row["name"], "guided": row["input_gradient"], "__module__": __name__},
        )
    for alias in _UPSTREAM_ALIASES:
        for row in _gradcam.methods():
            if alias.lower() in _spellings(row):
                classes[alias] = classes[_class_name(row)]
    return classes


class DeepFeatureFactorization:
    """pytorch-grad-cam's ``DeepFeatureFactorization`` (Collins et al., ECCV 2018): NMF of the
    activations at ``target_layer`` into ``n_components`` concepts shared by the batch.

    ``dff(input_tensor, n_components=16)`` returns ``(concepts, batch_explanations,
    concept_scores)``: the concepts float32 (C, K) (NMF's ``W`` with each channel's minimum
    added back), one float32 (K, H, W) array of min-max scaled maps per image, and the
    concepts' class scores (K, classes). ``computation_on_concepts`` maps the concepts (K, C)
    to those scores; by default (``None``) the model's own classifier does, when a global
    average pooling and one linear layer follow ``target_layer`` (as the tutorial's
    ``model.fc``), else the scores are ``None``. Softmax them for each concept's top classes.

    NMF is scikit-learn's (coordinate descent, tol 1e-4, at most 200 iterations), started from
    the library's seeded noise instead of NumPy's, so results repeat run to run.
    """

    method: str = "deepfeaturefactorization"

    def __init__(
        self,
        model: Any,
        target_layer: Any,
        reshape_transform: Any = None,
        computation_on_concepts: Any = None,
    ) -> None:
        if reshape_transform is not None:
            raise GradcamError(
                "reshape_transform is not supported: gradcam cuts models at layers whose output "
                "is already (B, C, H, W)"
            )
        layers = _layer_names(target_layer)
        if len(layers) != 1:
            raise GradcamError(f"DeepFeatureFactorization takes one target_layer, got {layers!r}")
        self.explainer = _explainer(model)
        self.target_layer = layers[0]
        self.computation_on_concepts = computation_on_concepts

    def __call__(
        self, input_tensor: Any, n_components: int = 16
    ) -> Tuple[np.ndarray, List[np.ndarray], Optional[np.ndarray]]:
        x = np.ascontiguousarray(np.asarray(input_tensor), dtype=np.float32)
        if x.ndim != 4:
            raise GradcamError(
                f"input_tensor must have shape (batch, 3, height, width), got {x.shape}"
            )
        if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
            raise GradcamError(f"n_components must be a positive integer, got {n_components!r}")
        out = _gradcam.run_dff(self.explainer._model, x, self.target_layer, int(n_components))
        concepts = floats(out["concepts"], out["concepts_shape"])
        maps = floats(out["maps"], out["maps_shape"])
        if self.computation_on_concepts is not None:
            scores = np.asarray(
                self.computation_on_concepts(np.ascontiguousarray(concepts.T)), dtype=np.float32
            )
        elif out["scores"] is not None:
            scores = floats(out["scores"], out["scores_shape"])
        else:
            scores = None
        return concepts, list(maps), scores

    forward = __call__


_CLASSES = _make_classes()
_CLASSES["DeepFeatureFactorization"] = DeepFeatureFactorization
globals().update(_CLASSES)
_GUIDED_BACKPROP = _CLASSES[_class_name({"name": "guided-backprop", "aliases": []})]

__all__ = [
    "BaseCAM",
    "ClassifierOutputSoftmaxTarget",
    "ClassifierOutputTarget",
    "GuidedBackpropReLUModel",
    "SimilarityToConceptTarget",
    *sorted(_CLASSES),
]
