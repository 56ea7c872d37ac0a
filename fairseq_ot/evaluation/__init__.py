"""Reading fairseq-generate output and recording scores, shared by every
recipe's scoring script."""
