"""The HZM platform project: settings, URLs and the platform database toolkit (hzm.db)."""

__version__ = "0.1.0"
