"""A generated translation corpus that needs no download: the quickstart's
and the tests' default data.

Sentences of a made-up source language are translated word by word through a
fixed dictionary, with two rules a model has to learn beyond the lexicon:
adjectives follow their noun in the target (as in French), and a few source
words translate to two target words."""

import random
from pathlib import Path

NOUNS = ["kat", "dom", "rek", "sil", "mun", "tor", "vel", "pas", "lun", "gor", "fen", "bri"]
ADJECTIVES = ["ola", "eni", "usa", "ira", "oko", "ame"]
VERBS = ["zapi", "moru", "leki", "danu", "sore"]
FUNCTION_WORDS = ["na", "po", "te"]


def _target_word(word):
    if word in ("po", "te"):  # fertility: one source word, two target words
        return f"{word.upper()}1 {word.upper()}2"
    return word[::-1].upper()


def _phrase(rng):
    noun = rng.choice(NOUNS)
    if rng.random() < 0.5:
        adjective = rng.choice(ADJECTIVES)
        return [adjective, noun], [_target_word(noun), _target_word(adjective)]
    return [noun], [_target_word(noun)]


def make_pair(rng):
    """One (source, target) sentence pair."""
    source, target = [], []
    for i in range(rng.randint(1, 3)):
        if i > 0:
            word = rng.choice(FUNCTION_WORDS)
            source.append(word)
            target.append(_target_word(word))
        src, tgt = _phrase(rng)
        source += src
        target += tgt
        if rng.random() < 0.6:
            verb = rng.choice(VERBS)
            source.append(verb)
            target.append(_target_word(verb))
    return " ".join(source), " ".join(target)


def write_toy_corpus(out_dir, n_train=4000, n_valid=200, n_test=200, seed=1,
                     src="src", tgt="tgt"):
    """Write {train,valid,test}.{src,tgt} under out_dir; returns the folder."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for split, size in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        pairs = [make_pair(rng) for _ in range(size)]
        (out_dir / f"{split}.{src}").write_text("".join(s + "\n" for s, _ in pairs))
        (out_dir / f"{split}.{tgt}").write_text("".join(t + "\n" for _, t in pairs))
    return out_dir
