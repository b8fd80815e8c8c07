"""`Bitrix24Component`: Bitrix24 exports and batch writes declared in a `defs.yaml`.

A thin layer over the factories of `b24_dagster.integration`: each entry of `exports`
becomes `build_bitrix24_export_asset` (plus a schedule when it names one), each entry of
`writes` becomes `build_bitrix24_batch_asset` fed by a CSV file beside the YAML or by an
upstream asset. A state-backed Component, as dagster-dbt's and dagster-fivetran's are: `dg
utils refresh-defs-state` asks the portal for each export's field list (`*.fields`) and keeps
it, so the exports show their columns, types and the portal's titles before any run.

```yaml
# defs/crm_sync/defs.yaml
type: b24_dagster.components.Bitrix24Component
attributes:
  webhook_url: "{{ env.BITRIX24_WEBHOOK_URL }}"
  key_prefix: [bitrix24, crm_sync]
  exports:
    - name: companies
      method: crm.company.list
      schedule: "0 4 * * *"
  writes:
    - name: contact_import
      method: crm.contact.add
      csv: contacts.csv
      key_column: external_id     # a sync by ORIGIN_ID: runs any number of times, sends changes
requirements:
  env: [BITRIX24_WEBHOOK_URL]
```
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import dagster as dg
import pandas as pd
from dagster.components.component.state_backed_component import StateBackedComponent
from dagster.components.utils.defs_state import (
    DefsStateConfig,
    DefsStateConfigArgs,
    ResolvedDefsStateConfig,
)
from dagster.components.utils.translation import TranslationFn, TranslationFnResolver
from dagster_shared.serdes.objects.models.defs_state_info import DefsStateManagementType
from pydantic import BaseModel, create_model

from b24_dagster.client._entities import crm_entity_of
from b24_dagster.client._fieldmodel import EntityFields
from b24_dagster.errors import ConfigurationError
from b24_dagster.integration import (
    Bitrix24AssetProps,
    Bitrix24Resource,
    Bitrix24Storage,
    Bitrix24Translator,
    build_bitrix24_batch_asset,
    build_bitrix24_export_asset,
    build_bitrix24_export_schedule,
)

__all__ = [
    "Bitrix24BatchWrite",
    "Bitrix24Component",
    "Bitrix24ComponentScaffolder",
    "Bitrix24Export",
    "shared_resources",
]

Plan = Literal["standard", "enterprise", "on_premise"]
DEFAULT_WEBHOOK = "{{ env.BITRIX24_WEBHOOK_URL }}"
_ENV_TEMPLATE = re.compile(r"^\s*\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@functools.cache
def _resource(webhook_env: str, plan: Plan | None) -> Bitrix24Resource:
    return Bitrix24Resource(webhook_url=dg.EnvVar(webhook_env), plan=plan)


@functools.cache
def _storage(base_path: str | None) -> Bitrix24Storage:
    return Bitrix24Storage(base_path=base_path)


def shared_resources(
    webhook_env: str = "BITRIX24_WEBHOOK_URL",
    plan: Plan | None = None,
    *,
    base_path: str | None = None,
    resource_key: str = "bitrix24",
    storage_key: str = "bitrix24_storage",
) -> dict[str, Any]:
    """The Bitrix24 resources, as the same objects on every call with the same arguments.

    `Definitions.merge` (and so `dg.load_from_defs_folder`, which merges every Component and
    module of the defs folder) accepts one resource key from two sources only when both hold
    the very same object. Python definitions that declare the keys a Component instance also
    provides must take them from here, with the instance's `webhook_url` variable, `plan` and
    `base_path`; a `Bitrix24Resource(...)` made by hand under the same key is refused
    ("different resources with same key 'bitrix24'").

    Args:
        webhook_env: The environment variable holding the webhook URL (read when a run starts).
        plan: The portal's plan (`standard`, `enterprise`, `on_premise`), for the client's pace.
        base_path: Where the Parquet files go: an absolute path or an fsspec URL such as
            `s3://bucket/prefix`; None: `$B24_DAGSTER_BASE`, else the Dagster instance's
            storage (`$DAGSTER_HOME/storage/bitrix24`).
        resource_key: The key of the `Bitrix24Resource`.
        storage_key: The key of the `Bitrix24Storage`.

    Returns:
        `{resource_key: Bitrix24Resource, storage_key: Bitrix24Storage}`.
    """
    return {resource_key: _resource(webhook_env, plan), storage_key: _storage(base_path)}


def _webhook_env(context: dg.ResolutionContext | None, value: Any) -> str:
    """The environment variable named by `{{ env.NAME }}`, kept unresolved: the resource reads
    it as a `dg.EnvVar` when a run starts, so the URL (whose path holds the secret code) is
    never part of the definitions or the UI."""
    text = str(value)
    found = _ENV_TEMPLATE.match(text)
    if found:
        return found.group(1)
    if _ENV_NAME.match(text):  # a bare variable name, as older instances wrote it
        return text
    raise ValueError(
        'webhook_url must be an environment template such as "{{ env.BITRIX24_WEBHOOK_URL }}": '
        "a webhook URL carries its secret code in its path and must not be written in a YAML file"
    )


class Bitrix24Export(dg.Model, dg.Resolvable):
    """One list method exported to a typed Parquet file."""

    name: Annotated[
        str, dg.Resolver.default(description="The asset's name: its key is `[*key_prefix, name]`.")
    ]
    method: Annotated[
        str,
        dg.Resolver.default(
            description="The list method: crm.deal.list, crm.item.list, tasks.task.list, ..."
        ),
    ]
    select: Annotated[
        list[str] | None,
        dg.Resolver.default(
            description="The fields to export, in column order (default: what the first page has)."
        ),
    ] = None
    filter: Annotated[
        dict[str, Any] | None,
        dg.Resolver.default(description="A constant filter, e.g. {CATEGORY_ID: 0}."),
    ] = None
    entity_type_id: Annotated[
        int | None,
        dg.Resolver.default(
            description="crm.item.list only: 1 lead, 2 deal, 3 contact, 4 company, or a smart process."
        ),
    ] = None
    incremental: Annotated[
        bool,
        dg.Resolver.default(
            description="Daily partitions, each exporting the rows modified that day."
        ),
    ] = False
    start_date: Annotated[
        str | None,
        dg.Resolver.default(description="First daily partition (incremental), e.g. 2025-01-01."),
    ] = None
    schedule: Annotated[
        str | None,
        dg.Resolver.default(
            description="A cron expression for a full export (an incremental one runs daily, yesterday's day)."
        ),
    ] = None
    freshness_hours: Annotated[
        float | None,
        dg.Resolver.default(
            description="A freshness policy: the asset is stale when its last materialization is older than this."
        ),
    ] = None


class Bitrix24BatchWrite(dg.Model, dg.Resolvable):
    """One command per row of a CSV file or of an upstream asset, every outcome recorded in Parquet."""

    name: Annotated[
        str,
        dg.Resolver.default(
            description="The results asset's name: its key is `[*key_prefix, name]`."
        ),
    ]
    method: Annotated[
        str,
        dg.Resolver.default(
            description="The write method, e.g. crm.contact.add, crm.deal.update, crm.item.add."
        ),
    ]
    csv: Annotated[
        str | None,
        dg.Resolver.default(
            description="A CSV file of the rows, relative to this defs.yaml's folder (or `source`)."
        ),
    ] = None
    source: Annotated[
        str | None,
        dg.Resolver.default(
            description="Instead of `csv`: the key of an upstream asset whose value is a DataFrame of the rows, "
            "e.g. `crm/contacts_clean`."
        ),
    ] = None
    fields: Annotated[
        dict[str, str] | list[str] | None,
        dg.Resolver.default(
            description="Columns to send: a list (same names) or a mapping column -> Bitrix24 field."
        ),
    ] = None
    id_column: Annotated[
        str | None, dg.Resolver.default(description="The column holding the record id (updates).")
    ] = None
    key_column: Annotated[
        str | None,
        dg.Resolver.default(
            description="The rows' key column: with a create method the write is a sync by it (ORIGIN_ID)."
        ),
    ] = None
    params: Annotated[
        dict[str, Any] | None,
        dg.Resolver.default(description="Constant parameters of every command."),
    ] = None
    failure_rate_threshold: Annotated[
        float,
        dg.Resolver.default(
            description="The failure_rate_below_threshold check (WARN) fails above this share."
        ),
    ] = 0.05
    block_on_unknown: Annotated[
        bool,
        dg.Resolver.default(
            description="Make no_unknown_outcomes a blocking check: downstream assets (dbt models) of the run "
            "do not run when a command's outcome is unknown."
        ),
    ] = False
    reconcile_field: Annotated[
        str | None,
        dg.Resolver.default(
            description="The field that identifies a created record (default ORIGIN_ID / originId): a create whose "
            "answer was lost is looked up by it before anything is sent again."
        ),
    ] = None
    sync: Annotated[
        Literal["upsert", "insert", "update", "send"] | None,
        dg.Resolver.default(
            description="How rows become writes: upsert (the default with a key_column and a create method), "
            "insert, update, or send (every row as a command, a one-shot load)."
        ),
    ] = None
    key_field: Annotated[
        str | None,
        dg.Resolver.default(
            description="The portal field that holds the key (default ORIGIN_ID, or originId on crm.item)."
        ),
    ] = None
    originator_id: Annotated[
        str | None,
        dg.Resolver.default(
            description="A constant ORIGINATOR_ID that creates carry and matches require."
        ),
    ] = None
    check_portal: Annotated[
        bool,
        dg.Resolver.default(
            description="Look every row up on the portal instead of trusting the sync state."
        ),
    ] = False
    delete_missing: Annotated[
        bool,
        dg.Resolver.default(
            description="Delete the records whose keys left the rows (only those this sync made)."
        ),
    ] = False
    max_delete_share: Annotated[
        float,
        dg.Resolver.default(
            description="Refuse to delete more than this share of the synced records in one run."
        ),
    ] = 0.1
    max_attempts: Annotated[
        int,
        dg.Resolver.default(
            description="Skip a row that failed this many times with the same fields, until it changes."
        ),
    ] = 3
    match_by: Annotated[
        Literal["EMAIL", "PHONE"] | None,
        dg.Resolver.default(
            description="Match leads, contacts or companies by e-mail or phone instead of a key field."
        ),
    ] = None
    bulk_import: Annotated[
        bool,
        dg.Resolver.default(
            description=(
                "crm.item.add only: send the creates 20 a crm.item.batchImport call, 1,000 a request. No automation "
                'rules start, and the webhook\'s user needs the CRM "import" permission.'
            )
        ),
    ] = False
    multi_value: Annotated[
        Literal["replace", "append"],
        dg.Resolver.default(
            description="How a sync writes EMAIL, PHONE, WEB, IM and multiple user fields: replace (the record ends "
            "with exactly the row's values) or append (only values the record lacks are added)."
        ),
    ] = "replace"


class _ComponentTranslator(Bitrix24Translator):
    def __init__(
        self, group_name: str | None, translation: TranslationFn[Bitrix24AssetProps] | None
    ) -> None:
        self._group_name = group_name
        self._translation = translation

    def get_group_name(self, props: Bitrix24AssetProps) -> str | None:
        return self._group_name or super().get_group_name(props)

    def get_asset_spec(self, props: Bitrix24AssetProps) -> dg.AssetSpec:
        spec = super().get_asset_spec(props)
        return self._translation(spec, props) if self._translation is not None else spec


def _props_vars(props: Bitrix24AssetProps) -> Mapping[str, Any]:
    return {
        "props": props,
        "name": props.name,
        "method": props.method,
        "kind": props.kind,
        "entity": props.entity,
    }


class Bitrix24ComponentScaffolder(dg.Scaffolder):
    """`dg scaffold defs b24_dagster.components.Bitrix24Component <path>`: a commented example."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        folder = Path(request.target_path)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "defs.yaml").write_text(SCAFFOLD_TEMPLATE.replace("<name>", folder.name))


@dg.scaffold_with(Bitrix24ComponentScaffolder)
class Bitrix24Component(StateBackedComponent, dg.Model, dg.Resolvable):
    """Bitrix24 CRM exports and batch writes (syncs), declared in YAML.

    Every asset key is `[*key_prefix, name]`; keep the prefix distinct from other Bitrix24
    assets of the same code location. The webhook URL is read from the environment variable
    of `webhook_url` when a run starts and is never shown in the UI. `dg utils
    refresh-defs-state` keeps each export's field list (`*.fields`), so its columns and the
    portal's titles show before any run.
    """

    webhook_url: Annotated[
        str,
        dg.Resolver(
            _webhook_env,
            model_field_type=str,
            inject_before_resolve=False,  # the template is read, not rendered: no URL at load
            description='The webhook, as an environment template: "{{ env.BITRIX24_WEBHOOK_URL }}" (read when a '
            "run starts, never shown; `dg list env` lists it).",
            examples=[DEFAULT_WEBHOOK],
        ),
    ] = DEFAULT_WEBHOOK
    key_prefix: Annotated[
        list[str],
        dg.Resolver.default(
            description="The first parts of every asset key, e.g. [bitrix24, crm_sync]."
        ),
    ] = ["bitrix24"]
    group_name: Annotated[
        str | None, dg.Resolver.default(description="The asset group (default: bitrix24).")
    ] = None
    plan: Annotated[
        Plan | None,
        dg.Resolver.default(
            description="The portal's plan, for the client's pace: standard (2 req/s), enterprise (5 req/s), on_premise."
        ),
    ] = None
    resource_key: Annotated[
        str, dg.Resolver.default(description="The resource key of the Bitrix24Resource.")
    ] = "bitrix24"
    storage_key: Annotated[
        str, dg.Resolver.default(description="The resource key of the Bitrix24Storage.")
    ] = "bitrix24_storage"
    base_path: Annotated[
        str | None,
        dg.Resolver.default(
            description="Where the Parquet files go: an absolute path or an fsspec URL (s3://bucket/prefix); "
            "default $B24_DAGSTER_BASE, else $DAGSTER_HOME/storage/bitrix24. Python definitions that share the "
            "resources pass the same value to shared_resources(base_path=...)."
        ),
    ] = None
    exports: Annotated[
        list[Bitrix24Export], dg.Resolver.default(description="List methods exported to Parquet.")
    ] = []
    writes: Annotated[
        list[Bitrix24BatchWrite],
        dg.Resolver.default(
            description="Writes (syncs by key) from a CSV file or an upstream asset."
        ),
    ] = []
    translation: Annotated[
        TranslationFn[Bitrix24AssetProps] | None,
        TranslationFnResolver(template_vars_for_translation_fn=_props_vars),
    ] = None
    defs_state: ResolvedDefsStateConfig = DefsStateConfigArgs(
        management_type=DefsStateManagementType.LOCAL_FILESYSTEM, refresh_if_dev=False
    )

    @classmethod
    def get_model_cls(cls) -> type[BaseModel]:
        """The YAML schema, with `exports` and `writes` as lists only (not also a template
        string, as every attribute is by default): a misspelt key in an entry is then named
        by `dg check` ("'key_colum' was unexpected") instead of "not valid under any of the
        given schemas"."""
        model = cls.model()
        lists = {name: (list[entry.model()], model.model_fields[name])  # type: ignore[valid-type]
                 for name, entry in (("exports", Bitrix24Export), ("writes", Bitrix24BatchWrite))}  # fmt: skip
        return create_model(model.__name__, __base__=model, **lists)  # type: ignore[call-overload,no-any-return]

    @property
    def webhook_env(self) -> str:
        """The webhook's environment variable (from YAML the resolver already gave the name; a
        component built in Python may still hold the template)."""
        return _webhook_env(None, self.webhook_url)

    @property
    def defs_state_config(self) -> DefsStateConfig:
        """Local state under the key `Bitrix24Component[<key_prefix>]`, refreshed by `dg utils
        refresh-defs-state` (not on every load: a load must not need the portal)."""
        return DefsStateConfig.from_args(
            self.defs_state, default_key=f"Bitrix24Component[{'/'.join(self.key_prefix)}]"
        )

    def write_state_to_path(self, state_path: Path) -> None:
        """Ask the portal for each export's field list and write them as JSON."""
        from b24_dagster import Bitrix24Client
        from b24_dagster.integration._export_assets import _defaults, _descriptions

        url = os.environ.get(self.webhook_env)
        if not url:
            raise dg.DagsterInvalidConfigError(
                f"Bitrix24Component[{'/'.join(self.key_prefix)}]: set {self.webhook_env} to refresh the "
                "field lists from the portal", [], None,
            )  # fmt: skip
        exports: dict[str, Any] = {}
        with Bitrix24Client(
            url, requests_per_second=None if self.plan == "on_premise" else 2.0
        ) as client:
            for export in self.exports:
                fields_method = _defaults(export.method)[0]
                if not fields_method:
                    continue
                params = (
                    {"entityTypeId": export.entity_type_id}
                    if export.entity_type_id is not None
                    else {}
                )
                answer = client.call(fields_method, params).result
                exports[export.name] = {
                    "fields_method": fields_method,
                    "fields": dict(_descriptions(answer)),
                }
            writes = _write_fields(client, self.writes)
        state_path.parent.mkdir(parents=True, exist_ok=True)
        state_path.write_text(
            json.dumps({"version": 1, "exports": exports, "writes": writes}, ensure_ascii=False, indent=1)
        )

    def build_defs_from_state(
        self, context: dg.ComponentLoadContext, state_path: Path | None
    ) -> dg.Definitions:
        """The assets, checks and schedules of this instance, with its resources."""
        state = (
            json.loads(state_path.read_text())
            if state_path is not None and state_path.exists()
            else {}
        )
        known = state.get("exports", {})
        translator = _ComponentTranslator(self.group_name, self.translation)
        common: dict[str, Any] = {
            "key_prefix": tuple(self.key_prefix),
            "translator": translator,
            "resource_key": self.resource_key,
            "storage_key": self.storage_key,
        }
        assets: list[dg.AssetsDefinition] = []
        schedules: list[dg.ScheduleDefinition] = []
        for export in self.exports:
            asset = build_bitrix24_export_asset(
                name=export.name,
                method=export.method,
                select=export.select,
                filter=export.filter,
                entity_type_id=export.entity_type_id,
                incremental=export.incremental,
                start_date=export.start_date,
                field_descriptions=(known.get(export.name) or {}).get("fields"),
                freshness_policy=dg.FreshnessPolicy.time_window(
                    fail_window=timedelta(hours=export.freshness_hours)
                )
                if export.freshness_hours
                else None,
                **common,
            )
            assets.append(asset)
            if export.schedule or export.incremental:
                schedules.append(
                    build_bitrix24_export_schedule(
                        asset, cron_schedule=export.schedule or "0 3 * * *"
                    )
                )
        for index, write in enumerate(self.writes):
            _check_write_fields(write, index, (state.get("writes") or {}).get(write.name))
            assets.append(
                build_bitrix24_batch_asset(
                    name=write.name,
                    method=write.method,
                    source=_source_of(write, index, context.path),
                    fields=write.fields,
                    id_column=write.id_column,
                    key_column=write.key_column,
                    params=write.params,
                    failure_rate_threshold=write.failure_rate_threshold,
                    block_on_unknown=write.block_on_unknown,
                    reconcile_field=write.reconcile_field,
                    sync=write.sync,
                    key_field=write.key_field,
                    originator_id=write.originator_id,
                    check_portal=write.check_portal,
                    delete_missing=write.delete_missing,
                    max_delete_share=write.max_delete_share,
                    max_attempts=write.max_attempts,
                    match_by=write.match_by,
                    bulk_import=write.bulk_import,
                    multi_value=write.multi_value,
                    **common,
                )
            )
        resources = shared_resources(
            self.webhook_env,
            self.plan,
            base_path=self.base_path,
            resource_key=self.resource_key,
            storage_key=self.storage_key,
        )
        return dg.Definitions(assets=assets, schedules=schedules, resources=resources)


def _write_fields(client: Any, writes: Sequence[Bitrix24BatchWrite]) -> dict[str, Any]:
    """The field lists of the entities the writes create, by write name (for the check below)."""
    from b24_dagster.integration._export_assets import _descriptions

    out: dict[str, Any] = {}
    for write in writes:
        try:
            entity = crm_entity_of(write.method, write.params)
        except ConfigurationError:
            continue  # not a sync's create method: nothing to check against
        answer = client.call(entity.method("fields"), entity.params).result
        out[write.name] = {"entity": entity.prefix, "fields": dict(_descriptions(answer))}
    return out


def _check_write_fields(write: Bitrix24BatchWrite, index: int, known: Mapping[str, Any] | None) -> None:
    """At definition time (`dg check defs`), when the state has the entity's fields: a write whose
    mapping names an unknown or read-only field is refused, as the run would refuse it."""
    if not known or write.fields is None or write.sync == "send":
        return
    targets = list(write.fields.values()) if isinstance(write.fields, Mapping) else list(write.fields)
    model = EntityFields(known["fields"], known.get("entity", ""))
    problems = model.check_mapping(targets, creates=False, updates=write.sync != "insert")
    if problems:
        raise ValueError(f"writes[{index}] ({write.name}): the fields do not fit the portal's fields of "
                         f"{model.entity} (from `dg utils refresh-defs-state`):\n- " + "\n- ".join(problems))


def _source_of(write: Bitrix24BatchWrite, index: int, folder: Path) -> Any:
    """The write's rows: a CSV loader (the file and its columns checked now) or an asset key."""
    where = f"writes[{index}] ({write.name})"
    if (write.csv is None) == (write.source is None):
        raise ValueError(
            f"{where}: give exactly one of csv (a file beside defs.yaml) or source (an asset key)"
        )
    if write.source is not None:
        return dg.AssetKey.from_user_string(write.source)
    path = folder / write.csv
    if not path.is_file():
        raise FileNotFoundError(f"{where}: csv {write.csv!r} does not exist (looked for {path})")
    header = list(pd.read_csv(path, nrows=0).columns)
    wanted = {"key_column": write.key_column, "id_column": write.id_column}
    columns = list(write.fields) if write.fields is not None else []
    missing = [
        f"{name} {value!r}" for name, value in wanted.items() if value and value not in header
    ]
    missing += [f"fields column {c!r}" for c in columns if c not in header]
    if missing:
        raise ValueError(
            f"{where}: {', '.join(missing)} not among the columns of {write.csv} ({', '.join(header)})"
        )
    return _csv_loader(path)


def _csv_loader(path: Path) -> Any:
    def load(context: dg.AssetExecutionContext) -> pd.DataFrame:
        # Strings stay strings (ids, phone numbers); numbers the portal parses itself.
        frame = pd.read_csv(path, dtype="string")
        context.log.info(f"{len(frame)} rows read from {path.name}")
        return frame

    return load


SCAFFOLD_TEMPLATE = """\
# A Bitrix24Component: CRM list exports to typed Parquet, and writes (syncs by key) from a CSV
# file or an upstream asset. Every field: `dg utils inspect-component
# b24_dagster.components.Bitrix24Component`. The exports' columns and the portal's field
# titles show before any run once `dg utils refresh-defs-state` has asked the portal.
type: b24_dagster.components.Bitrix24Component

attributes:
  # The webhook (https://<portal>/rest/<user>/<code>/), read from the environment when a run
  # starts; never written here, never shown in the UI.
  webhook_url: "{{ env.BITRIX24_WEBHOOK_URL }}"
  key_prefix: [bitrix24, <name>]
  # plan: standard            # standard (2 req/s), enterprise (5 req/s), on_premise (no limit)
  # base_path: /srv/crm/data  # the Parquet files (default $B24_DAGSTER_BASE, else $DAGSTER_HOME/storage/
  #                           # bitrix24); Python definitions sharing the resources: shared_resources(base_path=...)

  exports:
    - name: deals
      method: crm.deal.list
      select: [ID, TITLE, STAGE_ID, OPPORTUNITY, CURRENCY_ID, ASSIGNED_BY_ID, DATE_MODIFY]
      schedule: "0 3 * * *"   # a full export every night
      freshness_hours: 26     # stale when older than this
    # - name: leads_daily
    #   method: crm.lead.list
    #   incremental: true      # daily partitions: the rows modified each day
    #   start_date: "2025-01-01"

  # writes:
  #   - name: contact_sync
  #     method: crm.contact.add
  #     csv: contacts.csv      # beside this file; or `source: my/upstream_asset` (a DataFrame)
  #     key_column: external_id    # a sync by ORIGIN_ID: run it any number of times
  #     fields: {first_name: NAME, last_name: LAST_NAME, email: EMAIL}
  #     failure_rate_threshold: 0.05
  #     block_on_unknown: true     # dbt models downstream wait when an outcome is unknown

  # translation:                   # change any asset's spec; vars: name, method, kind, entity, props
  #   group_name: crm_raw
  #   tags: {source: bitrix24}

# post_processing:                 # as for any Component: attributes of selected assets
#   assets:
#     - target: "*"
#       attributes:
#         owners: [team:crm]

requirements:
  env: [BITRIX24_WEBHOOK_URL]
"""
