"""The deployment files in platform/ and the Procfile: they parse, they agree with each other,
and every command they run names something that exists in this code base.

No container engine or cluster is needed: files are parsed, commands are resolved against the
installed packages, the Celery app, Django's management commands and the URL configuration.
"""

from __future__ import annotations

import ast
import http.client
import http.server
import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import runpy
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gunicorn.config
import pytest
import yaml
from django.core.management import get_commands, load_command_class
from django.urls import Resolver404, resolve

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = ROOT / "platform"
K8S = PLATFORM / "k8s"
COMPOSE = PLATFORM / "compose.yaml"
DOCKERFILE = PLATFORM / "Dockerfile"
GUNICORN_CONF = PLATFORM / "gunicorn.conf.py"
PROCFILE = ROOT / "Procfile"

YAML_FILES = sorted([*PLATFORM.rglob("*.yaml"), *PLATFORM.rglob("*.yml")])
K8S_FILES = sorted(K8S.glob("*.yaml"))
APP_IMAGE = "igdm-app"

DOCKERFILE_INSTRUCTIONS = {
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
}


# --- loading -----------------------------------------------------------------------------------


def load_documents(path: Path) -> list[Any]:
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def k8s_objects() -> list[dict[str, Any]]:
    return [doc for path in K8S_FILES for doc in load_documents(path)]


def objects_of(kind: str) -> list[dict[str, Any]]:
    return [obj for obj in k8s_objects() if obj.get("kind") == kind]


def deployments() -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in objects_of("Deployment")}


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in [*objects_of("Deployment"), *objects_of("Job")]:
        yield obj["metadata"]["name"], obj["spec"]["template"]["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def main_command(deployment: dict[str, Any]) -> list[str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return [*container.get("command", []), *container.get("args", [])]


def compose() -> dict[str, Any]:
    return load_documents(COMPOSE)[0]


def compose_app_services() -> dict[str, dict[str, Any]]:
    """Services that run the application image (PostgreSQL and Redis are upstream images)."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if "build" in service or str(service.get("image", "")).startswith(APP_IMAGE)
    }


def configmap_data() -> dict[str, str]:
    (configmap,) = objects_of("ConfigMap")
    return configmap["data"]


def secret_example() -> dict[str, Any]:
    (secret,) = load_documents(K8S / "secret.example.yaml")
    return secret


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        word, _, rest = pending.strip().partition(" ")
        instructions.append((word.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def module_level_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements run at import, including those under a top-level if/try (not in functions)."""
    for node in body:
        yield node
        if isinstance(node, ast.If | ast.Try):
            for branch in ("body", "orelse", "finalbody"):
                yield from module_level_statements(getattr(node, branch, []))
            for handler in getattr(node, "handlers", []):
                yield from module_level_statements(handler.body)


def required_production_variables() -> set[str]:
    """Variables the production settings read with no default: start-up fails without them."""
    source = (ROOT / "config/settings/production.py").read_text()
    names = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "env"
            and len(node.args) == 1
            and isinstance(node.args[0], ast.Constant)
            and not any(keyword.arg == "default" for keyword in node.keywords)
        ):
            names.add(node.args[0].value)
    if re.search(r"if not FIELD_ENCRYPTION_KEYS:\s*raise ImproperlyConfigured", source):
        names.add("FIELD_ENCRYPTION_KEYS")  # read with a default, then demanded
    return names


# --- commands ----------------------------------------------------------------------------------

_DEFAULTED = re.compile(r"\$\{[A-Z_][A-Z0-9_]*:-([^}]*)\}")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def shell_words(command: str) -> list[list[str]]:
    """Split a shell line into simple commands, with ${VAR:-default} replaced by its default."""
    command = _DEFAULTED.sub(r"\1", command)
    return [shlex.split(part) for part in re.split(r"&&|;", command) if part.strip()]


def strip_assignments(words: list[str]) -> list[str]:
    while words and _ASSIGNMENT.match(words[0]):
        words = words[1:]
    return words


def procfile() -> dict[str, str]:
    entries = {}
    for line in PROCFILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def all_commands() -> list[tuple[str, list[str]]]:
    """Every command the Procfile, the image, Compose and Kubernetes run, with where it is from."""
    found: list[tuple[str, list[str]]] = []
    for name, line in procfile().items():
        found += [(f"Procfile {name}", words) for words in shell_words(line)]

    for instruction, arguments in dockerfile_instructions():
        if instruction == "CMD":
            found.append(("Dockerfile CMD", json.loads(arguments)))
        elif instruction == "HEALTHCHECK":
            found.append(("Dockerfile HEALTHCHECK", json.loads(arguments.split(" CMD ", 1)[1])))
        elif instruction == "RUN":
            for words in shell_words(arguments):
                stripped = strip_assignments(words)
                if stripped and stripped[0] == "python":
                    found.append(("Dockerfile RUN", stripped))

    for name, service in compose_app_services().items():
        command = service["command"]
        words = shlex.split(command) if isinstance(command, str) else command
        found.append((f"compose {name}", words))
        test = service.get("healthcheck", {}).get("test")
        if test:
            assert test[0] == "CMD", f"compose {name}: healthcheck should run without a shell"
            found.append((f"compose {name} healthcheck", test[1:]))

    for workload, spec in pod_specs():
        for container in containers(spec):
            where = f"k8s {workload}/{container['name']}"
            found.append((where, [*container.get("command", []), *container.get("args", [])]))
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                command = container.get(probe, {}).get("exec", {}).get("command")
                if command:
                    found.append((f"{where} {probe}", command))
    return found


def console_scripts() -> set[str]:
    return {entry.name for entry in importlib.metadata.entry_points(group="console_scripts")}


def option_names(tokens: list[str]) -> list[str]:
    return [token.split("=", 1)[0] for token in tokens if token.startswith("-") and token != "-"]


def load_probe() -> Any:
    spec = importlib.util.spec_from_file_location("igdm_platform_probe", PLATFORM / "probe.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_path_resolves(path: str) -> None:
    try:
        resolve(path)
    except Resolver404:
        pytest.fail(f"probe path {path} does not resolve")


def check_manage_py(args: list[str]) -> None:
    assert args, "manage.py without a command"
    name, options = args[0], args[1:]
    commands = get_commands()
    assert name in commands, f"manage.py {name} is not a management command"
    parser = load_command_class(commands[name], name).create_parser("manage.py", name)
    parser.parse_args(options)  # an unknown option exits with a CommandError


def check_probe_script(args: list[str]) -> None:
    probe = load_probe()
    assert callable(probe.main)
    assert args[0] in {"http", "celery", "beat", "file"}, f"unknown probe {args[0]}"
    if args[0] == "http":
        assert_path_resolves(args[1])
    elif args[0] == "celery":
        node_names = " ".join(" ".join(words) for _, words in all_commands())
        assert f"-n {args[1]}@%h" in node_names, f"no worker is named {args[1]}@%h"
    elif args[0] == "file":
        float(args[2])
        writers = [words for _, words in all_commands() if "--heartbeat-file" in words]
        assert any(args[1] in words for words in writers), f"nothing writes {args[1]}"
    else:
        float(args[2])
        beat_schedules = [words for _, words in all_commands() if "beat" in words]
        assert all(args[1] in words for words in beat_schedules if "-s" in words)


def check_python(words: list[str]) -> None:
    args = words[1:]
    if args[:1] == ["-m"]:
        importlib.import_module(args[1])
        return
    script = args[0]
    assert (ROOT / script).is_file(), f"python {script}: no such file in the repository"
    if script == "manage.py":
        check_manage_py(args[1:])
    elif script == "platform/probe.py":
        check_probe_script(args[1:])


def check_celery(words: list[str]) -> None:
    from celery import Celery
    from celery.bin.celery import celery as celery_cli

    args = words[1:]
    assert args[0] in {"-A", "--app"}, "celery is started without -A"
    module_name, _, attribute = args[1].partition(":")
    app = getattr(importlib.import_module(module_name), attribute or "app")
    assert isinstance(app, Celery)
    subcommand, rest = args[2], args[3:]
    assert subcommand in celery_cli.commands, f"celery {subcommand} is not a celery command"
    params = celery_cli.commands[subcommand].params
    known = {opt for param in params for opt in [*param.opts, *param.secondary_opts]}
    unknown = set(option_names(rest)) - known
    assert not unknown, f"celery {subcommand}: unknown options {unknown}"
    if subcommand == "worker":
        queues = set(rest[rest.index("-Q") + 1].split(","))
        declared = {queue.name for queue in app.conf.task_queues}
        assert queues <= declared, f"queues {queues - declared} are not declared"
        assert rest[rest.index("-P") + 1] in {"prefork", "threads", "solo"}


def check_gunicorn(words: list[str]) -> None:
    settings = {opt: s for s in gunicorn.config.KNOWN_SETTINGS for opt in (s.cli or [])}
    args = words[1:]
    positional = []
    index = 0
    while index < len(args):
        token = args[index]
        if token.startswith("-"):
            name = token.split("=", 1)[0]
            assert name in settings, f"gunicorn {name} is not an option"
            flag = settings[name].action in {"store_true", "store_false"}
            if not flag and "=" not in token:
                if name in {"-c", "--config"}:
                    assert (ROOT / args[index + 1]).is_file(), args[index + 1]
                index += 1
        else:
            positional.append(token)
        index += 1
    assert len(positional) == 1, f"gunicorn needs one application path, got {positional}"
    module_name, _, attribute = positional[0].partition(":")
    assert callable(getattr(importlib.import_module(module_name), attribute))


def check_command(words: list[str]) -> None:
    words = strip_assignments(words)
    assert words, "an empty command"
    program = words[0]
    assert program == "python" or program in console_scripts(), (
        f"{program} is neither python nor an installed console script"
    )
    if program == "python":
        check_python(words)
    elif program == "celery":
        check_celery(words)
    elif program == "gunicorn":
        check_gunicorn(words)


# --- the platform directory --------------------------------------------------------------------


def test_platform_is_not_a_python_package() -> None:
    """platform/ must never shadow the standard library's platform module."""
    import platform

    assert not (PLATFORM / "__init__.py").exists()
    assert callable(platform.python_version)
    assert Path(platform.__file__).parent != PLATFORM


def test_expected_files_exist() -> None:
    for name in ("Dockerfile", "Dockerfile.dockerignore", "compose.yaml", "README.md"):
        assert (PLATFORM / name).is_file(), name
    assert PROCFILE.is_file()


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_file_parses(path: Path) -> None:
    assert load_documents(path), f"{path} holds no document"


# --- Kubernetes --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", K8S_FILES, ids=lambda p: p.name)
def test_k8s_objects_are_well_formed(path: Path) -> None:
    for obj in load_documents(path):
        assert isinstance(obj, dict)
        assert obj.get("apiVersion"), f"{path.name}: an object without apiVersion"
        assert obj.get("kind"), f"{path.name}: an object without kind"
        assert obj.get("metadata", {}).get("name"), f"{path.name}: {obj['kind']} has no name"


def test_k8s_objects_live_in_the_namespace() -> None:
    (namespace,) = objects_of("Namespace")
    for obj in [*k8s_objects(), secret_example()]:
        if obj["kind"] not in {"Namespace", "Kustomization"}:
            assert obj["metadata"].get("namespace") == namespace["metadata"]["name"], obj


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    (kustomization,) = load_documents(K8S / "kustomization.yaml")
    expected = {p.name for p in K8S_FILES} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(kustomization["resources"]) == expected
    assert {image["name"] for image in kustomization["images"]} == {APP_IMAGE}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomization_builds() -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    built = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert {obj["kind"] for obj in built} >= {"Deployment", "Job", "HorizontalPodAutoscaler"}


def test_every_deployment_has_readiness_and_liveness_probes() -> None:
    assert deployments()
    for name, deployment in deployments().items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert "readinessProbe" in container, f"{name}/{container['name']}: no readiness"
            assert "livenessProbe" in container, f"{name}/{container['name']}: no liveness"


def test_the_expected_workloads_exist() -> None:
    commands = {name: " ".join(main_command(d)) for name, d in deployments().items()}
    assert "gunicorn config.wsgi:application" in commands["igdm-web"]
    assert "-Q webhooks -P prefork" in commands["igdm-worker"]
    assert "-Q default,maintenance -P prefork" in commands["igdm-worker-default"]
    assert "-Q outbound -P threads -c 50" in commands["igdm-worker-outbound"]
    assert "celery -A config.celery_app beat" in commands["igdm-beat"]


def test_beat_runs_exactly_once() -> None:
    beat = deployments()["igdm-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    targets = {
        hpa["spec"]["scaleTargetRef"]["name"] for hpa in objects_of("HorizontalPodAutoscaler")
    }
    assert "igdm-beat" not in targets
    running_beat = [name for name, d in deployments().items() if "beat" in main_command(d)]
    assert running_beat == ["igdm-beat"]
    assert not any(
        "-B" in main_command(d) or "--beat" in main_command(d) for d in deployments().values()
    )


def test_hpas_target_the_web_and_worker_deployments() -> None:
    existing = deployments()
    targets = set()
    for hpa in objects_of("HorizontalPodAutoscaler"):
        assert hpa["apiVersion"] == "autoscaling/v2"
        ref = hpa["spec"]["scaleTargetRef"]
        assert ref["kind"] == "Deployment"
        assert ref["apiVersion"] == "apps/v1"
        assert ref["name"] in existing, f"HPA {hpa['metadata']['name']} targets nothing"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        targets.add(ref["name"])
    assert targets == {"igdm-web", "igdm-worker", "igdm-worker-default", "igdm-worker-outbound"}


def test_scaled_containers_request_cpu() -> None:
    """A CPU-utilisation HPA needs a CPU request on every container of its target."""
    existing = deployments()
    for hpa in objects_of("HorizontalPodAutoscaler"):
        spec = existing[hpa["spec"]["scaleTargetRef"]["name"]]["spec"]["template"]["spec"]
        for container in containers(spec):
            assert container["resources"]["requests"]["cpu"]


def test_migration_job_runs_migrate() -> None:
    (job,) = objects_of("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    command = [*container.get("command", []), *container.get("args", [])]
    assert command[:3] == ["python", "manage.py", "migrate"]
    assert "--noinput" in command
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_long_running_pods_wait_for_migrations() -> None:
    for name, deployment in deployments().items():
        init = deployment["spec"]["template"]["spec"].get("initContainers", [])
        assert any(c["command"][1:4] == ["manage.py", "migrate", "--check"] for c in init), name


def test_selectors_match_their_pods() -> None:
    labels = {
        name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments().items()
    }

    def selects(selector: dict[str, str]) -> list[str]:
        return [name for name, pod in labels.items() if selector.items() <= pod.items()]

    for name, deployment in deployments().items():
        assert selects(deployment["spec"]["selector"]["matchLabels"]) == [name]
    pdb_targets = [
        selects(pdb["spec"]["selector"]["matchLabels"]) for pdb in objects_of("PodDisruptionBudget")
    ]
    assert all(len(target) == 1 for target in pdb_targets)
    assert ["igdm-web"] in pdb_targets
    (service,) = objects_of("Service")
    assert selects(service["spec"]["selector"]) == ["igdm-web"]
    web = deployments()["igdm-web"]["spec"]["template"]["spec"]["containers"][0]
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {p["name"] for p in web["ports"]}


def test_ingress_routes_to_the_web_service() -> None:
    (ingress,) = objects_of("Ingress")
    (service,) = objects_of("Service")
    port_names = {port["name"] for port in service["spec"]["ports"]}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == service["metadata"]["name"]
            assert backend["port"]["name"] in port_names
        assert rule["host"] in configmap_data()["DJANGO_ALLOWED_HOSTS"].split(",")


def test_pods_run_as_non_root_with_a_read_only_root() -> None:
    for name, spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec.get("automountServiceAccountToken") is False, name
        for container in containers(spec):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["requests"]["memory"], name
            assert container["resources"]["limits"]["memory"], name
            assert container["image"] == APP_IMAGE, name
            sources = {
                ref.get("configMapRef", ref.get("secretRef", {})).get("name")
                for ref in container["envFrom"]
            }
            assert sources == {"igdm-config", "igdm-secrets"}, name


def test_http_probes_resolve_and_send_an_allowed_host() -> None:
    allowed = configmap_data()["DJANGO_ALLOWED_HOSTS"].split(",")
    seen = set()
    for name, spec in pod_specs():
        for container in containers(spec):
            ports = {port["name"] for port in container.get("ports", [])}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                http_get = container.get(probe, {}).get("httpGet")
                if not http_get:
                    continue
                assert_path_resolves(http_get["path"])
                assert http_get["port"] in ports, f"{name}: the probe port is not declared"
                headers = {h["name"]: h["value"] for h in http_get.get("httpHeaders", [])}
                assert headers.get("Host") in allowed, f"{name}: Django would refuse the probe"
                seen.add((probe, http_get["path"]))
    assert ("readinessProbe", "/readyz") in seen
    assert ("livenessProbe", "/livez") in seen
    assert resolve("/healthz").func.__name__ == "healthz"
    assert resolve("/livez").func.__name__ == "livez"


def test_worker_pods_outlive_a_running_task() -> None:
    """Warm shutdown lets tasks finish: the grace period must exceed the task time limit."""
    time_limit = int(configmap_data()["CELERY_TASK_TIME_LIMIT"])
    for name in ("igdm-worker", "igdm-worker-default", "igdm-worker-outbound"):
        spec = deployments()[name]["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] > time_limit, name


def test_settings_are_complete_and_secrets_are_placeholders() -> None:
    secret = secret_example()
    assert secret["metadata"]["name"] == "igdm-secrets"
    values = secret["stringData"]
    for key, value in values.items():
        assert "REPLACE_ME" in value, f"{key} in the Secret example is not a placeholder"
    assert not set(values) & set(configmap_data()), "a setting is both secret and not"
    missing = required_production_variables() - set(values) - set(configmap_data())
    assert not missing, f"production settings need {missing}"
    assert configmap_data()["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL"} <= required_production_variables()


# --- Compose -----------------------------------------------------------------------------------


def test_compose_services() -> None:
    services = compose()["services"]
    expected = {
        "postgres", "redis", "web", "worker", "worker-default", "worker-outbound", "beat",
        "migrate",
    }  # fmt: skip
    assert expected <= set(services)
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name


def test_compose_app_services_start_after_the_migration() -> None:
    apps = compose_app_services()
    migrate = apps.pop("migrate")
    assert migrate["command"][:3] == ["python", "manage.py", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "migrate" not in migrate["depends_on"]
    for name, service in apps.items():
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["environment"]["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
        assert service["healthcheck"]["test"], name
        assert service["env_file"] == ".env"


def test_compose_environment_covers_production_settings() -> None:
    keys = {
        line.split("=", 1)[0]
        for line in (PLATFORM / "env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    for name, service in compose_app_services().items():
        missing = required_production_variables() - keys - set(service["environment"])
        assert not missing, f"compose {name} lacks {missing}"


# --- gunicorn ----------------------------------------------------------------------------------


def test_gunicorn_conf_compiles_and_uses_only_gunicorn_settings() -> None:
    source = GUNICORN_CONF.read_text()
    compile(source, str(GUNICORN_CONF), "exec")
    names = set()
    for node in module_level_statements(ast.parse(source).body):
        if isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
    public = {name for name in names if not name.startswith("_")}
    known = {setting.name for setting in gunicorn.config.KNOWN_SETTINGS}
    assert not public - known, f"not gunicorn settings (gunicorn ignores them): {public - known}"
    assert {"bind", "workers", "timeout", "graceful_timeout", "limit_request_line"} <= public


def test_gunicorn_conf_values_are_accepted_by_gunicorn() -> None:
    namespace = runpy.run_path(str(GUNICORN_CONF))
    config = gunicorn.config.Config()
    for setting in gunicorn.config.KNOWN_SETTINGS:
        if setting.name in namespace:
            config.set(setting.name, namespace[setting.name])  # raises on a refused value
    assert config.workers >= 1
    assert 0 < config.timeout <= 30
    assert config.graceful_timeout < 40, "must end before the web pod's termination grace"
    assert config.limit_request_line <= 8190
    assert config.limit_request_fields <= 100
    assert "%(r)s" not in config.access_log_format, "the request line carries the query string"
    assert "%(q)s" not in config.access_log_format
    assert "%(f)s" not in config.access_log_format, "referrers carry query strings"


def test_gunicorn_conf_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "7")
    monkeypatch.setenv("PORT", "9001")
    namespace = runpy.run_path(str(GUNICORN_CONF))
    assert namespace["workers"] == 7
    assert namespace["bind"] == "0.0.0.0:9001"


def test_gunicorn_access_log_hides_one_time_keys() -> None:
    redact = runpy.run_path(str(GUNICORN_CONF))["_redact_path"]
    assert redact("/accounts/confirm-email/MTI:1abc:xyz/") == "/accounts/confirm-email/<redacted>/"
    assert redact("/accounts/password/reset/key/1a-set-password/") == (
        "/accounts/password/reset/key/<redacted>/"
    )
    assert redact("/accounts/password/reset/key/done/") == "/accounts/password/reset/key/done/"
    assert redact("/webhooks/meta") == "/webhooks/meta"


def test_gunicorn_serves_livez_with_this_config() -> None:
    """Start gunicorn with platform/gunicorn.conf.py and probe it as the container does."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DJANGO_ALLOWED_HOSTS": "localhost",
    }
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-c", str(GUNICORN_CONF)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    probe = load_probe()
    try:
        deadline = time.monotonic() + 30
        while not probe.check_http("/livez", port, "localhost"):
            assert process.poll() is None, "gunicorn exited"
            assert time.monotonic() < deadline, "gunicorn did not answer /livez"
            time.sleep(0.2)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        path = "/accounts/confirm-email/SECRETKEY123/?code=QUERYSECRET"
        connection.request("GET", path, headers={"Host": "localhost"})
        connection.getresponse().read()
        connection.close()
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert '"GET /livez HTTP/1.1" 200' in output
    assert "/accounts/confirm-email/<redacted>/" in output
    assert "SECRETKEY123" not in output
    assert "QUERYSECRET" not in output


# --- Dockerfile --------------------------------------------------------------------------------


def test_dockerfile_instructions_are_known() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    for instruction, _ in instructions:
        assert instruction in DOCKERFILE_INSTRUCTIONS, instruction


def test_dockerfile_copy_sources_exist() -> None:
    copies = [args for instruction, args in dockerfile_instructions() if instruction == "COPY"]
    assert copies
    for arguments in copies:
        words = [word for word in shlex.split(arguments) if not word.startswith("--")]
        for source in words[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_dockerfile_runs_as_non_root_and_checks_liveness() -> None:
    instructions = dockerfile_instructions()
    by_name = dict(instructions)
    assert by_name["USER"].split(":")[0] not in {"root", "0"}
    assert "/livez" in by_name["HEALTHCHECK"]
    assert any("collectstatic" in args for name, args in instructions if name == "RUN")
    assert json.loads(by_name["CMD"])[0] == "gunicorn"


def test_dockerignore_keeps_the_files_the_containers_use() -> None:
    rules = (PLATFORM / "Dockerfile.dockerignore").read_text().splitlines()
    used = {
        word
        for _, words in all_commands()
        for word in words
        if word.startswith("platform/") and (ROOT / word).is_file()
    }
    assert used == {"platform/gunicorn.conf.py", "platform/probe.py"}
    for path in used:
        assert f"!{path}" in rules, f"{path} is excluded from the image"
    assert "**/.env" in rules, "local secrets must never reach the image"


# --- commands ----------------------------------------------------------------------------------


def test_procfile_declares_every_process() -> None:
    entries = procfile()
    assert {"release", "web", "worker", "worker_default", "worker_outbound", "beat"} <= set(entries)
    assert "python manage.py migrate --noinput" in entries["release"]
    assert entries["web"] == "gunicorn config.wsgi:application -c platform/gunicorn.conf.py"
    assert "-Q webhooks -P prefork" in entries["worker"]
    assert "-Q default,maintenance -P prefork" in entries["worker_default"]
    assert "-Q outbound -P threads -c" in entries["worker_outbound"]
    assert entries["beat"].startswith("celery -A config.celery_app beat")


def worker_pools(source: str) -> dict[str, set[str]]:
    """The queues each Celery worker pool of one source ("Procfile", "compose", "k8s") serves."""
    pools: dict[str, set[str]] = {}
    for where, words in all_commands():
        if where.startswith(source) and "worker" in words and "-Q" in words:
            pools[where] = set(words[words.index("-Q") + 1].split(","))
    return pools


def routed_queues() -> dict[str, str]:
    """Every registered task of the product and the queue the router sends it to."""
    from config.celery_app import app

    app.loader.import_default_modules()
    return {
        name: app.amqp.router.route({}, name)["queue"].name
        for name in app.tasks
        if not name.startswith("celery.")
    }


SOURCES = ("Procfile", "compose", "k8s")


def test_every_queue_has_a_worker() -> None:
    from config.celery_app import app

    for source in SOURCES:
        served = set().union(*worker_pools(source).values())
        assert {queue.name for queue in app.conf.task_queues} <= served, source


def test_every_routed_queue_is_served_by_some_pool() -> None:
    routes = routed_queues()
    assert routes["webhooks.drain"] == "webhooks"
    assert routes["outbound.send"] == "outbound"
    for source in SOURCES:
        served = set().union(*worker_pools(source).values())
        unserved = {name: queue for name, queue in routes.items() if queue not in served}
        assert not unserved, f"{source}: no worker consumes the queues of {unserved}"


def test_no_queue_is_served_by_two_pools() -> None:
    """One pool per queue: a flood on one queue cannot occupy the workers of another."""
    for source in SOURCES:
        owners: dict[str, list[str]] = {}
        for where, queues in worker_pools(source).items():
            for queue in queues:
                owners.setdefault(queue, []).append(where)
        shared = {queue: pools for queue, pools in owners.items() if len(pools) > 1}
        assert not shared, f"{source}: queues served by more than one pool: {shared}"


def test_inbound_processing_has_a_pool_of_its_own() -> None:
    """Reliability row P4: the webhooks queue is the only queue its pool consumes."""
    inbound = routed_queues()["webhooks.drain"]
    for source in SOURCES:
        pools = [queues for queues in worker_pools(source).values() if inbound in queues]
        assert pools == [{inbound}], f"{source}: inbound processing shares its pool: {pools}"


def test_the_demo_worker_serves_every_queue() -> None:
    """The demo runs one worker on the embedded defaults: it must consume every queue."""
    from config.celery_app import app

    tree = ast.parse((ROOT / "scripts" / "demo.py").read_text())
    served: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.List):
            values = [elt.value if isinstance(elt, ast.Constant) else None for elt in node.elts]
            if "worker" in values and "-Q" in values:
                served |= set(str(values[values.index("-Q") + 1]).split(","))
    assert {queue.name for queue in app.conf.task_queues} <= served
    assert set(routed_queues().values()) <= served


@pytest.mark.parametrize(
    ("where", "words"), all_commands(), ids=[where for where, _ in all_commands()]
)
def test_command_exists(where: str, words: list[str]) -> None:
    check_command(words)


# --- the probe script --------------------------------------------------------------------------


def test_probe_host_is_an_allowed_host() -> None:
    probe = load_probe()
    assert probe.probe_host("inbox.example.com,www.example.com") == "inbox.example.com"
    assert probe.probe_host(" .example.com") == "example.com"
    assert probe.probe_host("*") == "localhost"
    assert probe.probe_host("") == "localhost"


def test_probe_file_freshness(tmp_path: Path) -> None:
    probe = load_probe()
    stem = tmp_path / "celerybeat-schedule"
    assert not probe.check_fresh_file(str(stem), 600)
    (tmp_path / "celerybeat-schedule.dat").write_text("x")
    mtime = (tmp_path / "celerybeat-schedule.dat").stat().st_mtime
    assert probe.check_fresh_file(str(stem), 600, now=mtime + 10)
    assert not probe.check_fresh_file(str(stem), 600, now=mtime + 601)


def test_probe_usage_error_exits_2() -> None:
    assert load_probe().main([]) == 2


def test_probe_http_against_a_live_server() -> None:
    """The probe sends the Host and X-Forwarded-Proto headers and wants a 200."""
    seen: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.update(self.headers.items())
            self.send_response(200 if self.path == "/livez" else 503)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        probe = load_probe()
        assert probe.check_http("/livez", port, "inbox.example.com")
        assert seen["Host"] == "inbox.example.com"
        assert seen["X-Forwarded-Proto"] == "https"
        assert not probe.check_http("/healthz", port, "inbox.example.com")
    finally:
        server.shutdown()
        server.server_close()
    assert not probe.check_http("/livez", port, "")  # nobody listens any more
