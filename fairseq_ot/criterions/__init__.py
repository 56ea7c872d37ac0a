from fairseq_ot.criterions import cot, gjs, ot_seq, scheduled_sampling  # noqa: F401
