from django.apps import AppConfig


class SandboxDigConfig(AppConfig):
    name = "sandbox.dig"
    label = "sandbox_dig"
    verbose_name = "Sandbox: dig"
