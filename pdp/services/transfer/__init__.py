"""Export and import of the whole policy store as JSON Lines (docs/transfer-format.md):
``format`` (the records), ``export`` (the store to lines), ``checks`` (the rules an
organisation's records must satisfy), ``importer`` (lines to the store, one transaction per
organisation)."""
