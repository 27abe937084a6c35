from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_compliance"),
        ("messaging", "0007_message_erased_reason"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="outboundjob",
            name="outbound_by_account",
        ),
        migrations.AddIndex(
            model_name="outboundjob",
            index=models.Index(
                fields=["account", "status", "id"], name="outbound_account_queue"
            ),
        ),
        migrations.AddIndex(
            model_name="outboundjob",
            index=models.Index(
                condition=models.Q(
                    ("status__in", ["pending", "published", "sending", "held"])
                ),
                fields=["account", "conversation", "id"],
                name="outbound_active_by_account",
            ),
        ),
    ]
