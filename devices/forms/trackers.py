"""Admin forms for Navixy trackers. Validation is the service's (`tracker_validate`), so the
admin, the API and uploads give the same field-level messages."""

from django import forms

from devices.models import NavixyGroup, NavixyPlugin, Tracker
from devices.services.trackers import Catalogue, plugin_supports_model, tracker_validate

DEVICE_ONLY = ("device_id", "phone", "apn_name", "apn_user", "apn_password")
MOBILE_ONLY = ("notification_email", "notification_phone")


class PluginChoiceForm(forms.Form):
    """Step 1: the plugin decides which fields the registration needs."""

    plugin = forms.TypedChoiceField(coerce=int, choices=())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        available = set(NavixyPlugin.objects.filter(available=True).values_list("plugin_id", flat=True))
        self.fields["plugin"].choices = [(v, label) for v, label in Tracker.Plugin.choices if v in available]
        if not self.fields["plugin"].choices:
            self.fields["plugin"].help_text = (
                "No registration plugin is cached yet: run 'Refresh Navixy catalogues' on the Navixy models page."
            )


class TrackerRegisterForm(forms.Form):
    """Step 2: the fields of the chosen plugin, required as that plugin requires them."""

    label = forms.CharField(max_length=60, help_text="1-60 characters, shown in Navixy")
    group = forms.ModelChoiceField(queryset=NavixyGroup.objects.none(), required=False,
                                   empty_label="Default group (0)")
    model_code = forms.ChoiceField(label="Model", choices=())
    device_id = forms.CharField(label="Device ID", max_length=64, required=False,
                                help_text="IMEI (15 digits), MEID or factory ID, as the model requires")
    phone = forms.CharField(max_length=20, required=False, help_text="SIM number, international format without '+'")
    apn_name = forms.CharField(label="APN name", max_length=40, required=False)
    apn_user = forms.CharField(label="APN user", max_length=40, required=False)
    apn_password = forms.CharField(label="APN password", max_length=40, required=False,
                                   widget=forms.PasswordInput(render_value=False))
    activation_code = forms.CharField(max_length=20, required=False, widget=forms.PasswordInput(render_value=False),
                                      help_text="Single-use code from the dealer (kept only until used)")
    notification_email = forms.EmailField(required=False, help_text="The app's install invitation goes here")
    notification_phone = forms.CharField(max_length=20, required=False,
                                         help_text="Invitation by SMS; international format without '+'")

    def __init__(self, *args, plugin_id: int, tracker: Tracker | None = None, **kwargs):
        if tracker is not None:
            # Editing a draft / failed tracker: start from its values; secrets are never shown
            # and, left blank, keep their stored value.
            kwargs.setdefault("initial", {
                **{name: getattr(tracker, name) for name in ("label", "model_code", "device_id", "phone", "apn_name",
                                                              "apn_user", "notification_email", "notification_phone")},
                "group": tracker.group_id,
            })
        super().__init__(*args, **kwargs)
        self.plugin_id = plugin_id
        self.tracker = tracker
        self.catalogue = Catalogue.load()
        plugin = self.catalogue.plugins.get(plugin_id)
        mobile = plugin_id in Tracker.MOBILE_PLUGINS
        self.fields["group"].queryset = NavixyGroup.objects.filter(present=True)
        models = [m for m in self.catalogue.models.values()
                  if (m.is_mobile == mobile) and (plugin is None or plugin_supports_model(plugin, m.code))]
        self.fields["model_code"].choices = [("", "---------")] + [
            (m.code, f"{m.vendor} {m.name} ({m.code})".strip()) for m in sorted(models, key=lambda m: (m.vendor, m.name))
        ]
        for name in (DEVICE_ONLY if mobile else MOBILE_ONLY):
            del self.fields[name]
        if plugin_id in Tracker.CODE_REQUIRED_PLUGINS and not (tracker and tracker.activation_code):
            self.fields["activation_code"].required = True
        if not mobile:
            # Required when the chosen model needs them; checked in clean() for the model chosen.
            self.fields["device_id"].help_text += " — required unless Navixy assigns it"
            self.fields["phone"].help_text += " — required when the model has a SIM"

    def clean(self):
        data = dict(self.cleaned_data)
        data["plugin_id"] = self.plugin_id
        if self.tracker is not None:
            for secret in ("apn_password", "activation_code"):
                if not data.get(secret):
                    data[secret] = getattr(self.tracker, secret)
        cleaned, errors = tracker_validate(data=data, catalogue=self.catalogue,
                                           exclude_tracker_id=self.tracker.pk if self.tracker else None)
        already = set(self._errors)  # a field's own check already spoke: don't repeat it
        for name, messages in errors.items():
            target = name if name in self.fields else None
            if target in already:
                continue
            for message in messages:
                self.add_error(target, message)
        self.tracker_data = {**cleaned, "group": data.get("group")}
        return self.cleaned_data


class BulkUploadForm(forms.Form):
    file = forms.FileField(help_text="CSV (UTF-8) or XLSX; first row = column names: label, plugin_id, "
                                     "model_code, group, device_id, phone, apn_name, apn_user, apn_password, "
                                     "activation_code, notification_email, notification_phone")
    dry_run = forms.BooleanField(required=False, initial=True,
                                 help_text="Only check the rows; untick to register the valid rows")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > 5 * 1024 * 1024:
            raise forms.ValidationError("At most 5 MB per upload.")
        return upload
