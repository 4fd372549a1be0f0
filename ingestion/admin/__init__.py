"""Ingestion admin, one module per area; each registers its ModelAdmins on import."""
