"""Preparing raw text corpora for fairseq: checked reading, Moses tokenization,
joint BPE and binarization, shared by the scripts/prepare_*.py scripts.

- ``text_files``: UTF-8 line files (plain or .gz) read with errors naming the
  file and line; aligned parallel files.
- ``tokenize``: sacremoses tokenization / detokenization without HTML escaping.
- ``bpe``: subword-nmt joint BPE, learned on training lines only.
- ``pipeline``: raw split files -> tokenized, BPE'd, binarized folder, written
  under a temporary name and renamed when complete, skipped when up to date.
"""
