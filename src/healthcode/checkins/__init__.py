"""Venue check-ins and contact tracing.

``services`` registers venues and records devices' uploads of scans;
``venue_codes`` signs and reads the posters at venue doors; ``tracing``
finds who shared a venue, carriage or flight with a reported case and
writes the exposures that the rules turn into colours; ``reference`` is the
slow restatement of tracing that benchmarks and tests check it against.
"""
