"""Text corpus preparation (fairseq_ot/data_prep, scripts/prepare_*.py):
generated corpora always, the first lines of the real ones when
../shared/data is present."""

import gzip
import io
import json
import subprocess
import sys

import pytest
from fairseq.data import Dictionary, data_utils
from rouge_score.tokenize import tokenize as rouge_tokenize
from subword_nmt.learn_bpe import learn_bpe

from fairseq_ot.data_prep.bpe import BpeApplier
from fairseq_ot.data_prep.pipeline import PrepOptions, SplitFiles, prepare
from fairseq_ot.data_prep.text_files import TextFileError, read_aligned, read_lines
from fairseq_ot.data_prep.tokenize import detokenize, tokenize

from text_corpora import (
    files_state, generated_pairs, head_of_real_corpus, real_data, script_main,
    write_generated_aeslc, write_generated_multi30k, write_lines,
)

TEST_ONLY_WORD = "Quixotically"


@pytest.fixture(scope="module")
def generated_multi30k(tmp_path_factory):
    """(raw folder, prepared folder) of a generated Multi30k-layout corpus whose
    test split alone holds TEST_ONLY_WORD, on every line."""
    root = tmp_path_factory.mktemp("gen_multi30k")
    raw = write_generated_multi30k(root / "raw")
    for lang in ("en", "de"):
        path = raw / f"test_2016_flickr.{lang}.gz"
        write_lines(path, [f"{TEST_ONLY_WORD} {line}" for line in read_lines(path)])
    script_main("prepare_multi30k")(["--raw-dir", str(raw), "--out-dir", str(root / "prepared"),
                                     "--bpe-merges", "300"])
    return raw, root / "prepared"


def binarized_lines(data_bin, split, lang, dictionary):
    dataset = data_utils.load_indexed_dataset(str(data_bin / f"{split}.en-de.{lang}"), dictionary)
    return [dictionary.string(dataset[i]) for i in range(len(dataset))]


def test_binarized_data_is_the_bpe_of_the_moses_tokens_of_each_raw_line(generated_multi30k):
    raw, prepared = generated_multi30k
    codes = (prepared / "bpe.codes").read_text()
    segment = BpeApplier(codes)
    dictionary = Dictionary.load(str(prepared / "data-bin" / "dict.en.txt"))
    for split, stem in (("train", "train"), ("valid", "val"), ("test", "test_2016_flickr")):
        for lang in ("en", "de"):
            raw_lines = read_lines(raw / f"{stem}.{lang}.gz")
            # symbols never seen in train (the test-only word's letters) are <unk>
            expected = [" ".join(unit if dictionary.index(unit) != dictionary.unk() else "<unk>"
                                 for unit in segment(tokenize(line, lang)).split()) for line in raw_lines]
            assert binarized_lines(prepared / "data-bin", split, lang, dictionary) == expected
    assert read_lines(prepared / "references" / "test.de") == read_lines(raw / "test_2016_flickr.de.gz")


def test_bpe_is_learned_on_train_only(generated_multi30k):
    _, prepared = generated_multi30k
    train_tokens = (prepared / "tok" / "train.en").read_text().splitlines()
    train_tokens += (prepared / "tok" / "train.de").read_text().splitlines()
    codes = io.StringIO()
    learn_bpe(iter(train_tokens), codes, 300, min_frequency=2)
    assert (prepared / "bpe.codes").read_text() == codes.getvalue()
    # the word on every test line (37 times) would be one merged unit if test
    # lines had been learned from; from train alone it stays in pieces
    assert len(BpeApplier(codes.getvalue())(TEST_ONLY_WORD).split()) > 1


def test_second_run_does_nothing_and_leaves_files_untouched(generated_multi30k):
    raw, prepared = generated_multi30k
    before = files_state(prepared)
    script_main("prepare_multi30k")(["--raw-dir", str(raw), "--out-dir", str(prepared),
                                     "--bpe-merges", "300"])
    assert files_state(prepared) == before


def test_tokenizer_does_not_escape_and_detokenizes_back():
    line = 'Tom\'s "dog" & (cat) sit, then run!'
    tokens = tokenize(line, "en")
    assert tokens == 'Tom \'s " dog " & ( cat ) sit , then run !'
    assert detokenize(tokens, "en") == line
    for english, german in generated_pairs(50, seed=9):
        assert detokenize(tokenize(english, "en"), "en") == english
        assert detokenize(tokenize(german, "de"), "de") == german


# --- bad input: an error naming the file and line, nothing left behind -------

def bad_input_case(tmp_path, kind):
    good = [f"line {i}" for i in range(6)]
    source, target = list(good), list(good)
    if kind == "misaligned":
        target = good[:4]
        expected = "train.en.gz has 6 lines but {}/train.de has 4; {}/train.en.gz:5"
    elif kind == "empty":
        target[2] = "  "
        expected = "{}/train.de:3: empty line"
    else:
        target[3] = "caf\xe9"
        expected = "{}/train.de:4: not UTF-8"
    write_lines(tmp_path / "train.en.gz", source)
    (tmp_path / "train.de").write_bytes(
        "".join(line + "\n" for line in target).encode("utf-8").replace("caf\xe9".encode(), b"caf\xe9"))
    return expected.replace("{}", str(tmp_path))


@pytest.mark.parametrize("kind", ["misaligned", "empty", "non_utf8"])
def test_bad_input_names_file_and_line(tmp_path, kind):
    expected = bad_input_case(tmp_path, kind)
    with pytest.raises(TextFileError) as error:
        read_aligned([tmp_path / "train.en.gz", tmp_path / "train.de"])
    assert expected in str(error.value)


@pytest.mark.parametrize("kind", ["misaligned", "empty", "non_utf8"])
def test_failed_rebuild_keeps_the_previous_output_and_no_partial_folder(generated_multi30k, tmp_path, kind):
    _, prepared = generated_multi30k
    before = files_state(prepared)
    expected = bad_input_case(tmp_path, kind)
    splits = [SplitFiles(name, tmp_path / "train.en.gz", tmp_path / "train.de")
              for name in ("train", "valid", "test")]
    with pytest.raises(TextFileError, match=expected.split(":")[0]):
        prepare(prepared, splits, PrepOptions("en", "de", "en", "de", 300))
    assert files_state(prepared) == before
    assert [p.name for p in prepared.parent.iterdir() if p.name.startswith(".")] == []


def test_script_reports_bad_input_as_one_line_error(tmp_path):
    raw = write_generated_multi30k(tmp_path / "raw", sizes=(20, 5, 5))
    (raw / "val.de.gz").write_bytes(gzip.compress(b"ok\n\xff\xfe\nok\nok\nok\n"))
    with pytest.raises(SystemExit) as exit_:
        script_main("prepare_multi30k")(["--raw-dir", str(raw), "--out-dir", str(tmp_path / "out")])
    assert str(exit_.value) == f"error: {raw / 'val.de.gz'}:2: not UTF-8 (byte 0xff at column 1)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def damage_line(path, number, line):
    lines = read_lines(path)
    lines[number - 1] = line
    write_lines(path, lines)


# Moses deletes ASCII control characters: a line of them is not blank, yet no
# token is left of it
CONTROL_ONLY = "\x01\x02"


@pytest.mark.parametrize("script,raw_file,number", [
    ("prepare_multi30k", "train.en.gz", 7),
    ("prepare_multi30k", "val.de.gz", 3),
    ("prepare_aeslc", "train.email.gz", 7),
    ("prepare_aeslc", "dev.subject.gz", 2),
    ("prepare_aeslc", "test.ann1.gz", 4),
])
def test_a_line_with_no_token_after_tokenization_is_a_one_line_error(tmp_path, script, raw_file, number):
    write_raw = write_generated_multi30k if script == "prepare_multi30k" else write_generated_aeslc
    raw = write_raw(tmp_path / "raw", sizes=(20, 5, 5))
    damage_line(raw / raw_file, number, CONTROL_ONLY)
    with pytest.raises(SystemExit) as exit_:
        script_main(script)(["--raw-dir", str(raw), "--out-dir", str(tmp_path / "out")])
    assert str(exit_.value) == (
        f"error: {raw / raw_file}:{number}: no token left after tokenization: {CONTROL_ONLY!r}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_a_rerun_removes_the_partial_folders_of_its_own_output_left_by_dead_runs(tmp_path):
    raw = write_generated_multi30k(tmp_path / "raw", sizes=(20, 5, 5))
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        # a run killed mid-way, a run still building the same output, and a
        # dead run's folder for another output
        planted = [f".out.partial-{dead.pid}", f".out.partial-{running.pid}", f".other.partial-{dead.pid}"]
        for name in planted:
            (tmp_path / name).mkdir()
            (tmp_path / name / "tok").write_text("half written")
        script_main("prepare_multi30k")(["--raw-dir", str(raw), "--out-dir", str(tmp_path / "out"),
                                         "--bpe-merges", "50"])
    finally:
        running.kill()
        running.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["raw", "out", *planted[1:]])


def test_never_replaces_a_folder_it_did_not_make(tmp_path):
    raw = write_generated_multi30k(tmp_path / "raw", sizes=(20, 5, 5))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="exists and is not a prepared folder"):
        script_main("prepare_multi30k")(["--raw-dir", str(raw), "--out-dir", str(tmp_path / "out")])
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["notes.txt"]


# --- summarization layouts -----------------------------------------------------

def test_aeslc_layout_truncates_sources_and_keeps_extra_references(tmp_path):
    raw = write_generated_aeslc(tmp_path / "raw")
    prepared = tmp_path / "prepared"
    script_main("prepare_aeslc")(["--raw-dir", str(raw), "--out-dir", str(prepared),
                                  "--max-source-tokens", "12", "--bpe-merges", "200"])
    emails = read_lines(raw / "test.email.gz")
    tokenized = (prepared / "tok" / "test.email").read_text().splitlines()
    assert tokenized == [" ".join(tokenize(email, "en").split()[:12]) for email in emails]
    assert max(len(email.split()) for email in emails) > 12
    for k in range(3):
        assert read_lines(prepared / "references" / f"test.subject.{k + 1}") == read_lines(raw / f"test.ann{k}.gz")
    splits = json.loads((prepared / "prepared.json").read_text())["splits"]
    assert splits == {"train": {"pairs": 300, "extra_references": 0},
                      "valid": {"pairs": 30, "extra_references": 3},
                      "test": {"pairs": 29, "extra_references": 3}}


# --- the first lines of the real corpora ---------------------------------------

def test_real_multi30k_head(tmp_path):
    source = real_data("multi30k")
    names = [f"{stem}.{lang}.gz" for stem in ("train", "val", "test_2016_flickr") for lang in ("en", "de")]
    raw = head_of_real_corpus(source, names, tmp_path / "raw", 300)
    prepared = tmp_path / "prepared"
    script_main("prepare_multi30k")(["--raw-dir", str(raw), "--out-dir", str(prepared), "--bpe-merges", "500"])
    references = read_lines(prepared / "references" / "test.de")
    assert references == read_lines(raw / "test_2016_flickr.de.gz")
    # the scoring path detokenizes; on these lines it gives the raw text back
    # (on all 1,000 test lines, 3 with unusual apostrophes or spacing differ)
    tokenized = (prepared / "tok" / "test.de").read_text().splitlines()
    assert [detokenize(line, "de") for line in tokenized] == [" ".join(r.split()) for r in references]


def test_real_aeslc_head(tmp_path):
    source = real_data("aeslc")
    names = [f"{stem}.{side}.gz" for stem in ("train", "dev", "test") for side in ("email", "subject")]
    names += [f"{stem}.ann{k}.gz" for stem in ("dev", "test") for k in range(3)]
    raw = head_of_real_corpus(source, names, tmp_path / "raw", 200)
    prepared = tmp_path / "prepared"
    script_main("prepare_aeslc")(["--raw-dir", str(raw), "--out-dir", str(prepared),
                                  "--max-source-tokens", "100", "--bpe-merges", "500"])
    sources = (prepared / "tok" / "train.email").read_text().splitlines()
    assert max(len(line.split()) for line in sources) == 100
    # ROUGE sees the same words in a detokenized subject as in the raw one
    references = read_lines(raw / "test.subject.gz")
    tokenized = (prepared / "tok" / "test.subject").read_text().splitlines()
    for reference, line in zip(references, tokenized):
        assert rouge_tokenize(detokenize(line, "en"), None) == rouge_tokenize(reference, None)


def test_real_gigaword_sample_in_the_aeslc_script(tmp_path):
    raw = real_data("gigaword_sample")
    prepared = tmp_path / "prepared"
    script_main("prepare_aeslc")(["--format", "gigaword", "--raw-dir", str(raw), "--out-dir", str(prepared),
                                  "--train-prefix", "train1000", "--held-out", "100", "--bpe-merges", "500",
                                  "--max-source-tokens", "0"])
    titles = read_lines(raw / "train1000.title.txt.gz")
    articles = read_lines(raw / "train1000.article.txt.gz")
    # already tokenized: kept as is, valid and test the last 200 pairs
    assert (prepared / "tok" / "train.title").read_text().splitlines() == titles[:800]
    assert (prepared / "tok" / "test.article").read_text().splitlines() == [" ".join(a.split()) for a in articles[900:]]
    assert read_lines(prepared / "references" / "valid.title") == titles[800:900]
