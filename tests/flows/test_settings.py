"""Live-mode settings: file + environment, validation naming the key, masked display."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows.settings import SettingsError, env_overrides, load_settings

FILE = """
workers: 2
batch_size: 500
policy: policies/strict.yaml
kafka:
  bootstrap_servers: "k1:9092,k2:9092"
  starting_offset: latest
  topics: {orders: shop.orders}
  security:
    security.protocol: SASL_SSL
    sasl.mechanism: SCRAM-SHA-512
    sasl.username: salvage
    ssl.ca.location: /etc/ssl/ca.pem
redis:
  url: rediss://cache.internal:6380/0
webhooks:
  endpoints:
    messaging: {url: "https://msg.example/hooks", secret_env: MSG_SECRET, max_attempts: 3}
    support: {url: "https://support.example/in", secret_env: SUPPORT_SECRET}
  routes:
    proactive_reassurance: messaging
    human_review: support
recovery: {dir: /var/lib/salvage, snapshot_interval_seconds: 5}
window: {allowed_lateness_hours: 2, shards: 16}
"""


def write(tmp_path: Path, text: str, name: str = "salvage.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_file_values_are_read_and_typed(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, FILE), env={})
    assert (s.workers, s.batch_size, s.policy) == (2, 500, "policies/strict.yaml")
    assert s.kafka.brokers == ["k1:9092", "k2:9092"]
    assert s.kafka.starting_offset == "latest"
    assert s.kafka.topic_of("orders") == "shop.orders"
    assert s.kafka.topic_of("refunds") == "salvage.refunds"  # default kept
    assert s.kafka.client_config()["sasl.mechanism"] == "SCRAM-SHA-512"
    assert s.webhooks.endpoint_for("human_review").url == "https://support.example/in"
    assert s.webhooks.endpoint_for("product_guidance") is None
    assert s.webhooks.endpoints["messaging"].max_attempts == 3
    assert s.window.allowed_lateness == 2 * 3600 and s.window.shards == 16
    assert s.recovery.dir == "/var/lib/salvage"


def test_toml_files_work_too(tmp_path: Path) -> None:
    path = write(tmp_path, 'workers = 3\n[kafka]\nbootstrap_servers = "b:1"\n', "s.toml")
    s = load_settings(path, env={})
    assert (s.workers, s.kafka.bootstrap_servers) == (3, "b:1")


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    env = {
        "SALVAGE_CONFIG": str(write(tmp_path, FILE)),
        "SALVAGE_WORKERS": "4",
        "SALVAGE_KAFKA__BOOTSTRAP_SERVERS": "env:9092",
        "SALVAGE_KAFKA__SECURITY__SASL_PASSWORD": "pw-from-env",
        "SALVAGE_WEBHOOKS__ENDPOINTS__SUPPORT__TIMEOUT_SECONDS": "2.5",
        "SALVAGE_REDIS_PASSWORD": "redis-pw",
        "MSG_SECRET": "not a setting",
    }
    s = load_settings(env=env)
    assert s.workers == 4
    assert s.kafka.bootstrap_servers == "env:9092"
    assert s.kafka.security["sasl.password"] == "pw-from-env"
    assert s.kafka.security["sasl.username"] == "salvage"  # merged, not replaced
    assert s.webhooks.endpoints["support"].timeout_seconds == 2.5
    assert s.redis.connection_url() == "rediss://:redis-pw@cache.internal:6380/0"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("workers: 0", "workers: must be >= 1"),
        ("batch_size: lots", "batch_size: must be an integer"),
        ("kafka: {starting_offset: middle}", "kafka.starting_offset: must be one of"),
        ("kafka: {bootstrap_servers: nohost}", "kafka.bootstrap_servers: 'nohost' is not"),
        ("kafka: {topics: {returns: x}}", "kafka.topics.returns: unknown"),
        ("kafka: {topics: {orders: salvage.delivery}}", "used for more than one stream"),
        ("kafka: {security: {sasl.password: hunter2}}", "SALVAGE_KAFKA__SECURITY__SASL_PASSWORD"),
        ("kafka: {security: {group.id: x}}", "kafka.security.group.id: set by Salvage"),
        ("redis: {url: 'redis://:pw@host:6379'}", "redis.url: holds a password"),
        ("redis: {url: 'http://host'}", "redis.url: must start with"),
        ("redis: {password: x}", "redis.password: a secret"),
        ("webhooks: {endpoints: {a: {url: 'ftp://x', secret_env: S}}}", "a.url: must be an http"),
        ("webhooks: {endpoints: {a: {url: 'http://x', secret: s}}}", "a.secret: secrets are not"),
        ("webhooks: {endpoints: {a: {url: 'http://x'}}}", "a.secret_env: is required"),
        ("webhooks: {routes: {teleport: a}}", "webhooks.routes.teleport: unknown action"),
        ("webhooks: {routes: {human_review: nowhere}}", "'nowhere' is not defined"),
        ("window: {shards: 0}", "window.shards: must be >= 1"),
        ("colour: blue", "colour: unknown key"),
        ("kafka: {brokers: x}", "kafka.brokers: unknown key"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(write(tmp_path, text), env={})
    assert message in str(err.value)


def test_bad_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml", env={})
    with pytest.raises(SettingsError, match="must end in"):
        load_settings(write(tmp_path, "x", "s.ini"), env={})
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(write(tmp_path, "a: [", "s.yaml"), env={})


def test_missing_webhook_secret_is_caught_at_start(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, FILE), env={})
    with pytest.raises(SettingsError, match="MSG_SECRET is not set"):
        s.check_secrets(env={"SUPPORT_SECRET": "x"})
    s.check_secrets(env={"SUPPORT_SECRET": "x", "MSG_SECRET": "y"})


def test_env_overrides_ignore_unrelated_variables() -> None:
    assert env_overrides({"SALVAGE_REQUIRE_SERVICES": "1", "PATH": "/bin"}) == {}


def test_config_show_masks_every_secret(tmp_path: Path, capsys, monkeypatch) -> None:
    from flows.cli import main

    for name in list(__import__("os").environ):
        if name.startswith("SALVAGE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SALVAGE_CONFIG", str(write(tmp_path, FILE)))
    monkeypatch.setenv("SALVAGE_KAFKA__SECURITY__SASL_PASSWORD", "kafka-pw-123")
    monkeypatch.setenv("SALVAGE_REDIS_URL", "rediss://app:redis-pw-456@cache:6380/0")
    monkeypatch.setenv("MSG_SECRET", "hook-secret-789")
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    for secret in ("kafka-pw-123", "redis-pw-456", "hook-secret-789"):
        assert secret not in out
    shown = yaml.safe_load(out)
    assert shown["kafka"]["security"]["sasl.password"] == "****"
    assert shown["redis"]["url"] == "rediss://app:****@cache:6380/0"
    assert shown["webhooks"]["endpoints"]["messaging"]["secret"] == "****"
    assert shown["webhooks"]["endpoints"]["support"]["secret"] == "(not set)"
    assert shown["workers"] == 2
    assert shown["metrics_addr"] == "127.0.0.1"


def test_config_show_masks_url_tokens_and_header_values(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    from flows.cli import main
    from flows.connectors.webhooks import Dispatcher
    from state.dispatch import InMemoryDispatchLedger

    for name in list(__import__("os").environ):
        if name.startswith("SALVAGE_"):
            monkeypatch.delenv(name)
    text = FILE.replace(
        '"https://msg.example/hooks"',
        '"https://bot:url-pw-1@msg.example/services/T0/url-token-2?token=url-token-3"',
    ).replace(
        "secret_env: SUPPORT_SECRET}",
        "secret_env: SUPPORT_SECRET, headers: {Authorization: Bearer header-token-4}}",
    )
    monkeypatch.setenv("SALVAGE_CONFIG", str(write(tmp_path, text)))
    monkeypatch.setenv("SALVAGE_REDIS_PASSWORD", "redis-pw-5")
    monkeypatch.setenv("SALVAGE_KAFKA__SECURITY__SASL_PASSWORD", "kafka-pw-6")
    monkeypatch.setenv("MSG_SECRET", "hook-secret-7")
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    secrets = ["url-pw-1", "url-token-2", "url-token-3", "header-token-4", "redis-pw-5",
               "kafka-pw-6", "hook-secret-7"]  # fmt: skip
    assert [s for s in secrets if s in out] == []
    shown = yaml.safe_load(out)["webhooks"]["endpoints"]
    assert shown["messaging"]["url"] == "https://bot:****@msg.example/****?token=****"
    assert shown["support"]["headers"] == {"Authorization": "****"}
    # No repr holds a secret: settings, the dispatcher and its endpoints.
    settings = load_settings(tmp_path / "salvage.yaml", env=dict(__import__("os").environ))
    dispatcher = Dispatcher(
        settings.webhooks,
        {"messaging": "hook-secret-7", "support": "hook-secret-7"},
        InMemoryDispatchLedger(),
        lambda _r: None,
    )
    try:
        texts = [repr(settings), repr(dispatcher), *map(repr, dispatcher._endpoints.values())]
        assert [s for s in secrets if any(s in t for t in texts)] == []
    finally:
        dispatcher.close(0)


def test_config_show_reports_bad_settings_as_usage_errors(capsys, monkeypatch) -> None:
    from flows.cli import main

    monkeypatch.setenv("SALVAGE_WORKERS", "many")
    assert main(["config", "show"]) == 2
    assert "workers: must be an integer" in capsys.readouterr().err


# --- deploy/: compose and Kubernetes files, checked statically -----------------------------

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _cli_accepts(argv: list[str]) -> None:
    from flows.cli import build_parser

    args = build_parser().parse_args(argv)
    assert callable(args.func)


def _settings_from_text(tmp_path: Path, text: str, env: dict[str, str], secrets: bool = True):
    path = write(tmp_path, text, "deployed.yaml")
    settings = load_settings(path, env=env)
    if secrets:  # only the flow needs the webhook secrets
        settings.check_secrets(env=env)
    return settings


def test_compose_file_is_consistent(tmp_path: Path) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"
    built = {svc["image"] for svc in services.values() if "build" in svc}
    assert built == {"salvage:latest"}
    assert (DEPLOY / "Dockerfile").exists()
    for name in ("topics", "salvage"):
        _cli_accepts(services[name]["command"])
    # The settings file the flow mounts is valid with the environment compose gives it.
    salvage = services["salvage"]
    env = {k: "x" for k in salvage["environment"]}
    mounted = next(v for v in salvage["volumes"] if v.startswith("./salvage.yaml:"))
    assert mounted.split(":")[1] == salvage["environment"]["SALVAGE_CONFIG"]
    settings = _settings_from_text(tmp_path, (DEPLOY / "salvage.yaml").read_text(), env)
    # Hosts in the settings are compose services, on the ports those services listen on.
    kafka_host, kafka_port = settings.kafka.brokers[0].split(":")
    assert kafka_host in services
    redpanda = " ".join(services[kafka_host]["command"])
    assert f"{kafka_host}:{kafka_port}" in redpanda
    assert settings.redis.url.split("//")[1].split(":")[0] in services
    receiver = services["webhook-receiver"]
    port = receiver["command"][receiver["command"].index("--port") + 1]
    for ep in settings.webhooks.endpoints.values():
        assert f"//webhook-receiver:{port}/" in ep.url
        assert ep.secret_env in receiver["environment"]
    # Inside the container the port binds every interface (the default is loopback), and
    # the host publishes it on its own loopback only.
    assert settings.metrics_addr == "0.0.0.0"
    assert f"127.0.0.1:{settings.metrics_port}:{settings.metrics_port}" in salvage["ports"]
    assert settings.recovery.dir.startswith("/var/lib/salvage")
    assert any(v.endswith(":/var/lib/salvage") for v in salvage["volumes"])


def _k8s_docs() -> dict[str, dict]:
    docs: dict[str, dict] = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), path
            docs[doc["kind"]] = doc
    return docs


def test_kubernetes_manifests_are_consistent(tmp_path: Path) -> None:
    docs = _k8s_docs()
    assert set(docs) == {"ConfigMap", "Job", "StatefulSet", "Service"}
    config = docs["ConfigMap"]
    readme = (DEPLOY / "README.md").read_text()
    sts, job, svc = docs["StatefulSet"], docs["Job"], docs["Service"]
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    for workload in (sts, job):
        pod = workload["spec"]["template"]["spec"]
        [container] = pod["containers"]
        _cli_accepts(container["args"])
        volumes = {v["name"] for v in pod["volumes"]}
        volumes |= {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
        for mount in container["volumeMounts"]:
            assert mount["name"] in volumes
        for volume in pod["volumes"]:
            if "configMap" in volume:
                assert volume["configMap"]["name"] == config["metadata"]["name"]
            if "secret" in volume:
                assert volume["secret"]["secretName"] in readme
        env = {e["name"]: e for e in container["env"]}
        config_mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
        assert env["SALVAGE_CONFIG"]["value"] == config_mount["mountPath"]
        for e in env.values():
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:  # created out of band: the README's command must create it
                assert f"secret generic {ref['name']}" in readme
                assert f"--from-literal={ref['key']}=" in readme
        fake_env = {name: "x" for name in env}
        settings = _settings_from_text(
            tmp_path, config["data"]["salvage.yaml"], fake_env, secrets=workload is sts
        )
        assert settings.kafka.security["sasl.password"] == "x"  # from the Secret, not the file
    container = sts["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == settings.metrics_port
    assert settings.metrics_addr == "0.0.0.0"  # the default (loopback) is unreachable in a pod
    [svc_port] = svc["spec"]["ports"]
    assert svc_port["targetPort"] in ports and svc_port["port"] == settings.metrics_port
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(settings.metrics_port)
    recovery_mount = next(m for m in container["volumeMounts"] if m["name"] == "recovery")
    assert settings.recovery.dir.startswith(recovery_mount["mountPath"])
    assert container["readinessProbe"]["httpGet"]["port"] in ports


def test_the_dispatcher_deployment_runs_dispatch_run_on_the_flows_settings(
    tmp_path: Path,
) -> None:
    """``k8s/dispatcher/deployment.yaml``: ``salvage dispatch run`` on the ConfigMap the
    flow reads, with the webhook secrets (the flow under ``delivery: dispatcher`` has none
    to hold), pods the flow's StatefulSet does not select, metrics where the annotation
    says."""
    docs = _k8s_docs()
    sts, config = docs["StatefulSet"], docs["ConfigMap"]
    [deploy] = yaml.safe_load_all((DEPLOY / "k8s" / "dispatcher" / "deployment.yaml").read_text())
    assert deploy["kind"] == "Deployment"
    template = deploy["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert deploy["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert not sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    [container] = template["spec"]["containers"]
    assert container["args"][:2] == ["dispatch", "run"]
    _cli_accepts(container["args"])
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config["metadata"]["name"]
    for mount in container["volumeMounts"]:
        assert mount["name"] in volumes
    readme = (DEPLOY / "README.md").read_text()
    assert "k8s/dispatcher/deployment.yaml" in readme
    env = {e["name"]: e for e in container["env"]}
    for e in env.values():
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert f"--from-literal={ref['key']}=" in readme
    fake_env = {name: e.get("value", "x") for name, e in env.items()}
    settings = load_settings(
        write(tmp_path, config["data"]["salvage.yaml"], "deployed.yaml"), env=fake_env
    )
    assert not settings.webhooks.sent_by_flow
    assert set(settings.webhook_secrets(env=fake_env)) == set(settings.webhooks.routes.values())
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == settings.metrics_port
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(ports["metrics"])
    assert container["readinessProbe"]["httpGet"]["port"] in ports
