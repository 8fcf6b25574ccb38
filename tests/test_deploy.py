"""deploy/: the image, the `ray up` config and the KubeRay manifests agree
with the Makefile, with the schemas they are read by, with each other and
with the default scenario's sites. Nothing is built, started or fetched."""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml

from orchestrator.cli.run import run as airlock_run
from orchestrator.hosts import site_resource
from orchestrator.scenario import load_scenario
from tests.helpers import ROOT

DEPLOY = ROOT / "deploy"
DEFAULT_SCENARIO: str = inspect.signature(airlock_run).parameters["scenario"].default


def default_sites() -> set[str]:
    scenario, _ = load_scenario(DEFAULT_SCENARIO)
    return {party.site for party in scenario.parties.values()}


def load(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text())


def dockerfile() -> list[tuple[str, str]]:
    """deploy/Dockerfile as (instruction, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    steps = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            steps.append((instruction.upper(), arguments.strip()))
    return steps


def image_tag() -> str:
    """The tag deploy/Dockerfile's header builds it under."""
    built = re.search(
        r"docker build -f deploy/Dockerfile -t (\S+) \.", (DEPLOY / "Dockerfile").read_text()
    )
    assert built, "deploy/Dockerfile's header should say how to build it, with its tag"
    return built[1]


def workdir() -> PurePosixPath:
    return PurePosixPath([arguments for step, arguments in dockerfile() if step == "WORKDIR"][-1])


def site_of(resources: dict[str, Any]) -> str | None:
    """The site a node's resources tag it with (None for none)."""
    prefix = site_resource("")
    sites = [name.removeprefix(prefix) for name in resources if name.startswith(prefix)]
    assert len(sites) <= 1, f"a node tagged with several sites: {sites}"
    return sites[0] if sites else None


def ray_pin() -> str:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (pin,) = [d for d in pyproject["project"]["dependencies"] if d.startswith("ray==")]
    return pin.removeprefix("ray==")


# -- the image ------------------------------------------------------------


def test_the_image_is_rays_pinned_base_with_the_project_installed_by_make() -> None:
    steps = dockerfile()
    assert [arguments for step, arguments in steps if step == "FROM"] == [
        f"rayproject/ray:{ray_pin()}-py311-cpu"
    ]
    runs = [arguments for step, arguments in steps if step == "RUN"]
    assert any(re.search(r"\bmake install\b", run) for run in runs)
    assert not any("pip install" in run for run in runs), (
        "the Makefile's recipe is the only install"
    )
    # Ray workers run the raylet's Python: the venv's, first on PATH for every
    # process and for the shells of `ray up`, which source ~/.bashrc
    venv = re.search(r"^VENV\s*:?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert venv
    bin_dir = workdir() / venv[1] / "bin"
    assert ("ENV", f"PATH={bin_dir}:$PATH") in steps
    assert any(f"export PATH={bin_dir}:$PATH' >> /home/ray/.bashrc" in run for run in runs)
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    # a copied .venv would carry this machine's install stamp, and make would skip the install
    assert {".venv", "runs"} <= set(ignored)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_images_install_is_make_install_less_the_dev_extras() -> None:
    (install,) = [a for step, a in dockerfile() if step == "RUN" and "make install" in a]
    words = shlex.split(install)
    image_args = words[words.index("make") + 1 : words.index("&&")]

    def recipe(*args: str) -> list[str]:
        dry = subprocess.run(["make", "-n", "-B", *args], cwd=ROOT, capture_output=True, text=True)
        assert dry.returncode == 0, dry.stderr
        return dry.stdout.splitlines()

    here = recipe("install")
    pip = ".venv/bin/pip install --progress-bar off --disable-pip-version-check"
    assert f'{pip} -e ".[dev]"' in here
    less_dev = [line.replace('".[dev]"', '"."').replace("Airlock[dev]", "Airlock") for line in here]
    assert recipe(*image_args) == less_dev


# -- ray up ---------------------------------------------------------------


def test_the_ray_cluster_config_is_valid_for_rays_cluster_launcher() -> None:
    package = importlib.util.find_spec("ray")
    assert package and package.submodule_search_locations
    schema_path = Path(package.submodule_search_locations[0]) / "autoscaler" / "ray-schema.json"
    config = load("ray-cluster.yaml")
    jsonschema.validate(config, json.loads(schema_path.read_text()))
    assert config["head_node_type"] in config["available_node_types"]
    assert config["provider"]["type"] == "aws"
    assert config["docker"]["image"] == image_tag()


def test_the_ray_cluster_has_a_node_per_site_and_a_head_without_one() -> None:
    config = load("ray-cluster.yaml")
    types = dict(config["available_node_types"])
    head = types.pop(config["head_node_type"])
    assert site_of(head["resources"]) is None
    assert Counter(site_of(node["resources"]) for node in types.values()) == Counter(
        default_sites()
    )
    assert all(node["min_workers"] == node["max_workers"] == 1 for node in types.values())
    assert config["max_workers"] == len(types)
    # multi-node Ray 2.60 authenticates with a token: in every `ray start`'s
    # environment, read from Ray's default path, where it is copied
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert all("RAY_AUTH_MODE=token ray start" in c for c in starts if "ray start" in c)
    assert "/home/ray/.ray/auth_token" in config["file_mounts"]


# -- KubeRay --------------------------------------------------------------

KUBERAY_FILES = ["kuberay/raycluster.yaml", "kuberay/rayjob.yaml", "kuberay/runs-pvc.yaml"]


@pytest.mark.parametrize("name", KUBERAY_FILES)
def test_the_kuberay_manifests_use_only_fields_their_kinds_have(name: str) -> None:
    schema = json.loads((ROOT / "tests" / "kuberay.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(load(name))


def start_resources(group: dict[str, Any]) -> dict[str, Any]:
    """A group's rayStartParams resources as `ray start` gets them: KubeRay
    puts the value into a shell command line, which unquotes it."""
    value = group.get("rayStartParams", {}).get("resources")
    if value is None:
        return {}
    (word,) = shlex.split(value)
    return dict(json.loads(word))


def test_the_raycluster_has_a_worker_group_per_site_and_a_head_without_one() -> None:
    cluster = load("kuberay/raycluster.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    spec = cluster["spec"]
    assert site_of(start_resources(spec["headGroupSpec"])) is None
    groups = spec["workerGroupSpecs"]
    assert Counter(site_of(start_resources(group)) for group in groups) == Counter(default_sites())
    assert all(g["replicas"] == g["minReplicas"] == g["maxReplicas"] == 1 for g in groups)
    assert spec["authOptions"] == {"mode": "token"}
    assert spec["rayVersion"] == ray_pin()


def test_every_pod_runs_the_image_deploy_dockerfile_builds() -> None:
    spec = load("kuberay/raycluster.yaml")["spec"]
    templates = [spec["headGroupSpec"]["template"]] + [
        g["template"] for g in spec["workerGroupSpecs"]
    ]
    images = [c["image"] for t in templates for c in t["spec"]["containers"]]
    assert len(images) == 1 + len(spec["workerGroupSpecs"])
    assert set(images) == {image_tag()} == {load("ray-cluster.yaml")["docker"]["image"]}


def test_the_rayjob_runs_airlock_on_that_cluster_into_the_runs_volume() -> None:
    cluster, job = load("kuberay/raycluster.yaml"), load("kuberay/rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["spec"]["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:3] == ["airlock", "run", DEFAULT_SCENARIO]
    out = PurePosixPath(argv[argv.index("--out") + 1])
    # the driver runs on the head (it asks for no resources, which would let
    # Ray place it elsewhere): its run directory must lie on the volume
    # mounted there, over the image's runs/
    assert not {"entrypointNumCpus", "entrypointNumGpus", "entrypointResources"} & set(job["spec"])
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]
    (mount,) = [
        m
        for c in head["containers"]
        for m in c.get("volumeMounts", [])
        if out.is_relative_to(m["mountPath"])
    ]
    assert PurePosixPath(mount["mountPath"]) == workdir() / "runs"
    (volume,) = [v for v in head["volumes"] if v["name"] == mount["name"]]
    pvc = load("kuberay/runs-pvc.yaml")
    assert pvc["kind"] == "PersistentVolumeClaim"
    assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


# -- the README -----------------------------------------------------------


def test_deploy_readme_names_every_file() -> None:
    readme = (DEPLOY / "README.md").read_text()
    files = [p.relative_to(DEPLOY).as_posix() for p in DEPLOY.rglob("*") if p.is_file()]
    unnamed = [
        f for f in files if "__pycache__" not in f and f != "README.md" and f"`{f}`" not in readme
    ]
    assert not unnamed, f"deploy/README.md does not name: {unnamed}"
