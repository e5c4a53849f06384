"""SQL expressions used as database defaults and generated columns."""

from django.db import models
from django.utils.deconstruct import deconstructible


@deconstructible(path="hzm.db.expressions.Now")
class Now(models.Func):
    """PostgreSQL's now(): the transaction's start time, as the seed's `DEFAULT NOW()`.

    Django's own Now() renders STATEMENT_TIMESTAMP(), which differs inside a
    transaction and would not match the schema the platform specifies.
    """

    template = "now()"
    output_field = models.DateTimeField()


@deconstructible(path="hzm.db.expressions.GenRandomUUID")
class GenRandomUUID(models.Func):
    """gen_random_uuid(): built into PostgreSQL 13+, needs no extension on the search_path."""

    template = "gen_random_uuid()"
    output_field = models.UUIDField()


@deconstructible(path="hzm.db.expressions.JsonbToText")
class JsonbToText(models.Func):
    """app.jsonb_to_text(doc): every string, number and boolean of a JSON document."""

    function = "app.jsonb_to_text"
    output_field = models.TextField()
