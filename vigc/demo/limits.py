"""Upload limits of the demo page (their own module: the command line shows them without importing the demo)."""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_UPLOAD_MB", "DEFAULT_MAX_UPLOAD_PIXELS"]

DEFAULT_MAX_UPLOAD_MB = 20.0
# 50 megapixels: any photo; the model sees 224 x 224 anyway.
DEFAULT_MAX_UPLOAD_PIXELS = 50_000_000
