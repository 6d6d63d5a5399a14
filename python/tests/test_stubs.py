"""The type stubs name what the package has, and help() is useful."""

import ast
from pathlib import Path

import gradcam
from gradcam import _gradcam, compat

PACKAGE = Path(gradcam.__file__).parent


def _stub_names(name: str) -> set:
    """Classes and functions a stub defines, and the names it binds to them (aliases)."""
    tree = ast.parse((PACKAGE / name).read_text())
    names = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    aliases = {
        t.id
        for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Name) and n.value.id in names
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    return names | aliases


def test_compat_stub_names_every_class():
    public = {n for n in compat.__all__ if isinstance(getattr(compat, n), type)}
    assert public <= _stub_names("compat.pyi")


def test_native_stub_names_every_function():
    native = {n for n in dir(_gradcam) if not n.startswith("_") and callable(getattr(_gradcam, n))}
    assert native == _stub_names("_gradcam.pyi")


def test_docstrings():
    assert "efficientnet_lite0" in (gradcam.__doc__ or "")
    assert compat.GradCAM.__doc__.startswith("Grad-CAM: channels weighted")
    assert "``scorecam``" in compat.ScoreCAM.__doc__


def test_upstream_spellings_are_the_same_classes():
    assert compat.KPCA_CAM is compat.KpcaCAM and compat.KPCA_CAM.method == "kpcacam"
    assert compat.SmoothGradCAMpp.method == "smoothgradcam++"
    assert (compat.SSCAM.method, compat.ISCAM.method) == ("sscam", "iscam")
    assert compat.SESS.method == "sess" and compat.FullGrad.method == "fullgrad"
    assert compat.RefineCAM.method == "refinecam"
    assert compat.LeGrad.method == "legrad"
