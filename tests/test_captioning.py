import json
import os
import shutil

import numpy as np
import pytest
import torch

from captioning_data import FEATURE_DIM, write_raw_flickr
from conftest import REPO, SHARED_DATA, USER_DIR, build, load_script, run_cli

SHARED_FLICKR = SHARED_DATA / "flickr8k"
TINY_CAPTIONER = [
    "--arch", "captioning_transformer", "--decoder-layers", "1", "--decoder-embed-dim", "32",
    "--decoder-ffn-embed-dim", "64", "--decoder-attention-heads", "2",
]




prepare_flickr8k = load_script("prepare_flickr8k")


@pytest.fixture(scope="module")
def raw_flickr(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw_flickr")
    write_raw_flickr(raw)
    return raw


def prepare(raw, dest, *args):
    prepare_flickr8k.main([str(raw), "--dest", str(dest), "--bpe-merges", "60",
                           "--features", str(raw / "features.npz"), *args])
    return dest


@pytest.fixture(scope="module")
def data_bin(raw_flickr, tmp_path_factory):
    return prepare(raw_flickr, tmp_path_factory.mktemp("prepared") / "data-bin")


@pytest.fixture(scope="module")
def mle_captioner(data_bin, tmp_path_factory):
    """A tiny captioner after 3 MLE updates: its checkpoint_last.pt."""
    save_dir = tmp_path_factory.mktemp("mle_captioner")
    run_cli("fairseq-train", data_bin, "--user-dir", USER_DIR, "--task", "captioning", "--cpu", *TINY_CAPTIONER,
            "--criterion", "label_smoothed_cross_entropy", "--optimizer", "adam", "--lr", "0.003",
            "--batch-size", "16", "--max-update", "3", "--save-dir", save_dir, "--no-epoch-checkpoints")
    return save_dir / "checkpoint_last.pt"


def captioner(data_bin, *args, task="captioning"):
    return build(data_bin, *args, arch=TINY_CAPTIONER, task=task)


def read(path):
    return path.read_text(encoding="utf-8").splitlines()


def test_prepared_captions_align_with_images_and_bpe_is_learned_on_train_only(data_bin, raw_flickr):
    import gzip

    from subword_nmt.learn_bpe import learn_bpe

    raw = {}
    for line in gzip.open(raw_flickr / "Flickr8k.token.txt.gz", "rt").read().splitlines():
        key, caption = line.split("\t")
        raw.setdefault(key.split("#")[0], []).append(caption)
    for split, n_images in (("train", 48), ("valid", 12), ("test", 12)):
        images, references = read(data_bin / f"{split}.images.txt"), read(data_bin / f"{split}.references.txt")
        bpe = read(data_bin / "text" / f"{split}.bpe")
        assert len(images) == len(references) == len(bpe) == 5 * n_images
        # the generated captions are already space-tokenized: tokenizing only lower-cases
        assert references == [c.lower() for name in dict.fromkeys(images) for c in raw[name]]
        assert [b.replace("@@ ", "") for b in bpe] == references
    relearned = data_bin.parent / "relearned.codes"
    with open(data_bin / "train.references.txt") as train, open(relearned, "w") as codes:
        learn_bpe(train, codes, 60)
    assert relearned.read_text() == (data_bin / "bpe.codes").read_text()


def test_preparing_again_with_the_same_settings_changes_nothing(raw_flickr, data_bin, capsys):
    stamp = (data_bin / "train.bin").stat().st_mtime_ns
    prepare(raw_flickr, data_bin)
    assert "already prepared" in capsys.readouterr().out
    assert (data_bin / "train.bin").stat().st_mtime_ns == stamp
    with pytest.raises(SystemExit, match="not prepared with these settings"):
        prepare(raw_flickr, data_bin, "--bpe-merges", "61")


def test_prepared_folder_is_readable_as_the_umask_allows(data_bin):
    umask = os.umask(0)
    os.umask(umask)
    assert data_bin.stat().st_mode & 0o777 == 0o777 & ~umask


def break_features(raw):
    with np.load(raw / "features.npz") as arrays:
        np.savez(raw / "features.npz", features=arrays["features"][:-2], names=arrays["names"][:-2])


def break_bytes(raw):
    import gzip

    lines = gzip.open(raw / "Flickr8k.token.txt.gz", "rb").read().split(b"\n")
    lines[6] += b" \xff"
    gzip.open(raw / "Flickr8k.token.txt.gz", "wb").write(b"\n".join(lines))


def insert_empty_line(raw):
    path = raw / "Flickr_8k.devImages.txt"
    lines = read(path)
    path.write_text("\n".join([lines[0], "", *lines[1:]]) + "\n")


def drop_tab(raw):
    import gzip

    lines = gzip.open(raw / "Flickr8k.token.txt.gz", "rt").read().split("\n")
    lines[3] = lines[3].replace("\t", " ")
    gzip.open(raw / "Flickr8k.token.txt.gz", "wt").write("\n".join(lines))


def control_characters_caption(raw):
    import gzip

    lines = gzip.open(raw / "Flickr8k.token.txt.gz", "rt").read().split("\n")
    lines[3] = lines[3].split("\t")[0] + "\t\x01\x02"
    gzip.open(raw / "Flickr8k.token.txt.gz", "wt").write("\n".join(lines))


@pytest.mark.parametrize("damage,message", [
    (break_features, r"Flickr_8k.testImages.txt:11: image '1070_generated.jpg' has no features"),
    (break_bytes, r"Flickr8k.token.txt.gz:7: not UTF-8"),
    (insert_empty_line, r"Flickr_8k.devImages.txt:2: empty line"),
    (drop_tab, r"Flickr8k.token.txt.gz:4: expected IMAGE#N<TAB>caption"),
    # Moses deletes control characters: the caption would be an EOS-only target
    (control_characters_caption, r"Flickr8k.token.txt.gz:4: no token left after tokenization: '\\x01\\x02'$"),
])
def test_bad_raw_input_names_file_and_line_and_leaves_nothing(raw_flickr, tmp_path, damage, message):
    raw = tmp_path / "raw"
    shutil.copytree(raw_flickr, raw)
    damage(raw)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SystemExit, match=message) as error:
        prepare(raw, out / "data-bin")
    assert "\n" not in str(error.value)
    assert list(out.iterdir()) == []


def test_misaligned_or_unknown_image_names_are_clear_errors(data_bin, tmp_path):
    from fairseq_ot.data.image_features import MissingFeaturesError

    broken = tmp_path / "data-bin"
    shutil.copytree(data_bin, broken)
    task, _, _ = captioner(broken, "--criterion", "cross_entropy")
    images = broken / "valid.images.txt"
    names = read(images)
    images.write_text("\n".join(names[:-1]) + "\n")
    with pytest.raises(ValueError, match=r"valid.images.txt: 59 image names for 60 captions.*misaligned"):
        task.load_dataset("valid")
    names[4] = "nowhere.jpg"
    images.write_text("\n".join(names) + "\n")
    with pytest.raises(MissingFeaturesError, match=r"valid.images.txt:5: image 'nowhere.jpg' has no features"):
        task.load_dataset("valid")


def test_train_has_one_item_per_caption_generation_one_per_image(data_bin):
    task, _, _ = captioner(data_bin, "--criterion", "cross_entropy")
    task.load_dataset("train")
    task.load_dataset("valid")
    train, valid = task.dataset("train"), task.dataset("valid")
    assert len(train) == 5 * 48 and len(valid) == 12
    names = read(data_bin / "valid.images.txt")
    assert valid.image_names == list(dict.fromkeys(names))
    references = read(data_bin / "valid.references.txt")
    for index in (0, 7):
        item = valid[index]
        first = names.index(valid.image_names[index])
        bpe = read(data_bin / "text" / "valid.bpe")[first]
        assert task.target_dictionary.string(item["target"]).replace("@@ ", "") == references[first]
        assert task.target_dictionary.string(item["target"]) == bpe
    per_caption, _, _ = captioner(data_bin, "--criterion", "cross_entropy", "--caption-eval-items", "captions")
    per_caption.load_dataset("valid")
    assert len(per_caption.dataset("valid")) == 60


@pytest.fixture(scope="module")
def grid_features(raw_flickr, tmp_path_factory):
    """A folder of NAME.npy grids of 1 to 4 regions per image: the pooled
    vector and random regions."""
    folder = tmp_path_factory.mktemp("grids")
    rng = np.random.default_rng(1)
    with np.load(raw_flickr / "features.npz") as arrays:
        for i, (name, pooled) in enumerate(zip(arrays["names"], arrays["features"])):
            extra = rng.normal(0, 1, (i % 4, FEATURE_DIM))
            np.save(folder / f"{name[:-len('.jpg')]}.npy", np.vstack([pooled, extra]).astype(np.float32))
    return folder


@pytest.fixture(scope="module")
def grid_captioner(data_bin, grid_features):
    task, model, _ = captioner(data_bin, "--criterion", "cross_entropy", "--caption-features",
                               str(grid_features), "--caption-region-positions", "4")
    task.load_dataset("valid")
    return task, model.eval()


def test_padded_regions_change_nothing(grid_captioner):
    task, model = grid_captioner
    dataset = task.dataset("valid")
    items = [dataset[i] for i in range(6)]
    assert len({len(item["source"]) for item in items}) > 1
    batch = dataset.collater(items)
    with torch.no_grad():
        together = model(**batch["net_input"])[0]
        for row, item in enumerate(items):
            alone = model(**dataset.collater([item])["net_input"])[0][0]
            assert torch.allclose(together[row, : len(alone)], alone, atol=1e-5)


def test_beam_search_on_a_batch_equals_each_image_alone(grid_captioner):
    from fairseq.sequence_generator import SequenceGenerator

    task, model = grid_captioner
    dataset = task.dataset("valid")
    generator = SequenceGenerator([model], task.target_dictionary, beam_size=3, max_len_b=12)
    items = [dataset[i] for i in range(5)]
    together = generator.generate([model], dataset.collater(items))
    for row, item in enumerate(items):
        alone = generator.generate([model], dataset.collater([item]))[0]
        assert [h["tokens"].tolist() for h in together[row]] == [h["tokens"].tolist() for h in alone]
        assert torch.allclose(together[row][0]["score"], alone[0]["score"], atol=1e-5)


def test_regions_beyond_the_position_embeddings_are_refused(data_bin, grid_features):
    task, model, _ = captioner(data_bin, "--criterion", "cross_entropy", "--caption-features",
                               str(grid_features), "--caption-region-positions", "2")
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    with pytest.raises(ValueError, match="--caption-region-positions 2"):
        model(**dataset.collater([dataset[i] for i in range(4)])["net_input"])


def caption_nll(model, sample):
    """Per-token NLL of the targets: the measure all criterions should lower."""
    with torch.no_grad():
        lprobs = model.get_normalized_probs(model(**sample["net_input"]), log_probs=True)
    target = sample["target"]
    real = target.ne(model.decoder.padding_idx)
    return float(-lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)[real].mean())


class PlainOptimizer:
    """The part of fairseq's optimizer interface that task.train_step uses."""

    def __init__(self, parameters):
        self.adam = torch.optim.Adam(parameters, lr=3e-3)

    def backward(self, loss):
        loss.backward()


def valid_nll_before_and_after_one_epoch(task, model, criterion):
    """Caption NLL of the valid split (first caption of each image) before
    and after an epoch of train_step updates with Adam."""
    task.load_dataset("train")
    task.load_dataset("valid")
    valid = task.dataset("valid")
    valid_batch = valid.collater([valid[i] for i in range(len(valid))])
    model.eval()
    before = caption_nll(model, valid_batch)
    optimizer = PlainOptimizer(model.parameters())
    batches = task.get_batch_iterator(task.dataset("train"), max_sentences=16, seed=1)
    for update, sample in enumerate(batches.next_epoch_itr(shuffle=True)):
        loss, _, _ = task.train_step(sample, model, criterion, optimizer, update)
        assert torch.isfinite(loss)
        optimizer.adam.step()
        optimizer.adam.zero_grad()
    model.eval()
    return before, caption_nll(model, valid_batch)


@pytest.mark.parametrize("task,args", [
    ("captioning", ["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"]),
    ("captioning", ["--criterion", "ot_seq", "--label-smoothing", "0.1", "--ot-iters", "10"]),
    ("captioning", ["--criterion", "scheduled_sampling", "--ss-mode", "two_pass",
                    "--ss-schedule", "constant", "--ss-k", "0.5"]),
    ("captioning", ["--criterion", "scheduled_sampling", "--ss-mode", "stepwise",
                    "--ss-schedule", "constant", "--ss-k", "0.5"]),
    ("captioning", ["--criterion", "gjs", "--gjs-mode", "token", "--gjs-pi", "0.5"]),
    ("mediator_captioning", ["--criterion", "cot", "--cot-max-len-a", "0", "--cot-max-len-b", "12"]),
    ("mediator_captioning", ["--criterion", "gjs", "--gjs-mode", "mediator", "--gjs-pi", "0.5",
                             "--cot-max-len-a", "0", "--cot-max-len-b", "12"]),
])
def test_every_encoder_decoder_criterion_trains_the_captioner(data_bin, task, args):
    before, after = valid_nll_before_and_after_one_epoch(*captioner(data_bin, *args, task=task))
    assert after < 0.8 * before


def test_ot_copy_term_without_source_tokens_is_a_one_line_error(data_bin):
    with pytest.raises(ValueError, match="--ot-copy-weight needs source tokens") as error:
        captioner(data_bin, "--criterion", "ot_seq", "--ot-copy-weight", "0.1")
    assert "\n" not in str(error.value)


def test_run_script_prepares_trains_generates_and_scores_every_test_image(raw_flickr, tmp_path, monkeypatch):
    from conftest import run_cli
    from fairseq_ot.evaluation.scores import read_scores

    for key, value in (("RAW", str(raw_flickr)), ("BEAM", "2"), ("SCORE_FLAGS", "--no-meteor"),
                       ("PREPARE_FLAGS", f"--features {raw_flickr / 'features.npz'} --bpe-merges 60")):
        monkeypatch.setenv(key, value)
    run_dir = tmp_path / "run"
    run_cli(REPO / "fairseq_ot" / "recipes" / "captioning" / "run.sh", run_dir, "label_smoothed_cross_entropy",
            *TINY_CAPTIONER[2:], "--decoder-embed-dim", "64", "--dropout", "0.1", "--max-update", "150",
            "--max-tokens", "500", "--warmup-updates", "10", "--lr", "0.005")
    record = read_scores(run_dir / "scores_test.json")
    assert record["hypotheses"] == 12 and record["criterion"] == "label_smoothed_cross_entropy"
    # four kinds of generated image, each with its own five captions: learnable
    assert record["metrics"]["bleu1"] > 50
    assert (run_dir / "train.log").is_file()


def test_run_script_refuses_an_unknown_device_before_any_work(tmp_path, monkeypatch):
    from conftest import run_cli

    monkeypatch.setenv("DEVICE", "tpu")
    code, output = run_cli(REPO / "fairseq_ot" / "recipes" / "captioning" / "run.sh", tmp_path / "run", check=False)
    assert code == 2 and "DEVICE must be cpu or cuda, not tpu" in output
    assert not (tmp_path / "run").exists()


def test_run_script_refuses_a_skip_train_other_than_0_or_1(tmp_path, monkeypatch):
    monkeypatch.setenv("SKIP_TRAIN", "yes")
    code, output = run_cli(REPO / "fairseq_ot" / "recipes" / "captioning" / "run.sh", tmp_path / "run", check=False)
    assert code == 2 and "SKIP_TRAIN must be 0 or 1, not yes" in output
    assert not (tmp_path / "run").exists()


def test_run_script_with_skip_train_scores_the_checkpoint_it_finds(raw_flickr, data_bin, mle_captioner, tmp_path,
                                                                   monkeypatch):
    from fairseq_ot.evaluation.scores import read_scores

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(mle_captioner, run_dir / "checkpoints" / "checkpoint_best.pt")
    before = mle_captioner.read_bytes()
    for key, value in (("RAW", str(raw_flickr)), ("DATA", str(data_bin)), ("SKIP_TRAIN", "1"),
                       ("BEAM", "2"), ("SCORE_FLAGS", "--no-meteor"),
                       ("PREPARE_FLAGS", f"--features {raw_flickr / 'features.npz'} --bpe-merges 60")):
        monkeypatch.setenv(key, value)
    run_cli(REPO / "fairseq_ot" / "recipes" / "captioning" / "run.sh", run_dir, "label_smoothed_cross_entropy")
    assert read_scores(run_dir / "scores_test.json")["hypotheses"] == 12
    assert not (run_dir / "train.log").exists()
    assert (run_dir / "checkpoints" / "checkpoint_best.pt").read_bytes() == before


def test_real_flickr8k_lines_through_the_pipeline(tmp_path):
    import gzip

    if not SHARED_FLICKR.is_dir():
        pytest.skip(f"{SHARED_FLICKR} is absent (real data lives outside the repository)")
    data = tmp_path / "data-bin"
    prepare_flickr8k.main([str(SHARED_FLICKR), "--dest", str(data), "--bpe-merges", "300",
                           "--max-images-per-split", "20"])
    raw = {}
    for line in gzip.open(SHARED_FLICKR / "Flickr8k.token.txt.gz", "rt", encoding="utf-8"):
        key, caption = line.rstrip("\n").split("\t")
        raw.setdefault(key.split("#")[0], []).append(caption)
    first_train = read(SHARED_FLICKR / "Flickr_8k.trainImages.txt")[:20]
    names, references = read(data / "train.images.txt"), read(data / "train.references.txt")
    assert len(names) == len(references) == 100 and list(dict.fromkeys(names)) == first_train
    expected = [c for name in first_train for c in raw[name]]
    # tokenizing moves spaces only; captions are lower-cased
    assert ["".join(r.split()) for r in references] == ["".join(c.lower().split()) for c in expected]
    assert read(data / "features.txt") == [str((SHARED_FLICKR / "flickr8k_effnetlite0_pool1280_fp16.npz").resolve())]

    task, model, criterion = captioner(data, "--criterion", "label_smoothed_cross_entropy")
    before, after = valid_nll_before_and_after_one_epoch(task, model, criterion)
    with np.load(SHARED_FLICKR / "flickr8k_effnetlite0_pool1280_fp16.npz") as arrays:
        row = list(arrays["names"]).index(task.dataset("valid").image_names[3])
        expected_features = torch.from_numpy(arrays["features"][row].astype(np.float32))
    assert torch.equal(task.dataset("valid")[3]["source"], expected_features[None])
    assert after < before


def test_extracted_captioning_generator_captions_as_the_mediator_checkpoint(data_bin, tmp_path):
    """extract_generator on a mediator_captioning checkpoint writes a plain
    captioning checkpoint whose captions equal the mediator checkpoint's."""
    save_dir = tmp_path / "checkpoints"
    run_cli("fairseq-train", data_bin, "--user-dir", USER_DIR, "--task", "mediator_captioning", "--cpu",
            *TINY_CAPTIONER, "--criterion", "cot", "--cot-max-len-a", "0", "--cot-max-len-b", "12",
            "--ddp-backend", "legacy_ddp", "--optimizer", "adam", "--lr", "0.003", "--batch-size", "16",
            "--max-update", "3", "--save-dir", save_dir, "--no-epoch-checkpoints", "--seed", "1")
    generator = tmp_path / "generator.pt"
    _, printed = run_cli("python", REPO / "scripts" / "extract_generator.py", save_dir / "checkpoint_last.pt",
                         generator)
    assert "(task captioning)" in printed
    common = ["--cpu", "--gen-subset", "test", "--beam", "2", "--batch-size", "8",
              "--required-batch-size-multiple", "1"]
    _, with_mediator = run_cli("fairseq-generate", data_bin, "--user-dir", USER_DIR, "--task",
                               "mediator_captioning", "--path", save_dir / "checkpoint_last.pt", *common)
    _, alone = run_cli("fairseq-generate", data_bin, "--user-dir", USER_DIR, "--task", "captioning",
                       "--path", generator, *common)
    captions = [sorted(line for line in output.splitlines() if line.startswith("H-"))
                for output in (with_mediator, alone)]
    assert len(captions[1]) == len(set(read(data_bin / "test.images.txt"))) > 0
    assert captions[0] == captions[1]


def test_cot_from_mle_config_trains_the_generator_at_its_own_learning_rate(data_bin, mle_captioner, tmp_path):
    """fairseq_ot/recipes/cot_composite_lr/captioning_from_mle.yaml: the
    mediator starts as a copy of the MLE captioner; each network follows
    inverse_sqrt's warm-up to its own rate; during the mediator's warm-up the
    generator's gradient is exactly zero, so Adam leaves it bit-identical;
    after it, its first two steps move it by about its own rate per weight."""
    from fairseq_ot.evaluation.parameter_drift import parameter_drift

    generator_lr, mediator_lr, warmup = 4e-6, 4e-4, 20
    tiny_model = [f"+model.{flag[2:].replace('-', '_')}={value}"
                  for flag, value in zip(TINY_CAPTIONER[2::2], TINY_CAPTIONER[3::2])]
    _, output = run_cli(
        "fairseq-ot-hydra-train", "--config-dir", REPO / "fairseq_ot" / "recipes" / "cot_composite_lr",
        "--config-name", "captioning_from_mle", f"common.user_dir={USER_DIR}", f"task.data={data_bin}",
        f"checkpoint.finetune_from_model={mle_captioner}", f"checkpoint.save_dir={tmp_path / 'cot'}",
        f"optimizer.groups.generator.lr_float={generator_lr}", f"hydra.run.dir={tmp_path / 'hydra'}",
        *tiny_model,
        "criterion.cot_mediator_warmup_updates=2", "criterion.cot_max_len_b=12", "dataset.max_tokens=600",
        "optimization.max_update=4", "common.log_interval=1", "checkpoint.save_interval_updates=2",
        "dataset.validate_interval_updates=2",
    )
    logged = [json.loads(line.split(" - ", 1)[1]) for line in output.splitlines() if "[train_inner]" in line]
    assert [int(row["num_updates"]) for row in logged] == [1, 2, 3, 4], output[-3000:]
    for row in logged:
        fraction = int(row["num_updates"]) / warmup
        assert float(row["lr_generator"]) == pytest.approx(generator_lr * fraction, rel=1e-6)
        assert float(row["lr_mediator"]) == pytest.approx(mediator_lr * fraction, rel=1e-6)
    (after_warmup,), (after,) = (list((tmp_path / "cot").glob(f"checkpoint_*_{u}.pt")) for u in (2, 4))
    _, warmed, moved = parameter_drift([mle_captioner, after_warmup, after])
    assert warmed["total"] == 0  # bit-identical: no difference squares to 0 in float64
    steps = generator_lr * (3 + 4) / warmup  # the learning rates of updates 3 and 4
    assert 0.1 * steps < moved["step_rms"] < 1.5 * steps
