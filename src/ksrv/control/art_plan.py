"""KServe's ART explainer (`explainer.art`) as a workload any platform can run.

KServe runs its `kserve/art-explainer` image with `--adversary_type {type}` and each
`config` entry as a flag (`--nb_classes 10`); locally the same flags go to ksrv's own
ART explainer (`ksrv serve --explainer art -- ...`), which the renderer treats as any custom
container running `ksrv` (it adds the model name, ports and predictor host). The
container's own `args` follow, as KServe appends them.
"""

from __future__ import annotations

from ksrv.api.inference_service import ArtExplainerSpec

COMMAND = ("ksrv", "serve")


def art_args(art: ArtExplainerSpec) -> tuple[str, ...]:
    """`ksrv serve`'s arguments for the ART explainer: its flags after `--`."""
    flags = ["--adversary_type", art.type or "SquareAttack"]
    for key, value in sorted((art.config or {}).items()):
        flags += [f"--{key}", str(value)]
    flags += [str(arg) for arg in art.args or ()]
    return ("--explainer", "art", "--", *flags)


def art_notes(art: ArtExplainerSpec) -> tuple[str, ...]:
    """What KServe would do with the spec that ksrv's stand-in does not."""
    notes = ["spec.explainer.art: KServe's kserve/art-explainer image is not run locally; "
             "ksrv's ART explainer (the same attack and answer) stands in"]  # fmt: skip
    if art.storage_uri:
        notes.append("spec.explainer.art.storageUri: not used (the attack needs no model of "
                     "its own; it calls the predictor)")  # fmt: skip
    return tuple(notes)
