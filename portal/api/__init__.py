"""Portal-wide API endpoints (collected by portal.api.router)."""


def __getattr__(name):
    # ROUTES is resolved lazily so importing portal.api.pagination never loads models early.
    if name == "ROUTES":
        from portal.api.views import JobViewSet, VendorCallViewSet

        return [("vendor-calls", VendorCallViewSet, "vendorcall"), ("jobs", JobViewSet, "job")]
    raise AttributeError(name)
