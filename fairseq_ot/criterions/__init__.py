from fairseq_ot.criterions import ot_seq  # noqa: F401
