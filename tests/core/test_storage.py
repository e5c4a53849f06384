"""core.image_variants: constraints, the file's cascade, the same-tenant key, triggers, RLS."""

import pytest
from django.db import IntegrityError, transaction

from core.storage import ImageVariant
from tests.factories import FileFactory
from tests.factories_platform import ImageVariantFactory
from tests.platform_support import assert_reference_refused, assert_tenant_isolated, query
from tests.support import run

pytestmark = pytest.mark.django_db


def test_a_file_has_each_variant_once():
    variant = ImageVariantFactory(variant="thumbnail")
    with pytest.raises(IntegrityError, match="unique_image_variant"), transaction.atomic():
        ImageVariantFactory(file=variant.file, variant="thumbnail")
    ImageVariantFactory(file=variant.file, variant="medium")
    assert sorted(variant.file.variants.values_list("variant", flat=True)) == [
        "medium",
        "thumbnail",
    ]


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"width": 0}, "image_variants_dimensions_positive"),
        ({"height": -1}, "image_variants_dimensions_positive"),
        ({"file_size": -1}, "image_variants_file_size_not_negative"),
        ({"variant": "Thumb"}, "image_variants_variant_format"),
        ({"variant": "-x"}, "image_variants_variant_format"),
    ],
)
def test_checks(values, constraint):
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        ImageVariantFactory(**values)


def test_required_columns():
    variant = ImageVariantFactory()
    for column in ("storage_path", "width", "height", "variant"):
        with pytest.raises(IntegrityError, match=f'null value in column "{column}"'):
            with transaction.atomic():
                run(f"UPDATE core.image_variants SET {column} = NULL WHERE id = %s", [variant.pk])


def test_purging_the_file_removes_its_variants():
    variant = ImageVariantFactory()
    run("DELETE FROM core.files WHERE id = %s", [variant.file_id])
    assert not ImageVariant.objects.filter(pk=variant.pk).exists()


def test_a_variant_cannot_belong_to_another_tenants_file():
    mine, theirs = FileFactory(), FileFactory()
    assert_reference_refused(
        lambda: ImageVariantFactory(file=theirs, tenant=mine.tenant),
        "fk_image_variants_tenant_file",
    )


def test_files_are_keyed_by_tenant_and_id_for_the_composite_key():
    assert query(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conname = 'files_tenant_id_id_key' AND conrelid = 'core.files'::regclass"
    ) == [("UNIQUE (tenant_id, id)",)]


def test_touch_trigger_only():
    assert query(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'core.image_variants'::regclass "
        "AND NOT tgisinternal"
    ) == [("trg_image_variants_touch",)]
    variant = ImageVariantFactory()
    run("UPDATE core.image_variants SET width = 640 WHERE id = %s", [variant.pk])
    variant.refresh_from_db()
    assert (variant.width, variant.version) == (640, 2)


def test_a_tenant_sees_and_writes_only_its_own():
    assert_tenant_isolated(
        ImageVariant, ImageVariantFactory(), ImageVariantFactory(), writable=True
    )
