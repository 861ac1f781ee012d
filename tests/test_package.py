"""The package as a user installs it: a wheel built from the repository, installed into a fresh virtual
environment, runs the main command from any directory with the default model it carries as package data."""

import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What the build reads; the test builds from a copy, so that nothing is written into the checkout.
BUILD_INPUTS = ("setup.py", "pyproject.toml", "README.md", "MANIFEST.in", "tf_bert_seqgen", "saved_models")
TEXT = "It rains. We stay in."


def _run(command, **kwargs):
    out = subprocess.run(command, capture_output=True, text=True, timeout=900, **kwargs)
    assert out.returncode == 0, f"{command}\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    return out


def _newest_default_model_version():
    root = os.path.join(REPO, "saved_models", "fusion")
    return max(int(v) for v in os.listdir(root) if re.fullmatch(r"\d+", v))


@pytest.mark.large
def test_wheel_installs_without_the_source_tree_and_runs_from_any_directory(tmp_path, capsys):
    source = tmp_path / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in BUILD_INPUTS:
        path = os.path.join(REPO, name)
        if os.path.isdir(path):
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels), "."], cwd=source)
    [wheel] = [str(p) for p in wheels.glob("tf_bert_seqgen-*.whl")]
    names = zipfile.ZipFile(wheel).namelist()
    version = _newest_default_model_version()
    assert f"tf_bert_seqgen/saved_models/fusion/{version}/saved_model.pb" in names
    assert f"tf_bert_seqgen/saved_models/fusion/{version}/assets.extra/tokenizer/vocab.txt" in names
    assert not [n for n in names if n.startswith(("saved_models/", "tests/", "benchmarks/"))]

    venv = tmp_path / "venv"
    # System site-packages: TensorFlow and the other dependencies are not downloaded again.
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)])
    python, script = str(venv / "bin" / "python"), str(venv / "bin" / "tf-bert-seqgen")
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", wheel])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    code = ("import tf_bert_seqgen; from tf_bert_seqgen.cli import default_model_dir; "
            "print(tf_bert_seqgen.__file__); print(default_model_dir())")
    package_file, model_dir = _run([python, "-c", code], cwd=elsewhere, env=env).stdout.splitlines()[-2:]
    # The venv's copy is imported, not the editable checkout that the system site-packages also holds.
    assert os.path.realpath(package_file).startswith(os.path.realpath(venv) + os.sep), package_file
    assert not os.path.realpath(package_file).startswith(REPO + os.sep)
    assert os.path.realpath(model_dir) == os.path.realpath(os.path.join(
        os.path.dirname(package_file), "saved_models", "fusion", str(version)))

    out = _run([script, "generate", TEXT], cwd=elsewhere, env=env)
    [generated] = out.stdout.splitlines()
    assert generated.strip() and "I0000" not in out.stderr and "oneDNN" not in out.stderr
    # The same model as the repository's copy: the same text.
    from tf_bert_seqgen import cli

    cli.main(["generate", TEXT])
    assert capsys.readouterr().out.splitlines() == [generated]
