"""Officials' work: appeals, overrides, searches and statistics."""
