"""Admin for guard policies (operators set PLATFORM ones here), states and the audit trail."""
from django import forms
from django.contrib import admin

from aforo.errors import DomainError
from margin_guard.models import GuardAction, GuardPolicy, GuardState
from margin_guard.services import POLICY_FIELDS, guard_policy_build


class GuardPolicyForm(forms.ModelForm):
    """The admin's form checks a policy with the same rules as the API and the console
    (guard_policy_build); operators may set PLATFORM policies."""

    notifications = forms.JSONField(
        required=False, initial=list,
        help_text='Every channel, e.g. [{"channel": "SLACK", "destination": "https://..."}].')

    class Meta:
        model = GuardPolicy
        fields = ["tenant", *POLICY_FIELDS]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:  # its destinations (notifications.Destination), as a list
            self.fields["notifications"].initial = self.instance.notifications

    def clean(self):
        cleaned = super().clean()
        values = {key: cleaned.get(key) for key in POLICY_FIELDS if key in cleaned}
        for key in ("tier", "product_id", "customer_id"):
            values[key] = values.get(key) or ""
        try:
            built = guard_policy_build(tenant=cleaned.get("tenant"), values=values,
                                       policy=self.instance if self.instance.pk else None,
                                       operator=True)
        except DomainError as exc:
            field = (exc.field or "").split(".", 1)[0]
            raise forms.ValidationError({field if field in self.fields else None:
                                         exc.message}) from None
        self.built = built
        return cleaned


@admin.register(GuardPolicy)
class GuardPolicyAdmin(admin.ModelAdmin):
    form = GuardPolicyForm
    list_display = ("name", "tenant", "scope", "mode", "alert_below_pct", "throttle_below_pct",
                    "block_below_pct", "window")
    list_filter = ("tenant", "scope", "mode")

    def save_model(self, request, obj, form, change):
        built = form.built
        if not change:
            built.signing_secret = obj.signing_secret
        built.save()
        obj.pk = built.pk


@admin.register(GuardState)
class GuardStateAdmin(admin.ModelAdmin):
    list_display = ("tenant", "customer_id", "product_id", "level", "mode", "margin_pct",
                    "evaluated_at", "override_until")
    list_filter = ("tenant", "level", "mode")


@admin.register(GuardAction)
class GuardActionAdmin(admin.ModelAdmin):
    list_display = ("at", "tenant", "customer_id", "product_id", "from_level", "to_level",
                    "mode", "margin_pct", "actor")
    list_filter = ("tenant", "mode", "to_level")

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the audit trail is append-only
