"""Guardians who hold the codes of family members without a smartphone."""
