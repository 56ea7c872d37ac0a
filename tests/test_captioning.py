import importlib.util
import shutil

import numpy as np
import pytest
import torch

from captioning_data import FEATURE_DIM, write_raw_flickr
from conftest import REPO, build

SHARED_FLICKR = REPO.parent / "shared" / "data" / "flickr8k"
TINY_CAPTIONER = [
    "--arch", "captioning_transformer", "--decoder-layers", "1", "--decoder-embed-dim", "32",
    "--decoder-ffn-embed-dim", "64", "--decoder-attention-heads", "2",
]


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


@pytest.mark.parametrize("damage,message", [
    (break_features, r"Flickr_8k.testImages.txt:11: image '1070_generated.jpg' has no features"),
    (break_bytes, r"Flickr8k.token.txt.gz:7: not UTF-8"),
    (insert_empty_line, r"Flickr_8k.devImages.txt:2: empty line"),
    (drop_tab, r"Flickr8k.token.txt.gz:4: expected IMAGE#N<TAB>caption"),
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
