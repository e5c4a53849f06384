"""One global translation per language and key: the unique key treats NULL tenants as equal.

The seed's UNIQUE (tenant_id, language_code, translation_key) let any number of global
rows (tenant_id NULL) share a language and key, so which text a tenant saw was arbitrary.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('cfg', '0004_add_feature_flags'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='translation',
            name='translations_tenant_id_language_code_translation_key_key',
        ),
        migrations.AddConstraint(
            model_name='translation',
            constraint=models.UniqueConstraint(fields=('tenant_id', 'language', 'translation_key'), name='translations_tenant_id_language_code_translation_key_key', nulls_distinct=False),
        ),
    ]
