"""Parity of the migrated catalog with the seed SQL the platform schema comes from."""
