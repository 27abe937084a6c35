"""S1: Django's deployment checklist passes on the production settings."""

from __future__ import annotations

from pathlib import Path

from tests.security.production import production_env, run_python


def test_check_deploy_reports_no_issues(tmp_path: Path) -> None:
    result = run_python(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path)
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output


def test_check_deploy_fails_when_a_protection_is_switched_off(tmp_path: Path) -> None:
    # The check is live: turning HSTS off in the environment is reported.
    result = run_python(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        production_env(tmp_path, DJANGO_SECURE_HSTS_SECONDS="0"),
    )
    assert result.returncode != 0
    assert "security.W004" in result.stdout + result.stderr
