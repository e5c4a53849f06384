"""The hzm app has no models; this module makes Django send it post_migrate.

Django signals post_migrate only to apps with a models module, and hzm.apps.HzmConfig
installs the database's context keys on it (hzm.db.context_keys).
"""
