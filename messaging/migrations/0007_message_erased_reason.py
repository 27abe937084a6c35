from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0006_conversation_mode"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="erased_reason",
            field=models.CharField(
                blank=True,
                choices=[("unsent", "Unsent"), ("retention", "Removed by the retention policy")],
                max_length=16,
            ),
        ),
    ]
