"""Checks `gradcam` on a Keras model converted by tf2onnx (channel-last input), against Grad-CAM
and CAM computed by hand in TensorFlow. Run by hand from the repository root, with TensorFlow and
tf2onnx in their own venv (`python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install
tensorflow-cpu tf2onnx`):

    /work/main/bench/.venv/bin/python tools/check_tf2onnx.py [--tf-python /tmp/tfvenv/bin/python] \
        [--out /tmp/tf2onnx-check] [--gradcam target/release/gradcam]

Keras MobileNetV2 (random weights, seed 0, 1000 classes), converted with
`tf2onnx.convert.from_keras` (opset 17, dynamic batch). One 224x224 PNG of seeded noise,
preprocessed as gradcam does by default (ImageNet mean and std, NHWC). In TensorFlow: Grad-CAM at
the layer `out_relu` with `tf.GradientTape` (the gradient of the top-1 logit, averaged over the
positions), and CAM (the Dense layer's weights of the class); both raw 7x7 maps are scaled as
pytorch-grad-cam's `scale_cam_image` does (ReLU, min-max, bilinear resize to 224x224, twice, as
for one layer). gradcam runs `explain --model FILE.onnx --layer L` with both methods.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
LAYER = "out_relu"


def keras_part(out):
    """In the TensorFlow venv: the model, its ONNX file, and the raw maps."""
    import tensorflow as tf
    import tf2onnx

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), classes=1000,
                                              classifier_activation=None)
    # Random batch-norm statistics, so that folding them is exercised.
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                               rng.uniform(-0.3, 0.3, beta.shape).astype(np.float32),
                               rng.uniform(-0.3, 0.3, mean.shape).astype(np.float32),
                               rng.uniform(0.5, 1.5, var.shape).astype(np.float32)])
    spec = (tf.TensorSpec((None, 224, 224, 3), tf.float32, name="input"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=17,
                               output_path=os.path.join(out, "mobilenet_v2.tf2onnx.onnx"))
    png = tf.io.decode_png(tf.io.read_file(os.path.join(out, "noise224.png")), channels=3)
    x = ((tf.cast(png, tf.float32).numpy() / 255.0 - MEAN) / STD)[None].astype(np.float32)
    grad_model = tf.keras.Model(model.inputs, [model.get_layer(LAYER).output, model.output])
    with tf.GradientTape() as tape:
        features, logits = grad_model(x)
        top1 = int(tf.argmax(logits[0]))
        score = logits[:, top1]
    grads = tape.gradient(score, features)[0].numpy()  # (7, 7, C)
    features = features[0].numpy()
    gradcam = (grads.mean((0, 1)) * features).sum(-1)
    dense = model.layers[-1].get_weights()[0]  # (C, classes)
    cam = (dense[:, top1] * features).sum(-1)
    np.save(os.path.join(out, "keras.gradcam.npy"), gradcam)
    np.save(os.path.join(out, "keras.cam.npy"), cam)
    np.save(os.path.join(out, "keras.logits.npy"), logits.numpy())
    with open(os.path.join(out, "keras.json"), "w") as f:
        json.dump({"top1": top1}, f)


def scale(raw):
    """pytorch-grad-cam's per-layer then aggregate scaling of one raw map, to 224x224."""
    from pytorch_grad_cam.utils.image import scale_cam_image

    once = scale_cam_image([np.maximum(raw, 0)], (224, 224))
    return scale_cam_image(np.maximum(once, 0), (224, 224))[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keras-part", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tf-python", default="/tmp/tfvenv/bin/python")
    ap.add_argument("--out", default="/tmp/tf2onnx-check")
    ap.add_argument("--gradcam", default="target/release/gradcam")
    args = ap.parse_args()
    if args.keras_part:
        return keras_part(args.out)
    from PIL import Image

    os.makedirs(args.out, exist_ok=True)
    photo = os.path.join(args.out, "noise224.png")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(photo)
    subprocess.run([args.tf_python, __file__, "--keras-part", "--out", args.out], check=True)
    top1 = json.load(open(os.path.join(args.out, "keras.json")))["top1"]
    path = os.path.join(args.out, "mobilenet_v2.tf2onnx.onnx")

    listing = subprocess.run([args.gradcam, "models", path], capture_output=True, text=True, check=True).stdout
    print("\n".join(line for line in listing.splitlines() if LAYER in line or "input" in line.lower())[:2000])
    # The layer rows are indented: its name comes first (the header names the default layer).
    layer = next(line.split()[0] for line in listing.splitlines() if line.startswith("  ") and LAYER in line)
    for method in ("gradcam", "cam"):
        out = os.path.join(args.out, f"gradcam.{method}")
        run = subprocess.run([args.gradcam, "explain", photo, "--model", path, "--layer", layer, "--method", method,
                              "--class", str(top1), "--out", out, "--overwrite"], capture_output=True, text=True)
        print(run.stderr.strip()[-600:])
        run.check_returncode()
        ours = np.load(os.path.join(out, "noise224.cam.npy"))
        raw = np.maximum(np.load(os.path.join(args.out, f"keras.{method}.npy")), 0)
        diff = float(np.abs(ours - scale(raw)).max())
        # Min-max scaling magnifies rounding by 1 / (max - min) of the raw map.
        spread = float(raw.max() - raw.min())
        print(f"{method} at {layer}: max abs diff vs TensorFlow {diff:.1e}; raw map {raw.min():.6f} to "
              f"{raw.max():.6f}, so {diff * spread:.1e} in the raw map's units")


if __name__ == "__main__":
    sys.exit(main())
