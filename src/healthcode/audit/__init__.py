"""An append-only, hash-chained log of who read and changed what."""
