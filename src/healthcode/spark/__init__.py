"""Batch jobs on Apache Spark: the full recolour and contact tracing.

The jobs themselves live with their domains (:mod:`healthcode.status.spark`
and :mod:`healthcode.checkins.spark`); this package holds what they share:
the Spark session, the snapshot files they read and write, the command line
and the entry point that ``spark-submit`` runs on a cluster.
"""
