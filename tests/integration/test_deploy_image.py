"""The switch image builds (issue 11 item 6). deploy/Dockerfile runs deploy/build-image.sh; where
a Docker engine answers, `docker build` runs on a build context made as an operator makes it
(the official XSDs no wheel ships in deploy/xsd); where none does (the development machines), the
same context is laid out as the Dockerfile's COPY steps say and the same script builds it into a
fresh venv in a temporary directory: a non-editable install, the XSDs fetched and verified, every
XSD the partner profiles name present, the migrations packaged."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.schema_needs import needed_by, profiles_in
from iso20022.schemas import default_shared_dir, load_manifest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
SCRIPT = "deploy/build-image.sh"
build_s_max = 900.0  # a bound on a stuck pip, not a performance goal


@dataclass(frozen=True)
class Step:
    stage: int  # 0: the first FROM
    instruction: str  # COPY, RUN, ...
    args: str


def dockerfile_steps(text: str) -> list[Step]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    steps: list[Step] = []
    stage = -1
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        instruction, _, args = logical.partition(" ")
        logical = ""
        if instruction.upper() == "FROM":
            stage += 1
        steps.append(Step(stage, instruction.upper(), args.strip()))
    return steps


def build_stage_copies(steps: list[Step]) -> list[tuple[str, str]]:
    """(context path, path under the build stage's WORKDIR) of the build stage's COPY steps."""
    pairs: list[tuple[str, str]] = []
    for step in steps:
        if step.stage == 0 and step.instruction == "COPY":
            *sources, dest = step.args.split()
            pairs.extend((source, dest) for source in sources)
    return pairs


def make_context(tmp: Path) -> Path:
    """A build context as an operator makes it: the project's files the Dockerfile copies, and
    deploy/xsd holding the official XSDs no wheel ships (here from the shared folder)."""
    context = tmp / "context"
    for rel in ("pyproject.toml", "README.md", "switch", "adapters", "iso20022", "fx", "config", "deploy"):
        source = ROOT / rel
        if source.is_dir():
            shutil.copytree(source, context / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.xsd"))
        else:
            (context / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, context / rel)
    shared_ids = [e.message_id for e in load_manifest().entries.values() if e.source == "shared"]
    for message_id in shared_ids:
        shutil.copyfile(default_shared_dir() / f"{message_id}.xsd", context / "deploy" / "xsd" / f"{message_id}.xsd")
    return context


def lay_out_build_stage(context: Path, src: Path) -> None:
    """What the build stage's COPY steps put under its WORKDIR (/src), put under `src`."""
    for source, dest in build_stage_copies(dockerfile_steps(DOCKERFILE.read_text(encoding="utf-8"))):
        origin, target = context / source.rstrip("/"), src / dest.rstrip("/")
        if dest in ("./", "."):
            target = src / Path(source).name
        if origin.is_dir():
            shutil.copytree(origin, target, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(origin, target)


def docker_engine() -> tuple[bool, str]:
    """Whether a Docker engine answers, and if not, why."""
    if shutil.which("docker") is None:
        return False, "no docker client on PATH"
    done = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        return False, f"`docker info` exits {done.returncode}: {(done.stderr.strip().splitlines() or [''])[-1]}"
    return True, ""


@dataclass(frozen=True)
class Built:
    src: Path
    venv: Path
    schemas: Path
    output: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The build stage's steps, run by deploy/build-image.sh into a fresh venv."""
    tmp = tmp_path_factory.mktemp("image")
    src, venv, schemas = tmp / "src", tmp / "venv", tmp / "schemas"
    lay_out_build_stage(make_context(tmp), src)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEKONG_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(MEKONG_BUILD_SRC=str(src), MEKONG_BUILD_VENV=str(venv), MEKONG_BUILD_SCHEMA_DIR=str(schemas),
               PYTHON=shutil.which("python3.11") or shutil.which("python3") or "python3")
    done = subprocess.run(["sh", SCRIPT], cwd=src, env=env, capture_output=True, text=True, timeout=build_s_max)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return Built(src, venv, schemas, done.stdout)


def test_the_dockerfile_builds_with_the_one_build_script() -> None:
    steps = dockerfile_steps(DOCKERFILE.read_text(encoding="utf-8"))
    runs = [s.args for s in steps if s.stage == 0 and s.instruction == "RUN"]
    assert len(runs) == 1 and SCRIPT in runs[0], runs
    copies = dict(build_stage_copies(steps))
    assert copies[SCRIPT] == SCRIPT and copies["deploy/xsd/"] == "deploy/xsd/"  # the XSDs are in before the script runs
    final = [s for s in steps if s.stage == 1]
    assert {"/opt/mekong", "/schemas"} <= {s.args.split()[-1] for s in final if s.instruction == "COPY" and "--from=build" in s.args}


def test_the_image_binds_both_ports_to_every_interface() -> None:
    env = " ".join(s.args for s in dockerfile_steps(DOCKERFILE.read_text(encoding="utf-8")) if s.stage == 1 and s.instruction == "ENV")
    assert "MEKONG_HTTP_HOST=0.0.0.0" in env and "MEKONG_OPS_HOST=0.0.0.0" in env


def test_the_build_installs_the_switch_as_a_package_not_editable(built: Built) -> None:
    done = subprocess.run([str(built.venv / "bin" / "python"), "-c", "import switch, iso20022; print(switch.__file__)"],
                          cwd="/", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(built.venv), done.stdout
    assert not list(built.venv.glob("lib/python*/site-packages/__editable__*")), "an editable install"
    assert "database at head" in built.output  # the migrations travelled with the package


def test_the_schema_set_holds_every_xsd_the_profiles_need(built: Built) -> None:
    present = {p.name.removesuffix(".xsd") for p in built.schemas.glob("*.xsd")}
    assert present == set(load_manifest().entries)
    needed = set(needed_by(profiles_in(built.src / "config")))
    assert {"pacs.002.001.10", "camt.056.001.08", "camt.029.001.09", "admi.002.001.01", "head.001.001.02"} <= needed
    assert needed <= present
    assert f"need {len(needed)} XSDs: all in {built.schemas}, verified" in built.output
    verify = subprocess.run([str(built.venv / "bin" / "mekong"), "schemas", "verify", "--dest", str(built.schemas)],
                            capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stderr


def test_the_build_stops_naming_an_official_xsd_missing_from_deploy_xsd(built: Built, tmp_path: Path) -> None:
    xsd = tmp_path / "xsd"
    shutil.copytree(built.src / "deploy" / "xsd", xsd)
    (xsd / "camt.056.001.08.xsd").unlink()
    done = subprocess.run(
        [str(built.venv / "bin" / "mekong"), "schemas", "fetch", "--dest", str(tmp_path / "schemas"), "--shared", str(xsd),
         "--cache", str(tmp_path / "wheels")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode != 0
    assert "camt.056.001.08.xsd" in done.stderr and "missing" in done.stderr and "Traceback" not in done.stderr


def test_docker_build_when_an_engine_answers(tmp_path: Path) -> None:
    answers, why = docker_engine()
    if not answers:
        pytest.skip(f"{why}: the image's steps (deploy/build-image.sh) were built in a fresh venv by the tests above instead")
    context = make_context(tmp_path)
    done = subprocess.run(["docker", "build", "-f", str(context / "deploy" / "Dockerfile"), "-t", "mekong-switch:test", str(context)],
                          capture_output=True, text=True, timeout=build_s_max)
    assert done.returncode == 0, done.stderr[-3000:]
    run = subprocess.run(["docker", "run", "--rm", "mekong-switch:test", "schemas", "verify", "--config-dir", "/etc/mekong/config"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "verified" in run.stdout, run.stderr
