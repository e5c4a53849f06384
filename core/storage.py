"""Schema core, guide's 006: stored variants of an uploaded image (core.files has the original)."""

from django.db import models
from django.db.models import Q

from hzm.db import fields
from hzm.db.columns import Versioned

VARIANT_NAME = r"^[a-z0-9][a-z0-9_-]*\Z"


class ImageVariant(Versioned):
    """core.image_variants: one rendition of an image file (thumbnail, medium, webp, ...).

    Columns: file (the original in core.files; its variants go when it is purged),
    variant (the rendition's name, unique per file), storage_path and
    storage_provider (where the bytes are), mime_type, file_size (bytes), width and
    height (pixels, both required and positive). Derived data that the image
    pipeline can always make again, so like core.files it has a touch trigger and row
    level security but neither soft delete nor audit.
    """

    tenant = fields.ForeignKey("core.Tenant", db_on_delete=fields.CASCADE, related_name="+")
    file = fields.ForeignKey("core.File", db_on_delete=fields.CASCADE, related_name="variants")
    variant = models.CharField(max_length=50)
    storage_path = models.TextField()
    storage_provider = models.CharField(max_length=50, null=True, blank=True)
    mime_type = models.CharField(max_length=100, null=True, blank=True)
    file_size = models.BigIntegerField(null=True, blank=True)
    width = models.IntegerField()
    height = models.IntegerField()

    class Meta:
        db_table = 'core"."image_variants'
        ordering = ["file", "variant"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "file", "variant"], name="unique_image_variant"
            ),
            models.CheckConstraint(
                condition=Q(variant__regex=VARIANT_NAME), name="image_variants_variant_format"
            ),
            models.CheckConstraint(
                condition=Q(width__gt=0, height__gt=0), name="image_variants_dimensions_positive"
            ),
            models.CheckConstraint(
                condition=Q(file_size__isnull=True) | Q(file_size__gte=0),
                name="image_variants_file_size_not_negative",
            ),
        ]
        indexes = [
            # The unique key leads with tenant_id; this one serves the file's cascade.
            models.Index(fields=["file"], name="idx_image_variants_file"),
        ]

    def __str__(self) -> str:
        return f"{self.variant} of file {self.file_id} ({self.width}x{self.height})"
