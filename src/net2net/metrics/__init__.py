"""Evaluation metrics: FID with the standard Inception network, a fast domain FID on any features, PSNR,
classifier accuracy, the diversity of translations and the information a source determines about the target."""

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
from .information import InformationEstimate, heldout_nll, information_estimate
from .quality import classifier_accuracy, mean_pairwise_distance, psnr

__all__ = [
    "FID_INCEPTION_FILE",
    "FID_INCEPTION_PACKAGE",
    "InceptionFeatures",
    "InformationEstimate",
    "classifier_accuracy",
    "compute_fid",
    "domain_fid",
    "feature_statistics",
    "fid_from_features",
    "find_fid_inception",
    "frechet_distance",
    "heldout_nll",
    "information_estimate",
    "mean_pairwise_distance",
    "psnr",
]
