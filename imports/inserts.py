"""Many rows into one table at once, for the import's hot paths.

`bulk_create` compiles its INSERT anew for every chunk, calling each field's hooks once per
value on the way: for the 500 rows of a batch that was most of the time spent staging rows and
committing documents (docs/performance.md). Here the statement is written once per chunk and
the values are prepared a column at a time. Each field still prepares its own values
(`get_db_prep_save`), so JSON, dates and UUIDs are stored exactly as the ORM stores them, and
the database's own constraints guard the rows as they guard the ORM's.
"""

from collections.abc import Iterable, Sequence
from itertools import chain

from django.db import connections, router
from django.db.models import Field, Model

# Values of these types, in fields of these kinds, go to the driver as they are: preparing
# them changes nothing. (A str subclass, such as a TextChoices member, is prepared.)
PLAIN_INTERNAL_TYPES = frozenset(
    {"CharField", "TextField", "PositiveBigIntegerField", "BigIntegerField", "IntegerField"}
)
PLAIN_TYPES = frozenset({str, int, type(None)})


def rows_insert(model: type[Model], field_names: Sequence[str], rows: Iterable[Sequence]) -> int:
    """Insert `rows` (values in `field_names`' order, as the model's fields take them) into
    `model`'s table; the number of rows inserted.

    As many rows to a statement as the backend takes (`bulk_batch_size`, as bulk_create): one
    statement per row cost PostgreSQL a round of parsing and planning each. No defaults are
    filled in and no signals sent: every column without a database default is named here.
    """
    connection = connections[router.db_for_write(model)]
    fields = [model._meta.get_field(name) for name in field_names]
    columns = list(zip(*rows, strict=True))
    if not columns:
        return 0
    prepared = [
        _prepared(field, column, connection) for field, column in zip(fields, columns, strict=True)
    ]
    values = list(zip(*prepared, strict=True))
    quote = connection.ops.quote_name
    head = "INSERT INTO {} ({}) VALUES ".format(
        quote(model._meta.db_table), ", ".join(quote(field.column) for field in fields)
    )
    one_row = "({})".format(", ".join(["%s"] * len(fields)))
    size = max(1, connection.ops.bulk_batch_size(fields, values))
    with connection.cursor() as cursor:
        for start in range(0, len(values), size):
            chunk = values[start : start + size]
            cursor.execute(head + ", ".join([one_row] * len(chunk)), list(chain(*chunk)))
    return len(values)


def _prepared(field: Field, column: Sequence, connection) -> Sequence:
    """A column's values as the database takes them. Text and whole numbers go as they are,
    and a value the row before had too (the batch's time, its import) is prepared once."""
    plain = field.get_internal_type() in PLAIN_INTERNAL_TYPES and not field.is_relation
    if plain and all(type(value) in PLAIN_TYPES for value in column):
        return column
    prepared, last, last_prepared = [], object(), None
    for value in column:
        if value is not last:
            last, last_prepared = value, field.get_db_prep_save(value, connection)
        prepared.append(last_prepared)
    return prepared
