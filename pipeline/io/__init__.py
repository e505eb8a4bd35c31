"""Reading, checking and writing images (CT volumes and label maps)."""

from __future__ import annotations

from .checks import validate_ct
from .readers import SUPPORTED_SUFFIXES, load_ct, load_label_map
from .writers import save_volume, to_sitk

__all__ = ["SUPPORTED_SUFFIXES", "load_ct", "load_label_map", "save_volume", "to_sitk", "validate_ct"]
