"""Docker's credential lookup order, credential helpers, and secrets kept out of sight."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from imagevet.errors import CredentialsError
from imagevet.registry import (
    ChainCredentials,
    Credential,
    DockerConfigCredentials,
    StaticCredentials,
)

HUB_KEY = "https://index.docker.io/v1/"


def b64(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def write_config(directory: Path, config: dict[str, object]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


HELPER = """#!/bin/sh
# fake docker-credential-test: records what it was asked, answers from $FAKE_HELPER_ANSWERS
read server
echo "$server" >> "$FAKE_HELPER_LOG"
case "$server" in
  *nothing*) echo "credentials not found in native keychain"; exit 1 ;;
  *broken*) echo "exploded" >&2; exit 3 ;;
  *leaky*) printf '{"Username":"u","Secret":"leaky-s3cret"}\033[2J'; exit 4 ;;
  *slow*) sleep 5 ;;
  *token*) printf '{"ServerURL":"%s","Username":"<token>","Secret":"helper-refresh-s3cret"}' "$server" ;;
  *) printf '{"ServerURL":"%s","Username":"helper-user","Secret":"helper-pw-s3cret"}' "$server" ;;
esac
"""


@pytest.fixture
def helper_env(tmp_path: Path) -> dict[str, str]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "docker-credential-test"
    script.write_text(HELPER)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {
        "PATH": f"{bindir}:/usr/bin:/bin",
        "FAKE_HELPER_LOG": str(tmp_path / "helper.log"),
        "DOCKER_CONFIG": str(tmp_path / "dc"),
    }


async def test_auths_base64_and_lookup_keys(tmp_path: Path) -> None:
    write_config(
        tmp_path / "dc",
        {
            "auths": {
                HUB_KEY: {"auth": b64("hubuser", "hub-pw-s3cret")},
                "registry.example": {"auth": b64("alice", "pa:ss:word")},
                "https://legacy.example:5000/v1/": {"auth": b64("old", "old-pw")},
                "idt.example": {"auth": b64("bob", ""), "identitytoken": "idt-s3cret"},
            }
        },
    )
    store = DockerConfigCredentials(env={"DOCKER_CONFIG": str(tmp_path / "dc")}, home=tmp_path)
    assert await store.get("docker.io") == Credential("hubuser", "hub-pw-s3cret")
    assert await store.get("index.docker.io") == Credential("hubuser", "hub-pw-s3cret")
    assert await store.get("registry.example") == Credential("alice", "pa:ss:word")
    assert await store.get("legacy.example:5000") == Credential("old", "old-pw")
    assert await store.get("idt.example") == Credential("bob", identity_token="idt-s3cret")
    assert await store.get("other.example") is None


async def test_home_config_when_no_docker_config(tmp_path: Path) -> None:
    write_config(tmp_path / ".docker", {"auths": {"r.example": {"auth": b64("u", "p")}}})
    store = DockerConfigCredentials(env={}, home=tmp_path)
    assert await store.get("r.example") == Credential("u", "p")
    assert await DockerConfigCredentials(env={}, home=tmp_path / "none").get("r.example") is None


async def test_docker_auth_config_wins(tmp_path: Path) -> None:
    write_config(tmp_path / "dc", {"auths": {"r.example": {"auth": b64("file", "file-pw")}}})
    env = {
        "DOCKER_CONFIG": str(tmp_path / "dc"),
        "DOCKER_AUTH_CONFIG": json.dumps({"auths": {"r.example": {"auth": b64("env", "env-pw")}}}),
    }
    store = DockerConfigCredentials(env=env, home=tmp_path)
    assert await store.get("r.example") == Credential("env", "env-pw")


async def test_cred_helper_then_store_then_auths(
    tmp_path: Path, helper_env: dict[str, str]
) -> None:
    write_config(
        tmp_path / "dc",
        {
            "credHelpers": {"helped.example": "test", "nothing.example": "test"},
            "auths": {
                "helped.example": {"auth": b64("file", "file-pw")},
                "nothing.example": {"auth": b64("file", "file-pw")},
            },
        },
    )
    store = DockerConfigCredentials(env=helper_env, home=tmp_path)
    assert await store.get("helped.example") == Credential("helper-user", "helper-pw-s3cret")
    # a helper named for the host is authoritative: its "not found" is not a fallback to auths
    assert await store.get("nothing.example") is None
    asked = Path(helper_env["FAKE_HELPER_LOG"]).read_text().split()
    assert asked == ["helped.example", "nothing.example"]
    # cached: the helper is not run again
    assert await store.get("helped.example") == Credential("helper-user", "helper-pw-s3cret")
    assert len(Path(helper_env["FAKE_HELPER_LOG"]).read_text().split()) == 2


async def test_creds_store_for_hub_and_identity_token(
    tmp_path: Path, helper_env: dict[str, str]
) -> None:
    write_config(
        tmp_path / "dc",
        {"credsStore": "test", "auths": {"nothing.example": {"auth": b64("file", "file-pw")}}},
    )
    store = DockerConfigCredentials(env=helper_env, home=tmp_path)
    assert await store.get("docker.io") == Credential("helper-user", "helper-pw-s3cret")
    assert Path(helper_env["FAKE_HELPER_LOG"]).read_text().split() == [HUB_KEY]
    # Username "<token>": the secret is an identity token
    assert await store.get("token.example") == Credential(identity_token="helper-refresh-s3cret")
    # the store has nothing: fall back to auths
    assert await store.get("nothing.example") == Credential("file", "file-pw")


async def test_helper_failures_are_credentials_errors(
    tmp_path: Path, helper_env: dict[str, str]
) -> None:
    write_config(
        tmp_path / "dc",
        {"credHelpers": {"broken.example": "test", "slow.example": "test", "x.example": "absent"}},
    )
    store = DockerConfigCredentials(env=helper_env, home=tmp_path, helper_timeout=0.5)
    with pytest.raises(CredentialsError, match="exit 3"):
        await store.get("broken.example")
    with pytest.raises(CredentialsError, match="did not answer within"):
        await store.get("slow.example")
    with pytest.raises(CredentialsError, match="docker-credential-absent is not on PATH"):
        await store.get("x.example")


async def test_failing_helper_output_keeps_no_secret_nor_escape(
    tmp_path: Path, helper_env: dict[str, str]
) -> None:
    write_config(tmp_path / "dc", {"credHelpers": {"leaky.example": "test"}})
    store = DockerConfigCredentials(env=helper_env, home=tmp_path)
    with pytest.raises(CredentialsError, match="exit 4") as info:
        await store.get("leaky.example")
    assert "leaky-s3cret" not in str(info.value)
    assert "\x1b" not in str(info.value)


async def test_bad_config_files(tmp_path: Path) -> None:
    (tmp_path / "dc").mkdir()
    (tmp_path / "dc" / "config.json").write_text("{not json")
    with pytest.raises(CredentialsError, match="not valid JSON"):
        await DockerConfigCredentials(
            env={"DOCKER_CONFIG": str(tmp_path / "dc")}, home=tmp_path
        ).get("r.example")
    write_config(tmp_path / "d2", {"auths": {"r.example": {"auth": "!!!notbase64-s3cret"}}})
    with pytest.raises(CredentialsError) as info:
        await DockerConfigCredentials(
            env={"DOCKER_CONFIG": str(tmp_path / "d2")}, home=tmp_path
        ).get("r.example")
    assert "s3cret" not in str(info.value)


async def test_static_and_chain() -> None:
    static = StaticCredentials({"index.docker.io": Credential("ci", "ci-pw")})
    assert await static.get("docker.io") == Credential("ci", "ci-pw")
    other = StaticCredentials({"r.example": Credential("r", "r-pw")})
    chain = ChainCredentials(static, other)
    assert await chain.get("r.example") == Credential("r", "r-pw")
    assert await chain.get("none.example") is None


def test_secrets_never_printed() -> None:
    cred = Credential("alice", "pw-s3cret", identity_token="idt-s3cret")
    for text in (repr(cred), str(cred), f"{cred}", f"{cred!r}", repr([cred])):
        assert "s3cret" not in text
        assert "alice" in text
    assert "***" in repr(cred)
    assert "s3cret" not in repr(StaticCredentials({"r": cred}))


def test_store_reads_no_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path / "env-dc", {"auths": {"r.example": {"auth": b64("u", "p")}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "env-dc"))
    store = DockerConfigCredentials(env={}, home=tmp_path / "home")
    assert store.config_path == tmp_path / "home" / ".docker" / "config.json"
    assert os.environ["DOCKER_CONFIG"] != str(store.config_path.parent)
