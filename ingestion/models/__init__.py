"""Ingestion app models, one module per area; re-exported here for `ingestion.models.X`."""
