"""Every environment variable the settings classes read, with its default and meaning, found from the
classes themselves (env prefix, field names, validation aliases), never from a hand-kept list.

`python -m tests.deploy.settings_env` prints a complete .env.example (every line commented out, so a
copied .env changes nothing until a line is uncommented)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, AliasPath, SecretStr
from pydantic_settings import BaseSettings

from contract.kafka import KafkaSecurity
from devicestream.settings import LauncherSettings
from services.gateway.settings import GatewaySettings
from services.generator.settings import GeneratorSettings
from services.merger.settings import MergerSettings
from spark_job.settings import SparkJobSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = REPO_ROOT / ".env.example"

#: (section title, class), in pipeline order; the shared names come first under their own title.
SETTINGS_CLASSES: tuple[tuple[str, type[BaseSettings]], ...] = (
    ("Spark job (spark_job/settings.py)", SparkJobSettings),
    ("Merger (services/merger/settings.py)", MergerSettings),
    ("Generator (services/generator/settings.py)", GeneratorSettings),
    ("Gateway (services/gateway/settings.py)", GatewaySettings),
    ("Launcher: devicestream up (devicestream/settings.py)", LauncherSettings),
)

#: Variables compose.yaml interpolates that no settings class reads: they shape the containers.
COMPOSE_ONLY: dict[str, tuple[str, str]] = {
    "GATEWAY_PUBLISH_ADDRESS": ("127.0.0.1", "Host address the gateway's port is published on (0.0.0.0: every one)."),
    "GATEWAY_PUBLISHED_PORT": ("8000", "Host port the gateway is published on."),
    "KAFKA_HEAP_OPTS": ("-Xms512m -Xmx512m", "JVM heap of the Kafka container."),
    "KAFKA_CLUSTER_ID": ("ZGV2aWNlc3RyZWFtMDAwMQ", "KRaft cluster id the Kafka container formats its volume with."),
    "PROMETHEUS_PUBLISH_ADDRESS": ("127.0.0.1", "Host address Prometheus's UI and API are published on."),
    "PROMETHEUS_PUBLISHED_PORT": ("9090", "Host port Prometheus's UI and API are published on."),
}


@dataclass(frozen=True)
class EnvVar:
    name: str  # canonical (upper-case) name
    names: tuple[str, ...]  # every name the field is read under, upper-case
    owner: str  # class name
    field: str
    default: Any
    description: str


def env_names(cls: type[BaseSettings], field: str) -> tuple[str, ...]:
    """The names pydantic-settings reads `field` of `cls` from: the validation alias choices when there
    are any, else env_prefix + field name (matched case-insensitively, so given upper-case)."""
    info = cls.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        # Upper-case choices are the env names; the lower-case ones are there for keyword arguments.
        names = [c for c in alias.choices if isinstance(c, str) and c == c.upper()]
    elif isinstance(alias, str):
        names = [alias]
    elif isinstance(alias, AliasPath):
        names = [str(alias.path[0])]
    else:
        names = [f"{cls.model_config.get('env_prefix', '')}{field}"]
    return tuple(dict.fromkeys(n.upper() for n in names))


def settings_env_vars() -> dict[str, EnvVar]:
    """Canonical name -> EnvVar, for every field of every settings class (first class wins a name)."""
    out: dict[str, EnvVar] = {}
    for _, cls in SETTINGS_CLASSES:
        for field, info in cls.model_fields.items():
            names = env_names(cls, field)
            if names[0] in out:
                continue
            default = info.get_default(call_default_factory=True)
            out[names[0]] = EnvVar(names[0], names, cls.__name__, field, default, info.description or "")
    return out


def every_accepted_name() -> set[str]:
    return {n for v in settings_env_vars().values() for n in v.names}


def render_default(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):
        return json.dumps(value) if value else ""
    return str(value)


def render_env_example() -> str:
    """The complete .env.example, grouped by class, each variable commented out at its default."""
    vars_ = settings_env_vars()
    lines = [
        "# devicestream settings: every variable any component or the launcher reads, at its default.",
        "# Copy to .env and uncomment what you change. The components read .env from the folder they",
        "# start in, `devicestream up` passes it on, and compose.yaml hands it to every container",
        "# (apart from the few names compose.yaml sets itself for the container network, noted there).",
        "# Generated from the settings classes: python -m tests.deploy.settings_env > .env.example",
        "",
    ]
    shared_fields = ("data_dir", "kafka_bootstrap_servers", "topic", "internal_secret", *KafkaSecurity.model_fields)
    shared = [v for v in vars_.values() if v.field in shared_fields]
    sections: list[tuple[str, list[EnvVar]]] = [("Shared by every component (contract/settings.py)", shared)]
    for title, cls in SETTINGS_CLASSES:
        sections.append((title, [v for v in vars_.values() if v.owner == cls.__name__ and v not in shared]))
    for title, items in sections:
        lines += [f"# ---- {title} " + "-" * max(4, 96 - len(title)), ""]
        for v in items:
            lines.append(f"# {v.description or v.field.replace('_', ' ')}")
            lines.append(f"# {v.name}={render_default(v.default)}")
        lines.append("")
    lines += ["# ---- compose.yaml only (the containers, not the components) " + "-" * 38, ""]
    for name, (default, desc) in COMPOSE_ONLY.items():
        lines += [f"# {desc}", f"# {name}={default}"]
    return "\n".join(lines) + "\n"


_ENV_LINE = re.compile(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=")


def env_example_names(path: Path = ENV_EXAMPLE) -> set[str]:
    """Names .env.example lists, commented out or not."""
    return {m.group(1) for line in path.read_text().splitlines() if (m := _ENV_LINE.match(line))}


if __name__ == "__main__":
    print(render_env_example(), end="")
