from django.apps import AppConfig


class SandboxShippingConfig(AppConfig):
    name = "sandbox.shipping"
    label = "sandbox_shipping"
    verbose_name = "Sandbox: partner shipping"
