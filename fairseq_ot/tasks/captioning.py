"""Image captioning: image features (pooled vectors or grids of region
vectors) to captions, on data prepared by scripts/prepare_flickr8k.py."""

from dataclasses import dataclass, field
from pathlib import Path

from fairseq.data import Dictionary, data_utils
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.tasks import FairseqTask, register_task

from fairseq_ot.errors import FlagError, require
from fairseq_ot.data.caption_dataset import FEATURES_FILE, CaptionDataset, read_image_names
from fairseq_ot.data.image_features import load_image_features
from fairseq_ot.tasks.mediator import MediatorConfig, MediatorTaskMixin


@dataclass
class CaptioningConfig(FairseqDataclass):
    data: str = field(default="", metadata={"help": "folder made by scripts/prepare_flickr8k.py"})
    caption_features: str = field(
        default="",
        metadata={"help": "image features, an .npz (features, names) or a folder of NAME.npy "
                  f"(default: the path in DATA/{FEATURES_FILE})"},
    )
    caption_eval_items: ChoiceEnum(["images", "captions"]) = field(
        default="images",
        metadata={"help": "items of the splits other than train: one per image (target: its "
                  "first caption; generation gives one caption per image) or one per caption"},
    )
    caption_max_tokens: int = field(
        default=128, metadata={"help": "captions longer than this (in BPE tokens) are skipped"}
    )


@register_task("captioning", dataclass=CaptioningConfig)
class CaptioningTask(FairseqTask):
    def __init__(self, cfg, dictionary, features):
        super().__init__(cfg)
        self.dictionary = dictionary
        self.features = features

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        require(cfg.caption_max_tokens >= 1, "--caption-max-tokens", ">= 1", cfg.caption_max_tokens)
        data = Path(cfg.data)
        dictionary = Dictionary.load(str(data / "dict.txt"))
        features_path = cfg.caption_features
        if not features_path:
            recorded = data / FEATURES_FILE
            if not recorded.is_file():
                raise FlagError(f"--caption-features is needed: {recorded} is missing")
            features_path = recorded.read_text(encoding="utf-8").strip()
        if not Path(features_path).exists():
            raise FlagError(f"--caption-features {features_path}: no such file or folder")
        return cls(cfg, dictionary, load_image_features(features_path))

    @property
    def feature_dim(self):
        return self.features.dim

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        prefix = str(Path(self.cfg.data) / split)
        captions = data_utils.load_indexed_dataset(prefix, self.dictionary)
        if captions is None:
            raise FileNotFoundError(f"no binarized captions {prefix}.bin in {self.cfg.data}")
        names = read_image_names(self.cfg.data, split, len(captions), self.features)
        per_image = split != "train" and self.cfg.caption_eval_items == "images"
        self.datasets[split] = CaptionDataset(captions, names, self.features, self.dictionary,
                                              per_image=per_image)

    def max_positions(self):
        return self.cfg.caption_max_tokens

    @property
    def source_dictionary(self):
        return None  # the source is image features

    @property
    def target_dictionary(self):
        return self.dictionary


@dataclass
class MediatorCaptioningConfig(CaptioningConfig, MediatorConfig):
    pass


@register_task("mediator_captioning", dataclass=MediatorCaptioningConfig)
class MediatorCaptioningTask(MediatorTaskMixin, CaptioningTask):
    """Captioning with a mediator M(caption | image), another captioning model."""
