"""Admin forms for order work (the services validate again; these only shape the input)."""

from django import forms

from orders.services import CARRIER_NAMES


class AssignmentsForm(forms.Form):
    text = forms.CharField(
        label="Lines: serial, IMEI, SIM", required=False,
        widget=forms.Textarea(attrs={"rows": 10, "cols": 80, "placeholder": "CX0000000001, 490154203237518, 8944500102198304826"}),
    )
    upload = forms.FileField(label="…or a CSV file", required=False)

    def clean(self):
        data = super().clean()
        upload = data.get("upload")
        if upload:
            if upload.size > 1_000_000:
                raise forms.ValidationError("The file is larger than 1 MB.")
            try:
                data["text"] = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise forms.ValidationError("The file is not UTF-8 text.") from exc
        if not (data.get("text") or "").strip():
            raise forms.ValidationError("Paste lines or choose a file.")
        return data


class ShipForm(forms.Form):
    carrier = forms.ChoiceField(choices=list(CARRIER_NAMES.items()))
    tracking_number = forms.CharField(max_length=64)
    ship_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))


class ManualOrderForm(forms.Form):
    account_id = forms.CharField(label="Partner account (ERP no.)", max_length=32)
    order_header_id = forms.IntegerField(label="orderHeaderId (if known)", required=False, min_value=1)
    purchase_order_number = forms.CharField(label="PO number", max_length=100, required=False)
    shipment_reference = forms.CharField(max_length=100, required=False)
    order_date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    reseller_name = forms.CharField(max_length=200, required=False)
    reseller_email = forms.EmailField(required=False)
    ship_name = forms.CharField(label="Ship-to name", max_length=200, required=False)
    ship_email = forms.EmailField(label="Ship-to e-mail", required=False)
    ship_street1 = forms.CharField(label="Street 1", max_length=200, required=False)
    ship_street2 = forms.CharField(label="Street 2", max_length=200, required=False)
    ship_city = forms.CharField(label="City", max_length=100, required=False)
    ship_state = forms.CharField(label="State", max_length=100, required=False)
    ship_zip_code = forms.CharField(label="Zip code", max_length=32, required=False)
    ship_telephone1 = forms.CharField(label="Telephone", max_length=40, required=False)
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    items = forms.CharField(
        label="Items: product code, quantity (one per line)",
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": "INTEG-TRK-100, 2\nINTEG-HARNESS-9, 2"}),
    )

    def clean_items(self):
        rows = []
        for n, line in enumerate(self.cleaned_data["items"].splitlines(), start=1):
            if not line.strip():
                continue
            parts = [p.strip() for p in line.replace(";", ",").split(",")]
            quantity = parts[1] if len(parts) > 1 and parts[1] else "1"
            if not quantity.isdigit():
                raise forms.ValidationError(f"Line {n}: quantity {quantity!r} is not a whole number.")
            rows.append({"product_code": parts[0], "quantity": int(quantity)})
        if not rows:
            raise forms.ValidationError("At least one item is required.")
        return rows

    def service_kwargs(self) -> dict:
        d = self.cleaned_data
        contact_map = {"name": "ship_name", "email": "ship_email", "street1": "ship_street1", "street2": "ship_street2",
                       "city": "ship_city", "state": "ship_state", "zipCode": "ship_zip_code",
                       "telephone1": "ship_telephone1"}
        return {
            "account_id": d["account_id"], "order_header_id": d.get("order_header_id"), "order_date": d.get("order_date"),
            "purchase_order_number": d.get("purchase_order_number", ""),
            "shipment_reference": d.get("shipment_reference", ""), "comment": d.get("comment", ""),
            "reseller_name": d.get("reseller_name", ""), "reseller_email": d.get("reseller_email", ""),
            "shipping_contact": {k: d.get(v, "") for k, v in contact_map.items()}, "items": d["items"],
        }
