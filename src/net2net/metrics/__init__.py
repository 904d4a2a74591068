"""Evaluation metrics: FID with the standard Inception network, a fast domain FID on any features, PSNR,
classifier accuracy, the diversity of translations and the information a source determines about the target.

The package exports the public names of its modules (their ``__all__``), so a new metric is listed once, where it
is defined."""

from . import fid, information, quality
from .fid import *  # noqa: F403
from .information import *  # noqa: F403
from .quality import *  # noqa: F403

__all__ = fid.__all__ + information.__all__ + quality.__all__
