"""The privacy suites, and the watch over the whole run's log lines.

Importing the hooks here makes pytest register them with this conftest, so
that whenever this folder is part of a run (``make test`` runs it) every
structlog event of every test is searched for identity numbers.
"""

from .logwatch import (  # noqa: F401
    pytest_collection_finish,
    pytest_sessionfinish,
    pytest_terminal_summary,
)
