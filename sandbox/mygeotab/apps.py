from django.apps import AppConfig


class SandboxMygeotabConfig(AppConfig):
    name = "sandbox.mygeotab"
    label = "sandbox_mygeotab"
    verbose_name = "Sandbox: mygeotab"
