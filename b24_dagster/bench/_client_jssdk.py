"""The official JS SDK (``@bitrix24/b24jssdk``, unmodified) in a Node.js bench process.

Optional: used only when ``node`` and ``npm`` are on the PATH and the package installs into
a cache folder (``$XDG_CACHE_HOME/b24-dagster/bench-node``). The Node process measures
itself as the Python workers do (``process.resourceUsage()``: user + system CPU; peak memory
from ``VmHWM``).
Its best facilities: ``actions.v2.batchByChunk`` (sequential batches of 50) under its own
RestrictionManager set to the plan, and ``actions.v2.fetchList`` (keyset by id, one page of
50 a request). TLS trusts the emulator's CA through ``NODE_EXTRA_CA_CERTS``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["CLIENT", "PACKAGE", "prepare_jssdk"]

CLIENT = "b24jssdk (JS)"
PACKAGE = "@bitrix24/b24jssdk@2"

_SCRIPT = r"""
import { readFileSync, writeFileSync } from 'node:fs'
import { B24Hook, ParamsFactory } from '@bitrix24/b24jssdk'

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const started = performance.now()
const out = {}
try {
  const b24 = B24Hook.fromWebhookUrl(spec.url)
  const rate = Number(spec.rate || 0)
  const params = ParamsFactory.getDefault()
  params.rateLimit = rate > 0
    ? { burstLimit: Number(spec.burst), drainRate: rate, adaptiveEnabled: true }
    : { burstLimit: 1e9, drainRate: 1e9, adaptiveEnabled: false }
  for (const version of ['v2', 'v3']) {
    try { await b24.getHttpClient(version).setRestrictionManagerParams(params) } catch (e) {}
  }
  const t0 = performance.now()
  if (spec.task === 'writes') {
    const calls = []
    for (let i = 0; i < spec.n; i++) {
      calls.push(['crm.item.add', { entityTypeId: 2, fields: {
        title: `${spec.tag}-${i}`, stageId: 'NEW', opportunity: 1000 + i % 997,
        currencyId: 'USD', assignedById: 1 + i % 10 } }])
    }
    const res = await b24.actions.v2.batchByChunk.make({ calls, options: { isHaltOnError: false } })
    const data = res.getData() || []
    out.commands = calls.length
    out.ok = data.length
    out.failed = calls.length - data.length
    if (!res.isSuccess) out.messages = res.getErrorMessages().slice(0, 3)
  } else if (spec.task === 'export') {
    let rows = 0
    const seen = new Set()
    let repeated = 0
    for await (const chunk of b24.actions.v2.fetchList.make({
      method: 'crm.item.list',
      params: { entityTypeId: 2, select: spec.select },
      idKey: 'id', customKeyForResult: 'items' })) {
      for (const row of chunk) {
        rows++
        if (seen.has(row.id)) repeated++; else seen.add(row.id)
      }
    }
    out.rows = rows
    out.unique = rows - repeated
    out.repeated = repeated
  } else {
    throw new Error(`task ${spec.task} is not supported by the JS SDK adapter`)
  }
  out.wall_s = (performance.now() - t0) / 1000
} catch (e) {
  out.error = `${e && e.name}: ${e && e.message}`.slice(0, 500)
}
const usage = process.resourceUsage()
out.cpu_s = (usage.userCPUTime + usage.systemCPUTime) / 1e6
out.ru_maxrss_mb = usage.maxRSS / 1024
out.maxrss_mb = out.ru_maxrss_mb
try {
  const hwm = /VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))
  if (hwm) out.maxrss_mb = Number(hwm[1]) / 1024
} catch (e) {}
out.process_s = (performance.now() - started) / 1000
writeFileSync(spec.result_file, JSON.stringify(out))
process.exit(0)
"""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "b24-dagster" / "bench-node"


def prepare_jssdk(timeout: float = 300.0) -> tuple[list[str] | None, str]:
    """Install the JS SDK once and write the bench script beside it.

    Returns:
        The command prefix that runs one spec (``[node, script]``; the spec path is
        appended), or None, and a note for the report (version, or why it was skipped).
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return None, "not run: Node.js/npm not found on the PATH"
    folder = _cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    package_json = folder / "node_modules" / "@bitrix24" / "b24jssdk" / "package.json"
    if not package_json.exists():
        try:
            proc = subprocess.run([npm, "install", "--prefix", str(folder), "--no-audit",
                                   "--no-fund", "--silent", PACKAGE], capture_output=True,
                                  text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"not run: npm install {PACKAGE} failed ({exc})"
        if proc.returncode != 0 or not package_json.exists():
            return None, (f"not run: npm install {PACKAGE} failed: "
                          f"{(proc.stderr or proc.stdout).strip()[-300:]}")
    import json

    version = json.loads(package_json.read_text())["version"]
    script = folder / "bench_jssdk.mjs"
    script.write_text(_SCRIPT, encoding="utf-8")
    node_version = subprocess.run([node, "--version"], capture_output=True, text=True,
                                  check=False).stdout.strip()
    return [node, str(script)], f"@bitrix24/b24jssdk {version} on Node.js {node_version}"
