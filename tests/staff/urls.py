"""The portal's URLs minus any route Django cannot reverse. Used by the staff and browser tests
only while such a route exists (a regex with inline flags makes reverse() fail for the whole
site); see tests/staff/conftest.py `_reversible_urls`."""

from django.urls import URLPattern, URLResolver
from django.utils.regex_helper import normalize

from portal.urls import urlpatterns as _portal_urlpatterns


def _reversible(patterns):
    kept = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            kept.append(URLResolver(pattern.pattern, _reversible(pattern.url_patterns), pattern.default_kwargs,
                                    pattern.app_name, pattern.namespace))
            continue
        if isinstance(pattern, URLPattern) and hasattr(pattern.pattern, "regex"):
            try:
                normalize(pattern.pattern.regex.pattern)
            except ValueError:
                continue
        kept.append(pattern)
    return kept


urlpatterns = _reversible(_portal_urlpatterns)
