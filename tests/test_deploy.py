"""Static checks of deploy/: Dockerfile, Ray cluster launcher config, KubeRay manifests.

No cloud, Docker daemon or Kubernetes cluster is needed. The cluster launcher config
is validated against the JSON schema shipped inside the installed ray package and
run through the same local preparation `ray up` does before calling the cloud; the
KubeRay manifests are checked for the fields the operator requires and for the
wiring between them (Secrets, Service, volumes) that only fails at deploy time.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import ray
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
KUBERAY = DEPLOY / "kuberay"
ENTRYPOINT_CONFIG = "configs/connect_four_cluster.yaml"


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _pinned_spec(package: str) -> SpecifierSet:
    for dep in _pyproject()["project"]["dependencies"]:
        match = re.match(rf"^{re.escape(package)}(\[[^\]]*\])?\s*(.*)$", dep)
        if match:
            return SpecifierSet(match.group(2))
    raise AssertionError(f"{package} is not a dependency in pyproject.toml")


# --- Dockerfile ------------------------------------------------------------------


def _dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def _dockerfile_arg(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", _dockerfile(), re.MULTILINE)
    assert match, f"deploy/Dockerfile has no default for ARG {name}"
    return match.group(1)


def test_dockerfile_base_image_matches_pinned_ray_and_python():
    ray_version = _dockerfile_arg("RAY_VERSION")
    # Nodes refuse to join a head running another Ray version: image and pin must agree.
    assert Version(ray_version) in _pinned_spec("ray"), (ray_version, _pinned_spec("ray"))
    assert _dockerfile_arg("PYTHON_TAG") == "py311"
    assert re.search(
        r"^FROM rayproject/ray:\$\{RAY_VERSION\}-\$\{PYTHON_TAG\}-\$\{VARIANT\}$",
        _dockerfile(),
        re.MULTILINE,
    )


def test_dockerfile_torch_satisfies_project_constraint():
    assert Version(_dockerfile_arg("TORCH_VERSION")) in _pinned_spec("torch")


def test_dockerfile_copies_every_package_and_installs_project():
    text = _dockerfile()
    patterns = _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = sorted({p.rstrip("*").split(".")[0] for p in patterns})
    for package in packages + ["configs"]:
        assert re.search(rf"^COPY .*\b{package} \./{package}$", text, re.MULTILINE), package
    # torch is installed before the project so the variant's wheel is the one kept.
    assert text.index("torch==${TORCH_VERSION}") < text.index('pip install --no-cache-dir ".[s3]"')  # s3: checkpoint.uri
    assert "s3" in _pyproject()["project"]["optional-dependencies"]


def test_dockerignore_keeps_venv_git_and_runs_out_of_the_context():
    lines = {line.strip() for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()}
    assert {".venv", ".git", "runs"} <= lines


# --- Ray cluster launcher config -------------------------------------------------


@pytest.fixture(scope="module")
def cluster_config() -> dict:
    return yaml.safe_load((DEPLOY / "ray-cluster.yaml").read_text())


@pytest.fixture(scope="module")
def ray_schema() -> dict:
    path = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"
    return json.loads(path.read_text())


def test_cluster_config_matches_ray_schema(cluster_config, ray_schema):
    jsonschema.validate(cluster_config, ray_schema)


def test_ray_schema_is_strict_enough_to_catch_mistakes(cluster_config, ray_schema):
    # Guards the test above against a schema that would accept anything.
    broken = copy.deepcopy(cluster_config)
    broken["available_node_types"]["learner_gpu"]["resources"]["GPU"] = "1"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, ray_schema)
    broken = copy.deepcopy(cluster_config)
    broken["available_node_types"]["rollout_cpu"]["min_worker"] = 1  # typo
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, ray_schema)


def test_cluster_config_survives_ray_up_local_preparation(cluster_config):
    # What `ray up` does locally before any cloud call: fill defaults, then validate.
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(cluster_config))
    validate_config(prepared)
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_cluster_node_types(cluster_config):
    types = cluster_config["available_node_types"]
    gpu_types = [name for name, t in types.items() if t["resources"].get("GPU", 0) > 0]
    assert gpu_types == ["learner_gpu"]
    assert types["learner_gpu"]["resources"]["GPU"] == 1
    # The head hosts Redis and the job driver; rollouts must not be scheduled there.
    assert types[cluster_config["head_node_type"]]["resources"].get("CPU") == 0
    assert types["rollout_cpu"]["resources"]["CPU"] > 0
    workers = [t for n, t in types.items() if n != cluster_config["head_node_type"]]
    assert sum(t["max_workers"] for t in workers) <= cluster_config["max_workers"]
    assert all(t.get("min_workers", 0) <= t["max_workers"] for t in workers)


def test_gpu_node_uses_gpu_image(cluster_config):
    docker = cluster_config["docker"]
    gpu_image = cluster_config["available_node_types"]["learner_gpu"]["docker"]["worker_image"]
    assert gpu_image.endswith("-gpu") and docker["worker_image"].endswith("-cpu")
    assert docker["head_image"].endswith("-cpu")


def test_cluster_auth_and_redis_wiring(cluster_config):
    text = (DEPLOY / "ray-cluster.yaml").read_text()
    assert "--env RAY_AUTH_MODE=token" in cluster_config["docker"]["run_options"]
    assert cluster_config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    redis_cmd = " ".join(cluster_config["head_setup_commands"])
    redis_port = int(re.search(r"redis-server - --port (\d+)", redis_cmd).group(1))
    gcs_port = int(re.search(r"--port=(\d+)", " ".join(cluster_config["head_start_ray_commands"])).group(1))
    assert redis_port != gcs_port  # both would bind on the head node
    assert "--appendonly yes" in redis_cmd
    # The password reaches redis-server on stdin and redis-cli in its environment, never as an
    # argument (readable by every user of the machine).
    assert """printf 'requirepass "%s"\\n' "$(sed 's/[\\\\"]/\\\\&/g' ~/.selfplay/redis_password)" | redis-server - """ in redis_cmd
    assert 'REDISCLI_AUTH="$(cat ~/.selfplay/redis_password)" redis-cli' in redis_cmd
    assert "--requirepass" not in redis_cmd and " -a " not in redis_cmd
    assert "~/.selfplay/redis_password" in cluster_config["file_mounts"]
    # Secrets are referenced, never written into the config.
    assert "RAY_AUTH_TOKEN=" not in text and "redis://:" not in text


# --- KubeRay manifests -----------------------------------------------------------


def _kuberay_docs() -> list[dict]:
    docs = []
    for path in sorted(KUBERAY.rglob("*.y*ml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def _one(kind: str) -> dict:
    found = [d for d in _kuberay_docs() if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _secret_data(name: str) -> dict[str, str]:
    secrets = {d["metadata"]["name"]: d for d in _kuberay_docs() if d["kind"] == "Secret"}
    assert name in secrets, f"no example Secret named {name}"
    return secrets[name]["stringData"]


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def _secret_ref(container: dict, var: str) -> tuple[str, str]:
    entry = _env(container).get(var)
    assert entry, f"container {container['name']} lacks {var}"
    ref = entry["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


def test_every_kuberay_file_parses_and_has_kind():
    paths = sorted(KUBERAY.rglob("*.y*ml"))
    assert {p.name for p in paths} >= {"rayjob.yaml", "redis.yaml", "secrets.example.yaml"}
    for doc in _kuberay_docs():
        assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name")


def test_example_secrets_are_not_applied_with_the_directory():
    # `kubectl apply -f deploy/kuberay/` is not recursive: placeholder secrets stay out.
    top_level = [d for p in KUBERAY.glob("*.y*ml") for d in yaml.safe_load_all(p.read_text()) if d]
    assert all(d["kind"] != "Secret" for d in top_level)


def test_rayjob_required_fields():
    job = _one("RayJob")
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    assert spec["entrypoint"].startswith(f"selfplay train --config {ENTRYPOINT_CONFIG} ")
    cluster = spec["rayClusterSpec"]
    assert Version(cluster["rayVersion"]) in _pinned_spec("ray")
    head = cluster["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict)
    assert head["template"]["spec"]["containers"][0]["image"]
    groups = cluster["workerGroupSpecs"]
    assert len({g["groupName"] for g in groups}) == len(groups)
    for group in groups:
        assert isinstance(group["rayStartParams"], dict), group["groupName"]
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], group["groupName"]
        assert group["template"]["spec"]["containers"][0]["image"], group["groupName"]


def test_rayjob_retries_and_each_attempt_continues_the_run():
    """A retried attempt runs on a new Ray cluster: it must name the same run, find its checkpoints
    off the cluster and continue (--resume auto), as the real CLI parses the entrypoint."""
    import shlex

    from cluster.config import load_config
    from cluster.run.cli import build_parser

    spec = _one("RayJob")["spec"]
    assert spec["backoffLimit"] >= 1
    args = build_parser().parse_args(shlex.split(spec["entrypoint"])[1:])
    assert args.resume == "auto" and args.run_dir.startswith("/")
    cfg = load_config(REPO / args.config, args.set)
    assert cfg.checkpoint.uri.startswith("s3://")
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "selfplay-s3", "optional": True}} in head["envFrom"]  # the driver writes the checkpoints
    secrets = {d["metadata"]["name"]: d for d in yaml.safe_load_all((KUBERAY / "examples" / "secrets.example.yaml").read_text()) if d}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(secrets["selfplay-s3"]["stringData"])


def test_rayjob_gpu_learner_and_cpu_rollout_groups():
    groups = {g["groupName"]: g for g in _one("RayJob")["spec"]["rayClusterSpec"]["workerGroupSpecs"]}

    def gpus(group):
        resources = group["template"]["spec"]["containers"][0]["resources"]
        return int(resources.get("limits", {}).get("nvidia.com/gpu", 0))

    assert {name for name, g in groups.items() if gpus(g) > 0} == {"learner-gpu"}
    assert gpus(groups["learner-gpu"]) == 1
    assert groups["learner-gpu"]["template"]["spec"]["containers"][0]["image"].endswith("-gpu")
    assert gpus(groups["rollout-cpu"]) == 0
    assert groups["rollout-cpu"]["maxReplicas"] > groups["rollout-cpu"]["minReplicas"]


def _ray_containers() -> dict[str, dict]:
    spec = _one("RayJob")["spec"]
    cluster = spec["rayClusterSpec"]
    containers = {"head": cluster["headGroupSpec"]["template"]["spec"]["containers"][0]}
    for group in cluster["workerGroupSpecs"]:
        containers[group["groupName"]] = group["template"]["spec"]["containers"][0]
    containers["submitter"] = spec["submitterPodTemplate"]["spec"]["containers"][0]
    return containers


def test_rayjob_token_auth_everywhere_including_submitter():
    for role, container in _ray_containers().items():
        assert _env(container)["RAY_AUTH_MODE"]["value"] == "token", role
        name, key = _secret_ref(container, "RAY_AUTH_TOKEN")
        assert key in _secret_data(name), role


def test_rayjob_redis_url_comes_from_secret_pointing_at_redis_service():
    service = _one("Service")
    port = service["spec"]["ports"][0]["port"]
    for role, container in _ray_containers().items():
        if role == "submitter":
            continue  # only submits; never talks to Redis
        name, key = _secret_ref(container, "REDIS_URL")
        url = urlsplit(_secret_data(name)[key])
        assert url.scheme in ("redis", "rediss"), role
        assert (url.hostname, url.port) == (service["metadata"]["name"], port), role
        # Relative --config paths resolve against the image's project directory.
        assert container["workingDir"] == "/home/ray/selfplay", role


def test_redis_url_and_password_in_example_secret_agree():
    data = _secret_data("selfplay-redis")
    assert urlsplit(data["url"]).password == data["password"]


def _bytes(size: str) -> int:
    """'2gb' (redis.conf: kb, mb, gb are powers of 1024) or '4Gi' (Kubernetes) in bytes."""
    units = {"kb": 1024, "mb": 1024**2, "gb": 1024**3, "ki": 1024, "mi": 1024**2, "gi": 1024**3}
    number, unit = size[:-2], size[-2:].lower()
    return int(float(number) * units[unit])


def test_redis_statefulset_password_persistence_and_service():
    sts = _one("StatefulSet")
    pod = sts["spec"]["template"]
    container = pod["spec"]["containers"][0]
    name, key = _secret_ref(container, "REDIS_PASSWORD")
    assert key in _secret_data(name)
    args = container["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--dir") + 1] == "/data"
    # maxmemory below the container's limit (else the kernel kills Redis before it refuses a write),
    # and a policy that never evicts a run's keys (cluster/stores/redis_memory.py refuses others)
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert _bytes(args[args.index("--maxmemory") + 1]) < _bytes(container["resources"]["limits"]["memory"])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claims = {c["metadata"]["name"]: c for c in sts["spec"]["volumeClaimTemplates"]}
    assert mounts["/data"] in claims
    assert claims[mounts["/data"]]["spec"]["resources"]["requests"]["storage"]
    service = _one("Service")
    assert sts["spec"]["serviceName"] == service["metadata"]["name"]
    labels = pod["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    port_names = {p["name"] for p in container["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in port_names


def test_entrypoint_config_exists_in_repo():
    if not (REPO / ENTRYPOINT_CONFIG).exists():
        pytest.skip(f"{ENTRYPOINT_CONFIG} not written yet; the RayJob and docs refer to it")
    assert yaml.safe_load((REPO / ENTRYPOINT_CONFIG).read_text())
