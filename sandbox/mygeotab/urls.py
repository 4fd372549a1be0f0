from django.urls import path

from sandbox.mygeotab import views

urlpatterns = [
    # The SDK posts to the full URL it is given, with no trailing slash (reference §4.7).
    path("apiv1", views.apiv1, name="sandbox-mygeotab-apiv1"),
]
