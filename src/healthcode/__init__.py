"""healthcode: health codes computed from department records, with their reasons."""

__version__ = "0.1.0"
