"""PostgreSQL data access: connections, migrations and repositories (functions taking a connection).

Tenant isolation is enforced by the database (row-level security on ``app.org_id``), not
by these functions: run them inside ``Database.tenant(org_id)``.
"""
