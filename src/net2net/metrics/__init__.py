"""Evaluation metrics: FID with the standard Inception network, a fast domain FID on any features, PSNR,
classifier accuracy and the diversity of translations."""

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
from .quality import classifier_accuracy, mean_pairwise_distance, psnr

__all__ = [
    "FID_INCEPTION_FILE",
    "FID_INCEPTION_PACKAGE",
    "InceptionFeatures",
    "classifier_accuracy",
    "compute_fid",
    "domain_fid",
    "feature_statistics",
    "fid_from_features",
    "find_fid_inception",
    "frechet_distance",
    "mean_pairwise_distance",
    "psnr",
]
