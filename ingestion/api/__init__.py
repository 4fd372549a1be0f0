"""Ingestion API; ROUTES is collected by portal.api.router."""

ROUTES = []
