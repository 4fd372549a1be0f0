from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from portal.api.router import build_router
from portal.health import health

urlpatterns = [
    path("", include("portal.site_urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(build_router().urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("health/", health, name="health"),
]

if settings.SANDBOX:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))
