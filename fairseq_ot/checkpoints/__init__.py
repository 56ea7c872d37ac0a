"""Everything about checkpoint files, in one place:

- `files`: what is wrong with a file, the update count it records, and an
  intact checkpoint_last.pt put back before a run resumes (standard library
  only: the cluster scripts load it by its path);
- `loading`: weights-only loading with every failure explained in one line;
- `writing`: atomic writes that leave the previous checkpoint whole;
- `lock`: one training per save folder;
- `surgery`: a checkpoint continued under another criterion, the generator of
  a mediator checkpoint extracted.

The patches of fairseq that use them are in `fairseq_ot.compat`
(`checkpoint_safety`, `checkpoint_writing`)."""
