-- One row per deal, with analyst-friendly names and types.
select
    cast("ID" as bigint)                        as deal_id,
    "TITLE"                                     as title,
    "STAGE_ID"                                  as stage_id,
    cast("CATEGORY_ID" as integer)              as category_id,
    cast("OPPORTUNITY" as double)               as opportunity,
    "CURRENCY_ID"                               as currency_id,
    cast("ASSIGNED_BY_ID" as bigint)            as assigned_by_id,
    cast("DATE_CREATE" as timestamptz)          as created_at,
    cast("DATE_MODIFY" as timestamptz)          as modified_at,
    coalesce(cast("CLOSED" as boolean), false)  as is_closed
from {{ source('bitrix24', 'deals') }}
