-- The deals the portal has now, from the replica: deleted deals and deals out of the
-- replica's filter left out, every id named (stage, pipeline, responsible user, currency).
with deals as (
    select * from {{ source('bitrix24_replica', 'deals') }}
    where not "_deleted" and not "_out_of_scope"
),
stages as (
    select "ENTITY_ID" as entity_id, "STATUS_ID" as status_id, "NAME" as name, "SEMANTICS" as semantics
    from {{ source('bitrix24_replica', 'ref_statuses') }}
)
select
    d."ID"                                              as deal_id,
    d."TITLE"                                           as title,
    d."STAGE_ID"                                        as stage_id,
    s.name                                              as stage_name,
    coalesce(s.semantics, 'P')                          as stage_semantics,
    d."CATEGORY_ID"                                     as category_id,
    c.name                                              as pipeline_name,
    d."OPPORTUNITY"                                     as opportunity,
    d."CURRENCY_ID"                                     as currency_id,
    cur."FULL_NAME"                                     as currency_name,
    d."ASSIGNED_BY_ID"                                  as assigned_by_id,
    trim(u."NAME" || ' ' || u."LAST_NAME")              as assigned_by_name,
    d."DATE_CREATE"                                     as created_at,
    d."DATE_MODIFY"                                     as modified_at,
    d."_synced_at"                                      as synced_at
from deals d
left join stages s
    on s.status_id = d."STAGE_ID"
   and s.entity_id = case when coalesce(d."CATEGORY_ID", 0) = 0 then 'DEAL_STAGE'
                          else 'DEAL_STAGE_' || d."CATEGORY_ID" end
left join {{ source('bitrix24_replica', 'ref_categories') }} c
    on c."entityTypeId" = 2 and c.id = coalesce(d."CATEGORY_ID", 0)
left join {{ source('bitrix24_replica', 'ref_users') }} u
    on u."ID" = d."ASSIGNED_BY_ID"
left join {{ source('bitrix24_replica', 'ref_currencies') }} cur
    on cur."CURRENCY" = d."CURRENCY_ID"
