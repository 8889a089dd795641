"""gRPC ModelInfer benchmark: ksrv vs KServe 0.21.0 vs MLServer 1.7.1, side by side.

The same iris model and peer venvs as `rest.py` (its helpers are reused). Each server has one
worker pinned to CPU 0; the load generator (`grpc_load.py`, grpc.aio, N concurrent streams
on one channel, raw FP64 inputs as tritonclient sends them) runs in its own process pinned
to CPU 1. Rounds are interleaved and the server order rotates; medians are printed with the
ratio of every server's RPS to KServe's and MLServer's.

    .venv/bin/python bench/grpc_bench.py [--rounds 3] [--duration 8] [--concurrency 1,8,64]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import rest

BENCH_DIR = Path(__file__).resolve().parent
LOAD = BENCH_DIR / "grpc_load.py"


def with_grpc(server: rest.Server, grpc_port: int) -> rest.Server:
    server.grpc_port = grpc_port  # type: ignore[attr-defined]
    return server


def make_ksrv(model_dir: Path) -> rest.Server:
    server = rest.make_ksrv(model_dir)
    grpc_port = rest.free_port()
    server.argv[server.argv.index("--grpc-port") + 1] = str(grpc_port)
    return with_grpc(server, grpc_port)


def make_ksrv_unbatched(model_dir: Path) -> rest.Server:
    return rest.unbatched(make_ksrv(model_dir))


def make_ksrv_baseline(model_dir: Path) -> rest.Server:
    server = rest.make_ksrv_baseline(model_dir)
    grpc_port = rest.free_port()
    server.argv[server.argv.index("--grpc-port") + 1] = str(grpc_port)
    return with_grpc(server, grpc_port)


def make_kserve(model_dir: Path) -> rest.Server:
    server = rest.make_kserve(model_dir)
    grpc_port = rest.free_port()
    server.argv += ["--bench_grpc", "--grpc_port", str(grpc_port)]
    return with_grpc(server, grpc_port)


def mlserver_grpc(server: rest.Server) -> rest.Server:
    """MLServer always serves gRPC: on the port its repo's settings.json names."""
    settings = json.loads((server.cwd / "settings.json").read_text())
    return with_grpc(server, settings["grpc_port"])


def make_mlserver(model_dir: Path) -> rest.Server:
    return mlserver_grpc(rest.make_mlserver(model_dir))


def make_mlserver_batched(model_dir: Path) -> rest.Server:
    return mlserver_grpc(rest.make_mlserver_batched(model_dir))


FACTORIES = {
    "ksrv": make_ksrv,
    "ksrv-unbatched": make_ksrv_unbatched,
    "ksrv-baseline": make_ksrv_baseline,  # only when named in --servers (KSRV_BASELINE_SRC)
    "kserve": make_kserve,
    "mlserver": make_mlserver,
    "mlserver-batched": make_mlserver_batched,  # only when named in --servers
}
DEFAULT_SERVERS = ["ksrv", "ksrv-unbatched", "kserve", "mlserver"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument(
        "--concurrency", type=lambda t: [int(x) for x in t.split(",")], default=[1, 8, 64]
    )
    parser.add_argument("--servers", type=lambda t: t.split(","), default=DEFAULT_SERVERS)
    return parser.parse_args(argv)


def load(server: rest.Server, concurrency: int, duration: float, warmup: float) -> dict:
    command = [
        "taskset", "-c", str(rest.WRK_CPU), sys.executable, str(LOAD),
        "--target", f"127.0.0.1:{server.grpc_port}",  # type: ignore[attr-defined]
        "--model", rest.MODEL_NAME, "--concurrency", str(concurrency),
        "--duration", str(duration), "--warmup", str(warmup),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stdout}{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["classes"] != rest.EXPECTED_CLASSES:
        raise RuntimeError(f"{server.name} predicted {result['classes']}")
    return result


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    keys = sorted({(r["concurrency"], r["server"]) for r in runs})
    for concurrency, name in keys:
        mine = [r for r in runs if (r["concurrency"], r["server"]) == (concurrency, name)]
        rows.append(
            {
                "concurrency": concurrency,
                "server": name,
                "rps": statistics.median(r["rps"] for r in mine),
                "p50_ms": statistics.median(r["p50_ms"] for r in mine),
                "p99_ms": statistics.median(r["p99_ms"] for r in mine),
                "errors": sum(r["errors"] for r in mine),
            }
        )
    for row in rows:
        for peer in ("kserve", "mlserver"):
            base = next(
                (r for r in rows if r["server"] == peer and r["concurrency"] == row["concurrency"]),
                None,
            )
            row[f"vs_{peer}"] = row["rps"] / base["rps"] if base else None
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rest.check_tools()
    model_path = rest.train_model()
    servers = []
    for name in args.servers:
        try:
            servers.append(FACTORIES[name](model_path.parent))
        except rest.Unavailable as reason:
            print(f"[skip] {name}: {reason}")
    runs: list[dict] = []
    try:
        for server in servers:
            rest.start(server)
        for server in servers:
            rest.wait_ready(server)
            load(server, 1, 1.0, 0.0)  # a correct answer before any measurement
        for round_no in range(1, args.rounds + 1):
            for concurrency in args.concurrency:
                shift = (round_no - 1) % len(servers)
                for server in servers[shift:] + servers[:shift]:
                    result = load(server, concurrency, args.duration, args.warmup)
                    runs.append({"round": round_no, "concurrency": concurrency,
                                 "server": server.name, **result})  # fmt: skip
                    print(
                        f"round {round_no} c={concurrency:<3} {server.name:<14} "
                        f"rps={result['rps']:8.0f} p50={result['p50_ms']:6.2f}ms "
                        f"p99={result['p99_ms']:6.2f}ms errors={result['errors']}"
                    )
    finally:
        rest.stop_all(servers)
    rows = summarise(runs)
    print("\nmedians (gRPC ModelInfer, 1 worker on CPU 0, load generator on CPU 1)")
    for row in rows:
        ratios = " ".join(
            f"vs_{peer}={row[f'vs_{peer}']:.2f}"
            for peer in ("kserve", "mlserver")
            if row[f"vs_{peer}"] is not None
        )
        print(
            f"c={row['concurrency']:<3} {row['server']:<14} rps={row['rps']:8.0f} "
            f"p50={row['p50_ms']:6.2f}ms p99={row['p99_ms']:6.2f}ms {ratios}"
        )
    out = rest.WORK_DIR / f"grpc-results-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"args": vars(args), "runs": runs, "summary": rows}, indent=2))
    print(f"raw results: {out}")
    return 0


if __name__ == "__main__":
    os.chdir(BENCH_DIR)
    sys.exit(main())
