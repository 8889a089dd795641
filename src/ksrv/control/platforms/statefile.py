"""platform.json: which replica processes a LocalPlatform left running, for the next run.

Written atomically (temporary file + os.replace) so a crash mid-write leaves the old file.
A replica is recorded with its PID and that process's start time, the pair that identifies it.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ksrv.control.platforms.base import RevisionSpec

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class ReplicaRecord:
    index: int
    pid: int | None
    process_start: int | None
    http_port: int | None
    grpc_port: int | None
    started_at: float | None
    restarts: int


@dataclass(frozen=True, slots=True)
class RevisionRecord:
    spec: RevisionSpec
    replicas: list[ReplicaRecord]


def write(path: Path, revisions: list[RevisionRecord]) -> None:
    document = {
        "version": FORMAT_VERSION,
        "revisions": [
            {
                "spec": _spec_to_dict(record.spec),
                "replicas": [_replica_to_dict(replica) for replica in record.replicas],
            }
            for record in revisions
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, indent=1))
    os.replace(temporary, path)


def read(path: Path) -> list[RevisionRecord]:
    """The recorded revisions; none when the file is missing or unreadable (logged)."""
    try:
        document = json.loads(path.read_text())
        return [
            RevisionRecord(
                _spec_from_dict(item["spec"]),
                [_replica_from_dict(replica) for replica in item["replicas"]],
            )
            for item in document["revisions"]
        ]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring unreadable platform state %s: %s", path, exc)
        return []


def _spec_to_dict(spec: RevisionSpec) -> dict[str, Any]:
    return {
        "namespace": spec.namespace,
        "isvc": spec.isvc,
        "component": spec.component,
        "revision": spec.revision,
        "command": list(spec.command),
        "env": dict(spec.env),
        "replicas": spec.replicas,
        "readiness_path": spec.readiness_path,
        "is_forkable": spec.is_forkable,
    }


def _spec_from_dict(item: dict[str, Any]) -> RevisionSpec:
    return RevisionSpec(
        namespace=str(item["namespace"]),
        isvc=str(item["isvc"]),
        component=str(item["component"]),
        revision=str(item["revision"]),
        command=tuple(str(arg) for arg in item["command"]),
        env={str(k): str(v) for k, v in item["env"].items()},
        replicas=int(item["replicas"]),
        readiness_path=str(item["readiness_path"]),
        is_forkable=item.get("is_forkable") is True,
    )


def _replica_to_dict(replica: ReplicaRecord) -> dict[str, Any]:
    return {
        "index": replica.index,
        "pid": replica.pid,
        "process_start": replica.process_start,
        "http_port": replica.http_port,
        "grpc_port": replica.grpc_port,
        "started_at": replica.started_at,
        "restarts": replica.restarts,
    }


def _replica_from_dict(item: dict[str, Any]) -> ReplicaRecord:
    return ReplicaRecord(
        index=int(item["index"]),
        pid=_optional_int(item.get("pid")),
        process_start=_optional_int(item.get("process_start")),
        http_port=_optional_int(item.get("http_port")),
        grpc_port=_optional_int(item.get("grpc_port")),
        started_at=float(item["started_at"]) if item.get("started_at") is not None else None,
        restarts=int(item.get("restarts", 0)),
    )


def _optional_int(value: object) -> int | None:
    return None if value is None else int(str(value))
