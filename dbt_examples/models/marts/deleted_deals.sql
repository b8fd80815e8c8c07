-- A view (not a table like the other marts): it reads the replica's files whenever it is
-- queried, so a replica run shows at once.
{{ config(materialized='view') }}

-- The deals the portal no longer has, as the replica last saw them, and when the replica
-- found them gone.
select
    "ID"            as deal_id,
    "TITLE"         as title,
    "STAGE_ID"      as stage_id,
    "OPPORTUNITY"   as opportunity,
    "_deleted_at"   as deleted_at
from {{ source('bitrix24_replica', 'deals') }}
where "_deleted"
order by deleted_at, deal_id
