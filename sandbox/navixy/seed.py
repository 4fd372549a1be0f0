"""Seed data the simulator creates lazily, idempotently, on its first request (tests flush the
tables between runs, so this runs again whenever the user row is gone)."""

from django.db import IntegrityError, transaction

from .models import SimActivationCode, SimModel, SimPlugin, SimSession, SimUser

LOGIN = "integrator@example.com"
PASSWORD = "sandbox-password"
# A fixed API key so scripts can use NAVIXY_API_KEY against the sandbox too.
API_KEY = "5ad0b1e0c0ffee00000000000000a11e"

MOBILE_PATTERNS = ["navixymobile.*", "mobile_unknown.*", "iosnavixytracker.*"]

# [I] the four registration plugins' modules and filters are not published; these are the
# plausible values the reference suggests.
PLUGINS = [
    (44, "com.navixy.plugin.tracker.register.device", "Registration.appPlugins.Device", True, False, False),
    (37, "com.navixy.plugin.tracker.register.device_code", "Registration.appPlugins.DeviceCode", True, True, False),
    (35, "com.navixy.plugin.tracker.register.mobile", "Registration.appPlugins.Mobile", False, False, True),
    (68, "com.navixy.plugin.tracker.register.mobile_code", "Registration.appPlugins.MobileCode", False, True, True),
]

# (id, code, vendor, name, type, id_type, has_phone, has_apn_settings)
MODELS = [
    (2180, "telfmb140", "Teltonika", "Teltonika FMB140", "vehicle", "imei", True, True),
    (1120, "qlgv55lite", "Queclink", "Queclink GV55 Lite", "vehicle", "imei", True, True),
    (2450, "navixy_ngp", "Navixy", "Navixy Generic Protocol", "vehicle", "ascii,6,64", False, False),
    (3010, "sandbox_meid", "Sandbox", "Sandbox CDMA tracker (MEID)", "vehicle", "meid", True, False),
    (3020, "sandbox_id7", "Sandbox", "Sandbox factory-id tracker", "portable", "id,7", True, True),
    (166, "tt1_wp", "WondeProud", "WondeProud TT1", "vehicle", "10,2", True, True),
    # [I] the id_type of the mobile app is not published; the example device id "186196632419"
    # (12 digits, starting with 1) suggests a generated "12,1".
    (1001, "mobile_unknown_xgps", "Navixy", "X-GPS Tracker (mobile app)", "personal", "12,1", False, False),
]

# Single-use activation codes: the docs' example plus a block of 10-digit codes.
ACTIVATION_CODES = ["6045325592", "123123123"] + [f"{7000000000 + i}" for i in range(200)]


def ensure_seeded() -> None:
    if SimUser.objects.filter(login=LOGIN).exists():
        return
    try:
        with transaction.atomic():
            user, _ = SimUser.objects.get_or_create(
                login=LOGIN, defaults={"password": PASSWORD, "plugin_ids": [p[0] for p in PLUGINS]}
            )
            SimSession.objects.get_or_create(
                hash=API_KEY, defaults={"user": user, "kind": SimSession.Kind.API_KEY}
            )
            for pid, module, ui_module, device, code_required, mobile in PLUGINS:
                SimPlugin.objects.get_or_create(plugin_id=pid, defaults={
                    "module": module, "ui_module": ui_module, "filter_exclusion": device,
                    "filter_values": MOBILE_PATTERNS, "activation_code_mandatory": code_required,
                    "mobile": mobile,
                })
            for nid, code, vendor, name, kind, id_type, has_phone, has_apn in MODELS:
                SimModel.objects.get_or_create(code=code, defaults={
                    "navixy_id": nid, "vendor": vendor, "name": name, "type": kind, "id_type": id_type,
                    "has_phone": has_phone, "has_apn_settings": has_apn,
                })
            existing = set(SimActivationCode.objects.values_list("code", flat=True))
            SimActivationCode.objects.bulk_create(
                [SimActivationCode(code=c) for c in ACTIVATION_CODES if c not in existing]
            )
            user.groups.get_or_create(title="Sandbox fleet", defaults={"color": "FF6DDC"})
    except IntegrityError:
        # Another request seeded concurrently; its rows are as good as ours.
        pass
