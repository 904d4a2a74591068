"""``net2net serve``: the translations of trained runs in a browser page (Gradio, bound to 127.0.0.1).

- :mod:`.runs`: which run folder serves which tab (read from its ``config.yaml``, nothing instantiated);
- :mod:`.backend`: the models, loaded once per process, and each tab's checked computation (no web framework);
- :mod:`.app`: the Gradio page (``pip install "net2net[serve]"``), offline: system fonts, telemetry off.

Example:
    >>> from net2net.serve import serve
    >>> serve()  # doctest: +SKIP   (the main job's run and the runs of `net2net reproduce`, on 127.0.0.1:7860)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .discovery import RunInfo

__all__ = ["serve"]


def serve(run_dirs: Sequence[str | os.PathLike[str]] = (), host: str = "127.0.0.1", port: int = 7860,
          runs: Sequence[RunInfo] | None = None) -> None:  # fmt: skip
    """Load the runs and serve the page until interrupted.

    Arguments:
        run_dirs: run folders to serve (empty: those :func:`~net2net.serve.discovery.find_runs` finds).
        host, port: where to listen (a warning when ``host`` is not loopback).
        runs: the runs already found (instead of ``run_dirs``).

    Raises:
        ImportError: Gradio is not installed (the message says how to install it).
        ValueError, FileNotFoundError: a given run folder is not a finished run of any tab.
    """
    try:
        from .app import launch
    except ImportError as e:
        raise ImportError(f'net2net serve needs Gradio: pip install "net2net[serve]" ({e})') from e
    from .backend import Backend
    from .discovery import find_runs

    backend = Backend(find_runs(run_dirs) if runs is None else runs)
    backend.load_all()
    launch(backend, host=host, port=port)
