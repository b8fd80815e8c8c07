-- A view (not a table like the other marts): it reads the replica's files whenever it is
-- queried, so a replica run shows at once.
{{ config(materialized='view') }}

-- How long each deal stayed in each stage it passed through (from the stage history; a
-- stage the deal is still in counts until now).
select
    deal_id,
    stage_id,
    stage_name,
    count(*)                                                                      as times_entered,
    min(entered_at)                                                               as first_entered_at,
    sum(date_diff('second', entered_at, coalesce(left_at, current_timestamp)))    as seconds_in_stage,
    bool_or(left_at is null)                                                      as is_current_stage
from {{ ref('stg_replica_deal_stage_moves') }}
group by deal_id, stage_id, stage_name
order by deal_id, first_entered_at
