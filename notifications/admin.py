"""Admin for deliveries and their attempts (destinations' secrets are never shown)."""
from django import forms
from django.contrib import admin
from django.contrib.contenttypes.admin import GenericTabularInline

from aforo.errors import DomainError
from notifications.destinations import check_destination
from notifications.models import Delivery, DeliveryAttempt, Destination, SlackUserLink


class DestinationForm(forms.ModelForm):
    """A destination checked as the APIs check it (notifications.destinations)."""

    class Meta:
        model = Destination
        fields = ("position", "channel", "destination")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("channel"):
            try:
                check_destination(cleaned["channel"], cleaned.get("destination", ""))
            except DomainError as exc:
                raise forms.ValidationError({"destination": exc.message}) from None
        return cleaned


class DestinationInline(GenericTabularInline):
    """An owner's destinations (a budget's, a rule's, a guard policy's), in order."""

    model = Destination
    form = DestinationForm
    ct_field, ct_fk_field = "owner_type", "owner_id"
    extra = 0
    fields = ("position", "channel", "destination")


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    readonly_fields = ("attempted_at", "ok", "detail")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "tenant", "subject_type", "subject_id", "channel", "state", "attempts",
                    "next_attempt_at")
    list_filter = ("tenant", "channel", "state")
    exclude = ("signing_secret",)
    readonly_fields = ("tenant", "subject_type", "subject_id", "channel", "destination", "state",
                       "attempts", "next_attempt_at", "last_error", "delivered_at")
    inlines = [AttemptInline]


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(admin.ModelAdmin):
    list_display = ("delivery", "attempted_at", "ok", "detail")
    list_filter = ("ok",)


@admin.register(SlackUserLink)
class SlackUserLinkAdmin(admin.ModelAdmin):
    list_display = ("team_id", "slack_user_id", "user", "created_at")
    search_fields = ("slack_user_id", "user__username")
