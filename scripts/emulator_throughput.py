"""Throughput of the emulator: batches of 50 ``crm.item.get`` per second, client in another process.

    .venv/bin/python scripts/emulator_throughput.py [--seconds 5] [--clients 1] [--client requests]

Starts ``python -m b24_dagster.emulator --rate 0 --seed-deals 1000`` in a child process,
then runs ``--clients`` client processes, each posting batches for ``--seconds`` seconds over
one keep-alive connection, and prints the total batches per second. ``--client requests``
uses a ``requests.Session`` and decodes every answer (what a Python client pays: on this
machine the client, not the server, is then the bottleneck); ``--client raw`` uses
``http.client`` and checks the status only, which measures the server.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import time
from urllib.parse import urlsplit

import requests

from b24_dagster.emulator import start_subprocess

_BODY = {"halt": 0, "cmd": {f"c{i}": f"crm.item.get?entityTypeId=2&id={i + 1}" for i in range(50)}}


def _client(url: str, seconds: float, kind: str, out: mp.Queue) -> None:  # type: ignore[type-arg]
    n = errors = 0
    deadline = time.perf_counter() + seconds
    if kind == "requests":
        session = requests.Session()
        while time.perf_counter() < deadline:
            r = session.post(url + "batch", json=_BODY)
            if r.status_code != 200 or len(r.json()["result"]["result"]) != 50:
                errors += 1
            n += 1
    else:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.netloc)
        payload = json.dumps(_BODY)
        headers = {"Content-Type": "application/json"}
        while time.perf_counter() < deadline:
            conn.request("POST", parts.path + "batch", payload, headers)
            r = conn.getresponse()
            r.read()
            errors += r.status != 200
            n += 1
    out.put((n, errors))


def main() -> None:
    """Run the measurement and print the figure."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--client", choices=("requests", "raw"), default="requests")
    args = ap.parse_args()
    with start_subprocess(["--rate", "0", "--seed-deals", "1000"]) as emu:
        url = emu.webhook_url
        requests.post(url + "batch", json={"cmd": {"a": "crm.item.get?entityTypeId=2&id=1"}})
        out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
        procs = [mp.Process(target=_client, args=(url, args.seconds, args.client, out)) for _ in range(args.clients)]
        t0 = time.perf_counter()
        for p in procs:
            p.start()
        results = [out.get() for _ in procs]
        for p in procs:
            p.join()
        elapsed = time.perf_counter() - t0
    total = sum(n for n, _ in results)
    errors = sum(e for _, e in results)
    print(f"{total} batches of 50 crm.item.get in {elapsed:.2f} s with {args.clients} {args.client} "
          f"client process(es): {total / args.seconds:.0f} batches/s "
          f"({total * 50 / args.seconds:.0f} commands/s), {errors} errors")


if __name__ == "__main__":
    main()
