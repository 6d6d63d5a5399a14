"""Fixtures for the pictures of Deep Feature Factorization (tests/dff.rs): pytorch-grad-cam
1.5.7's `show_factorization_on_image` (without labels) and matplotlib's `gist_rainbow` colours.

Run by hand from the repository root with the bench venv:
    /work/main/bench/.venv/bin/python tools/make_dff_picture_fixtures.py
Writes tests/fixtures/dff/picture.{image,maps,w03}.npy and colors.k{1..7}.npy (float32).
"""

import os

import matplotlib
import numpy as np
from importlib.metadata import version
from pytorch_grad_cam.utils.image import show_factorization_on_image

OUT = "tests/fixtures/dff"


def main() -> None:
    assert version("grad-cam") == "1.5.7", version("grad-cam")
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(16)
    h, w, k = 12, 20, 3
    image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    maps = rng.random((k, h, w), dtype=np.float32)
    maps[0, 0, :4] = 1.0  # ties: numpy's argmax takes the first concept
    maps[1, 0, :4] = 1.0
    # Its default colours, `plt.cm.get_cmap('gist_rainbow')` at i / k, which matplotlib 3.11
    # no longer spells so: the same map from `matplotlib.colormaps`, given explicitly.
    cmap = matplotlib.colormaps["gist_rainbow"]
    colors = [np.array(cmap(i)) for i in np.arange(0, 1, 1.0 / k)]
    # show_factorization_on_image zeroes the maps in place: give it a copy.
    picture = show_factorization_on_image(
        image.astype(np.float32) / 255, maps.copy(), colors=colors, image_weight=0.3
    )
    np.save(f"{OUT}/picture.image.npy", image.astype(np.float32))
    np.save(f"{OUT}/picture.maps.npy", maps)
    np.save(f"{OUT}/picture.w03.npy", picture.astype(np.float32))
    for n in range(1, 8):
        colors = [np.uint8(np.array(cmap(i))[:3] * 255) for i in np.arange(0, 1, 1.0 / n)]
        np.save(f"{OUT}/colors.k{n}.npy", np.array(colors, dtype=np.float32))
    print("matplotlib", matplotlib.__version__, "numpy", np.__version__)


if __name__ == "__main__":
    main()
