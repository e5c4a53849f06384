"""End-to-end tests: the production server behind PgBouncer, started by the tests on loopback."""
