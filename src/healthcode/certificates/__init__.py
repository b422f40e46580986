"""Foreign health certificates: EU Digital COVID Certificates, SMART Health Cards.

A visitor brings the certificate they already have; it is read and verified
offline against locally configured signers, its holder is matched to the
visitor's passport name, and its vaccination, test or recovery becomes a
record that the colour rules read.
"""
