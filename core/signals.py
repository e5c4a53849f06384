"""Signal handlers of the core app."""

from typing import Any

from django.db.models.signals import pre_save
from django.dispatch import receiver

from core.models import User


@receiver(pre_save, sender=User, dispatch_uid="core.keep_password_on_fixture_reload")
def keep_password_on_fixture_reload(sender: type[User], instance: User, raw: bool, **kwargs: Any):
    """Reloading a fixture (003_platform_admin) must not lock its admin out again.

    Fixtures ship an unusable password; loaddata saves raw, overwriting the row. When
    the row already has a password that was set since, keep it.
    """
    if not raw or instance.pk is None or instance.has_usable_password():
        return
    current = User.all_objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if current:
        instance.password = current
