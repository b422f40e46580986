"""Checking that the configured data keys are the database's own.

Data keys are made on first use, so a mistyped or empty
``HEALTHCODE_DATA_KEY_DIR`` would quietly get fresh ones: they open none of
the values already sealed, and a known person's document, indexed with a
new key, is found nowhere, so registering them again stores a second
resident. Opening the first stored value of each personal column and
indexing it again finds such keys before anything is read or written.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from healthcode.privacy.crypto import DataKeys
from healthcode.privacy.errors import DataKeyError

__all__ = ["check_data_keys"]


def _samples() -> list[tuple[sa.Column, sa.Column]]:  # type: ignore[type-arg]
    from healthcode.accounts.models import Account
    from healthcode.identity.models import Resident

    residents = Resident.__table__.c
    accounts = Account.__table__.c
    return [
        (residents.doc_number_sealed, residents.doc_number_index),
        (accounts.phone_sealed, accounts.phone_index),
    ]


def check_data_keys(engine: Engine, keys: DataKeys) -> None:
    """Refuse ``keys`` unless they open and index what ``engine`` stores.

    A database with no sealed value yet passes (its keys are made on first
    use). Nothing is written, in the database or the key directory. A key
    file that is unsafe or damaged is named here, before any statement
    needs it.
    """
    keys.check()
    with engine.connect() as connection:
        tables = set(sa.inspect(connection).get_table_names())
        samples = []
        for sealed, index in _samples():
            if sealed.table.name not in tables:
                continue
            row = connection.execute(
                sa.select(sa.type_coerce(sealed, sa.Text), index)
                .where(sealed.is_not(None))
                .order_by(*sealed.table.primary_key.columns)
                .limit(1)
            ).first()
            if row is not None:
                samples.append((sealed, index, row[0], row[1]))
    where = (
        f"the data keys in {keys.directory} are not the ones this database was"
        " sealed with: HEALTHCODE_DATA_KEY_DIR names another directory, or keys"
        " are missing from it. Nothing was read or written."
    )
    for sealed, index, token, stored_index in samples:
        if not (keys.directory / "index.key").exists():
            raise DataKeyError(f"The database holds sealed values, but {where}")
        try:
            value = keys.open(token, sealed.type.context)
        except DataKeyError:
            raise DataKeyError(
                f"The sealed values of {sealed.type.context} do not open: {where}"
            ) from None
        if keys.index(value, index.type.purpose) != stored_index:
            raise DataKeyError(
                f"The blind index of {index.type.purpose} differs from the stored"
                f" one: {where}"
            )
