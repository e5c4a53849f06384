"""Deployment safety: migrate's lock and dry run, backups, rollback, health, migration rules.

Shared by the management commands migrate, backup, restore, rollback and deploy
(hzm/management/commands/) and by hzm.health. Installed as the app `hzm_deploy` only
for its system checks; it has no models.
"""
