"""The caption language-modelling benchmark: data preparation (split by image
as the captioning recipe splits, vocabulary from train only, binarized data
that round-trips), unconditional sampling (reproducible by seed, softmax(z/T)
at every temperature, greedy as T -> 0), the held-out NLL, and the
sample / sweep command lines end to end, bad input included (a checkpoint
of another task, a missing data folder)."""

import gzip
import json
import math
import shutil
from collections import Counter

import pytest
import torch
from fairseq.data import Dictionary, data_utils, indexed_dataset
from fairseq.models.lstm import LSTMDecoder
from fairseq.models.lstm_lm import LSTMLanguageModel

from captioning_data import write_raw_flickr
from conftest import SHARED_DATA, TINY_TRANSFORMER, USER_DIR, load_script, one_line_error, run_cli
from fairseq_ot.data.caption_dataset import references_file
from fairseq_ot.data_prep import caption_lm, flickr8k
from fairseq_ot.evaluation.lm_sampling import LoadedLM, sample_sentences, split_nll
from fairseq_ot.evaluation.temperature_sweep import REAL
from fairseq_ot.modules.sampling import ancestral_sample
from fairseq_ot.recipes import recipe_args
from fairseq_ot.toy_corpus import write_toy_corpus

# the commands, run end to end
prepare_caption_lm = load_script("prepare_caption_lm")
sample_lm = load_script("sample_lm")
sweep_temperature = load_script("sweep_temperature")
sweep_oracle_temperature = load_script("sweep_oracle_temperature")

TEST_ONLY_CAPTION = "Zebra zebra zebra zebra zebra zebra ."  # a word seen 6 times, in test only
TINY_LSTM = ["--decoder-embed-dim", "16", "--decoder-hidden-size", "16", "--decoder-out-embed-dim", "16"]
TINY_MEDIATOR = ["--mediator-embed-dim", "8", "--mediator-hidden-dim", "8"]


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """Flickr-like raw files whose first test image has one more caption,
    made of a word no training caption has."""
    folder = tmp_path_factory.mktemp("raw")
    write_raw_flickr(folder, n_images=(24, 6, 6))
    captions = folder / "Flickr8k.token.txt.gz"
    lines = gzip.open(captions, "rt", encoding="utf-8").read()
    test_image = (folder / flickr8k.SPLIT_LISTS["test"]).read_text().split()[0]
    with gzip.open(captions, "wt", encoding="utf-8") as out:
        out.write(lines + f"{test_image}#5\t{TEST_ONLY_CAPTION}\n")
    return folder


@pytest.fixture(scope="module")
def data_bin(raw, tmp_path_factory):
    dest = tmp_path_factory.mktemp("prepared") / "caption_lm"
    prepare_caption_lm.main([str(raw), "--dest", str(dest)])
    return dest


def read(path):
    return path.read_text(encoding="utf-8").splitlines()


def test_split_by_image_and_tokenization_are_the_captioning_recipes(raw, data_bin, tmp_path):
    captioning = tmp_path / "captioning"
    flickr8k.prepare(raw, captioning, raw / "features.npz", bpe_merges=20, limit=0)
    vocabulary = {line.split()[0] for line in read(data_bin / "dict.txt")}
    for split in ("train", "valid", "test"):
        expected = read(references_file(captioning, split))  # no caption is over 32 tokens
        ours = read(caption_lm.text_file(data_bin, split))
        assert len(ours) == len(expected)
        for line, reference in zip(ours, expected):
            assert line.split() == [word if word in vocabulary else "<unk>" for word in reference.split()]


def test_vocabulary_comes_from_training_captions_only(raw, data_bin):
    captions = flickr8k.read_captions(flickr8k.find_captions_file(raw))
    images = flickr8k.read_splits(raw, captions)["train"]
    counts = Counter(word for name in images for caption in captions[name] for word in caption.split())
    dictionary = [line.split() for line in read(data_bin / "dict.txt")]
    assert {word: int(count) for word, count in dictionary} == {
        word: count for word, count in counts.items() if count >= caption_lm.MIN_COUNT}
    assert "zebra" not in dict(dictionary)
    assert "<unk> <unk> <unk> <unk> <unk> <unk> ." in read(data_bin / "test.txt")
    stats = json.loads((data_bin / caption_lm.STATS_FILE).read_text())
    assert stats["vocabulary"] == len(dictionary)
    assert stats["test"]["captions"] == 6 * 5 + 1 and stats["test"]["unk_rate"] > 0


def test_binarized_data_round_trips(data_bin):
    dictionary = Dictionary.load(str(data_bin / "dict.txt"))
    for split in ("train", "valid", "test"):
        dataset = data_utils.load_indexed_dataset(str(data_bin / split), dictionary)
        lines = read(caption_lm.text_file(data_bin, split))
        assert len(dataset) == len(lines)
        for index, line in enumerate(lines):
            assert dataset[index][-1] == dictionary.eos()
            assert dictionary.string(dataset[index]) == line


def test_long_captions_are_dropped_and_counted():
    splits = {"train": [["a"] * 3, ["b"] * 4], "test": [["c"] * 5]}
    kept, dropped = caption_lm.drop_long(splits, 4)
    assert kept == {"train": [["a"] * 3, ["b"] * 4], "test": []}
    assert dropped == {"train": 0, "test": 1}


def test_second_run_does_nothing_and_other_settings_are_refused(raw, data_bin, capsys):
    before = (data_bin / "train.bin").stat().st_mtime_ns
    prepare_caption_lm.main([str(raw), "--dest", str(data_bin)])
    assert "already prepared" in capsys.readouterr().out
    assert (data_bin / "train.bin").stat().st_mtime_ns == before
    with pytest.raises(SystemExit, match="not prepared with these settings"):
        prepare_caption_lm.main([str(raw), "--dest", str(data_bin), "--min-count", "2"])


def test_a_caption_with_no_token_after_tokenization_is_a_one_line_error(raw, tmp_path):
    damaged = shutil.copytree(raw, tmp_path / "raw")
    captions = damaged / "Flickr8k.token.txt.gz"
    lines = gzip.open(captions, "rt", encoding="utf-8").read().splitlines()
    # Moses deletes control characters: the caption would be an EOS-only sentence
    lines[4] = lines[4].split("\t")[0] + "\t\x01\x02"
    with gzip.open(captions, "wt", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in lines)
    with pytest.raises(SystemExit) as exit_:
        prepare_caption_lm.main([str(damaged), "--dest", str(tmp_path / "out")])
    assert str(exit_.value) == f"error: {captions}:5: no token left after tokenization: '\\x01\\x02'"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


@pytest.mark.skipif(not (SHARED_DATA / "flickr8k").is_dir(), reason=f"{SHARED_DATA / 'flickr8k'} is absent")
def test_real_flickr8k_splits_and_lengths():
    raw_folder = SHARED_DATA / "flickr8k"
    captions = flickr8k.read_captions(flickr8k.find_captions_file(raw_folder))
    splits = flickr8k.read_splits(raw_folder, captions)
    assert {split: len(images) for split, images in splits.items()} == {"train": 6000, "valid": 1000, "test": 1000}
    assert not set(splits["train"]) & (set(splits["valid"]) | set(splits["test"]))
    test = [caption.split() for name in splits["test"] for caption in captions[name]]
    kept, dropped = caption_lm.drop_long({"test": test}, caption_lm.MAX_TOKENS)
    assert (len(test), dropped["test"], max(map(len, kept["test"]))) == (5000, 2, 32)


# sampling and scoring on a tiny LSTM language model


def tiny_lm(seed=0):
    """A LoadedLM over 4 words with random (not tiny) weights, samples of at
    most 6 tokens."""
    dictionary = Dictionary()
    for word in "abcd":
        dictionary.add_symbol(word)
    torch.manual_seed(seed)
    decoder = LSTMDecoder(dictionary, embed_dim=5, hidden_size=7, out_embed_dim=7, num_layers=1,
                          dropout_in=0.0, dropout_out=0.0, attention=False, encoder_output_units=0)
    model = LSTMLanguageModel(decoder).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_()
    return LoadedLM(model, dictionary, num_updates=0, training_seconds=0.0, tokens_per_sample=6)


def allowed_symbols(dictionary):
    """Everything but pad and BOS, which sampling never draws."""
    return [i for i in range(len(dictionary)) if i not in (dictionary.pad(), dictionary.bos())]


def test_samples_are_reproducible_by_seed():
    lm = tiny_lm()
    first, _ = sample_sentences(lm, 200, temperature=0.9, seed=5, batch_size=64)
    assert sample_sentences(lm, 200, temperature=0.9, seed=5, batch_size=64)[0] == first
    assert sample_sentences(lm, 200, temperature=0.9, seed=6, batch_size=64)[0] != first


def test_temperature_one_is_the_default_bit_for_bit():
    lm = tiny_lm()
    limits = torch.full((300,), 6)
    dictionary = lm.dictionary
    plain = ancestral_sample(lm.generator, limits, dictionary.eos(), dictionary.pad(),
                             generator=torch.Generator().manual_seed(1))
    at_one = ancestral_sample(lm.generator, limits, dictionary.eos(), dictionary.pad(),
                              generator=torch.Generator().manual_seed(1), temperature=1.0)
    assert all(torch.equal(a, b) for a, b in zip(plain, at_one))


@torch.no_grad()
def greedy_sentences(lm, max_tokens):
    """Greedy decoding by full forwards of the growing prefix, argmax over
    the allowed symbols, cut at the first EOS or the length limit."""
    dictionary = lm.dictionary
    allowed = torch.tensor(allowed_symbols(dictionary))
    prefix, words = [dictionary.eos()], []
    for _ in range(max_tokens - 1):
        logits = lm.generator(torch.tensor([prefix]))[0][0, -1]
        token = int(allowed[logits[allowed].argmax()])
        if token == dictionary.eos():
            break
        words.append(dictionary[token])
        prefix.append(token)
    return " ".join(words)


def test_temperature_towards_zero_is_greedy():
    for seed in range(5):
        lm = tiny_lm(seed)
        samples, _ = sample_sentences(lm, 20, temperature=1e-4, seed=seed)
        assert set(samples) == {greedy_sentences(lm, lm.tokens_per_sample)}


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_first_token_is_drawn_from_softmax_of_logits_over_temperature(temperature):
    lm = tiny_lm()
    dictionary = lm.dictionary
    allowed = allowed_symbols(dictionary)
    with torch.no_grad():
        logits = lm.generator(torch.tensor([[dictionary.eos()]]))[0][0, -1, allowed].double()
    n = 20000
    limits = torch.full((n,), 2)
    tokens, _ = ancestral_sample(lm.generator, limits, dictionary.eos(), dictionary.pad(),
                                 banned=(dictionary.pad(), dictionary.bos()),
                                 generator=torch.Generator().manual_seed(0), temperature=temperature)
    counts = torch.bincount(tokens[:, 0], minlength=len(dictionary))[allowed].double()

    def chi_square(probabilities):
        expected = n * probabilities
        return ((counts - expected) ** 2 / expected).sum().item()

    expected_probabilities = torch.softmax(logits / temperature, dim=0)
    assert (n * expected_probabilities).min() > 5  # the chi-square approximation holds
    assert chi_square(expected_probabilities) < 20.5  # the 0.999 quantile, 5 degrees of freedom
    assert chi_square(torch.softmax(logits, dim=0)) > 100  # T changed the distribution


def write_binarized(prefix, lines, dictionary):
    builder = indexed_dataset.make_builder(f"{prefix}.bin", "mmap", vocab_size=len(dictionary))
    for line in lines:
        builder.add_item(line)
    builder.finalize(f"{prefix}.idx")


@torch.no_grad()
def stepwise_nll(lm, lines):
    """One sentence and one token at a time through the incremental state."""
    total, count = 0.0, 0
    for line in lines:
        state, previous = {}, torch.tensor([[lm.dictionary.eos()]])
        for token in line:
            logits = lm.generator.decoder(previous, incremental_state=state)[0][0, -1]
            total -= torch.log_softmax(logits.double(), dim=0)[token].item()
            count += 1
            previous = torch.cat([previous, token.view(1, 1)], dim=1)
    return total / count, count


def test_split_nll_counts_eos_and_never_padding(tmp_path):
    lm = tiny_lm()
    dictionary = lm.dictionary
    generator = torch.Generator().manual_seed(0)
    lines = [torch.cat([torch.randint(dictionary.nspecial, len(dictionary), (length,), generator=generator),
                        torch.tensor([dictionary.eos()])]) for length in (0, 3, 1, 7, 2)]
    write_binarized(tmp_path / "test", lines, dictionary)
    nll, tokens = split_nll(lm, tmp_path, "test", batch_size=2)
    expected, count = stepwise_nll(lm, lines)
    assert tokens == count == 3 + 1 + 7 + 2 + 5
    assert math.isclose(nll, expected, rel_tol=1e-6)


# the command lines, on checkpoints of 2 updates


def train(data_bin, save_dir, criterion, *flags):
    run_cli("fairseq-train", data_bin, "--user-dir", USER_DIR, "--cpu",
            *recipe_args("caption_lm", criterion), *TINY_LSTM, *flags,
            "--max-update", "2", "--save-dir", save_dir / "checkpoints", "--disable-validation")
    return save_dir


@pytest.fixture(scope="module")
def runs(data_bin, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return [train(data_bin, root / "mle", "label_smoothed_cross_entropy"), train(data_bin, root / "cot", "cot", *TINY_MEDIATOR)]


def test_sample_lm_writes_reproducible_sentences_of_the_vocabulary(runs, data_bin, tmp_path):
    for run in runs:
        outputs = []
        for name in ("a.txt", "b.txt"):
            sample_lm.main([str(run / "checkpoints" / "checkpoint_last.pt"), str(data_bin), "--num", "25",
                            "--temperature", "1.3", "--seed", "2", "--out", str(tmp_path / name)])
            outputs.append(read(tmp_path / name))
        assert outputs[0] == outputs[1] and len(outputs[0]) == 25
        vocabulary = {line.split()[0] for line in read(data_bin / "dict.txt")} | {"<unk>"}
        assert {word for line in outputs[0] for word in line.split()} <= vocabulary


def test_sweep_writes_the_table_and_the_plot(runs, data_bin, tmp_path):
    out = tmp_path / "sweep.png"
    # an end-of-epoch line as fairseq's --log-format json writes it: 12 s of training
    (runs[0] / "train.log").write_text(json.dumps(
        {"epoch": 1, "train_loss": "7.1", "train_num_updates": "2", "train_train_wall": "12"}) + "\n")
    sweep_temperature.main([*map(str, runs), "--data", str(data_bin), "--out", str(out),
                            "--temperatures", "0.8", "1.0", "--num", "10"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    points = json.loads(out.with_suffix(".json").read_text())["points"]
    assert [(p["method"], p["temperature"]) for p in points] == [
        (REAL, None), ("mle", 0.8), ("mle", 1.0), ("cot", 0.8), ("cot", 1.0)]
    n_ref = len(read(data_bin / "test.txt"))
    for point in points:
        assert point["n_hyp"] == 10 and point["n_ref"] == n_ref
        assert point["tokenizer"] == caption_lm.TOKENIZER and "method1" in point["smoothing"]
        assert 0 <= point["bleu5"] <= 1 and 0 <= point["self_bleu5"] <= 1
    for point in points[1:]:
        assert point["updates"] == 2 and point["nll_test"] > 0 and point["nll_test_tokens"] > n_ref
        assert len(read(tmp_path / "sweep_samples" / f"{point['method']}_t{point['temperature']:g}.txt")) == 10
    # the Tables 2-3 form at T = 1: the real-data row, then each method's point at T = 1
    rows = [line.strip("| ").split(" | ") for line in read(out.with_suffix(".md"))[2:]]
    assert [row[:3] for row in rows] == [[REAL, "", ""], ["mle", "2", "12"], ["cot", "2", ""]]
    for row, point in zip(rows, [points[0], points[2], points[4]]):
        assert row[3] == (f"{point['nll_test']:.3f}" if "nll_test" in point else "")
        assert row[4:] == [f"{point[f'{kind}{n}']:.3f}" for kind in ("bleu", "self_bleu") for n in range(2, 6)]
    # the sweep's samples are sample_lm's at the same seed and temperature
    sample_lm.main([str(runs[1] / "checkpoints" / "checkpoint_last.pt"), str(data_bin), "--num", "10",
                    "--temperature", "1.0", "--seed", "1", "--out", str(tmp_path / "cot.txt")])
    assert read(tmp_path / "cot.txt") == read(tmp_path / "sweep_samples" / "cot_t1.txt")


def test_bad_input_is_one_line(runs, data_bin, tmp_path, capsys):
    checkpoint = str(runs[0] / "checkpoints" / "checkpoint_last.pt")
    out = str(tmp_path / "x.txt")
    assert one_line_error(capsys, sample_lm.main, [checkpoint, str(data_bin), "--temperature", "0", "--out", out]
                          ).endswith("error: --temperature must be > 0, got 0.0")
    assert one_line_error(capsys, sample_lm.main, [checkpoint, str(data_bin), "--temperature", "nan", "--out", out]
                          ).endswith("error: --temperature must be > 0, got nan")
    missing = str(tmp_path / "none.pt")
    assert one_line_error(capsys, sample_lm.main, [missing, str(data_bin), "--out", out]
                          ).endswith(f"error: {missing}: no such checkpoint file")
    png = str(tmp_path / "s.png")
    assert one_line_error(capsys, sweep_temperature.main, [str(runs[0]), "--data", str(data_bin), "--out", png,
                                                           "--temperatures", "1", "-0.5"]
                          ).endswith("error: --temperature must be > 0, got -0.5")
    assert one_line_error(capsys, sweep_temperature.main, [str(tmp_path), "--data", str(data_bin), "--out", png]
                          ).endswith(f"error: {tmp_path / 'checkpoints' / 'checkpoint_last.pt'}: no such checkpoint file")


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory):
    """(run folder, its data-bin): checkpoints/checkpoint_last.pt of one
    update of a tiny translation model on a tiny toy corpus."""
    root = tmp_path_factory.mktemp("translation")
    raw = write_toy_corpus(root / "raw", n_train=40, n_valid=8, n_test=8)
    data = root / "data-bin"
    run_cli("fairseq-preprocess", "--source-lang", "src", "--target-lang", "tgt", "--trainpref", raw / "train",
            "--validpref", raw / "valid", "--destdir", data, "--joined-dictionary", "--workers", "1")
    run = root / "translation"
    run_cli("fairseq-train", data, "--cpu", "--task", "translation", *TINY_TRANSFORMER,
            "--criterion", "label_smoothed_cross_entropy", "--optimizer", "adam", "--lr", "0.001",
            "--max-tokens", "1500", "--max-update", "1", "--save-dir", run / "checkpoints",
            "--no-epoch-checkpoints", "--no-save-optimizer-state", "--disable-validation")
    return run, data


def test_another_tasks_checkpoint_or_a_missing_data_folder_is_one_line(runs, data_bin, translation_run, tmp_path,
                                                                        capsys):
    run, translation_data = translation_run
    checkpoint = run / "checkpoints" / "checkpoint_last.pt"
    out, png = str(tmp_path / "x.txt"), tmp_path / "s.png"
    wrong_task = (f"error: {checkpoint}: a checkpoint of task translation, not of a language model "
                  "(language_modeling or mediator_language_modeling)")
    # on a language model's data and on the translation run's own
    for data in (data_bin, translation_data):
        assert one_line_error(capsys, sample_lm.main, [str(checkpoint), str(data), "--out", out]).endswith(wrong_task)
    # the sweeps load every model first: the MLE run's samples are never written
    assert one_line_error(capsys, sweep_temperature.main, [str(runs[0]), str(run), "--data", str(data_bin),
                                                           "--out", str(png), "--num", "5"]).endswith(wrong_task)
    assert one_line_error(capsys, sweep_oracle_temperature.main, [str(run), "--data", str(data_bin),
                                                                  "--out", str(png)]).endswith(wrong_task)
    lm_checkpoint = str(runs[0] / "checkpoints" / "checkpoint_last.pt")
    assert one_line_error(capsys, sample_lm.main, [lm_checkpoint, str(translation_data), "--out", out]).endswith(
        f"error: {translation_data}: no dict.txt, not the binarized data of a language model")
    missing = tmp_path / "nothing"
    assert one_line_error(capsys, sample_lm.main, [lm_checkpoint, str(missing), "--out", out]).endswith(
        f"error: {missing}: no such data folder")
    for sweep in (sweep_temperature, sweep_oracle_temperature):
        assert one_line_error(capsys, sweep.main, [str(runs[0]), "--data", str(missing), "--out", str(png)]
                              ).endswith(f"error: {missing}: no such data folder")
    assert sorted(path.name for path in tmp_path.iterdir()) == []
