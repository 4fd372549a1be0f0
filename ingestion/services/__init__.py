"""Ingestion services, one module per area."""
