"""`.ci/check-deploy` on broken copies of deploy/ and of the cluster's nginx.conf.

Each case breaks one rule of the deployment's doors in a copy and expects
check-deploy to fail naming it; the files as they are pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.tools.cluster import ClusterConfig, nginx_config

ROOT = Path(__file__).resolve().parents[2]


CheckResult = subprocess.CompletedProcess[str]


def check(deploy: Path, cluster_nginx: Path | None = None) -> CheckResult:
    env = dict(os.environ, DEPLOY_DIR=str(deploy))
    if cluster_nginx is not None:
        env["CLUSTER_NGINX"] = str(cluster_nginx)
    return subprocess.run(
        [str(ROOT / ".ci" / "check-deploy")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    copy = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", copy)
    return copy


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not once in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_the_deployment_files_pass(deploy: Path) -> None:
    result = check(deploy)
    assert result.returncode == 0, result.stderr
    assert "the doors: consistent" in result.stdout


PUBLIC_API = """  location / {
    return 404;
  }
}

server {
  listen 8081;"""

BROKEN: dict[str, tuple[str, str, str, str]] = {
    # name: (file, what, replaced by, the failure expected)
    "the HTTP API on the public port": (
        "nginx.compose.conf",
        PUBLIC_API,
        PUBLIC_API.replace("return 404;", "proxy_pass http://rasa;"),
        "is public: its location / must only return 404",
    ),
    "another public location": (
        "nginx.compose.conf",
        "  location /socket.io/ {",
        "  location /conversations/ {\n    proxy_pass http://rasa;\n  }\n\n"
        "  location /socket.io/ {",
        "is public and serves location /conversations/",
    ),
    "a log format with the query string": (
        "nginx.compose.conf",
        "$request_method $uri $status",
        "$request_uri $status",
        "writes $request_uri",
    ),
    "a log format with the request line": (
        "nginx.compose.conf",
        "$request_method $uri $status",
        '"$request" $status',
        "writes $request:",
    ),
    "a server without its own access_log": (
        "nginx.compose.conf",
        "  listen 8082;\n  access_log /var/log/nginx/access.log bank;\n",
        "  listen 8082;\n",
        "server on [8082] has no access_log of its own",
    ),
    "nginx's default log format": (
        "nginx.compose.conf",
        "  listen 8081;\n  access_log /var/log/nginx/access.log bank;\n",
        "  listen 8081;\n  access_log /var/log/nginx/access.log;\n",
        "uses the format 'combined'",
    ),
    "the Rasa API port published": (
        "compose.yml",
        '      - "${CONSOLE_BIND:-127.0.0.1}:${CONSOLE_PORT:-8081}:8081"\n',
        '      - "${CONSOLE_BIND:-127.0.0.1}:${CONSOLE_PORT:-8081}:8081"\n'
        '      - "127.0.0.1:8083:8083"\n',
        "publishes [8080, 8081, 8083], not [8080, 8081]",
    ),
    "the console through the public door": (
        "compose.yml",
        "RASA_URL: http://nginx:8083",
        "RASA_URL: http://nginx:8080",
        "console: RASA_URL goes through the public door (nginx:8080)",
    ),
    "the console without the JWT secret": (
        "compose.yml",
        "      RASA_JWT_SECRET: ${RASA_JWT_SECRET:?set RASA_JWT_SECRET}\n",
        "",
        "console: calls Rasa without RASA_JWT_SECRET",
    ),
    "rasa with --auth-token in compose": (
        "compose.yml",
        "      - --jwt-secret\n      - ${RASA_JWT_SECRET:?set RASA_JWT_SECRET}\n",
        "      - --auth-token\n      - ${RASA_JWT_SECRET:?set RASA_JWT_SECRET}\n",
        "compose.yml rasa: Rasa takes --auth-token",
    ),
    "rasa with --auth-token in the image": (
        "Dockerfile",
        "--jwt-secret \\",
        "--auth-token \\",
        "Dockerfile CMD: Rasa takes --auth-token",
    ),
    "rasa with --auth-token in Helm": (
        "helm/rasa-values.yml",
        "  - --jwt-secret\n",
        "  - --auth-token\n",
        "rasa-values.yml args: Rasa takes --auth-token",
    ),
    "another JWT method": (
        "helm/rasa-values.yml",
        "  - --jwt-method\n  - HS256\n",
        "  - --jwt-method\n  - HS512\n",
        "rasa-values.yml args: Rasa does not take --jwt-method HS256",
    ),
    "the ingress on /": (
        "helm/rasa-values.yml",
        "  path: /(webhooks|socket\\.io)/\n",
        "  path: /\n",
        "the ingress passes /conversations/x/tracker to Rasa",
    ),
    "an ingress regex without its anchor": (
        "helm/rasa-values.yml",
        "  path: /(webhooks|socket\\.io)/\n",
        "  path: /(webhooks|socket\\.io|.*)/\n",
        "the ingress passes /model/parse to Rasa",
    ),
    "a token in a URL": (
        "compose.yml",
        "      CONSOLE_SECURE_COOKIES: ${CONSOLE_SECURE_COOKIES:-0}\n",
        "      CONSOLE_SECURE_COOKIES: ${CONSOLE_SECURE_COOKIES:-0}\n"
        "      HEALTH_URL: http://nginx:8083/status?token=x\n",
        "console: HEALTH_URL carries a token in a URL",
    ),
    "a daily job run twice at once": (
        "k8s/daily-jobs.yml",
        '  schedule: "30 3 * * *"\n  timeZone: Asia/Shanghai\n  concurrencyPolicy: Forbid\n',
        '  schedule: "30 3 * * *"\n  timeZone: Asia/Shanghai\n  concurrencyPolicy: Allow\n',
        "bank-retention-purge: concurrencyPolicy must be Forbid",
    ),
    "a daily job on the machine's time zone": (
        "k8s/daily-jobs.yml",
        '  schedule: "30 3 * * *"\n  timeZone: Asia/Shanghai\n',
        '  schedule: "30 3 * * *"\n',
        "bank-retention-purge: timeZone must be Asia/Shanghai",
    ),
    "a daily job on an old image": (
        "k8s/daily-jobs.yml",
        "purge\n              image: registry.example.com/bank/debt-assistant:0.1.0",
        "purge\n              image: registry.example.com/bank/debt-assistant:0.0.9",
        "image 'registry.example.com/bank/debt-assistant:0.0.9' is not the Helm values'",
    ),
    "a daily job of a module that does not exist": (
        "k8s/daily-jobs.yml",
        '"bot.store.retention", "purge"',
        '"bot.retention", "purge"',
        "bot.retention is not a module of the project",
    ),
    "a database password written in a daily job": (
        "k8s/daily-jobs.yml",
        "                - name: TRACKER_DB_URL\n"
        "                  valueFrom:\n"
        "                    secretKeyRef: {name: debt-assistant, key: TRACKER_DB_URL}\n",
        "                - name: TRACKER_DB_URL\n"
        "                  value: postgresql://bank:secret@postgres/bank\n",
        "TRACKER_DB_URL is written in the file, not read from the Secret",
    ),
}


@pytest.fixture(scope="module")
def broken_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CheckResult]:
    """check-deploy on one broken copy per case, run a few at a time."""

    def run(case: str) -> CheckResult:
        copy = tmp_path_factory.mktemp("broken") / "deploy"
        shutil.copytree(ROOT / "deploy", copy)
        filename, old, new, _ = BROKEN[case]
        edit(copy / filename, old, new)
        return check(copy)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(BROKEN, pool.map(run, BROKEN), strict=True))


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_door_fails(broken_runs: dict[str, CheckResult], case: str) -> None:
    result = broken_runs[case]
    assert result.returncode == 1, result.stdout
    assert BROKEN[case][3] in result.stderr, result.stderr


def cluster_conf(tmp_path: Path) -> tuple[Path, str]:
    run_dir = tmp_path / "cluster"
    (run_dir / "log").mkdir(parents=True)
    (run_dir / "nginx-temp").mkdir()
    return run_dir / "nginx.conf", nginx_config(ClusterConfig(run_dir=run_dir, env={}))


def test_the_cluster_nginx_conf_passes_as_written(tmp_path: Path) -> None:
    path, text = cluster_conf(tmp_path)
    path.write_text(text, encoding="utf-8")
    result = check(ROOT / "deploy", path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("location /webhooks/ {", "location /conversations/ {", "serves location /conversations/"),
        ("$request_method $uri $status", "$request $status", "writes $request:"),
        ("listen 127.0.0.1:8083;", "listen 8083;", "listens on *:8083, not on loopback"),
    ],
)
def test_a_broken_cluster_nginx_conf_fails(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    path, text = cluster_conf(tmp_path)
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")
    result = check(ROOT / "deploy", path)
    assert result.returncode == 1
    assert expected in result.stderr, result.stderr
