"""Other regions of our own system: peers, their trust lists, calls between them."""
