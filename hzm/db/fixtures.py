"""Django's JSON serializer, whose deserializer remembers which fields each fixture row names.

Installed as SERIALIZATION_MODULES["json"], so loaddata (and anything else reading JSON
fixtures) builds objects that carry the attnames their fixture entry names
(hzm.db.columns.FIXTURE_FIELDS). A model with WritesOnlyChanges then writes, when the row
exists, only those of them whose value differs: a column the fixture leaves out (a
domain set in the admin, last_login, created_at) keeps its value. Serializing (dumpdata)
is Django's, unchanged.
"""

from collections.abc import Iterator
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.core.serializers import json as django_json
from django.core.serializers.base import DeserializedObject
from django.core.serializers.json import Serializer

from hzm.db.columns import FIXTURE_FIELDS

__all__ = ["Deserializer", "Serializer"]


class Deserializer(django_json.Deserializer):
    def _handle_object(self, obj: dict[str, Any]) -> Iterator[DeserializedObject]:
        for deserialized in super()._handle_object(obj):
            instance = deserialized.object
            named = set()
            for name in obj.get("fields", {}):
                try:
                    named.add(instance._meta.get_field(name).attname)
                except FieldDoesNotExist:
                    continue  # ignorenonexistent: Django skipped it too
            setattr(instance, FIXTURE_FIELDS, frozenset(named))
            yield deserialized
