"""Export and import of the whole policy store as JSON Lines (docs/transfer-format.md):
``format`` (the records), ``export`` (the store to lines), ``importer`` (lines to the store: the
network, then one transaction per organisation), ``org_import`` (one organisation compared,
checked and written), ``stored`` (what an organisation holds, read once), ``checks`` (the rules
its records must satisfy)."""
