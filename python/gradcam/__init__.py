"""Grad-CAM and its family for vision models, without torch: the ``gradcam`` Rust library.

>>> import gradcam
>>> ex = gradcam.Explainer("efficientnet_lite0")              # doctest: +SKIP
>>> res = ex.explain("assets/cat_dog.jpg", classes=[281], method="gradcam++")  # doctest: +SKIP
>>> res[0].label, res[0].map.shape, res[0].box                # doctest: +SKIP
('tabby', (224, 224), (58, 0, 639, 479))
>>> res[0].top5[0]                                            # doctest: +SKIP
(243, 'bull mastiff', 0.3373...)

``gradcam.compat`` has pytorch-grad-cam's call shape (``GradCAM(model=..., target_layers=[...])``).
Errors of the library (a bad image, an unknown layer, a class out of range) are raised as
:class:`GradcamError`, a ``ValueError``, with the library's message.
"""

from ._gradcam import GradcamError, __version__
from ._explainer import Explainer, methods
from ._result import ClassMap, Result

__all__ = ["ClassMap", "Explainer", "GradcamError", "Result", "__version__", "methods"]
