"""What an output folder's scores were computed with: ``sweep.json``.

The manifest records, for the folder as a whole, the space and the settings its networks
are built with; per proxy, its settings and direction; per dataset, a digest of the images
its fixed batches were drawn from. A score's fingerprint is a digest of everything it
depends on: those entries, its dataset and its seed. Every shard file carries the
fingerprint of each proxy it holds, so a file computed with other settings (another
sweep's file copied in) is recognised and set aside, never mixed in.

A later run may add proxies, datasets, seeds and cells (new entries), but may not change
an entry that stored scores depend on: that is refused, naming the setting.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from orchestrator.errors import SweepError
from orchestrator.files import atomic_write
from orchestrator.plan import Job

FORMAT = 2
FILE = "sweep.json"


def image_digest(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of a dataset's images and labels as read (shape, dtype and bytes)."""
    digest = hashlib.sha256()
    for array in (images, labels):
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


@dataclass
class Manifest:
    """The contents of ``sweep.json``."""

    space: str
    space_settings: dict[str, Any]
    proxies: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> params, direction, images
    images: dict[str, dict[str, str]] = field(default_factory=dict)  # dataset -> file name, sha256

    def fingerprint(self, proxy: str, job: Job) -> str | None:
        """The fingerprint of ``proxy``'s scores in ``job``; None if this folder has no
        entry to compute it from (its proxy or, for a proxy that reads images, its images)."""
        entry = self.proxies.get(proxy)
        if entry is None or job.space != self.space:
            return None
        images = None
        if entry["uses_images"]:
            if job.dataset not in self.images:
                return None
            images = self.images[job.dataset]["sha256"]
        key = [FORMAT, self.space, self.space_settings, proxy, entry["params"], job.dataset, job.seed, images]
        return hashlib.sha256(_canonical(key).encode()).hexdigest()[:16]

    def higher_is_better(self, proxy: str) -> bool:
        return bool(self.proxies.get(proxy, {}).get("higher_is_better", True))

    # -- file --------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "space": self.space, "space_settings": self.space_settings,
                           "proxies": self.proxies, "images": self.images}, indent=2, sort_keys=True, default=str)

    def write(self, out_dir: Path) -> None:
        atomic_write(Path(out_dir) / FILE, self.to_json() + "\n")

    @staticmethod
    def read(out_dir: Path) -> "Manifest | None":
        """The folder's manifest; None if it has none; SweepError if it is unreadable or of
        another format."""
        path = Path(out_dir) / FILE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT:
                raise SweepError(f"{path} was written by another version of proxysweep (format "
                                 f"{data.get('format')}, this one reads {FORMAT}): use another out_dir")
            return Manifest(data["space"], data["space_settings"], data["proxies"], data["images"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SweepError(f"{path} is damaged ({type(exc).__name__}: {exc}); the scores under "
                             f"{Path(out_dir) / 'scores'} cannot be checked without it: use another out_dir") from None


def _differences(stored: Any, wanted: Any, where: str) -> list[str]:
    """Human lines naming each setting that differs, ``where.key: stored X, now Y``."""
    if isinstance(stored, Mapping) and isinstance(wanted, Mapping):
        out = []
        for key in sorted(set(stored) | set(wanted), key=str):
            out += _differences(stored.get(key, "(unset)"), wanted.get(key, "(unset)"), f"{where}.{key}")
        return out
    return [] if _canonical(stored) == _canonical(wanted) else [f"{where}: stored {stored!r}, now {wanted!r}"]


def merge(
    stored: Manifest | None,
    wanted: Manifest,
    holds: "StoredContent",
    image_names: Mapping[str, str],
) -> Manifest:
    """The manifest for a run that wants ``wanted``'s entries in a folder that has
    ``stored`` and holds scores as ``holds`` says. An entry that differs from the stored
    one is replaced only if no stored score depends on it; otherwise SweepError naming it."""
    if stored is None:
        return wanted
    problems: list[str] = []
    if holds.any:
        if stored.space != wanted.space:
            raise SweepError(f"this folder holds scores of space {stored.space}, not {wanted.space}: use another out_dir")
        problems += _differences(stored.space_settings, wanted.space_settings, f"space.{wanted.space}")
    merged = Manifest(wanted.space, wanted.space_settings, dict(stored.proxies), dict(stored.images))
    for name, entry in wanted.proxies.items():
        old = stored.proxies.get(name)
        if old is not None and name in holds.proxies:
            problems += _differences(old["params"], entry["params"], f"proxy.{name}")
        merged.proxies[name] = entry if old is None or name not in holds.proxies else old
    for dataset, entry in wanted.images.items():
        old = stored.images.get(dataset)
        if old is not None and old["sha256"] != entry["sha256"] and dataset in holds.image_datasets:
            problems.append(f"data.images.{dataset}: the images of {image_names.get(dataset, entry['name'])} "
                            f"are not those ({old['name']}) the stored {dataset} scores were drawn from")
        if old is None or dataset not in holds.image_datasets:
            merged.images[dataset] = entry
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise SweepError(f"the stored scores were computed with other settings ({shown}): scoring into this "
                         "folder would mix them; choose another out_dir, or go back to those settings")
    return merged


@dataclass(frozen=True)
class StoredContent:
    """What the valid shard files of a folder hold, for deciding which manifest entries
    stored scores depend on."""

    proxies: frozenset[str] = frozenset()
    image_datasets: frozenset[str] = frozenset()  # datasets with stored scores of image-reading proxies

    @property
    def any(self) -> bool:
        return bool(self.proxies)

    @staticmethod
    def of(shards: Iterable[Any], manifest: Manifest | None) -> "StoredContent":
        proxies: set[str] = set()
        datasets: set[str] = set()
        for shard in shards:
            proxies.update(shard.proxies)
            if manifest is not None and any(manifest.proxies[p]["uses_images"] for p in shard.proxies):
                datasets.add(shard.job.dataset)
        return StoredContent(frozenset(proxies), frozenset(datasets))
