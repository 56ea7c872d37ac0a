from fairseq_ot.criterions import cot, distill, gjs, ot_seq, scheduled_sampling  # noqa: F401
