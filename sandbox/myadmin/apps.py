from django.apps import AppConfig


class SandboxMyadminConfig(AppConfig):
    name = "sandbox.myadmin"
    label = "sandbox_myadmin"
    verbose_name = "Sandbox: myadmin"
