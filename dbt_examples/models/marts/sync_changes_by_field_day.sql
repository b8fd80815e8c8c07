-- What the lead sync changed on the portal, per day, field and kind of change, from its
-- changelog (one row per written field): how many changes, on how many records, in how many runs.
-- depends_on: {{ source('bitrix24', 'lead_import') }}  (the asset that writes the changelog)
select
    cast(changed_at as date)        as change_day,
    field,
    action,
    count(*)                        as changes,
    count(distinct key)             as records,
    count(distinct run_id)          as runs
from {{ source('bitrix24', 'lead_import_changelog') }}
where status = 'ok' and field is not null
group by all
order by change_day, field, action
