# Erasures find stored deliveries by the ids they name instead of reading every raw body, and
# a contact's erasure is remembered per account so older deliveries cannot bring it back.

import django.db.models.deletion
from django.db import migrations, models

# The ids a delivery names, searched with ``named_ids ?| array[...]``. PostgreSQL only: the
# embedded SQLite default searches the JSON with json_each, without an index.
NAMED_IDS_INDEX = (
    "CREATE INDEX IF NOT EXISTS webhook_event_named_ids "
    "ON webhooks_webhookevent USING gin (named_ids)"
)
NAMED_IDS_INDEX_DROP = "DROP INDEX IF EXISTS webhook_event_named_ids"
BATCH = 10_000


def named_ids_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(NAMED_IDS_INDEX)


def named_ids_index_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(NAMED_IDS_INDEX_DROP)


def blank_bodies_name_nothing(apps, schema_editor):
    """Deliveries whose body is already blank name nothing: erasures need not visit them."""
    WebhookEvent = apps.get_model("webhooks", "WebhookEvent")
    blank = WebhookEvent.objects.filter(raw_body=b"", named_ids__isnull=True)
    while True:
        ids = list(blank.order_by("pk").values_list("pk", flat=True)[:BATCH])
        if not ids:
            return
        WebhookEvent.objects.filter(pk__in=ids).update(named_ids=[])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_compliance"),
        ("webhooks", "0002_partner_callbacks"),
    ]

    operations = [
        migrations.CreateModel(
            name="ErasedCustomer",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("igsid_hash", models.CharField(max_length=64)),
                ("erased_at", models.DateTimeField()),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="accounts.instagramaccount",
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="accounts.tenant",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("account", "igsid_hash"), name="erased_customer_once_per_account"
                    )
                ],
            },
        ),
        migrations.AddField(
            model_name="webhookevent",
            name="named_ids",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.RunPython(blank_bodies_name_nothing, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="webhookevent",
            index=models.Index(
                condition=models.Q(
                    ("named_ids__isnull", True), ("status__in", ["processed", "quarantined"])
                ),
                fields=["id"],
                name="webhook_event_unindexed",
            ),
        ),
        migrations.RunPython(named_ids_index, named_ids_index_drop),
    ]
