"""Evaluation metrics: FID with the standard Inception network, and a fast domain FID on any features."""

from .fid import (
    FID_INCEPTION_FILE,
    FID_INCEPTION_PACKAGE,
    InceptionFeatures,
    compute_fid,
    domain_fid,
    feature_statistics,
    fid_from_features,
    find_fid_inception,
    frechet_distance,
)

__all__ = [
    "FID_INCEPTION_FILE",
    "FID_INCEPTION_PACKAGE",
    "InceptionFeatures",
    "compute_fid",
    "domain_fid",
    "feature_statistics",
    "fid_from_features",
    "find_fid_inception",
    "frechet_distance",
]
