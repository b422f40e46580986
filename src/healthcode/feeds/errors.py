"""Errors the feed importer raises for a whole file or a whole call.

A bad *row* is not an exception: it becomes a ``RowError`` in the import
report, so that one broken line never hides the others. These classes are for
mistakes that make the whole request unusable.
"""

from __future__ import annotations

from healthcode.errors import HealthcodeError


class FeedError(HealthcodeError):
    """The root of the feed importer's errors."""

    code = "feed_error"


class UnknownFeedKind(FeedError):
    """The caller named a feed kind that the importer does not know."""

    code = "feed_unknown_kind"


class UnknownFeedFormat(FeedError):
    """The file name does not say whether the file is CSV or NDJSON."""

    code = "feed_unknown_format"


class FeedFileUnreadable(FeedError):
    """The file cannot be opened or read at all."""

    code = "feed_file_unreadable"


class ConcurrentImport(FeedError):
    """Another import wrote the same department records at the same moment."""

    code = "feed_concurrent_import"
