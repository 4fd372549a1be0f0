"""The portal's URLs without the sandbox: used by these tests only while a sandbox route makes
Django's reverse() fail for the whole site (see conftest._reversible_urls)."""

from portal.urls import urlpatterns as _portal_urlpatterns

urlpatterns = [p for p in _portal_urlpatterns if not str(p.pattern).startswith("sandbox/")]
