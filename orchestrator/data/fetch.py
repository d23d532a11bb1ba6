"""``fetch {cifar10,cifar100}``: download, verify and unpack the official CIFAR python archives.

Reference: the CIFAR page (https://www.cs.toronto.edu/~kriz/cifar.html) for the URLs, the
archive sizes and MD5s, and the folder each archive holds; ``benchdata/images.py`` for the
files the project reads from those folders.

Steps and choices:
1. A folder already under the root with every file the project reads means nothing to do.
   A folder of that name with files missing is left alone and reported: it is the user's.
2. The archive is downloaded into ``<root>/<archive>.part`` (``download.py``: resumable with
   HTTP range requests, progress on stdout). Only a verified archive gets the final name,
   through ``orchestrator.files.atomic_path``; an archive already there (a verified download
   whose unpacking was interrupted, or one the user copied in) is verified and used.
3. The SHA-256 is checked before anything is unpacked. The official page gives only MD5s;
   the SHA-256 values are the ones two independent projects pin for these exact URLs
   (see ``DATASETS``). A mismatch deletes the download and names both digests.
4. Unpacking is safe and atomic: every member must be a plain file or folder inside the
   expected top folder (no absolute paths, no ``..``, no links, no devices), extraction uses
   tarfile's ``filter="data"`` as a second guard, into a hidden temporary folder beside the
   target (``orchestrator.files.temporary_name``), and the finished folder is renamed into
   place in one step. The archive is deleted afterwards unless ``--keep-archive``; an
   archive this run downloaded whose content is wrong (its checksum was the user's
   ``--sha256``) is deleted too, while one that failed for a disk error is kept for a rerun.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from orchestrator.data import DataError, one_line
from orchestrator.data.download import download
from orchestrator.files import atomic_path, fsync_dir, temporary_name


@dataclass(frozen=True)
class Archive:
    """One official archive and the folder it unpacks to."""

    url: str
    sha256: str
    size: int
    folder: str
    files: tuple[str, ...]  # what the project reads from the folder (benchdata/images.py)

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


# SHA-256 of the official archives (sizes and MD5s c58f30108f718f92721af3b95e74349a and
# eb9058c3a382ffc7106e4002c42a8d85 from the CIFAR page). Both digests are pinned by
# keras-team/keras (keras/src/datasets/cifar10.py and cifar100.py, ``file_hash`` of
# get_file for these URLs) and by pytorch/vision
# (torchvision/prototype/datasets/_builtin/cifar.py, ``HttpResource(..., sha256=...)``).
DATASETS: dict[str, Archive] = {
    "cifar10": Archive(
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
        size=170_498_071,
        folder="cifar-10-batches-py",
        files=("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
               "test_batch", "batches.meta"),
    ),
    "cifar100": Archive(
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        sha256="85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
        size=169_001_437,
        folder="cifar-100-python",
        files=("train", "test", "meta"),
    ),
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def missing_files(folder: Path, archive: Archive) -> list[str]:
    return [f for f in archive.files if not (folder / f).is_file()]


class BadArchive(DataError):
    """The archive's content is not what the official archive holds."""


def check_members(members: list[tarfile.TarInfo], folder: str, source: Path) -> None:
    """DataError for a member outside ``folder/`` or one that is not a file or folder."""
    for m in members:
        path = PurePosixPath(m.name)
        if path.is_absolute() or ".." in path.parts or not path.parts or path.parts[0] != folder:
            raise BadArchive(f"{source}: unsafe or unexpected member {m.name!r} "
                            f"(everything must lie inside {folder}/); nothing was unpacked")
        if not (m.isfile() or m.isdir()):
            raise BadArchive(f"{source}: member {m.name!r} is a link or special file; nothing was unpacked")


def unpack(tarball: Path, root: Path, archive: Archive) -> Path:
    """Unpack ``tarball`` into ``root / archive.folder`` atomically; returns that folder."""
    target = root / archive.folder
    staging = temporary_name(target)
    staging.mkdir()
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            members = tar.getmembers()
            check_members(members, archive.folder, tarball)
            tar.extractall(staging, members=members, filter="data")
        lacking = missing_files(staging / archive.folder, archive)
        if lacking:
            raise BadArchive(f"{tarball}: the archive lacks {', '.join(lacking)} in {archive.folder}/; "
                            "it is not the official archive")
        os.rename(staging / archive.folder, target)
        fsync_dir(root)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise BadArchive(f"cannot unpack {tarball}: {one_line(exc)}") from None
    except OSError as exc:  # the disk, not the archive: keep the archive for a rerun
        raise DataError(f"cannot unpack {tarball}: {one_line(exc)}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def fetch(name: str, root: Path, url: str | None = None, sha256: str | None = None,
          keep_archive: bool = False, timeout: float = 60.0, say: Callable[[str], None] = print) -> Path:
    """Make ``root / <folder>`` hold the official files of dataset ``name``; returns it."""
    archive = DATASETS[name]
    url = url or archive.url
    expected = (sha256 or archive.sha256).lower()
    target = root / archive.folder
    if target.exists():
        lacking = missing_files(target, archive)
        if not lacking:
            say(f"{target} is already complete: nothing to do")
            return target
        raise DataError(f"{target} exists but lacks {', '.join(lacking)}: move it away or delete it, then rerun")
    root.mkdir(parents=True, exist_ok=True)
    tarball = root / archive.name
    downloaded = False
    if tarball.exists():
        got = sha256_of(tarball)
        if got != expected:
            raise DataError(f"{tarball} is not the expected archive (SHA-256 expected {expected}, got {got}): "
                            "delete it and rerun")
        say(f"using {tarball} (SHA-256 verified)")
    else:
        part = tarball.with_name(tarball.name + ".part")
        download(url, part, timeout=timeout, label=archive.name)
        got = sha256_of(part)
        if got != expected:
            part.unlink(missing_ok=True)
            raise DataError(f"checksum mismatch for {url}: SHA-256 expected {expected}, got {got}; "
                            "the download was deleted and nothing was unpacked")
        with atomic_path(tarball) as tmp:
            os.replace(part, tmp)
        downloaded = True
    try:
        unpack(tarball, root, archive)
    except BadArchive as exc:
        if not downloaded:
            raise
        tarball.unlink(missing_ok=True)
        raise BadArchive(f"{exc}; the download was deleted") from None
    if not keep_archive:
        tarball.unlink()
    say(f"unpacked {archive.name} into {target}")
    return target
