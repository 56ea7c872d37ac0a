from fairseq_ot.criterions import cot, distill, emo, gjs, mixce, ot_seq, scheduled_sampling, tailr  # noqa: F401
