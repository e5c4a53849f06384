"""The guide's 006: core.image_variants, the stored renditions of an image in core.files.

A variant must belong to its file's tenant: the composite foreign key
(tenant_id, file_id) -> core.files (tenant_id, id) needs a unique (tenant_id, id) on
core.files, added here in the database only. core/models.py (owned elsewhere) does not
declare it yet; once File.Meta does, this becomes a plain AddConstraint.
"""

import hzm.db.expressions
import hzm.db.fields
from django.db import migrations, models

from hzm.db import operations as hzm_ops


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0004_add_rbac"),
    ]

    operations = [
        migrations.CreateModel(
            name="ImageVariant",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("version", models.IntegerField(db_default=1, null=True)),
                (
                    "created_at",
                    models.DateTimeField(db_default=hzm.db.expressions.Now(), null=True),
                ),
                (
                    "updated_at",
                    models.DateTimeField(db_default=hzm.db.expressions.Now(), null=True),
                ),
                ("variant", models.CharField(max_length=50)),
                ("storage_path", models.TextField()),
                ("storage_provider", models.CharField(blank=True, max_length=50, null=True)),
                ("mime_type", models.CharField(blank=True, max_length=100, null=True)),
                ("file_size", models.BigIntegerField(blank=True, null=True)),
                ("width", models.IntegerField()),
                ("height", models.IntegerField()),
                (
                    "file",
                    hzm.db.fields.ForeignKey(
                        db_on_delete="CASCADE", related_name="variants", to="core.file"
                    ),
                ),
                (
                    "tenant",
                    hzm.db.fields.ForeignKey(
                        db_on_delete="CASCADE", related_name="+", to="core.tenant"
                    ),
                ),
            ],
            options={
                "db_table": 'core"."image_variants',
                "ordering": ["file", "variant"],
                "indexes": [models.Index(fields=["file"], name="idx_image_variants_file")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("tenant", "file", "variant"), name="unique_image_variant"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("variant__regex", "^[a-z0-9][a-z0-9_-]*\\Z")),
                        name="image_variants_variant_format",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("height__gt", 0), ("width__gt", 0)),
                        name="image_variants_dimensions_positive",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("file_size__isnull", True), ("file_size__gte", 0), _connector="OR"
                        ),
                        name="image_variants_file_size_not_negative",
                    ),
                ],
            },
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AddConstraint(
                    model_name="file",
                    constraint=models.UniqueConstraint(
                        fields=("tenant", "id"), name="files_tenant_id_id_key"
                    ),
                ),
            ],
        ),
        hzm_ops.AttachTouchTrigger("imagevariant"),
        hzm_ops.EnableTenantRLS("imagevariant"),
        hzm_ops.GrantTablePrivileges("imagevariant", ["SELECT", "INSERT", "UPDATE", "DELETE"]),
        hzm_ops.AddTenantForeignKey(
            "imagevariant",
            "fk_image_variants_tenant_file",
            ["tenant_id", "file_id"],
            "file",
            ["tenant_id", "id"],
            on_delete="CASCADE",
        ),
    ]
