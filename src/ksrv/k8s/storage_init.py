"""Storage provisioning, as KServe's pod webhook does it (§5.7 of the KServe reference).

A model whose `storageUri` is not `pvc://` gets the `storage-initializer` init container
(`ksrv storage download URI /mnt/models`) and an emptyDir `kserve-provision-location`, mounted
read-only at /mnt/models in the model container. `pvc://claim/path` mounts the claim's subPath
directly, read-only, with no init container.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from ksrv.k8s.context import ComponentContext
from ksrv.k8s.podspec import MAIN, MODEL_DIR

INIT_NAME: Final = "storage-initializer"
VOLUME: Final = "kserve-provision-location"
PVC_VOLUME: Final = "kserve-pvc-source"


def provision(pod: dict[str, Any], ctx: ComponentContext, uri: str | None) -> dict[str, Any]:
    """`pod` with what makes `uri` appear at /mnt/models in the model container."""
    if not uri:
        return pod
    pod = copy.deepcopy(pod)
    main = next((c for c in pod["containers"] if c.get("name") == MAIN), pod["containers"][0])
    mounts = main.setdefault("volumeMounts", [])
    volumes = pod.setdefault("volumes", [])
    if uri.startswith("pvc://"):
        claim, _, sub_path = uri.removeprefix("pvc://").partition("/")
        volumes.append(
            {"name": PVC_VOLUME, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        )
        mount = {"name": PVC_VOLUME, "mountPath": MODEL_DIR, "readOnly": True}
        if sub_path:
            mount["subPath"] = sub_path
        mounts.append(mount)
        return pod
    initializer = ctx.config.storage_initializer
    volumes.append({"name": VOLUME, "emptyDir": {}})
    mounts.append({"name": VOLUME, "mountPath": MODEL_DIR, "readOnly": True})
    pod.setdefault("initContainers", []).append({
        "name": INIT_NAME,
        "image": initializer.image,
        "args": [uri, MODEL_DIR],
        "resources": {
            "requests": {"cpu": initializer.cpu_request, "memory": initializer.memory_request},
            "limits": {"cpu": initializer.cpu_limit, "memory": initializer.memory_limit},
        },
        "volumeMounts": [{"name": VOLUME, "mountPath": MODEL_DIR}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    })  # fmt: skip
    return pod
