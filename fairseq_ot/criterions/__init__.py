from fairseq_ot.criterions import ot_seq, scheduled_sampling  # noqa: F401
