from django.apps import AppConfig


class SandboxNavixyConfig(AppConfig):
    name = "sandbox.navixy"
    label = "sandbox_navixy"
    verbose_name = "Sandbox: navixy"
