"""clipfactory: a video data factory that is compliant by construction."""

__version__ = "0.1.0"
