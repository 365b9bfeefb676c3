"""Admin for deliveries and their attempts (destinations' secrets are never shown)."""
from django.contrib import admin

from notifications.models import Delivery, DeliveryAttempt, SlackUserLink


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
