"""Small shared helpers (no torch at import time)."""
