"""OpenSINS: Spinal Instability Neoplastic Score from spine CT."""

from __future__ import annotations

__version__ = "0.16.0"
