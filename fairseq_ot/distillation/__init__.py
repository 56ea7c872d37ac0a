"""Distillation from a teacher beyond the `distill` criterion: sequence-level KD data."""
