"""Files that are never half-written, and safetensors files read without running code.

- :class:`atomic_path` / :func:`atomic_save_safetensors`: every file net2net writes goes to a temporary file in
  the same folder, is flushed to disk (``fsync``) and then renamed over the destination (``os.replace``), so a
  crash, a full disk or a kill leaves either the old file or the new one, never a truncated one. The temporary
  file lies beside the destination (not in ``$TMPDIR``), so the rename never becomes a copy across filesystems.
- :func:`read_safetensors_metadata` / :func:`load_safetensors`: safetensors holds tensors and a string-to-string
  metadata map, nothing that can execute; these wrap the library's errors for a truncated or corrupt file into a
  ``ValueError`` that names the file and what to do about it.
- :func:`file_digest`: the SHA-256 of a file, for manifests that verify what they list.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

__all__ = [
    "atomic_path",
    "atomic_save_safetensors",
    "file_digest",
    "fsync_dir",
    "load_safetensors",
    "read_safetensors_metadata",
    "read_safetensors_shapes",
]

PathLike = str | os.PathLike[str]


def fsync_dir(path: PathLike) -> None:
    """Flush a folder's entries (a rename in it) to disk; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems do not support fsync on folders
        pass
    finally:
        os.close(fd)


class atomic_path:
    """Context manager yielding a temporary path (same folder) that replaces ``path`` only if the block succeeds.

    The temporary file is flushed to disk before the rename and the folder after it, so after a crash ``path``
    holds either its previous content or the complete new one.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text()
        'done'
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        self._mode = 0o666 & ~umask
        os.chmod(tmp, self._mode)  # mkstemp makes owner-only files; give the usual permissions
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return
        try:
            # again here: a writer may have replaced the temporary file (safetensors writes a new one)
            os.chmod(self.tmp, self._mode)
            fd = os.open(self.tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self.tmp, self.path)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        fsync_dir(self.path.parent)


def atomic_save_safetensors(
    tensors: Mapping[str, Tensor], path: PathLike, metadata: Mapping[str, str] | None = None
) -> Path:
    """``safetensors.torch.save_file`` through :class:`atomic_path`; returns ``path``."""
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp),
                  metadata=dict(metadata) if metadata is not None else None)  # fmt: skip
    return Path(path)


def _unreadable(path: Path, err: BaseException, what: str, fix: str) -> ValueError:
    detail = str(err).splitlines()[0] if str(err) else type(err).__name__
    hint = f"; {fix}" if fix else ""
    return ValueError(f"{path}: cannot read {what}: not a valid safetensors file, truncated or corrupt "
                      f"({detail}){hint}")


def read_safetensors_metadata(path: PathLike, what: str = "the file", fix: str = "") -> dict[str, str]:
    """The metadata map of a safetensors file (``{}`` when it has none).

    Arguments:
        path: the file.
        what: what the file is, for the error message (e.g. ``"the cINN weights"``).
        fix: what the user can do, appended to the error message (e.g. ``"retrain or re-export it"``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a complete safetensors file.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file ({what})")
    try:
        with safe_open(str(p), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _unreadable(p, e, what, fix) from e


def read_safetensors_shapes(path: PathLike, what: str = "the file", fix: str = "") -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in a safetensors file, from its header (no data read); errors as
    :func:`read_safetensors_metadata`."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file ({what})")
    try:
        with safe_open(str(p), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118  (safe_open is not iterable)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _unreadable(p, e, what, fix) from e


def load_safetensors(path: PathLike, what: str = "the file", fix: str = "", device: str = "cpu") -> dict[str, Tensor]:
    """All tensors of a safetensors file; errors as :func:`read_safetensors_metadata`."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file ({what})")
    try:
        with safe_open(str(p), framework="pt", device=device) as f:
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118  (safe_open is not iterable)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _unreadable(p, e, what, fix) from e


def file_digest(path: PathLike, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()

