"""The operations kit in ``deploy/``: the Prometheus alert rules and configuration, the Grafana
dashboard, nginx's TLS and trusted address (the README's Operations section runs these).

- Every metric the rules and the dashboard query is one ``GET /metrics`` really exports (read
  from an app's scrape, not from a list kept by hand): a renamed metric fails here, not
  silently in production.
- ``promtool check rules`` accepts the rules, ``promtool test rules`` runs their unit tests
  (``deploy/prometheus/alerts.test.yml``), and the dashboard's queries parse as PromQL.
  promtool comes with Debian's ``prometheus`` package; without it these are skipped, unless
  ``PDP_TEST_PROMTOOL=1`` (CI, ``.ci/run``) asks for them: then they fail.
"""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from support.constants import MakeApp
from support.servers import free_port, run_pdp, running, server_env

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "pdp-dashboard.json"
PROMTOOL_ENV = "PDP_TEST_PROMTOOL"
METRIC = re.compile(r"\b(pdp_[a-z0-9_]+)")
# Prometheus' own series, not pdp's: the scrape's health.
PROMETHEUS_OWN = {"up"}
# The alerts every operator needs (issue: policy stale, database unreachable, decision-log
# backlog or entries set aside, watcher reconnecting, 5xx).
REQUIRED_ALERTS = {
    "PdpPolicyStale",
    "PdpDatabaseUnreachable",
    "PdpDecisionLogBacklogGrowing",
    "PdpDecisionLogEntriesSetAside",
    "PdpWatcherReconnecting",
    "PdpServerErrors",
}


def promtool() -> str:
    """promtool's path; skip (or fail, when PDP_TEST_PROMTOOL=1) without it."""
    found = shutil.which("promtool")
    if found is not None:
        return found
    problem = "promtool is not installed (apt-get install prometheus)"
    if os.environ.get(PROMTOOL_ENV) == "1":
        pytest.fail(f"{PROMTOOL_ENV}=1 but {problem}", pytrace=False)
    pytest.skip(f"promtool tests skipped: {problem}")


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            queries.append(query["query"])
    return queries


def as_promql(query: str) -> str:
    """A dashboard query with Grafana's variables replaced by values (then plain PromQL)."""
    query = query.replace("$__rate_interval", "5m").replace('"$instance"', '".*"')
    # label_values(metric, label): Grafana's own function; the metric is the PromQL part.
    found = re.fullmatch(r"label_values\((\w+), \w+\)", query)
    return found.group(1) if found else query


def exported(make_app: MakeApp) -> set[str]:
    """The sample names an app's GET /metrics holds (after a check, so that every histogram
    and labelled counter has its series)."""
    client = make_app()[0].test_client()
    check = client.post("/v1/check", json={"user": "bruno.petit", "service": "cdap"})
    assert check.status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(sample.name for sample in family.samples)
    return names


def test_alerts_and_dashboard_query_only_exported_metrics(make_app: MakeApp) -> None:
    names = exported(make_app)
    alerts = rules()
    assert {r["alert"] for r in alerts} >= REQUIRED_ALERTS
    used = {m for r in alerts for m in METRIC.findall(r["expr"])}
    used |= {m for q in dashboard_queries() for m in METRIC.findall(q)}
    assert used, "no pdp metric found in the rules or the dashboard"
    assert used - names == set(), "queried but not exported"
    for rule in alerts:  # any other series must be Prometheus' own
        others = set(re.findall(r"\b([a-z_]+)\{", rule["expr"])) - set(METRIC.findall(rule["expr"]))
        assert others <= PROMETHEUS_OWN, (rule["alert"], others)
    # The dashboard covers the kit's new series too.
    queries = " ".join(dashboard_queries())
    for metric in ("pdp_build_info", "pdp_rate_limited_requests_total", "pdp_database_ok"):
        assert metric in queries


def test_promtool_checks_the_alert_rules_and_their_unit_tests() -> None:
    tool = promtool()
    checked = subprocess.run(
        [tool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout
    tested = subprocess.run(
        [tool, "test", "rules", ALERT_TESTS.name],
        cwd=ALERT_TESTS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # The example configuration loads the rules and names the job the alerts expect.
    config = subprocess.run(
        [tool, "check", "config", "prometheus.yml"],
        cwd=ALERT_TESTS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert config.returncode == 0, config.stdout + config.stderr
    jobs = yaml.safe_load((ALERT_TESTS.parent / "prometheus.yml").read_text(encoding="utf-8"))
    assert [j["job_name"] for j in jobs["scrape_configs"]] == ["pdp"]
    # Every alert is seen firing in the unit tests at least once.
    fired = {
        case["alertname"]
        for test in yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert fired == {r["alert"] for r in rules()}


def test_the_dashboards_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool has no offline query parser: each query becomes a recording rule, which
    ``promtool check rules`` parses."""
    tool = promtool()
    recorded = [
        {"record": f"pdp_dashboard:query_{n}", "expr": as_promql(q)}
        for n, q in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recorded}]}))
    checked = subprocess.run(
        [tool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# -- compose: nginx with TLS, the instances' trusted proxy -------------------------------------

COMPOSE = ROOT / "deploy" / "compose.yaml"
NGINX = ROOT / "deploy" / "nginx.conf"


def test_compose_trusts_exactly_its_nginx_which_serves_tls() -> None:
    """R-OPS-1 in the demo deployment: the instances believe X-Forwarded-For from nginx's
    fixed address only, and nginx's certificate is the one the tls service makes."""
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    lb = services["lb"]
    address = ipaddress.ip_address(lb["networks"]["default"]["ipv4_address"])
    pdp = {
        n: s for n, s in services.items() if s.get("environment", {}).get("PDP_ENV") == "production"
    }
    assert {"pdp1", "pdp2"} <= pdp.keys()
    for name, service in pdp.items():
        trusted = ipaddress.ip_network(service["environment"]["PDP_TRUSTED_PROXIES"])
        assert address in trusted and trusted.num_addresses == 1, name
    text = NGINX.read_text(encoding="utf-8")
    assert re.search(r"listen\s+8443\s+ssl;", text)
    assert any(p.endswith(':8443"') or p.endswith(":8443") for p in map(str, lb["ports"]))
    certs = {m for m in re.findall(r"ssl_certificate(?:_key)?\s+(\S+);", text)}
    mounted = {v.split(":")[1] for v in lb["volumes"] if v.startswith("tls:")}
    assert certs and {str(Path(c).parent) for c in certs} == mounted
    tls = services["tls"]
    assert tls["command"] == sorted(mounted)
    script = tls["volumes"][0].split(":")[0]
    assert (COMPOSE.parent / script).is_file()
    assert "X-Forwarded-Proto $scheme" in text


def test_the_tls_service_makes_a_certificate_once(tmp_path: Path) -> None:
    script = ROOT / "deploy" / "tls" / "self_signed.py"
    env = {**os.environ, "TLS_NAMES": "pdp.example.test"}
    first = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert first.returncode == 0, first.stderr
    cert = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "pdp.example.test"]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc > dt.timedelta(days=60)
    # Started again: the valid certificate is kept.
    before = (tmp_path / "tls.key").read_bytes()
    again = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True)
    assert again.returncode == 0 and (tmp_path / "tls.key").read_bytes() == before


# -- a real nginx with TLS in front of a real pdp serve ------------------------------------------


def nginx_config(workdir: Path, upstream: int, plain: int, tls: int) -> Path:
    """deploy/nginx.conf made runnable here: the upstream is the local server, nginx listens on
    127.0.0.2, files in ``workdir``; ``resolve`` (nginx >= 1.27.3, Docker's DNS) left out."""
    text = NGINX.read_text(encoding="utf-8")
    text = re.sub(r"^resolver .*$", "", text, flags=re.M)
    text = re.sub(r"server pdp\d:8000 resolve", f"server 127.0.0.1:{upstream}", text)
    text = text.replace("listen 8000;", f"listen 127.0.0.2:{plain};")
    text = text.replace("listen 8443 ssl;", f"listen 127.0.0.2:{tls} ssl;")
    text = text.replace("/etc/nginx/tls/", f"{workdir}/tls/")
    text = text.replace("/var/log/nginx/access.log", f"{workdir}/access.log")
    (workdir / "default.conf").write_text(text)
    main = workdir / "nginx.conf"
    user = "user root;\n" if os.geteuid() == 0 else ""
    main.write_text(
        f"{user}daemon off;\npid {workdir}/nginx.pid;\nerror_log {workdir}/error.log;\n"
        "events {}\nhttp {\n"
        f"  client_body_temp_path {workdir}/body;\n  proxy_temp_path {workdir}/proxy;\n"
        f"  include {workdir}/default.conf;\n}}\n"
    )
    return main


def test_r_ops_1_behind_a_real_nginx_with_tls_the_rate_limit_counts_each_caller(
    tmp_path: Path,
) -> None:
    """``deploy/nginx.conf`` in front of ``pdp serve``: over TLS, each caller (its own loopback
    address) has its own rate-limit count; what a caller writes in X-Forwarded-For does not
    change it. (nginx from Debian's package; skipped without it.)"""
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None
    )
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light): test skipped")
    url = f"sqlite:///{tmp_path / 'pdp.sqlite3'}"
    env = server_env(
        tmp_path,
        PDP_DATABASE_URL=url,
        PDP_TRUSTED_PROXIES="127.0.0.1/32",
        PDP_RATE_LIMIT="2/minute",
    )
    run_pdp(["db", "upgrade"], env, tmp_path)
    subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "tls" / "self_signed.py"), str(tmp_path / "tls")],
        check=True,
        capture_output=True,
    )
    with running(["serve", "--workers", "1"], env, tmp_path) as server:
        upstream = int(server.base_url.rsplit(":", 1)[1])
        config = nginx_config(tmp_path, upstream, free_port(), tls_port := free_port())
        checked = subprocess.run([nginx, "-t", "-c", str(config)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        proxy = subprocess.Popen([nginx, "-c", str(config)], stderr=subprocess.DEVNULL)
        try:
            context = ssl.create_default_context(cafile=str(tmp_path / "tls" / "tls.crt"))
            context.check_hostname = False  # the certificate names localhost, not 127.0.0.2

            def get(caller: str, forwarded: str | None = None) -> int:
                deadline = time.monotonic() + 10
                while True:
                    try:
                        conn = http.client.HTTPSConnection(
                            "127.0.0.2",
                            tls_port,
                            context=context,
                            timeout=10,
                            source_address=(caller, 0),
                        )
                        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
                        conn.request("GET", "/v1/organisations", headers=headers)
                        status = conn.getresponse().status
                        conn.close()
                        return status
                    except ConnectionRefusedError:  # nginx still starting
                        assert time.monotonic() < deadline, "nginx did not start"
                        time.sleep(0.1)

            # No token: 401 from the view, but the rate limit counts first (per address).
            spoofs = [get("127.0.0.3", f"198.51.100.{n}") for n in range(3)]
            assert spoofs == [401, 401, 429]
            assert get("127.0.0.4") == 401  # another caller behind the same nginx
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)
