"""SQL storage of the domain: tables, migrations, database access."""
