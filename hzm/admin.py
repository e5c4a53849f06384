"""The platform admin: its site, and the ModelAdmin bases every app's admin builds on.

- HzmAdminSite is Django's admin site (admin.site, through HzmAdminConfig in
  INSTALLED_APPS) that also takes models with a composite primary key, which Django
  5.2's own register() refuses, when their admin is a CompositeKeyAdmin.
- AuditedAdminMixin runs every write the admin makes (save, delete, bulk actions,
  inlines, django-import-export imports) in a transaction whose audit actor is the
  signed-in admin, so ops.log_audit records who did it.
- PlatformAdminMixin (with ModelAdmin: PlatformModelAdmin) adds what the schema
  needs: database defaults as the initial values of an add form, and a delete page
  that lists the rows whose foreign keys (enforced by the database, invisible to
  Django's collector) would refuse it.
- SoftDeleteAdminMixin keeps soft-deleted rows reachable: a filter and a restore action.

This module is imported while the app registry is still loading (HzmAdminConfig), so
it imports no models at module level.
"""

import copy
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.apps import AdminConfig
from django.contrib.admin.exceptions import AlreadyRegistered
from django.contrib.admin.utils import flatten_fieldsets, quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import (
    FieldDoesNotExist,
    ImproperlyConfigured,
    PermissionDenied,
    ValidationError,
)
from django.db import models, router, transaction
from django.db.models import NOT_PROVIDED
from django.db.models.base import ModelBase
from django.db.models.functions import Cast
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from hzm.db.context import set_audit_actor

# How many referencing rows a refused delete names before summing up the rest.
PROTECTED_LISTED = 10


class HzmAdminConfig(AdminConfig):
    """django.contrib.admin with HzmAdminSite as admin.site."""

    default_site = "hzm.admin.HzmAdminSite"

    def ready(self) -> None:
        # Before autodiscover imports cfg.admin and with it django-import-export, which
        # would load openpyxl at every start-up (hzm.tablib_formats).
        from hzm.tablib_formats import defer_xlsx

        defer_xlsx()
        super().ready()


class HzmAdminSite(admin.AdminSite):
    """The platform admin, for platform admins only (User.is_staff comes from their role)."""

    site_header = _("HZM platform administration")
    site_title = _("HZM platform admin")
    index_title = _("Platform configuration")
    # No "View site" link: the platform has no public site at /, only the API and this admin.
    site_url = None
    # The lists need the width (the audit trail's actor and changes, the tenant's columns
    # at 1,280 px); the index and the breadcrumbs lead to every page.
    enable_nav_sidebar = False

    def register(
        self,
        model_or_iterable: ModelBase | Iterable[ModelBase],
        admin_class: type[admin.ModelAdmin] | None = None,
        **options: Any,
    ) -> None:
        models_ = (
            [model_or_iterable]
            if isinstance(model_or_iterable, ModelBase)
            else list(model_or_iterable)
        )
        composite = [model for model in models_ if model._meta.is_composite_pk]
        for model in composite:
            if admin_class is None or not issubclass(admin_class, CompositeKeyAdmin) or options:
                raise ImproperlyConfigured(
                    f"model {model._meta.label} has a composite primary key, which Django's "
                    "admin does not support: register it with a subclass of "
                    "hzm.admin.CompositeKeyAdmin"
                )
            if self.is_registered(model):
                raise AlreadyRegistered(f"the model {model.__name__} is already registered")
            self._registry[model] = admin_class(model, self)
        others = [model for model in models_ if not model._meta.is_composite_pk]
        if others:
            super().register(others, admin_class, **options)


# --- Audit --------------------------------------------------------------------------


class AuditedAdminMixin:
    """Every write of this admin runs in a transaction whose audit actor is the signed-in admin.

    app.current_user_id(), which ops.log_audit records as user_id, is transaction-local,
    so it is set inside the very transaction that writes (hzm.db.context.set_audit_actor).
    No tenant is set: the admin works outside any tenant context.
    Put this mixin before ModelAdmin (and before django-import-export's mixins).
    """

    model: type[models.Model]

    @contextmanager
    def audited(self, request: HttpRequest) -> Iterator[None]:
        using = router.db_for_write(self.model)
        with transaction.atomic(using=using):
            set_audit_actor(request.user.pk, using=using, request=request)
            yield

    def save_model(self, request, obj, form, change):
        with self.audited(request):
            super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        # Inlines and many-to-many: each formset saves and deletes its rows here.
        with self.audited(request):
            super().save_related(request, form, formsets, change)

    def delete_model(self, request, obj):
        with self.audited(request):
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with self.audited(request):
            super().delete_queryset(request, queryset)

    def response_action(self, request, queryset):
        # Changelist actions (bulk delete, restore, ...) write through whatever they call.
        with self.audited(request):
            return super().response_action(request, queryset)

    def process_dataset(self, dataset, form, request, **kwargs):
        # django-import-export's ImportMixin: the step that writes a confirmed import.
        with self.audited(request):
            return super().process_dataset(dataset, form, request, **kwargs)


# --- Defaults and references ----------------------------------------------------------


def db_default_initial(field: models.Field) -> Any:
    """A form's initial value for `field`'s database default, or None if it is not a constant.

    Handles the schema's spellings: 'UTC', 3, true, '{en}'::text[] and '{}'::jsonb.
    """
    default = field.db_default
    if default is NOT_PROVIDED:
        return None
    if isinstance(default, Cast):
        default = default.get_source_expressions()[0]
    if isinstance(default, models.Value):
        value = default.value
    elif hasattr(default, "resolve_expression"):
        return None  # now(), gen_random_uuid(): computed when the row is inserted
    else:
        value = default  # a plain constant, as Field(db_default="UTC") keeps it
    internal_type = field.get_internal_type()
    if internal_type == "JSONField" and isinstance(value, str):
        return json.loads(value)
    if internal_type == "ArrayField" and isinstance(value, str):
        # A PostgreSQL array literal of plain words, as the schema writes it: {en,tr}.
        inner = value.strip("{}")
        return inner.split(",") if inner else []
    return value


def is_soft_deletable(model: type[models.Model]) -> bool:
    from hzm.db.columns import SoftDeletable

    return issubclass(model, SoftDeletable)


def referencing_rows(objs: list[models.Model]) -> list[str]:
    """Rows whose NO ACTION / RESTRICT foreign keys point at `objs`, as text for a delete page.

    Django's collector does not see these (hzm.db.fields.ForeignKey leaves ON DELETE to
    the database), so without this list the admin would offer a delete the database
    then refuses.
    """
    from hzm.db import fields as db_fields

    if not objs:
        return []
    model = type(objs[0])
    if is_soft_deletable(model):
        return []  # the row stays (is_deleted = true): nothing that points at it breaks
    found = []
    # Hidden relations too (related_name="+"): core.tenants' default_language is one.
    relations = [
        field
        for field in model._meta.get_fields(include_hidden=True)
        if field.auto_created and not field.concrete and (field.one_to_many or field.one_to_one)
    ]
    for relation in relations:
        field = relation.field
        if getattr(field, "db_on_delete", None) not in (db_fields.NO_ACTION, db_fields.RESTRICT):
            continue
        rows = relation.related_model._base_manager.filter(**{f"{field.name}__in": objs})
        label = capfirst(relation.related_model._meta.verbose_name)
        found.extend(f"{label}: {row} ({field.name})" for row in rows[:PROTECTED_LISTED])
        rest = rows.count() - PROTECTED_LISTED
        if rest > 0:
            found.append(f"... and {rest} more {relation.related_model._meta.verbose_name_plural}")
    return found


# The values of a row as the change view read it, kept on the instance by get_object().
LOADED_VALUES = "_hzm_loaded_values"


def loaded_values(obj: models.Model) -> dict[str, Any]:
    """A copy of `obj`'s column values (those it has loaded), to compare with after an edit."""
    return {
        field.attname: copy.deepcopy(obj.__dict__[field.attname])
        for field in obj._meta.concrete_fields
        if field.attname in obj.__dict__ and not field.primary_key and not field.generated
    }


def changed_columns(obj: models.Model, loaded: dict[str, Any]) -> list[str]:
    """The columns of `obj` whose value differs from the one it was loaded with."""
    return [name for name, before in loaded.items() if getattr(obj, name) != before]


class YesNoListFilter(admin.BooleanFieldListFilter):
    """A yes/no filter without Django's "Unknown" for a column that is never NULL in practice.

    The schema's flags are nullable with a database default (the guide's columns), so
    Django offers "Unknown" for every one of them, which always shows nothing. Here that
    choice appears only when some row does hold NULL, and says what it is.
    """

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.has_nulls = model._base_manager.filter(**{f"{field_path}__isnull": True}).exists()

    def choices(self, changelist):
        for number, choice in enumerate(super().choices(changelist)):
            if number < 3:
                yield choice
            elif self.has_nulls or choice["selected"]:
                yield {**choice, "display": _("Not set (NULL)")}


def yes_no_filters(model: type[models.Model], list_filter: Iterable[Any]) -> list[Any]:
    """`list_filter` with each nullable BooleanField named by itself given YesNoListFilter."""
    found = []
    for entry in list_filter:
        if isinstance(entry, str) and "__" not in entry:
            try:
                field = model._meta.get_field(entry)
            except FieldDoesNotExist:
                field = None
            if isinstance(field, models.BooleanField) and field.null:
                entry = (entry, YesNoListFilter)
        found.append(entry)
    return found


class PlatformAdminMixin(AuditedAdminMixin):
    """Audited writes of only what changed, database defaults as initial values, refused
    deletes named.

    Saving a change writes only the columns whose value the edit changed (save() with
    update_fields): a field nobody touched is not written, so it keeps its stored form
    (an array's order) and the audit row shows only the edit; nothing changed, nothing
    is written. A mixin, so that it can stand before other ModelAdmin mixins
    (django-import-export's must come before ModelAdmin too); PlatformModelAdmin is it
    with ModelAdmin.
    """

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            setattr(obj, LOADED_VALUES, loaded_values(obj))
        return obj

    def get_list_filter(self, request):
        return yes_no_filters(self.model, super().get_list_filter(request))

    def save_model(self, request, obj, form, change):
        loaded = getattr(obj, LOADED_VALUES, None) if change else None
        if loaded is None:
            return super().save_model(request, obj, form, change)
        changed = changed_columns(obj, loaded)
        if changed:
            with self.audited(request):
                # Versioned's optimistic check still applies: the UPDATE names the version read.
                obj.save(update_fields=changed)
            setattr(obj, LOADED_VALUES, loaded_values(obj))

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        # An add form starts from the values the database would fill in, so leaving a
        # field as it is means the same as leaving the column out of an INSERT.
        initial = {}
        for field in self.opts.concrete_fields:
            if field.db_default is not NOT_PROVIDED:
                value = db_default_initial(field)
                if value is not None:
                    initial[field.name] = value
        initial.update(super().get_changeform_initial_data(request))
        return initial

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None:
            return fieldsets
        # A row not yet inserted has no value for a read-only column the database fills
        # in (version, created_at): Django would try to show its DEFAULT placeholder.
        unfilled = {
            field.name
            for field in self.opts.concrete_fields
            if field.db_default is not NOT_PROVIDED
        } & set(self.get_readonly_fields(request, obj))
        shown = []
        for title, options in fieldsets:
            names = [name for name in options["fields"] if name not in unfilled]
            if names:
                shown.append((title, {**options, "fields": names}))
        return shown

    def protected_rows(self, objs: list[models.Model]) -> list[str]:
        """What refuses deleting `objs`; extend it for references that are not foreign keys."""
        return referencing_rows(objs)

    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, model_count, perms_needed, [*protected, *self.protected_rows(list(objs))]


class PlatformModelAdmin(PlatformAdminMixin, admin.ModelAdmin):
    """The base ModelAdmin of the platform."""


# --- Soft delete ------------------------------------------------------------------------


class SoftDeleteFilter(admin.SimpleListFilter):
    """Live rows unless asked otherwise; deleted rows, or all, on request."""

    title = _("deleted")
    parameter_name = "deleted"
    DEFAULT = "live"

    def lookups(self, request, model_admin):
        return [("live", _("Live")), ("deleted", _("Deleted")), ("all", _("All"))]

    def choices(self, changelist):
        current = self.value() or self.DEFAULT
        for value, label in self.lookup_choices:
            yield {
                "selected": current == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }

    def queryset(self, request, queryset):
        value = self.value() or self.DEFAULT
        if value == "live":
            return queryset.exclude(is_deleted=True)
        if value == "deleted":
            return queryset.filter(is_deleted=True)
        return queryset


class SoftDeleteAdminMixin:
    """Admin of a soft-delete model (hzm.db.columns.SoftDeletable): deleting marks the row
    is_deleted (the database trigger does it); the 'deleted' filter shows such rows and
    the restore action brings them back."""

    actions = ["restore_selected"]
    model: type[models.Model]
    # The delete pages say what happens: the row is marked deleted and can be restored.
    delete_confirmation_template = "admin/hzm/soft_delete/delete_confirmation.html"
    delete_selected_confirmation_template = "admin/hzm/soft_delete/delete_selected.html"

    def get_queryset(self, request):
        # Every row, deleted ones too: the filter chooses (live by default), and the
        # page of a deleted row must open for it to be restored.
        queryset = self.model.all_objects.get_queryset()
        ordering = self.get_ordering(request)
        return queryset.order_by(*ordering) if ordering else queryset

    def get_list_filter(self, request):
        return [SoftDeleteFilter, *super().get_list_filter(request)]

    @admin.action(description=_("Restore selected %(verbose_name_plural)s"))
    def restore_selected(self, request, queryset):
        count = queryset.filter(is_deleted=True).restore()
        name = self.opts.verbose_name if count == 1 else self.opts.verbose_name_plural
        self.message_user(
            request,
            _("Restored %(count)d %(name)s.") % {"count": count, "name": name},
            messages.SUCCESS,
        )


# --- Composite primary keys ----------------------------------------------------------------


class CompositeKeyChangeList(ChangeList):
    def url_for_result(self, result):
        return self.model_admin.change_url(result)


class CompositeKeyForm(ModelForm):
    """Refuses a new row whose key is taken: saving it would otherwise overwrite that row."""

    def clean(self):
        cleaned = super().clean()
        if self.instance._state.adding:
            key_fields = self._meta.model._meta.pk.fields
            key = {field.name: cleaned.get(field.name) for field in key_fields}
            if all(value is not None for value in key.values()):
                if self._meta.model._base_manager.filter(**key).exists():
                    described = ", ".join(f"{name} {value}" for name, value in key.items())
                    model = capfirst(self._meta.model._meta.verbose_name)
                    raise ValidationError(
                        _("%(model)s with %(key)s already exists: change that one instead")
                        % {"model": model, "key": described},
                        code="unique",
                    )
        return cleaned


class CompositeKeyAdmin(PlatformModelAdmin):
    """Admin of a model whose primary key is a CompositePrimaryKey.

    Django 5.2's admin refuses such models (its views and templates take the key for
    one value). This one keeps Django's changelist (filters, search, date hierarchy,
    sorting, pages) and has its own add, change and delete views. In URLs a row's key
    is its parts, each admin-quoted, joined by commas: USD,EUR,2025-01-31. Key fields
    are read-only once a row exists: changing them would insert a new row, not move
    this one. There are no bulk actions: Django's selection handling takes one-value keys.
    """

    form = CompositeKeyForm
    actions = None
    change_form_template = "admin/hzm/composite_key/change_form.html"
    delete_confirmation_template = "admin/hzm/composite_key/delete_confirmation.html"

    @property
    def key_fields(self) -> tuple[models.Field, ...]:
        return self.opts.pk.fields

    def object_key(self, obj: models.Model) -> str:
        return ",".join(quote(field.value_to_string(obj)) for field in self.key_fields)

    def _url(self, name: str, *args: Any) -> str:
        opts = self.opts
        return reverse(
            f"admin:{opts.app_label}_{opts.model_name}_{name}",
            args=args,
            current_app=self.admin_site.name,
        )

    def change_url(self, obj: models.Model) -> str:
        return self._url("change", self.object_key(obj))

    def get_object(self, request, object_id, from_field=None):
        parts = object_id.split(",")
        if from_field is not None or len(parts) != len(self.key_fields):
            return None
        try:
            key = {
                field.attname: field.to_python(unquote(part))
                for field, part in zip(self.key_fields, parts, strict=True)
            }
        except ValidationError:
            return None
        return self.get_queryset(request).filter(**key).first()

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("", view(self.changelist_view), name=f"{prefix}_changelist"),
            path("add/", view(self.add_view), name=f"{prefix}_add"),
            path("<path:object_id>/change/", view(self.change_view), name=f"{prefix}_change"),
            path("<path:object_id>/delete/", view(self.delete_view), name=f"{prefix}_delete"),
        ]

    def get_changelist(self, request, **kwargs):
        return CompositeKeyChangeList

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            readonly.extend(field.name for field in self.key_fields if field.name not in readonly)
        return readonly

    def save_model(self, request, obj, form, change):
        with self.audited(request):
            # With its whole key set, save() of a new row would UPDATE an existing one.
            obj.save(force_insert=not change)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        with transaction.atomic(using=router.db_for_write(self.model)):
            return self._keyed_changeform_view(request, object_id, form_url, extra_context)

    def _keyed_changeform_view(self, request, object_id, form_url, extra_context):
        add = object_id is None
        if add:
            obj = None
            if not self.has_add_permission(request):
                raise PermissionDenied
        else:
            obj = self.get_object(request, object_id)
            if obj is None:
                return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
            if not self.has_change_permission(request, obj):
                raise PermissionDenied
        fieldsets = self.get_fieldsets(request, obj)
        form_class = self.get_form(
            request, obj, change=not add, fields=flatten_fieldsets(fieldsets)
        )
        if request.method == "POST":
            form = form_class(request.POST, request.FILES, instance=obj)
            if form.is_valid():
                obj = self.save_form(request, form, change=not add)
                self.save_model(request, obj, form, change=not add)
                return self._response_saved(request, obj, add)
        elif add:
            form = form_class(initial=self.get_changeform_initial_data(request))
        else:
            form = form_class(instance=obj)
        admin_form = helpers.AdminForm(
            form, list(fieldsets), {}, self.get_readonly_fields(request, obj), model_admin=self
        )
        verbose_name = self.opts.verbose_name
        context = {
            **self.admin_site.each_context(request),
            "title": (_("Add %s") if add else _("Change %s")) % verbose_name,
            "subtitle": None if add else str(obj),
            "adminform": admin_form,
            "object_id": object_id,
            "original": obj,
            "is_popup": False,
            "to_field": None,
            "media": self.media + admin_form.media,
            "inline_admin_formsets": [],
            "errors": helpers.AdminErrorList(form, []),
            "preserved_filters": self.get_preserved_filters(request),
            "delete_url": None
            if add or not self.has_delete_permission(request, obj)
            else self._url("delete", self.object_key(obj)),
            **(extra_context or {}),
        }
        return self.render_change_form(
            request, context, add=add, change=not add, obj=obj, form_url=form_url
        )

    def _response_saved(self, request: HttpRequest, obj: models.Model, add: bool) -> HttpResponse:
        link = format_html('<a href="{}">{}</a>', self.change_url(obj), obj)
        # Django's own messages, so that its translations apply.
        if add:
            message = _("The {name} “{obj}” was added successfully.")
        else:
            message = _("The {name} “{obj}” was changed successfully.")
        self.message_user(request, format_html(message, name=self.opts.verbose_name, obj=link))
        if "_continue" in request.POST:
            return HttpResponseRedirect(self.change_url(obj))
        if "_addanother" in request.POST:
            return HttpResponseRedirect(self._url("add"))
        return HttpResponseRedirect(self._url("changelist"))

    def delete_view(self, request, object_id, extra_context=None):
        with transaction.atomic(using=router.db_for_write(self.model)):
            obj = self.get_object(request, object_id)
            if obj is None:
                return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
            if not self.has_delete_permission(request, obj):
                raise PermissionDenied
            protected = self.protected_rows([obj])
            if request.method == "POST" and not protected:
                shown = str(obj)
                self.delete_model(request, obj)
                self.message_user(
                    request,
                    _("The %(name)s “%(obj)s” was deleted successfully.")
                    % {"name": self.opts.verbose_name, "obj": shown},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(self._url("changelist"))
            name = self.opts.verbose_name
            context = {
                **self.admin_site.each_context(request),
                "title": _("Are you sure?")
                if not protected
                else _("Cannot delete %(name)s") % {"name": name},
                "subtitle": None,
                "object_name": str(name),
                "object": obj,
                "change_url": self.change_url(obj),
                "deleted_objects": [
                    format_html(
                        '{}: <a href="{}">{}</a>', capfirst(name), self.change_url(obj), obj
                    )
                ],
                "model_count": {self.opts.verbose_name_plural: 1}.items(),
                "perms_lacking": set(),
                "protected": protected,
                "opts": self.opts,
                "app_label": self.opts.app_label,
                "preserved_filters": self.get_preserved_filters(request),
                "is_popup": False,
                "to_field": None,
                "media": self.media,
                **(extra_context or {}),
            }
            request.current_app = self.admin_site.name
            return TemplateResponse(request, self.delete_confirmation_template, context)
