"""The sandbox's URL space: one prefix per simulated vendor, as the real hosts would have."""

from django.urls import include, path

from sandbox import views

urlpatterns = [
    path("faults/", views.faults, name="sandbox-faults"),
    # The partner shipping API lives on the MyAdmin host, under its REST prefix.
    path("myadmin/api/v3/shipping/partner", include("sandbox.shipping.urls")),
    path("myadmin/", include("sandbox.myadmin.urls")),
    path("mygeotab/", include("sandbox.mygeotab.urls")),
    path("dig/", include("sandbox.dig.urls")),
    path("navixy/", include("sandbox.navixy.urls")),
]
