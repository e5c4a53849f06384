"""Signal handlers of the core app."""

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.db import router, transaction
from django.db.models.signals import pre_save
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone

from core.models import User
from hzm.db.context import current_tenant, set_audit_actor


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


# Django's own receiver saves last_login outside any audit context, so the audit row of
# every admin sign-in named no actor, address or request. CoreConfig.ready() imports this
# module after django.contrib.auth's ready() (INSTALLED_APPS order) has connected it.
user_logged_in.disconnect(dispatch_uid="update_last_login")


@receiver(user_logged_in, dispatch_uid="core.update_last_login_audited")
def update_last_login_audited(
    sender: Any, request: HttpRequest | None, user: User, **kwargs: Any
) -> None:
    """Record a sign-in's last login in a transaction whose audit actor is the user.

    The audit row (UPDATE core.users) then names the user and the request's id, client
    IP and user agent: for the admin's sign-in, which runs outside any tenant context,
    and for a tenant user's, inside the context the sign-in opened (kept as it is).
    """
    using = router.db_for_write(type(user), instance=user)
    with transaction.atomic(using=using):
        set_audit_actor(user.pk, current_tenant(using), using=using, request=request)
        user.last_login = timezone.now()
        user.save(update_fields=["last_login"])
