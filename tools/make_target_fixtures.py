"""Makes tests/fixtures/targets: pytorch-grad-cam 1.5.7's Grad-CAM maps for the target kinds
beyond one class logit.

Run by hand from the repository root:
    /work/main/bench/.venv/bin/python tools/make_target_fixtures.py

It writes, with fixed seeds and one thread:
- `binary_net.onnx`: a small classifier with one output, (B, 1) (legacy exporter, dynamic batch);
  `binary_net.input.npy`, two images, the first predicted class 1 (logit > 0), the second class 0;
  `binary_net.<target>.npy`: Grad-CAM at `features` for `logit` (`ClassifierOutputTarget(0)`),
  `binary0` / `binary1` (`BinaryClassifierOutputTarget(0 / 1)`) and `binary-predicted` (each
  image's predicted class: 1 then 0);
- `embed_net.onnx`: a classifier with two outputs, `logits` (B, 6) and `embedding` (B, 16);
  `embed_net.input.npy` and `embed_net.reference.png` (a random 32x32 picture); `embed_net.softmax3.npy`:
  Grad-CAM at `features` for `ClassifierOutputSoftmaxTarget(3)`; `embed_net.similar.npy`: for
  `SimilarityToConceptTarget(embedding of the reference)` on the `embedding` output (the target
  class of pytorch-grad-cam's embeddings tutorial, copied below: the package does not ship it);
  `embed_net.similar.stem.npy`: the same at `stem`;
- `resnet_small.similar.layer4.npy`: Grad-CAM at `layer3` of tests/fixtures/resnet_small.pth
  with its `fc` replaced by `Identity` (the embedding is layer4 average-pooled, pytorch-grad-cam's
  "embeddings" tutorial), for the similarity to the embedding of `resnet_small.reference.png`
  (a random 64x64 picture, the fixture input's size);
  `resnet_small.similar.layer3.npy`: the same at `layer2`, with layer3 average-pooled as the
  embedding;
- `seg_net.onnx`: a segmenter, output `out` (B, 3, 16, 16); `seg_net.input.npy`;
  `seg_net.class1.npy`: Grad-CAM at `features` for `SemanticSegmentationTarget(1, mask)` with
  the mask of the pixels the model assigns to class 1 (its segmentation tutorial);
  `seg_net.class1-mask.npy`: the same with the mask of `seg_net.mask.png` (a rectangle, drawn
  at twice the output's resolution: gradcam resizes it to 16x16, nearest);
and `manifest.json` with the layers, classes, ONNX logits and the measured onnxruntime-torch
differences.
"""

import json
import os
import sys

import numpy as np
import onnxruntime as ort
import torch
import torch.nn as nn
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import (
    BinaryClassifierOutputTarget,
    ClassifierOutputSoftmaxTarget,
    ClassifierOutputTarget,
    SemanticSegmentationTarget,
)

sys.path.insert(0, os.path.dirname(__file__))
import make_fixtures  # noqa: E402  (for the small ResNet's architecture)

OUT = "tests/fixtures/targets"
torch.set_num_threads(1)


class SimilarityToConceptTarget:
    """pytorch-grad-cam's tutorial target ("Pixel Attribution for embeddings"; not in the
    package itself): the cosine similarity of the output to a concept's embedding."""

    def __init__(self, features):
        self.features = features

    def __call__(self, model_output):
        cos = torch.nn.CosineSimilarity(dim=0)
        return cos(model_output, self.features)


MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def reference_image(path, size, seed):
    """A random RGB picture of the model's input size (4x4-pixel blocks, so that the PNG stays
    small), saved as PNG, and the network input gradcam makes of it: no resizing at that size,
    then (v / 255 - mean) / std in float32."""
    blocks = np.random.default_rng(seed).integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8)
    rgb = blocks.repeat(4, axis=0).repeat(4, axis=1)
    Image.fromarray(rgb).save(path)
    x = (rgb.astype(np.float32) / np.float32(255) - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


class BinaryNet(nn.Module):
    """conv / relu / conv / relu (the explained `features`) / conv / relu / global average pool /
    linear to one logit. The convolution after `features` makes the gradients differ between
    images: behind GAP + linear alone, Grad-CAM's weights are the same for every image, and one
    of a logit and its negation would give all-zero maps."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
        self.features = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), nn.ReLU())
        self.fc = nn.Linear(8, 1)

    def forward(self, x):
        return self.fc(self.head(self.features(self.stem(x))).mean((2, 3)))


class EmbedNet(nn.Module):
    """A body, a 16-wide embedding (pooled features) and a 6-class head on it."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
        self.features = nn.Sequential(nn.Conv2d(8, 16, 3, 1, 1), nn.ReLU())
        self.fc = nn.Linear(16, 6)

    def forward(self, x):
        embedding = self.features(self.stem(x)).mean((2, 3))
        return self.fc(embedding), embedding


class SegNet(nn.Module):
    """A fully convolutional segmenter: (B, 3, 32, 32) -> (B, 3, 16, 16) class logits per pixel,
    with a convolution after the explained `features` (see BinaryNet)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
        self.features = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), nn.ReLU(), nn.Conv2d(8, 3, 1))

    def forward(self, x):
        return self.head(self.features(self.stem(x)))


class Output(nn.Module):
    """One output of a model with several, as pytorch-grad-cam wants one tensor."""

    def __init__(self, inner, index):
        super().__init__()
        self.inner, self.index = inner, index

    def forward(self, x):
        return self.inner(x)[self.index]


class PooledUpTo(nn.Module):
    """A torchvision ResNet's output of `layer`, average-pooled: an embedding."""

    def __init__(self, resnet, layer):
        super().__init__()
        self.resnet, self.layer = resnet, layer

    def forward(self, x):
        r = self.resnet
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(r, name)(x)
            if name == self.layer:
                return x.mean((2, 3))
        raise ValueError(self.layer)


def gradcam(model, layer, x, targets):
    with GradCAM(model=model, target_layers=[layer]) as cam:
        return cam(input_tensor=x, targets=targets).astype(np.float32)


def export(model, x, path, outputs):
    dynamic = {"input": {0: "batch"}, **{o: {0: "batch"} for o in outputs}}
    torch.onnx.export(model, (x,), path, dynamo=False, opset_version=13, input_names=["input"],
                      output_names=outputs, dynamic_axes=dynamic)


def ort_run(path, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x.numpy()})


def binary(manifest):
    torch.manual_seed(16)
    model = BinaryNet().eval()
    # Two unlike images (the second brighter and more contrasted), so that their logits differ.
    x = torch.randn(2, 3, 32, 32)
    x[1] = 2 * x[1] + 0.5
    with torch.no_grad():
        # Scale the last layer so that the logits are +1 and -1: the images are predicted 1 and 0.
        logits = model(x)[:, 0]
        scale = 2 / (logits[0] - logits[1])
        model.fc.weight *= scale
        model.fc.bias.copy_(model.fc.bias * scale - (logits[0] + logits[1]) * scale / 2)
        logits = model(x)[:, 0]
    assert logits[0] > 0 > logits[1], logits
    np.save(f"{OUT}/binary_net.input.npy", x.numpy())
    export(model, x, f"{OUT}/binary_net.onnx", ["logit"])
    (ort_logits,) = ort_run(f"{OUT}/binary_net.onnx", x)
    targets = {
        "logit": [ClassifierOutputTarget(0)] * 2,
        "binary0": [BinaryClassifierOutputTarget(0)] * 2,
        "binary1": [BinaryClassifierOutputTarget(1)] * 2,
        "binary-predicted": [BinaryClassifierOutputTarget(1), BinaryClassifierOutputTarget(0)],
    }
    for name, t in targets.items():
        maps = gradcam(model, model.features, x.clone(), t)
        assert (maps.max((1, 2)) > 0.5).all(), name
        np.save(f"{OUT}/binary_net.{name}.npy", maps)
    manifest["binary_net"] = {
        "layer": "features",
        "logits": ort_logits[:, 0].tolist(),
        "ort_vs_torch": float(np.abs(ort_logits[:, 0] - logits.numpy()).max()),
    }


def embedding(manifest):
    torch.manual_seed(17)
    model = EmbedNet().eval()
    x = torch.randn(2, 3, 32, 32)
    reference = reference_image(f"{OUT}/embed_net.reference.png", 32, 17)
    np.save(f"{OUT}/embed_net.input.npy", x.numpy())
    export(model, x, f"{OUT}/embed_net.onnx", ["logits", "embedding"])
    ort_logits, ort_embedding = ort_run(f"{OUT}/embed_net.onnx", x)
    with torch.no_grad():
        logits, emb = model(x)
        concept = model(reference)[1][0]
    softmax = gradcam(Output(model, 0), model.features, x.clone(), [ClassifierOutputSoftmaxTarget(3)] * 2)
    np.save(f"{OUT}/embed_net.softmax3.npy", softmax)
    similar = gradcam(Output(model, 1), model.features, x.clone(), [SimilarityToConceptTarget(concept)] * 2)
    np.save(f"{OUT}/embed_net.similar.npy", similar)
    # The same similarity explained at `stem`: gradcam reads it at the `embedding` output, or
    # at the inner layer `features` average-pooled (the same function, another code path).
    similar = gradcam(Output(model, 1), model.stem, x.clone(), [SimilarityToConceptTarget(concept)] * 2)
    np.save(f"{OUT}/embed_net.similar.stem.npy", similar)
    cosine = torch.nn.functional.cosine_similarity(emb, concept[None], dim=1)
    manifest["embed_net"] = {
        "layer": "features",
        "softmax_class": 3,
        "probabilities": torch.softmax(logits, 1)[:, 3].tolist(),
        "similarities": cosine.tolist(),
        "ort_vs_torch": float(max(np.abs(ort_logits - logits.numpy()).max(),
                                  np.abs(ort_embedding - emb.numpy()).max())),
    }


def segmentation(manifest):
    torch.manual_seed(19)
    model = SegNet().eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        # Centre each class's logits, so that every class wins some pixels.
        model.head[-1].bias -= model(x).mean((0, 2, 3))
    np.save(f"{OUT}/seg_net.input.npy", x.numpy())
    export(model, x, f"{OUT}/seg_net.onnx", ["out"])
    (ort_out,) = ort_run(f"{OUT}/seg_net.onnx", x)
    with torch.no_grad():
        out = model(x)
    # pytorch-grad-cam's segmentation tutorial: the pixels the model assigns to the class.
    category = 1
    assigned = (out.argmax(1) == category).float().numpy()
    assert (assigned.sum((1, 2)) > 20).all(), assigned.sum((1, 2))
    targets = [SemanticSegmentationTarget(category, assigned[b]) for b in range(2)]
    np.save(f"{OUT}/seg_net.class1.npy", gradcam(model, model.features, x.clone(), targets))
    # A given mask: a rectangle at the output's resolution (16x16), saved 2x larger as PNG.
    mask = np.zeros((16, 16), dtype=np.float32)
    mask[3:9, 5:14] = 1
    Image.fromarray((mask * 255).astype(np.uint8).repeat(2, 0).repeat(2, 1)).save(f"{OUT}/seg_net.mask.png")
    targets = [SemanticSegmentationTarget(category, mask)] * 2
    np.save(f"{OUT}/seg_net.class1-mask.npy", gradcam(model, model.features, x.clone(), targets))
    manifest["seg_net"] = {
        "layer": "features",
        "class": category,
        "pixels": assigned.sum((1, 2)).tolist(),
        "scores": (out[:, category].numpy() * assigned).sum((1, 2)).tolist(),
        "mask_scores": (out[:, category].numpy() * mask).sum((1, 2)).tolist(),
        "ort_vs_torch": float(np.abs(ort_out - out.numpy()).max()),
    }


def resnet_similarity(manifest):
    resnet = make_fixtures.make_small_model("resnet_small")
    state = torch.load("tests/fixtures/resnet_small.pth", map_location="cpu")
    resnet.load_state_dict(state)
    resnet.eval()
    x = torch.from_numpy(np.load("tests/fixtures/resnet_small.input.npy"))
    # At the fixture input's size, 64x64 (the test explains the model at that size).
    reference = reference_image(f"{OUT}/resnet_small.reference.png", 64, 18)
    entry = {}
    for embedding_layer, explained in (("layer4", "layer3"), ("layer3", "layer2")):
        model = PooledUpTo(resnet, embedding_layer).eval()
        with torch.no_grad():
            concept = model(reference)[0]
            cosine = torch.nn.functional.cosine_similarity(model(x), concept[None], dim=1)
        layer = getattr(resnet, explained)[-1]
        maps = gradcam(model, layer, x.clone(), [SimilarityToConceptTarget(concept)] * 2)
        np.save(f"{OUT}/resnet_small.similar.{embedding_layer}.npy", maps)
        entry[embedding_layer] = {"layer": explained, "similarities": cosine.tolist()}
    manifest["resnet_small"] = entry


def main():
    os.makedirs(OUT, exist_ok=True)
    manifest = {"pytorch_grad_cam": "1.5.7", "torch": torch.__version__}
    binary(manifest)
    embedding(manifest)
    resnet_similarity(manifest)
    segmentation(manifest)
    with open(f"{OUT}/manifest.json", "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()
