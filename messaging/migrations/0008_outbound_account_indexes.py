from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_compliance"),
        ("messaging", "0007_message_erased_reason"),
    ]

    # The new index first, so an account's rows by state are never without one.
    operations = [
        migrations.AddIndex(
            model_name="outboundjob",
            index=models.Index(fields=["account", "status", "id"], name="outbound_account_queue"),
        ),
        migrations.AddIndex(
            model_name="outboundjob",
            index=models.Index(
                condition=models.Q(("status__in", ["pending", "published", "sending", "held"])),
                fields=["account"],
                name="outbound_active_by_account",
            ),
        ),
        migrations.RemoveIndex(
            model_name="outboundjob",
            name="outbound_by_account",
        ),
    ]
