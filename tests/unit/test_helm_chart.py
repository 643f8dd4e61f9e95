"""The Helm chart (deploy/helm/motcua), tested without a cluster: `helm lint`, `helm template`,
the rendered manifests validated offline against the Kubernetes schemas that
kubernetes-validate ships, and checks of what an operator relies on in the output.

helm comes from `scripts/provision.sh` (go install, in ~/.cache/motcua/bin). Without it these
tests skip on a developer's machine and fail under CI=true."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shared.settings import SharedSettings, settings_table
from tools.devstack import ROOT
from tools.settings_doc import SETTINGS

CHART = ROOT / "deploy" / "helm" / "motcua"
SERVICES = ("intake", "review", "notify", "audit", "portal")
KUBE_VERSION = "1.31.0"
"""The oldest Kubernetes the chart is validated against (the schemas ship with the package)."""
CRDS = {"ServiceMonitor", "PrometheusRule"}
"""Prometheus operator kinds: no schema ships for them; checked by hand below."""

PRODUCTION_SECRETS = {
    "jwtSecret": "a-long-random-token-secret-for-the-test-only-0123456789",
    "mongodbUrl": "mongodb://mongo-0.mongo:27017,mongo-1.mongo:27017/?replicaSet=rs0",
    "amqpUrlIntake": "amqps://motcua-intake:x@rabbitmq:5671/motcua",
    "amqpUrlReview": "amqps://motcua-review:x@rabbitmq:5671/motcua",
    "amqpUrlNotify": "amqps://motcua-notify:x@rabbitmq:5671/motcua",
    "amqpUrlAudit": "amqps://motcua-audit:x@rabbitmq:5671/motcua",
    "auditHmacKey": "test-hmac-key",
    "auditSigningKey": "dGVzdC1zZWVkLXRlc3Qtc2VlZC10ZXN0LXNlZWQtMTI=",
    "portalSessionSecret": "test-session-secret",
    "rabbitmqDefinitions": '{"users": []}',
}


class _StrictLoader(yaml.SafeLoader):
    """Refuses a mapping with a key twice (which kubectl and the API server reject)."""


def _no_duplicate_keys(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    keys = [loader.construct_object(key, deep=True) for key, _ in node.value]
    twice = {key for key in keys if keys.count(key) > 1}
    if twice:
        raise yaml.constructor.ConstructorError(None, None, f"keys twice: {twice}", node.start_mark)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def _helm() -> str:
    found = shutil.which("helm")
    tools = Path(os.environ.get("MOTCUA_TOOLS_DIR", Path.home() / ".cache" / "motcua"))
    cached = tools / "bin" / "helm"
    if found is None and cached.is_file():
        found = str(cached)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("helm is missing under CI=true: scripts/provision.sh installs it")
        pytest.skip("helm is not installed (scripts/provision.sh installs it with go install)")
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_helm(), *args], capture_output=True, text=True, timeout=60, check=False)


def _template(*args: str) -> subprocess.CompletedProcess[str]:
    return _run("template", "motcua", str(CHART), "--kube-version", KUBE_VERSION, *args)


def _production_args(without: str = "") -> list[str]:
    args = ["-f", str(CHART / "values-production.yaml")]
    for key, value in PRODUCTION_SECRETS.items():
        if key != without:
            args += ["--set-string", f"secrets.values.{key}={value}".replace(",", r"\,")]
    return args


RENDERINGS = {
    "development": [],
    "development-monitoring": ["--set", "monitoring.enabled=true"],
    "staging": ["-f", str(CHART / "values-staging.yaml")],
    "production": _production_args(),
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Each rendering's manifests, rendered once for the module."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, args in RENDERINGS.items():
        done = _template(*args)
        assert done.returncode == 0, f"{name}: {done.stderr}"
        out[name] = [doc for doc in yaml.load_all(done.stdout, Loader=_StrictLoader) if doc]
    return out


def _of(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Manifests of one kind, by their service (app.kubernetes.io/name label)."""
    return {
        doc["metadata"]["labels"].get("app.kubernetes.io/name", doc["metadata"]["name"]): doc
        for doc in docs
        if doc["kind"] == kind
    }


@pytest.mark.parametrize("values", ["values.yaml", "values-staging.yaml", "values-production.yaml"])
def test_helm_lint_passes_for_each_values_file(values: str) -> None:
    args = [
        "lint",
        str(CHART),
        "--strict",
        "--kube-version",
        KUBE_VERSION,
        "-f",
        str(CHART / values),
    ]
    if values == "values-production.yaml":
        args += _production_args()[2:]
    done = _run(*args)
    assert done.returncode == 0, done.stdout + done.stderr


def test_rendered_manifests_validate_against_the_kubernetes_schemas(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for name, docs in rendered.items():
        for doc in docs:
            if doc["kind"] in CRDS:
                assert doc["apiVersion"] == "monitoring.coreos.com/v1"
                assert doc["spec"]
                continue
            try:
                kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{name}: {doc['kind']} {doc['metadata']['name']}: {exc}")


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_every_service_has_probes_pdb_hpa_and_network_policy(
    rendered: dict[str, list[dict[str, Any]]], rendering: str
) -> None:
    docs = rendered[rendering]
    deployments = _of(docs, "Deployment")
    assert set(deployments) == set(SERVICES)
    for kind in ("Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"):
        assert set(SERVICES) <= set(_of(docs, kind)), kind
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep", name
        assert container["resources"]["requests"] and container["resources"]["limits"], name
        context = container["securityContext"]
        assert context["capabilities"]["drop"] == ["ALL"], name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert container["command"] == ["python", "-m", f"services.{name}"]


def test_default_deny_and_least_privilege_network_policies(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    policies = {doc["metadata"]["name"]: doc for doc in rendered["production"]}
    deny = policies["motcua-default-deny"]
    assert deny["kind"] == "NetworkPolicy"
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    per_service = _of(rendered["production"], "NetworkPolicy")

    def egress_ports(name: str) -> set[int]:
        return {p["port"] for rule in per_service[name]["spec"]["egress"] for p in rule["ports"]}

    assert 5672 in egress_ports("audit") and 5672 not in egress_ports("portal")
    assert 587 in egress_ports("notify")
    for other in ("intake", "review", "audit", "portal"):
        assert 587 not in egress_ports(other), other
    # audit's API is opened to the portal (and Prometheus), never to the ingress controller
    (audit_in,) = per_service["audit"]["spec"]["ingress"]
    assert {"ingress-nginx"}.isdisjoint(
        peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
        for peer in audit_in["from"]
    )


def test_each_broker_service_gets_its_own_amqp_secret_key(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    deployments = _of(rendered["production"], "Deployment")
    for name in ("intake", "review", "notify", "audit"):
        env = {
            e["name"]: e
            for e in deployments[name]["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["MOTCUA_AMQP_URL"]["valueFrom"]["secretKeyRef"]["key"] == f"amqp-url-{name}"
    portal = deployments["portal"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "MOTCUA_AMQP_URL" not in {e["name"] for e in portal}


def test_env_names_in_the_chart_are_settings_the_code_reads(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    known = {var for var, _, _ in settings_table(SharedSettings)}
    for _, cls in SETTINGS:
        known |= {var for var, _, _ in settings_table(cls)}
    known |= {"MOTCUA_ENV"}  # production mode (issue 14)
    known |= {
        "MOTCUA_RABBITMQ_MANAGEMENT_USER",
        "MOTCUA_RABBITMQ_MANAGEMENT_PASSWORD",
    }  # tools.setup
    for doc in rendered["production"]:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            names = {e["name"] for e in container["env"]}
            unknown = {n for n in names if n.startswith("MOTCUA_")} - known
            assert not unknown, f"{doc['metadata']['name']}: {sorted(unknown)}"


def test_the_portal_keeps_a_browser_on_one_replica(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    # uploads wait on the portal's own disk until the dossier is submitted (README)
    assert _of(rendered["production"], "Service")["portal"]["spec"]["sessionAffinity"] == "ClientIP"


def test_production_runs_at_least_two_replicas(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["production"]
    for name, deployment in _of(docs, "Deployment").items():
        assert deployment["spec"]["replicas"] >= 2, name
    for name, hpa in _of(docs, "HorizontalPodAutoscaler").items():
        assert hpa["spec"]["minReplicas"] >= 2, name
    for name, pdb in _of(docs, "PodDisruptionBudget").items():
        assert pdb["spec"].get("minAvailable", 0) >= 1, name


def test_no_secret_value_in_the_values_files() -> None:
    for path in sorted(CHART.glob("values*.yaml")):
        values = yaml.safe_load(path.read_text())
        secrets = (values.get("secrets") or {}).get("values") or {}
        assert all(value == "" for value in secrets.values()), path.name
        text = path.read_text()
        assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", text), f"{path.name}: credentials in a URL"
        assert "change-me" not in text and "motcua-dev-secret" not in text, path.name


def test_production_rendering_fails_without_secrets() -> None:
    done = _template("-f", str(CHART / "values-production.yaml"))
    assert done.returncode != 0
    assert "secrets.existingSecret" in done.stderr
    # each required secret is named when it alone is missing
    for key in PRODUCTION_SECRETS:
        if key == "rabbitmqDefinitions":
            continue
        done = _template(*_production_args(without=key))
        assert done.returncode != 0, key
        assert f"secrets.values.{key}" in done.stderr, key


def test_production_with_an_existing_secret_creates_none(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    assert not _of(rendered["staging"], "Secret")
    deployments = _of(rendered["staging"], "Deployment")
    env = deployments["audit"]["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in env if "valueFrom" in e}
    assert refs == {"motcua-staging"}
    created = _of(rendered["production"], "Secret")
    assert created, "production with secrets.values creates the Secret"


def test_setup_job_runs_before_install_and_upgrade(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    (job,) = [doc for doc in rendered["production"] if doc["kind"] == "Job"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:3] == ["python", "-m", "tools.setup"] and "--definitions" in command
    assert (ROOT / "tools" / "setup.py").is_file()


def test_monitoring_renders_service_monitors_and_the_rules(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    assert not _of(rendered["development"], "ServiceMonitor")
    docs = rendered["development-monitoring"]
    assert set(_of(docs, "ServiceMonitor")) == set(SERVICES)
    (rule,) = [doc for doc in docs if doc["kind"] == "PrometheusRule"]
    chart_rules = yaml.safe_load((CHART / "files" / "rules.yml").read_text())
    assert rule["spec"]["groups"] == chart_rules["groups"]


def test_the_charts_rules_equal_the_projects_rules() -> None:
    project = ROOT / "deploy" / "prometheus" / "rules"
    files = sorted(project.glob("*.yml")) if project.is_dir() else []
    if not files:
        pytest.skip("deploy/prometheus/rules/*.yml does not exist yet: nothing to compare")
    groups = [g for f in files for g in (yaml.safe_load(f.read_text()) or {}).get("groups", [])]
    chart = yaml.safe_load((CHART / "files" / "rules.yml").read_text())["groups"]
    assert chart == groups, (
        "deploy/helm/motcua/files/rules.yml differs from deploy/prometheus/rules/*.yml: copy the "
        "groups of every rules file, in file-name order, into it"
    )


def test_setup_imports_the_definitions_through_the_management_api(tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from tools.setup import import_definitions

    received: list[tuple[str, str, bytes]] = []

    class Management(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Authorization"], body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Management)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    definitions = tmp_path / "definitions.json"
    definitions.write_text('{"users": [{"name": "motcua-notify"}]}')
    try:
        import_definitions(definitions, f"http://127.0.0.1:{server.server_port}/", "admin", "pw")
    finally:
        thread.join(timeout=5)
        server.server_close()
    assert received == [
        ("/api/definitions", "Basic YWRtaW46cHc=", b'{"users": [{"name": "motcua-notify"}]}')
    ]


def test_development_generates_missing_keys_and_an_upgrade_keeps_every_value(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    (secret,) = _of(rendered["development"], "Secret").values()
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert {"jwt-secret", "audit-hmac-key", "portal-session-secret"} <= set(data)
    assert all(len(data[k]) >= 32 for k in ("jwt-secret", "audit-hmac-key"))
    assert len(base64.b64decode(data["audit-signing-key"])) == 32  # an Ed25519 seed
    assert "mongodb-url" not in data  # nothing is made up that the operator must give
    again = [d for d in yaml.safe_load_all(_template().stdout) if d and d["kind"] == "Secret"]
    assert again[0]["data"]["jwt-secret"] != secret["data"]["jwt-secret"]  # random: so kept
    # An upgrade reads the release's own Secret back (`lookup`; empty under `helm template`)
    # and keeps each value it is not given again.
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace (include "motcua.fullname" .)' in helpers
    template = (CHART / "templates" / "secret.yaml").read_text()
    assert (
        template.index("$given")
        < template.index("hasKey $previous")
        < template.index("randAlphaNum")
    )
    (prod,) = _of(rendered["production"], "Secret").values()
    given = base64.b64decode(prod["data"]["jwt-secret"]).decode()
    assert given == PRODUCTION_SECRETS["jwtSecret"]


def test_notify_reaches_the_internet_on_443_but_no_private_range(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    policies = _of(rendered["production"], "NetworkPolicy")

    def internet_rules(name: str) -> list[dict[str, Any]]:
        return [
            rule
            for rule in policies[name]["spec"]["egress"]
            if any(p.get("ipBlock", {}).get("cidr") == "0.0.0.0/0" for p in rule["to"])
            and 587 in {p["port"] for p in rule["ports"]}
        ]

    (rule,) = internet_rules("notify")
    assert 443 in {p["port"] for p in rule["ports"]}
    (peer,) = rule["to"]
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(
        peer["ipBlock"]["except"]
    )
    for other in ("intake", "review", "audit", "portal"):
        assert internet_rules(other) == [], other
