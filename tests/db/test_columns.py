"""The ORM agrees with the triggers: soft delete, restore, purge (hzm.db.columns)."""

import pytest
from django.db import connection

from core.models import Project, TableMetadata, User
from generic_data.models import GenericData
from hzm.db.columns import PurgeNotAllowed, purge
from hzm.db.context import sign_context, tenant_context
from ops.models import AuditLog
from tests.factories import (
    GenericDataFactory,
    ProjectFactory,
    TableMetadataFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def unique_values_of(row: GenericData) -> list[tuple[str, str]]:
    """(field, value) of the row in app.generic_data_unique (generic_data 0004)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT field, value FROM app.generic_data_unique WHERE row_id = %s ORDER BY 1",
            [row.pk],
        )
        return cursor.fetchall()


def exists_in_table(model, pk) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT 1 FROM "{model._meta.db_table}" WHERE id = %s', [pk])
        return cursor.fetchone() is not None


class TestSoftDelete:
    def test_instance_delete_keeps_the_row_and_the_instance_shows_it(self):
        project = ProjectFactory()
        with connection.cursor() as cursor:
            sign_context(cursor, project.tenant_id, 42)
        count, per_model = project.delete()
        assert (count, per_model) == (1, {"core.Project": 1})
        assert project.pk is not None
        assert project.is_deleted is True
        assert project.deleted_at is not None
        assert project.deleted_by == 42
        assert exists_in_table(Project, project.pk)

    def test_default_manager_hides_deleted_rows_all_objects_shows_them(self):
        kept, gone = ProjectFactory(), ProjectFactory()
        gone.delete()
        assert list(Project.objects.filter(pk__in=[kept.pk, gone.pk])) == [kept]
        assert set(Project.all_objects.filter(pk__in=[kept.pk, gone.pk])) == {kept, gone}

    def test_reverse_relations_hide_deleted_rows(self):
        project = ProjectFactory()
        live, dead = TableMetadataFactory(project=project), TableMetadataFactory(project=project)
        dead.delete()
        assert list(project.tables.all()) == [live]

    def test_queryset_delete_marks_every_row_and_touches_no_other_table(self):
        user = UserFactory()
        projects = ProjectFactory.create_batch(3, tenant=user.tenant, user=user)
        count, _ = Project.objects.filter(user=user).delete()
        assert count == 3
        assert Project.all_objects.filter(user=user, is_deleted=True).count() == 3
        assert all(exists_in_table(Project, p.pk) for p in projects)
        assert User.objects.filter(pk=user.pk).exists()

    def test_restore(self):
        project = ProjectFactory()
        version = project.version
        project.delete()
        project.restore()
        assert (project.is_deleted, project.deleted_at, project.deleted_by) == (False, None, None)
        # The restore was an UPDATE: the touch trigger bumped the version.
        assert project.version == version + 2
        assert Project.objects.filter(pk=project.pk).exists()

    def test_a_deleted_name_can_be_used_again(self):
        """unique_project_name_per_tenant covers live projects only."""
        first = ProjectFactory(name="Shop")
        first.delete()
        again = ProjectFactory(tenant=first.tenant, user=first.user, name="Shop")
        assert again.pk != first.pk

    def test_a_deleted_table_name_can_be_used_again(self):
        first = TableMetadataFactory(table_name="orders")
        first.delete()
        TableMetadataFactory(project=first.project, table_name="orders")
        assert TableMetadata.all_objects.filter(table_name="orders").count() == 2

    def test_live_names_stay_unique(self):
        from django.db import IntegrityError

        first = ProjectFactory(name="Shop")
        with pytest.raises(IntegrityError, match="unique_project_name_per_tenant"):
            ProjectFactory(tenant=first.tenant, user=first.user, name="Shop")


class TestPurge:
    def test_owner_purges_for_real_and_the_purge_is_audited(self):
        project = ProjectFactory()
        table = TableMetadataFactory(
            project=project, fields=[{"name": "sku", "type": "text", "unique": True}]
        )
        row = GenericDataFactory(table=table, data={"sku": "A-1"})
        assert unique_values_of(row) == [("sku", "A-1")]
        assert purge(Project.all_objects.filter(pk=project.pk), actor_id=7) == 1
        assert not exists_in_table(Project, project.pk)
        # ON DELETE CASCADE took the project's tables, their rows and the rows' unique
        # values with it, for real too.
        assert not exists_in_table(TableMetadata, table.pk)
        assert not exists_in_table(GenericData, row.pk)
        assert unique_values_of(row) == []
        audit = AuditLog.objects.get(entity_type="core.projects", action="DELETE")
        assert (audit.entity_id, audit.user_id) == (str(project.pk), 7)

    def test_purge_flag_does_not_outlive_the_purge(self):
        project = ProjectFactory()
        purge(Project.all_objects.filter(pk=ProjectFactory().pk))
        project.delete()
        assert exists_in_table(Project, project.pk)

    def test_runtime_role_cannot_purge(self):
        project = ProjectFactory()
        with tenant_context(project.tenant_id), pytest.raises(PurgeNotAllowed, match="owner"):
            purge(Project.all_objects.filter(pk=project.pk))
        assert exists_in_table(Project, project.pk)

    def test_runtime_role_setting_the_purge_flag_itself_still_soft_deletes(self):
        project = ProjectFactory()
        with tenant_context(project.tenant_id), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('app.purge', 'on', true)")
            cursor.execute('DELETE FROM "core"."projects" WHERE id = %s', [project.pk])
        assert exists_in_table(Project, project.pk)
        assert Project.all_objects.get(pk=project.pk).is_deleted is True
