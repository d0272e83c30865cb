"""Many rows into one table with one prepared statement, for the import's hot paths.

`bulk_create` compiles its INSERT anew for every chunk, calling each field's hooks once per
value on the way: for the 500 rows of a batch that was most of the time spent staging rows and
committing documents (docs/performance.md). Here the statement is built once per call and the
rows go to the driver's `executemany`. Each field still prepares its own values for the database
(`get_db_prep_save`), so JSON, dates and UUIDs are stored exactly as the ORM stores them, and the
database's own constraints guard the rows as they guard the ORM's.
"""

from collections.abc import Iterable, Sequence

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
    `model`'s table with one executemany; the number of rows inserted.

    No defaults are filled in and no signals sent: every column without a database default is
    named by the caller.
    """
    connection = connections[router.db_for_write(model)]
    fields = [model._meta.get_field(name) for name in field_names]
    quote = connection.ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(model._meta.db_table),
        ", ".join(quote(field.column) for field in fields),
        ", ".join(["%s"] * len(fields)),
    )
    return _execute_many(connection, sql, fields, rows)


def rows_update(
    model: type[Model],
    key_names: Sequence[str],
    field_names: Sequence[str],
    rows: Iterable[Sequence],
) -> int:
    """Set `field_names` on the rows found by `key_names` (a unique key), one UPDATE per row in
    one executemany; each of `rows` holds the key's values, then the fields'. The number of
    rows given."""
    connection = connections[router.db_for_write(model)]
    keys = [model._meta.get_field(name) for name in key_names]
    fields = [model._meta.get_field(name) for name in field_names]
    quote = connection.ops.quote_name
    sql = "UPDATE {} SET {} WHERE {}".format(
        quote(model._meta.db_table),
        ", ".join(f"{quote(field.column)} = %s" for field in fields),
        " AND ".join(f"{quote(key.column)} = %s" for key in keys),
    )
    width = len(keys)
    fields_then_keys = ((*row[width:], *row[:width]) for row in rows)
    return _execute_many(connection, sql, [*fields, *keys], fields_then_keys)


def _execute_many(connection, sql: str, fields: list[Field], rows: Iterable[Sequence]) -> int:
    """Run `sql` once per row, its values prepared a column at a time."""
    columns = list(zip(*rows, strict=True))
    if not columns:
        return 0
    prepared = [
        _prepared(field, column, connection) for field, column in zip(fields, columns, strict=True)
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, list(zip(*prepared, strict=True)))
    return len(columns[0])


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
