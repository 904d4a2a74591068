"""net2net: network-to-network translation with conditional invertible neural networks."""

__version__ = "0.1.0"
