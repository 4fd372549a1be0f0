from django.urls import re_path

from . import views

# Actions are paths like tracker/register or tracker/group/list; a trailing slash is tolerated.
urlpatterns = [
    re_path(r"^api-v2/(?P<path>[a-z_/]+)$", views.action, name="sandbox-navixy-action"),
]
