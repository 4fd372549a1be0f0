"""Ingestion API; ROUTES is collected by portal.api.router."""

ROUTES = [
    ("termination-imports", __import__("ingestion.api.terminations", fromlist=["_"]).TerminationImportRunViewSet, "terminationimport"),
    ("records", __import__("ingestion.api.records", fromlist=["_"]).RecordViewSet, "record"),
]
