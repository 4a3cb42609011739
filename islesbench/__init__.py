"""islesbench: ischemic stroke lesion segmentation benchmark on CT perfusion (ISLES 2018)."""

__version__ = "0.1.0"
