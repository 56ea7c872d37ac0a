"""Console scripts: fairseq's own command-line mains with the plugin imported,
an alternative to passing `--user-dir`."""

import fairseq_ot  # noqa: F401  (registers criterions, tasks and models)


def train():
    from fairseq_cli.train import cli_main

    cli_main()


def generate():
    from fairseq_cli.generate import cli_main

    cli_main()


def interactive():
    from fairseq_cli.interactive import cli_main

    cli_main()


def validate():
    from fairseq_cli.validate import cli_main

    cli_main()


def hydra_train():
    from fairseq_cli.hydra_train import cli_main

    cli_main()
