"""Image features by image name: one ``.npz`` (``features`` [N, D] pooled
vectors or [N, R, D] grids of R region vectors, ``names`` [N]) or a folder of
``NAME.npy`` files ([D] or [R, D]) where NAME is the image file name without
its extension."""

from pathlib import Path

import numpy as np
import torch


class MissingFeaturesError(KeyError):
    """An image that the features do not cover."""

    def __str__(self):
        return self.args[0]


def _as_regions(array, where):
    """[R, D] float32 from a pooled [D] vector or an [R, D] grid."""
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{where}: features must be [D] or [R, D], got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{where}: features hold NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


class NpzImageFeatures:
    def __init__(self, path):
        self.path = Path(path)
        with np.load(self.path, allow_pickle=False) as arrays:
            missing = {"features", "names"} - set(arrays.files)
            if missing:
                raise ValueError(f"{path}: no array {', '.join(sorted(missing))} "
                                 f"(has {', '.join(arrays.files)})")
            self.features, names = arrays["features"], arrays["names"]
        if self.features.ndim not in (2, 3) or len(self.features) != len(names):
            raise ValueError(f"{path}: features {self.features.shape} do not give one "
                             f"[D] or [R, D] entry to each of the {len(names)} names")
        self.row = {str(name): i for i, name in enumerate(names)}
        if len(self.row) != len(names):
            raise ValueError(f"{path}: image names repeat")
        self.dim = self.features.shape[-1]

    def __contains__(self, name):
        return name in self.row

    def __getitem__(self, name):
        if name not in self.row:
            raise MissingFeaturesError(f"{self.path} has no features for image {name!r}")
        return _as_regions(self.features[self.row[name]], f"{self.path} ({name})")


class NpyFolderImageFeatures:
    """Loaded one image at a time, so that large grids stay on disk."""

    def __init__(self, path):
        self.path = Path(path)
        files = sorted(self.path.glob("*.npy"))
        if not files:
            raise ValueError(f"{path}: no .npy feature files")
        self.files = {file.stem: file for file in files}
        self.dim = np.load(files[0], mmap_mode="r").shape[-1]

    def _file(self, name):
        return self.files.get(Path(name).stem)

    def __contains__(self, name):
        return self._file(name) is not None

    def __getitem__(self, name):
        file = self._file(name)
        if file is None:
            raise MissingFeaturesError(f"{self.path} has no {Path(name).stem}.npy for image {name!r}")
        regions = _as_regions(np.load(file, allow_pickle=False), file)
        if regions.size(-1) != self.dim:
            raise ValueError(f"{file}: feature size {regions.size(-1)}, other files have {self.dim}")
        return regions


def load_image_features(path):
    path = Path(path)
    if path.is_dir():
        return NpyFolderImageFeatures(path)
    if path.suffix == ".npz" and path.is_file():
        return NpzImageFeatures(path)
    raise FileNotFoundError(f"image features {path}: neither an .npz file nor a folder of .npy files")
