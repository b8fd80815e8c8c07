"""Extract the request examples of the emulated methods' doc pages into test data.

For every method the emulator serves (its registry, ``b24_dagster.emulator._methods_core.REGISTRY``)
this reads the method's page in a local clone or mirror of https://github.com/bitrix24/b24restdocs
and writes ``tests/fixtures/doc_examples/<method>[.v3].json`` with:

- ``source``: repository, commit and page path (the page is read at that commit, never copied);
- ``examples``: each ``cURL (Webhook)`` tab of the page: the command verbatim, its line, its
  content type and its body (JSON decoded; shell substitutions such as
  ``'"$(date '+%Y-%m-%d')"'`` are kept as ``{"$shell": "date '+%Y-%m-%d'"}`` markers the test
  evaluates);
- ``responses`` / ``errors``: the page's JSON answers after ``HTTP Status: **200**`` and after an
  error status, with their lines and statuses (``body`` is null when the block is not JSON;
  ``text`` keeps it verbatim then).

The test ``tests/emulator/test_doc_examples.py`` sends each example to the emulator.
Rerun after a docs update::

    git clone https://github.com/bitrix24/b24restdocs /tmp/b24restdocs
    .venv/bin/python scripts/extract_doc_examples.py /tmp/b24restdocs      # a checkout
    .venv/bin/python scripts/extract_doc_examples.py /path/to/mirror.git   # or a bare git dir

The page of each method is found by its file name (``crm.deal.add`` ->
``crm-deal-add.md``; REST v3 methods -> ``...-rest-v3.md``) and its cURL URL, with the few
exceptions in ``PAGE_OVERRIDES``.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "doc_examples"
REPO = "bitrix24/b24restdocs"

#: Pages whose file name does not follow the method name.
PAGE_OVERRIDES: dict[tuple[int, str], str] = {
    (2, "crm.duplicate.findbycomm"): "api-reference/crm/duplicates/crm-duplicate-find-by-comm.md",
    (2, "crm.item.batchImport"): "api-reference/crm/universal/import/crm-item-batch-import.md",
    (2, "crm.item.import"): "api-reference/crm/universal/import/crm-item-import.md",
    (2, "crm.type.getByEntityTypeId"):
        "api-reference/crm/universal/user-defined-object-types/crm-type-get-by-entity-type-id.md",
    (2, "methods"): "api-reference/common/system/methods.md",
    (2, "scope"): "api-reference/common/system/scope.md",
    (2, "profile"): "api-reference/common/users/profile.md",
    (2, "crm.stagehistory.list"): "api-reference/crm/crm-stage-history-list.md",
    # the activity pages exist twice: the current ones are under activity-base/
    **{(2, f"crm.activity.{verb}"):
       f"api-reference/crm/timeline/activities/activity-base/crm-activity-{verb}.md"
       for verb in ("add", "get", "list", "update", "delete", "fields")},
    # rest.scope.list has no page of its own: rest-v3.md describes it (no cURL example).
    (3, "rest.scope.list"): "api-reference/rest-v3.md",
}

_STATUS = re.compile(r"HTTP [Ss]tatus:\s*(.*)")
_BARE_VALUE = re.compile(r"\s*(-?\d[\d.eE+-]*|true|false|null)?,?\s*$")
_SHELL_SUBST = re.compile(r"""'"\$\((.*?)\)"'""")


class Git:
    """Reads files of one commit of a clone (work tree or bare)."""

    def __init__(self, path: Path) -> None:
        git_dir = path / ".git" if (path / ".git").exists() else path
        self.args = ["git", f"--git-dir={git_dir}"]
        self.commit = self._run("rev-parse", "HEAD").strip()
        self.files = self._run("ls-tree", "-r", "--name-only", "HEAD", "api-reference").split("\n")

    def _run(self, *args: str) -> str:
        return subprocess.run([*self.args, *args], check=True, capture_output=True,
                              text=True).stdout

    def show(self, path: str) -> str:
        return self._run("show", f"{self.commit}:{path}")


def registry() -> list[tuple[int, str]]:
    """(api version, method name as registered) of every method the emulator serves."""
    sys.path.insert(0, str(ROOT))
    from b24_dagster.emulator import _portal  # noqa: F401  (imports every _methods_* module)
    from b24_dagster.emulator._methods_core import REGISTRY

    return sorted({(v, spec.name) for (v, _), spec in REGISTRY.items()}, key=lambda k: (k[1], k[0]))


def find_page(git: Git, version: int, method: str) -> str | None:
    """The method's own page: by file name, then by a cURL URL that ends in the method."""
    if (version, method) in PAGE_OVERRIDES:
        return PAGE_OVERRIDES[(version, method)]
    stem = method.replace(".", "-").lower() + ("-rest-v3" if version == 3 else "") + ".md"
    named = [f for f in git.files if f.endswith("/" + stem) and "/outdated/" not in f]
    if len(named) == 1:
        return named[0]
    if version == 3:  # e.g. the event log: REST v3 only, pages without the suffix
        stem = method.replace(".", "-").lower() + ".md"
        named = [f for f in git.files if f.endswith("/" + stem)]
        if len(named) == 1:
            return named[0]
    return None


def _code_block(lines: list[str], start: int) -> tuple[int, int, str]:
    """The fenced block at or after ``start``: (first line index, end index, dedented text)."""
    i = start
    while not lines[i].lstrip().startswith("```"):
        i += 1
    indent = len(lines[i]) - len(lines[i].lstrip())
    j = i + 1
    while not lines[j].lstrip().startswith("```"):
        j += 1
    body = "\n".join(line[indent:] if line[:indent].strip() == "" else line.lstrip()
                     for line in lines[i + 1:j])
    return i, j, body


def parse_curl(command: str) -> dict[str, Any]:
    """URL, headers and body of a page's curl command (shell substitutions kept as markers)."""
    marked = _SHELL_SUBST.sub(lambda m: "\x00" + m.group(1).replace("'", "\x01") + "\x02", command)
    words = shlex.split(marked.replace("\\\n", " "))
    headers: dict[str, str] = {}
    data: str | None = None
    url = ""
    i = 1
    while i < len(words):
        w = words[i]
        if w in ("-X", "--request"):
            i += 2
            continue
        if w in ("-H", "--header"):
            name, _, value = words[i + 1].partition(":")
            headers[name.strip().lower()] = value.strip()
            i += 2
            continue
        if w in ("-d", "--data", "--data-raw", "--data-binary"):
            data = words[i + 1]
            i += 2
            continue
        if w.startswith("http"):
            url = w
        i += 1
    substitutions: list[str] = []

    def unmark(text: str) -> str:
        def repl(m: re.Match[str]) -> str:
            substitutions.append(m.group(1).replace("\x01", "'"))
            return f"$shell{len(substitutions) - 1}$"
        return re.sub("\x00(.*?)\x02", repl, text, flags=re.S)

    body_text = unmark(data) if data is not None else None
    body: Any = None
    note = None
    if body_text is not None and "json" in headers.get("content-type", ""):
        try:
            body = json.loads(body_text)
        except ValueError:
            # Quotes inside the single-quoted body (``"Field 'Hello, world!'"``) end the
            # shell's quoting, so a shell would send a broken body; take what the author
            # wrote between ``-d '`` and the closing ``' \`` instead.
            raw = re.search(r"-d '(.*)'\s*\\\n", marked, re.S)
            fixed = unmark(raw.group(1)) if raw else None
            if fixed is not None and _loose_json(fixed) is not None:
                body_text, body = fixed, json.loads(fixed)
                note = ("the body's inner single quotes break the shell quoting; "
                        "the text between -d ' and ' is used")
            else:
                note = "the body is not valid JSON (sent as written)"
    return {"url": url.replace("\x00", "").replace("\x02", ""), "content_type":
            headers.get("content-type"), "body_text": body_text, "body": body,
            "shell": substitutions, **({"note": note} if note else {})}


def _loose_json(text: str) -> Any:
    """JSON of an answer block; elisions (``// ...``, ``...``, "48 more leads ...") dropped."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    kept = [line for line in text.split("\n")
            if not line.strip().startswith(("//", "...", "…")) and
            (any(c in line for c in '{}[]"') or _BARE_VALUE.match(line))]
    try:
        return json.loads(re.sub(r",(\s*[}\]])", r"\1", "\n".join(kept)))
    except ValueError:
        return None


def extract(git: Git, version: int, method: str, path: str) -> dict[str, Any]:
    """The examples and answers of one page."""
    lines = git.show(path).split("\n")
    examples: list[dict[str, Any]] = []
    for idx, line in enumerate(lines):
        if line.strip() != "- cURL (Webhook)":
            continue
        first, _, text = _code_block(lines, idx + 1)
        try:
            curl = parse_curl(text)
        except ValueError as exc:
            raise SystemExit(f"{path}:{idx + 1}: {exc}") from exc
        target = curl["url"].rstrip("/").rsplit("/", 1)[-1]
        if target.lower().removesuffix(".json") != method.lower():
            continue  # an example of another method on the same page
        examples.append({"line": idx + 1, "curl": text, "api_version":
                         3 if "/rest/api/" in curl["url"] else 2, **curl})
    responses: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for idx, line in enumerate(lines):
        m = _STATUS.search(line)
        if not m:
            continue
        statuses = [int(s) for s in re.findall(r"\d{3}", m.group(1))]
        nxt = idx + 1  # the answer's block, past notes such as "Disabled fields return null"
        while nxt < min(len(lines), idx + 20) and not lines[nxt].lstrip().startswith(
                ("```", "#", "HTTP")):
            nxt += 1
        if nxt >= len(lines) or not lines[nxt].lstrip().startswith("```"):
            continue
        first, _, text = _code_block(lines, nxt)
        entry = {"line": first + 1, "status": statuses, "body": _loose_json(text)}
        if entry["body"] is None:
            entry["text"] = text
        (responses if statuses == [200] else errors).append(entry)
    return {"method": method, "api_version": version,
            "source": {"repo": REPO, "commit": git.commit, "path": path},
            "examples": examples, "responses": responses, "errors": errors}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("docs", type=Path, help="a clone (or bare mirror) of bitrix24/b24restdocs")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    git = Git(args.docs)
    args.out.mkdir(parents=True, exist_ok=True)
    index = []
    for version, method in registry():
        path = find_page(git, version, method)
        name = method + (".v3" if version == 3 else "")
        if path is None:
            print(f"no page for {name}", file=sys.stderr)
            index.append({"file": None, "method": method, "api_version": version, "page": None,
                          "examples": 0})
            continue
        data = extract(git, version, method, path)
        (args.out / f"{name}.json").write_text(
            json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        index.append({"file": f"{name}.json", "method": method, "api_version": version,
                      "page": path, "examples": len(data["examples"])})
    (args.out / "index.json").write_text(json.dumps(
        {"source": {"repo": REPO, "commit": git.commit}, "methods": index}, indent=1) + "\n",
        encoding="utf-8")
    pages = {m["page"] for m in index if m["page"]}
    total = sum(m["examples"] for m in index)
    print(f"{len(index)} methods, {len(pages)} pages, {total} examples ({git.commit[:10]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
